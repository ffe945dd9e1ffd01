//! Checkpoints: one safetensors file (`checkpoint.safetensors`) that holds everything a run needs
//! to continue exactly where it stopped, written atomically (temporary file, fsync, rename, fsync
//! of the directory), so a crash at any moment leaves the previous checkpoint or the new one.
//!
//! Tensors:
//! - the model's parameters and BatchNorm running statistics, under their own names (PyTorch
//!   `state_dict` keys, see `dgl_models::state`);
//! - `optimizer.momentum_buffer.<parameter>`: SGD momentum buffers, or `optimizer.exp_avg.<p>`,
//!   `optimizer.exp_avg_sq.<p>`, `optimizer.step.<p>`: AdamW moments and step counts;
//! - `method.<name>`: the method's own state ([`dgl_core::Method::state`]: prototypes, running
//!   scores, RNG states, D&R's θ_init, …);
//! - `meta.epoch`: completed epochs (u32), kept for older readers.
//!
//! Metadata (the safetensors header's `__metadata__`, so tensors and metadata are one file and
//! always agree): format version, the resolved configuration as TOML, the git revision, the
//! method, the position (completed epochs, global step and, for a checkpoint written inside an
//! epoch, the step within it and the epoch's running statistics) and the byte lengths of the
//! metrics files when it was written (a resume truncates them back, so no row is duplicated).
//!
//! The training loop derives every random stream from the seed, the epoch and the sample index
//! (shuffles, augmentation), so it keeps no RNG state of its own; methods that draw random numbers
//! during training (OGM-GE) save their generator in their state.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use dgl_core::method::{restore, snapshot};
use dgl_core::{Method, MultimodalModel, Optimizer};
use dgl_models::Model;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{io_err, CliError, Result};
use crate::fsio::write_atomic;

/// Name of the checkpoint format (metadata key `format`).
pub const FORMAT: &str = "dgl-checkpoint";
/// Version of the checkpoint format (metadata key `format_version`).
pub const FORMAT_VERSION: u32 = 1;
/// Prefix of optimizer momentum buffers.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";
/// Prefix of the method's own state.
pub const METHOD_PREFIX: &str = "method.";
/// Prefix of bookkeeping tensors.
pub const META_PREFIX: &str = "meta.";

/// Configuration keys that may differ between a checkpoint and the run that continues it: the
/// number of epochs (to extend a run), what to do on a non-finite step, and TF32 on CUDA (a precision
/// setting of the hardware, not of the method).
pub const RESUMABLE_CHANGES: [&str; 3] = ["train.epochs", "train.skip_non_finite", "train.tf32"];

/// Set from the dataset when a run starts (the saved configuration records the effective value), so
/// a configuration that still carries the preset's value is not a change.
pub const DATA_DERIVED: &str = "model.num_classes";

/// The position inside an epoch and the epoch's statistics so far (checkpoints written mid-epoch,
/// e.g. on Ctrl-C). Floating-point sums are stored as their bit patterns, so a resumed epoch
/// reports exactly what an uninterrupted one would.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochProgress {
    /// Steps of the epoch already taken (0 < step_in_epoch < steps per epoch).
    pub step_in_epoch: usize,
    /// Running sums of the epoch's logged scalars: (name, sum, count), in first-seen order.
    pub means: Vec<(String, f64, usize)>,
    /// Training samples seen and correctly classified so far in the epoch.
    pub n_seen: usize,
    pub n_correct: usize,
    /// Steps skipped as non-finite so far in the epoch.
    pub skipped: usize,
    /// Wall-clock seconds spent in the epoch so far.
    pub elapsed_s: f64,
}

#[derive(Serialize, Deserialize)]
struct ProgressJson {
    step_in_epoch: usize,
    means: Vec<(String, String, usize)>,
    n_seen: usize,
    n_correct: usize,
    skipped: usize,
    elapsed_s: f64,
}

