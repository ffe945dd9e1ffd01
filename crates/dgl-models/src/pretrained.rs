//! Pretrained torchvision ResNet-18/34 weights for every ResNet encoder of a model
//! (`model.pretrained`, `dgl train --pretrained FILE`).
//!
//! [`load_torchvision_resnet`] reads a torchvision `state_dict` (`resnet18(weights=...)
//! .state_dict()`, or one of another base width, as long as every shape fits the model) from a
//! `.safetensors` file or a `torch.save` zip archive (`.pth`, a bare state dict or one under a
//! `state_dict` / `model` key), and copies it into every ResNet encoder `<m>_net` of the model:
//!
//! * names: torchvision's key `K` → `<m>_net.K` (`conv1.weight` → `visual_net.conv1.weight`,
//!   `layer2.0.downsample.1.running_var` → `audio_net.layer2.0.downsample.1.running_var`); the
//!   BatchNorm running statistics are loaded too;
//! * ignored: `fc.weight` / `fc.bias` (the ImageNet classifier) and every `num_batches_tracked`,
//!   listed in the [`LoadReport`];
//! * the first convolution: the file's `[64, 3, 7, 7]` is used as is by a 3-channel encoder; for a
//!   1-channel encoder (spectrogram, depth) it is **summed over its 3 input channels** into
//!   `[64, 1, 7, 7]`, as ESANet does for its depth encoder (`torch.sum(weights['conv1.weight'],
//!   axis=1, keepdim=True)`, TUI-NICR/ESANet `src/models/resnet.py:403-406` (ResNet-18), `439-442`
//!   (ResNet-34), `499-503` (NBt1D), commit f72ea8a); any other channel count is an error;
//! * strict, as ESANet's `load_state_dict(weights, strict=True)`: a tensor the encoder needs that
//!   the file lacks, a file tensor the encoder does not have (another depth), a shape that differs
//!   (another base width), a non-float dtype: each is a [`ModelError::Pretrained`] naming the file,
//!   the key and both shapes. Everything is checked and read before the first weight is written.
//!
//! Hostile files: the size is bounded ([`crate::limits::PRETRAINED_BYTES`]) before reading; the
//! safetensors header is validated by the `safetensors` crate; a `.pth` is read from memory with
//! the `zip` crate (stored entries only, as `torch.save` writes them: no decompression bomb) and
//! its pickle by a small bounded reader (`torch_pickle`) that executes nothing; every tensor view
//! is checked against its storage's size before a byte is copied.

mod torch_pickle;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use dgl_core::{MultimodalModel, NamedVar};

use crate::multimodal::{encoder_prefix, ModelState};
use crate::{limits, ModelError, Result};

use torch_pickle::{Obj, StorageType, TensorRef};

/// How a 1-channel encoder's first convolution is derived from the file's RGB one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv1Rule {
    /// The file's `conv1.weight` has the encoder's shape: used as is (3 channels).
    AsIs,
    /// `[C, 3, 7, 7]` summed over the input channels into `[C, 1, 7, 7]` (ESANet's depth encoder).
    SumOverChannels,
}

/// What was loaded into one encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderLoad {
    /// The encoder's prefix, `<modality>_net`.
    pub prefix: String,
    /// `resnet18` / `resnet34`.
    pub depth: String,
    /// Input channels of its conv1.
    pub in_channels: usize,
    /// Tensors written (parameters and BatchNorm running statistics).
    pub tensors: usize,
    pub conv1: Conv1Rule,
}

