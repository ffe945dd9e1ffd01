//! Short-time Fourier transform on real signals (realfft in `f32`).
//!
//! Frame `t` starts at sample `t * hop` of the (optionally centre-padded) signal, is optionally
//! detrended (its mean removed, scipy's `detrend='constant'`), multiplied by the window and
//! transformed with a real FFT of length `n_fft` (window length = `n_fft`). Output bins are
//! `0 ..= n_fft / 2`.
//!
//! Everything runs in `f32` like librosa's own float32 STFT (rustfft picks its AVX kernels at run
//! time). Frames inside the signal are read in place; only the few frames that reach into the
//! padding are assembled in a buffer. For even `n_fft` the real FFT is a complex FFT of length
//! `n_fft / 2` (rustfft) followed by a vectorised split step that yields `|S|²` directly; odd
//! lengths use realfft. Frames are processed 8 at a time into a `[frame][bin]` block, the
//! element-wise part (magnitude, scaling, log) runs over that block, and it is written into the
//! row-major `[bin, frame]` output by 8 × 8 register transposes (AVX; scalar otherwise).

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
    /// Odd `n_fft`: realfft.
    fft: Arc<dyn RealToComplex<f32>>,
    /// Even `n_fft`: complex FFT of length `n_fft / 2` on the even/odd samples as re/im, then the
    /// split into the real spectrum (see [`split_power`]).
    half: Option<Half>,
}

/// The even-length path: `Z = FFT_{N/2}(x[2n] + i x[2n+1])`, then for `0 < k < N/2`,
/// `X[k] = ½ (Z[k] + Z*[N/2−k]) − ½ i W^k (Z[k] − Z*[N/2−k])`, `W = e^{−2πi/N}`.
#[derive(Clone)]
struct Half {
    fft: Arc<dyn rustfft::Fft<f32>>,
    /// `(cos θ_k, −cos θ_k)` interleaved, `θ_k = 2πk/N`, `k < N/2`.
    tw_c: Vec<f32>,
    /// `(−sin θ_k, −sin θ_k)` interleaved.
    tw_s: Vec<f32>,
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
    /// Even `n_fft`: the `n_fft / 2` complex values transformed in place.
    half: Vec<Complex<f32>>,
    half_scratch: Vec<Complex<f32>>,
    /// `[BLOCK][stride]`: `|S|²` and then `post(S)` of up to `BLOCK` frames, bins contiguous.
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
        let half = (n_fft % 2 == 0).then(|| {
            let m = n_fft / 2;
            let theta = |k: usize| 2.0 * std::f64::consts::PI * k as f64 / n_fft as f64;
            Half {
                fft: rustfft::FftPlanner::<f32>::new().plan_fft_forward(m),
                tw_c: (0..m).flat_map(|k| [theta(k).cos() as f32, -theta(k).cos() as f32]).collect(),
                tw_s: (0..m).flat_map(|k| [-theta(k).sin() as f32; 2]).collect(),
            }
        });
        let window = window.coefficients(n_fft);
        let window32 = window.iter().map(|&w| w as f32).collect();
        Ok(Self { n_fft, hop, window, window32, center, detrend, fft, half })
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
        let (half, half_scratch) = match &self.half {
            Some(h) => {
                (vec![Complex::default(); self.n_fft / 2], vec![Complex::default(); h.fft.get_inplace_scratch_len()])
            }
            None => (Vec::new(), Vec::new()),
        };
        StftBuffers {
            frame: vec![0.0; self.n_fft],
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            half,
            half_scratch,
            block: vec![0.0; self.stride() * BLOCK],
        }
    }

    /// Row length of the block buffer: `n_bins` rounded up to a multiple of 8.
    fn stride(&self) -> usize {
        self.n_bins().div_ceil(8) * 8
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
        let (nb, nt, stride) = (self.n_bins(), self.n_frames(x.len()), self.stride());
        assert_eq!(out.len(), nb * nt, "output size");
        assert_eq!(b.block.len(), stride * BLOCK, "buffers of another Stft");
        let mut t0 = 0;
        while t0 < nt {
            let n = (nt - t0).min(BLOCK);
            for j in 0..n {
                match &self.half {
                    Some(h) => {
                        let frame = self.frame(x, t0 + j, &mut b.frame);
                        // SAFETY: `Complex<f32>` is `repr(C)` { re, im }: 2 f32 per value.
                        let flat = unsafe {
                            std::slice::from_raw_parts_mut(b.half.as_mut_ptr() as *mut f32, 2 * b.half.len())
                        };
                        self.window_into(frame, flat);
                        h.fft.process_with_scratch(&mut b.half, &mut b.half_scratch);
                        split_power(&b.half, &h.tw_c, &h.tw_s, &mut b.block[j * stride..j * stride + nb]);
                    }
                    None => {
                        self.transform(x, t0 + j, b)?;
                        for (p, c) in b.block[j * stride..j * stride + nb].iter_mut().zip(&b.spectrum) {
                            *p = c.re * c.re + c.im * c.im;
                        }
                    }
                }
            }
            // The padding bins of each row, and the rows of frames past the end, hold the previous
            // block's results (logs can be negative): clear them so that all lanes stay in the log's
            // fast domain.
            b.block.chunks_exact_mut(stride).for_each(|row| row[nb..].fill(0.0));
            b.block[n * stride..].fill(0.0);
            post_process(&mut b.block, stride, post);
            transpose_block(&b.block, stride, nb, n, &mut out[t0..], nt);
            t0 += n;
        }
        Ok(())
    }

    /// `(frame − mean) · window` into `dst`.
    fn window_into(&self, frame: &[f32], dst: &mut [f32]) {
        let mean =
            if self.detrend { (frame.iter().map(|&v| v as f64).sum::<f64>() / self.n_fft as f64) as f32 } else { 0.0 };
        for ((i, &s), &w) in dst.iter_mut().zip(frame).zip(&self.window32) {
            *i = (s - mean) * w;
        }
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

/// `|X[k]|²` for `k ≤ N/2` from `Z` (see [`Half`]) into `row` (`N/2 + 1` values): AVX2 for 8 bins
/// at a time when available, scalar otherwise (and for the last few bins).
fn split_power(z: &[Complex<f32>], tw_c: &[f32], tw_s: &[f32], row: &mut [f32]) {
    let m = z.len();
    assert!(row.len() == m + 1 && tw_c.len() == 2 * m && tw_s.len() == 2 * m);
    row[0] = (z[0].re + z[0].im) * (z[0].re + z[0].im);
    row[m] = (z[0].re - z[0].im) * (z[0].re - z[0].im);
    let mut k = 1;
    #[cfg(target_arch = "x86_64")]
    {
        if m >= 9 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available; the function reads z[1..=m−1], tw[2..2m] and writes
            // row[1..k_end] (checked inside).
            k = unsafe { split_power_avx2(z, tw_c, tw_s, row) };
        }
    }
    while k < m {
        row[k] = split_one(z[k], z[m - k], [tw_c[2 * k], tw_c[2 * k + 1]], tw_s[2 * k]);
        k += 1;
    }
}

