//! The embedded three-modality sequence set (`kind = "synthetic-sequences"`): the default of the
//! MLP-Mixer half of Table 2, shaped like MOSI's unaligned features — `audio` (T 24, D 5),
//! `visual` (T 16, D 20), `text` (T 10, D 16), in the paper's column order — with two classes
//! (MOSI's negative / positive).
//!
//! Every step of every modality is N(0, 1) noise; the label y ∈ {0, 1}, s = 2y − 1, shows as:
//!
//! * `text`, the dominant, easy cue: s_t · `text_shift` added along one fixed unit direction at
//!   every step, where s_t = s with probability `text_reliability`, else −s. Linear in the
//!   sequence mean and strong, so it is learned first; but text alone cannot beat
//!   `text_reliability` (its Bayes ceiling).
//! * `audio`: a sinusoid over time in channels 0..3, one cycle over the clip for y = 0, two for
//!   y = 1 (random phase), amplitude `audio_amplitude`. Its time mean is 0 — only the temporal
//!   pattern tells the class (what sequence mixing is for) — and it is always right.
//! * `visual`: a burst s · `visual_amplitude` along another fixed direction in a random window of
//!   4 consecutive steps; always right, but diluted by the other 12 steps.
//!
//! Audio and visual are reliable where text lies: fused, the three reach well above text alone,
//! and a model that settles on the early text cue (modality imbalance) leaves the rest unlearnt.
//! What it cannot show: anything about real language, prosody or faces, or the balance of real
//! MOSI (where text is strongest and audio is near chance). A sample is a pure function of
//! `(config, split, index)`; no augmentation.

use dgl_core::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};
use crate::synthetic::config::check_split_sizes;

/// Number of classes (negative / positive).
pub const NUM_CLASSES: usize = 2;

/// (name, T, D) of the modalities, in order.
pub const MODALITIES: [(&str, usize, usize); 3] = [("audio", 24, 5), ("visual", 16, 20), ("text", 10, 16)];

const STREAM_LABELS: u64 = 0x1abe1;
const STREAM_DIRECTIONS: u64 = 0xd1ec;
const VISUAL_WINDOW: usize = 4;

/// Everything that defines the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceSetConfig {
    pub seed: u64,
    pub n_train: usize,
    pub n_test: usize,
    /// Probability that the text cue points to the right class (text's Bayes ceiling).
    pub text_reliability: f64,
    /// Size of the text shift (in noise standard deviations, along a unit direction).
    pub text_shift: f64,
    /// Amplitude of the audio sinusoid.
    pub audio_amplitude: f64,
    /// Size of the visual burst (along a unit direction).
    pub visual_amplitude: f64,
}

impl Default for SequenceSetConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            n_train: 1200,
            n_test: 400,
            text_reliability: 0.75,
            text_shift: 1.5,
            audio_amplitude: 0.4,
            visual_amplitude: 1.2,
        }
    }
}

impl SequenceSetConfig {
    /// Split sizes in `1..=`[`crate::synthetic::config::MAX_SAMPLES`], the reliability a probability, amplitudes finite and
    /// non-negative; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        check_split_sizes(self.n_train, self.n_test)?;
        if !(0.0..=1.0).contains(&self.text_reliability) {
            return bad(format!("text_reliability must be in [0, 1], got {}", self.text_reliability));
        }
        for (key, v) in [
            ("text_shift", self.text_shift),
            ("audio_amplitude", self.audio_amplitude),
            ("visual_amplitude", self.visual_amplitude),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{key} must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// One split of the generated sequence set (every sample generated at construction).
pub struct SyntheticSequences {
    labels: Vec<u32>,
    samples: Vec<Vec<Vec<f32>>>,
}

/// A unit vector of `d` entries drawn from `rng`.
fn unit(rng: &mut Rng, d: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / n).collect()
}

impl SyntheticSequences {
    pub fn new(cfg: &SequenceSetConfig, split: Split) -> Result<Self> {
        cfg.validate()?;
        let n = match split {
            Split::Train => cfg.n_train,
            Split::Test => cfg.n_test,
        };
        let split_seed = Rng::derive(cfg.seed, 0x5EED_0000 + split.id()).next_u64();
        let mut labels: Vec<u32> = (0..n).map(|i| (i % NUM_CLASSES) as u32).collect();
        Rng::derive(split_seed, STREAM_LABELS).shuffle(&mut labels);
        // The cue directions belong to the task: the same in both splits.
        let mut dirs = Rng::derive(cfg.seed, STREAM_DIRECTIONS);
        let (text_dir, visual_dir) = (unit(&mut dirs, MODALITIES[2].2), unit(&mut dirs, MODALITIES[1].2));
        let samples = labels
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let mut rng = Rng::derive(split_seed, i as u64);
                generate(cfg, y, &text_dir, &visual_dir, &mut rng)
            })
            .collect();
        Ok(Self { labels, samples })
    }
}