fn f64_bits(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

fn f64_from_bits(s: &str) -> Option<f64> {
    u64::from_str_radix(s, 16).ok().map(f64::from_bits)
}

impl EpochProgress {
    fn to_json(&self) -> String {
        let j = ProgressJson {
            step_in_epoch: self.step_in_epoch,
            means: self.means.iter().map(|(k, s, n)| (k.clone(), f64_bits(*s), *n)).collect(),
            n_seen: self.n_seen,
            n_correct: self.n_correct,
            skipped: self.skipped,
            elapsed_s: self.elapsed_s,
        };
        serde_json::to_string(&j).unwrap_or_default()
    }

    fn from_json(s: &str) -> Option<Self> {
        let j: ProgressJson = serde_json::from_str(s).ok()?;
        let means = j
            .means
            .into_iter()
            .map(|(k, bits, n)| f64_from_bits(&bits).map(|v| (k, v, n)))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            step_in_epoch: j.step_in_epoch,
            means,
            n_seen: j.n_seen,
            n_correct: j.n_correct,
            skipped: j.skipped,
            elapsed_s: j.elapsed_s,
        })
    }
}

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointMeta {
    pub format_version: u32,
    /// Version of the `dgl` that wrote it.
    pub dgl_version: String,
    /// `git rev-parse HEAD` of the source tree the writer was built from, or `unknown`.
    pub git_revision: String,
    /// The method (`dgl`, `pmr`, …).
    pub method: String,
    /// The resolved configuration (TOML).
    pub config_toml: String,
    /// Completed epochs = the 0-based epoch the run continues with.
    pub epoch: usize,
    /// Steps taken so far over the whole run.
    pub global_step: u64,
    /// `Some` for a checkpoint written inside an epoch.
    pub progress: Option<EpochProgress>,
    /// Byte lengths of the run's metrics files when the checkpoint was written.
    pub files: BTreeMap<String, u64>,
    /// Seconds since the Unix epoch when it was written.
    pub created_unix: u64,
}

impl CheckpointMeta {
    /// The metadata of a checkpoint of `cfg` at this position.
    pub fn new(
        cfg: &TrainConfig,
        epoch: usize,
        global_step: u64,
        progress: Option<EpochProgress>,
        files: BTreeMap<String, u64>,
    ) -> Result<Self> {
        Ok(Self {
            format_version: FORMAT_VERSION,
            dgl_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(),
            method: cfg.method.name().to_string(),
            config_toml: cfg.to_toml()?,
            epoch,
            global_step,
            progress,
            files,
            created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        })
    }

    /// The configuration the checkpoint was written with.
    pub fn config(&self) -> Result<TrainConfig> {
        TrainConfig::from_toml_str(&self.config_toml)
            .map_err(|e| CliError::Run(format!("the checkpoint's configuration does not parse: {e}")))
    }

    /// `after epoch 3` or `in epoch 4, after step 5`.
    pub fn position(&self) -> String {
        match &self.progress {
            None => format!("after epoch {}", self.epoch),
            Some(p) => format!("in epoch {}, after step {}", self.epoch + 1, p.step_in_epoch),
        }
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("format_version".into(), self.format_version.to_string());
        m.insert("dgl_version".into(), self.dgl_version.clone());
        m.insert("git_revision".into(), self.git_revision.clone());
        m.insert("method".into(), self.method.clone());
        m.insert("config".into(), self.config_toml.clone());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("global_step".into(), self.global_step.to_string());
        m.insert("step_in_epoch".into(), self.progress.as_ref().map_or(0, |p| p.step_in_epoch).to_string());
        if let Some(p) = &self.progress {
            m.insert("progress".into(), p.to_json());
        }
        m.insert("files".into(), serde_json::to_string(&self.files).unwrap_or_default());
        m.insert("created_unix".into(), self.created_unix.to_string());
        m
    }

    fn from_map(m: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let get = |k: &str| m.get(k).ok_or_else(|| format!("its metadata has no `{k}`"));
        let num = |k: &str| -> std::result::Result<u64, String> {
            get(k)?.parse::<u64>().map_err(|e| format!("metadata `{k}`: {e}"))
        };
        if m.get("format").map(String::as_str) != Some(FORMAT) {
            return Err("it is not a dgl checkpoint (no `format = dgl-checkpoint` in its metadata; \
                        it may have been written by an older dgl, which could not resume)"
                .into());
        }
        let format_version = num("format_version")? as u32;
        if format_version != FORMAT_VERSION {
            return Err(format!("checkpoint format version {format_version}, this dgl reads version {FORMAT_VERSION}"));
        }
        let progress = match m.get("progress") {
            None => None,
            Some(s) => Some(EpochProgress::from_json(s).ok_or("metadata `progress` does not parse")?),
        };
        let files: BTreeMap<String, u64> =
            serde_json::from_str(get("files")?).map_err(|e| format!("metadata `files`: {e}"))?;
        Ok(Self {
            format_version,
            dgl_version: get("dgl_version")?.clone(),
            git_revision: get("git_revision")?.clone(),
            method: get("method")?.clone(),
            config_toml: get("config")?.clone(),
            epoch: num("epoch")? as usize,
            global_step: num("global_step")?,
            progress,
            files,
            created_unix: num("created_unix").unwrap_or(0),
        })
    }
}

