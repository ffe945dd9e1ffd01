//! A decoded cache: [`prepare`] runs every item of a dataset once through its evaluation
//! transform (in parallel, with rayon) and stores the results as safetensors shards;
//! [`CachedDataset`] reads them back as a [`Dataset`].
//!
//! ```text
//! <out_dir>/<split>/shard-00000.safetensors   tensors modality.<k> [n, ...shape_k] F32,
//!                                             label [n] U32, index [n] U32 (source index),
//!                                             dense datasets: label_map [n, H, W] U32
//! <out_dir>/<split>/meta.json                 names, shapes, classes, shard lengths
//!                                             (dense: label_shape, ignore_label)
//! ```
//! A classification cache is format version 1, unchanged since before dense labels (older builds
//! read it); a dense (segmentation) cache is version 2: its `meta.json` has `label_shape` (and
//! `ignore_label`) and every shard a `label_map` tensor. An older build refuses a version-2 cache
//! by its version; this build reads both.
//! `meta.json` is written last: a cache without it (an interrupted or failed run) does not open.
//! A cached sample is the *evaluation* transform of the source (no augmentation); `get` ignores
//! the mode.

use crate::limits::LimitExt;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::report::Report;
use super::tensorfile::{
    check_finite, decode, read_range, safetensors_header, write_safetensors, FileDtype, WriteTensor,
};
use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};

/// Newest cache format version (written for dense datasets; see the module docs).
pub const CACHE_VERSION: u32 = 2;
/// The format version of a classification cache (no label maps), the format of the first release.
pub const CACHE_VERSION_CLASSIFICATION: u32 = 1;

/// Options of [`prepare_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// Leave bad items out (counted) instead of failing.
    pub skip_bad: bool,
    /// Class names for the report and the cache (default: `0`, `1`, …).
    pub class_names: Option<Vec<String>>,
    /// Target shard size in bytes (at least one sample per shard).
    pub shard_bytes: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self { skip_bad: false, class_names: None, shard_bytes: 256 << 20 }
    }
}

/// Why [`prepare`] failed.
#[derive(Debug)]
pub enum PrepareError {
    /// Some items were missing or corrupt (and `skip_bad` was off): the full report. Nothing
    /// usable was left in the cache folder.
    Bad(Report),
    /// The cache could not be written, or the dataset is inconsistent.
    Data(DataError),
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Bad(r) => {
                let t = r.total();
                write!(
                    f,
                    "{} missing and {} corrupt items (set skip_bad to leave them out):\n{r}",
                    t.missing, t.corrupt
                )
            }
            PrepareError::Data(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PrepareError {}

impl From<DataError> for PrepareError {
    fn from(e: DataError) -> Self {
        PrepareError::Data(e)
    }
}

impl From<PrepareError> for DataError {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Data(d) => d,
            bad @ PrepareError::Bad(_) => DataError::Invalid(bad.to_string()),
        }
    }
}

/// `meta.json` of a cached split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheMeta {
    pub version: u32,
    pub split: Split,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub modality_names: Vec<String>,
    pub modality_shapes: Vec<Vec<usize>>,
    pub len: usize,
    /// `(file name, samples)` of every shard, in order.
    pub shards: Vec<(String, usize)>,
    /// Counts of the run that wrote the cache.
    pub report: Report,
    /// `[H, W]` of the label maps of a dense dataset (version 2); absent for classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_shape: Option<[usize; 2]>,
    /// The void value of the label maps (version 2, when the dataset has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_label: Option<u32>,
}

/// [`prepare_with`] with default options: caches `dataset` (one split) under
/// `out_dir/<split>/`. `progress(done, total)` is called as items finish (from worker threads).
pub fn prepare(
    dataset: &dyn Dataset,
    split: Split,
    out_dir: &Path,
    skip_bad: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> std::result::Result<Report, PrepareError> {
    prepare_with(dataset, split, out_dir, &PrepareOptions { skip_bad, ..Default::default() }, progress)
}

fn split_dir(out_dir: &Path, split: Split) -> PathBuf {
    out_dir.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    })
}

