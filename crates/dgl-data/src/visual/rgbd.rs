//! RGB-D frames and ESANet's joint transforms (TUI-NICR/ESANet, `src/preprocessing.py`): the
//! same geometric operation is applied to the colour image, the depth map and the label map.
//!
//! Train (`get_preprocessor(phase='train')`, preprocessing.py:27-38), in this order:
//! 1. `RandomRescale` (80-104): s ~ U(scale), target `round(s·H) × round(s·W)` (Python rounding,
//!    half to even); image bilinear (OpenCV `INTER_LINEAR`), depth and labels nearest
//!    (`INTER_NEAREST`).
//! 2. `RandomCrop` (107-135): if the rescaled frame is strictly larger than the output in both
//!    sides, a crop at `i = randint(0, h − H)`, `j = randint(0, w − W)` (NumPy's upper bound is
//!    exclusive: the last row/column offset is never drawn); otherwise the frame is rescaled to
//!    the output size (`Rescale`).
//! 3. `RandomHSV` (138-168): see [`HsvJitter`] (two versions of ESANet differ).
//! 4. `RandomFlip` (171-183): horizontal flip when `rand() > 0.5`.
//!
//! Eval (`phase='test'` with height/width, 40-50): `Rescale` to the output size (identity when the
//! files already have it).
//!
//! Then `Normalize` (186-214): RGB / 255 → ImageNet mean/std; depth (d − mean) / std in `f32`;
//! with raw depth, positions of depth 0 (no measurement) stay 0 after normalisation.
//!
//! The random numbers come from a seeded [`Rng`] instead of NumPy's global generator (same
//! distributions, in the same order: scale, crop offsets, H/S/V factors, flip).

use dgl_core::rng::Rng;
use serde::{Deserialize, Serialize};

use super::{IMAGENET_MEAN, IMAGENET_STD};

/// One RGB-D frame with its label map, row-major `height × width`.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbdFrame {
    pub height: usize,
    pub width: usize,
    /// `H × W × 3` RGB on the 0–255 scale: whole numbers as read (an 8-bit image) and after the
    /// geometric transforms (rounded as OpenCV's 8-bit resize does); any value after HSV jitter.
    pub rgb: Vec<f32>,
    /// `H × W` depth as stored (millimetres for NYUv2).
    pub depth: Vec<u16>,
    /// `H × W` class ids (void included, whatever its value).
    pub labels: Vec<u32>,
}

/// ESANet's `RandomHSV`: hue and saturation are multiplied by U(0.9, 1.1) (clipped to [0, 1]) in
/// both versions; they differ in the value channel and the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HsvJitter {
    /// ESANet as published (commit 49d2201 and before; what the DGL authors' forks derive from):
    /// `RandomHSV((0.9, 1.1), (0.9, 1.1), (25, 25))` on the 0–255 image, so V (0–255) gets
    /// `+ U(−25, 25)`, clipped to [0, 255]; the result stays floating point.
    #[default]
    Paper,
    /// ESANet since f025bf4 (2025): the image is divided by 255 first, V is multiplied by
    /// U(0.9, 1.1) (clipped to [0, 1]), and the result is truncated to `uint8` (`astype`).
    Current,
    /// No colour jitter.
    Off,
}

/// OpenCV's per-axis bilinear coefficients (`resize.cpp`, `INTER_LINEAR`): source index and the
/// two 11-bit fixed-point weights for each output position (half-pixel centres; clamped at the
/// borders, where the weight goes entirely to the edge pixel).
fn linear_coeffs(src: usize, dst: usize) -> Vec<(usize, usize, i32, i32)> {
    const ONE: f32 = 2048.0;
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut fx = f - s as f32;
            if s < 0 {
                s = 0;
                fx = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                fx = 0.0;
            }
            let s = s as usize;
            let s1 = (s + 1).min(src - 1);
            // saturate_cast<short>: cvRound, to nearest (ties to even).
            (s, s1, ((1.0 - fx) * ONE).round_ties_even() as i32, (fx * ONE).round_ties_even() as i32)
        })
        .collect()
}

