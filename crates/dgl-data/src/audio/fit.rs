//! Fixed-length clips like the official loaders: periodic tiling (`np.tile`), a crop, and
//! clipping to [-1, 1].
//!
//! CREMA-D: `np.tile(x, 3)[:66150]` = crop of `n` samples from start 0 of the tiled clip.
//! Kinetics-Sounds / VGGSound: tile until ≥ 10 s, random start in [0, 5 s], 5 s crop. Because
//! tiling is periodic, the crop is simply `x[(start + i) mod len]` for `i < n`, whatever the
//! number of repetitions. Here the start is drawn uniformly from `[0, max_start]` with a seeded
//! [`Rng`] in training and is fixed at evaluation (`max_start / 2`, the mean of the training
//! distribution; 0 for CREMA-D) — the official KS/VGG loaders also draw it at test time, which
//! makes their test accuracy non-deterministic.

use dgl_core::rng::Rng;

use crate::error::{DataError, Result};

/// `n` samples of the periodic extension of `x`, starting at `start`: `x[(start + i) mod len]`.
pub fn tile_crop(x: &[f32], n: usize, start: usize) -> Result<Vec<f32>> {
    tile_map(x, n, start, |v| v)
}

/// `f` of each of the `n` samples of the periodic extension of `x` from `start`, copied period by
/// period.
fn tile_map(x: &[f32], n: usize, start: usize, f: impl Fn(f32) -> f32) -> Result<Vec<f32>> {
    if x.is_empty() {
        return Err(DataError::Invalid("cannot tile an empty clip".into()));
    }
    let mut out = Vec::with_capacity(n);
    let mut pos = start % x.len();
    while out.len() < n {
        let take = (x.len() - pos).min(n - out.len());
        out.extend(x[pos..pos + take].iter().map(|&v| f(v)));
        pos = 0;
    }
    Ok(out)
}

/// Clamps every sample to [-1, 1] (`x[x > 1] = 1; x[x < -1] = -1`).
pub fn clip_unit(x: &mut [f32]) {
    for v in x {
        *v = v.clamp(-1.0, 1.0);
    }
}

/// Crop start: uniform in `[0, max_start]` with `rng` (training), `max_start / 2` without.
pub fn choose_start(max_start: usize, rng: Option<&mut Rng>) -> usize {
    match rng {
        Some(r) => r.below(max_start + 1),
        None => max_start / 2,
    }
}

/// Tile → crop `n` samples from a start in `[0, max_start]` → clip to [-1, 1] (one pass: clipping
/// commutes with tiling, so each period is clipped while it is copied).
pub fn fit_clip(x: &[f32], n: usize, max_start: usize, rng: Option<&mut Rng>) -> Result<Vec<f32>> {
    tile_map(x, n, choose_start(max_start, rng), |v| v.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_like_numpy() {
        // np.tile([1,2,3], 3)[:7] = [1,2,3,1,2,3,1]
        assert_eq!(tile_crop(&[1.0, 2.0, 3.0], 7, 0).unwrap(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]);
        assert_eq!(tile_crop(&[1.0, 2.0, 3.0], 4, 2).unwrap(), vec![3.0, 1.0, 2.0, 3.0]);
        assert!(tile_crop(&[], 4, 0).is_err());
    }

    #[test]
    fn clips_and_chooses_starts() {
        let y = fit_clip(&[2.0, -3.0, 0.5], 4, 0, None).unwrap();
        assert_eq!(y, vec![1.0, -1.0, 0.5, 1.0]);
        // Same as tile_crop + clip_unit, for any start.
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 1.5).collect();
        for max_start in [0, 5, 36, 40, 100] {
            let got = fit_clip(&x, 200, max_start, Some(&mut Rng::new(0))).unwrap();
            let mut want = tile_crop(&x, 200, choose_start(max_start, Some(&mut Rng::new(0)))).unwrap();
            clip_unit(&mut want);
            assert_eq!(got, want);
        }
        assert!(fit_clip(&[], 4, 0, None).is_err());
        assert_eq!(choose_start(10, None), 5);
        let mut r = Rng::new(1);
        let s: Vec<usize> = (0..200).map(|_| choose_start(3, Some(&mut r))).collect();
        assert!(s.iter().all(|&v| v <= 3) && (0..=3).all(|v| s.contains(&v)));
    }
}
