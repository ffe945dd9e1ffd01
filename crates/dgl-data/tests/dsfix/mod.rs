//! Fixture trees for the dataset tests: tiny WAVs (hand-rolled RIFF writer), tiny JPEG/PNG
//! frames (`image`), and each real layout (CREMA-D, Kinetics-Sounds, VGGSound, AV-digits,
//! generic) in a temporary folder removed on drop.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dgl_data::datasets::npy::write_npy_f32;
use dgl_data::datasets::tensorfile::{write_safetensors, WriteTensor};
use dgl_data::DatasetOptions;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("dgl-ds-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A RIFF WAV with a `fmt ` chunk of `format_tag` and the given data bytes.
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
    out.extend_from_slice(&(rate * block as u32).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// 16-bit PCM mono WAV of `samples` (in [-1, 1]).
pub fn wav_pcm16(rate: u32, samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> =
        samples.iter().flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()).collect();
    wav_raw(1, 1, rate, 16, &data)
}

/// A sine tone.
pub fn tone(rate: u32, seconds: f32, freq: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n).map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()).collect()
}

/// A small WAV tone whose pitch encodes `k`.
pub fn tone_wav(k: usize) -> Vec<u8> {
    wav_pcm16(16000, &tone(16000, 0.1, 300.0 + 150.0 * k as f32))
}

/// A JPEG of a flat colour with a little texture.
pub fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([rgb[0].saturating_add(((x + y) % 4) as u8), rgb[1], rgb[2]]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A PNG of a flat colour.
pub fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Frames `00000.jpg…` of distinct grey levels (frame i has level 40·(i+1)).
pub fn write_frames(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let g = (40 * (i + 1)) as u8;
        write(&dir.join(format!("{i:05}.jpg")), &jpeg(20, 16, [g, g, g]));
    }
}

/// Small, fast options for the clip datasets.
pub fn fast_opts() -> DatasetOptions {
    DatasetOptions { image_size: Some(16), ..Default::default() }
}

pub const EMOS: [&str; 6] = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"];

/// CREMA-D: `n_train` / `n_test` clips cycling through the emotions, 3 frames each.
pub fn cremad_tree(root: &Path, n_train: usize, n_test: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut train = String::new();
    let mut test = String::new();
    for i in 0..n_train + n_test {
        let emo = EMOS[i % 6];
        let id = format!("10{i:02}_IEO_{emo}_XX");
        write(&root.join("AudioWAV").join(format!("{id}.wav")), &tone_wav(i));
        write_frames(&root.join("Image-01-FPS").join(&id), 3);
        let line = format!("{id},{emo}\r\n");
        if i < n_train {
            train.push_str(&line);
        } else {
            test.push_str(&line);
        }
        ids.push(id);
    }
    write(&root.join("train.csv"), train.as_bytes());
    write(&root.join("test.csv"), test.as_bytes());
    ids
}

pub const KS_CLASSES: [&str; 3] = ["playing bass guitar", "dog barking", "tapping pen"];

/// Kinetics-Sounds: `per_class` clips per class and split; `class.txt` in the official
/// one-line comma-separated form (with spaces, mapped to underscores).
pub fn ks_tree(root: &Path, per_class: usize) {
    write(&root.join("class.txt"), KS_CLASSES.join(",").as_bytes());
    for (split_a, split_v) in [("train", "train_img"), ("test", "val_img")] {
        for (c, name) in KS_CLASSES.iter().enumerate() {
            let folder = name.replace(' ', "_");
            for j in 0..per_class {
                let vid = format!("{split_a}{c}v{j}");
                write(&root.join("audio").join(split_a).join(&folder).join(format!("{vid}.wav")), &tone_wav(c));
                write_frames(&root.join("visual").join(split_v).join("Image-01-FPS").join(&folder).join(&vid), 4);
            }
        }
    }
}

/// VGGSound: rows for labels "b, with comma" (first train row), "a" ; 2 train and 1 test per label.
pub fn vgg_tree(root: &Path) -> String {
    let labels = ["b, with comma", "a"];
    let mut csv = String::new();
    let mut k = 0;
    for split in ["train", "test"] {
        let n = if split == "train" { 2 } else { 1 };
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
                write(&root.join(a).join(format!("{id}.wav")), &tone_wav(c));
                write_frames(&root.join(v).join(format!("{id}.mp4")), 3);
                k += 1;
            }
        }
    }
    write(&root.join("vggsound.csv"), csv.as_bytes());
    csv
}

/// A gzip of `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
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

/// AV-digits: FSDD recordings of digits `0..digits` by speakers `a`, `b` with indices `0..per`,
/// and gzip MNIST files with 40 train / 30 test images.
pub fn avdigits_tree(root: &Path, digits: usize, per: usize) {
    for d in 0..digits {
        for s in ["a", "b"] {
            for i in 0..per {
                let x = tone(8000, 0.2 + 0.05 * i as f32, 200.0 + 100.0 * d as f32);
                write(&root.join("fsdd/recordings").join(format!("{d}_{s}_{i}.wav")), &wav_pcm16(8000, &x));
            }
        }
    }
    for (prefix, n) in [("train", 40), ("t10k", 30)] {
        let (im, lb) = mnist_idx(n);
        write(&root.join("mnist").join(format!("{prefix}-images-idx3-ubyte.gz")), &gz(&im));
        write(&root.join("mnist").join(format!("{prefix}-labels-idx1-ubyte.gz")), &gz(&lb));
    }
}

/// Generic, per-sample safetensors: modalities `audio` [2, 3] and `visual` [4]; rows s0..s5,
/// labels by name (`cat`, `dog`), s0-s3 train, s4-s5 test.
pub fn generic_per_sample(root: &Path) {
    let mut m = String::from("id,label,split\n");
    for i in 0..6 {
        let label = if i % 2 == 0 { "cat" } else { "dog" };
        let split = if i < 4 { "train" } else { "test" };
        m.push_str(&format!("s{i},{label},{split}\n"));
        let a: Vec<f32> = (0..6).map(|j| (i * 10 + j) as f32).collect();
        let v: Vec<f32> = (0..4).map(|j| -((i * 10 + j) as f32)).collect();
        std::fs::create_dir_all(root.join("features")).unwrap();
        write_safetensors(
            &root.join("features").join(format!("s{i}.safetensors")),
            &[WriteTensor::F32("audio", vec![2, 3], &a), WriteTensor::F32("visual", vec![4], &v)],
            None,
        )
        .unwrap();
    }
    write(&root.join("manifest.csv"), m.as_bytes());
}

/// Generic, per-modality `.npy`: modalities `a` [3] and `b` [2, 2], integer labels 0..3.
pub fn generic_per_modality(root: &Path) {
    let mut m = String::from("split,id,label\n");
    for i in 0..6 {
        let split = if i < 4 { "train" } else { "test" };
        m.push_str(&format!("{split},n{i},{}\n", i % 3));
        for (name, shape) in [("a", vec![3]), ("b", vec![2, 2])] {
            let n: usize = shape.iter().product();
            let x: Vec<f32> = (0..n).map(|j| (i + j) as f32 * 0.5).collect();
            std::fs::create_dir_all(root.join("features").join(name)).unwrap();
            write_npy_f32(&root.join("features").join(name).join(format!("n{i}.npy")), &shape, &x).unwrap();
        }
    }
    write(&root.join("manifest.csv"), m.as_bytes());
}
