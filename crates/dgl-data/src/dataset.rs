//! The dataset interface every loader implements, and batching.
//!
//! Data flows one way: files → a [`Dataset`] (decoding, front-end, augmentation) → [`Batch`]es of
//! candle tensors → the method's step.

use candle_core::{Device, Tensor};
use dgl_core::rng::Rng;
use rayon::prelude::*;

use crate::error::{DataError, Result};

/// Which part of a dataset: the official CREMA-D / KS / VGGSound protocols have only train and
/// test (validation, when wanted, is carved from train with [`stratified_split`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// A stable number for seeding (`Train` = 0, `Test` = 1).
    pub fn id(self) -> u64 {
        match self {
            Split::Train => 0,
            Split::Test => 1,
        }
    }

    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    /// The other split.
    pub fn other(self) -> Split {
        match self {
            Split::Train => Split::Test,
            Split::Test => Split::Train,
        }
    }
}

/// How a sample is produced: with training augmentation driven by a seed, or deterministically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: random crops/flips/frame choices, reproducible from `seed`.
    Train { seed: u64 },
    /// Evaluation: deterministic (centre/evenly spaced choices, no flips).
    Eval,
}

impl Mode {
    /// The augmentation generator of this mode: `Some(Rng::new(seed))` in training, `None` at
    /// evaluation (deterministic choices).
    pub fn rng(self) -> Option<Rng> {
        match self {
            Mode::Train { seed } => Some(Rng::new(seed)),
            Mode::Eval => None,
        }
    }
}

/// One sample: a flat `f32` array per modality (row-major, of the shape given by
/// [`Dataset::modality_shapes`]) and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub modalities: Vec<Vec<f32>>,
    pub label: u32,
}

/// A labelled multimodal dataset (one split).
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// K.
    fn num_classes(&self) -> usize;
    /// `audio`, `visual`, … in the order the model's encoders use.
    fn modality_names(&self) -> Vec<String>;
    /// Per-sample shape of each modality, e.g. `[1, F, T]` for a spectrogram, `[3, T, H, W]` for frames.
    fn modality_shapes(&self) -> Vec<Vec<usize>>;
    /// The label of sample `index` (cheap: no decoding).
    fn label(&self, index: usize) -> Result<u32>;
    /// Sample `index`, decoded and transformed.
    fn get(&self, index: usize, mode: Mode) -> Result<Example>;
    /// Decodes the files that sample `index` can read in training but `get(index, Mode::Eval)`
    /// does not (e.g. the other frames of a clip), so that `verify` and `prepare` cover every
    /// file training can read. Default: nothing more (the evaluation sample reads everything).
    fn check_other_files(&self, index: usize) -> Result<()> {
        let _ = index;
        Ok(())
    }
}

/// A batch on a device: one tensor `[B, ...shape_m]` per modality and the labels `[B]` (u32).
#[derive(Clone, Debug)]
pub struct Batch {
    pub inputs: Vec<Tensor>,
    pub labels: Tensor,
    /// Dataset indices of the samples, in batch order.
    pub indices: Vec<usize>,
}

/// Loads `indices` (in parallel) and stacks them into a [`Batch`]. In `Train` mode, sample i of the
/// dataset gets the augmentation seed `derive(seed, index)`, so a batch is reproducible whatever
/// the thread count.
pub fn load_batch(ds: &dyn Dataset, indices: &[usize], mode: Mode, device: &Device) -> Result<Batch> {
    if indices.is_empty() {
        return Err(DataError::Invalid("empty batch".into()));
    }
    let examples: Vec<Example> = indices
        .par_iter()
        .map(|&i| {
            let m = match mode {
                Mode::Train { seed } => Mode::Train { seed: Rng::derive(seed, i as u64).next_u64() },
                Mode::Eval => Mode::Eval,
            };
            ds.get(i, m)
        })
        .collect::<Result<_>>()?;
    let shapes = ds.modality_shapes();
    let b = examples.len();
    let mut inputs = Vec::with_capacity(shapes.len());
    for (m, shape) in shapes.iter().enumerate() {
        let numel: usize = shape.iter().product();
        let mut flat = Vec::with_capacity(b * numel);
        for (e, &idx) in examples.iter().zip(indices) {
            let x =
                e.modalities.get(m).ok_or_else(|| DataError::Invalid(format!("sample {idx} has no modality {m}")))?;
            if x.len() != numel {
                return Err(DataError::Invalid(format!(
                    "sample {idx}: modality {m} has {} values, expected {numel} for shape {shape:?}",
                    x.len()
                )));
            }
            flat.extend_from_slice(x);
        }
        let mut dims = vec![b];
        dims.extend_from_slice(shape);
        inputs.push(Tensor::from_vec(flat, dims, device)?);
    }
    let labels: Vec<u32> = examples.iter().map(|e| e.label).collect();
    let labels = Tensor::from_vec(labels, b, device)?;
    Ok(Batch { inputs, labels, indices: indices.to_vec() })
}

/// The order of one epoch: a seeded shuffle (training) or `0..n`, cut into batches of `batch_size`;
/// with `drop_last` a final partial batch is dropped (the official training loaders do this).
pub fn epoch_batches(n: usize, batch_size: usize, shuffle_seed: Option<u64>, drop_last: bool) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = shuffle_seed {
        Rng::new(seed).shuffle(&mut order);
    }
    let mut out: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).map(|c| c.to_vec()).collect();
    if drop_last && out.last().is_some_and(|c| c.len() < batch_size) {
        out.pop();
    }
    out
}

/// A reproducible held-out split: `fraction` of each class (at least one sample per class when the
/// class has ≥ 2) goes to the second list. Returns (train indices, validation indices).
pub fn stratified_split(labels: &[u32], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let k = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let mut rng = Rng::new(seed);
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for mut idx in by_class {
        rng.shuffle(&mut idx);
        let mut nv = (idx.len() as f64 * fraction).round() as usize;
        if nv == 0 && idx.len() >= 2 && fraction > 0.0 {
            nv = 1;
        }
        va.extend_from_slice(&idx[..nv]);
        tr.extend_from_slice(&idx[nv..]);
    }
    tr.sort_unstable();
    va.sort_unstable();
    (tr, va)
}

/// A view of a dataset restricted to some indices (e.g. a validation split carved from train).
pub struct Subset<D> {
    pub inner: D,
    pub indices: Vec<usize>,
}

impl<D: std::ops::Deref<Target = dyn Dataset> + Send + Sync> Dataset for Subset<D> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn modality_names(&self) -> Vec<String> {
        self.inner.modality_names()
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        self.inner.modality_shapes()
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.inner.label(self.indices[index])
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        self.inner.get(self.indices[index], mode)
    }
    fn check_other_files(&self, index: usize) -> Result<()> {
        self.inner.check_other_files(self.indices[index])
    }
}
