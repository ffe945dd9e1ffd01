//! Model configuration and the builder.
//!
//! The defaults are the paper's CREMA-D setting (Table 1; official `main_dgl.py` +
//! `models/basic_model.py`): audio ResNet-18 on a 1-channel spectrogram, visual ResNet-18 on 1 RGB
//! frame, base width 64 (d = 512), concatenation fusion, K = 6.

use candle_core::{DType, Device, Tensor};
use dgl_core::{MultimodalModel, NamedVar};
use serde::{Deserialize, Serialize};

use crate::encoder::{AudioEncoder, Encoder, MlpEncoder, VisualEncoder};
use crate::error::config_err;
use crate::fusion::{build_head, FusionKind, HeadOptions};
use crate::init::InitCtx;
use crate::multimodal::{encoder_prefix, FusionModel, ModelState, UnimodalClassifier, FUSION_PREFIX};
use crate::Result;

/// Which encoder a modality uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EncoderKind {
    /// [`AudioEncoder`]: ResNet-18 on (C, F, T) (or (F, T) with C = 1), global average pool.
    Resnet18Audio,
    /// [`VisualEncoder`]: ResNet-18 per frame on (C, T, H, W), mean over frames and space.
    Resnet18Visual,
    /// [`MlpEncoder`] on a (D,) feature vector with these hidden sizes (empty = identity).
    Mlp { hidden: Vec<usize> },
}

/// One modality: its name (parameter prefix `<name>_net.`) and encoder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalityConfig {
    pub name: String,
    pub encoder: EncoderKind,
    /// Input channels of a ResNet encoder; `None` = taken from the input shape. When given, it must
    /// agree with the input shape.
    #[serde(default)]
    pub in_channels: Option<usize>,
}

impl ModalityConfig {
    pub fn new(name: impl Into<String>, encoder: EncoderKind) -> Self {
        Self { name: name.into(), encoder, in_channels: None }
    }
}

/// A whole model. One modality builds a [`UnimodalClassifier`], two or more a [`FusionModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Modalities in order (default: `audio` ResNet-18, `visual` ResNet-18).
    pub modalities: Vec<ModalityConfig>,
    /// ResNet width of layer 1 (64 = paper; d = 8·base).
    pub base_width: usize,
    /// Frames per clip expected by a visual encoder (CREMA-D 1, Kinetics-Sounds / VGGSound 3);
    /// checked against the visual input shape.
    pub frames: usize,
    /// Fusion head of a multimodal model.
    pub fusion: FusionKind,
    /// Options of the gated / FiLM heads.
    pub head: HeadOptions,
    /// K (CREMA-D 6, Kinetics-Sounds 34 in the official code, VGGSound 309).
    pub num_classes: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            modalities: vec![
                ModalityConfig::new("audio", EncoderKind::Resnet18Audio),
                ModalityConfig::new("visual", EncoderKind::Resnet18Visual),
            ],
            base_width: 64,
            frames: 1,
            fusion: FusionKind::Concat,
            head: HeadOptions::default(),
            num_classes: 6,
        }
    }
}

impl ModelConfig {
    /// The same configuration restricted to one modality (for the unimodal baselines).
    pub fn unimodal(&self, modality: &str) -> Option<Self> {
        let m = self.modalities.iter().find(|m| m.name == modality)?.clone();
        Some(Self { modalities: vec![m], ..self.clone() })
    }
}

/// A built model: multimodal or unimodal. Implements [`MultimodalModel`] and [`ModelState`]
/// by delegation; `&model` coerces to `&dyn MultimodalModel`.
#[derive(Debug)]
pub enum Model {
    Fusion(FusionModel),
    Unimodal(UnimodalClassifier),
}

impl Model {
    fn inner(&self) -> &dyn MultimodalModel {
        match self {
            Model::Fusion(m) => m,
            Model::Unimodal(m) => m,
        }
    }

    fn state(&self) -> &dyn ModelState {
        match self {
            Model::Fusion(m) => m,
            Model::Unimodal(m) => m,
        }
    }
}

impl MultimodalModel for Model {
    fn num_modalities(&self) -> usize {
        self.inner().num_modalities()
    }
    fn modality_names(&self) -> Vec<String> {
        self.inner().modality_names()
    }
    fn encode(&self, modality: usize, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.inner().encode(modality, x, train)
    }
    fn fuse(&self, z: &[Tensor], train: bool) -> candle_core::Result<Tensor> {
        self.inner().fuse(z, train)
    }
    fn encoder_params(&self, modality: usize) -> Vec<NamedVar> {
        self.inner().encoder_params(modality)
    }
    fn head_params(&self) -> Vec<NamedVar> {
        self.inner().head_params()
    }
    fn linear_head_block(&self, modality: usize) -> Option<Tensor> {
        self.inner().linear_head_block(modality)
    }
    fn linear_head_bias(&self, modality: usize) -> Option<Tensor> {
        self.inner().linear_head_bias(modality)
    }
    /// Parameters and BatchNorm running statistics.
    fn state_vars(&self) -> Vec<NamedVar> {
        self.state().named_state()
    }
}