/// See the module docs. Without `skip_bad`, the whole dataset is still scanned so that the
/// returned [`PrepareError::Bad`] report is complete.
pub fn prepare_with(
    dataset: &dyn Dataset,
    split: Split,
    out_dir: &Path,
    opts: &PrepareOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> std::result::Result<Report, PrepareError> {
    let names = dataset.modality_names();
    let shapes = dataset.modality_shapes();
    if names.len() != shapes.len() || names.is_empty() {
        return Err(DataError::Invalid(format!(
            "dataset has {} modality names and {} shapes",
            names.len(),
            shapes.len()
        ))
        .into());
    }
    if dataset.is_empty() {
        // Refused before the cache folder is touched.
        return Err(DataError::Invalid(format!("the {} split to cache has no samples", split.name())).into());
    }
    let numels: Vec<usize> = shapes.iter().map(|s| s.iter().product()).collect();
    let k = dataset.num_classes();
    let (label_shape, ignore) = (dataset.label_shape(), dataset.ignore_label());
    let map_len = label_shape.map_or(0, |[h, w]| h * w);
    let class_names = opts.class_names.clone().unwrap_or_else(|| (0..k).map(|c| c.to_string()).collect());
    let dir = split_dir(out_dir, split);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let meta_path = dir.join("meta.json");
    if meta_path.exists() {
        std::fs::remove_file(&meta_path).map_err(|e| DataError::io(&meta_path, e))?;
    }
    // Old shards would otherwise linger next to the new ones.
    for e in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
        let p = e.map_err(|e| DataError::io(&dir, e))?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".safetensors"))
        {
            std::fs::remove_file(&p).map_err(|e| DataError::io(&p, e))?;
        }
    }

    let n = dataset.len();
    let bytes_per = (numels.iter().sum::<usize>() + map_len).max(1) * 4;
    let per_shard = (opts.shard_bytes / bytes_per).clamp(1, 1 << 16);
    let done = AtomicUsize::new(0);
    let mut report = Report::new(class_names.clone());
    report.touch(split);
    let mut shards = Vec::new();
    let mut total = 0usize;
    for (s, chunk) in (0..n).collect::<Vec<_>>().chunks(per_shard).enumerate() {
        let results: Vec<(usize, Result<Example>)> = chunk
            .par_iter()
            .map(|&i| {
                let r = dataset.get(i, Mode::Eval).and_then(|ex| {
                    check_example(&ex, &numels, k, i)?;
                    if let Some(hw) = label_shape {
                        crate::dataset::checked_label_map(&ex, hw, k, ignore)
                            .map_err(|why| DataError::Invalid(format!("sample {i}: {why}")))?;
                    }
                    dataset.check_other_files(i)?;
                    Ok(ex)
                });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, n);
                (i, r)
            })
            .collect();
        let mut data: Vec<Vec<f32>> = numels.iter().map(|&m| Vec::with_capacity(m * chunk.len())).collect();
        let (mut labels, mut index) = (Vec::new(), Vec::new());
        let mut maps: Vec<u32> = Vec::with_capacity(map_len * chunk.len());
        for (i, r) in results {
            match r {
                Ok(ex) => {
                    report.record_ok(split, ex.label);
                    for (d, x) in data.iter_mut().zip(&ex.modalities) {
                        d.extend_from_slice(x);
                    }
                    if let Some(map) = &ex.label_map {
                        if label_shape.is_some() {
                            maps.extend_from_slice(map);
                        }
                    }
                    labels.push(ex.label);
                    index.push(
                        u32::try_from(i).map_err(|_| DataError::Invalid("dataset too large for the cache".into()))?,
                    );
                }
                Err(e) => {
                    let class = dataset.label(i).ok();
                    report.record_problem(split, class, format!("index {i}"), &e);
                }
            }
        }
        if labels.is_empty() || (!opts.skip_bad && !report.problems.is_empty()) {
            continue;
        }
        let file = format!("shard-{s:05}.safetensors");
        let m = labels.len();
        let tnames: Vec<String> = (0..names.len()).map(|k| format!("modality.{k}")).collect();
        let mut tensors: Vec<WriteTensor> = Vec::new();
        for ((tn, d), shape) in tnames.iter().zip(&data).zip(&shapes) {
            let mut full = vec![m];
            full.extend_from_slice(shape);
            tensors.push(WriteTensor::F32(tn, full, d));
        }
        tensors.push(WriteTensor::U32("label", vec![m], &labels));
        tensors.push(WriteTensor::U32("index", vec![m], &index));
        if let Some([h, w]) = label_shape {
            tensors.push(WriteTensor::U32("label_map", vec![m, h, w], &maps));
        }
        write_safetensors(&dir.join(&file), &tensors, None)?;
        shards.push((file, m));
        total += m;
    }
    if !opts.skip_bad && !report.problems.is_empty() {
        for (f, _) in &shards {
            let _ = std::fs::remove_file(dir.join(f));
        }
        return Err(PrepareError::Bad(report));
    }
    // Every item was bad (and left out): an empty cache would train on nothing.
    super::require_samples(total, split, &dir, &report)?;
    let meta = CacheMeta {
        version: if label_shape.is_some() { CACHE_VERSION } else { CACHE_VERSION_CLASSIFICATION },
        split,
        num_classes: k,
        class_names,
        modality_names: names,
        modality_shapes: shapes,
        len: total,
        shards,
        report: report.clone(),
        label_shape,
        ignore_label: if label_shape.is_some() { ignore } else { None },
    };
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| DataError::Invalid(format!("cannot encode cache metadata: {e}")))?;
    std::fs::write(&meta_path, json).map_err(|e| DataError::io(&meta_path, e))?;
    Ok(report)
}

