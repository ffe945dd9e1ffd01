//! AV-digits: spoken digits (FSDD) paired with handwritten digits (MNIST) of the same label, with
//! documented degradations so that neither modality alone solves the task.
//!
//! ```text
//! <root>/fsdd/recordings/{digit}_{speaker}_{index}.wav     (8 kHz mono PCM16)
//! <root>/mnist/{train,t10k}-images-idx3-ubyte[.gz]
//! <root>/mnist/{train,t10k}-labels-idx1-ubyte[.gz]
//! ```
//! - Split: `official` (FSDD README: indices 0–4 of every digit/speaker are the test set) or
//!   `speakers` (the `test_speakers` form the test set, everyone else trains: speaker-disjoint).
//!   Train recordings are paired with MNIST training images, test recordings with MNIST test
//!   images.
//! - Pairing: for every class, the MNIST images of that class are shuffled with a generator
//!   seeded by `(seed, split, class)`; the k-th recording of the class (recordings sorted by
//!   digit, speaker, index) gets the k-th image (`images_per_audio` > 1 pairs each recording with
//!   that many distinct images).
//! - `audio` `[1, F, T]`: decode → resample to `sample_rate` (FSDD is already 8 kHz) → placed in
//!   a window of `clip_seconds` (zero padding; centred at evaluation, seeded-random position in
//!   training; longer clips are cropped likewise) → white Gaussian noise at `snr_db` relative to
//!   the recording's own power → log-magnitude STFT (`n_fft`, `hop`, Hann, centred) → per-clip
//!   z-score. Defaults: 8 kHz, 1 s, n_fft 128, hop 128 → `[1, 65, 63]`.
//! - `visual` `[1, 1, 28, 28]` (C, T, H, W): pixels / 255 → box-downsampled to
//!   `downsample × downsample` and bilinearly upsampled back (blur) → a `occlusion × occlusion`
//!   square set to 0 at a random position → Gaussian noise of std `image_noise` → normalised with
//!   MNIST's mean/std (0.1307, 0.3081).
//! - The noise, the occluder position and the pairing are fixed per item (a function of `seed`
//!   and the recording's file name), so evaluation is deterministic and a cache stays valid;
//!   `Mode::Train` only moves the recording inside its window.
//!
//! docs/datasets.md gives the measured per-modality and concatenation accuracies of the defaults.

use crate::limits::LimitExt;
use std::path::{Path, PathBuf};

use dgl_core::rng::Rng;
use serde::{Deserialize, Serialize};

use super::fsutil::{check_file, list_dir};
use super::idx::{parse_idx_images, parse_idx_labels, read_maybe_gz};
use super::report::Report;
use crate::audio;
use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};
use crate::limits;
use crate::spectrogram::{Padding, SpectrogramRecipe, Window};

/// MNIST pixel mean / std (of x / 255).
pub const MNIST_MEAN: f32 = 0.1307;
pub const MNIST_STD: f32 = 0.3081;
/// Side of an MNIST image.
pub const MNIST_SIDE: usize = 28;

/// How FSDD is split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsddSplit {
    /// Recording indices 0–4 are the test set (the FSDD README's split; speakers overlap).
    #[default]
    Official,
    /// `test_speakers` are the test set (speaker-disjoint).
    Speakers,
}

/// AV-digits settings (see the module docs for what each does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvDigitsOptions {
    pub split: FsddSplit,
    /// Test speakers of [`FsddSplit::Speakers`].
    pub test_speakers: Vec<String>,
    /// Seed of the pairing and of the per-item degradations.
    pub seed: u64,
    pub sample_rate: u32,
    pub clip_seconds: f64,
    pub n_fft: usize,
    pub hop: usize,
    /// Signal-to-noise ratio of the added audio noise, dB (`None`: no noise).
    pub snr_db: Option<f64>,
    /// Std of the Gaussian pixel noise (pixels in [0, 1]).
    pub image_noise: f64,
    /// Side of the zeroed square, pixels (0: none).
    pub occlusion: usize,
    /// Side the image is box-downsampled to before being upsampled back (28: none).
    pub downsample: usize,
    /// MNIST images paired with each recording (the dataset has this many items per recording).
    pub images_per_audio: usize,
}

