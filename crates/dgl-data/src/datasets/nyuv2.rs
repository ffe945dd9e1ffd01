//! NYUv2 (40-class semantic segmentation, Table 5) in the layout ESANet's preparation script
//! writes (`kind = "nyuv2"`).
//!
//! ```text
//! <root>/train.txt, <root>/test.txt          one image name per line (`0003`, …: the 1-based
//!                                            index in nyu_depth_v2_labeled.mat, 4 digits)
//! <root>/{train,test}/rgb/<name>.png         8-bit RGB, 640 × 480
//! <root>/{train,test}/depth/<name>.png       16-bit grey, millimetres (refined depth, `depths`)
//! <root>/{train,test}/depth_raw/<name>.png   16-bit grey, millimetres (raw depth, `rawDepths`;
//!                                            0 = no measurement)
//! <root>/{train,test}/labels_40/<name>.png   8-bit grey, 0 = void, 1..=40 = classes
//! <root>/{train,test}/labels_13/<name>.png   8-bit grey, 0 = void, 1..=13 (option classes = 13)
//! ```
//!
//! Every name is ESANet's (TUI-NICR/ESANet at f72ea8a; these files are unchanged since the
//! paper-era commit 49d2201):
//! - list files `train.txt` / `test.txt` and split folders `train` / `test`:
//!   `src/datasets/nyuv2/nyuv2.py:28-30` (`SPLIT_FILELIST_FILENAMES`, `SPLIT_DIRS`); written by
//!   `src/datasets/nyuv2/prepare_dataset.py:271-279` (`np.savetxt(…, fmt='%04d')`), read by
//!   `src/datasets/nyuv2/pytorch_dataset.py:37-40` (`np.loadtxt(fp, dtype=str)`);
//! - folders `rgb`, `depth`, `depth_raw`, `labels_{n}`: `nyuv2.py:35-39` (`RGB_DIR`, `DEPTH_DIR`,
//!   `DEPTH_RAW_DIR`, `LABELS_DIR_FMT`); file name `f'{idx:04d}.png'`:
//!   `prepare_dataset.py:207-246`; path `<data_dir>/<split>/<dir>/<name>.png`:
//!   `pytorch_dataset.py:112-121`; `depth_mode == 'raw'` reads `depth_raw`: `pytorch_dataset.py:126-130`;
//! - depth in millimetres as uint16 (`(depth_images * 1e3).astype('uint16')`):
//!   `prepare_dataset.py:144-146`; labels_40 = `mapping_894_to_40[label_894].astype('uint8')`
//!   with 0 = void: `prepare_dataset.py:160, 231-233`; the RGB PNG is written from BGR
//!   (`cv2.cvtColor(…, COLOR_RGB2BGR)`, 207-208), so the file holds RGB;
//! - class names (void first): `nyuv2.py:42-55`.
//!
//! Modalities `rgb` `[3, H, W]` and `depth` `[1, H, W]`; labels `[H, W]` with NYUv2's label l ∈ 1..=K
//! as class l − 1 and 0 (void) as 255 (ESANet trains on `label − 1` with void → −1 ignored,
//! `src/utils.py:18-50`). Normalisation, resizing and the training augmentation are ESANet's
//! (`src/preprocessing.py`, see [`crate::visual::rgbd`]); depth statistics: mean 2841.94941272766,
//! std 1417.2594281672277 for *both* depth modes, as ESANet (`pytorch_dataset.py:53-58`; its
//! comment gives the raw-depth statistics 2769.0187903686697 / 1350.4174149841133, available as
//! [`NYUV2_RAW_DEPTH_MEAN`] / [`NYUV2_RAW_DEPTH_STD`] through the `depth_mean` / `depth_std`
//! options); with raw depth, 0 (no measurement) stays 0 after normalisation
//! (`preprocessing.py:198-205`).
//!
//! Checked when opening (error naming the file, and `file:line` for the lists): list syntax (one
//! name per line, no path separators or spaces, no duplicates, no name in both lists), every file
//! present, regular, non-empty, within [`limits::FILE_BYTES`], with a readable image header of at
//! most [`limits::IMAGE_PIXELS`] pixels, of the right kind (RGB: 8-bit RGB; depth: 16-bit grey;
//! labels: 8-bit grey) and the same size as the sample's RGB image. Checked when reading (and by
//! `verify` / `prepare`, which read everything): that the files decode, label values ≤ K. With
//! `skip_bad` a bad item is left out and counted in the [`Report`] (missing: a file absent; corrupt:
//! everything else); without it, it is an error.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dgl_core::rng::Rng;
use image::{ColorType, DynamicImage, ImageDecoder, ImageReader};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::fsutil::{check_file, open_regular, read_bounded};
use super::options::Nyuv2Options;
use super::report::Report;
use crate::dataset::{dominant_class, Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};
use crate::limits::{self, LimitExt};
use crate::visual::rgbd::{esanet_eval, esanet_train, normalize, RgbdAugment, RgbdFrame};

