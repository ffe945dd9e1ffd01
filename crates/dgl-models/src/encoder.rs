//! Modality encoders φ_m: x_m → z_m ∈ R^{d_m} (paper §3.1).
//!
//! * [`AudioEncoder`]: spectrogram (B, 1, F, T) → ResNet-18 (or -34) → global average pool → (B, 8·base)
//!   (official `basic_model.py:73-76`, `adaptive_avg_pool2d(·, 1)`).
//! * [`VisualEncoder`]: frames (B, 3, T, H, W) → (B·T, 3, H, W) → ResNet-18 (frames share the
//!   2-D CNN) → (B, T, C, h, w) → mean over T, h, w → (B, 8·base) (official `backbone.py:158-184`,
//!   `basic_model.py:77-82`, `adaptive_avg_pool3d(·, 1)`).
//! * [`MlpEncoder`]: pre-extracted features (B, D) → Linear/ReLU stack → (B, d).
//!
//! Any other network can be plugged into a [`crate::FusionModel`] by implementing [`Encoder`]; one
//! that runs stage by stage ([`StagedEncoder`], the ResNet encoders) can carry fusion modules
//! between its stages (dense fusion).

use std::marker::PhantomData;

use candle_core::{bail, Result, Tensor};
use dgl_core::NamedVar;

use crate::error::config_err;
use crate::init::InitCtx;
use crate::layers::{prefixed, Linear};
use crate::ops::global_avg_pool;
use crate::resnet::{ResNet, ResNetConfig};

/// A modality encoder φ_m.
///
/// Names returned by [`Encoder::params`] and [`Encoder::buffers`] are relative to the encoder
/// (torchvision-style, e.g. `layer1.0.conv1.weight`); the model prepends `<modality>_net.`.
pub trait Encoder: Send + Sync {
    /// z = φ(x), shape (B, [`Encoder::out_dim`]). `train` selects BatchNorm batch statistics and
    /// running-statistics updates.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;

    /// d, the size of the representation.
    fn out_dim(&self) -> usize;

    /// Trainable parameters.
    fn params(&self) -> Vec<NamedVar>;

    /// Non-trainable state saved in checkpoints (BatchNorm running statistics); never given to an
    /// optimizer.
    fn buffers(&self) -> Vec<NamedVar> {
        Vec::new()
    }

    /// A short description for logs (`resnet18-audio(base 64)`, …).
    fn describe(&self) -> String;
}

/// An encoder whose trunk runs stage by stage, so that a fusion module can sit between stages of
/// the encoders (MMTM after layer2..layer4, ESANet's RGB-D fusion after every stage; the model then
/// lists it by stage in `MultimodalModel::fusion_params`). For every input,
/// `forward_t(x) = pool(stage_{S−1}(… stage_0(stage_input(x))), frames)`, bit for bit.
pub trait StagedEncoder: Encoder {
    /// S, the number of stages.
    fn num_stages(&self) -> usize;

    /// What stage 0 reads, and the number of frames per sample that [`StagedEncoder::pool`] folds
    /// back (1 for a spectrogram).
    fn stage_input(&self, x: &Tensor) -> Result<(Tensor, usize)>;

    /// Stage `stage` on the previous stage's output (or on the stage input).
    fn forward_stage(&self, stage: usize, h: &Tensor, train: bool) -> Result<Tensor>;

    /// The last stage's map → z_m (B, [`Encoder::out_dim`]).
    fn pool(&self, h: &Tensor, frames: usize) -> Result<Tensor>;

    /// Channels of stage `stage`'s output (the width of a fusion module placed after it).
    fn stage_channels(&self, stage: usize) -> usize;

    /// Trainable parameters of one stage (together, in stage order: [`Encoder::params`]).
    fn stage_params(&self, stage: usize) -> Vec<NamedVar>;
}