/// (audio, visual, text) of one sample of label `y`, each (T, D) row-major.
fn generate(cfg: &SequenceSetConfig, y: u32, text_dir: &[f64], visual_dir: &[f64], rng: &mut Rng) -> Vec<Vec<f32>> {
    let s = if y == 1 { 1.0 } else { -1.0 };
    let mut noise = |t: usize, d: usize| -> Vec<f64> { (0..t * d).map(|_| rng.normal()).collect() };
    let [(_, ta, da), (_, tv, dv), (_, tt, dt)] = MODALITIES;
    let (mut text, mut audio, mut visual) = (noise(tt, dt), noise(ta, da), noise(tv, dv));
    let s_text = if rng.uniform() < cfg.text_reliability { s } else { -s };
    for step in text.chunks_mut(dt) {
        for (v, u) in step.iter_mut().zip(text_dir) {
            *v += s_text * cfg.text_shift * u;
        }
    }
    let cycles = if y == 1 { 2.0 } else { 1.0 };
    let phase = rng.uniform() * std::f64::consts::TAU;
    for (k, step) in audio.chunks_mut(da).enumerate() {
        let wave = (std::f64::consts::TAU * cycles * k as f64 / ta as f64 + phase).sin();
        for v in step.iter_mut().take(3) {
            *v += cfg.audio_amplitude * wave;
        }
    }
    let start = rng.below(tv - VISUAL_WINDOW + 1);
    for step in visual.chunks_mut(dv).skip(start).take(VISUAL_WINDOW) {
        for (v, u) in step.iter_mut().zip(visual_dir) {
            *v += s * cfg.visual_amplitude * u;
        }
    }
    [audio, visual, text].into_iter().map(|m| m.into_iter().map(|v| v as f32).collect()).collect()
}

impl Dataset for SyntheticSequences {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        NUM_CLASSES
    }
    fn modality_names(&self) -> Vec<String> {
        MODALITIES.iter().map(|(n, _, _)| n.to_string()).collect()
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        MODALITIES.iter().map(|&(_, t, d)| vec![t, d]).collect()
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.labels.get(index).copied().ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a split of {}", self.labels.len()))
        })
    }
    fn get(&self, index: usize, _mode: Mode) -> Result<Example> {
        let label = self.label(index)?;
        Ok(Example { modalities: self.samples[index].clone(), label, label_map: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    /// Each cue is where the module doc says, at the strength it says: the text cue agrees with
    /// the label at about `text_reliability`, the audio's class shows in its frequency (not its
    /// mean), the visual burst's sign matches the label; and the set is deterministic.
    #[test]
    fn the_cues_are_as_documented() {
        let cfg = SequenceSetConfig { n_train: 800, ..SequenceSetConfig::default() };
        let ds = SyntheticSequences::new(&cfg, Split::Train).unwrap();
        assert_eq!(ds.modality_shapes(), [vec![24, 5], vec![16, 20], vec![10, 16]]);
        let mut dirs = Rng::derive(cfg.seed, STREAM_DIRECTIONS);
        let (td, vd) = (unit(&mut dirs, 16), unit(&mut dirs, 20));
        let project = |x: &[f32], u: &[f64]| -> Vec<f64> {
            x.chunks(u.len()).map(|s| s.iter().zip(u).map(|(a, b)| *a as f64 * b).sum()).collect()
        };
        let (mut text_ok, mut visual_ok, mut audio_ok) = (0, 0, 0);
        for i in 0..ds.len() {
            let e = ds.get(i, Mode::Eval).unwrap();
            let s = if e.label == 1 { 1.0 } else { -1.0 };
            text_ok += (mean(&project(&e.modalities[2], &td)) * s > 0.0) as usize;
            let v = project(&e.modalities[1], &vd);
            let best = (0..=12).map(|k| mean(&v[k..k + 4])).max_by(|a, b| a.abs().total_cmp(&b.abs())).unwrap();
            visual_ok += (best * s > 0.0) as usize;
            // Audio: energy at 1 vs 2 cycles of the channel-0..3 mean (a DFT at two bins).
            let a: Vec<f64> =
                e.modalities[0].chunks(5).map(|s| s[..3].iter().map(|v| *v as f64).sum::<f64>()).collect();
            let power = |c: f64| {
                let (re, im) = a.iter().enumerate().fold((0.0, 0.0), |(re, im), (k, v)| {
                    let w = std::f64::consts::TAU * c * k as f64 / 24.0;
                    (re + v * w.cos(), im + v * w.sin())
                });
                re * re + im * im
            };
            audio_ok += ((power(2.0) > power(1.0)) == (e.label == 1)) as usize;
        }
        let acc = |k: usize| k as f64 / ds.len() as f64;
        eprintln!("cue detectors: text {} audio {} visual {}", acc(text_ok), acc(audio_ok), acc(visual_ok));
        assert!((acc(text_ok) - 0.75).abs() < 0.06, "text {}", acc(text_ok));
        assert!(acc(audio_ok) > 0.8, "audio {}", acc(audio_ok));
        assert!(acc(visual_ok) > 0.8, "visual {}", acc(visual_ok));
        let again = SyntheticSequences::new(&cfg, Split::Train).unwrap();
        assert_eq!(again.get(7, Mode::Eval).unwrap().modalities, ds.get(7, Mode::Eval).unwrap().modalities);
        let test = SyntheticSequences::new(&cfg, Split::Test).unwrap();
        assert_ne!(test.get(0, Mode::Eval).unwrap().modalities, ds.get(0, Mode::Eval).unwrap().modalities);
        assert_eq!(ds.labels.iter().filter(|&&y| y == 1).count(), 400);
    }

    #[test]
    fn bad_settings_are_refused_by_key() {
        let e = SequenceSetConfig { text_reliability: 1.5, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("text_reliability"));
        let e = SequenceSetConfig { n_test: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("n_test"));
        let e = SequenceSetConfig { audio_amplitude: f64::NAN, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("audio_amplitude"));
    }
}
