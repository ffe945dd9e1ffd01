//! The embedded default dataset: a seeded, generated audio-visual classification task with
//! K = 6 classes that needs no files (see `docs/data.md` in the repository).
//!
//! - `audio`: a real waveform (class-pair tone + unreliable within-pair noise burst + noise) passed
//!   through the same spectrogram front-end as real audio → `[1, F, T]`.
//! - `visual`: one image per clip (class-oriented grating in clutter and noise, faint class tint),
//!   ImageNet-normalised → `[3, 1, H, W]`.
//!
//! Audio identifies the class *pair* easily and the class within the pair only with probability
//! ≈ `audio_cue_reliability`; the image identifies the class but is noisier and needs learned
//! spatial features. Each modality alone is clearly below the fused optimum, and the easy audio
//! cue dominates early training.
//!
//! A sample is a pure function of `(config, split, index)` (plus the augmentation seed in
//! `Mode::Train`).

pub mod audio_gen;
pub mod config;
pub mod rgbd;
pub mod sequences;
pub mod visual_gen;

use dgl_core::rng::Rng;
use rayon::prelude::*;

pub use config::{SyntheticConfig, SyntheticPreset};

use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};
use crate::spectrogram::SpectrogramRecipe;

/// Number of classes.
pub const NUM_CLASSES: usize = 6;

const STREAM_AUDIO: u64 = 1;
const STREAM_VISUAL: u64 = 2;
const STREAM_LABELS: u64 = 0x1abe1;

/// One split of the synthetic audio-visual dataset.
pub struct SyntheticAv {
    cfg: SyntheticConfig,
    split: Split,
    recipe: SpectrogramRecipe,
    labels: Vec<u32>,
    /// Tiny preset: (spectrogram, image) of every sample, generated at construction.
    cache: Option<Vec<(Vec<f32>, Vec<f32>)>>,
}

impl SyntheticAv {
    /// Builds a split. The tiny preset generates (in parallel) and caches every sample now; the
    /// paper preset generates samples on demand.
    pub fn new(cfg: SyntheticConfig, split: Split) -> Result<Self> {
        cfg.validate()?;
        let n = match split {
            Split::Train => cfg.n_train,
            Split::Test => cfg.n_test,
        };
        // Balanced labels (counts differ by at most one), in a seeded order.
        let mut labels: Vec<u32> = (0..n).map(|i| (i % NUM_CLASSES) as u32).collect();
        Rng::derive(Self::split_seed(&cfg, split), STREAM_LABELS).shuffle(&mut labels);
        let recipe = cfg.preset.recipe();
        let mut me = Self { cfg, split, recipe, labels, cache: None };
        if me.cfg.preset == SyntheticPreset::Tiny {
            let cache = (0..n).into_par_iter().map(|i| me.generate(i)).collect::<Result<Vec<_>>>()?;
            me.cache = Some(cache);
        }
        Ok(me)
    }

    fn split_seed(cfg: &SyntheticConfig, split: Split) -> u64 {
        Rng::derive(cfg.seed, 0x5EED_0000 + split.id()).next_u64()
    }

    fn sample_rng(&self, index: usize, stream: u64) -> Rng {
        let s = Rng::derive(Self::split_seed(&self.cfg, self.split), index as u64).next_u64();
        Rng::derive(s, stream)
    }

    pub fn config(&self) -> &SyntheticConfig {
        &self.cfg
    }
    pub fn split(&self) -> Split {
        self.split
    }
    /// The audio front-end used for the spectrograms.
    pub fn recipe(&self) -> &SpectrogramRecipe {
        &self.recipe
    }
    /// All labels of the split.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The raw waveform of sample `index` (before the front-end), at `recipe().sample_rate`.
    pub fn waveform(&self, index: usize) -> Result<Vec<f32>> {
        let y = self.checked_label(index)? as usize;
        let mut rng = self.sample_rng(index, STREAM_AUDIO);
        Ok(audio_gen::waveform(
            y,
            self.recipe.sample_rate,
            self.recipe.n_samples,
            self.cfg.audio_cue_reliability,
            &mut rng,
        ))
    }

    /// The image of sample `index`, normalised, `[3, 1, H, W]` flattened.
    pub fn image(&self, index: usize) -> Result<Vec<f32>> {
        let y = self.checked_label(index)? as usize;
        let mut rng = self.sample_rng(index, STREAM_VISUAL);
        Ok(visual_gen::image(
            y,
            self.cfg.preset.image_size(),
            self.cfg.visual_contrast,
            self.cfg.visual_noise,
            &mut rng,
        ))
    }

    fn checked_label(&self, index: usize) -> Result<u32> {
        self.labels.get(index).copied().ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a split of {}", self.labels.len()))
        })
    }

    /// Generates (spectrogram, image) of sample `index` without augmentation.
    fn generate(&self, index: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let spec = self.recipe.compute(&self.waveform(index)?)?;
        Ok((spec, self.image(index)?))
    }

    /// Light augmentation: audio gain (±2 dB, added to the log-magnitude; exact wherever
    /// |S| ≫ 1e-7), circular time shift of up to T/8 frames; circular image translation of up to
    /// H/8 pixels (orientation, the visual class cue, is translation-invariant; no flips, which
    /// would change the orientation).
    fn augment(&self, spec: &mut [f32], img: &mut [f32], seed: u64) {
        let mut rng = Rng::new(seed);
        let (f, t) = self.recipe.shape();
        let gain = (rng.uniform_range(-2.0, 2.0) / 20.0 * std::f64::consts::LN_10) as f32;
        let shift = rng.below(t / 8 * 2 + 1) as isize - (t / 8) as isize;
        let mut row = vec![0.0f32; t];
        for k in 0..f {
            let r = &mut spec[k * t..(k + 1) * t];
            for (j, v) in r.iter().enumerate() {
                row[(j as isize + shift).rem_euclid(t as isize) as usize] = *v + gain;
            }
            r.copy_from_slice(&row);
        }
        let s = self.cfg.preset.image_size();
        let m = s / 8;
        let dx = rng.below(2 * m + 1) as isize - m as isize;
        let dy = rng.below(2 * m + 1) as isize - m as isize;
        let mut plane = vec![0.0f32; s * s];
        for c in 0..3 {
            let p = &mut img[c * s * s..(c + 1) * s * s];
            for y in 0..s {
                let ty = (y as isize + dy).rem_euclid(s as isize) as usize;
                for x in 0..s {
                    let tx = (x as isize + dx).rem_euclid(s as isize) as usize;
                    plane[ty * s + tx] = p[y * s + x];
                }
            }
            p.copy_from_slice(&plane);
        }
    }
}

impl Dataset for SyntheticAv {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        NUM_CLASSES
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["audio".into(), "visual".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let (f, t) = self.recipe.shape();
        let s = self.cfg.preset.image_size();
        vec![vec![1, f, t], vec![3, 1, s, s]]
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.checked_label(index)
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        let label = self.checked_label(index)?;
        let (mut spec, mut img) = match &self.cache {
            Some(c) => c[index].clone(),
            None => self.generate(index)?,
        };
        if let (Mode::Train { seed }, true) = (mode, self.cfg.augment) {
            self.augment(&mut spec, &mut img, seed);
        }
        Ok(Example { modalities: vec![spec, img], label, label_map: None })
    }
}