/// What [`load_torchvision_resnet`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    pub file: PathBuf,
    /// `safetensors` or `pth`.
    pub format: &'static str,
    /// The ResNet encoders, in modality order.
    pub encoders: Vec<EncoderLoad>,
    /// File entries not loaded: `fc.weight`, `fc.bias`, every `*num_batches_tracked`, and entries
    /// that are not tensors.
    pub ignored: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let encoders: Vec<String> = self
            .encoders
            .iter()
            .map(|e| {
                let rule = match e.conv1 {
                    Conv1Rule::AsIs => String::new(),
                    Conv1Rule::SumOverChannels => ", conv1 summed over the RGB channels (ESANet)".into(),
                };
                format!("{} ({}, {} tensors{rule})", e.prefix, e.depth, e.tensors)
            })
            .collect();
        let tracked = self.ignored.iter().filter(|k| is_num_batches_tracked(k)).count();
        let mut ignored: Vec<String> = self.ignored.iter().filter(|k| !is_num_batches_tracked(k)).cloned().collect();
        if tracked > 0 {
            ignored.push(format!("{tracked} × num_batches_tracked"));
        }
        write!(f, "pretrained {} ({}) loaded into {}", self.file.display(), self.format, encoders.join(", "))?;
        if !ignored.is_empty() {
            write!(f, "; ignored: {}", ignored.join(", "))?;
        }
        Ok(())
    }
}

fn is_num_batches_tracked(key: &str) -> bool {
    key == "num_batches_tracked" || key.ends_with(".num_batches_tracked")
}

/// File keys never loaded: the ImageNet classifier and BatchNorm's step counters.
fn is_ignored(key: &str) -> bool {
    key == "fc.weight" || key == "fc.bias" || is_num_batches_tracked(key)
}

fn err<T>(file: &Path, msg: impl Into<String>) -> Result<T> {
    Err(ModelError::Pretrained { file: file.to_path_buf(), msg: msg.into() })
}

/// The element type of a file tensor.
#[derive(Clone, Debug)]
enum FileDType {
    Float(DType),
    /// Not a floating-point type (its name).
    Other(String),
}

/// Where a tensor's bytes are.
#[derive(Clone, Debug)]
enum Source {
    /// In the safetensors file, under its name.
    Safetensors,
    /// A strided view of a storage of the zip archive.
    Pth(TensorRef),
}

#[derive(Clone, Debug)]
struct FileTensor {
    dtype: FileDType,
    shape: Vec<usize>,
    source: Source,
}

/// A state dict's index (names, dtypes, shapes), read from the file's bytes; tensor data is
/// copied out on demand.
struct StateDict {
    file: PathBuf,
    bytes: Vec<u8>,
    format: &'static str,
    tensors: BTreeMap<String, FileTensor>,
    /// Entries that are not tensors (key, what they are).
    others: Vec<(String, String)>,
    /// The directory of `data.pkl` inside a `.pth` archive (`archive/`).
    pth_prefix: String,
}

/// Reads a regular file of at most `limits::PRETRAINED_BYTES`, checking the size before reading.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let max = limits::PRETRAINED_BYTES.value().or_else(|e| err(path, e.to_string()))?;
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) => return err(path, format!("cannot read it ({e})")),
    };
    if !md.is_file() {
        return err(path, "not a regular file");
    }
    let bounded = |n: u64| limits::PRETRAINED_BYTES.check(n).or_else(|e| err(path, e.to_string()));
    bounded(md.len())?;
    let f = std::fs::File::open(path).or_else(|e| err(path, format!("cannot open it ({e})")))?;
    let mut bytes = Vec::with_capacity(md.len() as usize);
    f.take(max + 1).read_to_end(&mut bytes).or_else(|e| err(path, format!("cannot read it ({e})")))?;
    bounded(bytes.len() as u64)?;
    Ok(bytes)
}

