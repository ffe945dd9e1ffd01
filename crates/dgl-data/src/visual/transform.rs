//! torchvision's frame transforms as the official loaders compose them.
//!
//! Train: `RandomResizedCrop(224)` (scale 0.08–1, ratio 3/4–4/3, bilinear) →
//! `RandomHorizontalFlip(0.5)` → `ToTensor` → `Normalize(ImageNet)`.
//! Eval: `Resize((224, 224))` → `ToTensor` → `Normalize(ImageNet)`.
//! Resizing reproduces Pillow's bilinear filter ([`super::resize`]); randomness comes from a
//! seeded [`Rng`] instead of torch's generator (same distributions, different streams).

use dgl_core::rng::Rng;
use image::RgbImage;

use super::resize::resize_bilinear;
use super::{IMAGENET_MEAN, IMAGENET_STD};

/// `(top, left, height, width)` of a crop.
pub type CropBox = (usize, usize, usize, usize);

/// torchvision `RandomResizedCrop.get_params`: up to 10 attempts of area fraction
/// `U(scale)` and aspect ratio `exp(U(ln ratio))`, `w = round(√(A r))`, `h = round(√(A / r))`,
/// accepted if it fits, at a uniform position; otherwise the central crop with the ratio clamped
/// into `ratio` (or the whole image).
pub fn random_resized_crop_params(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut Rng,
) -> CropBox {
    let area = (width * height) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform_range(scale.0, scale.1);
        let aspect = rng.uniform_range(lr0, lr1).exp();
        // Python's round() is half-to-even.
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            let i = rng.below(height - h + 1);
            let j = rng.below(width - w + 1);
            return (i, j, h, w);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0.min(ratio.1) {
        (width, (width as f64 / ratio.0.min(ratio.1)).round_ties_even() as usize)
    } else if in_ratio > ratio.0.max(ratio.1) {
        ((height as f64 * ratio.0.max(ratio.1)).round_ties_even() as usize, height)
    } else {
        (width, height)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// Crops `(top, left, height, width)` (PIL `Image.crop`, inside the image).
pub fn crop(img: &RgbImage, b: CropBox) -> RgbImage {
    image::imageops::crop_imm(img, b.1 as u32, b.0 as u32, b.3 as u32, b.2 as u32).to_image()
}

/// `ToTensor` + `Normalize(ImageNet)`: `[3, H, W]` channel-major f32.
pub fn to_normalized_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = w * h;
    let mut out = vec![0.0f32; 3 * plane];
    for (p, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + p] = (px.0[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

/// The train/eval frame transform.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameTransform {
    /// Output side (224).
    pub size: usize,
    /// RandomResizedCrop area range (0.08, 1.0).
    pub scale: (f64, f64),
    /// RandomResizedCrop aspect-ratio range (3/4, 4/3).
    pub ratio: (f64, f64),
    /// Horizontal flip probability (0.5).
    pub flip_p: f64,
}

impl Default for FrameTransform {
    fn default() -> Self {
        Self { size: 224, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0), flip_p: 0.5 }
    }
}

impl FrameTransform {
    /// Random crop → resize → flip → normalise; `[3, size, size]`.
    pub fn train(&self, img: &RgbImage, rng: &mut Rng) -> Vec<f32> {
        let b = random_resized_crop_params(img.width() as usize, img.height() as usize, self.scale, self.ratio, rng);
        let mut out = resize_bilinear(&crop(img, b), self.size, self.size);
        if rng.uniform() < self.flip_p {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        to_normalized_chw(&out)
    }

    /// Resize to `size × size` → normalise; `[3, size, size]`.
    pub fn eval(&self, img: &RgbImage) -> Vec<f32> {
        to_normalized_chw(&resize_bilinear(img, self.size, self.size))
    }
}

/// Stacks T frames of `[3, H, W]` into the model's `[3, T, H, W]` layout.
pub fn stack_frames(frames: &[Vec<f32>]) -> Vec<f32> {
    let t = frames.len();
    if t == 0 {
        return Vec::new();
    }
    let plane = frames[0].len() / 3;
    let mut out = vec![0.0f32; 3 * t * plane];
    for (ti, f) in frames.iter().enumerate() {
        for c in 0..3 {
            out[(c * t + ti) * plane..(c * t + ti + 1) * plane].copy_from_slice(&f[c * plane..(c + 1) * plane]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_params_fit_and_vary() {
        let mut rng = Rng::new(0);
        let mut areas = Vec::new();
        for _ in 0..500 {
            let (i, j, h, w) = random_resized_crop_params(320, 240, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(h > 0 && w > 0 && i + h <= 240 && j + w <= 320);
            areas.push((h * w) as f64 / (320.0 * 240.0));
        }
        assert!(areas.iter().any(|&a| a < 0.2) && areas.iter().any(|&a| a > 0.8));
    }

    #[test]
    fn fallback_is_central() {
        // A very wide image: no attempt can fit the ratio → central crop with ratio 4/3.
        let mut rng = Rng::new(1);
        let b = random_resized_crop_params(1000, 10, (0.99, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(b, (0, (1000 - 13) / 2, 10, 13));
    }

    #[test]
    fn eval_and_train_shapes_and_normalisation() {
        let img = RgbImage::from_pixel(50, 40, image::Rgb([255, 0, 128]));
        let t = FrameTransform::default();
        let e = t.eval(&img);
        assert_eq!(e.len(), 3 * 224 * 224);
        assert!((e[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((e[224 * 224] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        let tr = t.train(&img, &mut Rng::new(3));
        assert_eq!(tr.len(), 3 * 224 * 224);
        assert_eq!(tr, t.train(&img, &mut Rng::new(3)));
    }

    #[test]
    fn stacking_layout() {
        let a = vec![1.0, 2.0, 3.0]; // 3 channels of 1 pixel
        let b = vec![4.0, 5.0, 6.0];
        assert_eq!(stack_frames(&[a, b]), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