impl Default for AvDigitsOptions {
    fn default() -> Self {
        Self {
            split: FsddSplit::Official,
            test_speakers: vec!["theo".into()],
            seed: 0,
            sample_rate: 8000,
            clip_seconds: 1.0,
            n_fft: 128,
            hop: 128,
            snr_db: Some(-2.0),
            image_noise: 0.5,
            occlusion: 10,
            downsample: 12,
            images_per_audio: 1,
        }
    }
}

impl AvDigitsOptions {
    /// No degradation at all (clean FSDD + MNIST).
    pub fn clean() -> Self {
        Self { snr_db: None, image_noise: 0.0, occlusion: 0, downsample: MNIST_SIDE, ..Self::default() }
    }

    /// The spectrogram front-end.
    pub fn recipe(&self) -> SpectrogramRecipe {
        let n = (self.clip_seconds * self.sample_rate as f64).round() as usize;
        let mut r =
            SpectrogramRecipe::generic(self.sample_rate, n, self.n_fft, self.hop, Window::Hann, Some(Padding::Reflect));
        r.name = "av-digits".into();
        r.zscore = true;
        r
    }

    /// Checks every setting against its range and [`limits`] (errors name `av_digits.<key>`).
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(format!("av_digits: {m}")));
        limits::check_sample_rate(self.sample_rate as u64, "av_digits.sample_rate")
            .and_then(|_| limits::N_FFT.check_usize(self.n_fft, "av_digits.n_fft"))
            .and_then(|_| limits::N_FFT.check_usize(self.hop, "av_digits.hop"))
            .and_then(|_| limits::IMAGES_PER_AUDIO.check_usize(self.images_per_audio, "av_digits.images_per_audio"))
            .map_err(DataError::Invalid)?;
        if !(self.clip_seconds > 0.0 && self.clip_seconds <= 60.0) {
            return bad(format!("clip_seconds must be in (0, 60], got {}", self.clip_seconds));
        }
        if self.n_fft < 2 || self.hop == 0 {
            return bad(format!("n_fft {} / hop {} out of range (n_fft ≥ 2, hop ≥ 1)", self.n_fft, self.hop));
        }
        if self.recipe().n_samples <= self.n_fft / 2 {
            return bad("clip shorter than half a window".into());
        }
        if self.snr_db.is_some_and(|s| !s.is_finite()) || !(self.image_noise.is_finite() && self.image_noise >= 0.0) {
            return bad("snr_db / image_noise must be finite (image_noise ≥ 0)".into());
        }
        if self.occlusion > MNIST_SIDE || self.downsample == 0 || self.downsample > MNIST_SIDE {
            return bad(format!(
                "occlusion {} must be ≤ 28 and downsample {} in 1..=28",
                self.occlusion, self.downsample
            ));
        }
        if self.images_per_audio == 0 {
            return bad("images_per_audio must be ≥ 1".into());
        }
        self.recipe().check("av_digits.")?;
        if self.split == FsddSplit::Speakers && self.test_speakers.is_empty() {
            return bad("the speakers split needs test_speakers".into());
        }
        Ok(())
    }
}

/// A parsed FSDD file name `{digit}_{speaker}_{index}.wav`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FsddName {
    pub digit: u8,
    pub speaker: String,
    pub index: u32,
}

