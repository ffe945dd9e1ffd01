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
///
/// A dense (segmentation) dataset also gives `label_map`: the class id of every position,
/// row-major `H × W` ([`Dataset::label_shape`]), classes `0..K` and [`Dataset::ignore_label`]
/// (255 by the project's convention) for void positions; `label` is then the map's most frequent
/// non-void class ([`dominant_class`]). Classification datasets leave `label_map` at `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub modalities: Vec<Vec<f32>>,
    pub label: u32,
    pub label_map: Option<Vec<u32>>,
}

impl Example {
    /// A classification sample (no label map).
    pub fn new(modalities: Vec<Vec<f32>>, label: u32) -> Self {
        Self { modalities, label, label_map: None }
    }

    /// A dense sample: `label` is the map's [`dominant_class`].
    pub fn dense(modalities: Vec<Vec<f32>>, label_map: Vec<u32>, num_classes: usize, ignore: Option<u32>) -> Self {
        let label = dominant_class(&label_map, num_classes, ignore);
        Self { modalities, label, label_map: Some(label_map) }
    }
}

/// The most frequent class of a label map among `0..num_classes`, `ignore` and out-of-range
/// values left out; ties go to the smaller id; a map without any such position gives 0. It stands
/// for a dense sample where one class per sample is needed: [`stratified_split`] and the per-class
/// counts of a [`crate::Report`].
pub fn dominant_class(map: &[u32], num_classes: usize, ignore: Option<u32>) -> u32 {
    let mut counts = vec![0usize; num_classes];
    for &c in map {
        if Some(c) != ignore {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        }
    }
    // max_by_key returns the last maximum: scan in reverse so ties go to the smaller id.
    counts.iter().enumerate().rev().max_by_key(|(_, &n)| n).map_or(0, |(c, _)| c as u32)
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
    /// The label of sample `index` (cheap: no decoding). For a dense dataset
    /// ([`Dataset::label_shape`] is `Some`), the sample's most frequent non-void class
    /// ([`dominant_class`]): it is only used where one class per sample is needed (stratified
    /// validation splits, per-class counts in reports), never as a training target. A dense
    /// loader may decode the label map once to find it.
    fn label(&self, index: usize) -> Result<u32>;
    /// `Some([H, W])` for a dense (segmentation) dataset: every [`Example`] then carries a
    /// `label_map` of `H × W` class ids and [`load_batch`] stacks them into `[B, H, W]` labels.
    /// `None` (the default): one class per sample, `[B]` labels.
    fn label_shape(&self) -> Option<[usize; 2]> {
        None
    }
    /// The label-map value of void positions (no class; ignored by the loss and the metric):
    /// 255 by the project's convention for dense datasets, `None` (the default) when every
    /// position has a class.
    fn ignore_label(&self) -> Option<u32> {
        None
    }
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

/// A batch on a device: one tensor `[B, ...shape_m]` per modality and the labels: `[B]` (u32),
/// or `[B, H, W]` (u32, void = [`Dataset::ignore_label`]) for a dense dataset.
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
///
/// For a dense dataset ([`Dataset::label_shape`] `Some([H, W])`) the labels are the samples'
/// label maps stacked into `[B, H, W]`; a sample without a map, with a map of another size, or
/// with a value that is neither below `num_classes` nor the ignore label is an error naming the
/// sample. Otherwise the labels are `[B]` (label maps, if any, are not used).
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
    let labels = match ds.label_shape() {
        None => {
            let labels: Vec<u32> = examples.iter().map(|e| e.label).collect();
            Tensor::from_vec(labels, b, device)?
        }
        Some([h, w]) => {
            let (k, ignore) = (ds.num_classes(), ds.ignore_label());
            let mut flat = Vec::with_capacity(b * h * w);
            for (e, &idx) in examples.iter().zip(indices) {
                let map = checked_label_map(e, [h, w], k, ignore).map_err(|why| {
                    DataError::Invalid(format!("sample {idx}: {why} (the dataset's labels are {h} × {w} maps)"))
                })?;
                flat.extend_from_slice(map);
            }
            Tensor::from_vec(flat, (b, h, w), device)?
        }
    };
    Ok(Batch { inputs, labels, indices: indices.to_vec() })
}

