//! The resolved configuration of a run (burn-style: a `Config` struct with defaults, serialised
//! with each run as `config.toml`), its presets, and validation before any work starts.

use std::path::PathBuf;

use dgl_baselines::MethodConfig;
use dgl_core::{MultiStepLr, OptimizerConfig};
use dgl_data::datasets::DatasetOptions;
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

/// Which dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// The embedded, generated audio-visual set (no files).
    #[default]
    Synthetic,
    /// CREMA-D in the OGM-GE layout (`--root` with AudioWAV/, Image-01-FPS/, train.csv, test.csv).
    Cremad,
    /// Kinetics-Sounds in the official DGL layout, with an explicit class list.
    Ks,
    /// VGGSound in the official DGL layout.
    Vggsound,
    /// FSDD spoken digits + MNIST digits paired by label (`--root` holding fsdd/ and mnist/).
    AvDigits,
    /// A CSV manifest plus per-sample tensors (safetensors / .npy), any number of modalities.
    Generic,
    /// A cache written by `dgl prepare`.
    Cached,
}

/// Dataset section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetKind,
    /// Root directory of an on-disk dataset.
    pub root: Option<PathBuf>,
    pub synthetic: SyntheticConfig,
    /// Options of the on-disk loaders (frames, recipe, class list, skip_bad, …).
    pub options: DatasetOptions,
    /// Fraction of the training set held out as a validation split (reproducibly, per class).
    pub validation_fraction: f64,
    /// Always hold out the validation split (for model selection), not only for methods that
    /// need one.
    pub always_validate: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Synthetic,
            root: None,
            synthetic: SyntheticConfig::tiny(),
            options: DatasetOptions::default(),
            validation_fraction: 0.1,
            always_validate: false,
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
    pub scheduler: MultiStepLr,
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
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 64,
            clip_norm: Some(40.0),
            optimizer: OptimizerConfig::default(),
            scheduler: MultiStepLr::default(),
            diagnostics_every: 50,
            drop_last: true,
            skip_non_finite: false,
            tf32: false,
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
                data: DataConfig { synthetic: SyntheticConfig::paper(), ..DataConfig::default() },
                model: ModelConfig { base_width: 64, frames: 1, ..ModelConfig::default() },
                train: TrainSection::default(),
            },
            Preset::Tiny => Self {
                preset,
                seed: 0,
                device: DeviceKind::Cpu,
                method: MethodConfig::default(),
                data: DataConfig {
                    synthetic: SyntheticConfig { n_train: 720, n_test: 360, ..SyntheticConfig::tiny() },
                    ..DataConfig::default()
                },
                model: ModelConfig { base_width: 8, frames: 1, ..ModelConfig::default() },
                train: TrainSection {
                    epochs: 10,
                    batch_size: 32,
                    optimizer: OptimizerConfig { lr: 1e-2, ..OptimizerConfig::default() },
                    scheduler: MultiStepLr { milestones: vec![8], ..MultiStepLr::default() },
                    diagnostics_every: 10,
                    ..TrainSection::default()
                },
            },
        }
    }

    /// Reads a TOML file (a regular file of at most `dgl_data::limits::TEXT_BYTES`); unknown keys
    /// (in every section) are errors naming the file and the key.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let bytes = dgl_data::datasets::fsutil::read_bounded(path, dgl_data::limits::TEXT_BYTES)
            .map_err(|e| CliError::Config(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| CliError::Config(format!("{}: not valid UTF-8 ({e})", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| match e {
            CliError::Config(m) => CliError::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a TOML configuration. Unknown keys are refused at every depth: `deny_unknown_fields`
    /// catches most, and a round trip (parse → serialise → compare the key sets) catches those of
    /// sections defined in other crates without it (`[model]`, `[data.synthetic]`, …).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| CliError::Config(e.to_string()))?;
        let given: toml::Value = toml::from_str(text).map_err(|e| CliError::Config(e.to_string()))?;
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

    /// Every check that can be made before any work starts (nothing is built or read here).
    ///
    /// An empty `train.scheduler.milestones` list is allowed and means a constant learning rate.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CliError::Config(m));
        self.method.validate().map_err(|e| CliError::Config(e.to_string()))?;
        if self.model.base_width == 0 {
            return bad("model.base_width must be >= 1".into());
        }
        if self.model.frames == 0 {
            return bad("model.frames must be >= 1".into());
        }
        let syn = &self.data.synthetic;
        if self.data.dataset == DatasetKind::Synthetic {
            syn.check().map_err(|e| CliError::Config(format!("data.synthetic: {e}")))?;
        }
        self.data.options.check().map_err(|e| CliError::Config(format!("data.options: {e}")))?;
        if self.data.dataset == DatasetKind::Synthetic && (syn.n_train == 0 || syn.n_test == 0) {
            return bad(format!(
                "data.synthetic.n_train and n_test must be >= 1, got {} and {}",
                syn.n_train, syn.n_test
            ));
        }
        if self.data.dataset != DatasetKind::Synthetic && self.data.root.is_none() {
            return bad(format!("the {} dataset needs --root (or data.root)", self.data.dataset.as_str()));
        }
        // The model's modalities must be the dataset's, and the method must support their number
        // (for datasets whose modalities are only known once opened, the loop checks after opening).
        if let Some(names) = self.data.dataset.modality_names() {
            let model_names: Vec<&str> = self.model.modalities.iter().map(|m| m.name.as_str()).collect();
            if model_names != names {
                return bad(format!(
                    "model.modalities {model_names:?} do not match the {:?} dataset's modalities {names:?}",
                    self.data.dataset
                ));
            }
            check_method_modalities(&self.method, names.len())?;
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

impl DatasetKind {
    /// The modalities of the dataset, in order, known without building it (the loop checks the
    /// built dataset agrees).
    pub fn modality_names(self) -> Option<Vec<&'static str>> {
        match self {
            DatasetKind::Synthetic
            | DatasetKind::Cremad
            | DatasetKind::Ks
            | DatasetKind::Vggsound
            | DatasetKind::AvDigits => Some(vec!["audio", "visual"]),
            DatasetKind::Generic | DatasetKind::Cached => None,
        }
    }

    /// The name `dgl_data::datasets::open_dataset` knows it by.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::Cremad => "cremad",
            DatasetKind::Ks => "ks",
            DatasetKind::Vggsound => "vggsound",
            DatasetKind::AvDigits => "av-digits",
            DatasetKind::Generic => "generic",
            DatasetKind::Cached => "cached",
        }
    }
}

/// Refuses, before anything is built, a method that cannot train on a dataset with
/// `dataset_modalities` modalities (the built model is checked again by `Method::check`).
pub fn check_method_modalities(method: &MethodConfig, dataset_modalities: usize) -> Result<()> {
    use dgl_baselines::MethodKind as K;
    let kind = method.name;
    let m = dataset_modalities;
    if let Some(i) = kind.unimodal_modality() {
        return if i < m {
            Ok(())
        } else {
            Err(CliError::Config(format!("`{kind}` trains on modality #{i}, the dataset has {m} modalities")))
        };
    }
    let (ok, what) = if kind.two_modalities_only() {
        (m == 2, "exactly 2 modalities")
    } else {
        match kind {
            K::Vanilla | K::Dnr => (m >= 1, "1 or more modalities"),
            K::Dgl | K::DglMt | K::DglUt | K::GBlending if method.effective_alpha() == Some(0.0) => {
                (m >= 1, "1 or more modalities")
            }
            _ => (m >= 2, "2 or more modalities"),
        }
    };
    if ok {
        Ok(())
    } else {
        Err(CliError::Config(format!("`{kind}` supports {what}; the dataset has {m}")))
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
