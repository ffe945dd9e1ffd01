//! The options of each on-disk layout, one struct per layout holding only what that layout uses
//! (the variants of [`super::spec::DatasetSpec`]). The three clip layouts (CREMA-D,
//! Kinetics-Sounds, VGGSound) share [`ClipOptions`], flattened into their own table.

use crate::limits::LimitExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::av::AvFrontEnd;
use super::avdigits::AvDigitsOptions;
pub use super::nyuv2::DepthMode;
use crate::error::{DataError, Result};
use crate::limits;
use crate::spectrogram::SpectrogramRecipe;
pub use crate::visual::rgbd::HsvJitter;
use crate::visual::FrameTransform;

/// How VGGSound labels get their numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelOrder {
    /// Order of first appearance among the train rows of the CSV (the official loader).
    #[default]
    FirstAppearance,
    /// Label names sorted (byte order).
    Sorted,
}

/// Options shared by the clip layouts (CREMA-D, Kinetics-Sounds, VGGSound). `Default` gives each
/// layout its official-code settings (the `None`s take the layout's defaults).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipOptions {
    /// Leave out missing/corrupt items (counted in the report) instead of failing on the first.
    pub skip_bad: bool,
    /// Decode every item once when opening (finds corrupt files up front).
    pub verify: bool,
    /// Frames per clip (CREMA-D 1, KS / VGGSound 3).
    pub frames: Option<usize>,
    /// Side of the square frames (224).
    pub image_size: Option<usize>,
    /// Name of a spectrogram preset (`librosa-cremad`, `librosa-ks`, `scipy-paper`).
    pub audio_recipe: Option<String>,
    /// A complete spectrogram recipe (overrides `audio_recipe`).
    pub recipe: Option<SpectrogramRecipe>,
    /// Largest audio crop start, seconds (CREMA-D 0, KS / VGGSound 5). The crop is seeded-random
    /// in training and the middle of the range at evaluation.
    pub audio_max_start_s: Option<f64>,
    /// Number of logits, at least the number of classes (e.g. 34 for KS's 33-name list with
    /// the official dead logit); default = number of classes.
    pub num_classes: Option<usize>,
}

impl ClipOptions {
    /// The spectrogram recipe: `recipe`, else the preset `audio_recipe`, else `default`.
    pub fn recipe_or(&self, default: SpectrogramRecipe) -> Result<SpectrogramRecipe> {
        match (&self.recipe, &self.audio_recipe) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(name)) => SpectrogramRecipe::by_name(name),
            (None, None) => Ok(default),
        }
    }

    /// The clip datasets' front-end with this dataset's defaults.
    pub(crate) fn front_end(
        &self,
        default_recipe: SpectrogramRecipe,
        default_frames: usize,
        default_max_start_s: f64,
    ) -> Result<AvFrontEnd> {
        let recipe = self.recipe_or(default_recipe)?;
        let max_start_s = self.audio_max_start_s.unwrap_or(default_max_start_s);
        if !(max_start_s.is_finite() && max_start_s >= 0.0) {
            return Err(DataError::Invalid(format!("audio_max_start_s must be finite and ≥ 0, got {max_start_s}")));
        }
        recipe.check("recipe.")?;
        // Bounded before the cast (1e300 s would saturate to usize::MAX and overflow later).
        let samples = (max_start_s * recipe.sample_rate as f64).round();
        let max = limits::AUDIO_SAMPLES.bound().map_err(DataError::Invalid)?;
        if samples > max as f64 {
            return Err(DataError::Invalid(format!(
                "audio_max_start_s {max_start_s} is {samples:e} samples at {} Hz, over the limit of {max} samples ({}; raise it with the environment variable {})",
                recipe.sample_rate,
                limits::AUDIO_SAMPLES.what,
                limits::AUDIO_SAMPLES.env
            )));
        }
        let max_start = samples as usize;
        let transform = FrameTransform { size: self.image_size.unwrap_or(224), ..FrameTransform::default() };
        Ok(AvFrontEnd { recipe, max_start, frames: self.frames.unwrap_or(default_frames), transform })
    }

    /// Checks every option that is set against its range and [`limits`] (what can be checked
    /// before the layout's defaults are applied; the loaders check the rest when opening).
    /// Errors name the key (`frames`, `image_size`, `recipe.hop`, `audio_max_start_s`,
    /// `num_classes`, …).
    pub fn check(&self) -> Result<()> {
        let inv = DataError::Invalid;
        for (key, v) in [("frames", self.frames), ("image_size", self.image_size)] {
            if v == Some(0) {
                return Err(inv(format!("{key} must be at least 1")));
            }
        }
        if let Some(f) = self.frames {
            limits::FRAMES.check_usize(f, "frames").map_err(inv)?;
        }
        if let Some(s) = self.image_size {
            limits::IMAGE_SIZE.check_usize(s, "image_size").map_err(inv)?;
        }
        check_num_classes(self.num_classes)?;
        if let Some(s) = self.audio_max_start_s {
            if !(s.is_finite() && s >= 0.0) {
                return Err(inv(format!("audio_max_start_s must be finite and ≥ 0, got {s}")));
            }
        }
        if let Some(r) = &self.recipe {
            r.check("recipe.")?;
        } else if let Some(name) = &self.audio_recipe {
            SpectrogramRecipe::by_name(name)?;
        }
        Ok(())
    }

    /// `num_classes`, checked against the number of named classes and [`limits::CLASSES`].
    pub(crate) fn logits(&self, n_names: usize) -> Result<usize> {
        logits(self.num_classes, n_names)
    }
}