impl StateDict {
    fn read(path: &Path) -> Result<Self> {
        let bytes = read_bounded(path)?;
        let mut sd = Self {
            file: path.to_path_buf(),
            bytes,
            format: "",
            tensors: BTreeMap::new(),
            others: Vec::new(),
            pth_prefix: String::new(),
        };
        let b = &sd.bytes;
        if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
            sd.format = "pth";
            sd.index_pth()?;
        } else if b.len() >= 9 && b[8] == b'{' {
            sd.format = "safetensors";
            sd.index_safetensors()?;
        } else if b.first() == Some(&0x80) {
            return err(
                path,
                "a PyTorch file in the legacy (pre-1.6, non-zip) format, which is not supported: re-save it with \
                 torch.save(state_dict, f) from PyTorch ≥ 1.6 or as .safetensors",
            );
        } else {
            return err(
                path,
                "neither a safetensors file nor a PyTorch zip archive (torch.save) holding a torchvision ResNet \
                 state_dict",
            );
        }
        Ok(sd)
    }

    fn index_safetensors(&mut self) -> Result<()> {
        let st = match safetensors::SafeTensors::deserialize(&self.bytes) {
            Ok(st) => st,
            Err(e) => return err(&self.file, format!("not a valid safetensors file ({e})")),
        };
        for (name, view) in st.iter() {
            use safetensors::Dtype as S;
            let dtype = match view.dtype() {
                S::F32 => FileDType::Float(DType::F32),
                S::F64 => FileDType::Float(DType::F64),
                S::F16 => FileDType::Float(DType::F16),
                S::BF16 => FileDType::Float(DType::BF16),
                other => FileDType::Other(format!("{other:?}")),
            };
            let t = FileTensor { dtype, shape: view.shape().to_vec(), source: Source::Safetensors };
            self.tensors.insert(name.to_string(), t);
        }
        Ok(())
    }

    fn zip(&self) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>> {
        zip::ZipArchive::new(std::io::Cursor::new(self.bytes.as_slice()))
            .or_else(|e| err(&self.file, format!("not a valid PyTorch zip archive ({e})")))
    }

    /// The bytes of a stored (uncompressed) entry of the archive.
    fn zip_entry(&self, name: &str) -> Result<Vec<u8>> {
        let mut zip = self.zip()?;
        let mut entry = match zip.by_name(name) {
            Ok(e) => e,
            Err(e) => return err(&self.file, format!("the archive has no readable entry `{name}` ({e})")),
        };
        if entry.compression() != zip::CompressionMethod::Stored {
            return err(
                &self.file,
                format!(
                    "the archive entry `{name}` is compressed ({:?}); torch.save stores entries uncompressed",
                    entry.compression()
                ),
            );
        }
        let size = entry.size();
        if size > self.bytes.len() as u64 {
            return err(&self.file, format!("the archive entry `{name}` claims {size} bytes, more than the file"));
        }
        // The entry's reader stops at its declared size and checks its CRC at the end.
        let mut out = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut out).or_else(|e| err(&self.file, format!("damaged archive entry `{name}` ({e})")))?;
        Ok(out)
    }

    fn index_pth(&mut self) -> Result<()> {
        let names: Vec<String> = {
            let zip = self.zip()?;
            zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect()
        };
        let Some(pkl) = names.iter().find(|n| *n == "data.pkl" || n.ends_with("/data.pkl")).cloned() else {
            return err(
                &self.file,
                "a zip archive without `data.pkl`: not a torch.save file (a TorchScript archive or another zip?)",
            );
        };
        self.pth_prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
        let byteorder = format!("{}byteorder", self.pth_prefix);
        if names.contains(&byteorder) {
            let order = self.zip_entry(&byteorder)?;
            if order != b"little" {
                return err(&self.file, "tensors saved in big-endian byte order are not supported");
            }
        }
        let pickle = self.zip_entry(&pkl)?;
        let top = torch_pickle::load(&pickle).or_else(|e| err(&self.file, format!("`{pkl}`: {e}")))?;
        let entries = torch_pickle::state_dict_entries(&top).or_else(|e| err(&self.file, e))?;
        for (name, value) in entries {
            match &value {
                Obj::Tensor(t) => {
                    let dtype = match &t.storage.dtype {
                        StorageType::Float(d) => FileDType::Float(*d),
                        other => FileDType::Other(other.describe()),
                    };
                    let shape = t.size.clone();
                    self.tensors.insert(name, FileTensor { dtype, shape, source: Source::Pth((**t).clone()) });
                }
                other => self.others.push((name, other.describe())),
            }
        }
        Ok(())
    }

    /// The tensor `name` (already checked to be a float tensor) on the CPU, in the file's dtype.
    fn tensor(&self, name: &str, t: &FileTensor) -> Result<Tensor> {
        let FileDType::Float(dtype) = t.dtype else {
            return err(&self.file, format!("`{name}` is not a floating-point tensor"));
        };
        let bytes = match &t.source {
            Source::Safetensors => {
                let st = safetensors::SafeTensors::deserialize(&self.bytes)
                    .or_else(|e| err(&self.file, format!("not a valid safetensors file ({e})")))?;
                let view = st.tensor(name).or_else(|e| err(&self.file, format!("`{name}`: {e}")))?;
                view.data().to_vec()
            }
            Source::Pth(view) => self.pth_bytes(name, view, dtype)?,
        };
        Ok(Tensor::from_raw_buffer(&bytes, dtype, &t.shape, &Device::Cpu)?)
    }

    /// The row-major bytes of a strided view of a `.pth` storage, after checking that every element
    /// it reads lies inside the storage and the storage inside its archive entry.
    fn pth_bytes(&self, name: &str, v: &TensorRef, dtype: DType) -> Result<Vec<u8>> {
        let es = dtype.size_in_bytes();
        let bad = |what: String| err(&self.file, format!("`{name}`: {what}"));
        let Some(count) = v.size.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return bad(format!("size {:?} overflows", v.size));
        };
        if count == 0 {
            return Ok(Vec::new());
        }
        // `count` is bounded: only tensors whose shape is the model's are read.
        // The last element a view reads: offset + Σ (size_k − 1)·stride_k.
        let last =
            v.size.iter().zip(&v.stride).try_fold(v.offset, |a, (&d, &s)| (d - 1).checked_mul(s)?.checked_add(a));
        match last {
            Some(l) if l < v.storage.numel => {}
            _ => {
                return bad(format!(
                    "the view (offset {}, size {:?}, stride {:?}) reads outside its storage of {} elements",
                    v.offset, v.size, v.stride, v.storage.numel
                ))
            }
        }
        let entry = format!("{}data/{}", self.pth_prefix, v.storage.key);
        let storage = self.zip_entry(&entry)?;
        let need = v.storage.numel.checked_mul(es);
        if need.is_none_or(|n| storage.len() < n) {
            return bad(format!(
                "its storage `{entry}` has {} bytes, fewer than {} elements of {es} bytes",
                storage.len(),
                v.storage.numel
            ));
        }
        // Row-major strides of the size: a contiguous view is one slice.
        let mut contiguous = vec![1usize; v.size.len()];
        for k in (0..v.size.len().saturating_sub(1)).rev() {
            contiguous[k] = contiguous[k + 1] * v.size[k + 1];
        }
        let is_contiguous = v.size.iter().zip(v.stride.iter().zip(&contiguous)).all(|(&d, (&s, &c))| d == 1 || s == c);
        if is_contiguous {
            return Ok(storage[v.offset * es..(v.offset + count) * es].to_vec());
        }
        let mut out = Vec::with_capacity(count * es);
        let mut index = vec![0usize; v.size.len()];
        for _ in 0..count {
            let at = v.offset + index.iter().zip(&v.stride).map(|(i, s)| i * s).sum::<usize>();
            out.extend_from_slice(&storage[at * es..(at + 1) * es]);
            for k in (0..index.len()).rev() {
                index[k] += 1;
                if index[k] < v.size[k] {
                    break;
                }
                index[k] = 0;
            }
        }
        Ok(out)
    }

    /// `a ResNet-18 (blocks per stage [2, 2, 2, 2])`, or just the blocks.
    fn describe_depth(&self) -> String {
        let blocks = blocks_of(self.tensors.keys().map(String::as_str));
        let name = match blocks {
            [2, 2, 2, 2] => "a ResNet-18 ",
            [3, 4, 6, 3] => "a ResNet-34 ",
            _ => "",
        };
        format!("{name}(blocks per stage {blocks:?})")
    }
}