/// `|X[k]|²` from `a = Z[k]`, `b = Z[N/2−k]`: with `s = a + b*`, `d = a − b*`,
/// `2X = s + (c·d.im − sin·d.re, −c·d.re − sin·d.im)`.
#[inline(always)]
fn split_one(a: Complex<f32>, b: Complex<f32>, tc: [f32; 2], ts: f32) -> f32 {
    let (s_re, s_im) = (a.re + b.re, a.im - b.im);
    let (d_re, d_im) = (a.re - b.re, a.im + b.im);
    let x_re = s_re + tc[0] * d_im + ts * d_re;
    let x_im = s_im + tc[1] * d_re + ts * d_im;
    0.25 * (x_re * x_re + x_im * x_im)
}

/// Bins `1 .. 1 + 8·⌊(m − 1)/8⌋` of [`split_power`], 8 per iteration; returns the first bin not done.
/// Same operations in the same order as [`split_one`] (identical results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_power_avx2(z: &[Complex<f32>], tw_c: &[f32], tw_s: &[f32], row: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let m = z.len();
    let zp = z.as_ptr() as *const f32;
    let conj = _mm256_setr_ps(1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0);
    // 2X for 4 bins k..k+4 (interleaved re, im).
    let four = |k: usize| {
        let a = _mm256_loadu_ps(zp.add(2 * k));
        // Z[m−k−3 ..= m−k], reversed as complex values (64-bit units).
        let b = _mm256_loadu_ps(zp.add(2 * (m - k - 3)));
        let b = _mm256_castpd_ps(_mm256_permute4x64_pd::<0x1B>(_mm256_castps_pd(b)));
        let bc = _mm256_mul_ps(b, conj);
        let s = _mm256_add_ps(a, bc);
        let d = _mm256_sub_ps(a, bc);
        let d_sw = _mm256_permute_ps::<0xB1>(d);
        let tc = _mm256_loadu_ps(tw_c.as_ptr().add(2 * k));
        let ts = _mm256_loadu_ps(tw_s.as_ptr().add(2 * k));
        let x = _mm256_add_ps(_mm256_add_ps(s, _mm256_mul_ps(tc, d_sw)), _mm256_mul_ps(ts, d));
        _mm256_mul_ps(x, x)
    };
    let quarter = _mm256_set1_ps(0.25);
    let mut k = 1;
    while k + 8 <= m {
        let q0 = four(k);
        let q1 = four(k + 4);
        // [k, k+1, k+4, k+5 | k+2, k+3, k+6, k+7] → bin order.
        let h = _mm256_hadd_ps(q0, q1);
        let h = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(h)));
        _mm256_storeu_ps(row.as_mut_ptr().add(k), _mm256_mul_ps(quarter, h));
        k += 8;
    }
    k
}