/// ESANet's NYUv2 depth statistics (refined depth; used for both depth modes by ESANet).
pub const NYUV2_DEPTH_MEAN: f64 = 2841.94941272766;
pub const NYUV2_DEPTH_STD: f64 = 1417.2594281672277;
/// The raw-depth statistics quoted in ESANet's comment (not its default).
pub const NYUV2_RAW_DEPTH_MEAN: f64 = 2769.0187903686697;
pub const NYUV2_RAW_DEPTH_STD: f64 = 1350.4174149841133;
/// The label-map value of void positions (NYUv2's label 0).
pub const VOID: u32 = 255;

/// The 40 classes (NYUv2 labels 1..=40 = classes 0..40), ESANet's `CLASS_NAMES_40` without void.
pub const CLASS_NAMES_40: [&str; 40] = [
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refridgerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
];

/// The 13 classes, ESANet's `CLASS_NAMES_13` without void.
pub const CLASS_NAMES_13: [&str; 13] = [
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
];

/// Which depth images: ESANet's `depth_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepthMode {
    /// `depth/`: the toolbox's in-painted depth (`depths` in the .mat), ESANet's default.
    #[default]
    Refined,
    /// `depth_raw/`: the sensor's depth (`rawDepths`), 0 where nothing was measured.
    Raw,
}

impl DepthMode {
    /// The folder name (`nyuv2.py:35-36`).
    pub fn dir(self) -> &'static str {
        match self {
            DepthMode::Refined => "depth",
            DepthMode::Raw => "depth_raw",
        }
    }
}

/// One image of a split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nyuv2Item {
    /// The name in the list (`0003`).
    pub name: String,
    /// 1-based line in the list file.
    pub line: usize,
    pub rgb: PathBuf,
    pub depth: PathBuf,
    pub labels: PathBuf,
}

/// One split of NYUv2.
pub struct Nyuv2 {
    split: Split,
    opts: Nyuv2Options,
    list: PathBuf,
    items: Vec<Nyuv2Item>,
    report: Report,
    /// The dominant class of each item's evaluation label map, once known.
    dominant: Vec<OnceLock<u32>>,
    depth_mean: f32,
    depth_std: f32,
}

/// Parses a list file (`train.txt`): one name per non-blank line, surrounding spaces ignored.
/// Returns `(line, name)`; errors name `path:line`.
pub fn parse_list(bytes: &[u8], path: &Path) -> Result<Vec<(usize, String)>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        DataError::bad_line(path, line, "not valid UTF-8")
    })?;
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        if name.split_whitespace().count() > 1 {
            return Err(DataError::bad_line(
                path,
                line,
                format!("{name:?} is not one image name (one name such as 0003 per line)"),
            ));
        }
        super::check_id(name).map_err(|why| DataError::bad_line(path, line, why))?;
        if let Some(first) = seen.insert(name, line) {
            return Err(DataError::bad_line(
                path,
                line,
                format!("image {name:?} is listed twice (first on line {first})"),
            ));
        }
        out.push((line, name.to_string()));
    }
    Ok(out)
}

/// Reads a list file (bounded by [`limits::TEXT_BYTES`]).
fn read_list(path: &Path) -> Result<Vec<(usize, String)>> {
    let bytes = read_bounded(path, limits::TEXT_BYTES)?;
    parse_list(&bytes, path)
}