/// `cv2.resize(img, (nw, nh), interpolation=INTER_LINEAR)` of an 8-bit `h × w × c` image (values
/// are whole numbers in 0..=255; the result is too): OpenCV's fixed-point arithmetic (11-bit
/// weights per axis, horizontal pass into integers, vertical pass rounded by `>> 22`).
/// Reimplemented from the algorithm, not checked against an OpenCV binary; OpenCV's special cases
/// for exact ×½ downscaling (which switch to `INTER_AREA`) are not reproduced.
pub fn resize_linear_u8(src: &[f32], h: usize, w: usize, c: usize, nh: usize, nw: usize) -> Vec<f32> {
    if (h, w) == (nh, nw) {
        return src.to_vec();
    }
    let cx = linear_coeffs(w, nw);
    let cy = linear_coeffs(h, nh);
    // Horizontal pass of every source row (values × 2048).
    let mut rows = vec![0i32; h * nw * c];
    for y in 0..h {
        let row = &src[y * w * c..(y + 1) * w * c];
        for (x, &(s0, s1, a0, a1)) in cx.iter().enumerate() {
            for k in 0..c {
                let v0 = row[s0 * c + k] as i32;
                let v1 = row[s1 * c + k] as i32;
                rows[(y * nw + x) * c + k] = v0 * a0 + v1 * a1;
            }
        }
    }
    let mut out = vec![0.0f32; nh * nw * c];
    for (y, &(s0, s1, b0, b1)) in cy.iter().enumerate() {
        for i in 0..nw * c {
            let v = rows[s0 * nw * c + i] as i64 * b0 as i64 + rows[s1 * nw * c + i] as i64 * b1 as i64;
            out[y * nw * c + i] = ((v + (1 << 21)) >> 22).clamp(0, 255) as f32;
        }
    }
    out
}

/// `cv2.resize(…, interpolation=INTER_NEAREST)` of a single-channel `h × w` map: output
/// position d reads source `min(floor(d · src / dst), src − 1)` on each axis.
pub fn resize_nearest<T: Copy>(src: &[T], h: usize, w: usize, nh: usize, nw: usize) -> Vec<T> {
    if (h, w) == (nh, nw) {
        return src.to_vec();
    }
    let ix = |d: usize, s: usize, n: usize| (((d as f64) * (s as f64 / n as f64)).floor() as usize).min(s - 1);
    let xs: Vec<usize> = (0..nw).map(|x| ix(x, w, nw)).collect();
    let mut out = Vec::with_capacity(nh * nw);
    for y in 0..nh {
        let sy = ix(y, h, nh);
        out.extend(xs.iter().map(|&sx| src[sy * w + sx]));
    }
    out
}

impl RgbdFrame {
    /// ESANet's `Rescale`: image bilinear, depth and labels nearest.
    pub fn resized(&self, nh: usize, nw: usize) -> RgbdFrame {
        let (h, w) = (self.height, self.width);
        RgbdFrame {
            height: nh,
            width: nw,
            rgb: resize_linear_u8(&self.rgb, h, w, 3, nh, nw),
            depth: resize_nearest(&self.depth, h, w, nh, nw),
            labels: resize_nearest(&self.labels, h, w, nh, nw),
        }
    }

    /// The `ch × cw` window at (`top`, `left`) (inside the frame).
    pub fn cropped(&self, top: usize, left: usize, ch: usize, cw: usize) -> RgbdFrame {
        let w = self.width;
        let mut rgb = Vec::with_capacity(ch * cw * 3);
        let mut depth = Vec::with_capacity(ch * cw);
        let mut labels = Vec::with_capacity(ch * cw);
        for y in top..top + ch {
            rgb.extend_from_slice(&self.rgb[(y * w + left) * 3..(y * w + left + cw) * 3]);
            depth.extend_from_slice(&self.depth[y * w + left..y * w + left + cw]);
            labels.extend_from_slice(&self.labels[y * w + left..y * w + left + cw]);
        }
        RgbdFrame { height: ch, width: cw, rgb, depth, labels }
    }

    /// Mirrors the frame left-right (`np.fliplr`).
    pub fn flip_horizontal(&mut self) {
        let w = self.width;
        for y in 0..self.height {
            self.depth[y * w..(y + 1) * w].reverse();
            self.labels[y * w..(y + 1) * w].reverse();
            let row = &mut self.rgb[y * w * 3..(y + 1) * w * 3];
            for x in 0..w / 2 {
                for k in 0..3 {
                    row.swap(x * 3 + k, (w - 1 - x) * 3 + k);
                }
            }
        }
    }
}

