//! The embedded RGB-D segmentation set (`kind = "synthetic-rgbd"`): the default data of the
//! ESANet / NYUv2 half of the project (Table 5), generated in memory from a seed — no files.
//!
//! A scene is a wall seen head-on (64 × 64 pixels by default: ESANet-style models need multiples of 32) with objects of seven classes:
//!
//! | id | class | colour | depth |
//! |---|---|---|---|
//! | 0 | wall | the scene's wall colour (random hue, low saturation) | a tilted plane, 2.2–3.8 m |
//! | 1 | box | **the wall's colour** | a flat front face 250–700 mm in front of the wall (step edges) |
//! | 2 | slanted board | **the wall's colour** | a plane leaning out of the wall: 0 at one edge, 250–700 mm at the opposite |
//! | 3 | bump | **the wall's colour** | a half-ellipsoid dome, 250–700 mm high |
//! | 4 | red poster | saturated red | **flat on the wall** (the wall's depth) |
//! | 5 | blue poster | saturated blue | **flat on the wall** |
//! | 6 | striped poster | red and blue stripes (2–3 px, horizontal, vertical or diagonal) | **flat on the wall** |
//!
//! and void (255): with probability ½ an unlabelled rectangle of wall. Classes 1–3 are painted in
//! the wall's colour (same noise, no shading): colour alone cannot see them. Classes 4–6 lie flat
//! on the wall: depth alone cannot see them. Telling a box from a board from a bump needs local
//! geometry (relief against the surrounding wall, slope, curvature), and the wall's distance varies
//! more between scenes than the objects' relief, so a pixel's depth alone says little. Posters
//! cover about twice the pixels of the depth objects and per-pixel hue finds two of their three
//! classes: colour is the easy, dominant modality. `docs/data.md` gives measured per-pixel oracles.
//!
//! Modalities and labels exactly as [`crate::datasets::nyuv2`]: `rgb` `[3, H, W]` (ImageNet
//! normalisation), `depth` `[1, H, W]` (millimetres, ESANet's NYUv2 statistics), labels `[H, W]`
//! with void 255, ESANet's joint training augmentation in `Mode::Train` (`augment`). A sample is a
//! pure function of `(config, split, index)` (and the augmentation seed).

use dgl_core::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{dominant_class, Dataset, Example, Mode, Split};
use crate::datasets::nyuv2::{NYUV2_DEPTH_MEAN, NYUV2_DEPTH_STD, VOID};
use crate::error::{DataError, Result};
use crate::limits::{self, LimitExt};
use crate::synthetic::config::MAX_SAMPLES;
use crate::visual::rgbd::{esanet_eval, esanet_train, normalize, HsvJitter, RgbdAugment, RgbdFrame};

/// Number of classes (wall, 3 depth classes, 3 colour classes).
pub const NUM_CLASSES: usize = 7;
/// Class names, by id.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["wall", "box", "slanted board", "bump", "red poster", "blue poster", "striped poster"];
/// The classes only depth shows.
pub const DEPTH_CLASSES: [u32; 3] = [1, 2, 3];
/// The classes only colour shows.
pub const COLOUR_CLASSES: [u32; 3] = [4, 5, 6];

/// Everything that defines the set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RgbdSetConfig {
    pub seed: u64,
    pub n_train: usize,
    pub n_test: usize,
    /// Image height and width.
    pub height: usize,
    pub width: usize,
    /// Standard deviation of the per-pixel colour noise, on the 0–255 scale.
    pub colour_noise: f64,
    /// Standard deviation of the per-pixel depth noise, millimetres.
    pub depth_noise_mm: f64,
    /// ESANet's joint augmentation in `Mode::Train` (never at evaluation).
    pub augment: bool,
    /// Range of the random rescale factor.
    pub scale: [f64; 2],
    /// The colour jitter of the augmentation.
    pub hsv: HsvJitter,
}

impl Default for RgbdSetConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            n_train: 400,
            n_test: 120,
            height: 64,
            width: 64,
            colour_noise: 6.0,
            depth_noise_mm: 15.0,
            augment: true,
            scale: [1.0, 1.4],
            hsv: HsvJitter::Paper,
        }
    }
}