/// Blocks per stage of the ResNet whose torchvision names are `keys` (`layer{s}.{b}.…`).
fn blocks_of<'a>(keys: impl Iterator<Item = &'a str>) -> [usize; 4] {
    let mut blocks = [0usize; 4];
    for key in keys {
        let mut parts = key.split('.');
        if let (Some(layer), Some(block)) = (parts.next(), parts.next()) {
            let stage = layer.strip_prefix("layer").and_then(|s| s.parse::<usize>().ok());
            if let (Some(s @ 1..=4), Ok(b)) = (stage, block.parse::<usize>()) {
                blocks[s - 1] = blocks[s - 1].max(b.saturating_add(1));
            }
        }
    }
    blocks
}

/// One ResNet encoder of the model: its prefix and its tensors by torchvision name.
struct EncoderVars {
    prefix: String,
    vars: Vec<(String, NamedVar)>,
}

impl EncoderVars {
    fn get(&self, rel: &str) -> Option<&NamedVar> {
        self.vars.iter().find(|(r, _)| r == rel).map(|(_, v)| v)
    }

    fn dims(&self, rel: &str) -> Option<Vec<usize>> {
        self.get(rel).map(|nv| nv.var.as_tensor().dims().to_vec())
    }

    /// Blocks per stage of its trunk, from its names.
    fn blocks(&self) -> [usize; 4] {
        blocks_of(self.vars.iter().map(|(rel, _)| rel.as_str()))
    }

