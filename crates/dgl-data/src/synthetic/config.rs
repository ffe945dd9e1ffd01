//! Configuration of the embedded synthetic audio-visual dataset.

use dgl_core::Limit;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::spectrogram::{Padding, SpectrogramRecipe, Window};

/// `n_train` / `n_test` of the synthetic `[data.dataset]`: samples per split. The tiny preset
/// generates and keeps every sample in memory (about 29 KB each), the paper preset keeps one label
/// per sample.
pub const MAX_SAMPLES: Limit = Limit {
    key: "data.dataset.n_train / n_test",
    what: "samples per synthetic split; the tiny preset keeps about 29 KB per sample in memory",
    default: 50_000,
    env: "DGL_MAX_SYNTHETIC_SAMPLES",
};

/// `n_train` and `n_test` of a generated set in `1..=`[`MAX_SAMPLES`]; errors name the key.
pub fn check_split_sizes(n_train: usize, n_test: usize) -> Result<()> {
    for (key, n) in [("n_train", n_train), ("n_test", n_test)] {
        if n == 0 {
            return Err(DataError::Invalid(format!("{key} must be >= 1")));
        }
        MAX_SAMPLES.check_key(key, n as u64).map_err(|e| DataError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Size of the generated data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticPreset {
    /// Fast on a laptop CPU: 8 kHz, 0.5 s audio, STFT n_fft 128 / hop 64 → `[1, 65, 63]`;
    /// images `[3, 1, 32, 32]`. Everything is generated once, in parallel, and kept in memory.
    #[default]
    Tiny,
    /// The paper's geometry: 22050 Hz, 3 s audio through `librosa-cremad` → `[1, 257, 188]`;
    /// images `[3, 1, 224, 224]`. Generated lazily per index (memory stays small).
    Paper,
}

impl SyntheticPreset {
    /// The audio front-end of the preset.
    pub fn recipe(self) -> SpectrogramRecipe {
        match self {
            SyntheticPreset::Tiny => {
                let mut r = SpectrogramRecipe::generic(8000, 4000, 128, 64, Window::Hann, Some(Padding::Reflect));
                r.name = "synthetic-tiny".into();
                r
            }
            SyntheticPreset::Paper => SpectrogramRecipe::librosa_cremad(),
        }
    }

    /// Side of the square images.
    pub fn image_size(self) -> usize {
        match self {
            SyntheticPreset::Tiny => 32,
            SyntheticPreset::Paper => 224,
        }
    }
}

/// Everything that defines a synthetic dataset; `(config, split, index)` determines a sample.
///
/// Missing fields in a serialized config take the [`Default`] (tiny) values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    pub preset: SyntheticPreset,
    pub seed: u64,
    /// Samples in the train split (labels balanced to ±1 over the 6 classes).
    pub n_train: usize,
    /// Samples in the test split.
    pub n_test: usize,
    /// Probability that the audio's within-pair cue (a 2.6–3.4 kHz noise burst) points to the
    /// right class of the pair. It is the Bayes ceiling of audio alone (0.7 → ≈ 70 %).
    pub audio_cue_reliability: f64,
    /// Range of the contrast of the class-carrying oriented grating (uniform).
    pub visual_contrast: [f64; 2],
    /// Standard deviation of the i.i.d. pixel noise (on the [0, 1] scale).
    pub visual_noise: f64,
    /// Light, seeded training augmentation (audio gain and circular time shift; circular image
    /// translation). Never applied in `Mode::Eval`.
    pub augment: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self::tiny()
    }
}

impl SyntheticConfig {
    /// Tiny preset: 1200 train / 400 test.
    pub fn tiny() -> Self {
        Self {
            preset: SyntheticPreset::Tiny,
            seed: 0,
            n_train: 1200,
            n_test: 400,
            audio_cue_reliability: 0.7,
            visual_contrast: [0.03, 0.25],
            visual_noise: 0.2,
            augment: true,
        }
    }

    /// Paper preset: 2400 train / 600 test.
    pub fn paper() -> Self {
        Self { preset: SyntheticPreset::Paper, n_train: 2400, n_test: 600, ..Self::tiny() }
    }

    /// Checks the settings before anything is generated: split sizes in `1..=`[`MAX_SAMPLES`],
    /// every number finite and in its range. Errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        check_split_sizes(self.n_train, self.n_test)?;
        if !(0.0..=1.0).contains(&self.audio_cue_reliability) {
            return bad(format!("audio_cue_reliability must be in [0, 1], got {}", self.audio_cue_reliability));
        }
        let [lo, hi] = self.visual_contrast;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return bad(format!(
                "visual_contrast must be finite with 0 <= low <= high, got {:?}",
                self.visual_contrast
            ));
        }
        if !(self.visual_noise.is_finite() && self.visual_noise >= 0.0) {
            return bad(format!("visual_noise must be finite and >= 0, got {}", self.visual_noise));
        }
        Ok(())
    }
}