/// Parses `{digit}_{speaker}_{index}.wav`.
pub fn parse_fsdd_name(name: &str) -> Option<FsddName> {
    let stem = name.strip_suffix(".wav")?;
    let mut parts = stem.splitn(3, '_');
    let d = parts.next()?;
    let speaker = parts.next()?;
    let idx = parts.next()?;
    if d.len() != 1 || speaker.is_empty() || idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digit = d.parse::<u8>().ok().filter(|&x| x <= 9)?;
    Some(FsddName { digit, speaker: speaker.to_string(), index: idx.parse().ok()? })
}

/// One item: a recording and the image paired with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvDigitsItem {
    pub audio: PathBuf,
    pub name: FsddName,
    /// Index of the paired image in the MNIST split file.
    pub mnist_index: usize,
    /// Which of the `images_per_audio` pairings this is.
    pub repeat: usize,
    /// Seed of this item's degradations.
    pub seed: u64,
}

/// One split of AV-digits.
pub struct AvDigits {
    split: Split,
    opts: AvDigitsOptions,
    recipe: SpectrogramRecipe,
    items: Vec<AvDigitsItem>,
    /// Paired images, 784 bytes each, in item order.
    images: Vec<u8>,
    report: Report,
}

const STREAM_AUDIO_NOISE: u64 = 0xA_0015E;
const STREAM_IMAGE: u64 = 0x1_11A6E;
const STREAM_SHIFT: u64 = 0x5_41F7;

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The MNIST files of a split: `(images, labels)`, preferring `.gz`.
pub fn mnist_files(root: &Path, split: Split) -> (PathBuf, PathBuf) {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let dir = root.join("mnist");
    let pick = |base: String| {
        let gz = dir.join(format!("{base}.gz"));
        if gz.exists() || !dir.join(&base).exists() {
            gz
        } else {
            dir.join(base)
        }
    };
    (pick(format!("{prefix}-images-idx3-ubyte")), pick(format!("{prefix}-labels-idx1-ubyte")))
}

