//! ResNet-18 / ResNet-34 trunk with torchvision's topology, as used by the official DGL code
//! (`models/backbone.py`, identical to OGM-GE's): BasicBlock ×[2, 2, 2, 2] (ResNet-34:
//! [3, 4, 6, 3], ESANet's encoder, `model.resnet`), widths
//! base·(1, 2, 4, 8) (base 64 in the paper), conv1 7×7 / s2 / p3 without bias, BN, ReLU, max-pool
//! 3×3 / s2 / p1, **no avgpool / fc**: the forward returns the layer-4 feature map.
//!
//! Tensor names are torchvision's `state_dict` keys relative to the trunk (`conv1.weight`,
//! `bn1.running_mean`, `layer2.0.downsample.0.weight`, `layer2.0.downsample.1.bias`, …).

use candle_core::{Result, Tensor};
use dgl_core::NamedVar;
use serde::{Deserialize, Serialize};

use crate::error::config_err;
use crate::init::InitCtx;
use crate::layers::{join, prefixed, BatchNorm2d, Conv2d};
use crate::ops::{add_relu, max_pool2d_padded, window_count};

/// (kernel, stride, padding) of the stem convolution (torchvision `conv1`).
const STEM_CONV: (usize, usize, usize) = (7, 2, 3);
/// (kernel, stride, padding) of the stem max-pool.
const STEM_POOL: (usize, usize, usize) = (3, 2, 1);

/// Stride of the first block of stage `stage` (0-based): 1 for layer1, 2 after.
fn stage_stride(stage: usize) -> usize {
    if stage == 0 {
        1
    } else {
        2
    }
}

/// The spatial size (h, w) of the map each part of the trunk outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureSizes {
    /// After conv1 (and bn1, ReLU).
    pub stem: (usize, usize),
    /// After the max-pool.
    pub pool: (usize, usize),
    /// After layer1..layer4.
    pub layers: [(usize, usize); 4],
}

/// Depth of every ResNet encoder of a model (`model.resnet`): both are torchvision's BasicBlock
/// networks and differ only in the blocks per stage, so the geometry (every stage's spatial size)
/// is the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResNetDepth {
    /// BasicBlock ×[2, 2, 2, 2]: the paper's encoders (11.2 M parameters at base width 64).
    #[default]
    Resnet18,
    /// BasicBlock ×[3, 4, 6, 3]: ESANet's default encoder (21.3 M parameters at base width 64).
    Resnet34,
}

impl ResNetDepth {
    /// BasicBlocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::Resnet18 => [2, 2, 2, 2],
            ResNetDepth::Resnet34 => [3, 4, 6, 3],
        }
    }

    /// The configuration value (`resnet18`, `resnet34`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResNetDepth::Resnet18 => "resnet18",
            ResNetDepth::Resnet34 => "resnet34",
        }
    }

    /// The trunk of this depth with the given input channels and base width.
    pub fn config(self, in_channels: usize, base_width: usize) -> ResNetConfig {
        ResNetConfig { in_channels, base_width, blocks: self.blocks() }
    }
}

/// Shape of a ResNet trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Input channels of conv1 (1 for a spectrogram, 3 for RGB frames).
    pub in_channels: usize,
    /// Width of layer 1; layers 2-4 have 2×, 4×, 8× (64 = torchvision / paper).
    pub base_width: usize,
    /// BasicBlocks per stage ([2, 2, 2, 2] = ResNet-18).
    pub blocks: [usize; 4],
}

impl ResNetConfig {
    /// ResNet-18 with the given input channels and base width.
    pub fn resnet18(in_channels: usize, base_width: usize) -> Self {
        ResNetDepth::Resnet18.config(in_channels, base_width)
    }

    /// ResNet-34 (BasicBlock ×[3, 4, 6, 3]) with the given input channels and base width.
    pub fn resnet34(in_channels: usize, base_width: usize) -> Self {
        ResNetDepth::Resnet34.config(in_channels, base_width)
    }

    /// The depth of these blocks, when it is one of [`ResNetDepth`]'s.
    pub fn depth(&self) -> Option<ResNetDepth> {
        [ResNetDepth::Resnet18, ResNetDepth::Resnet34].into_iter().find(|d| d.blocks() == self.blocks)
    }

    /// `resnet18`, `resnet34`, or `resnet[b1, b2, b3, b4]` for other block counts (logs).
    pub fn name(&self) -> String {
        match self.depth() {
            Some(d) => d.as_str().to_string(),
            None => format!("resnet{:?}", self.blocks),
        }
    }

    /// Channels of the returned feature map, 8·base.
    pub fn out_channels(&self) -> usize {
        8 * self.base_width
    }

