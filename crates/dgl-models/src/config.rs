//! Model configuration and the builder.
//!
//! The defaults are the paper's CREMA-D setting (Table 1; official `main_dgl.py` +
//! `models/basic_model.py`): audio ResNet-18 on a 1-channel spectrogram, visual ResNet-18 on 1 RGB
//! frame, base width 64 (d = 512), concatenation fusion, K = 6.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use dgl_core::{MultimodalModel, NamedVar};
use serde::{Deserialize, Serialize};

use crate::encoder::{AudioEncoder, Encoder, MlpEncoder, VisualEncoder};
use crate::error::config_err;
use crate::esanet::{EsaNet, EsaNetOptions};
use crate::fusion::{build_head, head_param_count, FusionKind, HeadOptions};
use crate::init::InitCtx;
use crate::limits;
use crate::mixer::{sequence_dims, MixerModel, MixerOptions};
use crate::mmtm::{MmtmModel, Trunk};
use crate::multimodal::{encoder_prefix, FusionModel, ModelState, UnimodalClassifier, FUSION_PREFIX};
use crate::resnet::{ResNetConfig, ResNetDepth};
use crate::Result;

/// Which encoder a modality uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EncoderKind {
    /// [`AudioEncoder`]: ResNet on (C, F, T) (or (F, T) with C = 1), global average pool. The name
    /// is historical: the depth is [`ModelConfig::resnet`] (ResNet-18 by default).
    Resnet18Audio,
    /// [`VisualEncoder`]: ResNet per frame on (C, T, H, W), mean over frames and space (depth:
    /// [`ModelConfig::resnet`]).
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
    /// Depth of every ResNet encoder: `resnet18` (the paper's, default) or `resnet34`.
    pub resnet: ResNetDepth,
    /// A torchvision ResNet-18/34 `state_dict` (`.safetensors` or a `torch.save` `.pth`) loaded into
    /// every ResNet encoder after initialisation (`dgl train --pretrained FILE`;
    /// [`crate::pretrained::load_torchvision_resnet`]). [`build_model`] itself does not read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
    /// Frames per clip expected by a visual encoder (CREMA-D 1, Kinetics-Sounds / VGGSound 3);
    /// checked against the visual input shape.
    pub frames: usize,
    /// Fusion head of a multimodal model.
    pub fusion: FusionKind,
    /// Options of the gated / FiLM heads.
    pub head: HeadOptions,
    /// K (CREMA-D 6, Kinetics-Sounds 34 in the official code, VGGSound 309).
    pub num_classes: usize,
    /// Sizes of the MLP-Mixer model (`fusion = "mixer"`; unused otherwise).
    pub mixer: MixerOptions,
    /// Sizes of the ESANet-style segmentation model (`fusion = "esanet"`; unused otherwise).
    pub esanet: EsaNetOptions,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            modalities: vec![
                ModalityConfig::new("audio", EncoderKind::Resnet18Audio),
                ModalityConfig::new("visual", EncoderKind::Resnet18Visual),
            ],
            base_width: 64,
            resnet: ResNetDepth::Resnet18,
            pretrained: None,
            frames: 1,
            fusion: FusionKind::Concat,
            head: HeadOptions::default(),
            num_classes: 6,
            mixer: MixerOptions::default(),
            esanet: EsaNetOptions::default(),
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
    /// `fusion = "mmtm"`: dense fusion between the ResNet trunks.
    Mmtm(MmtmModel),
    /// `fusion = "mixer"`: MLP-Mixer fusion over per-modality sequences (any M, also 1).
    Mixer(MixerModel),
    /// `fusion = "esanet"`: RGB-D segmentation (any M ≥ 1 image modalities).
    Esanet(Box<EsaNet>),
}

impl Model {
    fn inner(&self) -> &dyn MultimodalModel {
        match self {
            Model::Fusion(m) => m,
            Model::Unimodal(m) => m,
            Model::Mmtm(m) => m,
            Model::Mixer(m) => m,
            Model::Esanet(m) => &**m,
        }
    }