/// `num_classes` (when set) is at least 1 and within [`limits::CLASSES`].
fn check_num_classes(num_classes: Option<usize>) -> Result<()> {
    if let Some(k) = num_classes {
        if k == 0 {
            return Err(DataError::Invalid("num_classes must be at least 1".into()));
        }
        limits::CLASSES.check_usize(k, "num_classes").map_err(DataError::Invalid)?;
    }
    Ok(())
}

/// The number of logits: `num_classes` when set (at least `n_names`), else `n_names`; both
/// checked against [`limits::CLASSES`].
pub(crate) fn logits(num_classes: Option<usize>, n_names: usize) -> Result<usize> {
    if let Some(k) = num_classes {
        limits::CLASSES.check_usize(k, "num_classes").map_err(DataError::Invalid)?;
    }
    limits::CLASSES.check_usize(n_names, "the number of classes of the data").map_err(DataError::Invalid)?;
    match num_classes {
        None => Ok(n_names),
        Some(k) if k >= n_names && k > 0 => Ok(k),
        Some(k) => {
            Err(DataError::Invalid(format!("num_classes {k} is smaller than the {n_names} classes of the data")))
        }
    }
}

/// CREMA-D in the OGM-GE layout (`AudioWAV/`, `Image-01-FPS/`, `train.csv`, `test.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CremadOptions {
    /// The dataset folder.
    #[serde(default)]
    pub root: PathBuf,
    #[serde(flatten)]
    pub clip: ClipOptions,
    /// Folder holding `train.csv` / `test.csv` (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_dir: Option<PathBuf>,
}

impl CremadOptions {
    /// The layout's defaults for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), clip: ClipOptions::default(), csv_dir: None }
    }
}

/// Kinetics-Sounds in the official DGL layout, with an explicit class list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KsOptions {
    /// The dataset folder.
    #[serde(default)]
    pub root: PathBuf,
    #[serde(flatten)]
    pub clip: ClipOptions,
    /// The class list (default `<root>/class.txt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_list: Option<PathBuf>,
    /// Class folders absent from the class list are left out (with a note in the report)
    /// instead of being an error — how a 31-class list is used on the 33-folder tree.
    #[serde(default)]
    pub ignore_unlisted_classes: bool,
}

impl KsOptions {
    /// The layout's defaults for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), clip: ClipOptions::default(), class_list: None, ignore_unlisted_classes: false }
    }
}