impl AvDigits {
    /// Opens one split. Without `skip_bad`, a recording whose name does not parse or whose file
    /// is empty is an error; with it, such recordings are counted in the report.
    pub fn open(root: &Path, split: Split, opts: &AvDigitsOptions, skip_bad: bool, verify: bool) -> Result<Self> {
        opts.check()?;
        let mut report = Report::new((0..10).map(|d| d.to_string()).collect());
        report.touch(split);
        let rec_dir = root.join("fsdd").join("recordings");
        let mut recs: Vec<(FsddName, PathBuf)> = Vec::new();
        for e in list_dir(&rec_dir)? {
            if e.is_dir || !e.name.to_ascii_lowercase().ends_with(".wav") {
                report.notes.push(format!("{}: not a .wav recording, left out", e.path.display()));
                continue;
            }
            let name = match parse_fsdd_name(&e.name) {
                Some(n) => n,
                None => {
                    let err = DataError::bad_file(&e.path, "file name is not {digit}_{speaker}_{index}.wav");
                    if skip_bad {
                        report.record_problem(split, None, &e.name, &err);
                        continue;
                    }
                    return Err(err);
                }
            };
            let is_test = match opts.split {
                FsddSplit::Official => name.index <= 4,
                FsddSplit::Speakers => opts.test_speakers.contains(&name.speaker),
            };
            if is_test != (split == Split::Test) {
                continue;
            }
            if let Err(err) = check_file(&e.path) {
                if skip_bad {
                    report.record_problem(split, Some(name.digit as u32), &e.name, &err);
                    continue;
                }
                return Err(err);
            }
            recs.push((name, e.path));
        }
        if opts.split == FsddSplit::Speakers {
            for s in &opts.test_speakers {
                if !recs.iter().any(|(n, _)| &n.speaker == s) && split == Split::Test {
                    return Err(DataError::bad_file(&rec_dir, format!("test speaker {s:?} has no recordings")));
                }
            }
        }
        recs.sort();

        let (img_path, lab_path) = mnist_files(root, split);
        let images = parse_idx_images(&read_maybe_gz(&img_path)?, &img_path)?;
        if (images.rows, images.cols) != (MNIST_SIDE, MNIST_SIDE) {
            return Err(DataError::bad_file(
                &img_path,
                format!("images are {} × {}, expected 28 × 28", images.rows, images.cols),
            ));
        }
        let labels = parse_idx_labels(&read_maybe_gz(&lab_path)?, &lab_path, 10)?;
        if labels.len() != images.count {
            return Err(DataError::bad_file(
                &lab_path,
                format!("{} labels for {} images in {}", labels.len(), images.count, img_path.display()),
            ));
        }
        let mut pools: Vec<Vec<usize>> = vec![Vec::new(); 10];
        for (i, &l) in labels.iter().enumerate() {
            pools[l as usize].push(i);
        }
        for (c, pool) in pools.iter_mut().enumerate() {
            if pool.is_empty() {
                return Err(DataError::bad_file(&lab_path, format!("no image of digit {c}")));
            }
            Rng::derive(opts.seed, 0x9A1B_0000 + split.id() * 16 + c as u64).shuffle(pool);
        }
        let mut used = [0usize; 10];
        let mut items = Vec::with_capacity(recs.len() * opts.images_per_audio);
        let mut pixels = Vec::with_capacity(recs.len() * opts.images_per_audio * MNIST_SIDE * MNIST_SIDE);
        for (name, path) in recs {
            let c = name.digit as usize;
            for r in 0..opts.images_per_audio {
                let mi = pools[c][used[c] % pools[c].len()];
                used[c] += 1;
                let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                let seed = Rng::derive(opts.seed ^ fnv1a(file), r as u64).next_u64();
                pixels.extend_from_slice(images.image(mi));
                items.push(AvDigitsItem { audio: path.clone(), name: name.clone(), mnist_index: mi, repeat: r, seed });
            }
        }
        let mut me = Self { split, recipe: opts.recipe(), opts: opts.clone(), items, images: pixels, report };
        if verify {
            use rayon::prelude::*;
            let res: Vec<Result<()>> =
                (0..me.items.len()).into_par_iter().map(|i| me.audio_features(i, None).map(|_| ())).collect();
            let mut keep = Vec::new();
            let mut keep_px = Vec::new();
            let n = MNIST_SIDE * MNIST_SIDE;
            for (i, r) in res.into_iter().enumerate() {
                match r {
                    Ok(()) => {
                        keep.push(me.items[i].clone());
                        keep_px.extend_from_slice(&me.images[i * n..(i + 1) * n]);
                    }
                    Err(e) if skip_bad => {
                        let it = &me.items[i];
                        let f = it.audio.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
                        me.report.record_problem(split, Some(it.name.digit as u32), f, &e);
                    }
                    Err(e) => return Err(e),
                }
            }
            me.items = keep;
            me.images = keep_px;
        }
        super::require_samples(me.items.len(), split, &rec_dir, &me.report)?;
        for it in &me.items {
            me.report.record_ok(split, it.name.digit as u32);
        }
        Ok(me)
    }

    pub fn split(&self) -> Split {
        self.split
    }
    pub fn options(&self) -> &AvDigitsOptions {
        &self.opts
    }
    pub fn items(&self) -> &[AvDigitsItem] {
        &self.items
    }
    pub fn report(&self) -> &Report {
        &self.report
    }
    /// The audio front-end.
    pub fn recipe(&self) -> &SpectrogramRecipe {
        &self.recipe
    }