/// Copies frames `0..n` of the `[BLOCK][stride]` block into columns of the `[nb, nt]` output
/// (`out` starts at the block's first frame): 8 × 8 tiles transposed in registers with AVX when the
/// block is full, element by element otherwise.
fn transpose_block(block: &[f32], stride: usize, nb: usize, n: usize, out: &mut [f32], nt: usize) {
    assert!(block.len() >= BLOCK * stride && nb <= stride && n <= BLOCK);
    assert!(nb == 0 || out.len() >= (nb - 1) * nt + n);
    let mut k0 = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if n == BLOCK && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available; reads block[j·stride + k] for k < 8⌊nb/8⌋ ≤ stride and writes
            // out[k·nt .. k·nt + 8] for those k (bounds asserted above).
            k0 = unsafe { transpose_tiles_avx(block, stride, nb, out, nt) };
        }
    }
    for k in k0..nb {
        for j in 0..n {
            out[k * nt + j] = block[j * stride + k];
        }
    }
}

/// Full 8 × 8 tiles of [`transpose_block`]; returns the first bin not done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_tiles_avx(block: &[f32], stride: usize, nb: usize, out: &mut [f32], nt: usize) -> usize {
    use std::arch::x86_64::*;
    let bp = block.as_ptr();
    let op = out.as_mut_ptr();
    let mut k0 = 0;
    while k0 + 8 <= nb {
        let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(bp.add(j * stride + k0)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let c = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (i, v) in c.iter().enumerate() {
            _mm256_storeu_ps(op.add((k0 + i) * nt), *v);
        }
        k0 += 8;
    }
    k0
}

/// The element-wise part on the `[BLOCK][stride]` block of `|S|²` (AVX2 when the CPU has it).
fn post_process(block: &mut [f32], stride: usize, post: Post<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            unsafe { post_process_avx2(block, stride, post) };
            return;
        }
    }
    post_process_generic(block, stride, post);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn post_process_avx2(block: &mut [f32], stride: usize, post: Post<'_>) {
    post_process_generic(block, stride, post);
}

#[inline(always)]
fn post_process_generic(block: &mut [f32], stride: usize, post: Post<'_>) {
    let scaled = |block: &mut [f32], scale: &[f32], eps: f32| {
        for row in block.chunks_exact_mut(stride) {
            for (v, &s) in row.iter_mut().zip(scale) {
                *v = *v * s + eps;
            }
        }
    };
    match post {
        Post::Power => {}
        Post::Magnitude => block.iter_mut().for_each(|v| *v = v.sqrt()),
        Post::ScaledPower { scale } => scaled(block, scale, 0.0),
        Post::LogMagnitude { eps } => {
            block.iter_mut().for_each(|v| *v = v.sqrt() + eps);
            log_in_place(block);
        }
        Post::LogScaledPower { scale, eps } => {
            scaled(block, scale, eps);
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

    /// The even-length path (half-length complex FFT + split, blocked transposes) against realfft's
    /// spectrum per frame, for sizes around the vector widths and frame counts around the block.
    #[test]
    fn blocked_power_matches_realfft() {
        for (n_fft, hop, len) in
            [(512, 353, 66150), (16, 5, 100), (18, 4, 203), (34, 7, 97), (256, 128, 1000), (15, 4, 61)]
        {
            for center in [Some(Padding::Reflect), Some(Padding::Constant), None] {
                let x: Vec<f32> =
                    (0..len).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * (1.0 + i as f32 * 1e-3)).collect();
                let s = Stft::new(n_fft, hop, Window::Hann, center, center.is_none()).unwrap();
                let (nb, nt) = (s.n_bins(), s.n_frames(len));
                let mut want = vec![0.0f32; nb * nt];
                s.for_each_frame(&x, |t, spec| {
                    for (k, c) in spec.iter().enumerate() {
                        want[k * nt + t] = c.norm_sqr();
                    }
                })
                .unwrap();
                let got = s.power(&x).unwrap();
                let peak = want.iter().fold(0.0f32, |a, &b| a.max(b));
                let err = got.iter().zip(&want).map(|(&a, &b)| (a - b as f64).abs()).fold(0.0, f64::max) / peak as f64;
                assert!(err < 1e-6, "n_fft {n_fft}, {center:?}: {err}");
            }
        }
    }

    /// The AVX split gives exactly the scalar formula's values.
    #[test]
    fn split_power_vector_equals_scalar() {
        let s = Stft::new(64, 16, Window::Hann, None, false).unwrap();
        let h = s.half.as_ref().unwrap();
        let z: Vec<Complex<f32>> =
            (0..32).map(|i| Complex::new((i as f32 * 0.37).sin(), (i as f32 * 1.3).cos())).collect();
        let mut row = vec![0.0f32; 33];
        split_power(&z, &h.tw_c, &h.tw_s, &mut row);
        for k in 1..32 {
            let want = split_one(z[k], z[32 - k], [h.tw_c[2 * k], h.tw_c[2 * k + 1]], h.tw_s[2 * k]);
            assert_eq!(row[k].to_bits(), want.to_bits(), "bin {k}");
        }
    }

    #[test]
    fn reflect_padding_needs_enough_samples() {
        let s = Stft::new(64, 16, Window::Hann, Some(Padding::Reflect), false).unwrap();
        assert!(s.magnitude(&[0.0; 10]).is_err());
    }
}
