//! Modality encoders φ_m: x_m → z_m ∈ R^{d_m} (paper §3.1).
//!
//! * [`AudioEncoder`]: spectrogram (B, 1, F, T) → ResNet-18 → global average pool → (B, 8·base)
//!   (official `basic_model.py:73-76`, `adaptive_avg_pool2d(·, 1)`).
//! * [`VisualEncoder`]: frames (B, 3, T, H, W) → (B·T, 3, H, W) → ResNet-18 (frames share the
//!   2-D CNN) → (B, T, C, h, w) → mean over T, h, w → (B, 8·base) (official `backbone.py:158-184`,
//!   `basic_model.py:77-82`, `adaptive_avg_pool3d(·, 1)`).
//! * [`MlpEncoder`]: pre-extracted features (B, D) → Linear/ReLU stack → (B, d).
//!
//! Any other network can be plugged into a [`crate::FusionModel`] by implementing [`Encoder`].

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

/// How a ResNet-18 encoder reads its modality's input: the images it feeds the trunk and how the
/// trunk's output is pooled to z.
pub trait ResNetInput: Send + Sync {
    /// The modality [`Encoder::describe`] names (`audio`, `visual`).
    const KIND: &'static str;

    /// z = pool(net(images(x))), shape (B, 8·base).
    fn forward_t(net: &ResNet, x: &Tensor, train: bool) -> Result<Tensor>;
}

/// A ResNet-18 trunk on the input of one modality, read as `I` says.
#[derive(Clone, Debug)]
pub struct ResNetEncoder<I> {
    net: ResNet,
    input: PhantomData<I>,
}

/// ResNet-18 on a spectrogram + global average pooling.
pub type AudioEncoder = ResNetEncoder<SpectrogramInput>;

/// ResNet-18 applied to every frame, averaged over frames and space.
pub type VisualEncoder = ResNetEncoder<FramesInput>;

impl<I: ResNetInput> ResNetEncoder<I> {
    /// `in_channels` is 1 for the paper's single spectrogram, 3 for RGB frames.
    pub fn new(ctx: &InitCtx, in_channels: usize, base_width: usize) -> crate::Result<Self> {
        Ok(Self { net: ResNet::new(ctx, ResNetConfig::resnet18(in_channels, base_width))?, input: PhantomData })
    }

    pub fn resnet(&self) -> &ResNet {
        &self.net
    }
}

impl<I: ResNetInput> Encoder for ResNetEncoder<I> {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        I::forward_t(&self.net, x, train)
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
        format!("resnet18-{}(in {}, base {})", I::KIND, c.in_channels, c.base_width)
    }
}

/// The input of an [`AudioEncoder`]: a spectrogram, globally average-pooled after the trunk.
#[derive(Clone, Copy, Debug)]
pub struct SpectrogramInput;

impl ResNetInput for SpectrogramInput {
    const KIND: &'static str = "audio";

    /// x: (B, C, F, T), or (B, F, T) when C = 1.
    fn forward_t(net: &ResNet, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = match x.rank() {
            3 if net.config().in_channels == 1 => x.unsqueeze(1)?,
            4 => x.clone(),
            _ => bail!("AudioEncoder expects (B, {}, F, T), got {:?}", net.config().in_channels, x.shape()),
        };
        global_avg_pool(&net.forward_t(&x, train)?)
    }
}

/// The input of a [`VisualEncoder`]: frames sharing the 2-D trunk, averaged over frames and space.
#[derive(Clone, Copy, Debug)]
pub struct FramesInput;

impl ResNetInput for FramesInput {
    const KIND: &'static str = "visual";

    /// x: (B, C, T, H, W) (the official layout), or (B, C, H, W) for a single frame.
    fn forward_t(net: &ResNet, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t, frames) = match x.rank() {
            5 => {
                let (b, c, t, h, w) = x.dims5()?;
                // (B, C, T, H, W) -> (B, T, C, H, W) -> (B·T, C, H, W)
                let f = if t == 1 {
                    x.reshape((b, c, h, w))?
                } else {
                    x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?
                };
                (b, t, f)
            }
            4 => (x.dim(0)?, 1, x.clone()),
            _ => bail!("VisualEncoder expects (B, {}, T, H, W), got {:?}", net.config().in_channels, x.shape()),
        };
        let y = net.forward_t(&frames, train)?; // (B·T, C, h, w)
        let (_, c, h, w) = y.dims4()?;
        // mean over (T, h, w) = mean over space, then over frames
        y.reshape((b, t, c, h * w))?.mean(3)?.mean(1)
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
