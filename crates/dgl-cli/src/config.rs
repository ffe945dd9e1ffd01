//! The resolved configuration of a run (burn-style: a `Config` struct with defaults, serialised
//! with each run as `config.toml`), its presets, and validation before any work starts.

use dgl_baselines::MethodConfig;
use dgl_core::{LrSchedule, OptimizerConfig};
use dgl_data::datasets::DatasetSpec;
use dgl_data::SyntheticConfig;
use dgl_models::ModelConfig;
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// `tiny` (CPU, minutes) or `paper` (the paper's model and schedule; needs a GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    #[default]
    Tiny,
    Paper,
}

/// Where to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

/// Dataset section: `[data]` with the dataset itself as the tagged table `[data.dataset]`
/// (`kind = "synthetic" | "cremad" | …` and that layout's options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The dataset: its layout, root and options.
    pub dataset: DatasetSpec,
    /// Fraction of the training set held out as a validation split (reproducibly, per class).
    pub validation_fraction: f64,
    /// Always hold out the validation split (for model selection), not only for methods that
    /// need one.
    pub always_validate: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetSpec::Synthetic(SyntheticConfig::tiny()),
            validation_fraction: 0.1,
            always_validate: false,
        }
    }
}

impl DataConfig {
    /// The synthetic set's settings, when it is the dataset.
    pub fn synthetic_mut(&mut self) -> Option<&mut SyntheticConfig> {
        match &mut self.dataset {
            DatasetSpec::Synthetic(s) => Some(s),
            _ => None,
        }
    }
}

/// Training schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    pub epochs: usize,
    pub batch_size: usize,
    /// Global L2 gradient-norm clip (official DGL code: 40). `None` disables.
    pub clip_norm: Option<f64>,
    /// SGD (the paper's) or AdamW, one flat table (`kind = "sgd" | "adamw"`).
    pub optimizer: OptimizerConfig,
    pub scheduler: LrSchedule,
    /// Compute the Fig. 1(c)/3(b) gradient sources every N steps (0 = never).
    pub diagnostics_every: usize,
    /// Drop the last partial training batch (official loaders do).
    pub drop_last: bool,
    /// On a NaN / infinite loss or gradient, skip the step (model, optimizer and method state are
    /// restored to what they were before it) and count it in the `skipped_steps` metric, instead
    /// of stopping the run.
    pub skip_non_finite: bool,
    /// On CUDA, let f32 matrix products and cuDNN convolutions use TF32 tensor cores (PyTorch's
    /// `allow_tf32`; about 10 mantissa bits in the products, f32 accumulation). Off: strict fp32.
    /// No effect on the CPU.
    pub tf32: bool,
    /// Per-class weights of a segmentation run's per-pixel loss (no effect on classification).
    pub class_weights: ClassWeights,
}

/// The class weighting of a dense task's loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeights {
    /// ESANet's median-frequency weighting, computed from the training split's label maps
    /// (`dgl_data::median_frequency_weights`; ESANet `dataset_base.py:147-208`).
    #[default]
    MedianFrequency,
    /// Every class weight 1.
    None,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            clip_norm: Some(40.0),
            optimizer: OptimizerConfig::default(),
            scheduler: LrSchedule::default(),
            diagnostics_every: 50,
            drop_last: true,
            skip_non_finite: false,
            tf32: false,
            class_weights: ClassWeights::default(),
        }
    }
}

/// Everything a run needs; written to `config.toml` in the run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub preset: Preset,
    pub seed: u64,
    pub device: DeviceKind,
    /// The method and its hyper-parameters (`[method]`, with one sub-table per method).
    pub method: MethodConfig,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainSection,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self::preset(Preset::Tiny)
    }
}

