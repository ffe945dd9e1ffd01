//! [`DatasetSpec`]: which dataset a run uses, typed — one variant per layout, each with its own
//! options — and the one way to open it ([`DatasetSpec::open`], the synthetic set included).
//!
//! In TOML (serde, internally tagged by `kind`):
//!
//! ```toml
//! kind = "cremad"            # synthetic | synthetic-sequences | synthetic-rgbd | cremad | ks |
//!                            # vggsound | nyuv2 | av-digits | generic | cached
//! root = "/data/cremad"
//! frames = 1
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::avdigits::AvDigits;
use super::cremad::open_cremad;
use super::generic::GenericDataset;
use super::ks::open_ks;
use super::nyuv2::Nyuv2;
use super::options::{
    require_root, AvDigitsSpec, CachedOptions, ClipOptions, CremadOptions, GenericOptions, KsOptions, Nyuv2Options,
    VggsoundOptions,
};
use super::prepare::CachedDataset;
use super::report::Report;
use super::vggsound::open_vggsound;
use crate::dataset::{Dataset, Split};
use crate::error::{DataError, Result};
use crate::synthetic::rgbd::{RgbdSetConfig, SyntheticRgbd};
use crate::synthetic::sequences::{SequenceSetConfig, SyntheticSequences};
use crate::synthetic::{SyntheticAv, SyntheticConfig};

/// The layouts, without their options (what `--dataset NAME` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// The embedded, generated audio-visual set (no files).
    Synthetic,
    /// The embedded, generated text / audio / visual sequence set (no files).
    SyntheticSequences,
    /// The embedded, generated RGB-D segmentation set (no files).
    SyntheticRgbd,
    /// CREMA-D in the OGM-GE layout.
    Cremad,
    /// Kinetics-Sounds in the official DGL layout.
    Ks,
    /// VGGSound in the official DGL layout.
    Vggsound,
    /// NYUv2 (RGB-D semantic segmentation) in ESANet's prepared layout.
    Nyuv2,
    /// FSDD spoken digits + MNIST digits paired by label.
    AvDigits,
    /// A CSV manifest plus per-sample tensors.
    Generic,
    /// A cache written by `prepare`.
    Cached,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 10] = [
        DatasetKind::Synthetic,
        DatasetKind::SyntheticSequences,
        DatasetKind::SyntheticRgbd,
        DatasetKind::Cremad,
        DatasetKind::Ks,
        DatasetKind::Vggsound,
        DatasetKind::Nyuv2,
        DatasetKind::AvDigits,
        DatasetKind::Generic,
        DatasetKind::Cached,
    ];

    /// The canonical name (the `kind` tag).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::SyntheticSequences => "synthetic-sequences",
            DatasetKind::SyntheticRgbd => "synthetic-rgbd",
            DatasetKind::Cremad => "cremad",
            DatasetKind::Ks => "ks",
            DatasetKind::Vggsound => "vggsound",
            DatasetKind::Nyuv2 => "nyuv2",
            DatasetKind::AvDigits => "av-digits",
            DatasetKind::Generic => "generic",
            DatasetKind::Cached => "cached",
        }
    }

    /// Whether the layout is read from a folder (every kind but the generated ones).
    pub fn on_disk(self) -> bool {
        !matches!(self, DatasetKind::Synthetic | DatasetKind::SyntheticSequences | DatasetKind::SyntheticRgbd)
    }

    /// Whether the layout's labels are maps (`[B, H, W]` batches; semantic segmentation) rather
    /// than one class per sample. A cache says once opened ([`Dataset::label_shape`]).
    pub fn dense_labels(self) -> bool {
        matches!(self, DatasetKind::SyntheticRgbd | DatasetKind::Nyuv2)
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Case-insensitive, `_` read as `-`, with the aliases of the serde tag (`crema-d`,
/// `kinetics-sounds`, `avdigits`, `vgg-sound`, `nyu-v2`, `rgbd`, `cache`, …).
impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        let k = s.to_ascii_lowercase().replace('_', "-");
        Ok(match k.as_str() {
            "synthetic" => DatasetKind::Synthetic,
            "synthetic-sequences" | "synthetic-seq" | "sequences" => DatasetKind::SyntheticSequences,
            "synthetic-rgbd" | "rgbd" => DatasetKind::SyntheticRgbd,
            "nyuv2" | "nyu-v2" | "nyudv2" | "nyud-v2" | "nyu" => DatasetKind::Nyuv2,
            "cremad" | "crema-d" => DatasetKind::Cremad,
            "ks" | "kinetics-sounds" | "kineticssounds" | "kinetics-sound" => DatasetKind::Ks,
            "vggsound" | "vgg-sound" | "vgg" => DatasetKind::Vggsound,
            "av-digits" | "avdigits" | "av-mnist" | "avmnist" => DatasetKind::AvDigits,
            "generic" => DatasetKind::Generic,
            "cached" | "cache" => DatasetKind::Cached,
            _ => {
                let known: Vec<&str> = DatasetKind::ALL.iter().map(|k| k.name()).collect();
                return Err(DataError::Invalid(format!("unknown dataset kind {s:?} (known: {})", known.join(", "))));
            }
        })
    }
}