/// `matplotlib.colors.rgb_to_hsv` of one pixel (in `f32`, as on a `float32` array): H in [0, 1),
/// S in [0, 1], V = max channel (on the input's scale).
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let delta = max - r.min(g).min(b);
    let s = if max > 0.0 { delta / max } else { 0.0 };
    let mut h = 0.0f32;
    if delta > 0.0 {
        // Later assignments win, as in matplotlib (red, then green, then blue).
        if r == max {
            h = (g - b) / delta;
        }
        if g == max {
            h = 2.0 + (b - r) / delta;
        }
        if b == max {
            h = 4.0 + (r - g) / delta;
        }
    }
    ((h / 6.0).rem_euclid(1.0), s, max)
}

/// `matplotlib.colors.hsv_to_rgb` of one pixel (in `f32`).
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    if s == 0.0 {
        return (v, v, v);
    }
    let i = (h * 6.0) as i64; // astype(int): truncation
    let f = h * 6.0 - i as f32;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i.rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// ESANet's `RandomHSV` on an `H × W × 3` image on the 0–255 scale (see [`HsvJitter`]); draws the
/// H, S, V factors (in that order) from `rng` unless `kind` is `Off`.
pub fn hsv_jitter(rgb: &mut [f32], kind: HsvJitter, rng: &mut Rng) {
    let (hf, sf, vr) = match kind {
        HsvJitter::Off => return,
        HsvJitter::Paper | HsvJitter::Current => {
            (rng.uniform_range(0.9, 1.1) as f32, rng.uniform_range(0.9, 1.1) as f32, rng.uniform_range(0.0, 1.0))
        }
    };
    match kind {
        HsvJitter::Paper => {
            // v_random = U(−min(25, 25), max(25, 25)), added to V on the 0–255 scale.
            let vadd = (-25.0 + 50.0 * vr) as f32;
            for px in rgb.chunks_exact_mut(3) {
                let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
                let (r, g, b) =
                    hsv_to_rgb((h * hf).clamp(0.0, 1.0), (s * sf).clamp(0.0, 1.0), (v + vadd).clamp(0.0, 255.0));
                px.copy_from_slice(&[r, g, b]);
            }
        }
        HsvJitter::Current => {
            let vf = (0.9 + 0.2 * vr) as f32;
            for px in rgb.chunks_exact_mut(3) {
                let (h, s, v) = rgb_to_hsv(px[0] / 255.0, px[1] / 255.0, px[2] / 255.0);
                let (r, g, b) =
                    hsv_to_rgb((h * hf).clamp(0.0, 1.0), (s * sf).clamp(0.0, 1.0), (v * vf).clamp(0.0, 1.0));
                // (img * 255).astype('uint8'): truncation.
                px.copy_from_slice(&[(r * 255.0).trunc(), (g * 255.0).trunc(), (b * 255.0).trunc()]);
            }
        }
        HsvJitter::Off => {}
    }
}

/// The training augmentation's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RgbdAugment {
    /// Range of the random rescale factor (ESANet `--aug_scale_min/max`, default 1.0 / 1.4).
    pub scale: [f64; 2],
    pub hsv: HsvJitter,
    /// The largest rescaled frame, in pixels (a bound on memory; [`crate::limits::IMAGE_PIXELS`]).
    pub max_pixels: u64,
}

/// ESANet's training transform (module docs) of `frame` to `out_h × out_w`. Errors (as text) when
/// the rescaled frame would exceed `aug.max_pixels`.
pub fn esanet_train(
    frame: &RgbdFrame,
    out_h: usize,
    out_w: usize,
    aug: &RgbdAugment,
    rng: &mut Rng,
) -> Result<RgbdFrame, String> {
    let [lo, hi] = aug.scale;
    let s = rng.uniform_range(lo.min(hi), lo.max(hi));
    let th = ((s * frame.height as f64).round_ties_even() as usize).max(1);
    let tw = ((s * frame.width as f64).round_ties_even() as usize).max(1);
    if th as u64 * tw as u64 > aug.max_pixels {
        return Err(format!(
            "the rescaled frame ({th} × {tw} at scale {s:.3}) exceeds {} pixels (DGL_MAX_IMAGE_PIXELS)",
            aug.max_pixels
        ));
    }
    let scaled = frame.resized(th, tw);
    let mut out = if th <= out_h || tw <= out_w {
        scaled.resized(out_h, out_w)
    } else {
        let i = rng.below(th - out_h);
        let j = rng.below(tw - out_w);
        scaled.cropped(i, j, out_h, out_w)
    };
    hsv_jitter(&mut out.rgb, aug.hsv, rng);
    if rng.uniform() > 0.5 {
        out.flip_horizontal();
    }
    Ok(out)
}