impl TrainConfig {
    /// The defaults of a preset.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Paper => Self {
                preset,
                seed: 0,
                device: DeviceKind::Cuda,
                method: MethodConfig::default(),
                data: DataConfig { dataset: DatasetSpec::Synthetic(SyntheticConfig::paper()), ..DataConfig::default() },
                model: ModelConfig { base_width: 64, frames: 1, ..ModelConfig::default() },
                train: TrainSection::default(),
            },
            Preset::Tiny => Self {
                preset,
                seed: 0,
                device: DeviceKind::Cpu,
                method: MethodConfig::default(),
                data: DataConfig {
                    dataset: DatasetSpec::Synthetic(SyntheticConfig {
                        n_train: 720,
                        n_test: 360,
                        ..SyntheticConfig::tiny()
                    }),
                    ..DataConfig::default()
                },
                model: ModelConfig { base_width: 8, frames: 1, ..ModelConfig::default() },
                train: TrainSection {
                    epochs: 10,
                    batch_size: 32,
                    optimizer: OptimizerConfig { lr: 1e-2, ..OptimizerConfig::default() },
                    scheduler: LrSchedule { milestones: vec![8], ..LrSchedule::default() },
                    diagnostics_every: 10,
                    ..TrainSection::default()
                },
            },
        }
    }

    /// Reads a TOML file (a regular file of at most `dgl_data::limits::TEXT_BYTES`); unknown keys (in every section) are errors naming the file and the key.
    /// Sections and keys the file leaves out come from its `preset` (see [`Self::from_toml_str`]).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        Self::from_toml_file_with_preset(path, None)
    }

    /// [`Self::from_toml_file`], with `preset` (`--preset`) as the base when the file names none;
    /// a file whose `preset` differs from it is refused.
    pub fn from_toml_file_with_preset(path: &std::path::Path, preset: Option<Preset>) -> Result<Self> {
        let bytes = dgl_data::datasets::fsutil::read_bounded(path, dgl_data::limits::TEXT_BYTES)
            .map_err(|e| CliError::Config(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| CliError::Config(format!("{}: not valid UTF-8 ({e})", path.display())))?;
        Self::from_toml_str_with_preset(&text, preset).map_err(|e| match e {
            CliError::Config(m) => CliError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a TOML configuration over its preset: the file's tables are merged key by key into
    /// the preset's complete configuration (`preset = "tiny"` when the file names none), so a
    /// partial section keeps the preset's values for the keys it leaves out (`[model]` with only
    /// `fusion` keeps the tiny base width 8, `[train]` with only `epochs` the tiny batch, learning
    /// rate and milestones). Arrays (`model.modalities`, `milestones`, …) are values: the file's
    /// replaces the preset's whole. Unknown keys are refused at every depth: `deny_unknown_fields`
    /// catches most, and a comparison of the given keys with the parsed configuration serialised
    /// back catches those of sections defined in other crates without it (`[model]`, …). A
    /// `[data.dataset]` or `[method]` naming another kind than the preset's replaces its table whole.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Self::from_toml_str_with_preset(text, None)
    }

    /// [`Self::from_toml_str`] with `preset` as the base when the text names none.
    pub fn from_toml_str_with_preset(text: &str, preset: Option<Preset>) -> Result<Self> {
        let given: toml::Value = toml::from_str(text).map_err(|e| CliError::Config(e.to_string()))?;
        if let Some(m) = given.get("method").and_then(legacy_method_error) {
            return Err(CliError::Config(format!("{m} (this configuration was written for an earlier version)")));
        }
        refuse_old_data_section(&given)?;
        // Type errors, and unknown fields of the sections that deny them, with the line and column
        // of the text (the merged value below has no positions). Reported only when the merged
        // configuration fails too: a partial tagged table (`[method]` without its `name`,
        // `[data.dataset]` without its `kind`) is complete once merged over the preset.
        let positioned = toml::from_str::<Self>(text).err();
        let named: Option<Preset> = match given.get("preset") {
            Some(p) => {
                Some(p.clone().try_into().map_err(|e: toml::de::Error| CliError::Config(format!("preset: {e}")))?)
            }
            None => None,
        };
        if let (Some(file), Some(flag)) = (named, preset) {
            if file != flag {
                return Err(CliError::Config(format!(
                    "--preset {flag:?} disagrees with the configuration's preset {file:?}"
                )));
            }
        }
        let base = Self::preset(named.or(preset).unwrap_or_default());
        let mut merged = toml::Value::try_from(&base).map_err(|e| CliError::Config(e.to_string()))?;
        merge_over(&mut merged, &given);
        let cfg: Self = merged.try_into().map_err(|e: toml::de::Error| {
            CliError::Config(match positioned {
                Some(p) if p.message() == e.message() => p.to_string(),
                _ => e.to_string(),
            })
        })?;
        let known = toml::Value::try_from(&cfg).map_err(|e| CliError::Config(e.to_string()))?;
        let mut unknown = Vec::new();
        unknown_keys(&given, &known, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(CliError::Config(format!(
                "unknown key{} {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| CliError::Config(e.to_string()))
    }

    /// Every check that can be made before any work starts (nothing is built or read here):
    /// every number finite, every size within its limit ([`limits`], `dgl_models::limits`,
    /// [`SyntheticConfig::validate`]), every option in its range.
    ///
    /// An empty `train.scheduler.milestones` list is allowed and means a constant learning rate.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CliError::Config(m));
        check_finite(self)?;
        self.method.validate().map_err(|e| CliError::Config(e.to_string()))?;
        self.method.check_model(&self.model_facts()).map_err(|e| CliError::Config(e.to_string()))?;
        self.model.check_limits()?;
        limits::EPOCHS.check(self.train.epochs as u64).map_err(|e| CliError::Config(e.to_string()))?;
        limits::BATCH_SIZE.check(self.train.batch_size as u64).map_err(|e| CliError::Config(e.to_string()))?;
        self.data.dataset.check().map_err(|e| CliError::Config(format!("data.dataset: {e}")))?;
        if self.model.base_width == 0 {
            return bad("model.base_width must be >= 1".into());
        }
        if self.model.frames == 0 {
            return bad("model.frames must be >= 1".into());
        }
        // The model's modalities must be the dataset's, and the method must support their number
        // (for datasets whose modalities are only known once opened, `RunData::build` checks after
        // opening).
        if let Some(names) = self.data.dataset.modalities() {
            check_data_modalities(self, &names)?;
        }
        if self.train.epochs == 0 {
            return bad("epochs must be >= 1".into());
        }
        if self.train.batch_size == 0 {
            return bad("batch_size must be >= 1".into());
        }
        if let Some(c) = self.train.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("clip_norm must be > 0, got {c}"));
            }
        }
        if !(0.0..1.0).contains(&self.data.validation_fraction) {
            return bad(format!("validation_fraction must be in [0, 1), got {}", self.data.validation_fraction));
        }
        self.train.optimizer.validate().map_err(|e| CliError::Config(e.to_string()))?;
        self.train.scheduler.validate().map_err(|e| CliError::Config(e.to_string()))?;
        if self.train.scheduler.milestones.contains(&0) {
            return bad("scheduler milestones must be >= 1".into());
        }
        if self.preset == Preset::Paper
            && self.device == DeviceKind::Cpu
            && std::env::var_os("DGL_ALLOW_CPU_PAPER").is_none()
        {
            return bad(
                "the paper preset (2× ResNet-18 at 224×224, 100 epochs) needs a GPU: use --device cuda, or --preset tiny on CPU \
                 (set DGL_ALLOW_CPU_PAPER=1 to force it)"
                    .into(),
            );
        }
        if self.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            return bad(
                "--device cuda: this build has no CUDA support; build with `--features cuda` (see docs/gpu.md)".into(),
            );
        }
        Ok(())
    }
}

/// The one check that the model's modalities (`model.modalities`) are the data's `names`, by
/// name ([`dgl_data::datasets::check_modalities`]): before opening when the layout knows them,
/// after opening otherwise.
pub fn check_data_modalities<S: AsRef<str>>(cfg: &TrainConfig, names: &[S]) -> Result<()> {
    let model: Vec<&str> = cfg.model.modalities.iter().map(|m| m.name.as_str()).collect();
    let what = format!("the {} dataset", cfg.data.dataset.kind_name());
    dgl_data::datasets::check_modalities(&model, names, &what).map_err(|e| CliError::Config(e.to_string()))
}

impl TrainConfig {
    /// What the method may check about the model before anything is built: its modality count
    /// (a model listing one modality is a unimodal model) and its head.
    pub fn model_facts(&self) -> dgl_baselines::ModelFacts<'_> {
        dgl_baselines::ModelFacts {
            modalities: self.model.modalities.len(),
            head: self.model.fusion.as_str(),
            head_is_linear: self.model.fusion.is_linear(),
            dense: self.model.fusion.is_dense(),
            task: if self.model.fusion == dgl_models::FusionKind::Esanet {
                dgl_baselines::spec::TaskKind::DenseLabels
            } else {
                dgl_baselines::spec::TaskKind::Classification
            },
        }
    }

    /// The configuration with one dotted key set (`method.unimodal_weight`, `train.epochs`),
    /// re-read through the configuration parser: unknown keys and wrong types are errors naming
    /// the key. `value` is TOML ([`parse_value`]).
    pub fn with_key(&self, key: &str, value: toml::Value) -> Result<Self> {
        let bad = |m: String| CliError::Config(format!("{key}: {m}"));
        let parts: Vec<&str> = key.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("expected a dotted key such as `train.epochs`".into()));
        }
        let mut doc = toml::Value::try_from(self).map_err(|e| bad(e.to_string()))?;
        let mut node = &mut doc;
        for part in &parts[..parts.len() - 1] {
            let table = node.as_table_mut().ok_or_else(|| bad(format!("`{part}` is not a section")))?;
            node = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
        let table = node.as_table_mut().ok_or_else(|| bad("not a section".into()))?;
        table.insert(parts[parts.len() - 1].to_string(), value);
        let text = toml::to_string(&doc).map_err(|e| bad(e.to_string()))?;
        Self::from_toml_str(&text).map_err(|e| bad(e.to_string()))
    }
}