    fn item(&self, index: usize) -> Result<&AvDigitsItem> {
        self.items.get(index).ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for an av-digits split of {}", self.items.len()))
        })
    }

    /// The raw (undegraded) image of item `index`, 784 bytes.
    pub fn raw_image(&self, index: usize) -> Result<&[u8]> {
        self.item(index)?;
        let n = MNIST_SIDE * MNIST_SIDE;
        Ok(&self.images[index * n..(index + 1) * n])
    }

    /// The noisy waveform in its window (before the STFT); `shift_rng` moves the recording
    /// (training), `None` centres it.
    pub fn waveform(&self, index: usize, shift_rng: Option<&mut Rng>) -> Result<Vec<f32>> {
        let it = self.item(index)?;
        let (x, _) = audio::load(&it.audio, Some(self.opts.sample_rate))?;
        let n = self.recipe.n_samples;
        let mut w = vec![0.0f32; n];
        let span = x.len().abs_diff(n);
        let off = match shift_rng {
            Some(r) => r.below(span + 1),
            None => span / 2,
        };
        if x.len() <= n {
            w[off..off + x.len()].copy_from_slice(&x);
        } else {
            w.copy_from_slice(&x[off..off + n]);
        }
        if let Some(snr) = self.opts.snr_db {
            let p = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
            let sd = (p / 10f64.powf(snr / 10.0)).sqrt();
            let mut rng = Rng::derive(it.seed, STREAM_AUDIO_NOISE);
            for v in &mut w {
                *v += (sd * rng.normal()) as f32;
            }
        }
        Ok(w)
    }

    /// The spectrogram of item `index`, `[1, F, T]` flattened.
    pub fn audio_features(&self, index: usize, shift_rng: Option<&mut Rng>) -> Result<Vec<f32>> {
        let w = self.waveform(index, shift_rng)?;
        let s = self.recipe.compute(&w)?;
        if s.iter().any(|v| !v.is_finite()) {
            return Err(DataError::bad_file(
                &self.item(index)?.audio,
                "spectrogram has non-finite values (silent recording?)",
            ));
        }
        Ok(s)
    }

    /// The degraded, normalised image of item `index`, `[1, 1, 28, 28]` flattened.
    pub fn visual_features(&self, index: usize) -> Result<Vec<f32>> {
        let it = self.item(index)?;
        let raw = self.raw_image(index)?;
        Ok(degrade_image(raw, &self.opts, &mut Rng::derive(it.seed, STREAM_IMAGE)))
    }
}

/// The image degradations of AV-digits on a 28 × 28 image (see the module docs).
pub fn degrade_image(raw: &[u8], o: &AvDigitsOptions, rng: &mut Rng) -> Vec<f32> {
    let s = MNIST_SIDE;
    let mut x: Vec<f32> = raw.iter().map(|&p| p as f32 / 255.0).collect();
    if o.downsample < s {
        x = upsample_bilinear(&box_downsample(&x, s, o.downsample), o.downsample, s);
    }
    if o.occlusion > 0 {
        let top = rng.below(s - o.occlusion + 1);
        let left = rng.below(s - o.occlusion + 1);
        for r in top..top + o.occlusion {
            x[r * s + left..r * s + left + o.occlusion].iter_mut().for_each(|v| *v = 0.0);
        }
    }
    if o.image_noise > 0.0 {
        for v in &mut x {
            *v += (o.image_noise * rng.normal()) as f32;
        }
    }
    x.iter_mut().for_each(|v| *v = (*v - MNIST_MEAN) / MNIST_STD);
    x
}

/// Area-average resize of a square `n × n` image to `m × m` (m ≤ n).
fn box_downsample(x: &[f32], n: usize, m: usize) -> Vec<f32> {
    let scale = n as f64 / m as f64;
    // Weight of input cell i in output cell o along one axis.
    let w = |o: usize, i: usize| -> f64 {
        let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
        ((i + 1) as f64).min(b) - (i as f64).max(a)
    };
    let mut out = vec![0.0f32; m * m];
    for oy in 0..m {
        let y0 = (oy as f64 * scale).floor() as usize;
        let y1 = (((oy + 1) as f64 * scale).ceil() as usize).min(n);
        for ox in 0..m {
            let x0 = (ox as f64 * scale).floor() as usize;
            let x1 = (((ox + 1) as f64 * scale).ceil() as usize).min(n);
            let mut acc = 0.0;
            for iy in y0..y1 {
                let wy = w(oy, iy);
                if wy <= 0.0 {
                    continue;
                }
                for ix in x0..x1 {
                    let wx = w(ox, ix);
                    if wx > 0.0 {
                        acc += wy * wx * x[iy * n + ix] as f64;
                    }
                }
            }
            out[oy * m + ox] = (acc / (scale * scale)) as f32;
        }
    }
    out
}