    fn depth(&self) -> String {
        crate::resnet::ResNetConfig { in_channels: 1, base_width: 1, blocks: self.blocks() }.name()
    }

    fn describe(&self) -> String {
        let base = self.dims("conv1.weight").map_or(0, |d| d[0]);
        format!("`{}` ({}, base width {base}, blocks per stage {:?})", self.prefix, self.depth(), self.blocks())
    }
}

/// The ResNet encoders of `model`: every modality whose `<m>_net.conv1.weight` is a 4-D weight.
fn resnet_encoders<M: MultimodalModel + ModelState + ?Sized>(model: &M) -> Vec<EncoderVars> {
    let state = model.named_state();
    model
        .modality_names()
        .iter()
        .filter_map(|m| {
            let prefix = encoder_prefix(m);
            let head = format!("{prefix}.");
            let vars: Vec<(String, NamedVar)> = state
                .iter()
                .filter_map(|nv| nv.name.strip_prefix(&head).map(|rel| (rel.to_string(), nv.clone())))
                .collect();
            let enc = EncoderVars { prefix, vars };
            (enc.dims("conv1.weight").is_some_and(|d| d.len() == 4) && enc.get("layer1.0.conv1.weight").is_some())
                .then_some(enc)
        })
        .collect()
}

/// What to write into one variable.
struct Planned<'a> {
    var: &'a NamedVar,
    key: &'a str,
    sum_channels: bool,
}