/// What a file of a sample must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rgb,
    Depth,
    Labels,
}

impl Kind {
    fn color(self) -> ColorType {
        match self {
            Kind::Rgb => ColorType::Rgb8,
            Kind::Depth => ColorType::L16,
            Kind::Labels => ColorType::L8,
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Rgb => "an 8-bit RGB image",
            Kind::Depth => "a 16-bit single-channel depth image (uint16 millimetres, as ESANet writes it)",
            Kind::Labels => "an 8-bit single-channel label image (0 = void, 1..=K)",
        }
    }
    fn check_color(self, found: ColorType, path: &Path) -> Result<()> {
        if found == self.color() {
            return Ok(());
        }
        let hint = match (self, found) {
            (Kind::Depth, ColorType::L8) => " — an 8-bit depth image has lost the millimetres; re-export it as 16-bit",
            (Kind::Labels, ColorType::Rgb8 | ColorType::Rgba8) => {
                " — a colour label image (labels_*_colored?) is not a class-id image"
            }
            _ => "",
        };
        Err(DataError::bad_file(path, format!("is {found:?}, expected {}{hint}", self.what())))
    }
}

/// Size and kind of an image from its header (nothing decoded), with the file checks.
fn probe(path: &Path, kind: Kind) -> Result<(u32, u32)> {
    check_file(path)?;
    let f = open_regular(path)?;
    let reader = ImageReader::new(BufReader::new(f))
        .with_guessed_format()
        .map_err(|e| DataError::bad_file(path, format!("cannot read image: {e}")))?;
    if reader.format().is_none() {
        return Err(DataError::bad_file(path, "not a recognised image format (expected PNG)"));
    }
    let dec = reader
        .into_decoder()
        .map_err(|e| DataError::bad_file(path, format!("corrupt or unsupported image header: {e}")))?;
    let dims = dec.dimensions();
    check_pixels(dims, path)?;
    kind.check_color(dec.color_type(), path)?;
    Ok(dims)
}

fn check_pixels((w, h): (u32, u32), path: &Path) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(DataError::bad_file(path, "image with zero width or height"));
    }
    limits::IMAGE_PIXELS
        .check_label(w as u64 * h as u64, &format!("the image ({w} × {h} in its header)"))
        .map_err(|r| DataError::bad_file(path, r))
}

/// Reads and decodes one file of a sample, checking its kind.
fn decode(path: &Path, kind: Kind) -> Result<DynamicImage> {
    let bytes = read_bounded(path, limits::FILE_BYTES)?;
    check_pixels(crate::visual::image_dimensions(&bytes, path)?, path)?;
    let img = ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::bad_file(path, format!("cannot read image: {e}")))?
        .decode()
        .map_err(|e| DataError::bad_file(path, format!("corrupt or truncated image: {e}")))?;
    kind.check_color(img.color(), path)?;
    Ok(img)
}

/// A sample's file sizes agree with its RGB image.
fn same_size(rgb: (u32, u32), other: (u32, u32), path: &Path, rgb_path: &Path) -> Result<()> {
    if rgb == other {
        return Ok(());
    }
    Err(DataError::bad_file(
        path,
        format!(
            "is {} × {} (width × height), but its RGB image {} is {} × {}",
            other.0,
            other.1,
            rgb_path.display(),
            rgb.0,
            rgb.1
        ),
    ))
}