/// How a ResNet encoder reads its modality's input: the images it feeds the trunk and how the
/// trunk's output is pooled to z.
pub trait ResNetInput: Send + Sync {
    /// The modality [`Encoder::describe`] names (`audio`, `visual`).
    const KIND: &'static str;

    /// The images of the trunk (N, C, H, W) and the frames per sample (N = B·frames).
    fn images(net: &ResNet, x: &Tensor) -> Result<(Tensor, usize)>;

    /// The trunk's map (N, C, h, w) → z (B, C).
    fn pool(y: &Tensor, frames: usize) -> Result<Tensor>;
}

/// A ResNet trunk (ResNet-18 unless built [`ResNetEncoder::with_config`]) on the input of one
/// modality, read as `I` says.
#[derive(Clone, Debug)]
pub struct ResNetEncoder<I> {
    net: ResNet,
    input: PhantomData<I>,
}

/// A ResNet on a spectrogram + global average pooling.
pub type AudioEncoder = ResNetEncoder<SpectrogramInput>;

/// A ResNet applied to every frame, averaged over frames and space.
pub type VisualEncoder = ResNetEncoder<FramesInput>;

impl<I: ResNetInput> ResNetEncoder<I> {
    /// A ResNet-18 encoder; `in_channels` is 1 for the paper's single spectrogram, 3 for RGB frames.
    pub fn new(ctx: &InitCtx, in_channels: usize, base_width: usize) -> crate::Result<Self> {
        Self::with_config(ctx, ResNetConfig::resnet18(in_channels, base_width))
    }

    /// An encoder on the trunk `config` (any depth, e.g. [`ResNetConfig::resnet34`]).
    pub fn with_config(ctx: &InitCtx, config: ResNetConfig) -> crate::Result<Self> {
        Ok(Self { net: ResNet::new(ctx, config)?, input: PhantomData })
    }

    pub fn resnet(&self) -> &ResNet {
        &self.net
    }
}

impl<I: ResNetInput> Encoder for ResNetEncoder<I> {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (images, frames) = I::images(&self.net, x)?;
        I::pool(&self.net.forward_t(&images, train)?, frames)
    }

    fn out_dim(&self) -> usize {
        self.net.config().out_channels()
    }

    fn params(&self) -> Vec<NamedVar> {
        self.net.params()
    }

    fn buffers(&self) -> Vec<NamedVar> {
        self.net.buffers()
    }

    fn describe(&self) -> String {
        let c = self.net.config();
        format!("{}-{}(in {}, base {})", c.name(), I::KIND, c.in_channels, c.base_width)
    }
}

impl<I: ResNetInput> StagedEncoder for ResNetEncoder<I> {
    fn num_stages(&self) -> usize {
        ResNet::STAGES
    }

    fn stage_input(&self, x: &Tensor) -> Result<(Tensor, usize)> {
        I::images(&self.net, x)
    }

    fn forward_stage(&self, stage: usize, h: &Tensor, train: bool) -> Result<Tensor> {
        self.net.forward_stage(stage, h, train)
    }

    fn pool(&self, h: &Tensor, frames: usize) -> Result<Tensor> {
        I::pool(h, frames)
    }

    fn stage_channels(&self, stage: usize) -> usize {
        self.net.stage_channels(stage)
    }

    fn stage_params(&self, stage: usize) -> Vec<NamedVar> {
        self.net.stage_params(stage)
    }
}

/// The input of an [`AudioEncoder`]: a spectrogram, globally average-pooled after the trunk.
#[derive(Clone, Copy, Debug)]
pub struct SpectrogramInput;

impl ResNetInput for SpectrogramInput {
    const KIND: &'static str = "audio";

    /// x: (B, C, F, T), or (B, F, T) when C = 1.
    fn images(net: &ResNet, x: &Tensor) -> Result<(Tensor, usize)> {
        let x = match x.rank() {
            3 if net.config().in_channels == 1 => x.unsqueeze(1)?,
            4 => x.clone(),
            _ => bail!("AudioEncoder expects (B, {}, F, T), got {:?}", net.config().in_channels, x.shape()),
        };
        Ok((x, 1))
    }