/// Loads the torchvision ResNet `state_dict` in `path` (`.safetensors` or a `torch.save` `.pth`)
/// into every ResNet encoder of `model` (see the module doc for the name mapping, the conv1 rule
/// for 1-channel encoders and the errors). Nothing is written unless every encoder can be loaded
/// whole. Returns what was loaded and ignored (its `Display` is a one-line log message).
pub fn load_torchvision_resnet<M: MultimodalModel + ModelState + ?Sized>(model: &M, path: &Path) -> Result<LoadReport> {
    let encoders = resnet_encoders(model);
    if encoders.is_empty() {
        return err(
            path,
            format!(
                "the model has no ResNet encoder to load it into (modalities {:?}); pretrained weights are for the \
                 ResNet encoders (model.modalities[..].encoder.kind = \"resnet18_audio\" / \"resnet18_visual\")",
                model.modality_names()
            ),
        );
    }
    let sd = StateDict::read(path)?;
    let file = &sd.file;
    let mut plan: Vec<Planned> = Vec::new();
    let mut reports = Vec::with_capacity(encoders.len());
    for enc in &encoders {
        // The encoder's own tensors, each from the file.
        let mut conv1 = Conv1Rule::AsIs;
        let mut in_channels = 0;
        for (rel, nv) in &enc.vars {
            let want = nv.var.as_tensor().dims().to_vec();
            let Some(t) = sd.tensors.get(rel) else {
                let other = sd.others.iter().find(|(k, _)| k == rel).map(|(_, what)| format!(" (it holds a {what})"));
                return err(
                    file,
                    format!(
                        "no tensor `{rel}`{} for `{}.{rel}` {want:?}: the file is {} with {} tensors and the encoder \
                         is {}; a torchvision ResNet-18/34 state_dict of the encoder's depth is expected (model.resnet)",
                        other.unwrap_or_default(),
                        enc.prefix,
                        sd.describe_depth(),
                        sd.tensors.len(),
                        enc.describe()
                    ),
                );
            };
            if let FileDType::Other(dtype) = &t.dtype {
                return err(file, format!("`{rel}` has dtype {dtype}, not a floating-point type"));
            }
            let mut sum_channels = false;
            if rel == "conv1.weight" {
                in_channels = want[1];
                if t.shape != want {
                    let rgb = t.shape.len() == 4 && t.shape[1] == 3;
                    let same_else = rgb && [t.shape[0], t.shape[2], t.shape[3]] == [want[0], want[2], want[3]];
                    if rgb && want[1] != 1 && want[1] != 3 {
                        return err(
                            file,
                            format!(
                                "encoder `{}` has {} input channels: torchvision's conv1.weight {:?} is used as is by \
                                 a 3-channel encoder and summed over its RGB channels for a 1-channel one (ESANet); \
                                 {} channels are not supported",
                                enc.prefix, want[1], t.shape, want[1]
                            ),
                        );
                    }
                    if !(same_else && want[1] == 1) {
                        return err(
                            file,
                            format!(
                                "`conv1.weight` has shape {:?} in the file, the model's `{}.conv1.weight` is {want:?} \
                                 (the file's base width is {}, the encoder's {})",
                                t.shape,
                                enc.prefix,
                                t.shape.first().copied().unwrap_or(0),
                                want[0]
                            ),
                        );
                    }
                    sum_channels = true;
                    conv1 = Conv1Rule::SumOverChannels;
                }
            } else if t.shape != want {
                return err(
                    file,
                    format!(
                        "`{rel}` has shape {:?} in the file, the model's `{}.{rel}` is {want:?} (another base width or \
                         architecture: the encoder is {})",
                        t.shape,
                        enc.prefix,
                        enc.describe()
                    ),
                );
            }
            let key = sd.tensors.get_key_value(rel).map(|(k, _)| k.as_str()).expect("present");
            plan.push(Planned { var: nv, key, sum_channels });
        }
        // Every file tensor but fc and the step counters must have a place in the encoder.
        if let Some(extra) = sd.tensors.keys().find(|k| !is_ignored(k) && enc.get(k).is_none()) {
            return err(
                file,
                format!(
                    "the file has `{extra}`, which the encoder {} does not have: the file is {}; set model.resnet to \
                     its depth (a torchvision ResNet-18/34 state_dict is expected)",
                    enc.describe(),
                    sd.describe_depth()
                ),
            );
        }
        reports.push(EncoderLoad {
            prefix: enc.prefix.clone(),
            depth: enc.depth(),
            in_channels,
            tensors: enc.vars.len(),
            conv1,
        });
    }
    // Read every tensor (once) before writing any.
    let mut cache: HashMap<&str, Tensor> = HashMap::new();
    for p in &plan {
        if !cache.contains_key(p.key) {
            let t = sd.tensor(p.key, &sd.tensors[p.key])?;
            cache.insert(p.key, t);
        }
    }
    let mut values = Vec::with_capacity(plan.len());
    for p in &plan {
        let mut t = cache[p.key].clone();
        if p.sum_channels {
            // ESANet: torch.sum(weights['conv1.weight'], axis=1, keepdim=True), in the file's
            // precision (f32 for half-precision files).
            if t.dtype() != DType::F64 {
                t = t.to_dtype(DType::F32)?;
            }
            t = t.sum_keepdim(1)?;
        }
        let var = &p.var.var;
        values.push(t.to_dtype(var.dtype())?.to_device(var.device())?);
    }
    for (p, t) in plan.iter().zip(values) {
        p.var.var.set(&t)?;
    }
    let mut ignored: Vec<String> = sd.tensors.keys().filter(|k| is_ignored(k)).cloned().collect();
    ignored.extend(sd.others.iter().map(|(k, what)| format!("{k} ({what})")));
    Ok(LoadReport { file: sd.file.clone(), format: sd.format, encoders: reports, ignored })
}