/// The label map of a dense sample, checked: present, `h × w` values, each below `num_classes`
/// or equal to `ignore`. The error says what is wrong (the caller names the sample).
pub fn checked_label_map(
    e: &Example,
    [h, w]: [usize; 2],
    num_classes: usize,
    ignore: Option<u32>,
) -> std::result::Result<&[u32], String> {
    let map = e.label_map.as_deref().ok_or_else(|| "has no label map".to_string())?;
    if map.len() != h * w {
        return Err(format!("has a label map of {} values, expected {h} × {w} = {}", map.len(), h * w));
    }
    if let Some(p) = map.iter().position(|&c| c as usize >= num_classes && Some(c) != ignore) {
        let ig = ignore.map(|i| format!(" nor the ignore label {i}")).unwrap_or_default();
        return Err(format!(
            "label map value {} at row {}, column {} is neither a class below {num_classes}{ig}",
            map[p],
            p / w.max(1),
            p % w.max(1)
        ));
    }
    Ok(map)
}

/// ESANet's median-frequency class weights (`DatasetBase.compute_class_weights`,
/// src/datasets/dataset_base.py:147-208 of TUI-NICR/ESANet), from the label maps of every sample of
/// `ds` (call it on the training split, as ESANet does): with void positions
/// ([`Dataset::ignore_label`]) left out of the classes,
///
/// * f_c = (positions of class c) / (positions of the samples in which c occurs),
///   the denominator counting every position of such a sample (void included), as ESANet does;
/// * w_c = median(f) / f_c, the median over the K classes (the mean of the two middle values for
///   an even K, as `np.median`).
///
/// Samples are read with `Mode::Eval` (no augmentation), in parallel; the maps are those of the
/// dataset's output size (ESANet counts the label files at their own size: the same thing for
/// NYUv2's 480 × 640 default). Errors: a dataset with one class per sample, an empty one, a
/// sample without a valid map (named), and a class that never occurs (its f_c is 0/0; ESANet
/// stops with "class weighting contains NaNs") — the message lists those classes.
pub fn median_frequency_weights(ds: &dyn Dataset) -> Result<Vec<f32>> {
    let Some([h, w]) = ds.label_shape() else {
        return Err(DataError::Invalid(
            "median-frequency class weights need a dense dataset (label maps); this one has one class per sample"
                .into(),
        ));
    };
    if ds.is_empty() {
        return Err(DataError::Invalid("median-frequency class weights of an empty dataset".into()));
    }
    let (k, ignore) = (ds.num_classes(), ds.ignore_label());
    let per_sample: Vec<Vec<u64>> = (0..ds.len())
        .into_par_iter()
        .map(|i| {
            let e = ds.get(i, Mode::Eval)?;
            let map = checked_label_map(&e, [h, w], k, ignore)
                .map_err(|why| DataError::Invalid(format!("sample {i}: {why}")))?;
            let mut counts = vec![0u64; k];
            for &c in map {
                if Some(c) != ignore {
                    counts[c as usize] += 1;
                }
            }
            Ok(counts)
        })
        .collect::<Result<_>>()?;
    let (mut pixels, mut image_pixels) = (vec![0u64; k], vec![0u64; k]);
    for counts in &per_sample {
        for (c, &n) in counts.iter().enumerate() {
            pixels[c] += n;
            if n > 0 {
                image_pixels[c] += (h * w) as u64;
            }
        }
    }
    let absent: Vec<usize> = (0..k).filter(|&c| image_pixels[c] == 0).collect();
    if !absent.is_empty() {
        return Err(DataError::Invalid(format!(
            "median-frequency class weights: classes {absent:?} never occur in the {} samples (their frequency \
             would be 0/0)",
            ds.len()
        )));
    }
    let f: Vec<f64> = pixels.iter().zip(&image_pixels).map(|(&p, &n)| p as f64 / n as f64).collect();
    let mut sorted = f.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if k % 2 == 1 { sorted[k / 2] } else { (sorted[k / 2 - 1] + sorted[k / 2]) / 2.0 };
    Ok(f.iter().map(|&fc| (median / fc) as f32).collect())
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
    fn label_shape(&self) -> Option<[usize; 2]> {
        self.inner.label_shape()
    }
    fn ignore_label(&self) -> Option<u32> {
        self.inner.ignore_label()
    }
}
