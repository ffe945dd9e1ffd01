//! Fixture trees for the dataset tests, in a temporary folder removed on drop: the CREMA-D,
//! Kinetics-Sounds and VGGSound layouts (and the WAV/JPEG/PNG writers) come from
//! [`dgl_data::fixtures`]; AV-digits and the generic layouts are written here.
#![allow(dead_code, unused_imports)] // each test file uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dgl_data::datasets::npy::write_npy_f32;
use dgl_data::datasets::tensorfile::{write_safetensors, WriteTensor};
use dgl_data::fixtures;

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

pub use dgl_data::datasets::CREMAD_CLASSES as EMOS;
pub use dgl_data::fixtures::fast_options as fast_opts;
pub use dgl_data::fixtures::{jpeg, png, tone, tone_wav, wav_pcm16, wav_raw, KS_CLASSES};

pub fn write(path: &Path, bytes: &[u8]) {
    fixtures::write_file(path, bytes).unwrap();
}

/// Frames `00000.jpg…` of distinct grey levels (frame i has level 40·(i+1)).
pub fn write_frames(dir: &Path, n: usize) {
    fixtures::write_frames(dir, n).unwrap();
}

/// CREMA-D ([`fixtures::write_cremad_tree`]): the ids of all clips, train then test.
pub fn cremad_tree(root: &Path, n_train: usize, n_test: usize) -> Vec<String> {
    fixtures::write_cremad_tree(root, n_train, n_test).unwrap().all_ids()
}

/// Kinetics-Sounds ([`fixtures::write_ks_tree`]) with [`KS_CLASSES`].
pub fn ks_tree(root: &Path, per_class: usize) {
    fixtures::write_ks_tree(root, &KS_CLASSES, per_class).unwrap();
}

/// VGGSound ([`fixtures::write_vggsound_tree`]): labels "b, with comma" (first train row), "a";
/// 2 train and 1 test per label. Returns the CSV written.
pub fn vgg_tree(root: &Path) -> String {
    fixtures::write_vggsound_tree(root, &fixtures::VGGSOUND_LABELS, 2, 1).unwrap();
    std::fs::read_to_string(root.join("vggsound.csv")).unwrap()
}

/// A gzip of `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub use dgl_data::fixtures::mnist_idx;

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

/// A layout's options at `root` with these clip options.
pub fn cremad(root: &Path, clip: dgl_data::datasets::ClipOptions) -> dgl_data::datasets::CremadOptions {
    dgl_data::datasets::CremadOptions { clip, ..dgl_data::datasets::CremadOptions::new(root) }
}
pub fn ks(root: &Path, clip: dgl_data::datasets::ClipOptions) -> dgl_data::datasets::KsOptions {
    dgl_data::datasets::KsOptions { clip, ..dgl_data::datasets::KsOptions::new(root) }
}
pub fn vgg(root: &Path, clip: dgl_data::datasets::ClipOptions) -> dgl_data::datasets::VggsoundOptions {
    dgl_data::datasets::VggsoundOptions { clip, ..dgl_data::datasets::VggsoundOptions::new(root) }
}
/// The generic layout's defaults at `root`.
pub fn generic(root: &Path) -> dgl_data::datasets::GenericOptions {
    dgl_data::datasets::GenericOptions::new(root)
}