/// A dataset and its options: one variant per layout. Serialised as a table tagged by `kind`
/// (kebab-case; the aliases of [`DatasetKind::from_str`] are accepted); unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DatasetSpec {
    /// The embedded, generated audio-visual set (no files).
    Synthetic(SyntheticConfig),
    /// The embedded, generated three-modality sequence set (no files; Table 2's mixer half).
    #[serde(alias = "synthetic-seq", alias = "sequences")]
    SyntheticSequences(SequenceSetConfig),
    /// The embedded, generated RGB-D segmentation set (no files; Table 5's default).
    #[serde(alias = "rgbd", alias = "synthetic_rgbd")]
    SyntheticRgbd(RgbdSetConfig),
    #[serde(alias = "crema-d", alias = "crema_d")]
    Cremad(CremadOptions),
    #[serde(alias = "kinetics-sounds", alias = "kineticssounds", alias = "kinetics-sound", alias = "kinetics_sounds")]
    Ks(KsOptions),
    #[serde(alias = "vgg-sound", alias = "vgg")]
    Vggsound(VggsoundOptions),
    /// NYUv2 in ESANet's prepared layout.
    #[serde(alias = "nyu-v2", alias = "nyudv2", alias = "nyud-v2", alias = "nyu")]
    Nyuv2(Nyuv2Options),
    #[serde(alias = "avdigits", alias = "av_digits", alias = "av-mnist", alias = "avmnist")]
    AvDigits(AvDigitsSpec),
    Generic(GenericOptions),
    #[serde(alias = "cache")]
    Cached(CachedOptions),
}

impl Default for DatasetSpec {
    /// The synthetic set with its default (tiny) settings.
    fn default() -> Self {
        DatasetSpec::Synthetic(SyntheticConfig::default())
    }
}

/// The run-seed mixing of the synthetic set's seed (see [`DatasetSpec::for_run_seed`]).
const RUN_SEED_MIX: u64 = 0x9E37_79B9;

