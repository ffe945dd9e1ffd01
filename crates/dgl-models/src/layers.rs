//! Basic layers with PyTorch parameter names and the official DGL initialisation
//! (`utils/utils.py:15-23`): [`Conv2d`] (no bias), [`BatchNorm2d`] (train / eval, running
//! statistics kept out of the trainable set), [`Linear`].
//!
//! Every layer reports its tensors with names relative to itself (`weight`, `bias`,
//! `running_mean`, `running_var`); containers prepend their own prefix with [`join`].

use candle_core::{bail, Result, Tensor, Var, D};
use dgl_core::NamedVar;

use crate::init::{InitCtx, InitKind};
use crate::ops::conv2d_any;

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Prepends `prefix` to the names of `vars`.
pub fn prefixed(prefix: &str, vars: Vec<NamedVar>) -> Vec<NamedVar> {
    vars.into_iter().map(|v| NamedVar::new(join(prefix, &v.name), v.var)).collect()
}

/// A 2-D convolution without bias (`nn.Conv2d(..., bias=False)`), weight (C_out, C_in, k, k)
/// initialised with kaiming-normal (fan_out, ReLU). Runs through [`conv2d_any`].
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Var,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// `name` is the module's name relative to `ctx` (used for the weight's random stream).
    pub fn new(
        ctx: &InitCtx,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> crate::Result<Self> {
        let weight = ctx.var(
            &join(name, "weight"),
            &[out_channels, in_channels, kernel, kernel],
            InitKind::KaimingNormalFanOutRelu,
        )?;
        Ok(Self { weight, stride, padding })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_any(x, self.weight.as_tensor(), self.padding, self.stride)
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("weight", self.weight.clone())]
    }
}