/// VGGSound in the official DGL layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VggsoundOptions {
    /// The dataset folder.
    #[serde(default)]
    pub root: PathBuf,
    #[serde(flatten)]
    pub clip: ClipOptions,
    /// The 4-column CSV (default `<root>/vggsound.csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// An optional class list (fixes the label numbers and the class set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_list: Option<PathBuf>,
    /// Label numbering (without a class list).
    #[serde(default)]
    pub label_order: LabelOrder,
}

impl VggsoundOptions {
    /// The layout's defaults for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            clip: ClipOptions::default(),
            manifest: None,
            class_list: None,
            label_order: LabelOrder::default(),
        }
    }
}

/// FSDD spoken digits + MNIST digits paired by label (a root holding `fsdd/` and `mnist/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvDigitsSpec {
    /// The folder holding `fsdd/` and `mnist/`.
    #[serde(default)]
    pub root: PathBuf,
    /// Leave out unparsable / empty recordings (counted in the report) instead of failing.
    #[serde(default)]
    pub skip_bad: bool,
    /// Decode every item once when opening.
    #[serde(default)]
    pub verify: bool,
    /// The pairing, the front-end and the degradations (`[… .av_digits]`).
    #[serde(default)]
    pub av_digits: AvDigitsOptions,
}

impl AvDigitsSpec {
    /// The default settings for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), skip_bad: false, verify: false, av_digits: AvDigitsOptions::default() }
    }
}

/// A CSV manifest plus per-sample tensors (see [`super::generic`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericOptions {
    /// The dataset folder (`manifest.csv`, `features/`, optional `classes.txt`).
    #[serde(default)]
    pub root: PathBuf,
    /// The manifest (default `<root>/manifest.csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// An optional class list (default `<root>/classes.txt` when it exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_list: Option<PathBuf>,
    /// Number of logits, at least the number of classes; default = number of classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// The modalities to load, in order (default: all, sorted by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<String>>,
    /// Leave out missing/corrupt items (counted in the report) instead of failing on the first.
    #[serde(default)]
    pub skip_bad: bool,
    /// Read every sample once when opening.
    #[serde(default)]
    pub verify: bool,
}

impl GenericOptions {
    /// The defaults for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            manifest: None,
            class_list: None,
            num_classes: None,
            modalities: None,
            skip_bad: false,
            verify: false,
        }
    }

    /// `num_classes` in range, `modalities` (when given) not empty and without repeats.
    pub fn check(&self) -> Result<()> {
        check_num_classes(self.num_classes)?;
        if let Some(m) = &self.modalities {
            check_modality_list(m)?;
        }
        Ok(())
    }
}

/// A `modalities` list is not empty and names each modality once.
pub(crate) fn check_modality_list(modalities: &[String]) -> Result<()> {
    if modalities.is_empty() {
        return Err(DataError::Invalid("modalities is an empty list".into()));
    }
    let set: std::collections::BTreeSet<&String> = modalities.iter().collect();
    if set.len() != modalities.len() {
        return Err(DataError::Invalid(format!("modalities lists a name twice: {modalities:?}")));
    }
    Ok(())
}

/// NYUv2 in ESANet's prepared layout (see [`super::nyuv2`]). `Default` is ESANet's NYUv2 setup
/// (40 classes, refined depth, 480 × 640, its training augmentation) with an empty root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nyuv2Options {
    /// The prepared dataset folder (`train.txt`, `test.txt`, `train/`, `test/`).
    pub root: PathBuf,
    /// Leave out items with a missing or corrupt file (counted in the report) instead of failing.
    pub skip_bad: bool,
    /// Decode every item once when opening.
    pub verify: bool,
    /// `refined` (the `depth/` folder, ESANet's default) or `raw` (`depth_raw/`).
    pub depth: DepthMode,
    /// 40 (`labels_40/`, Table 5) or 13 (`labels_13/`).
    pub classes: usize,
    /// Output height and width (ESANet `--height 480 --width 640`); files of another size are
    /// resized (image bilinear, depth and labels nearest).
    pub height: usize,
    pub width: usize,
    /// Depth normalisation `(d − mean) / std`; default ESANet's refined-depth statistics for
    /// both depth modes, as ESANet does.
    pub depth_mean: Option<f64>,
    pub depth_std: Option<f64>,
    /// ESANet's training augmentation in `Mode::Train` (never at evaluation).
    pub augment: bool,
    /// Range of the random rescale factor (ESANet `--aug_scale_min 1.0 --aug_scale_max 1.4`).
    pub scale: [f64; 2],
    /// The colour jitter of the augmentation.
    pub hsv: HsvJitter,
}

