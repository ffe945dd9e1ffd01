//! [`DatasetOptions`]: one serde-friendly bag of options for every loader (what the CLI's config
//! holds); fields a loader does not use are ignored by it.

use crate::limits::LimitExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::av::AvFrontEnd;
use super::avdigits::AvDigitsOptions;
use crate::error::{DataError, Result};
use crate::limits;
use crate::spectrogram::SpectrogramRecipe;
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

/// Options of [`super::open_dataset`]. `Default` gives each dataset its official-code settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetOptions {
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
    /// CREMA-D: folder holding `train.csv` / `test.csv` (default: the root).
    pub csv_dir: Option<PathBuf>,
    /// VGGSound: the 4-column CSV (default `<root>/vggsound.csv`); generic: the manifest
    /// (default `<root>/manifest.csv`).
    pub manifest: Option<PathBuf>,
    /// KS: class list (default `<root>/class.txt`); VGGSound / generic: optional class list.
    pub class_list: Option<PathBuf>,
    /// Number of logits, at least the number of classes (e.g. 34 for KS's 33-name list with
    /// the official dead logit); default = number of classes.
    pub num_classes: Option<usize>,
    /// KS: class folders absent from the class list are left out (with a note in the report)
    /// instead of being an error — how a 31-class list is used on the 33-folder tree.
    pub ignore_unlisted_classes: bool,
    /// VGGSound label numbering.
    pub label_order: LabelOrder,
    /// Generic: the modalities to load, in order (default: all, sorted by name).
    pub modalities: Option<Vec<String>>,
    /// AV-digits (FSDD + MNIST) settings.
    pub av_digits: AvDigitsOptions,
}

impl DatasetOptions {
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
    /// before the dataset kind's defaults are applied; the loaders check the rest when opening).
    /// Errors name the key (`frames`, `image_size`, `recipe.hop`, `audio_max_start_s`,
    /// `num_classes`, `av_digits.n_fft`, …).
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
        if let Some(k) = self.num_classes {
            if k == 0 {
                return Err(inv("num_classes must be at least 1".into()));
            }
            limits::CLASSES.check_usize(k, "num_classes").map_err(inv)?;
        }
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
        self.av_digits.check()
    }

    /// `num_classes`, checked against the number of named classes and [`limits::CLASSES`].
    pub(crate) fn logits(&self, n_names: usize) -> Result<usize> {
        if let Some(k) = self.num_classes {
            limits::CLASSES.check_usize(k, "num_classes").map_err(DataError::Invalid)?;
        }
        limits::CLASSES.check_usize(n_names, "the number of classes of the data").map_err(DataError::Invalid)?;
        match self.num_classes {
            None => Ok(n_names),
            Some(k) if k >= n_names && k > 0 => Ok(k),
            Some(k) => {
                Err(DataError::Invalid(format!("num_classes {k} is smaller than the {n_names} classes of the data")))
            }
        }
    }
}