fn check_example(ex: &Example, numels: &[usize], k: usize, i: usize) -> Result<()> {
    if ex.modalities.len() != numels.len() {
        return Err(DataError::Invalid(format!(
            "sample {i} has {} modalities, expected {}",
            ex.modalities.len(),
            numels.len()
        )));
    }
    for (m, (x, &want)) in ex.modalities.iter().zip(numels).enumerate() {
        if x.len() != want {
            return Err(DataError::Invalid(format!(
                "sample {i}: modality {m} has {} values, expected {want}",
                x.len()
            )));
        }
        if let Some(j) = x.iter().position(|v| !v.is_finite()) {
            return Err(DataError::Invalid(format!("sample {i}: modality {m} has a non-finite value at {j}")));
        }
    }
    if ex.label as usize >= k {
        return Err(DataError::Invalid(format!("sample {i}: label {} is not below {k}", ex.label)));
    }
    Ok(())
}

/// One shard of a cache.
#[derive(Clone, Debug)]
struct Shard {
    path: PathBuf,
    /// Byte offset of each modality's tensor.
    starts: Vec<u64>,
    /// Byte offset of the `label_map` tensor (dense caches).
    map_start: Option<u64>,
    len: usize,
}

/// A split cached by [`prepare`].
pub struct CachedDataset {
    meta: CacheMeta,
    numels: Vec<usize>,
    shards: Vec<Shard>,
    /// `(shard, row)` of every sample.
    locate: Vec<(u32, u32)>,
    labels: Vec<u32>,
    source: Vec<u32>,
}