impl Nyuv2 {
    /// Opens one split (see the module docs for what is checked).
    pub fn open(opts: &Nyuv2Options, split: Split) -> Result<Self> {
        opts.check()?;
        let root = &opts.root;
        let list = root.join(format!("{}.txt", split.name()));
        let names = read_list(&list)?;
        // A name in both lists would put one image in train and test.
        let other = root.join(format!("{}.txt", split.other().name()));
        if other.exists() {
            if let Ok(theirs) = read_list(&other) {
                let theirs: std::collections::HashMap<&str, usize> =
                    theirs.iter().map(|(l, n)| (n.as_str(), *l)).collect();
                if let Some((l, n)) = names.iter().find(|(_, n)| theirs.contains_key(n.as_str())) {
                    return Err(DataError::bad_line(
                        &list,
                        *l,
                        format!("image {n:?} is also in {}:{}", other.display(), theirs[n.as_str()]),
                    ));
                }
            }
        }
        let dir = root.join(split.name());
        let labels_dir = format!("labels_{}", opts.classes);
        let items: Vec<Nyuv2Item> = names
            .into_iter()
            .map(|(line, name)| {
                let file = format!("{name}.png");
                Nyuv2Item {
                    rgb: dir.join("rgb").join(&file),
                    depth: dir.join(opts.depth.dir()).join(&file),
                    labels: dir.join(&labels_dir).join(&file),
                    name,
                    line,
                }
            })
            .collect();
        let checked: Vec<Result<()>> = items.par_iter().map(Self::check_headers).collect();
        let class_names = match opts.classes {
            13 => CLASS_NAMES_13.iter().map(|s| s.to_string()).collect(),
            _ => CLASS_NAMES_40.iter().map(|s| s.to_string()).collect(),
        };
        let mut report = Report::new(class_names);
        report.touch(split);
        let mut keep = Vec::with_capacity(items.len());
        for (it, r) in items.into_iter().zip(checked) {
            match r {
                Ok(()) => keep.push(it),
                Err(e) if opts.skip_bad => {
                    report.record_problem(split, None, Self::item_name(&list, &it), &e);
                }
                Err(e) => return Err(e),
            }
        }
        let n = keep.len();
        let mut me = Self {
            split,
            opts: opts.clone(),
            list,
            items: keep,
            report,
            dominant: (0..n).map(|_| OnceLock::new()).collect(),
            depth_mean: opts.depth_mean.unwrap_or(NYUV2_DEPTH_MEAN) as f32,
            depth_std: opts.depth_std.unwrap_or(NYUV2_DEPTH_STD) as f32,
        };
        if opts.verify {
            me.verify()?;
        }
        super::require_samples(me.items.len(), split, &me.list, &me.report)?;
        for _ in 0..me.items.len() {
            me.report.record_ok_unclassified(split);
        }
        Ok(me)
    }

    fn item_name(list: &Path, it: &Nyuv2Item) -> String {
        format!("{} ({}:{})", it.name, list.file_name().and_then(|f| f.to_str()).unwrap_or("list"), it.line)
    }

    /// The checks made for every item when opening: the three files' headers.
    fn check_headers(it: &Nyuv2Item) -> Result<()> {
        let rgb = probe(&it.rgb, Kind::Rgb)?;
        same_size(rgb, probe(&it.depth, Kind::Depth)?, &it.depth, &it.rgb)?;
        same_size(rgb, probe(&it.labels, Kind::Labels)?, &it.labels, &it.rgb)
    }

    /// Reads every item once (evaluation transform); bad items are left out (counted) with
    /// `skip_bad`, else the first error.
    fn verify(&mut self) -> Result<()> {
        let res: Vec<Result<()>> =
            (0..self.items.len()).into_par_iter().map(|i| self.get(i, Mode::Eval).map(|_| ())).collect();
        let mut keep = Vec::new();
        let mut dominant = Vec::new();
        let items = std::mem::take(&mut self.items);
        let cached = std::mem::take(&mut self.dominant);
        for ((it, d), r) in items.into_iter().zip(cached).zip(res) {
            match r {
                Ok(()) => {
                    keep.push(it);
                    dominant.push(d);
                }
                Err(e) if self.opts.skip_bad => {
                    self.report.record_problem(self.split, None, Self::item_name(&self.list, &it), &e);
                }
                Err(e) => return Err(e),
            }
        }
        self.items = keep;
        self.dominant = dominant;
        Ok(())
    }

    pub fn split(&self) -> Split {
        self.split
    }
    pub fn options(&self) -> &Nyuv2Options {
        &self.opts
    }
    pub fn items(&self) -> &[Nyuv2Item] {
        &self.items
    }
    pub fn report(&self) -> &Report {
        &self.report
    }
    /// The depth normalisation in force, `(mean, std)`.
    pub fn depth_stats(&self) -> (f32, f32) {
        (self.depth_mean, self.depth_std)
    }

