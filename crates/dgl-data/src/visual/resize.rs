//! Pillow's bilinear resampling of 8-bit images, reproduced operation for operation (what
//! torchvision's `Resize` / `RandomResizedCrop` do on PIL images, as the official loaders use).
//!
//! Separable "triangle" filter whose support grows with the down-scaling factor (antialiasing);
//! coefficients normalised per output pixel and converted to 22-bit fixed point; horizontal pass
//! first (rounded to u8), then vertical (rounded to u8) — as Pillow's `ImagingResample`.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index, count, and fixed-point weights (`ksize` each).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    k: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[in0, in1)` of an axis of
/// `in_size` pixels mapped to `out_size` pixels.
fn coeffs(in_size: usize, in0: f64, in1: f64, out_size: usize) -> Coeffs {
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut w = vec![0.0f64; ksize];
    for xx in 0..out_size {
        let center = in0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = (((center + support + 0.5) as i64).min(in_size as i64) as usize).saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            *wx = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *wx;
        }
        for (x, &wx) in w.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { wx / ww } else { wx };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            k[xx * ksize + x] = if f < 0.0 { (f - 0.5) as i32 } else { (f + 0.5) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, ksize, k }
}

fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB8 image to `out_w × out_h` with Pillow's `Image.resize(size, BILINEAR)`.
pub fn resize_bilinear(img: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    if out_w == in_w && out_h == in_h {
        return img.clone();
    }
    let src = img.as_raw();
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let kh = coeffs(in_w, 0.0, in_w as f64, out_w);
    let kv = coeffs(in_h, 0.0, in_h as f64, out_h);
    // Horizontal pass over the rows the vertical pass will read.
    let (y_first, y_last) = if need_v {
        let (a, _) = kv.bounds[0];
        let (b, n) = kv.bounds[out_h - 1];
        (a, b + n)
    } else {
        (0, in_h)
    };
    let (tmp, tmp_w, tmp_h) = if need_h {
        let rows = y_last - y_first;
        let mut t = vec![0u8; out_w * rows * 3];
        for yy in 0..rows {
            let row = &src[(yy + y_first) * in_w * 3..(yy + y_first + 1) * in_w * 3];
            for xx in 0..out_w {
                let (xmin, xmax) = kh.bounds[xx];
                let kk = &kh.k[xx * kh.ksize..xx * kh.ksize + xmax];
                for c in 0..3 {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (x, &w) in kk.iter().enumerate() {
                        ss = ss.wrapping_add(row[(x + xmin) * 3 + c] as i32 * w);
                    }
                    t[(yy * out_w + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        (t, out_w, rows)
    } else {
        (src[y_first * in_w * 3..y_last * in_w * 3].to_vec(), in_w, y_last - y_first)
    };
    if !need_v {
        return RgbImage::from_raw(tmp_w as u32, tmp_h as u32, tmp).expect("sizes match");
    }
    let mut out = vec![0u8; out_w * out_h * 3];
    for yy in 0..out_h {
        let (ymin, ymax) = kv.bounds[yy];
        let ymin = ymin - y_first;
        let kk = &kv.k[yy * kv.ksize..yy * kv.ksize + ymax];
        for xx in 0..out_w {
            for c in 0..3 {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (y, &w) in kk.iter().enumerate() {
                    ss = ss.wrapping_add(tmp[((y + ymin) * tmp_w + xx) * 3 + c] as i32 * w);
                }
                out[(yy * out_w + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).expect("sizes match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 77]));
        for (w, h) in [(224, 224), (5, 9), (37, 50)] {
            let r = resize_bilinear(&img, w, h);
            assert_eq!((r.width() as usize, r.height() as usize), (w, h));
            assert!(r.pixels().all(|p| p.0 == [10, 200, 77]));
        }
    }

    #[test]
    fn halving_averages_pairs_inside() {
        // Downscaling by 2: support 2, weights over 4 inputs (1/8, 3/8, 3/8, 1/8) inside.
        let img = RgbImage::from_fn(8, 1, |x, _| image::Rgb([(x * 10) as u8; 3]));
        let r = resize_bilinear(&img, 4, 1);
        // Output 1 centred at 3.0: inputs 1..5 with weights 1/8,3/8,3/8,1/8 → 10/8+60/8+90/8+40/8 = 25.
        assert_eq!(r.get_pixel(1, 0).0[0], 25);
    }
}