/// Bilinear resize of a square `m × m` image to `n × n` (align_corners = false).
fn upsample_bilinear(x: &[f32], m: usize, n: usize) -> Vec<f32> {
    let scale = m as f64 / n as f64;
    let coord = |o: usize| -> (usize, usize, f32) {
        let c = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (m - 1) as f64);
        let i0 = c.floor() as usize;
        let i1 = (i0 + 1).min(m - 1);
        (i0, i1, (c - i0 as f64) as f32)
    };
    let mut out = vec![0.0f32; n * n];
    for oy in 0..n {
        let (y0, y1, fy) = coord(oy);
        for ox in 0..n {
            let (x0, x1, fx) = coord(ox);
            let top = x[y0 * m + x0] * (1.0 - fx) + x[y0 * m + x1] * fx;
            let bot = x[y1 * m + x0] * (1.0 - fx) + x[y1 * m + x1] * fx;
            out[oy * n + ox] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

impl Dataset for AvDigits {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn num_classes(&self) -> usize {
        10
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["audio".into(), "visual".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let (f, t) = self.recipe.shape();
        vec![vec![1, f, t], vec![1, 1, MNIST_SIDE, MNIST_SIDE]]
    }
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.item(index)?.name.digit as u32)
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        let label = self.label(index)?;
        let a = match mode {
            Mode::Train { seed } => self.audio_features(index, Some(&mut Rng::derive(seed, STREAM_SHIFT)))?,
            Mode::Eval => self.audio_features(index, None)?,
        };
        let v = self.visual_features(index)?;
        Ok(Example { modalities: vec![a, v], label, label_map: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_strictly() {
        assert_eq!(parse_fsdd_name("3_theo_49.wav"), Some(FsddName { digit: 3, speaker: "theo".into(), index: 49 }));
        for bad in ["3_theo.wav", "10_theo_1.wav", "a_theo_1.wav", "3__1.wav", "3_theo_x.wav", "3_theo_1.mp3"] {
            assert_eq!(parse_fsdd_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn resizing_preserves_constants_and_mean() {
        let x = vec![0.5f32; 28 * 28];
        let d = box_downsample(&x, 28, 10);
        assert!(d.iter().all(|v| (v - 0.5).abs() < 1e-6));
        let u = upsample_bilinear(&d, 10, 28);
        assert!(u.iter().all(|v| (v - 0.5).abs() < 1e-6));
        let y: Vec<f32> = (0..28 * 28).map(|i| (i % 7) as f32).collect();
        let d = box_downsample(&y, 28, 14);
        let (m0, m1) = (y.iter().sum::<f32>() / 784.0, d.iter().sum::<f32>() / 196.0);
        assert!((m0 - m1).abs() < 1e-4);
    }

    #[test]
    fn degradation_is_seeded() {
        let raw: Vec<u8> = (0..784).map(|i| (i % 256) as u8).collect();
        let o = AvDigitsOptions::default();
        let a = degrade_image(&raw, &o, &mut Rng::new(1));
        assert_eq!(a, degrade_image(&raw, &o, &mut Rng::new(1)));
        assert_ne!(a, degrade_image(&raw, &o, &mut Rng::new(2)));
        let c = degrade_image(&raw, &AvDigitsOptions::clean(), &mut Rng::new(1));
        assert!((c[5] - (5.0 / 255.0 - MNIST_MEAN) / MNIST_STD).abs() < 1e-6);
    }
}