    fn item(&self, index: usize) -> Result<&Nyuv2Item> {
        self.items.get(index).ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a NYUv2 split of {}", self.items.len()))
        })
    }

    /// The label file of item `index` as class ids (void = 255) at the file's size; `(w, h)`.
    fn read_labels(&self, it: &Nyuv2Item) -> Result<(Vec<u32>, (u32, u32))> {
        let img = decode(&it.labels, Kind::Labels)?;
        let dims = (img.width(), img.height());
        let raw = img.into_luma8().into_raw();
        let k = self.opts.classes as u32;
        let mut out = Vec::with_capacity(raw.len());
        for (p, &v) in raw.iter().enumerate() {
            let v = v as u32;
            if v > k {
                return Err(DataError::bad_file(
                    &it.labels,
                    format!(
                        "label {v} at row {}, column {} is not a NYUv2 class (0 = void, 1..={k})",
                        p / dims.0 as usize,
                        p % dims.0 as usize
                    ),
                ));
            }
            out.push(if v == 0 { VOID } else { v - 1 });
        }
        Ok((out, dims))
    }

    /// The three files of item `index`, decoded and checked (raw, before any transform).
    pub fn frame(&self, index: usize) -> Result<RgbdFrame> {
        let it = self.item(index)?;
        let rgb = decode(&it.rgb, Kind::Rgb)?;
        let dims = (rgb.width(), rgb.height());
        let depth = decode(&it.depth, Kind::Depth)?;
        same_size(dims, (depth.width(), depth.height()), &it.depth, &it.rgb)?;
        let (labels, ldims) = self.read_labels(it)?;
        same_size(dims, ldims, &it.labels, &it.rgb)?;
        Ok(RgbdFrame {
            height: dims.1 as usize,
            width: dims.0 as usize,
            rgb: rgb.into_rgb8().into_raw().into_iter().map(f32::from).collect(),
            depth: depth.into_luma16().into_raw(),
            labels,
        })
    }

    fn augment(&self) -> RgbdAugment {
        RgbdAugment {
            scale: self.opts.scale,
            hsv: self.opts.hsv,
            max_pixels: limits::IMAGE_PIXELS.bound().unwrap_or(limits::IMAGE_PIXELS.default),
        }
    }
}

impl Dataset for Nyuv2 {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn num_classes(&self) -> usize {
        self.opts.classes
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["rgb".into(), "depth".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let (h, w) = (self.opts.height, self.opts.width);
        vec![vec![3, h, w], vec![1, h, w]]
    }
    fn label_shape(&self) -> Option<[usize; 2]> {
        Some([self.opts.height, self.opts.width])
    }
    fn ignore_label(&self) -> Option<u32> {
        Some(VOID)
    }
    /// The most frequent class of the evaluation label map (decodes the label file once).
    fn label(&self, index: usize) -> Result<u32> {
        let it = self.item(index)?;
        if let Some(&c) = self.dominant[index].get() {
            return Ok(c);
        }
        let (labels, (w, h)) = self.read_labels(it)?;
        let map =
            crate::visual::rgbd::resize_nearest(&labels, h as usize, w as usize, self.opts.height, self.opts.width);
        let c = dominant_class(&map, self.opts.classes, Some(VOID));
        Ok(*self.dominant[index].get_or_init(|| c))
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        let frame = self.frame(index)?;
        let (h, w) = (self.opts.height, self.opts.width);
        let out = match mode {
            Mode::Train { seed } if self.opts.augment => {
                let it = &self.items[index];
                esanet_train(&frame, h, w, &self.augment(), &mut Rng::new(seed))
                    .map_err(|why| DataError::bad_file(&it.rgb, why))?
            }
            _ => esanet_eval(frame, h, w),
        };
        let keep_zero = self.opts.depth == DepthMode::Raw;
        let (rgb, depth) = normalize(&out, self.depth_mean, self.depth_std, keep_zero);
        let ex = Example::dense(vec![rgb, depth], out.labels, self.opts.classes, Some(VOID));
        if mode == Mode::Eval {
            let _ = self.dominant[index].set(ex.label);
        }
        Ok(ex)
    }
}