impl RgbdSetConfig {
    /// Split sizes in `1..=`[`MAX_SAMPLES`], a size of at least 24 × 24 within the image limits,
    /// noise finite and ≥ 0, a valid scale range; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        for (key, n) in [("n_train", self.n_train), ("n_test", self.n_test)] {
            if n == 0 {
                return bad(format!("{key} must be >= 1"));
            }
            MAX_SAMPLES.check_key(key, n as u64).map_err(|e| DataError::Invalid(e.to_string()))?;
        }
        crate::datasets::options::check_rgbd_geometry(self.height, self.width, self.scale)?;
        if self.height < 24 || self.width < 24 {
            return bad(format!("height and width must be at least 24, got {} × {}", self.height, self.width));
        }
        for (key, v) in [("colour_noise", self.colour_noise), ("depth_noise_mm", self.depth_noise_mm)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{key} must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

const STREAM_SCENE: u64 = 0x5CE4E;

/// One split of the generated RGB-D set (every scene generated at construction).
pub struct SyntheticRgbd {
    cfg: RgbdSetConfig,
    frames: Vec<RgbdFrame>,
    dominant: Vec<u32>,
}

impl SyntheticRgbd {
    pub fn new(cfg: &RgbdSetConfig, split: Split) -> Result<Self> {
        cfg.validate()?;
        let n = match split {
            Split::Train => cfg.n_train,
            Split::Test => cfg.n_test,
        };
        let split_seed = Rng::derive(cfg.seed, 0x5EED_0000 + split.id()).next_u64();
        let frames: Vec<RgbdFrame> = (0..n)
            .into_par_iter()
            .map(|i| scene(cfg, &mut Rng::derive(Rng::derive(split_seed, i as u64).next_u64(), STREAM_SCENE)))
            .collect();
        let dominant = frames.iter().map(|f| dominant_class(&f.labels, NUM_CLASSES, Some(VOID))).collect();
        Ok(Self { cfg: cfg.clone(), frames, dominant })
    }

    pub fn config(&self) -> &RgbdSetConfig {
        &self.cfg
    }

    /// The generated scene `index` before any transform: RGB 0–255, depth in mm, class ids.
    pub fn frame(&self, index: usize) -> Result<&RgbdFrame> {
        self.frames.get(index).ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a split of {}", self.frames.len()))
        })
    }
}

/// RGB (0–255) of a hue / saturation / value colour.
fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let (r, g, b) = crate::visual::rgbd::hsv_to_rgb(h.rem_euclid(1.0) as f32, s as f32, v as f32);
    [r as f64 * 255.0, g as f64 * 255.0, b as f64 * 255.0]
}

/// An axis-aligned box `(top, left, height, width)`.
type Rect = (usize, usize, usize, usize);

fn overlaps(a: Rect, b: Rect, gap: usize) -> bool {
    a.0 < b.0 + b.2 + gap && b.0 < a.0 + a.2 + gap && a.1 < b.1 + b.3 + gap && b.1 < a.1 + a.3 + gap
}

/// Places a `h × w` box inside the image, away from `taken`; `None` after 50 tries.
fn place(rng: &mut Rng, taken: &[Rect], h: usize, w: usize, ih: usize, iw: usize) -> Option<Rect> {
    for _ in 0..50 {
        let r = (rng.below(ih - h + 1), rng.below(iw - w + 1), h, w);
        if !taken.iter().any(|&t| overlaps(r, t, 1)) {
            return Some(r);
        }
    }
    None
}