    fn pool(y: &Tensor, _frames: usize) -> Result<Tensor> {
        global_avg_pool(y)
    }
}

/// The input of a [`VisualEncoder`]: frames sharing the 2-D trunk, averaged over frames and space.
#[derive(Clone, Copy, Debug)]
pub struct FramesInput;

impl ResNetInput for FramesInput {
    const KIND: &'static str = "visual";

    /// x: (B, C, T, H, W) (the official layout), or (B, C, H, W) for a single frame.
    fn images(net: &ResNet, x: &Tensor) -> Result<(Tensor, usize)> {
        match x.rank() {
            5 => {
                let (b, c, t, h, w) = x.dims5()?;
                // (B, C, T, H, W) -> (B, T, C, H, W) -> (B·T, C, H, W)
                let f = if t == 1 {
                    x.reshape((b, c, h, w))?
                } else {
                    x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?
                };
                Ok((f, t))
            }
            4 => Ok((x.clone(), 1)),
            _ => bail!("VisualEncoder expects (B, {}, T, H, W), got {:?}", net.config().in_channels, x.shape()),
        }
    }

    /// (B·T, C, h, w) → mean over (T, h, w) = mean over space, then over frames.
    fn pool(y: &Tensor, frames: usize) -> Result<Tensor> {
        let (n, c, h, w) = y.dims4()?;
        y.reshape((n / frames, frames, c, h * w))?.mean(3)?.mean(1)
    }
}

/// An MLP for pre-extracted features: (B, D) → [Linear → ReLU] per hidden size → (B, d_last).
///
/// Layer i is named `net.{2i}` (the index it has in `nn.Sequential(Linear, ReLU, Linear, ReLU, …)`).
/// With no hidden sizes it is the identity (d = D, no parameters). Linear init: xavier-normal,
/// bias 0 (official `weight_init`).
#[derive(Clone, Debug)]
pub struct MlpEncoder {
    in_dim: usize,
    layers: Vec<Linear>,
}

impl MlpEncoder {
    pub fn new(ctx: &InitCtx, in_dim: usize, hidden: &[usize]) -> crate::Result<Self> {
        if in_dim == 0 || hidden.contains(&0) {
            return config_err(format!("MlpEncoder needs positive sizes, got in {in_dim}, hidden {hidden:?}"));
        }
        let mut layers = Vec::with_capacity(hidden.len());
        let mut d = in_dim;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Linear::new(ctx, &format!("net.{}", 2 * i), d, h)?);
            d = h;
        }
        Ok(Self { in_dim, layers })
    }
}

impl MlpEncoder {
    /// Trainable parameters of an MLP on `in_dim` features with `hidden` sizes (weights and
    /// biases), without building it.
    pub fn param_count(in_dim: usize, hidden: &[usize]) -> u128 {
        let mut d = in_dim as u128;
        let mut n = 0;
        for &h in hidden {
            n += d * h as u128 + h as u128;
            d = h as u128;
        }
        n
    }
}

impl Encoder for MlpEncoder {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        if x.rank() != 2 || x.dim(1)? != self.in_dim {
            bail!("MlpEncoder expects (B, {}), got {:?}", self.in_dim, x.shape())
        }
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y)?.relu()?;
        }
        Ok(y)
    }

    fn out_dim(&self) -> usize {
        self.layers.last().map_or(self.in_dim, |l| l.out_dim())
    }

    fn params(&self) -> Vec<NamedVar> {
        self.layers.iter().enumerate().flat_map(|(i, l)| prefixed(&format!("net.{}", 2 * i), l.params())).collect()
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self.layers.iter().map(|l| l.out_dim().to_string()).collect();
        format!("mlp({} -> [{}])", self.in_dim, dims.join(", "))
    }
}