/// A command-line value as TOML (`2`, `true`, `[30, 70]`, `"adamw"`); anything that is not a TOML
/// value is taken as a string (`train.optimizer.kind=adamw`).
pub fn parse_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

/// `KEY=VALUE` → (key, TOML value).
pub fn parse_assignment(spec: &str) -> Result<(String, toml::Value)> {
    let (key, value) = spec
        .split_once('=')
        .ok_or_else(|| CliError::Config(format!("`{spec}`: expected KEY=VALUE, e.g. `method.unimodal_weight=2`")))?;
    Ok((key.trim().to_string(), parse_value(value.trim())))
}

/// Whether `path` is a configuration of an earlier format of this tool (one the loader refuses
/// saying what changed): a run directory holding one is still a run directory `dgl` wrote.
pub fn written_by_earlier_version(path: &std::path::Path) -> bool {
    let Ok(bytes) = dgl_data::datasets::fsutil::read_bounded(path, dgl_data::limits::TEXT_BYTES) else {
        return false;
    };
    let Some(given) = std::str::from_utf8(&bytes).ok().and_then(|t| toml::from_str::<toml::Value>(t).ok()) else {
        return false;
    };
    given.get("method").and_then(legacy_method_error).is_some() || refuse_old_data_section(&given).is_err()
}