impl Default for Nyuv2Options {
    fn default() -> Self {
        Self {
            root: PathBuf::new(),
            skip_bad: false,
            verify: false,
            depth: DepthMode::Refined,
            classes: 40,
            height: 480,
            width: 640,
            depth_mean: None,
            depth_std: None,
            augment: true,
            scale: [1.0, 1.4],
            hsv: HsvJitter::Paper,
        }
    }
}

impl Nyuv2Options {
    /// ESANet's setup for the tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), ..Self::default() }
    }

    /// `classes` 13 or 40, the output size within [`limits::IMAGE_SIZE`] and
    /// [`limits::IMAGE_PIXELS`], finite depth statistics (std > 0), a scale range
    /// `0 < min ≤ max ≤ 4`. Errors name the key.
    pub fn check(&self) -> Result<()> {
        let inv = DataError::Invalid;
        if self.classes != 40 && self.classes != 13 {
            return Err(inv(format!(
                "classes must be 40 or 13 (ESANet's labels_40 / labels_13), got {}",
                self.classes
            )));
        }
        check_rgbd_geometry(self.height, self.width, self.scale)?;
        if let Some(m) = self.depth_mean {
            if !m.is_finite() {
                return Err(inv(format!("depth_mean must be finite, got {m}")));
            }
        }
        if let Some(s) = self.depth_std {
            if !(s.is_finite() && s > 0.0) {
                return Err(inv(format!("depth_std must be finite and > 0, got {s}")));
            }
        }
        Ok(())
    }
}

/// The output size and scale range of an RGB-D set: `height`, `width` in
/// `1..=`[`limits::IMAGE_SIZE`] with `height × width` within [`limits::IMAGE_PIXELS`], and
/// `0 < scale[0] ≤ scale[1] ≤ 4`, finite. Errors name the key.
pub(crate) fn check_rgbd_geometry(height: usize, width: usize, scale: [f64; 2]) -> Result<()> {
    let inv = DataError::Invalid;
    for (key, v) in [("height", height), ("width", width)] {
        if v == 0 {
            return Err(inv(format!("{key} must be at least 1")));
        }
        limits::IMAGE_SIZE.check_usize(v, key).map_err(inv)?;
    }
    limits::IMAGE_PIXELS.check_usize(height * width, "height × width").map_err(inv)?;
    let [lo, hi] = scale;
    if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi && hi <= 4.0) {
        return Err(inv(format!("scale must be finite with 0 < min <= max <= 4, got {scale:?}")));
    }
    Ok(())
}

/// A cache written by [`super::prepare`](fn@super::prepare).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedOptions {
    /// The `out_dir` given to `prepare`.
    #[serde(default)]
    pub root: PathBuf,
}

impl CachedOptions {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

/// The folder of an on-disk layout is given and exists (an error naming it otherwise).
pub(crate) fn require_root(root: &Path) -> Result<()> {
    if root.as_os_str().is_empty() {
        Err(DataError::Invalid("no root: give the dataset's folder (`root`, or --root DIR)".into()))
    } else if root.exists() {
        Ok(())
    } else {
        Err(DataError::io(root, std::io::Error::new(std::io::ErrorKind::NotFound, "dataset root does not exist")))
    }
}