/// A checkpoint: metadata and named tensors (on the CPU once loaded).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// The safetensors bytes of the checkpoint (tensors moved to the CPU).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let cpu: Vec<(String, Tensor)> =
            self.tensors.iter().map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
        let views: Vec<(String, &Tensor)> = cpu.iter().map(|(k, t)| (k.clone(), t)).collect();
        safetensors::serialize(views, Some(self.meta.to_map())).map_err(|e| CliError::Run(format!("safetensors: {e}")))
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads and checks a checkpoint (a truncated, damaged or foreign file is a clear error).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let damaged = |why: String| CliError::Run(format!("{}: cannot use this checkpoint: {why}", path.display()));
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| damaged(format!("damaged file ({e})")))?;
        let map = header.metadata().clone().unwrap_or_default();
        let meta = CheckpointMeta::from_map(&map).map_err(damaged)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| damaged(format!("damaged file ({e})")))?;
        Ok(Self { meta, tensors })
    }

    /// The model's tensors (everything but the optimizer, method and bookkeeping entries).
    pub fn model_tensors(&self) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(OPTIMIZER_PREFIX) && !k.starts_with(METHOD_PREFIX) && !k.starts_with(META_PREFIX)
            })
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect()
    }

    /// Entries under `prefix`, with the prefix removed, sorted by name.
    pub fn prefixed(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Reads only a checkpoint's metadata (the header), without its tensors.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let damaged = |why: String| CliError::Run(format!("{}: cannot use this checkpoint: {why}", path.display()));
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| damaged(format!("damaged file ({e})")))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 {
        return Err(damaged("damaged file (header too large)".into()));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| damaged(format!("damaged file ({e})")))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| damaged(format!("damaged header ({e})")))?;
    let map: HashMap<String, String> =
        v.get("__metadata__").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
    CheckpointMeta::from_map(&map).map_err(damaged)
}

/// `git rev-parse HEAD` of the source tree this binary was built from, when git and the tree
/// are there; else `unknown`. `DGL_GIT_REVISION` overrides it (packaged builds).
pub fn git_revision() -> String {
    static REV: OnceLock<String> = OnceLock::new();
    REV.get_or_init(|| {
        if let Ok(v) = std::env::var("DGL_GIT_REVISION") {
            if !v.trim().is_empty() {
                return v.trim().to_string();
            }
        }
        std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    })
    .clone()
}