    /// The spatial size of every stage's output for an `h × w` input, computed from the layer
    /// geometry without running anything; an error (naming the stage) when a stage would get an
    /// empty map or a kernel larger than its padded input.
    pub fn feature_sizes(&self, h: usize, w: usize) -> std::result::Result<FeatureSizes, String> {
        let apply = |(h, w): (usize, usize), (k, s, p): (usize, usize, usize), what: &str| {
            if h == 0 || w == 0 {
                return Err(format!("{what} gets an empty {h}×{w} map"));
            }
            match (window_count(h, k, s, p), window_count(w, k, s, p)) {
                (Ok(a), Ok(b)) => Ok((a, b)),
                (Err(e), _) | (_, Err(e)) => Err(format!("{what} ({k}×{k}, stride {s}, padding {p}) on {h}×{w}: {e}")),
            }
        };
        let stem = apply((h, w), STEM_CONV, "conv1")?;
        let pool = apply(stem, STEM_POOL, "maxpool")?;
        let mut layers = [(0, 0); 4];
        let mut cur = pool;
        for (stage, out) in layers.iter_mut().enumerate() {
            cur = apply(cur, (3, stage_stride(stage), 1), &format!("layer{}", stage + 1))?;
            *out = cur;
        }
        Ok(FeatureSizes { stem, pool, layers })
    }

    /// The smallest square input side every stage accepts (the search stops at 4096).
    pub fn min_input_side(&self) -> usize {
        (1..4096).find(|&n| self.feature_sizes(n, n).is_ok()).unwrap_or(4096)
    }

    /// Trainable parameters (conv weights, BN weight and bias), without building the trunk.
    pub fn param_count(&self) -> u128 {
        let (c, base) = (self.in_channels as u128, self.base_width as u128);
        let k = STEM_CONV.0 as u128;
        let mut n = c * base * k * k + 2 * base;
        let mut in_ch = base;
        for (stage, &blocks) in self.blocks.iter().enumerate() {
            let out = base << stage;
            for b in 0..blocks {
                n += 9 * in_ch * out + 9 * out * out + 4 * out;
                if b == 0 && (stage_stride(stage) != 1 || in_ch != out) {
                    n += in_ch * out + 2 * out;
                }
                in_ch = out;
            }
        }
        n
    }

    /// Convolution and pooling outputs per `h × w` image (each is followed in training by a
    /// batch-norm and a ReLU output and has a gradient of the same size).
    pub fn activations(&self, h: usize, w: usize) -> std::result::Result<u128, String> {
        let f = self.feature_sizes(h, w)?;
        let area = |(h, w): (usize, usize)| h as u128 * w as u128;
        let base = self.base_width as u128;
        let mut n = base * area(f.stem) + base * area(f.pool);
        for (stage, &blocks) in self.blocks.iter().enumerate() {
            let convs = 2 * blocks as u128 + u128::from(stage > 0);
            n += convs * (base << stage) * area(f.layers[stage]);
        }
        Ok(n)
    }
}

/// torchvision `BasicBlock`: conv3×3(s) – BN – ReLU – conv3×3 – BN, plus the identity or a
/// `downsample` = (conv1×1(s), BN) shortcut, then ReLU.
#[derive(Clone, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    pub fn new(ctx: &InitCtx, name: &str, in_ch: usize, out_ch: usize, stride: usize) -> crate::Result<Self> {
        let downsample = if stride != 1 || in_ch != out_ch {
            Some((
                Conv2d::new(ctx, &join(name, "downsample.0"), in_ch, out_ch, 1, stride, 0)?,
                BatchNorm2d::new(ctx, &join(name, "downsample.1"), out_ch)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::new(ctx, &join(name, "conv1"), in_ch, out_ch, 3, stride, 1)?,
            bn1: BatchNorm2d::new(ctx, &join(name, "bn1"), out_ch)?,
            conv2: Conv2d::new(ctx, &join(name, "conv2"), out_ch, out_ch, 3, 1, 1)?,
            bn2: BatchNorm2d::new(ctx, &join(name, "bn2"), out_ch)?,
            downsample,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?,
            None => x.clone(),
        };
        add_relu(&y, &shortcut)
    }

    pub fn params(&self) -> Vec<NamedVar> {
        let mut v = prefixed("conv1", self.conv1.params());
        v.extend(prefixed("bn1", self.bn1.params()));
        v.extend(prefixed("conv2", self.conv2.params()));
        v.extend(prefixed("bn2", self.bn2.params()));
        if let Some((conv, bn)) = &self.downsample {
            v.extend(prefixed("downsample.0", conv.params()));
            v.extend(prefixed("downsample.1", bn.params()));
        }
        v
    }

    pub fn buffers(&self) -> Vec<NamedVar> {
        let mut v = prefixed("bn1", self.bn1.buffers());
        v.extend(prefixed("bn2", self.bn2.buffers()));
        if let Some((_, bn)) = &self.downsample {
            v.extend(prefixed("downsample.1", bn.buffers()));
        }
        v
    }
}

