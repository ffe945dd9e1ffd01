//! The synthetic image: an oriented grating (Gabor patch) whose orientation names the class,
//! hidden in clutter and noise, plus a faint class colour tint.
//!
//! - Orientation of class `c` = `ORIENTATION_DEG[c]` + N(0, 8°) jitter. The two classes of an
//!   audio pair are 90° apart (easy to tell apart visually), while the orientations 30° apart that a
//!   noisy visual model confuses belong to *different* audio pairs — the modalities are
//!   complementary.
//! - Random spatial frequency (3–5 cycles per image), phase, position, size and contrast
//!   (`visual_contrast`); with probability [`DISTRACTOR_P`] a distractor grating of random
//!   orientation and relative contrast in [`DISTRACTOR_RATIO`] (it sometimes dominates);
//!   two random coloured blobs; a random linear illumination gradient; a random colour cast.
//! - A faint class-dependent colour tint (the only cue a pixel-space template can pick up).
//! - i.i.d. Gaussian pixel noise (`visual_noise`), clamp to [0, 1], ImageNet normalisation.
//!
//! Orientation is translation-invariant and phase-random, so it needs learned (convolutional)
//! features: the visual branch is slower to learn than the audio pair cue.

use dgl_core::rng::Rng;
use std::f64::consts::PI;

use crate::visual::{IMAGENET_MEAN, IMAGENET_STD};

/// Grating orientation of each class, degrees (pairs (0,1), (2,3), (4,5) are 90° apart).
pub const ORIENTATION_DEG: [f64; 6] = [0.0, 90.0, 30.0, 120.0, 60.0, 150.0];
/// Unit colour tint per class (R, G, B), scaled by [`TINT`].
pub const TINT_RGB: [[f64; 3]; 6] =
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]];
/// Amplitude of the class tint on the [0, 1] scale.
pub const TINT: f64 = 0.03;

/// Probability of a distractor grating of random orientation.
pub const DISTRACTOR_P: f64 = 0.6;
/// Contrast of the distractor relative to the class grating (uniform); above 1 it dominates.
pub const DISTRACTOR_RATIO: (f64, f64) = (0.4, 1.3);

struct Gabor {
    cx: f64,
    cy: f64,
    kx: f64,
    ky: f64,
    phase: f64,
    inv2s2: f64,
    contrast: f64,
}

/// A Gabor patch evaluated on the pixel grid through its separable factors:
/// `c cos(kx dx + ky dy + φ) e^{−(dx² + dy²)/2σ²} = c Re(e^{i(kx dx + φ)} e^{i ky dy}) e^{−dx²/2σ²} e^{−dy²/2σ²}`.
struct GaborGrid {
    /// Per column: (cos, sin) of `kx dx + φ`, times `c e^{−dx²/2σ²}`.
    cols: Vec<(f64, f64)>,
    /// Per row: (cos, sin) of `ky dy`, times `e^{−dy²/2σ²}`.
    rows: Vec<(f64, f64)>,
}

impl GaborGrid {
    fn at(&self, xi: usize, yi: usize) -> f64 {
        let (a, b) = self.cols[xi];
        let (c, d) = self.rows[yi];
        a * c - b * d
    }
}

impl Gabor {
    fn random(theta_deg: f64, contrast: f64, s: f64, rng: &mut Rng) -> Self {
        let theta = theta_deg.to_radians();
        let cycles = rng.uniform_range(3.0, 5.0);
        let k = 2.0 * PI * cycles / s;
        let sigma = rng.uniform_range(0.18, 0.28) * s;
        Self {
            cx: rng.uniform_range(0.3, 0.7) * s,
            cy: rng.uniform_range(0.3, 0.7) * s,
            kx: k * theta.cos(),
            ky: k * theta.sin(),
            phase: rng.uniform_range(0.0, 2.0 * PI),
            inv2s2: 1.0 / (2.0 * sigma * sigma),
            contrast,
        }
    }

    fn grid(&self, size: usize) -> GaborGrid {
        let cols = (0..size)
            .map(|xi| {
                let dx = xi as f64 + 0.5 - self.cx;
                let e = self.contrast * (-dx * dx * self.inv2s2).exp();
                let a = self.kx * dx + self.phase;
                (e * a.cos(), e * a.sin())
            })
            .collect();
        let rows = (0..size)
            .map(|yi| {
                let dy = yi as f64 + 0.5 - self.cy;
                let e = (-dy * dy * self.inv2s2).exp();
                let a = self.ky * dy;
                (e * a.cos(), e * a.sin())
            })
            .collect();
        GaborGrid { cols, rows }
    }
}

