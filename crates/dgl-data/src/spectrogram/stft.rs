//! Short-time Fourier transform on real signals (realfft, f64 internally).
//!
//! Frame `t` starts at sample `t * hop` of the (optionally centre-padded) signal, is optionally
//! detrended (its mean removed, scipy's `detrend='constant'`), multiplied by the window and
//! transformed with a real FFT of length `n_fft` (window length = `n_fft`). Output bins are
//! `0 ..= n_fft / 2`.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use super::window::Window;
use crate::error::{DataError, Result};

/// How `center=True` pads `n_fft / 2` samples on both sides of the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// numpy `'reflect'` (mirror without repeating the edge sample): librosa < 0.10's default and
    /// what the official CREMA-D / Kinetics-Sounds loaders got.
    Reflect,
    /// Zeros: librosa ≥ 0.10's default `pad_mode='constant'`.
    Constant,
}

/// A planned STFT (cheap to build; reuse it for many signals of any length).
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    center: Option<Padding>,
    detrend: bool,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("center", &self.center)
            .field("detrend", &self.detrend)
            .finish()
    }
}

impl Stft {
    /// `center = Some(padding)` pads `n_fft / 2` samples on each side (librosa `center=True`);
    /// `None` frames the raw signal (scipy). `detrend` removes each frame's mean before windowing.
    pub fn new(n_fft: usize, hop: usize, window: Window, center: Option<Padding>, detrend: bool) -> Result<Self> {
        if n_fft < 2 || hop == 0 {
            return Err(DataError::Invalid(format!("STFT needs n_fft >= 2 and hop >= 1 (got {n_fft}, {hop})")));
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Ok(Self { n_fft, hop, window: window.coefficients(n_fft), center, detrend, fft })
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }
    pub fn hop(&self) -> usize {
        self.hop
    }
    /// The window coefficients.
    pub fn window(&self) -> &[f64] {
        &self.window
    }
    /// `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames for a signal of `n` samples: `1 + n / hop` when centred, else
    /// `(n − n_fft) / hop + 1` (0 if `n < n_fft`).
    pub fn n_frames(&self, n: usize) -> usize {
        match self.center {
            Some(_) => 1 + n / self.hop,
            None if n < self.n_fft => 0,
            None => (n - self.n_fft) / self.hop + 1,
        }
    }

    /// The padded signal the frames are cut from.
    fn padded(&self, x: &[f32]) -> Result<Vec<f64>> {
        let p = self.n_fft / 2;
        match self.center {
            None => Ok(x.iter().map(|&v| v as f64).collect()),
            Some(Padding::Constant) => {
                let mut out = vec![0.0; x.len() + 2 * p];
                for (o, &v) in out[p..].iter_mut().zip(x) {
                    *o = v as f64;
                }
                Ok(out)
            }
            Some(Padding::Reflect) => {
                if x.len() <= p {
                    return Err(DataError::Invalid(format!(
                        "reflect padding needs more than n_fft/2 = {p} samples, got {}",
                        x.len()
                    )));
                }
                let n = x.len();
                let mut out = Vec::with_capacity(n + 2 * p);
                out.extend((0..p).map(|i| x[p - i] as f64));
                out.extend(x.iter().map(|&v| v as f64));
                out.extend((0..p).map(|i| x[n - 2 - i] as f64));
                Ok(out)
            }
        }
    }

    /// Runs the STFT and calls `f(frame_index, spectrum)` for every frame (`n_bins` complex values,
    /// unnormalised FFT, like numpy/librosa).
    pub fn for_each_frame(&self, x: &[f32], mut f: impl FnMut(usize, &[Complex<f64>])) -> Result<()> {
        let padded = self.padded(x)?;
        let n_frames = self.n_frames(x.len());
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        for t in 0..n_frames {
            let frame = &padded[t * self.hop..t * self.hop + self.n_fft];
            let mean = if self.detrend { frame.iter().sum::<f64>() / self.n_fft as f64 } else { 0.0 };
            for ((i, &s), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *i = (s - mean) * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .map_err(|e| DataError::Invalid(format!("FFT failed: {e}")))?;
            f(t, &spectrum);
        }
        Ok(())
    }

    /// `|STFT|` as a row-major `[n_bins, n_frames]` array (frequency rows, like librosa).
    pub fn magnitude(&self, x: &[f32]) -> Result<Vec<f64>> {
        let (nb, nt) = (self.n_bins(), self.n_frames(x.len()));
        let mut out = vec![0.0; nb * nt];
        self.for_each_frame(x, |t, s| {
            for (k, c) in s.iter().enumerate() {
                out[k * nt + t] = c.norm();
            }
        })?;
        Ok(out)
    }

    /// `|STFT|²` as a row-major `[n_bins, n_frames]` array.
    pub fn power(&self, x: &[f32]) -> Result<Vec<f64>> {
        let (nb, nt) = (self.n_bins(), self.n_frames(x.len()));
        let mut out = vec![0.0; nb * nt];
        self.for_each_frame(x, |t, s| {
            for (k, c) in s.iter().enumerate() {
                out[k * nt + t] = c.norm_sqr();
            }
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_counts() {
        let s = Stft::new(512, 353, Window::Hann, Some(Padding::Reflect), false).unwrap();
        assert_eq!(s.n_frames(66150), 188);
        let s = Stft::new(512, 159, Window::Tukey(0.25), None, true).unwrap();
        assert_eq!(s.n_frames(48000), 299);
        assert_eq!(s.n_frames(100), 0);
    }

    #[test]
    fn pure_tone_peaks_at_its_bin() {
        let n_fft = 64;
        let x: Vec<f32> =
            (0..640).map(|i| (2.0 * std::f32::consts::PI * 8.0 * i as f32 / n_fft as f32).sin()).collect();
        let s = Stft::new(n_fft, 16, Window::Hann, Some(Padding::Reflect), false).unwrap();
        let m = s.magnitude(&x).unwrap();
        let nt = s.n_frames(x.len());
        let t = nt / 2;
        let col: Vec<f64> = (0..s.n_bins()).map(|k| m[k * nt + t]).collect();
        let argmax = col.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(argmax, 8);
        // Hann-windowed unit sine: peak |X| = n_fft / 4.
        assert!((col[8] - n_fft as f64 / 4.0).abs() < 1e-4, "{}", col[8]);
    }

    #[test]
    fn reflect_padding_needs_enough_samples() {
        let s = Stft::new(64, 16, Window::Hann, Some(Padding::Reflect), false).unwrap();
        assert!(s.magnitude(&[0.0; 10]).is_err());
    }
}
