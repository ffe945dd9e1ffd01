//! Short-time Fourier transform on real signals (realfft in `f32`).
//!
//! Frame `t` starts at sample `t * hop` of the (optionally centre-padded) signal, is optionally
//! detrended (its mean removed, scipy's `detrend='constant'`), multiplied by the window and
//! transformed with a real FFT of length `n_fft` (window length = `n_fft`). Output bins are
//! `0 ..= n_fft / 2`.
//!
//! Everything runs in `f32` like librosa's own float32 STFT (rustfft picks its AVX kernels at run
//! time). Frames inside the signal are read in place; only the few frames that reach into the
//! padding are assembled in a buffer. Frames are processed 8 at a time into a `[bin][8]` block,
//! the element-wise part (magnitude, scaling, log) runs over that block, and its rows are copied
//! into the row-major `[bin, frame]` output (a blocked transpose).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use super::fastmath::{all_normal, ln_approx};
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
    window32: Vec<f32>,
    center: Option<Padding>,
    detrend: bool,
    fft: Arc<dyn RealToComplex<f32>>,
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

/// Frames per block of the blocked transpose.
const BLOCK: usize = 8;

/// Reusable work buffers of one [`Stft`] (one per thread).
pub struct StftBuffers {
    frame: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// `[n_bins][BLOCK]`.
    block: Vec<f32>,
}