/// The method options of the format before each method had its own (a shared `alpha`, one
/// sub-table per method, the unimodal methods): the error saying what changed, or `None`.
fn legacy_method_error(method: &toml::Value) -> Option<String> {
    let name = method.get("name").and_then(|n| n.as_str()).unwrap_or("dgl");
    if let Some(hint) = dgl_baselines::registry::removed_unimodal_hint(name) {
        return Some(hint);
    }
    if let Some(a) = method.get("alpha") {
        let now = name.parse::<dgl_baselines::MethodKind>().ok().and_then(dgl_baselines::registry::former_alpha);
        return Some(match now {
            Some(key) => format!(
                "`method.alpha` was removed: each method names its own options; for `{name}` write `{key} = {a}` \
                 in [method] (`--set method.{key}={a}` on the command line)"
            ),
            None => format!("`method.alpha` was removed, and `{name}` has no option it stood for"),
        });
    }
    let tables: Vec<&str> = method
        .as_table()
        .into_iter()
        .flatten()
        .filter(|(k, v)| v.is_table() && dgl_baselines::registry::FORMER_SUBTABLES.contains(&k.as_str()))
        .map(|(k, _)| k.as_str())
        .collect();
    (!tables.is_empty()).then(|| {
        format!(
            "[method.{}] was removed: the chosen method's options now sit directly in [method] (e.g. \
             `[method]` `name = \"ogm-ge\"` `modulation_ends = 50`)",
            tables.join("], [method.")
        )
    })
}