impl CachedDataset {
    /// Opens `out_dir/<split>/` (checks every shard's header against `meta.json`).
    pub fn open(out_dir: &Path, split: Split) -> Result<Self> {
        let dir = split_dir(out_dir, split);
        let meta_path = dir.join("meta.json");
        let bytes = super::fsutil::read_bounded(&meta_path, crate::limits::TEXT_BYTES)?;
        let meta: CacheMeta = serde_json::from_slice(&bytes)
            .map_err(|e| DataError::bad_file(&meta_path, format!("not a cache meta.json: {e}")))?;
        if meta.version != CACHE_VERSION && meta.version != CACHE_VERSION_CLASSIFICATION {
            return Err(DataError::bad_file(
                &meta_path,
                format!(
                    "cache version {} (this build reads {CACHE_VERSION_CLASSIFICATION} and {CACHE_VERSION}); \
                     re-run `dgl prepare`",
                    meta.version
                ),
            ));
        }
        if meta.split != split || meta.modality_names.len() != meta.modality_shapes.len() || meta.num_classes == 0 {
            return Err(DataError::bad_file(&meta_path, "inconsistent cache metadata"));
        }
        match (meta.version, meta.label_shape) {
            (CACHE_VERSION_CLASSIFICATION, Some(_)) => {
                return Err(DataError::bad_file(
                    &meta_path,
                    "a version-1 cache with label_shape (version 1 has no label maps)",
                ))
            }
            (CACHE_VERSION, None) => {
                return Err(DataError::bad_file(&meta_path, "a version-2 cache without label_shape"))
            }
            (_, Some([h, w])) if h == 0 || w == 0 => {
                return Err(DataError::bad_file(&meta_path, format!("label_shape [{h}, {w}] has a zero side")))
            }
            (_, Some([h, w])) => crate::limits::IMAGE_PIXELS
                .check_label((h as u64).saturating_mul(w as u64), "label_shape (H × W)")
                .map_err(|r| DataError::bad_file(&meta_path, r))?,
            _ => {}
        }
        crate::limits::CLASSES
            .check_usize(meta.num_classes, "num_classes")
            .map_err(|r| DataError::bad_file(&meta_path, r))?;
        super::require_samples(meta.len, split, &meta_path, &meta.report)?;
        let numels: Vec<usize> = meta.modality_shapes.iter().map(|s| s.iter().product()).collect();
        let mut shards = Vec::new();
        let (mut locate, mut labels, mut source) = (Vec::new(), Vec::new(), Vec::new());
        for (s, (file, len)) in meta.shards.iter().enumerate() {
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(DataError::bad_file(&meta_path, format!("bad shard name {file:?}")));
            }
            let path = dir.join(file);
            let (infos, _) = safetensors_header(&path)?;
            let find = |name: &str, dtype: FileDtype, shape: Vec<usize>| -> Result<u64> {
                let t = infos
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| DataError::bad_file(&path, format!("no tensor {name:?}")))?;
                if t.dtype != dtype || t.shape != shape {
                    return Err(DataError::bad_file(
                        &path,
                        format!("tensor {name:?} is {:?} {:?}, expected {dtype:?} {shape:?}", t.dtype, t.shape),
                    ));
                }
                Ok(t.start)
            };
            let mut starts = Vec::new();
            for (k, shape) in meta.modality_shapes.iter().enumerate() {
                let mut full = vec![*len];
                full.extend_from_slice(shape);
                starts.push(find(&format!("modality.{k}"), FileDtype::F32, full)?);
            }
            let lab_at = find("label", FileDtype::U32, vec![*len])?;
            let idx_at = find("index", FileDtype::U32, vec![*len])?;
            let map_start = match meta.label_shape {
                Some([h, w]) => Some(find("label_map", FileDtype::U32, vec![*len, h, w])?),
                None => None,
            };
            let lab = decode(&read_range(&path, lab_at, 4 * len)?, FileDtype::U32);
            let idx = decode(&read_range(&path, idx_at, 4 * len)?, FileDtype::U32);
            for (row, (&y, &i)) in lab.iter().zip(&idx).enumerate() {
                let y = y as u32;
                if y as usize >= meta.num_classes {
                    return Err(DataError::bad_file(
                        &path,
                        format!("label {y} of row {row} is not below {}", meta.num_classes),
                    ));
                }
                labels.push(y);
                source.push(i as u32);
                locate.push((s as u32, row as u32));
            }
            shards.push(Shard { path, starts, map_start, len: *len });
        }
        if labels.len() != meta.len {
            return Err(DataError::bad_file(
                &meta_path,
                format!("announces {} samples, the shards hold {}", meta.len, labels.len()),
            ));
        }
        Ok(Self { meta, numels, shards, locate, labels, source })
    }

    pub fn meta(&self) -> &CacheMeta {
        &self.meta
    }
    /// The report of the run that wrote the cache.
    pub fn report(&self) -> &Report {
        &self.meta.report
    }
    /// Index of cached sample `index` in the source dataset.
    pub fn source_index(&self, index: usize) -> Option<usize> {
        self.source.get(index).map(|&i| i as usize)
    }
}

impl Dataset for CachedDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        self.meta.num_classes
    }
    fn modality_names(&self) -> Vec<String> {
        self.meta.modality_names.clone()
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        self.meta.modality_shapes.clone()
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.labels.get(index).copied().ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a cache of {}", self.labels.len()))
        })
    }
    fn get(&self, index: usize, _mode: Mode) -> Result<Example> {
        let label = self.label(index)?;
        let (s, row) = self.locate[index];
        let shard = &self.shards[s as usize];
        debug_assert!((row as usize) < shard.len);
        let mut modalities = Vec::with_capacity(self.numels.len());
        for (k, &m) in self.numels.iter().enumerate() {
            let at = shard.starts[k] + (row as u64) * (m as u64) * 4;
            let x = decode(&read_range(&shard.path, at, m * 4)?, FileDtype::F32);
            check_finite(&x, &shard.path, &self.meta.modality_names[k])?;
            modalities.push(x);
        }
        let label_map = match (self.meta.label_shape, shard.map_start) {
            (Some([h, w]), Some(start)) => {
                let at = start + (row as u64) * (h * w) as u64 * 4;
                let bytes = read_range(&shard.path, at, h * w * 4)?;
                let map: Vec<u32> =
                    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let (k, ignore) = (self.meta.num_classes, self.meta.ignore_label);
                if let Some(p) = map.iter().position(|&c| c as usize >= k && Some(c) != ignore) {
                    return Err(DataError::bad_file(
                        &shard.path,
                        format!("label_map of row {row}: value {} at position {p} is not a class below {k}", map[p]),
                    ));
                }
                Some(map)
            }
            _ => None,
        };
        Ok(Example { modalities, label, label_map })
    }
    fn label_shape(&self) -> Option<[usize; 2]> {
        self.meta.label_shape
    }
    fn ignore_label(&self) -> Option<u32> {
        self.meta.ignore_label
    }
}