/// The ResNet trunk: conv1 – bn1 – ReLU – maxpool – layer1..layer4 → (B, 8·base, h, w).
///
/// With the project's CPU kernels the ReLUs are fused into the batch norm and the residual add and
/// have PyTorch's gradient (0 at exactly 0); otherwise they are candle's, whose gradient at exactly
/// 0 is 1. BN outputs are almost surely never exactly 0, so this does not matter in practice.
#[derive(Clone, Debug)]
pub struct ResNet {
    config: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: [Vec<BasicBlock>; 4],
}

impl ResNet {
    pub fn new(ctx: &InitCtx, config: ResNetConfig) -> crate::Result<Self> {
        if config.in_channels == 0 || config.base_width == 0 || config.blocks.contains(&0) {
            return config_err(format!("ResNet needs in_channels, base_width and blocks > 0, got {config:?}"));
        }
        let base = config.base_width;
        let (k, s, p) = STEM_CONV;
        let conv1 = Conv2d::new(ctx, "conv1", config.in_channels, base, k, s, p)?;
        let bn1 = BatchNorm2d::new(ctx, "bn1", base)?;
        let mut in_ch = base;
        let mut layers: [Vec<BasicBlock>; 4] = Default::default();
        for (stage, layer) in layers.iter_mut().enumerate() {
            let out_ch = base << stage;
            let stride = stage_stride(stage);
            for b in 0..config.blocks[stage] {
                let name = format!("layer{}.{b}", stage + 1);
                layer.push(BasicBlock::new(ctx, &name, in_ch, out_ch, if b == 0 { stride } else { 1 })?);
                in_ch = out_ch;
            }
        }
        Ok(Self { config, conv1, bn1, layers })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Stages of the trunk, each a place a fusion module can follow: 0 = the stem (conv1 – bn1 –
    /// ReLU – max-pool), 1..=4 = layer1..layer4.
    pub const STAGES: usize = 5;

    /// Channels of stage `stage`'s output (stem and layer1: base; layer k: base·2^(k−1)).
    pub fn stage_channels(&self, stage: usize) -> usize {
        self.config.base_width << stage.saturating_sub(1)
    }

    /// One stage: the stem on the input images (N, in_channels, H, W), or layer k on the previous
    /// stage's map.
    pub fn forward_stage(&self, stage: usize, x: &Tensor, train: bool) -> Result<Tensor> {
        match stage {
            0 => {
                let y = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
                let (k, s, p) = STEM_POOL;
                max_pool2d_padded(&y, k, s, p)
            }
            s if s < Self::STAGES => {
                let mut y = x.clone();
                for block in &self.layers[s - 1] {
                    y = block.forward_t(&y, train)?;
                }
                Ok(y)
            }
            s => candle_core::bail!("ResNet has stages 0..{}, not {s}", Self::STAGES),
        }
    }

    /// x (N, in_channels, H, W) → layer-4 map (N, 8·base, h, w): every stage in turn.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for stage in 0..Self::STAGES {
            y = self.forward_stage(stage, &y, train)?;
        }
        Ok(y)
    }

    /// Trainable tensors of one stage, torchvision names.
    pub fn stage_params(&self, stage: usize) -> Vec<NamedVar> {
        match stage {
            0 => {
                let mut v = prefixed("conv1", self.conv1.params());
                v.extend(prefixed("bn1", self.bn1.params()));
                v
            }
            s if s < Self::STAGES => self.layers[s - 1]
                .iter()
                .enumerate()
                .flat_map(|(b, block)| prefixed(&format!("layer{s}.{b}"), block.params()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Trainable tensors (conv weights, BN weight/bias), torchvision names, stage by stage.
    pub fn params(&self) -> Vec<NamedVar> {
        (0..Self::STAGES).flat_map(|s| self.stage_params(s)).collect()
    }

    /// BN running statistics, torchvision names.
    pub fn buffers(&self) -> Vec<NamedVar> {
        let mut v = prefixed("bn1", self.bn1.buffers());
        for (stage, layer) in self.layers.iter().enumerate() {
            for (b, block) in layer.iter().enumerate() {
                v.extend(prefixed(&format!("layer{}.{b}", stage + 1), block.buffers()));
            }
        }
        v
    }
}
