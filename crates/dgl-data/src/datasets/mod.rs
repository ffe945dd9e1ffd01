//! On-disk datasets: the paper's layouts (CREMA-D, Kinetics-Sounds, VGGSound), AV-digits
//! (FSDD + MNIST), a generic manifest + tensors format, and a decoded cache.
//!
//! Entry point for the CLI: [`open_dataset`] with a kind (`cremad`, `ks`, `vggsound`,
//! `av-digits`, `generic`, `cached`), a root folder, a split and [`DatasetOptions`].
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
pub mod options;
pub mod prepare;
pub mod probe;
pub mod report;
pub mod tensorfile;
pub mod vggsound;

use std::path::Path;

pub use av::{AvClips, AvFrontEnd, AvItem};
pub use avdigits::{AvDigits, AvDigitsOptions, FsddSplit};
pub use classes::ClassList;
pub use cremad::{open_cremad, CREMAD_CLASSES};
pub use generic::{FeatureLayout, GenericDataset};
pub use ks::open_ks;
pub use options::{DatasetOptions, LabelOrder};
pub use prepare::{prepare, prepare_with, CacheMeta, CachedDataset, PrepareError, PrepareOptions};
pub use report::{Counts, Problem, ProblemKind, Report, SplitReport};
pub use vggsound::open_vggsound;

use crate::dataset::{Dataset, Split};
use crate::error::{DataError, Result};

/// The kinds [`open_dataset`] knows.
pub const DATASET_KINDS: [&str; 6] = ["cremad", "ks", "vggsound", "av-digits", "generic", "cached"];

/// The canonical kind of a name (accepts `crema-d`, `kinetics-sounds`, `avdigits`, `av_digits`, …).
pub fn canonical_kind(kind: &str) -> Option<&'static str> {
    let k = kind.to_ascii_lowercase().replace('_', "-");
    Some(match k.as_str() {
        "cremad" | "crema-d" => "cremad",
        "ks" | "kinetics-sounds" | "kineticssounds" | "kinetics-sound" => "ks",
        "vggsound" | "vgg-sound" | "vgg" => "vggsound",
        "av-digits" | "avdigits" | "av-mnist" | "avmnist" => "av-digits",
        "generic" => "generic",
        "cached" | "cache" => "cached",
        _ => return None,
    })
}

/// Opens one split of a dataset on disk. `root` is the dataset folder (for `cached`, the
/// `out_dir` given to [`prepare`](fn@prepare)).
pub fn open_dataset(kind: &str, root: &Path, split: Split, opts: &DatasetOptions) -> Result<Box<dyn Dataset>> {
    Ok(open_dataset_with_report(kind, root, split, opts)?.0)
}

/// [`open_dataset`] plus the load report (what was left out with `skip_bad`).
pub fn open_dataset_with_report(
    kind: &str,
    root: &Path,
    split: Split,
    opts: &DatasetOptions,
) -> Result<(Box<dyn Dataset>, Report)> {
    let canon = canonical_kind(kind).ok_or_else(|| {
        DataError::Invalid(format!("unknown dataset kind {kind:?} (known: {})", DATASET_KINDS.join(", ")))
    })?;
    if !root.exists() {
        return Err(DataError::io(
            root,
            std::io::Error::new(std::io::ErrorKind::NotFound, "dataset root does not exist"),
        ));
    }
    Ok(match canon {
        "cremad" => boxed(open_cremad(root, split, opts)?),
        "ks" => boxed(open_ks(root, split, opts)?),
        "vggsound" => boxed(open_vggsound(root, split, opts)?),
        "av-digits" => {
            let d = AvDigits::open(root, split, &opts.av_digits, opts.skip_bad, opts.verify)?;
            let r = d.report().clone();
            (Box::new(d), r)
        }
        "generic" => {
            let d = GenericDataset::open(root, split, opts)?;
            let r = d.report().clone();
            (Box::new(d), r)
        }
        "cached" => {
            let d = CachedDataset::open(root, split)?;
            let r = d.report().clone();
            (Box::new(d), r)
        }
        _ => unreachable!("canonical kinds are matched above"),
    })
}

fn boxed(d: AvClips) -> (Box<dyn Dataset>, Report) {
    let r = d.report().clone();
    (Box::new(d), r)
}

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
