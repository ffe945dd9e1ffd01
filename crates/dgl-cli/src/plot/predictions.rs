//! The prediction figure of a segmentation run (`plots/predictions.png`): for the first test
//! images, the inputs (a 3-channel modality in colour, a 1-channel one in grey, each stretched to
//! its own range per image), the ground truth, the multimodal prediction and each branch's (the
//! shared decoder with the other modalities zeroed), from the run's checkpoint on the CPU.
//! Classes are drawn in the PASCAL VOC colour map (class k in colour k + 1), void in black.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use dgl_core::task::Labels;
use dgl_data::Mode;
use plotters::prelude::*;

use super::{register_font, FAMILY};
use crate::config::DeviceKind;
use crate::error::Result;
use crate::eval::restore_run;
use crate::fsio::write_atomic;
use crate::run_dir::RunDir;

/// Test images shown (fewer when the split is smaller).
pub const IMAGES: usize = 4;
/// Width of one tile in pixels (the image is resampled, nearest neighbour).
const TILE_W: usize = 192;
const GAP: usize = 8;
const MARGIN: usize = 16;
const TITLE_H: usize = 40;
const HEADER_H: usize = 26;
const SWATCH: usize = 14;
const LEGEND_ROW: usize = 22;
/// Legend entries per line.
const LEGEND_PER_ROW: usize = 10;

/// The colour of class `c` (VOC colour map of index c + 1, so that no class is black).
pub fn class_colour(c: u32) -> [u8; 3] {
    let mut id = c + 1;
    let mut rgb = [0u8; 3];
    for bit in 0..8 {
        for (ch, v) in rgb.iter_mut().enumerate() {
            *v |= (((id >> ch) & 1) as u8) << (7 - bit);
        }
        id >>= 3;
    }
    rgb
}

/// One tile: `h × w` RGB pixels.
struct Tile {
    h: usize,
    w: usize,
    rgb: Vec<u8>,
}

/// Image `b` of an input batch `[B, C, H, W]` as a tile: C = 3 in colour, otherwise the first
/// channel in grey, stretched to [0, 255] over the image's own range.
fn input_tile(x: &Tensor, b: usize) -> Result<Tile> {
    let img = x.get(b)?.to_dtype(DType::F32)?;
    let (c, h, w) = img.dims3()?;
    let v = img.flatten_all()?.to_vec1::<f32>()?;
    let channels: Vec<usize> = if c == 3 { vec![0, 1, 2] } else { vec![0, 0, 0] };
    let used: Vec<f32> = channels.iter().flat_map(|&ch| v[ch * h * w..(ch + 1) * h * w].iter().copied()).collect();
    let lo = used.iter().copied().filter(|x| x.is_finite()).fold(f32::INFINITY, f32::min);
    let hi = used.iter().copied().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let mut rgb = vec![0u8; h * w * 3];
    for p in 0..h * w {
        for (k, &ch) in channels.iter().enumerate() {
            let x = v[ch * h * w + p];
            rgb[p * 3 + k] = if x.is_finite() { ((x - lo) * scale).round().clamp(0.0, 255.0) as u8 } else { 0 };
        }
    }
    Ok(Tile { h, w, rgb })
}

/// A label map `[H, W]` (class ids; `ignore` black) as a tile.
fn label_tile(map: &[u32], h: usize, w: usize, ignore: Option<u32>) -> Tile {
    let rgb = map.iter().flat_map(|&c| if Some(c) == ignore { [0, 0, 0] } else { class_colour(c) }).collect();
    Tile { h, w, rgb }
}

/// The argmax class map of image `b` of logits `[B, K, H, W]`.
fn predicted(logits: &Tensor, b: usize) -> Result<(Vec<u32>, usize, usize)> {
    let l = logits.get(b)?;
    let (_, h, w) = l.dims3()?;
    Ok((l.argmax(0)?.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?, h, w))
}

/// Draws the figure of the run in `run_dir` into `out_dir`. `Ok(Err(reason))`: not drawn (not a
/// segmentation run, no checkpoint, the run cannot be rebuilt — e.g. its data moved).
pub(super) fn draw(run_dir: &Path, out_dir: &Path, label: &str) -> Result<std::result::Result<PathBuf, String>> {
    if !run_dir.join(RunDir::CHECKPOINT).is_file() {
        return Ok(Err(format!("predictions: no {} in {}", RunDir::CHECKPOINT, run_dir.display())));
    }
    let r = match restore_run(run_dir, Some(DeviceKind::Cpu), "dgl plot") {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("predictions: the run could not be rebuilt from its checkpoint: {e}"))),
    };
    let Labels::DenseMap { ignore } = r.setup.task.labels() else {
        return Ok(Err("predictions: not a segmentation run".into()));
    };
    let (data, model, method) = (&r.setup.data, &r.setup.model, &r.setup.method);
    let n = IMAGES.min(data.test.len());
    if n == 0 {
        return Ok(Err("predictions: the test split is empty".into()));
    }
    let idx: Vec<usize> = (0..n).collect();
    let (x, y) = data.batch(data.test.as_ref(), &idx, Mode::Eval)?;
    let p = method.predict(model, &x)?;
    let names = dgl_core::MultimodalModel::modality_names(model);

    let mut headers: Vec<String> = names.clone();
    headers.push("ground truth".into());
    headers.push("prediction".into());
    headers.extend(p.branches.iter().map(|(b, _)| format!("{b} branch")));
    let mut rows: Vec<Vec<Tile>> = Vec::new();
    for b in 0..n {
        let mut row: Vec<Tile> = x.iter().map(|xi| input_tile(xi, b)).collect::<Result<_>>()?;
        let yb = y.get(b)?;
        let (h, w) = yb.dims2()?;
        row.push(label_tile(&yb.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?, h, w, ignore));
        for logits in std::iter::once(&p.multimodal).chain(p.branches.iter().map(|(_, l)| l)) {
            let (map, h, w) = predicted(logits, b)?;
            row.push(label_tile(&map, h, w, None));
        }
        rows.push(row);
    }
    let classes = r.setup.data.test.num_classes();
    let title = format!("{label} — test images 0-{}: inputs, ground truth (void black), predictions", n - 1);
    let png = compose(&title, &headers, &rows, classes)?;
    let path = out_dir.join("predictions.png");
    write_atomic(&path, &png)?;
    Ok(Ok(path))
}

