//! Seeded, device-independent parameter initialisation.
//!
//! Every value is drawn on the host with [`dgl_core::rng::Rng`] and then copied to the device, so a
//! seed gives bit-identical weights (after rounding to the target dtype) on every device. Each
//! parameter draws from its own stream, derived from the seed and the parameter's name, so adding,
//! removing or reordering modules never changes the initial value of another parameter, and an
//! encoder built with the same seed label (e.g. `audio_net`) starts from the same weights in a
//! unimodal and in a multimodal model.
//!
//! Schemes follow the official DGL code's `weight_init` (`utils/utils.py:15-23`, applied by
//! `model.apply(weight_init)` in `main_dgl.py`): Conv2d `kaiming_normal_(mode='fan_out',
//! nonlinearity='relu')`, BatchNorm weight 1 / bias 0, Linear `xavier_normal_` with bias 0.

use candle_core::{DType, Device, Tensor, Var};
use dgl_core::rng::Rng;

use crate::Result;

/// 64-bit FNV-1a hash of a label (stable across platforms and releases).
pub fn name_hash(label: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A seed derived from `seed` and a label, e.g. `sub_seed(seed, "audio_net")`.
pub fn sub_seed(seed: u64, label: &str) -> u64 {
    Rng::derive(seed, name_hash(label)).next_u64()
}

/// How a parameter is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitKind {
    /// N(0, 2 / fan_out), fan_out = `shape[0] · Π shape[2..]` (PyTorch `kaiming_normal_(mode='fan_out',
    /// nonlinearity='relu')`).
    KaimingNormalFanOutRelu,
    /// N(0, 2 / (fan_in + fan_out)) (PyTorch `xavier_normal_`, gain 1).
    XavierNormal,
    /// Every entry equal to the constant.
    Const(f64),
    /// U(−1/√fan_in, 1/√fan_in) with the fan-in of the layer whose weight has this shape
    /// PyTorch's default `nn.Linear` initialisation of both the weight
    /// (`kaiming_uniform_(a=√5)`) and the bias.
    TorchLinearDefault { fan_in: usize },
}

/// PyTorch's `_calculate_fan_in_and_fan_out`: (fan_in, fan_out) of a weight of this shape.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            (shape[1] * receptive, shape[0] * receptive)
        }
    }
}

/// Host values for a parameter of `shape` drawn from `rng`.
pub fn host_values(shape: &[usize], kind: InitKind, rng: &mut Rng) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let (fan_in, fan_out) = fans(shape);
    let std = match kind {
        InitKind::Const(c) => return vec![c; n],
        InitKind::TorchLinearDefault { fan_in } => {
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            return (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
        }
        InitKind::KaimingNormalFanOutRelu => (2.0 / fan_out as f64).sqrt(),
        InitKind::XavierNormal => (2.0 / (fan_in + fan_out) as f64).sqrt(),
    };
    (0..n).map(|_| std * rng.normal()).collect()
}

/// Seed, dtype and device for building a module; hands out initialised [`Var`]s.
#[derive(Clone, Debug)]
pub struct InitCtx {
    pub seed: u64,
    pub dtype: DType,
    pub device: Device,
}

impl InitCtx {
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self { seed, dtype, device: device.clone() }
    }

    /// The context of a sub-module: same dtype and device, seed derived from `label`.
    pub fn sub(&self, label: &str) -> Self {
        Self { seed: sub_seed(self.seed, label), dtype: self.dtype, device: self.device.clone() }
    }

    /// A new variable named `name` (relative to this context), drawn from the stream
    /// `Rng::derive(seed, name_hash(name))`.
    pub fn var(&self, name: &str, shape: &[usize], kind: InitKind) -> Result<Var> {
        let mut rng = Rng::derive(self.seed, name_hash(name));
        let values = host_values(shape, kind, &mut rng);
        let t = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(self.dtype)?.to_device(&self.device)?;
        Ok(Var::from_tensor(&t)?)
    }
}