/// Batch normalisation over dim 1 of a (B, C, …) tensor, PyTorch `nn.BatchNorm2d` semantics
/// (eps 1e-5, momentum 0.1, affine, running statistics tracked).
///
/// * train: normalises with the batch mean and the biased batch variance (over every dim but 1),
///   and updates `running_mean ← (1 − m)·running_mean + m·mean`,
///   `running_var ← (1 − m)·running_var + m·var·n/(n − 1)` (unbiased), outside the autograd graph;
/// * eval: normalises with the running statistics; gradients still reach `weight` and `bias`.
///
/// `weight` (init 1) and `bias` (init 0) are trainable; the running statistics are buffers
/// ([`BatchNorm2d::buffers`]): never listed as parameters and never given a gradient.
/// PyTorch's `num_batches_tracked` is not kept (it only matters for `momentum=None`).
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    pub fn new(ctx: &InitCtx, name: &str, channels: usize) -> crate::Result<Self> {
        Ok(Self {
            weight: ctx.var(&join(name, "weight"), &[channels], InitKind::Const(1.0))?,
            bias: ctx.var(&join(name, "bias"), &[channels], InitKind::Const(0.0))?,
            running_mean: ctx.var(&join(name, "running_mean"), &[channels], InitKind::Const(0.0))?,
            running_var: ctx.var(&join(name, "running_var"), &[channels], InitKind::Const(1.0))?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    pub fn channels(&self) -> usize {
        self.weight.as_tensor().elem_count()
    }

    pub fn running_mean(&self) -> &Var {
        &self.running_mean
    }

    pub fn running_var(&self) -> &Var {
        &self.running_var
    }

    /// (1, C, 1, …, 1) view of a per-channel vector for broadcasting against `x`.
    fn channel_view(v: &Tensor, x: &Tensor) -> Result<Tensor> {
        let mut shape = vec![1usize; x.rank()];
        shape[1] = v.elem_count();
        v.reshape(shape)
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, train, false)
    }

    /// `relu(forward_t(x, train))`; in training mode on the CPU with the project's kernels, one
    /// fused op (whose ReLU gradient is 0 at 0, as PyTorch's; candle's `relu` gives 1 there).
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, train, true)
    }

    fn forward_act(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let c = self.channels();
        if x.rank() < 2 || x.dim(1)? != c {
            bail!("BatchNorm2d({c}) got input of shape {:?}", x.shape())
        }
        let w = Self::channel_view(self.weight.as_tensor(), x)?;
        let b = Self::channel_view(self.bias.as_tensor(), x)?;
        if !train {
            let rm = Self::channel_view(&self.running_mean.as_detached_tensor(), x)?;
            let rv = Self::channel_view(&self.running_var.as_detached_tensor(), x)?;
            let scale = w.broadcast_div(&(rv + self.eps)?.sqrt()?)?;
            let shift = (b - rm.broadcast_mul(&scale)?)?;
            let y = x.broadcast_mul(&scale)?.broadcast_add(&shift)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        // Per-channel statistics over (B, rest): view as (B, C, R) and reduce the contiguous
        // trailing dim first, then the batch dim.
        let bsz = x.dim(0)?;
        let n = x.elem_count() / c;
        if n < 2 {
            bail!("BatchNorm2d in training mode needs more than one value per channel, got input {:?}", x.shape())
        }
        let mut relu_done = false;
        let (y, mean_d, var_d) = if let Some((fused, with_relu)) = self.fused_train(x, relu)? {
            relu_done = with_relu;
            fused
        } else {
            let x3 = x.reshape((bsz, c, ()))?;
            let mean = (x3.sum_keepdim(2)?.sum_keepdim(0)? / n as f64)?; // (1, C, 1)
            let xc = x3.broadcast_sub(&mean)?;
            let var = (xc.sqr()?.sum_keepdim(2)?.sum_keepdim(0)? / n as f64)?; // biased
            let scale =
                (&var + self.eps)?.sqrt()?.recip()?.broadcast_mul(&self.weight.as_tensor().reshape((1, c, 1))?)?;
            let y = xc.broadcast_mul(&scale)?.broadcast_add(&self.bias.as_tensor().reshape((1, c, 1))?)?;
            (y, mean.detach().flatten_all()?, var.detach().flatten_all()?)
        };
        // Running statistics, outside the graph.
        let m = self.momentum;
        let var_d = (var_d * (n as f64 / (n - 1) as f64))?;
        let new_mean = ((self.running_mean.as_detached_tensor() * (1.0 - m))? + (mean_d * m)?)?;
        let new_var = ((self.running_var.as_detached_tensor() * (1.0 - m))? + (var_d * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)?;
        let y = y.reshape(x.shape())?;
        if relu && !relu_done {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// The fused training-mode op where one applies — the CPU kernel (`cpu::batch_norm`, with the
    /// ReLU inside when `relu`) or, in a `cudnn` build on CUDA, cuDNN's (`cudnn::batch_norm`) — as
    /// `((y, mean, biased var), whether y already went through the ReLU)`; `None`: candle's generic
    /// ops.
    #[allow(clippy::type_complexity)]
    fn fused_train(&self, x: &Tensor, relu: bool) -> Result<Option<((Tensor, Tensor, Tensor), bool)>> {
        let (w, b) = (self.weight.as_tensor(), self.bias.as_tensor());
        if crate::cpu::supports(&[x, w]) {
            return crate::cpu::batch_norm::batch_norm_train_act(x, w, b, self.eps, relu).map(|r| Some((r, relu)));
        }
        #[cfg(feature = "cudnn")]
        if crate::cudnn::supports(&[x, w]) && self.eps >= crate::cudnn::batch_norm::MIN_EPS {
            return crate::cudnn::batch_norm_train_cudnn(x, w, b, self.eps).map(|r| Some((r, false)));
        }
        let _ = relu;
        Ok(None)
    }

    pub fn params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("weight", self.weight.clone()), NamedVar::new("bias", self.bias.clone())]
    }

    pub fn buffers(&self) -> Vec<NamedVar> {
        vec![
            NamedVar::new("running_mean", self.running_mean.clone()),
            NamedVar::new("running_var", self.running_var.clone()),
        ]
    }
}

/// A fully connected layer y = x Wᵀ + b (`nn.Linear`), W (out, in) xavier-normal, b = 0.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    pub fn new(ctx: &InitCtx, name: &str, in_dim: usize, out_dim: usize) -> crate::Result<Self> {
        Ok(Self {
            weight: ctx.var(&join(name, "weight"), &[out_dim, in_dim], InitKind::XavierNormal)?,
            bias: ctx.var(&join(name, "bias"), &[out_dim], InitKind::Const(0.0))?,
        })
    }

    /// `nn.Linear` with PyTorch's default initialisation: weight and bias U(−1/√in, 1/√in).
    pub fn torch_default(ctx: &InitCtx, name: &str, in_dim: usize, out_dim: usize) -> crate::Result<Self> {
        let kind = InitKind::TorchLinearDefault { fan_in: in_dim };
        Ok(Self {
            weight: ctx.var(&join(name, "weight"), &[out_dim, in_dim], kind)?,
            bias: ctx.var(&join(name, "bias"), &[out_dim], kind)?,
        })
    }

    pub fn in_dim(&self) -> usize {
        self.weight.as_tensor().dims()[1]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.as_tensor().dims()[0]
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// x (…, in) → (…, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Self::apply(x, self.weight.as_tensor(), self.bias.as_tensor())
    }

    /// x Wᵀ + b for explicit W, b (e.g. detached copies, or a column block of W).
    pub fn apply(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        let in_dim = w.dim(1)?;
        if x.dim(D::Minus1)? != in_dim {
            bail!("Linear({in_dim} -> {}) got input of shape {:?}", w.dim(0)?, x.shape())
        }
        if x.rank() == 2 {
            x.matmul(&w.t()?)?.broadcast_add(b)
        } else {
            x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
        }
    }

    pub fn params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("weight", self.weight.clone()), NamedVar::new("bias", self.bias.clone())]
    }
}

/// Layer normalisation over the last dimension (`nn.LayerNorm(n, eps)`): weight 1, bias 0, biased
/// variance. Built from differentiable tensor ops (candle's fused `layer_norm` has no backward).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Var,
    bias: Var,
    eps: f64,
}

impl LayerNorm {
    pub fn new(ctx: &InitCtx, name: &str, size: usize, eps: f64) -> crate::Result<Self> {
        Ok(Self {
            weight: ctx.var(&join(name, "weight"), &[size], InitKind::Const(1.0))?,
            bias: ctx.var(&join(name, "bias"), &[size], InitKind::Const(0.0))?,
            eps,
        })
    }

    /// x (…, n) → (x − mean) / √(var + eps) · weight + bias, statistics over the last dim.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(self.weight.as_tensor())?.broadcast_add(self.bias.as_tensor())
    }

    pub fn params(&self) -> Vec<NamedVar> {
        vec![NamedVar::new("weight", self.weight.clone()), NamedVar::new("bias", self.bias.clone())]
    }
}
