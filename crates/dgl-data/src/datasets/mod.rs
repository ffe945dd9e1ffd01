//! On-disk datasets: the paper's layouts (CREMA-D, Kinetics-Sounds, VGGSound, NYUv2 as ESANet
//! prepares it), AV-digits (FSDD + MNIST), a generic manifest + tensors format, and a decoded cache.
//!
//! Entry point: a [`DatasetSpec`] (one variant per layout — `synthetic`, `synthetic-sequences`,
//! `synthetic-rgbd`, `cremad`, `ks`, `vggsound`, `nyuv2`, `av-digits`, `generic`, `cached` — each
//! with its own options) and
//! [`DatasetSpec::open`] with a split.
//!
//! Every loader is strict: a malformed manifest, an unknown label, a duplicate id, a class list
//! that disagrees with the folders are errors naming the file (and line); a missing or corrupt
//! item is an error naming its file unless `skip_bad` is set, in which case it is left out and
//! counted in the loader's [`Report`] (ok / missing / corrupt per split and class). See
//! `docs/datasets.md` in the repository for layouts, defaults and deviations from the official code.

pub mod av;
pub mod avdigits;
pub mod classes;
pub mod cremad;
pub mod csv;
pub mod fsutil;
pub mod generic;
pub mod idx;
pub mod ks;
pub mod npy;
pub mod nyuv2;
pub mod options;
pub mod prepare;
pub mod probe;
pub mod report;
pub mod spec;
pub mod tensorfile;
pub mod vggsound;

use std::path::Path;

pub use av::{AvClips, AvFrontEnd, AvItem};
pub use avdigits::{AvDigits, AvDigitsOptions, FsddSplit};
pub use classes::ClassList;
pub use cremad::{open_cremad, CREMAD_CLASSES};
pub use generic::{FeatureLayout, GenericDataset};
pub use ks::open_ks;
pub use nyuv2::{DepthMode, Nyuv2, Nyuv2Item};
pub use options::{
    AvDigitsSpec, CachedOptions, ClipOptions, CremadOptions, GenericOptions, KsOptions, LabelOrder, Nyuv2Options,
    VggsoundOptions,
};
pub use prepare::{prepare, prepare_with, CacheMeta, CachedDataset, PrepareError, PrepareOptions};
pub use report::{Counts, Problem, ProblemKind, Report, SplitReport};
pub use spec::{check_modalities, DatasetKind, DatasetSpec};
pub use vggsound::open_vggsound;

use crate::dataset::Split;
use crate::error::{DataError, Result};

/// Refuses an empty split: training on it would report accuracies of 0 samples and `prepare`
/// would write an empty cache. `source` names where the split comes from (a manifest, a folder);
/// the message counts what `skip_bad` left out, if anything.
pub(crate) fn require_samples(n: usize, split: Split, source: &Path, report: &Report) -> Result<()> {
    if n > 0 {
        return Ok(());
    }
    let c = report.counts(split);
    let left_out = if c.missing + c.corrupt > 0 {
        format!(" ({} missing and {} corrupt items were left out by skip_bad)", c.missing, c.corrupt)
    } else {
        String::new()
    };
    Err(DataError::bad_file(source, format!("the {} split has no samples{left_out}", split.name())))
}

/// Ids become file names: refuse empty ids, path separators, `.`/`..` and control characters.
pub(crate) fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() {
        return Err("empty id".into());
    }
    if id == "." || id == ".." || id.contains('/') || id.contains('\\') || id.chars().any(|c| c.is_control()) {
        return Err(format!("id {id:?} cannot be a file name (path separator, '..' or control character)"));
    }
    Ok(())
}