/// What is written per bin (all in `f32`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Post<'a> {
    /// `|S|`.
    Magnitude,
    /// `|S|²`.
    Power,
    /// `scale[k] · |S|²`.
    ScaledPower { scale: &'a [f32] },
    /// `ln(|S| + eps)`.
    LogMagnitude { eps: f32 },
    /// `ln(scale[k] · |S|² + eps)`.
    LogScaledPower { scale: &'a [f32], eps: f32 },
}

impl Stft {
    /// `center = Some(padding)` pads `n_fft / 2` samples on each side (librosa `center=True`);
    /// `None` frames the raw signal (scipy). `detrend` removes each frame's mean before windowing.
    pub fn new(n_fft: usize, hop: usize, window: Window, center: Option<Padding>, detrend: bool) -> Result<Self> {
        if n_fft < 2 || hop == 0 {
            return Err(DataError::Invalid(format!("STFT needs n_fft >= 2 and hop >= 1 (got {n_fft}, {hop})")));
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let window = window.coefficients(n_fft);
        let window32 = window.iter().map(|&w| w as f32).collect();
        Ok(Self { n_fft, hop, window, window32, center, detrend, fft })
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

    /// Work buffers for [`for_each_frame_with`](Self::for_each_frame_with).
    pub fn buffers(&self) -> StftBuffers {
        StftBuffers {
            frame: vec![0.0; self.n_fft],
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            block: vec![0.0; self.n_bins() * BLOCK],
        }
    }

    fn check_len(&self, n: usize) -> Result<()> {
        let p = self.n_fft / 2;
        if self.center == Some(Padding::Reflect) && n <= p {
            return Err(DataError::Invalid(format!("reflect padding needs more than n_fft/2 = {p} samples, got {n}")));
        }
        Ok(())
    }

    /// Samples of frame `t`: a slice of `x` when the frame lies inside it, else assembled in
    /// `frame` from the padded signal.
    fn frame<'a>(&self, x: &'a [f32], t: usize, frame: &'a mut [f32]) -> &'a [f32] {
        let start = t * self.hop;
        let pad = match self.center {
            None => return &x[start..start + self.n_fft],
            Some(_) => self.n_fft / 2,
        };
        if start >= pad && start - pad + self.n_fft <= x.len() {
            return &x[start - pad..start - pad + self.n_fft];
        }
        let n = x.len() as i64;
        for (i, f) in frame.iter_mut().enumerate() {
            let v = (start + i) as i64 - pad as i64;
            *f = if (0..n).contains(&v) {
                x[v as usize]
            } else {
                match self.center {
                    Some(Padding::Reflect) if v < 0 => x[(-v) as usize],
                    Some(Padding::Reflect) => x[(2 * (n - 1) - v) as usize],
                    _ => 0.0,
                }
            };
        }
        frame
    }

    /// The spectrum of frame `t` into `b.spectrum`.
    fn transform(&self, x: &[f32], t: usize, b: &mut StftBuffers) -> Result<()> {
        let frame = self.frame(x, t, &mut b.frame);
        let mean =
            if self.detrend { (frame.iter().map(|&v| v as f64).sum::<f64>() / self.n_fft as f64) as f32 } else { 0.0 };
        for ((i, &s), &w) in b.input.iter_mut().zip(frame).zip(&self.window32) {
            *i = (s - mean) * w;
        }
        self.fft
            .process_with_scratch(&mut b.input, &mut b.spectrum, &mut b.scratch)
            .map_err(|e| DataError::Invalid(format!("FFT failed: {e}")))
    }

    /// Runs the STFT and calls `f(frame_index, spectrum)` for every frame (`n_bins` complex values,
    /// unnormalised FFT, like numpy/librosa).
    pub fn for_each_frame(&self, x: &[f32], f: impl FnMut(usize, &[Complex<f32>])) -> Result<()> {
        self.for_each_frame_with(x, &mut self.buffers(), f)
    }

    /// [`for_each_frame`](Self::for_each_frame) with caller-owned buffers (from [`buffers`](Self::buffers)).
    pub fn for_each_frame_with(
        &self,
        x: &[f32],
        b: &mut StftBuffers,
        mut f: impl FnMut(usize, &[Complex<f32>]),
    ) -> Result<()> {
        self.check_len(x.len())?;
        for t in 0..self.n_frames(x.len()) {
            self.transform(x, t, b)?;
            f(t, &b.spectrum);
        }
        Ok(())
    }

    /// Writes `post(S)` as a row-major `[n_bins, n_frames]` array into `out`.
    pub(crate) fn compute_into(&self, x: &[f32], b: &mut StftBuffers, post: Post<'_>, out: &mut [f32]) -> Result<()> {
        self.check_len(x.len())?;
        let (nb, nt) = (self.n_bins(), self.n_frames(x.len()));
        assert_eq!(out.len(), nb * nt, "output size");
        assert_eq!(b.block.len(), nb * BLOCK, "buffers of another Stft");
        let mut t0 = 0;
        while t0 < nt {
            let n = (nt - t0).min(BLOCK);
            for j in 0..n {
                self.transform(x, t0 + j, b)?;
                for (row, c) in b.block.chunks_exact_mut(BLOCK).zip(&b.spectrum) {
                    row[j] = c.re * c.re + c.im * c.im;
                }
            }
            if n < BLOCK {
                // Lanes of frames past the end hold the previous block's results: clear them.
                b.block.chunks_exact_mut(BLOCK).for_each(|row| row[n..].fill(0.0));
            }
            post_process(&mut b.block, post);
            for (k, row) in b.block.chunks_exact(BLOCK).enumerate() {
                out[k * nt + t0..k * nt + t0 + n].copy_from_slice(&row[..n]);
            }
            t0 += n;
        }
        Ok(())
    }

    /// `|STFT|` as a row-major `[n_bins, n_frames]` array (frequency rows, like librosa).
    pub fn magnitude(&self, x: &[f32]) -> Result<Vec<f64>> {
        self.linear(x, Post::Magnitude)
    }

    /// `|STFT|²` as a row-major `[n_bins, n_frames]` array.
    pub fn power(&self, x: &[f32]) -> Result<Vec<f64>> {
        self.linear(x, Post::Power)
    }

    fn linear(&self, x: &[f32], post: Post<'_>) -> Result<Vec<f64>> {
        let mut out = vec![0.0f32; self.n_bins() * self.n_frames(x.len())];
        self.compute_into(x, &mut self.buffers(), post, &mut out)?;
        Ok(out.into_iter().map(|v| v as f64).collect())
    }
}

/// The element-wise part on a `[n_bins][BLOCK]` block of `|S|²` (AVX2 when the CPU has it).
fn post_process(block: &mut [f32], post: Post<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            unsafe { post_process_avx2(block, post) };
            return;
        }
    }
    post_process_generic(block, post);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn post_process_avx2(block: &mut [f32], post: Post<'_>) {
    post_process_generic(block, post);
}

#[inline(always)]
fn post_process_generic(block: &mut [f32], post: Post<'_>) {
    match post {
        Post::Power => {}
        Post::Magnitude => block.iter_mut().for_each(|v| *v = v.sqrt()),
        Post::ScaledPower { scale } => {
            for (row, &s) in block.chunks_exact_mut(BLOCK).zip(scale) {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        Post::LogMagnitude { eps } => {
            block.iter_mut().for_each(|v| *v = v.sqrt() + eps);
            log_in_place(block);
        }
        Post::LogScaledPower { scale, eps } => {
            for (row, &s) in block.chunks_exact_mut(BLOCK).zip(scale) {
                row.iter_mut().for_each(|v| *v = *v * s + eps);
            }
            log_in_place(block);
        }
    }
}

#[inline(always)]
fn log_in_place(v: &mut [f32]) {
    if all_normal(v) {
        v.iter_mut().for_each(|x| *x = ln_approx(*x));
    } else {
        v.iter_mut().for_each(|x| *x = x.ln());
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