impl ModelState for Model {
    fn named_params(&self) -> Vec<NamedVar> {
        self.state().named_params()
    }
    fn named_buffers(&self) -> Vec<NamedVar> {
        self.state().named_buffers()
    }
}

/// Builds the encoder of one modality for per-sample input `shape` (without the batch dim);
/// `ctx` should already be the encoder's own context (`ctx.sub("<name>_net")`).
pub fn build_encoder(
    ctx: &InitCtx,
    modality: &ModalityConfig,
    shape: &[usize],
    base_width: usize,
    frames: usize,
) -> Result<Box<dyn Encoder>> {
    let name = &modality.name;
    let check_channels = |c: usize| -> Result<usize> {
        match modality.in_channels {
            Some(want) if want != c => {
                config_err(format!("modality `{name}`: in_channels {want} but the input shape {shape:?} has {c}"))
            }
            _ => Ok(c),
        }
    };
    Ok(match &modality.encoder {
        EncoderKind::Resnet18Audio => {
            let c = match shape.len() {
                2 => 1,
                3 => shape[0],
                _ => {
                    return config_err(format!(
                        "modality `{name}` (audio ResNet) needs a (C, F, T) or (F, T) shape, got {shape:?}"
                    ))
                }
            };
            Box::new(AudioEncoder::new(ctx, check_channels(c)?, base_width)?)
        }
        EncoderKind::Resnet18Visual => {
            let c = match shape.len() {
                4 => {
                    if shape[1] != frames {
                        return config_err(format!(
                            "modality `{name}`: {frames} frames configured but the input shape {shape:?} has {}",
                            shape[1]
                        ));
                    }
                    shape[0]
                }
                3 if frames == 1 => shape[0],
                _ => {
                    return config_err(format!(
                        "modality `{name}` (visual ResNet) needs a (C, T, H, W) shape, got {shape:?}"
                    ))
                }
            };
            Box::new(VisualEncoder::new(ctx, check_channels(c)?, base_width)?)
        }
        EncoderKind::Mlp { hidden } => {
            if shape.len() != 1 {
                return config_err(format!("modality `{name}` (MLP) needs a (D,) shape, got {shape:?}"));
            }
            Box::new(MlpEncoder::new(ctx, shape[0], hidden)?)
        }
    })
}

/// Builds the model of `cfg` in f32; see [`build_model_dtype`].
pub fn build_model(cfg: &ModelConfig, modality_shapes: &[Vec<usize>], device: &Device, seed: u64) -> Result<Model> {
    build_model_dtype(cfg, modality_shapes, device, DType::F32, seed)
}

/// Builds the model of `cfg` for per-sample input shapes `modality_shapes` (one per modality,
/// without the batch dim: e.g. `[1, 257, 188]`, `[3, 1, 224, 224]`, `[74]`).
///
/// Initialisation is drawn on the host from `seed` (see [`crate::init`]): encoder m from the
/// label `<name>_net`, the fusion head from `fusion_module`, a unimodal head from `head`. The same
/// seed therefore gives the same weights on every device, and the same encoder weights in a
/// unimodal and a multimodal model.
pub fn build_model_dtype(
    cfg: &ModelConfig,
    modality_shapes: &[Vec<usize>],
    device: &Device,
    dtype: DType,
    seed: u64,
) -> Result<Model> {
    if cfg.modalities.is_empty() {
        return config_err("no modality configured");
    }
    if modality_shapes.len() != cfg.modalities.len() {
        return config_err(format!(
            "{} modalities configured but {} input shapes given",
            cfg.modalities.len(),
            modality_shapes.len()
        ));
    }
    if cfg.num_classes == 0 || cfg.base_width == 0 || cfg.frames == 0 {
        return config_err("num_classes, base_width and frames must be > 0");
    }
    let root = InitCtx::new(seed, dtype, device);
    let mut encoders = Vec::with_capacity(cfg.modalities.len());
    for (m, shape) in cfg.modalities.iter().zip(modality_shapes) {
        let ctx = root.sub(&encoder_prefix(&m.name));
        encoders.push((m.name.clone(), build_encoder(&ctx, m, shape, cfg.base_width, cfg.frames)?));
    }
    if encoders.len() == 1 {
        let (name, enc) = encoders.pop().expect("one encoder");
        return Ok(Model::Unimodal(UnimodalClassifier::new(&root, name, enc, cfg.num_classes)?));
    }
    let dims: Vec<usize> = encoders.iter().map(|(_, e)| e.out_dim()).collect();
    let head = build_head(&root.sub(FUSION_PREFIX), cfg.fusion, &dims, cfg.num_classes, cfg.head)?;
    Ok(Model::Fusion(FusionModel::new(encoders, head)?))
}
