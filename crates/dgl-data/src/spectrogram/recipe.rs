//! Named spectrogram front-ends: the official loaders' recipes and a generic one.
//!
//! A [`SpectrogramRecipe`] turns a mono clip of exactly `n_samples` samples at `sample_rate` Hz
//! (see [`crate::audio::fit`] for tiling/cropping) into a row-major `[F, T]` `f32` array,
//! frequency rows first, like `librosa.stft` / `scipy.signal.spectrogram`.

use crate::limits::LimitExt;
use serde::{Deserialize, Serialize};

use std::cell::RefCell;

use super::stft::{Padding, Post, Stft, StftBuffers};
use super::window::Window;
use crate::error::{DataError, Result};
use crate::limits;

/// What is computed from the STFT.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpectrogramOutput {
    /// `log(|S| + eps)` (the official librosa loaders; `eps = 1e-7`).
    LogMagnitude { eps: f64 },
    /// scipy.signal.spectrogram's `mode='psd', scaling='density', return_onesided=True`:
    /// `P = |S|² / (fs · Σ w²)`, every bin except DC (and Nyquist for even `n_fft`) doubled;
    /// then `log(P + eps)`.
    LogPsdDensity { eps: f64 },
}

/// A complete spectrogram front-end for fixed-length clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrogramRecipe {
    /// Name for logs and configs (`librosa-cremad`, `librosa-ks`, `scipy-paper`, `generic`).
    pub name: String,
    /// Rate the clip must have, Hz.
    pub sample_rate: u32,
    /// Clip length in samples (after tiling/cropping).
    pub n_samples: usize,
    /// FFT length = window length.
    pub n_fft: usize,
    pub hop: usize,
    pub window: Window,
    /// `Some(padding)` = librosa `center=True`; `None` = no padding (scipy).
    pub center: Option<Padding>,
    /// Remove each frame's mean before windowing (scipy `detrend='constant'`).
    pub detrend: bool,
    pub output: SpectrogramOutput,
    /// Per-clip standardisation `(x − mean) / (std + 1e-9)` (population std) after the log.
    pub zscore: bool,
}

impl SpectrogramRecipe {
    /// Official CREMA-D loader: `librosa.load(sr=22050)`, 3 s (66150 samples),
    /// `stft(n_fft=512, hop_length=353)` (periodic Hann, `center=True`, reflect padding),
    /// `log(|S| + 1e-7)` → **257 × 188**.
    pub fn librosa_cremad() -> Self {
        Self {
            name: "librosa-cremad".into(),
            sample_rate: 22050,
            n_samples: 66150,
            n_fft: 512,
            hop: 353,
            window: Window::Hann,
            center: Some(Padding::Reflect),
            detrend: false,
            output: SpectrogramOutput::LogMagnitude { eps: 1e-7 },
            zscore: false,
        }
    }

    /// Official Kinetics-Sounds / VGGSound loader: 16 kHz, 5 s (80000 samples),
    /// `stft(n_fft=256, hop_length=128)`, `log(|S| + 1e-7)` → **129 × 626**.
    pub fn librosa_ks() -> Self {
        Self {
            name: "librosa-ks".into(),
            sample_rate: 16000,
            n_samples: 80000,
            n_fft: 256,
            hop: 128,
            ..Self::librosa_cremad()
        }
    }

    /// The paper's text (PMR-style): 16 kHz, `scipy.signal.spectrogram(x, fs, nperseg=512,
    /// noverlap=353)` (hop 159, periodic Tukey(0.25), `detrend='constant'`, one-sided PSD density),
    /// `log(S + 1e-7)`, per-clip z-score → **257 × 299** for 3 s (48000 samples); use
    /// [`with_n_samples`](Self::with_n_samples)`(160000)` for the 10 s, 257 × 1004 variant.
    pub fn scipy_paper() -> Self {
        Self {
            name: "scipy-paper".into(),
            sample_rate: 16000,
            n_samples: 48000,
            n_fft: 512,
            hop: 512 - 353,
            window: Window::Tukey(0.25),
            center: None,
            detrend: true,
            output: SpectrogramOutput::LogPsdDensity { eps: 1e-7 },
            zscore: true,
        }
    }

    /// A librosa-style front-end with any geometry: `log(|S| + 1e-7)`, no z-score, no detrending.
    /// Used by the embedded synthetic dataset.
    pub fn generic(
        sample_rate: u32,
        n_samples: usize,
        n_fft: usize,
        hop: usize,
        window: Window,
        center: Option<Padding>,
    ) -> Self {
        Self {
            name: "generic".into(),
            sample_rate,
            n_samples,
            n_fft,
            hop,
            window,
            center,
            detrend: false,
            output: SpectrogramOutput::LogMagnitude { eps: 1e-7 },
            zscore: false,
        }
    }