/// ESANet's evaluation transform: `Rescale` to `out_h × out_w` (nothing when the frame has that
/// size).
pub fn esanet_eval(frame: RgbdFrame, out_h: usize, out_w: usize) -> RgbdFrame {
    if (frame.height, frame.width) == (out_h, out_w) {
        frame
    } else {
        frame.resized(out_h, out_w)
    }
}

/// ESANet's `Normalize`: `([3, H, W] RGB, [1, H, W] depth)`, RGB / 255 then ImageNet mean/std,
/// depth (d − mean) / std (all in `f32`); with `keep_zero`, depth-0 positions stay 0 (raw depth).
pub fn normalize(frame: &RgbdFrame, depth_mean: f32, depth_std: f32, keep_zero: bool) -> (Vec<f32>, Vec<f32>) {
    let n = frame.height * frame.width;
    let mut rgb = vec![0.0f32; 3 * n];
    for (p, px) in frame.rgb.chunks_exact(3).enumerate() {
        for k in 0..3 {
            rgb[k * n + p] = (px[k] / 255.0 - IMAGENET_MEAN[k]) / IMAGENET_STD[k];
        }
    }
    let depth = frame
        .depth
        .iter()
        .map(|&d| if keep_zero && d == 0 { 0.0 } else { (d as f32 - depth_mean) / depth_std })
        .collect();
    (rgb, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trip_and_matplotlib_values() {
        for &(r, g, b) in &[(255.0, 0.0, 0.0), (10.0, 200.0, 30.0), (0.2, 0.4, 0.9), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-3 && (g - g2).abs() < 1e-3 && (b - b2).abs() < 1e-3, "{r} {g} {b}");
        }
        // matplotlib: rgb_to_hsv([0.2, 0.4, 0.9]) = [0.61904764, 0.7777778, 0.9].
        let (h, s, v) = rgb_to_hsv(0.2, 0.4, 0.9);
        assert!((h - 0.619_047_6).abs() < 1e-6 && (s - 0.777_777_8).abs() < 1e-6 && v == 0.9);
        // A negative hue wraps: red max with g < b.
        let (h, _, _) = rgb_to_hsv(1.0, 0.0, 0.5);
        assert!((h - (1.0 - 0.5 / 6.0)).abs() < 1e-6, "{h}");
    }

    #[test]
    fn opencv_linear_and_nearest() {
        // Upscaling 2 → 4 with half-pixel centres: source positions -0.25, 0.25, 0.75, 1.25 →
        // 0 (clamped), 0.25·… : values 0, 25, 75, 100 for a row [0, 100].
        let src = [0.0f32, 100.0];
        let out = resize_linear_u8(&src, 1, 2, 1, 1, 4);
        assert_eq!(out, vec![0.0, 25.0, 75.0, 100.0]);
        let n = resize_nearest(&[1u8, 2, 3], 1, 3, 1, 6);
        assert_eq!(n, vec![1, 1, 2, 2, 3, 3]);
        let n = resize_nearest(&[1u8, 2, 3, 4], 1, 4, 1, 2);
        assert_eq!(n, vec![1, 3]);
    }

    #[test]
    fn flip_and_crop_move_all_three_together() {
        let mut f = RgbdFrame {
            height: 2,
            width: 3,
            rgb: (0..18).map(|v| v as f32).collect(),
            depth: (0..6).collect(),
            labels: (10..16).collect(),
        };
        f.flip_horizontal();
        assert_eq!(f.depth, vec![2, 1, 0, 5, 4, 3]);
        assert_eq!(f.labels, vec![12, 11, 10, 15, 14, 13]);
        assert_eq!(&f.rgb[..9], &[6.0, 7.0, 8.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
        let c = f.cropped(1, 1, 1, 2);
        assert_eq!((c.depth, c.labels), (vec![4, 3], vec![14, 13]));
        assert_eq!(c.rgb, vec![12.0, 13.0, 14.0, 9.0, 10.0, 11.0]);
    }
}