impl DatasetSpec {
    /// The defaults of the layout called `name` (any alias of [`DatasetKind`]) at `root` (what
    /// `--dataset NAME --root DIR` means). On-disk layouts need a root; the synthetic set takes
    /// none.
    pub fn from_kind(name: &str, root: Option<PathBuf>) -> Result<Self> {
        let kind: DatasetKind = name.parse()?;
        let Some(root) = root else {
            return match kind {
                DatasetKind::Synthetic => Ok(DatasetSpec::default()),
                DatasetKind::SyntheticSequences => Ok(DatasetSpec::SyntheticSequences(SequenceSetConfig::default())),
                DatasetKind::SyntheticRgbd => Ok(DatasetSpec::SyntheticRgbd(RgbdSetConfig::default())),
                k => Err(DataError::Invalid(format!(
                    "the {k} dataset is read from a folder: give its root (--root DIR, or `root`)"
                ))),
            };
        };
        Ok(match kind {
            DatasetKind::Synthetic | DatasetKind::SyntheticSequences | DatasetKind::SyntheticRgbd => {
                return Err(DataError::Invalid(format!(
                    "the {kind} dataset is generated and has no root (got {})",
                    root.display()
                )))
            }
            DatasetKind::Cremad => DatasetSpec::Cremad(CremadOptions::new(root)),
            DatasetKind::Ks => DatasetSpec::Ks(KsOptions::new(root)),
            DatasetKind::Vggsound => DatasetSpec::Vggsound(VggsoundOptions::new(root)),
            DatasetKind::Nyuv2 => DatasetSpec::Nyuv2(Nyuv2Options::new(root)),
            DatasetKind::AvDigits => DatasetSpec::AvDigits(AvDigitsSpec::new(root)),
            DatasetKind::Generic => DatasetSpec::Generic(GenericOptions::new(root)),
            DatasetKind::Cached => DatasetSpec::Cached(CachedOptions::new(root)),
        })
    }

    /// The layout.
    pub fn kind(&self) -> DatasetKind {
        match self {
            DatasetSpec::Synthetic(_) => DatasetKind::Synthetic,
            DatasetSpec::SyntheticSequences(_) => DatasetKind::SyntheticSequences,
            DatasetSpec::SyntheticRgbd(_) => DatasetKind::SyntheticRgbd,
            DatasetSpec::Cremad(_) => DatasetKind::Cremad,
            DatasetSpec::Ks(_) => DatasetKind::Ks,
            DatasetSpec::Vggsound(_) => DatasetKind::Vggsound,
            DatasetSpec::Nyuv2(_) => DatasetKind::Nyuv2,
            DatasetSpec::AvDigits(_) => DatasetKind::AvDigits,
            DatasetSpec::Generic(_) => DatasetKind::Generic,
            DatasetSpec::Cached(_) => DatasetKind::Cached,
        }
    }

    /// The canonical name of the layout (`synthetic`, `cremad`, …, `av-digits`, …).
    pub fn kind_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The folder of an on-disk layout (`None` for the synthetic set).
    pub fn root(&self) -> Option<&Path> {
        self.root_slot().map(|r| r.as_path())
    }

    /// Sets the folder of an on-disk layout (`--root`); the synthetic set has none.
    pub fn set_root(&mut self, root: PathBuf) -> Result<()> {
        match self.root_slot_mut() {
            Some(r) => {
                *r = root;
                Ok(())
            }
            None => Err(DataError::Invalid(format!(
                "the synthetic dataset is generated and has no root (got {})",
                root.display()
            ))),
        }
    }

    fn root_slot(&self) -> Option<&PathBuf> {
        match self {
            DatasetSpec::Synthetic(_) | DatasetSpec::SyntheticSequences(_) | DatasetSpec::SyntheticRgbd(_) => None,
            DatasetSpec::Cremad(o) => Some(&o.root),
            DatasetSpec::Ks(o) => Some(&o.root),
            DatasetSpec::Vggsound(o) => Some(&o.root),
            DatasetSpec::Nyuv2(o) => Some(&o.root),
            DatasetSpec::AvDigits(o) => Some(&o.root),
            DatasetSpec::Generic(o) => Some(&o.root),
            DatasetSpec::Cached(o) => Some(&o.root),
        }
    }