/// Lays the tiles out in a grid under their column headers, with the class legend below, and
/// encodes the figure as PNG.
fn compose(title: &str, headers: &[String], rows: &[Vec<Tile>], classes: usize) -> Result<Vec<u8>> {
    let fail = |e: String| crate::CliError::Run(format!("plot predictions.png: {e}"));
    let cols = headers.len();
    let tile_h = rows.iter().flatten().map(|t| (t.h * TILE_W).div_ceil(t.w.max(1))).max().unwrap_or(TILE_W);
    let legend_rows = (classes + 1).div_ceil(LEGEND_PER_ROW);
    let w = 2 * MARGIN + cols * TILE_W + (cols - 1) * GAP;
    let grid_top = TITLE_H + HEADER_H;
    let legend_top = grid_top + rows.len() * (tile_h + GAP) + GAP;
    let h = legend_top + legend_rows * LEGEND_ROW + MARGIN;
    let mut buf = vec![255u8; w * h * 3];
    for (r, row) in rows.iter().enumerate() {
        for (c, t) in row.iter().enumerate() {
            let (x0, y0) = (MARGIN + c * (TILE_W + GAP), grid_top + r * (tile_h + GAP));
            let th = (t.h * TILE_W).div_ceil(t.w.max(1));
            // Nearest-neighbour resampling to TILE_W × th.
            for ty in 0..th {
                let sy = (ty * t.h / th).min(t.h - 1);
                for tx in 0..TILE_W {
                    let sx = (tx * t.w / TILE_W).min(t.w - 1);
                    let s = (sy * t.w + sx) * 3;
                    let d = ((y0 + ty) * w + x0 + tx) * 3;
                    buf[d..d + 3].copy_from_slice(&t.rgb[s..s + 3]);
                }
            }
        }
    }
    let entries: Vec<(String, [u8; 3])> = std::iter::once(("void".to_string(), [0, 0, 0]))
        .chain((0..classes as u32).map(|c| (format!("class {c}"), class_colour(c))))
        .collect();
    let legend_w = (w - 2 * MARGIN) / LEGEND_PER_ROW;
    let pos = |i: usize| (MARGIN + (i % LEGEND_PER_ROW) * legend_w, legend_top + (i / LEGEND_PER_ROW) * LEGEND_ROW);
    for (i, (_, c)) in entries.iter().enumerate() {
        let (x0, y0) = pos(i);
        for yy in y0 + 2..(y0 + 2 + SWATCH).min(h) {
            for xx in x0..(x0 + SWATCH).min(w) {
                buf[(yy * w + xx) * 3..(yy * w + xx) * 3 + 3].copy_from_slice(c);
            }
        }
    }
    register_font()?;
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let text = |s: &str, x: usize, y: usize, px: u32| {
            root.draw(&Text::new(s.to_string(), (x as i32, y as i32), (FAMILY, px).into_font().color(&BLACK)))
        };
        text(title, MARGIN, 12, 17).map_err(|e| fail(e.to_string()))?;
        for (c, head) in headers.iter().enumerate() {
            text(head, MARGIN + c * (TILE_W + GAP), TITLE_H + 4, 15).map_err(|e| fail(e.to_string()))?;
        }
        for (i, (name, _)) in entries.iter().enumerate() {
            let (x0, y0) = pos(i);
            text(name, x0 + SWATCH + 4, y0 + 1, 13).map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(w as u32, h as u32, buf).ok_or_else(|| fail("bad buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_colours_are_the_voc_colour_map_shifted_by_one() {
        // VOC: 1 → (128, 0, 0), 2 → (0, 128, 0), 3 → (128, 128, 0), 8 → (64, 0, 0).
        assert_eq!(class_colour(0), [128, 0, 0]);
        assert_eq!(class_colour(1), [0, 128, 0]);
        assert_eq!(class_colour(2), [128, 128, 0]);
        assert_eq!(class_colour(7), [64, 0, 0]);
        let all: std::collections::HashSet<[u8; 3]> = (0..255).map(class_colour).collect();
        assert_eq!(all.len(), 255, "distinct, none black");
        assert!(!all.contains(&[0, 0, 0]));
    }

    #[test]
    fn input_tiles_stretch_each_image_to_its_range() {
        let x = Tensor::new(&[[[[1f32, 3.0], [5.0, 9.0]]]], &candle_core::Device::Cpu).unwrap();
        let t = input_tile(&x, 0).unwrap();
        assert_eq!((t.h, t.w), (2, 2));
        let grey: Vec<u8> = t.rgb.chunks(3).map(|p| p[0]).collect();
        assert_eq!(grey, [0, 64, 128, 255]);
        assert!(t.rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }
}