/// A side length in `[lo, hi]` × `n`, at least 4.
fn side(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> usize {
    ((rng.uniform_range(lo, hi) * n as f64).round() as usize).clamp(4, n)
}

/// Generates one scene.
fn scene(cfg: &RgbdSetConfig, rng: &mut Rng) -> RgbdFrame {
    let (h, w) = (cfg.height, cfg.width);
    // Wall: colour, tilt, distance, illumination gradient.
    let wall = hsv(rng.uniform(), rng.uniform_range(0.05, 0.25), rng.uniform_range(0.45, 0.8));
    let d0 = rng.uniform_range(2200.0, 3800.0);
    let (gx, gy) = (rng.uniform_range(-6.0, 6.0), rng.uniform_range(-6.0, 6.0));
    let wall_depth = |y: f64, x: f64| d0 + gx * (x - w as f64 / 2.0) + gy * (y - h as f64 / 2.0);
    let (lx, ly) = (rng.uniform_range(-0.12, 0.12), rng.uniform_range(-0.12, 0.12));
    let mut albedo: Vec<[f64; 3]> = vec![wall; h * w];
    let mut depth: Vec<f64> = (0..h * w).map(|p| wall_depth((p / w) as f64, (p % w) as f64)).collect();
    let mut labels = vec![0u32; h * w];

    let mut taken: Vec<Rect> = Vec::new();
    // Posters first (2–3), then depth objects (1–3): classes drawn uniformly within each group.
    let n_posters = 2 + rng.below(2);
    let n_shapes = 1 + rng.below(3);
    for k in 0..n_posters + n_shapes {
        let poster = k < n_posters;
        let class = if poster { 4 + rng.below(3) as u32 } else { 1 + rng.below(3) as u32 };
        let (bh, bw) = if poster {
            (side(rng, h, 0.25, 0.42), side(rng, w, 0.2, 0.35))
        } else {
            (side(rng, h, 0.2, 0.35), side(rng, w, 0.16, 0.3))
        };
        let Some(r) = place(rng, &taken, bh, bw, h, w) else { continue };
        taken.push(r);
        let (top, left) = (r.0, r.1);
        let red = hsv(rng.uniform_range(-0.03, 0.03), rng.uniform_range(0.6, 0.9), rng.uniform_range(0.55, 0.9));
        let blue = hsv(rng.uniform_range(0.59, 0.65), rng.uniform_range(0.6, 0.9), rng.uniform_range(0.55, 0.9));
        let stripe = 2 + rng.below(2);
        let orient = rng.below(3);
        let relief = rng.uniform_range(250.0, 700.0);
        let angle = rng.uniform() * std::f64::consts::TAU;
        let (ca, sa) = (angle.cos(), angle.sin());
        // Projections of the box corners on the slope direction, to normalise it to [0, 1].
        let proj = |y: f64, x: f64| x * ca + y * sa;
        let corners = [(0.0, 0.0), (0.0, bw as f64 - 1.0), (bh as f64 - 1.0, 0.0), (bh as f64 - 1.0, bw as f64 - 1.0)];
        let pmin = corners.iter().map(|&(y, x)| proj(y, x)).fold(f64::INFINITY, f64::min);
        let pmax = corners.iter().map(|&(y, x)| proj(y, x)).fold(f64::NEG_INFINITY, f64::max);
        for y in 0..bh {
            for x in 0..bw {
                let p = (top + y) * w + left + x;
                let (py, px) = ((top + y) as f64, (left + x) as f64);
                match class {
                    4..=6 => {
                        albedo[p] = match class {
                            4 => red,
                            5 => blue,
                            _ => {
                                let t = match orient {
                                    0 => y,
                                    1 => x,
                                    _ => x + y,
                                };
                                if (t / stripe) % 2 == 0 {
                                    red
                                } else {
                                    blue
                                }
                            }
                        };
                        labels[p] = class;
                    }
                    1 => {
                        let cy = top as f64 + bh as f64 / 2.0;
                        let cx = left as f64 + bw as f64 / 2.0;
                        depth[p] = wall_depth(cy, cx) - relief;
                        labels[p] = 1;
                    }
                    2 => {
                        let t = (proj(y as f64, x as f64) - pmin) / (pmax - pmin).max(1e-9);
                        depth[p] = wall_depth(py, px) - relief * t;
                        labels[p] = 2;
                    }
                    _ => {
                        let ry = (y as f64 + 0.5 - bh as f64 / 2.0) / (bh as f64 / 2.0);
                        let rx = (x as f64 + 0.5 - bw as f64 / 2.0) / (bw as f64 / 2.0);
                        let r2 = rx * rx + ry * ry;
                        if r2 < 1.0 {
                            depth[p] = wall_depth(py, px) - relief * (1.0 - r2).sqrt();
                            labels[p] = 3;
                        }
                    }
                }
            }
        }
    }
    // An unlabelled patch of wall (void), half of the time.
    if rng.uniform() < 0.5 {
        let (ph, pw) = (3 + rng.below(6), 3 + rng.below(6));
        if let Some((top, left, ph, pw)) = place(rng, &taken, ph, pw, h, w) {
            for y in top..top + ph {
                for x in left..left + pw {
                    labels[y * w + x] = VOID;
                }
            }
        }
    }
    let mut rgb = Vec::with_capacity(h * w * 3);
    for (p, a) in albedo.iter().enumerate() {
        let light = 1.0 + lx * ((p % w) as f64 / w as f64 - 0.5) * 2.0 + ly * ((p / w) as f64 / h as f64 - 0.5) * 2.0;
        for &c in a {
            rgb.push((c * light + cfg.colour_noise * rng.normal()).round().clamp(0.0, 255.0) as f32);
        }
    }
    let depth =
        depth.iter().map(|&d| (d + cfg.depth_noise_mm * rng.normal()).round().clamp(1.0, 65535.0) as u16).collect();
    RgbdFrame { height: h, width: w, rgb, depth, labels }
}

impl Dataset for SyntheticRgbd {
    fn len(&self) -> usize {
        self.frames.len()
    }
    fn num_classes(&self) -> usize {
        NUM_CLASSES
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["rgb".into(), "depth".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let (h, w) = (self.cfg.height, self.cfg.width);
        vec![vec![3, h, w], vec![1, h, w]]
    }
    fn label_shape(&self) -> Option<[usize; 2]> {
        Some([self.cfg.height, self.cfg.width])
    }
    fn ignore_label(&self) -> Option<u32> {
        Some(VOID)
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.frame(index)?;
        Ok(self.dominant[index])
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        let frame = self.frame(index)?;
        let (h, w) = (self.cfg.height, self.cfg.width);
        let out = match mode {
            Mode::Train { seed } if self.cfg.augment => {
                let aug = RgbdAugment {
                    scale: self.cfg.scale,
                    hsv: self.cfg.hsv,
                    max_pixels: limits::IMAGE_PIXELS.bound().unwrap_or(limits::IMAGE_PIXELS.default),
                };
                esanet_train(frame, h, w, &aug, &mut Rng::new(seed)).map_err(DataError::Invalid)?
            }
            _ => esanet_eval(frame.clone(), h, w),
        };
        let (rgb, depth) = normalize(&out, NYUV2_DEPTH_MEAN as f32, NYUV2_DEPTH_STD as f32, false);
        Ok(Example::dense(vec![rgb, depth], out.labels, NUM_CLASSES, Some(VOID)))
    }
}