    fn root_slot_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            DatasetSpec::Synthetic(_) | DatasetSpec::SyntheticSequences(_) | DatasetSpec::SyntheticRgbd(_) => None,
            DatasetSpec::Cremad(o) => Some(&mut o.root),
            DatasetSpec::Ks(o) => Some(&mut o.root),
            DatasetSpec::Vggsound(o) => Some(&mut o.root),
            DatasetSpec::Nyuv2(o) => Some(&mut o.root),
            DatasetSpec::AvDigits(o) => Some(&mut o.root),
            DatasetSpec::Generic(o) => Some(&mut o.root),
            DatasetSpec::Cached(o) => Some(&mut o.root),
        }
    }

    /// The options shared by the clip layouts (CREMA-D, Kinetics-Sounds, VGGSound), for those.
    pub fn clip_options_mut(&mut self) -> Option<&mut ClipOptions> {
        match self {
            DatasetSpec::Cremad(o) => Some(&mut o.clip),
            DatasetSpec::Ks(o) => Some(&mut o.clip),
            DatasetSpec::Vggsound(o) => Some(&mut o.clip),
            _ => None,
        }
    }

    /// Sets `skip_bad` (leave out missing / corrupt items, counted in the report) on the layouts
    /// that have it; `false` for those that do not (the synthetic set and a cache).
    pub fn set_skip_bad(&mut self, on: bool) -> bool {
        let slot = match self {
            DatasetSpec::Synthetic(_)
            | DatasetSpec::SyntheticSequences(_)
            | DatasetSpec::SyntheticRgbd(_)
            | DatasetSpec::Cached(_) => return false,
            DatasetSpec::Cremad(o) => &mut o.clip.skip_bad,
            DatasetSpec::Ks(o) => &mut o.clip.skip_bad,
            DatasetSpec::Vggsound(o) => &mut o.clip.skip_bad,
            DatasetSpec::Nyuv2(o) => &mut o.skip_bad,
            DatasetSpec::AvDigits(o) => &mut o.skip_bad,
            DatasetSpec::Generic(o) => &mut o.skip_bad,
        };
        *slot = on;
        true
    }

    /// The spec a run with seed `seed` opens: the synthetic set's generator seed mixed with the
    /// run seed (`seed + run_seed · 0x9E3779B9`, wrapping), so that runs of different seeds see
    /// different draws; every on-disk layout unchanged.
    pub fn for_run_seed(&self, run_seed: u64) -> Self {
        let mut spec = self.clone();
        let mix = |seed: &mut u64| *seed = seed.wrapping_add(run_seed.wrapping_mul(RUN_SEED_MIX));
        match &mut spec {
            DatasetSpec::Synthetic(s) => mix(&mut s.seed),
            DatasetSpec::SyntheticSequences(s) => mix(&mut s.seed),
            DatasetSpec::SyntheticRgbd(s) => mix(&mut s.seed),
            _ => {}
        }
        spec
    }

    /// The modalities, in order, when they are known without opening anything: audio and
    /// visual for the synthetic set and the audio-visual layouts, rgb and depth for the RGB-D
    /// sets, the `modalities` option of a generic dataset when it lists them, `None` otherwise (a
    /// cache says once opened).
    pub fn modalities(&self) -> Option<Vec<String>> {
        let av = || Some(vec!["audio".to_string(), "visual".to_string()]);
        match self {
            DatasetSpec::Synthetic(_)
            | DatasetSpec::Cremad(_)
            | DatasetSpec::Ks(_)
            | DatasetSpec::Vggsound(_)
            | DatasetSpec::AvDigits(_) => av(),
            DatasetSpec::SyntheticSequences(_) => {
                Some(crate::synthetic::sequences::MODALITIES.iter().map(|(n, _, _)| n.to_string()).collect())
            }
            DatasetSpec::SyntheticRgbd(_) | DatasetSpec::Nyuv2(_) => Some(vec!["rgb".into(), "depth".into()]),
            DatasetSpec::Generic(o) => o.modalities.clone(),
            DatasetSpec::Cached(_) => None,
        }
    }

    /// Checks that an on-disk layout has a root, and every option against its range and the
    /// [`limits`](crate::limits) (nothing is read); errors name the key (`frames`, `recipe.hop`,
    /// `av_digits.n_fft`, `n_train`, …).
    pub fn check(&self) -> Result<()> {
        if self.root().is_some_and(|r| r.as_os_str().is_empty()) {
            return Err(DataError::Invalid(format!(
                "the {} dataset is read from a folder: give its root (`root`, or --root DIR)",
                self.kind_name()
            )));
        }
        match self {
            DatasetSpec::Synthetic(s) => s.validate(),
            DatasetSpec::SyntheticSequences(s) => s.validate(),
            DatasetSpec::SyntheticRgbd(s) => s.validate(),
            DatasetSpec::Cremad(o) => o.clip.check(),
            DatasetSpec::Ks(o) => o.clip.check(),
            DatasetSpec::Vggsound(o) => o.clip.check(),
            DatasetSpec::Nyuv2(o) => o.check(),
            DatasetSpec::AvDigits(o) => o.av_digits.check(),
            DatasetSpec::Generic(o) => o.check(),
            DatasetSpec::Cached(_) => Ok(()),
        }
    }

    /// Opens one split, with the load report (what `skip_bad` left out; empty for the synthetic
    /// set). An on-disk layout whose root does not exist is an error naming it.
    pub fn open(&self, split: Split) -> Result<(Box<dyn Dataset>, Report)> {
        fn boxed<D: Dataset + 'static>(d: D, report: impl FnOnce(&D) -> &Report) -> (Box<dyn Dataset>, Report) {
            let r = report(&d).clone();
            (Box::new(d), r)
        }
        if let Some(root) = self.root() {
            require_root(root)?;
        }
        Ok(match self {
            DatasetSpec::Synthetic(s) => (Box::new(SyntheticAv::new(s.clone(), split)?), Report::new(Vec::new())),
            DatasetSpec::SyntheticSequences(s) => {
                (Box::new(SyntheticSequences::new(s, split)?), Report::new(Vec::new()))
            }
            DatasetSpec::SyntheticRgbd(s) => (Box::new(SyntheticRgbd::new(s, split)?), Report::new(Vec::new())),
            DatasetSpec::Cremad(o) => boxed(open_cremad(o, split)?, |d| d.report()),
            DatasetSpec::Ks(o) => boxed(open_ks(o, split)?, |d| d.report()),
            DatasetSpec::Vggsound(o) => boxed(open_vggsound(o, split)?, |d| d.report()),
            DatasetSpec::Nyuv2(o) => boxed(Nyuv2::open(o, split)?, |d| d.report()),
            DatasetSpec::AvDigits(o) => {
                boxed(AvDigits::open(&o.root, split, &o.av_digits, o.skip_bad, o.verify)?, |d| d.report())
            }
            DatasetSpec::Generic(o) => boxed(GenericDataset::open(o, split)?, |d| d.report()),
            DatasetSpec::Cached(o) => boxed(CachedDataset::open(&o.root, split)?, |d| d.report()),
        })
    }
}