/// Two independent standard normals (Box-Muller, both outputs used).
pub(crate) fn normal_pair(rng: &mut Rng) -> (f64, f64) {
    let u1 = 1.0 - rng.uniform();
    let u2 = rng.uniform();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (2.0 * PI * u2).sin_cos();
    (r * c, r * s)
}

/// One normalised image `[3, 1, size, size]` (channel-major) for class `class` (0..6).
pub fn image(class: usize, size: usize, contrast: [f64; 2], noise: f64, rng: &mut Rng) -> Vec<f32> {
    let s = size as f64;
    let theta = ORIENTATION_DEG[class] + 8.0 * rng.normal();
    let main = Gabor::random(theta, rng.uniform_range(contrast[0], contrast[1]), s, rng);
    let distractor = if rng.uniform() < DISTRACTOR_P {
        let th = rng.uniform_range(0.0, 180.0);
        let c = main.contrast * rng.uniform_range(DISTRACTOR_RATIO.0, DISTRACTOR_RATIO.1);
        Some(Gabor::random(th, c, s, rng))
    } else {
        None
    };
    let base = 0.45 + 0.05 * rng.normal();
    let cast: [f64; 3] = std::array::from_fn(|_| 0.06 * rng.normal());
    let grad_dir = rng.uniform_range(0.0, 2.0 * PI);
    let grad_amp = rng.uniform_range(0.0, 0.15) / s;
    let blobs: Vec<(f64, f64, f64, [f64; 3])> = (0..2)
        .map(|_| {
            let (bx, by) = (rng.uniform_range(0.0, s), rng.uniform_range(0.0, s));
            let r = rng.uniform_range(0.05, 0.15) * s;
            let col: [f64; 3] = std::array::from_fn(|_| rng.uniform_range(-0.12, 0.12));
            (bx, by, 1.0 / (2.0 * r * r), col)
        })
        .collect();
    let main = main.grid(size);
    let distractor = distractor.map(|d| d.grid(size));
    // Blobs are separable too: e^{−((x−bx)² + (y−by)²)/2r²}.
    let blob_axes: Vec<(Vec<f64>, Vec<f64>, [f64; 3])> = blobs
        .iter()
        .map(|&(bx, by, inv, col)| {
            let gx = (0..size).map(|xi| (-(xi as f64 + 0.5 - bx).powi(2) * inv).exp()).collect();
            let gy = (0..size).map(|yi| (-(yi as f64 + 0.5 - by).powi(2) * inv).exp()).collect();
            (gx, gy, col)
        })
        .collect();
    let plane = size * size;
    let mut out = vec![0.0f32; 3 * plane];
    let mut spare: Option<f64> = None;
    let mut noise_sample = |rng: &mut Rng| match spare.take() {
        Some(z) => z,
        None => {
            let (a, b) = normal_pair(rng);
            spare = Some(b);
            a
        }
    };
    for yi in 0..size {
        for xi in 0..size {
            let (x, y) = (xi as f64 + 0.5, yi as f64 + 0.5);
            let mut lum =
                base + main.at(xi, yi) + grad_amp * ((x - s / 2.0) * grad_dir.cos() + (y - s / 2.0) * grad_dir.sin());
            if let Some(d) = &distractor {
                lum += d.at(xi, yi);
            }
            let mut blob = [0.0; 3];
            for (gx, gy, col) in &blob_axes {
                let g = gx[xi] * gy[yi];
                for c in 0..3 {
                    blob[c] += g * col[c];
                }
            }
            for c in 0..3 {
                let v = lum + cast[c] + TINT * TINT_RGB[class][c] + blob[c] + noise * noise_sample(rng);
                let v = v.clamp(0.0, 1.0);
                out[c * plane + yi * size + xi] = ((v - IMAGENET_MEAN[c] as f64) / IMAGENET_STD[c] as f64) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_range_determinism() {
        let a = image(2, 32, [0.1, 0.3], 0.1, &mut Rng::new(9));
        assert_eq!(a, image(2, 32, [0.1, 0.3], 0.1, &mut Rng::new(9)));
        assert_eq!(a.len(), 3 * 32 * 32);
        // Normalised values stay within the image of [0, 1].
        assert!(a.iter().all(|v| (-2.2..=2.7).contains(v)));
    }
}