    fn state(&self) -> &dyn ModelState {
        match self {
            Model::Fusion(m) => m,
            Model::Unimodal(m) => m,
            Model::Mmtm(m) => m,
            Model::Mixer(m) => m,
            Model::Esanet(m) => &**m,
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
    fn fusion_params(&self) -> Vec<(usize, Vec<NamedVar>)> {
        self.inner().fusion_params()
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

/// What an encoder reads from its modality's per-sample input shape.
#[derive(Clone, Debug, PartialEq, Eq)]
enum EncoderInput {
    /// A ResNet trunk run on `images` maps of `channels` × `h` × `w` per sample.
    ResNet { channels: usize, h: usize, w: usize, images: usize },
    /// An MLP on `in_dim` features.
    Mlp { in_dim: usize, hidden: Vec<usize> },
}

impl EncoderInput {
    /// Reads `shape` (without the batch dim) as `modality`'s encoder needs it, checking the rank,
    /// the channels, the frames and that every stage of a ResNet gets a non-empty map.
    fn of(modality: &ModalityConfig, shape: &[usize], frames: usize) -> Result<Self> {
        let name = &modality.name;
        let check_channels = |c: usize| -> Result<usize> {
            match modality.in_channels {
                Some(want) if want != c => {
                    config_err(format!("modality `{name}`: in_channels {want} but the input shape {shape:?} has {c}"))
                }
                _ => Ok(c),
            }
        };
        let (kind, c, h, w, images) = match &modality.encoder {
            EncoderKind::Resnet18Audio => match *shape {
                [f, t] => ("audio ResNet, (F, T)", 1, f, t, 1),
                [c, f, t] => ("audio ResNet, (C, F, T)", c, f, t, 1),
                _ => {
                    return config_err(format!(
                        "modality `{name}` (audio ResNet) needs a (C, F, T) or (F, T) shape, got {shape:?}"
                    ))
                }
            },
            EncoderKind::Resnet18Visual => match *shape {
                [c, t, h, w] => {
                    if t != frames {
                        return config_err(format!(
                            "modality `{name}`: {frames} frames configured but the input shape {shape:?} has {t}"
                        ));
                    }
                    ("visual ResNet, (C, T, H, W)", c, h, w, t)
                }
                [c, h, w] if frames == 1 => ("visual ResNet, (C, H, W)", c, h, w, 1),
                _ => {
                    return config_err(format!(
                        "modality `{name}` (visual ResNet) needs a (C, T, H, W) shape, got {shape:?}"
                    ))
                }
            },
            EncoderKind::Mlp { hidden } => {
                return match *shape {
                    [d] if d > 0 => Ok(Self::Mlp { in_dim: d, hidden: hidden.clone() }),
                    _ => config_err(format!(
                        "modality `{name}` (MLP) needs a non-empty (D,) shape, got {shape:?} (a (T, D) sequence \
                         needs model.fusion = \"mixer\")"
                    )),
                };
            }
        };
        let channels = check_channels(c)?;
        if channels == 0 {
            return config_err(format!("modality `{name}` ({kind}): the input shape {shape:?} has no channels"));
        }
        // The trunk's geometry does not depend on the widths or the depth (only a stage's first
        // block strides): check the spatial sizes on a 1-channel, width-1 ResNet-18.
        let geometry = ResNetConfig::resnet18(1, 1);
        if let Err(e) = geometry.feature_sizes(h, w) {
            return config_err(format!(
                "modality `{name}` ({kind}): the input shape {shape:?} is too small for the ResNet trunk, whose \
                 spatial input must be at least {m}×{m} ({e})",
                m = geometry.min_input_side()
            ));
        }
        Ok(Self::ResNet { channels, h, w, images })
    }
}

/// What a model costs, computed from its configuration and input shapes without building it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelEstimate {
    /// Trainable parameters.
    pub params: u128,
    /// Convolution and pooling outputs per sample, all encoders together.
    pub activations_per_sample: u128,
}

impl ModelConfig {
    /// Checks the configured sizes against their limits ([`crate::limits`]); nothing is built.
    pub fn check_limits(&self) -> Result<()> {
        limits::BASE_WIDTH.check(self.base_width as u64)?;
        limits::FRAMES.check(self.frames as u64)?;
        limits::NUM_CLASSES.check(self.num_classes as u64)?;
        if let Some(h) = self.head.hidden {
            limits::HIDDEN_SIZE.check_key("model.head.hidden", h as u64)?;
        }
        if self.fusion == FusionKind::Mixer {
            self.mixer.check()?;
        }
        if self.fusion == FusionKind::Esanet {
            for (i, &c) in self.esanet.decoder_channels.iter().flatten().enumerate() {
                limits::HIDDEN_SIZE.check_key(&format!("model.esanet.decoder_channels[{i}]"), c as u64)?;
            }
        }
        for (m, modality) in self.modalities.iter().enumerate() {
            if let EncoderKind::Mlp { hidden } = &modality.encoder {
                for (i, &h) in hidden.iter().enumerate() {
                    limits::HIDDEN_SIZE.check_key(&format!("model.modalities[{m}].encoder.hidden[{i}]"), h as u64)?;
                }
            }
        }
        Ok(())
    }

    /// The parameter count and per-sample activation size of the model for per-sample input
    /// shapes `modality_shapes` (as [`build_model_dtype`] takes them), after checking the
    /// shapes as the builder does.
    pub fn estimate(&self, modality_shapes: &[Vec<usize>]) -> Result<ModelEstimate> {
        if self.fusion == FusionKind::Mixer {
            return self.mixer_estimate(modality_shapes);
        }
        let mut params = 0u128;
        let mut activations = 0u128;
        let mut dims = Vec::with_capacity(self.modalities.len());
        for (m, shape) in self.modalities.iter().zip(modality_shapes) {
            match EncoderInput::of(m, shape, self.frames)? {
                EncoderInput::ResNet { channels, h, w, images } => {
                    let net = self.resnet.config(channels, self.base_width);
                    params += net.param_count();
                    let per_image =
                        net.activations(h, w).or_else(|e| config_err(format!("modality `{}`: {e}", m.name)))?;
                    activations += per_image * images as u128;
                    dims.push(net.out_channels());
                }
                EncoderInput::Mlp { in_dim, hidden } => {
                    params += MlpEncoder::param_count(in_dim, &hidden);
                    activations += hidden.iter().map(|&h| h as u128).sum::<u128>();
                    dims.push(hidden.last().copied().unwrap_or(in_dim));
                }
            }
        }
        params += match dims.as_slice() {
            [d] => (*d as u128 + 1) * self.num_classes as u128,
            _ => head_param_count(self.fusion, &dims, self.num_classes, self.head),
        };
        Ok(ModelEstimate { params, activations_per_sample: activations })
    }
}

impl ModelConfig {
    /// The smallest training batch for which every batch normalisation sees more than one value
    /// per channel (with one, the batch variance is 0 and `BatchNorm2d` refuses the step, as
    /// PyTorch does): 2 when a ResNet encoder's last stage keeps a single position per sample
    /// (inputs up to 32×32 end on a 1×1 map; frames multiply it), else 1. Checks the shapes as
    /// [`ModelConfig::estimate`] does.
    pub fn min_train_batch(&self, modality_shapes: &[Vec<usize>]) -> Result<usize> {
        if self.fusion == FusionKind::Mixer {
            // No batch normalisation.
            return self.mixer_inputs(modality_shapes).map(|_| 1);
        }
        let mut min = 1;
        for (m, shape) in self.modalities.iter().zip(modality_shapes) {
            if let EncoderInput::ResNet { h, w, images, .. } = EncoderInput::of(m, shape, self.frames)? {
                let sizes = self
                    .resnet
                    .config(1, 1)
                    .feature_sizes(h, w)
                    .or_else(|e| config_err(format!("modality `{}`: {e}", m.name)))?;
                let (h4, w4) = sizes.layers[3];
                if h4 * w4 * images < 2 {
                    min = 2;
                }
            }
        }
        Ok(min)
    }
}

impl ModelConfig {
    /// (name, D_m, encoder hidden sizes) of every modality of a mixer model, checking that each
    /// has an MLP encoder and a (T, D) or (D,) input.
    fn mixer_inputs(&self, modality_shapes: &[Vec<usize>]) -> Result<Vec<(String, usize, Vec<usize>)>> {
        self.modalities
            .iter()
            .zip(modality_shapes)
            .map(|(m, shape)| {
                let EncoderKind::Mlp { hidden } = &m.encoder else {
                    return config_err(format!(
                        "model.fusion = \"mixer\" encodes sequences with per-step MLPs; modality `{}` has a ResNet \
                         encoder (set its encoder to {{ kind = \"mlp\", hidden = [...] }})",
                        m.name
                    ));
                };
                match sequence_dims(shape) {
                    Some((_, d)) => Ok((m.name.clone(), d, hidden.clone())),
                    None => config_err(format!(
                        "model.fusion = \"mixer\" reads a (T, D) sequence or a (D,) vector per sample; modality `{}` \
                         has the shape {shape:?}",
                        m.name
                    )),
                }
            })
            .collect()
    }

    /// [`ModelConfig::estimate`] of a mixer model: parameters exactly; activations = the pooled
    /// inputs, every encoder layer's and every block's outputs per sample.
    fn mixer_estimate(&self, modality_shapes: &[Vec<usize>]) -> Result<ModelEstimate> {
        let inputs = self.mixer_inputs(modality_shapes)?;
        let dims: Vec<(usize, Vec<usize>)> = inputs.iter().map(|(_, d, h)| (*d, h.clone())).collect();
        let l = self.mixer.seq_len as u128;
        let mut activations: u128 = dims
            .iter()
            .map(|(d, h)| l * (*d as u128 + h.iter().map(|&h| h as u128).sum::<u128>() + self.mixer.width as u128))
            .sum();
        let m = inputs.len() as u128;
        activations += self.mixer.blocks.iter().map(|s| 3 * s.seq_len as u128 * m * s.channels as u128).sum::<u128>();
        Ok(ModelEstimate {
            params: self.mixer.param_count(&dims, self.num_classes),
            activations_per_sample: activations,
        })
    }
}

/// Builds the encoder of one modality for per-sample input `shape` (without the batch dim), a
/// ResNet encoder of depth `resnet`; `ctx` should already be the encoder's own context
/// (`ctx.sub("<name>_net")`).
pub fn build_encoder(
    ctx: &InitCtx,
    modality: &ModalityConfig,
    shape: &[usize],
    base_width: usize,
    frames: usize,
    resnet: ResNetDepth,
) -> Result<Box<dyn Encoder>> {
    Ok(match (EncoderInput::of(modality, shape, frames)?, &modality.encoder) {
        (EncoderInput::Mlp { in_dim, hidden }, _) => Box::new(MlpEncoder::new(ctx, in_dim, &hidden)?),
        (EncoderInput::ResNet { channels, .. }, EncoderKind::Resnet18Audio) => {
            Box::new(AudioEncoder::with_config(ctx, resnet.config(channels, base_width))?)
        }
        (EncoderInput::ResNet { channels, .. }, _) => {
            Box::new(VisualEncoder::with_config(ctx, resnet.config(channels, base_width))?)
        }
    })
}

/// The MMTM model of `cfg`: ResNet trunks (of depth `cfg.resnet`) only, one frame per clip.
fn build_mmtm(cfg: &ModelConfig, modality_shapes: &[Vec<usize>], root: &InitCtx) -> Result<MmtmModel> {
    if cfg.frames != 1 {
        return config_err(format!(
            "model.fusion = \"mmtm\" takes one frame per clip (the paper's setting), not {}",
            cfg.frames
        ));
    }
    let mut trunks = Vec::with_capacity(cfg.modalities.len());
    for (m, shape) in cfg.modalities.iter().zip(modality_shapes) {
        let ctx = root.sub(&encoder_prefix(&m.name));
        let trunk = match (EncoderInput::of(m, shape, cfg.frames)?, &m.encoder) {
            (EncoderInput::ResNet { channels, .. }, EncoderKind::Resnet18Audio) => {
                Trunk::Audio(AudioEncoder::with_config(&ctx, cfg.resnet.config(channels, cfg.base_width))?)
            }
            (EncoderInput::ResNet { channels, .. }, _) => {
                Trunk::Visual(VisualEncoder::with_config(&ctx, cfg.resnet.config(channels, cfg.base_width))?)
            }
            (EncoderInput::Mlp { .. }, _) => {
                return config_err(format!(
                    "model.fusion = \"mmtm\" fuses ResNet trunks; modality `{}` has an MLP encoder",
                    m.name
                ))
            }
        };
        trunks.push((m.name.clone(), trunk));
    }
    MmtmModel::new(root, trunks, cfg.num_classes)
}

/// The ESANet-style model of `cfg`: one ResNet trunk per image modality ((C, H, W), all of one
/// size, a multiple of 32).
fn build_esanet(cfg: &ModelConfig, modality_shapes: &[Vec<usize>], root: &InitCtx) -> Result<EsaNet> {
    let mut mods = Vec::with_capacity(cfg.modalities.len());
    let mut size: Option<(usize, usize)> = None;
    for (m, shape) in cfg.modalities.iter().zip(modality_shapes) {
        let (c, h, w) = match (&m.encoder, shape.as_slice()) {
            (EncoderKind::Mlp { .. }, _) => {
                return config_err(format!(
                    "model.fusion = \"esanet\" runs ResNet trunks on images; modality `{}` has an MLP encoder",
                    m.name
                ))
            }
            (_, &[c, h, w]) | (_, &[c, 1, h, w]) => (c, h, w),
            _ => {
                return config_err(format!(
                "model.fusion = \"esanet\" reads a (C, H, W) image per sample; modality `{}` has the shape {shape:?}",
                m.name
            ))
            }
        };
        if let Some(want) = m.in_channels.filter(|&want| want != c) {
            return config_err(format!("modality `{}`: in_channels {want} but the input has {c}", m.name));
        }
        match size {
            Some(s) if s != (h, w) => {
                return config_err(format!(
                    "model.fusion = \"esanet\" fuses maps of one size; modality `{}` is {h}×{w}, the first {}×{}",
                    m.name, s.0, s.1
                ))
            }
            _ => size = Some((h, w)),
        }
        mods.push((m.name.clone(), c));
    }
    let size = size.ok_or_else(|| crate::ModelError::Config("no modality configured".into()))?;
    let trunk = ResNetConfig { in_channels: 1, base_width: cfg.base_width, blocks: cfg.resnet.blocks() };
    EsaNet::new(root, &mods, size, trunk, &cfg.esanet, cfg.num_classes)
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
    cfg.check_limits()?;
    let estimate = cfg.estimate(modality_shapes)?;
    limits::PARAMETERS.check(estimate.params)?;
    limits::SAMPLE_ACTIVATIONS.check(estimate.activations_per_sample)?;
    let root = InitCtx::new(seed, dtype, device);
    if cfg.fusion == FusionKind::Mixer {
        let inputs = cfg.mixer_inputs(modality_shapes)?;
        return Ok(Model::Mixer(MixerModel::new(&root, &inputs, &cfg.mixer, cfg.num_classes)?));
    }
    if cfg.fusion == FusionKind::Esanet {
        return build_esanet(cfg, modality_shapes, &root).map(|m| Model::Esanet(Box::new(m)));
    }
    let mut encoders = Vec::with_capacity(cfg.modalities.len());
    for (m, shape) in cfg.modalities.iter().zip(modality_shapes) {
        let ctx = root.sub(&encoder_prefix(&m.name));
        encoders.push((m.name.clone(), build_encoder(&ctx, m, shape, cfg.base_width, cfg.frames, cfg.resnet)?));
    }
    if encoders.len() == 1 {
        let (name, enc) = encoders.pop().expect("one encoder");
        return Ok(Model::Unimodal(UnimodalClassifier::new(&root, name, enc, cfg.num_classes)?));
    }
    if cfg.fusion == FusionKind::Mmtm {
        return build_mmtm(cfg, modality_shapes, &root).map(Model::Mmtm);
    }
    let dims: Vec<usize> = encoders.iter().map(|(_, e)| e.out_dim()).collect();
    let head = build_head(&root.sub(FUSION_PREFIX), cfg.fusion, &dims, cfg.num_classes, cfg.head)?;
    Ok(Model::Fusion(FusionModel::new(encoders, head)?))
}