/// The one check that a model's modalities are among the data's, by name, each once: all of them
/// (in any order: the data follow the model's order), or a subset (one: a unimodal model). `what`
/// names the data in the message (`the cremad dataset`).
pub fn check_modalities<M: AsRef<str>, D: AsRef<str>>(model: &[M], data: &[D], what: &str) -> Result<()> {
    let model: Vec<&str> = model.iter().map(AsRef::as_ref).collect();
    let data: Vec<&str> = data.iter().map(AsRef::as_ref).collect();
    let missing: Vec<&str> = model.iter().filter(|n| !data.contains(n)).copied().collect();
    let twice: Vec<&str> = model.iter().enumerate().filter(|(i, n)| model[..*i].contains(n)).map(|(_, n)| *n).collect();
    if missing.is_empty() && twice.is_empty() && !model.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("the data have no {missing:?}"));
    }
    if !twice.is_empty() {
        why.push(format!("{twice:?} listed twice"));
    }
    if model.is_empty() {
        why.push("the model lists none".into());
    }
    Err(DataError::Invalid(format!(
        "model.modalities {model:?} do not match the modalities of {what} {data:?}: {} (name the data's modalities \
         the model uses, each once, in model.modalities: all of them, or one for a unimodal model)",
        why.join("; ")
    )))
}