/// Refuses the `[data]` section of configurations written before the typed dataset spec
/// (`dataset = "cremad"`, `root`, `[data.options]`, `[data.synthetic]`), saying what to write.
fn refuse_old_data_section(given: &toml::Value) -> Result<()> {
    let Some(data) = given.get("data").and_then(toml::Value::as_table) else {
        return Ok(());
    };
    let old_kind = data.get("dataset").and_then(toml::Value::as_str);
    let old_keys: Vec<&str> = ["root", "options", "synthetic"].into_iter().filter(|k| data.contains_key(*k)).collect();
    if old_kind.is_none() && old_keys.is_empty() {
        return Ok(());
    }
    let kind = old_kind.unwrap_or("synthetic");
    let root = match data.get("root").and_then(toml::Value::as_str) {
        Some(r) => format!("root = {r:?}"),
        None if kind == "synthetic" => String::new(),
        None => "root = \"…\"".into(),
    };
    let mut found: Vec<String> = old_kind.map(|k| format!("`data.dataset = {k:?}`")).into_iter().collect();
    found.extend(old_keys.iter().map(|k| format!("`data.{k}`")));
    Err(CliError::Config(format!(
        "this configuration uses the old [data] section ({}): `data.dataset` is now a table holding the dataset's \
         kind, root and options. Write [data.dataset] with kind = {kind:?}{}{root}, and move the keys of \
         [data.options] (for the chosen layout) or [data.synthetic] into it (av-digits settings go under \
         [data.dataset.av_digits]); `data.root`, `data.options.*` and `data.synthetic.*` are gone",
        found.join(", "),
        if root.is_empty() { "" } else { ", " },
    )))
}

/// The tagged tables of the configuration and their tag key: a table whose tag the file changes
/// (another method, another dataset layout) replaces the preset's whole instead of merging into
/// it, since the options of one variant mean nothing to another.
const TAGGED_TABLES: [(&str, &str); 2] = [("method", "name"), ("data.dataset", "kind")];

/// Deep merge: every key of `over` replaces the same key of `base`, except that a table merges
/// into a table key by key (arrays and other values are replaced whole), unless it is one of the
/// [`TAGGED_TABLES`] and its tag differs.
fn merge_over(base: &mut toml::Value, over: &toml::Value) {
    merge_at(base, over, "")
}

fn merge_at(base: &mut toml::Value, over: &toml::Value, path: &str) {
    let retagged =
        TAGGED_TABLES.iter().any(|(p, tag)| *p == path && over.get(tag).is_some_and(|t| base.get(tag) != Some(t)));
    if retagged {
        *base = over.clone();
        return;
    }
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get_mut(k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge_at(bv, v, &child),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The size limits of the run configuration (the model's are `dgl_models::limits`, the
/// synthetic set's `dgl_data::synthetic::config`); the same mechanism, [`dgl_core::Limit`].
pub mod limits {
    use dgl_core::Limit;

    /// `train.epochs` (the paper trains 100).
    pub const EPOCHS: Limit = Limit {
        key: "train.epochs",
        what: "training epochs; the paper's are 100",
        default: 100_000,
        env: "DGL_MAX_EPOCHS",
    };

    /// `train.batch_size`: a step holds the activations of the whole batch.
    pub const BATCH_SIZE: Limit = Limit {
        key: "train.batch_size",
        what: "samples per step, whose activations a step holds at once; the paper's is 64",
        default: 4096,
        env: "DGL_MAX_BATCH_SIZE",
    };
}

/// Refuses a NaN or infinite number anywhere in the configuration (every option of every
/// section, the method's sub-tables included), naming its dotted key.
fn check_finite(cfg: &TrainConfig) -> Result<()> {
    fn walk(v: &toml::Value, path: &str, out: &mut Vec<String>) {
        match v {
            toml::Value::Float(x) if !x.is_finite() => out.push(format!("`{path}` = {x}")),
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(v, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let value = toml::Value::try_from(cfg)
        .map_err(|e| CliError::Config(format!("the configuration cannot be written as TOML: {e}")))?;
    let mut bad = Vec::new();
    walk(&value, "", &mut bad);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::Config(format!("{} must be finite (not NaN or infinite)", bad.join(", "))))
    }
}

/// Dotted paths of keys of `given` that `known` (the parsed configuration serialised back) lacks.
fn unknown_keys(given: &toml::Value, known: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match (given, known) {
        (toml::Value::Table(g), toml::Value::Table(k)) => {
            for (key, v) in g {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match k.get(key) {
                    Some(kv) => unknown_keys(v, kv, &path, out),
                    None => out.push(path),
                }
            }
        }
        (toml::Value::Array(g), toml::Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                unknown_keys(gv, kv, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}