/// Flattens a TOML value into `dotted.path → value` (arrays are values).
fn flatten(v: &toml::Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(x, &p, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The keys (dotted paths) on which two configurations differ, but those in `except`, with their
/// values in `a` and in `b` (`unset` when absent).
pub fn config_differences(a: &TrainConfig, b: &TrainConfig, except: &[&str]) -> Result<Vec<(String, String, String)>> {
    let mut fa = BTreeMap::new();
    let mut fb = BTreeMap::new();
    flatten(&toml::Value::try_from(a).map_err(|e| CliError::Config(e.to_string()))?, "", &mut fa);
    flatten(&toml::Value::try_from(b).map_err(|e| CliError::Config(e.to_string()))?, "", &mut fb);
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    let value = |m: &BTreeMap<String, String>, k: &String| m.get(k).map_or("unset".to_string(), String::clone);
    Ok(keys
        .into_iter()
        .filter(|k| !except.contains(&k.as_str()) && fa.get(*k) != fb.get(*k))
        .map(|k| (k.clone(), value(&fa, k), value(&fb, k)))
        .collect())
}

/// Refuses to continue a checkpoint of `saved` with `now` unless they agree on everything but
/// [`RESUMABLE_CHANGES`]; the message names every difference.
pub fn check_compatible(saved: &TrainConfig, now: &TrainConfig) -> Result<()> {
    if saved.method.kind() != now.method.kind() {
        return Err(CliError::Config(format!(
            "the checkpoint was written by method `{}`, not `{}`: a run continues with its own method \
             (drop --method, or start a new run with another --out)",
            saved.method.name(),
            now.method.name()
        )));
    }
    let mut except = RESUMABLE_CHANGES.to_vec();
    except.push(DATA_DERIVED);
    let diffs: Vec<String> = config_differences(saved, now, &except)?
        .into_iter()
        .map(|(k, a, b)| format!("`{k}`: {a} in the checkpoint, {b} now"))
        .collect();
    if !diffs.is_empty() {
        return Err(CliError::Config(format!(
            "the checkpoint was written with another configuration ({}); only {} may change when resuming",
            diffs.join("; "),
            RESUMABLE_CHANGES.join(", ")
        )));
    }
    Ok(())
}

/// The tensors of a checkpoint: the model's state (parameters and buffers), the optimizer's
/// (`optimizer.*`) and the method's (`method.*`).
pub fn capture(model: &Model, opt: &Optimizer, method: &dyn Method) -> Result<HashMap<String, Tensor>> {
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for v in model.state_vars() {
        t.insert(v.name.clone(), v.var.as_tensor().clone());
    }
    for (k, v) in opt.state()? {
        t.insert(format!("{OPTIMIZER_PREFIX}{k}"), v);
    }
    for (k, v) in method.state()? {
        t.insert(format!("{METHOD_PREFIX}{k}"), v);
    }
    Ok(t)
}

/// Puts a checkpoint's model, optimizer (when given) and method state in place (the model's
/// values and shapes checked first; `path` is where it was read from, for messages).
pub fn restore_into(
    c: &Checkpoint,
    path: &Path,
    model: &Model,
    opt: Option<&mut Optimizer>,
    method: &mut dyn Method,
    device: &Device,
) -> Result<()> {
    let tensors = c.model_tensors();
    check_model_tensors(&tensors, path)?;
    dgl_models::import_state(model, &tensors, true)
        .map_err(|e| CliError::Config(format!("the checkpoint does not fit the model of this configuration: {e}")))?;
    let on_device = |v: Vec<(String, Tensor)>| -> Result<Vec<(String, Tensor)>> {
        v.into_iter().map(|(k, t)| Ok((k, t.to_device(device)?))).collect()
    };
    if let Some(opt) = opt {
        opt.load_state(on_device(c.prefixed(OPTIMIZER_PREFIX))?)?;
    }
    method.load_state(&on_device(c.prefixed(METHOD_PREFIX))?)?;
    Ok(())
}

/// Everything a step may change, kept in memory before it when non-finite steps are skipped.
pub struct StepSnapshot {
    model: Vec<(String, Tensor)>,
    optimizer: Vec<(String, Tensor)>,
    method: Vec<(String, Tensor)>,
}

impl StepSnapshot {
    pub fn take(model: &Model, opt: &Optimizer, method: &dyn Method) -> Result<Self> {
        Ok(Self { model: snapshot(&model.state_vars())?, optimizer: opt.state()?, method: method.state()? })
    }

    /// Puts the model (parameters and BatchNorm statistics), the optimizer's momentum and the
    /// method's state back. Method state created lazily during the step (e.g. the first
    /// projection matrix) stays, as `Method::load_state` only sets what it is given.
    pub fn restore(self, model: &Model, opt: &mut Optimizer, method: &mut dyn Method) -> Result<()> {
        restore(&model.state_vars(), &self.model)?;
        opt.load_state(self.optimizer)?;
        method.load_state(&self.method)?;
        Ok(())
    }
}

/// Refuses a model that cannot have come out of training: a parameter or BatchNorm statistic
/// with a NaN or infinite value, or a negative BatchNorm running variance (`running_var`, which
/// eval-mode normalisation takes the square root of). Shared by `--resume` and `dgl eval`
/// (through `train::load_checkpoint`); the message names the tensor and the first bad value.
pub fn check_model_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if !t.dtype().is_float() {
            continue;
        }
        let v = t.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let bad = |what: &str, i: usize, x: f64| {
            Err(CliError::Run(format!(
                "{}: cannot use this checkpoint: tensor `{name}` holds {what} (element {i} of {} is {x}{}); \
                 the model in it is damaged",
                path.display(),
                v.len(),
                match v.iter().filter(|x| !x.is_finite()).count() {
                    0 => String::new(),
                    n => format!(", {n} non-finite in all"),
                }
            )))
        };
        if let Some((i, &x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return bad("non-finite values", i, x);
        }
        if name.ends_with("running_var") {
            if let Some((i, &x)) = v.iter().enumerate().find(|(_, x)| **x < 0.0) {
                return bad("a negative BatchNorm running variance", i, x);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn only_the_resumable_keys_may_change() {
        let saved = TrainConfig::preset(Preset::Tiny);
        let mut now = saved.clone();
        now.train.epochs += 5;
        now.train.skip_non_finite = true;
        now.train.tf32 = true;
        now.model.num_classes = 10; // data-derived
        check_compatible(&saved, &now).unwrap();
        now.train.optimizer.lr *= 2.0;
        now.seed += 1;
        let msg = check_compatible(&saved, &now).unwrap_err().to_string();
        assert!(msg.contains("`train.optimizer.lr`") && msg.contains("`seed`"), "{msg}");
        assert!(!msg.contains("tf32`:") && !msg.contains("`train.epochs`"), "{msg}");
    }
}