    /// One of the named presets: `librosa-cremad`, `librosa-ks`, `scipy-paper`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "librosa-cremad" => Ok(Self::librosa_cremad()),
            "librosa-ks" => Ok(Self::librosa_ks()),
            "scipy-paper" => Ok(Self::scipy_paper()),
            other => Err(DataError::Invalid(format!(
                "unknown spectrogram recipe {other:?} (known: librosa-cremad, librosa-ks, scipy-paper)"
            ))),
        }
    }

    /// The same recipe for clips of `n` samples.
    pub fn with_n_samples(mut self, n: usize) -> Self {
        self.n_samples = n;
        self
    }

    /// Checks every field before any work (nothing panics or allocates on a bad recipe): the rate
    /// within [`limits::SAMPLE_RATE`], `n_samples` in `1..=`[`limits::AUDIO_SAMPLES`], `n_fft` in
    /// `2..=`[`limits::N_FFT`], `hop` in `1..=`[`limits::N_FFT`], a Tukey fraction in [0, 1], a
    /// finite positive `eps`, a non-empty output of at most [`limits::SAMPLE_VALUES`] values.
    /// Errors name the key as `{prefix}{field}` (e.g. `recipe.hop`).
    pub fn check(&self, prefix: &str) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        let lim = |l: limits::Limit, v: usize, key: &str| l.check_usize(v, &format!("{prefix}{key}"));
        limits::check_sample_rate(self.sample_rate as u64, &format!("{prefix}sample_rate"))
            .and_then(|_| lim(limits::AUDIO_SAMPLES, self.n_samples, "n_samples"))
            .and_then(|_| lim(limits::N_FFT, self.n_fft, "n_fft"))
            .and_then(|_| lim(limits::N_FFT, self.hop, "hop"))
            .map_err(DataError::Invalid)?;
        if self.n_samples == 0 {
            return bad(format!("{prefix}n_samples must be at least 1"));
        }
        if self.n_fft < 2 {
            return bad(format!("{prefix}n_fft must be at least 2, got {}", self.n_fft));
        }
        if self.hop == 0 {
            return bad(format!("{prefix}hop must be at least 1, got 0"));
        }
        if let Window::Tukey(a) = self.window {
            if !(0.0..=1.0).contains(&a) {
                return bad(format!("{prefix}window: the Tukey taper fraction must be in [0, 1], got {a}"));
            }
        }
        let eps = match self.output {
            SpectrogramOutput::LogMagnitude { eps } | SpectrogramOutput::LogPsdDensity { eps } => eps,
        };
        if !(eps.is_finite() && eps > 0.0) {
            return bad(format!("{prefix}output: eps must be finite and > 0, got {eps}"));
        }
        let (f, t) = self.shape();
        if t == 0 {
            return bad(format!(
                "{prefix}n_samples {} is shorter than {prefix}n_fft {} without centring: empty spectrogram",
                self.n_samples, self.n_fft
            ));
        }
        limits::SAMPLE_VALUES
            .check_label((f as u64) * (t as u64), &format!("the {f} × {t} spectrogram of recipe {}", self.name))
            .map_err(DataError::Invalid)
    }

    /// The planned STFT of this recipe.
    pub fn stft(&self) -> Result<Stft> {
        Stft::new(self.n_fft, self.hop, self.window, self.center, self.detrend)
    }

    /// `(F, T)` of the output.
    pub fn shape(&self) -> (usize, usize) {
        let f = self.n_fft / 2 + 1;
        let t = match self.center {
            Some(_) => 1 + self.n_samples / self.hop,
            None if self.n_samples < self.n_fft => 0,
            None => (self.n_samples - self.n_fft) / self.hop + 1,
        };
        (f, t)
    }

    /// The spectrogram of a clip of exactly `n_samples` samples, row-major `[F, T]`.
    pub fn compute(&self, clip: &[f32]) -> Result<Vec<f32>> {
        if clip.len() != self.n_samples {
            return Err(DataError::Invalid(format!(
                "recipe {} expects {} samples, got {} (tile/crop with audio::fit first)",
                self.name,
                self.n_samples,
                clip.len()
            )));
        }
        self.compute_any_length(clip)
    }

    /// The linear quantity before the log, row-major `[F, T]` (computed in `f32`, returned as
    /// `f64`), for any clip length: `|S|` for [`SpectrogramOutput::LogMagnitude`], the one-sided PSD
    /// for [`SpectrogramOutput::LogPsdDensity`].
    pub fn linear(&self, clip: &[f32]) -> Result<Vec<f64>> {
        let out = self.with_stft(|stft, bufs| {
            let mut out = vec![0.0f32; stft.n_bins() * stft.n_frames(clip.len())];
            match self.output {
                SpectrogramOutput::LogMagnitude { .. } => stft.compute_into(clip, bufs, Post::Magnitude, &mut out)?,
                SpectrogramOutput::LogPsdDensity { .. } => {
                    let scale = self.psd_scale(stft);
                    stft.compute_into(clip, bufs, Post::ScaledPower { scale: &scale }, &mut out)?
                }
            }
            Ok(out)
        })?;
        Ok(out.into_iter().map(|v| v as f64).collect())
    }

    /// Like [`compute`](Self::compute) for any clip length (the frame count follows the length).
    ///
    /// Runs in `f32` throughout (the STFT, `|S|`, `log` — a vectorised polynomial logarithm accurate
    /// to about 1 ulp), except the z-score's mean and standard deviation (`f64` sums). The planned
    /// STFT and its buffers are kept per thread and reused across calls.
    pub fn compute_any_length(&self, clip: &[f32]) -> Result<Vec<f32>> {
        let mut out = self.with_stft(|stft, bufs| {
            let mut out = vec![0.0f32; stft.n_bins() * stft.n_frames(clip.len())];
            let post = match self.output {
                SpectrogramOutput::LogMagnitude { eps } => Post::LogMagnitude { eps: eps as f32 },
                SpectrogramOutput::LogPsdDensity { eps } => {
                    let scale = self.psd_scale(stft);
                    return stft
                        .compute_into(clip, bufs, Post::LogScaledPower { scale: &scale, eps: eps as f32 }, &mut out)
                        .map(|_| out);
                }
            };
            stft.compute_into(clip, bufs, post, &mut out)?;
            Ok(out)
        })?;
        if self.zscore && !out.is_empty() {
            let n = out.len() as f64;
            let mean = out.iter().map(|&x| x as f64).sum::<f64>() / n;
            let std = (out.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            out.iter_mut().for_each(|x| *x = ((*x as f64 - mean) / (std + 1e-9)) as f32);
        }
        Ok(out)
    }

    /// Per-bin PSD scale: `1 / (fs · Σ w²)`, doubled except at DC (and Nyquist for even `n_fft`).
    fn psd_scale(&self, stft: &Stft) -> Vec<f32> {
        let w2: f64 = stft.window().iter().map(|w| w * w).sum();
        let scale = 1.0 / (self.sample_rate as f64 * w2);
        let nb = stft.n_bins();
        let last_doubled = if self.n_fft % 2 == 0 { nb - 1 } else { nb };
        (0..nb).map(|k| if k >= 1 && k < last_doubled { 2.0 * scale } else { scale } as f32).collect()
    }

    /// Runs `f` with this recipe's planned STFT and work buffers, cached per thread (a few recipes
    /// at most; a re-entrant call gets fresh ones).
    fn with_stft<T>(&self, f: impl FnOnce(&Stft, &mut StftBuffers) -> Result<T>) -> Result<T> {
        type Key = (usize, usize, Window, Option<Padding>, bool);
        thread_local! {
            static CACHE: RefCell<Vec<(Key, Stft, StftBuffers)>> = const { RefCell::new(Vec::new()) };
        }
        let key: Key = (self.n_fft, self.hop, self.window, self.center, self.detrend);
        CACHE.with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                let stft = self.stft()?;
                let mut bufs = stft.buffers();
                return f(&stft, &mut bufs);
            };
            let i = match cache.iter().position(|(k, _, _)| *k == key) {
                Some(i) => i,
                None => {
                    let stft = self.stft()?;
                    let bufs = stft.buffers();
                    if cache.len() >= 8 {
                        cache.remove(0);
                    }
                    cache.push((key, stft, bufs));
                    cache.len() - 1
                }
            };
            let (_, stft, bufs) = &mut cache[i];
            f(stft, bufs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_shapes() {
        assert_eq!(SpectrogramRecipe::librosa_cremad().shape(), (257, 188));
        assert_eq!(SpectrogramRecipe::librosa_ks().shape(), (129, 626));
        assert_eq!(SpectrogramRecipe::scipy_paper().shape(), (257, 299));
        assert_eq!(SpectrogramRecipe::scipy_paper().with_n_samples(160000).shape(), (257, 1004));
        let g = SpectrogramRecipe::generic(8000, 4000, 128, 64, Window::Hann, Some(Padding::Reflect));
        assert_eq!(g.shape(), (65, 63));
        for name in ["librosa-cremad", "librosa-ks", "scipy-paper"] {
            assert_eq!(SpectrogramRecipe::by_name(name).unwrap().name, name);
        }
        assert!(SpectrogramRecipe::by_name("nope").is_err());
    }

    #[test]
    fn compute_checks_length_and_shape() {
        let r = SpectrogramRecipe::generic(8000, 4000, 128, 64, Window::Hann, Some(Padding::Reflect));
        assert!(r.compute(&[0.0; 10]).is_err());
        let x: Vec<f32> = (0..4000).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
        let s = r.compute(&x).unwrap();
        assert_eq!(s.len(), 65 * 63);
        assert!(s.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn zscore_standardises() {
        let r = SpectrogramRecipe::scipy_paper();
        let x: Vec<f32> = (0..48000).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2).collect();
        let s = r.compute(&x).unwrap();
        let n = s.len() as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
    }
}
