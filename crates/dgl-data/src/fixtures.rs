//! Tiny fixture trees in the real dataset layouts, for tests and demos.
//!
//! Each `write_*_tree` function writes a small but complete tree — tiny WAV tones (a hand-rolled
//! 16-bit PCM RIFF writer) and tiny JPEG frames — in the on-disk layout the matching loader of
//! [`crate::datasets`] reads, and returns a [`FixtureTree`] with the [`DatasetSpec`] that opens
//! it and the ids of the clips written:
//!
//! - [`write_cremad_tree`]: CREMA-D in the OGM-GE layout (`AudioWAV/`, `Image-01-FPS/`,
//!   `train.csv`, `test.csv`).
//! - [`write_ks_tree`]: Kinetics-Sounds in the official DGL layout (`class.txt`,
//!   `audio/{train,test}/<class>/`, `visual/{train_img,val_img}/Image-01-FPS/<class>/`).
//! - [`write_vggsound_tree`]: VGGSound in the official DGL layout (`vggsound.csv`,
//!   `audio/{train-audios/train-set,test-audios/test-set}/`,
//!   `video/{train-set-img,test-set-img}/Image-01-FPS/<id>.mp4/`).
//! - [`write_nyuv2_tree`]: NYUv2 in ESANet's prepared layout (`train.txt`, `test.txt`,
//!   `{train,test}/{rgb,depth,depth_raw,labels_40,labels_13}/NNNN.png`), with 16-bit depth PNGs.
//!
//! The clip of class `c` is a tone whose pitch encodes `c`; frame `i` of a clip is a flat grey
//! of level 40·(i+1). Nothing here is random: the same arguments write the same bytes.
//!
//! ```
//! # let root = std::env::temp_dir().join(format!("dgl-fixtures-doc-{}", std::process::id()));
//! use dgl_data::fixtures::{write_ks_tree, KS_CLASSES};
//! use dgl_data::Split;
//! let tree = write_ks_tree(&root, &KS_CLASSES, 2).unwrap();
//! let (ds, _report) = tree.spec.open(Split::Train).unwrap();
//! assert_eq!(ds.len(), tree.train_ids.len());
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```

use std::io;
use std::path::Path;

use crate::datasets::{ClipOptions, CremadOptions, DatasetSpec, KsOptions, VggsoundOptions, CREMAD_CLASSES};

/// What a `write_*_tree` function wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct FixtureTree {
    /// The spec that opens the tree: its layout at its root with the layout's defaults (every
    /// index file is at its default place) and small frames ([`FIXTURE_IMAGE_SIZE`]).
    pub spec: DatasetSpec,
    /// Class names, in the order the loader numbers them.
    pub classes: Vec<String>,
    /// Ids of the train clips, in the order written.
    pub train_ids: Vec<String>,
    /// Ids of the test clips, in the order written.
    pub test_ids: Vec<String>,
}

impl FixtureTree {
    /// Train then test ids.
    pub fn all_ids(&self) -> Vec<String> {
        self.train_ids.iter().chain(&self.test_ids).cloned().collect()
    }
}

/// Side of the square frames in the options a [`FixtureTree`] carries.
pub const FIXTURE_IMAGE_SIZE: usize = 16;

/// Small, fast options for the clip datasets (frames of [`FIXTURE_IMAGE_SIZE`]).
pub fn fast_options() -> ClipOptions {
    ClipOptions { image_size: Some(FIXTURE_IMAGE_SIZE), ..Default::default() }
}

/// Writes `bytes` to `path`, creating the parent folders.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// A RIFF WAV with a `fmt ` chunk of `format_tag` and the given data bytes (any format tag, so
/// that tests can also write unsupported or broken files).
pub fn wav_raw(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + 16 + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format_tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.wrapping_mul(block as u32).to_le_bytes()); // hostile rates may overflow
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// A 16-bit PCM mono WAV of `samples` (clamped to [-1, 1]).
pub fn wav_pcm16(rate: u32, samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> =
        samples.iter().flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()).collect();
    wav_raw(1, 1, rate, 16, &data)
}

/// A sine tone of amplitude 0.5.
pub fn tone(rate: u32, seconds: f32, freq: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n).map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()).collect()
}

/// A 0.1 s, 16 kHz WAV tone whose pitch (300 + 150·k Hz) encodes `k`.
pub fn tone_wav(k: usize) -> Vec<u8> {
    wav_pcm16(16000, &tone(16000, 0.1, 300.0 + 150.0 * k as f32))
}

/// A `w`×`h` JPEG of a flat colour with a little texture.
pub fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([rgb[0].saturating_add(((x + y) % 4) as u8), rgb[1], rgb[2]]));
    let mut out = io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encoding a JPEG in memory");
    out.into_inner()
}

/// A `w`×`h` PNG of a flat colour.
pub fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory");
    out.into_inner()
}

/// Writes `n` 20×16 frames `00000.jpg, 00001.jpg, …` into `dir`; frame i is grey level 40·(i+1).
pub fn write_frames(dir: &Path, n: usize) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let g = (40 * (i + 1)) as u8;
        write_file(&dir.join(format!("{i:05}.jpg")), &jpeg(20, 16, [g, g, g]))?;
    }
    Ok(())
}

/// CREMA-D (OGM-GE layout): `n_train` + `n_test` clips `10ii_IEO_<EMO>_XX` whose emotions cycle
/// through [`crate::datasets::CREMAD_CLASSES`] (clip i has emotion i mod 6, so the first `n_train` clips are the
/// train split), each with a WAV in `AudioWAV/` and 3 frames in `Image-01-FPS/<id>/`;
/// `train.csv` / `test.csv` have CRLF lines `id,EMO`. At most 100 clips in all.
pub fn write_cremad_tree(root: &Path, n_train: usize, n_test: usize) -> io::Result<FixtureTree> {
    if n_train + n_test > 100 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "at most 100 CREMA-D fixture clips"));
    }
    let (mut train_ids, mut test_ids) = (Vec::new(), Vec::new());
    let (mut train, mut test) = (String::new(), String::new());
    for i in 0..n_train + n_test {
        let emo = CREMAD_CLASSES[i % 6];
        let id = format!("10{i:02}_IEO_{emo}_XX");
        write_file(&root.join("AudioWAV").join(format!("{id}.wav")), &tone_wav(i))?;
        write_frames(&root.join("Image-01-FPS").join(&id), 3)?;
        let line = format!("{id},{emo}\r\n");
        if i < n_train {
            train.push_str(&line);
            train_ids.push(id);
        } else {
            test.push_str(&line);
            test_ids.push(id);
        }
    }
    write_file(&root.join("train.csv"), train.as_bytes())?;
    write_file(&root.join("test.csv"), test.as_bytes())?;
    Ok(FixtureTree {
        spec: DatasetSpec::Cremad(CremadOptions { clip: fast_options(), ..CremadOptions::new(root) }),
        classes: CREMAD_CLASSES.iter().map(|s| s.to_string()).collect(),
        train_ids,
        test_ids,
    })
}

/// Three Kinetics-Sounds class names (with spaces, as in the official list).
pub const KS_CLASSES: [&str; 3] = ["playing bass guitar", "dog barking", "tapping pen"];

/// Kinetics-Sounds (official DGL layout): `per_class` clips per class and split, ids
/// `<split>{c}v{j}` (`train0v0`, `test2v1`, …), a WAV in `audio/<split>/<class_folder>/` and 4
/// frames in `visual/{train_img,val_img}/Image-01-FPS/<class_folder>/<id>/`; class folders are the
/// names with spaces mapped to underscores. `class.txt` is the official one-line comma-separated
/// list of `classes`.
pub fn write_ks_tree(root: &Path, classes: &[&str], per_class: usize) -> io::Result<FixtureTree> {
    write_file(&root.join("class.txt"), classes.join(",").as_bytes())?;
    let (mut train_ids, mut test_ids) = (Vec::new(), Vec::new());
    for (split_a, split_v) in [("train", "train_img"), ("test", "val_img")] {
        for (c, name) in classes.iter().enumerate() {
            let folder = name.replace(' ', "_");
            for j in 0..per_class {
                let vid = format!("{split_a}{c}v{j}");
                write_file(&root.join("audio").join(split_a).join(&folder).join(format!("{vid}.wav")), &tone_wav(c))?;
                write_frames(&root.join("visual").join(split_v).join("Image-01-FPS").join(&folder).join(&vid), 4)?;
                if split_a == "train" { &mut train_ids } else { &mut test_ids }.push(vid);
            }
        }
    }
    Ok(FixtureTree {
        spec: DatasetSpec::Ks(KsOptions { clip: fast_options(), ..KsOptions::new(root) }),
        classes: classes.iter().map(|s| s.replace(' ', "_")).collect(),
        train_ids,
        test_ids,
    })
}

/// Two VGGSound labels: the first has a comma (quoted in the CSV).
pub const VGGSOUND_LABELS: [&str; 2] = ["b, with comma", "a"];

/// VGGSound (official DGL layout): `n_train` train and `n_test` test clips per label, rows
/// `ytid,start,"label",split` in `vggsound.csv` (train rows first, labels interleaved, so the
/// first-appearance order is `labels`' order), a WAV per clip in
/// `audio/{train-audios/train-set,test-audios/test-set}/<ytid>_<start:06>.wav` and 3 frames in
/// `video/{train-set-img,test-set-img}/Image-01-FPS/<ytid>_<start:06>.mp4/`.
pub fn write_vggsound_tree(root: &Path, labels: &[&str], n_train: usize, n_test: usize) -> io::Result<FixtureTree> {
    let mut csv = String::new();
    let (mut train_ids, mut test_ids) = (Vec::new(), Vec::new());
    let mut k = 0;
    for split in ["train", "test"] {
        let n = if split == "train" { n_train } else { n_test };
        for j in 0..n {
            for (c, l) in labels.iter().enumerate() {
                let ytid = format!("yt{k}-{c}_{j}");
                let start = 10 * j + c;
                csv.push_str(&format!("{ytid},{start},\"{l}\",{split}\n"));
                let id = format!("{ytid}_{start:06}");
                let (a, v) = if split == "train" {
                    ("audio/train-audios/train-set", "video/train-set-img/Image-01-FPS")
                } else {
                    ("audio/test-audios/test-set", "video/test-set-img/Image-01-FPS")
                };
                write_file(&root.join(a).join(format!("{id}.wav")), &tone_wav(c))?;
                write_frames(&root.join(v).join(format!("{id}.mp4")), 3)?;
                if split == "train" { &mut train_ids } else { &mut test_ids }.push(id);
                k += 1;
            }
        }
    }
    write_file(&root.join("vggsound.csv"), csv.as_bytes())?;
    Ok(FixtureTree {
        spec: DatasetSpec::Vggsound(VggsoundOptions { clip: fast_options(), ..VggsoundOptions::new(root) }),
        classes: labels.iter().map(|s| s.to_string()).collect(),
        train_ids,
        test_ids,
    })
}

/// IDX image + label files of `n` 28×28 images, image i of label i % 10 (its pixels encode i).
pub fn mnist_idx(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut im = vec![0, 0, 8, 3];
    im.extend_from_slice(&(n as u32).to_be_bytes());
    im.extend_from_slice(&28u32.to_be_bytes());
    im.extend_from_slice(&28u32.to_be_bytes());
    let mut lb = vec![0, 0, 8, 1];
    lb.extend_from_slice(&(n as u32).to_be_bytes());
    for i in 0..n {
        im.extend((0..784).map(|p| ((p * 7 + i * 13) % 256) as u8));
        lb.push((i % 10) as u8);
    }
    (im, lb)
}

/// A PNG of an 8-bit RGB image (`w × h × 3` bytes, row-major).
pub fn png_rgb8(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    encode_png(image::RgbImage::from_raw(w, h, rgb.to_vec()).expect("w × h × 3 bytes"))
}

/// A PNG of an 8-bit single-channel image (`w × h` bytes).
pub fn png_l8(w: u32, h: u32, px: &[u8]) -> Vec<u8> {
    encode_png(image::GrayImage::from_raw(w, h, px.to_vec()).expect("w × h bytes"))
}

/// A PNG of a 16-bit single-channel image (`w × h` values).
pub fn png_l16(w: u32, h: u32, px: &[u16]) -> Vec<u8> {
    encode_png(image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, h, px.to_vec()).expect("w × h values"))
}

fn encode_png<P, C>(img: image::ImageBuffer<P, C>) -> Vec<u8>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut out = io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory");
    out.into_inner()
}

/// Height and width of the images of [`write_nyuv2_tree`].
pub const NYUV2_FIXTURE_SIZE: (usize, usize) = (24, 32);

/// The NYUv2 label (0 = void, 1..=40) of pixel (y, x) of fixture image `k`: 8 × 8 blocks of
/// distinct labels (left-right asymmetric, so a flip shows), a void 4 × 4 corner at the top left.
pub fn nyuv2_fixture_label(k: usize, y: usize, x: usize) -> u8 {
    if y < 4 && x < 4 {
        0
    } else {
        (1 + (k + x / 8 + 3 * (y / 8) + (x / 8) * (x / 8)) % 40) as u8
    }
}

/// The colour of NYUv2 label `l` in the fixture images: distinct per label, a function of the label
/// only.
pub fn nyuv2_fixture_rgb(l: u8) -> [u8; 3] {
    let l = l as u32;
    [(l * 6) as u8, (255 - l * 6) as u8, ((l * 37) % 256) as u8]
}

/// The refined depth (mm) of NYUv2 label `l` in the fixture images: 1000 + 50·l.
pub fn nyuv2_fixture_depth(l: u8) -> u16 {
    1000 + 50 * l as u16
}

/// NYUv2 in ESANet's prepared layout ([`crate::datasets::nyuv2`]): `n_train` + `n_test` images
/// `0001.png, 0002.png, …` (train first) of [`NYUV2_FIXTURE_SIZE`], listed in `train.txt` /
/// `test.txt`, with `rgb/`, `depth/`, `depth_raw/` (the refined depth with every 7th pixel 0),
/// `labels_40/` and `labels_13/` (`(l − 1) % 13 + 1`). The label map is
/// [`nyuv2_fixture_label`], colour and depth are functions of the label ([`nyuv2_fixture_rgb`],
/// [`nyuv2_fixture_depth`]). The spec opens it at the fixture's size.
pub fn write_nyuv2_tree(root: &Path, n_train: usize, n_test: usize) -> io::Result<FixtureTree> {
    use crate::datasets::{DepthMode, Nyuv2Options};
    let (h, w) = NYUV2_FIXTURE_SIZE;
    let (mut train_ids, mut test_ids) = (Vec::new(), Vec::new());
    for k in 0..n_train + n_test {
        let name = format!("{:04}", k + 1);
        let split = if k < n_train { "train" } else { "test" };
        let dir = root.join(split);
        let labels: Vec<u8> = (0..h * w).map(|p| nyuv2_fixture_label(k, p / w, p % w)).collect();
        let rgb: Vec<u8> = labels.iter().flat_map(|&l| nyuv2_fixture_rgb(l)).collect();
        let depth: Vec<u16> = labels.iter().map(|&l| nyuv2_fixture_depth(l)).collect();
        let raw: Vec<u16> = depth.iter().enumerate().map(|(p, &d)| if p % 7 == 0 { 0 } else { d }).collect();
        let l13: Vec<u8> = labels.iter().map(|&l| if l == 0 { 0 } else { (l - 1) % 13 + 1 }).collect();
        let file = format!("{name}.png");
        let (w32, h32) = (w as u32, h as u32);
        write_file(&dir.join("rgb").join(&file), &png_rgb8(w32, h32, &rgb))?;
        write_file(&dir.join("depth").join(&file), &png_l16(w32, h32, &depth))?;
        write_file(&dir.join("depth_raw").join(&file), &png_l16(w32, h32, &raw))?;
        write_file(&dir.join("labels_40").join(&file), &png_l8(w32, h32, &labels))?;
        write_file(&dir.join("labels_13").join(&file), &png_l8(w32, h32, &l13))?;
        if k < n_train {
            train_ids.push(name);
        } else {
            test_ids.push(name);
        }
    }
    write_file(&root.join("train.txt"), (train_ids.join("\n") + "\n").as_bytes())?;
    write_file(&root.join("test.txt"), (test_ids.join("\n") + "\n").as_bytes())?;
    let opts = Nyuv2Options { height: h, width: w, depth: DepthMode::Refined, ..Nyuv2Options::new(root) };
    Ok(FixtureTree {
        spec: DatasetSpec::Nyuv2(opts),
        classes: crate::datasets::nyuv2::CLASS_NAMES_40.iter().map(|s| s.to_string()).collect(),
        train_ids,
        test_ids,
    })
}
