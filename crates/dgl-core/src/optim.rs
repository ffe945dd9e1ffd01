//! What candle lacks for training, with PyTorch semantics: SGD with momentum, dampening, weight
//! decay and Nesterov (`torch.optim.SGD`), and `MultiStepLR`.
//!
//! Only parameters present in a [`ParamGrads`] are touched: non-trainable state (BatchNorm running
//! statistics) is never listed there, so it is never decayed or stepped, and a parameter without a
//! gradient this step is skipped entirely, as PyTorch skips `grad is None`.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::error::check_hp;
use crate::grads::ParamGrads;
use crate::Result;

/// `torch.optim.SGD` hyper-parameters. Defaults are the paper's: lr 2e-3, momentum 0.9, weight
/// decay 1e-4.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(deny_unknown_fields, default))]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self { lr: 2e-3, momentum: 0.9, dampening: 0.0, weight_decay: 1e-4, nesterov: false }
    }
}

impl SgdConfig {
    /// The checks `torch.optim.SGD.__init__` makes, plus finiteness.
    pub fn validate(&self) -> Result<()> {
        check_hp(self.lr.is_finite() && self.lr > 0.0, "lr", self.lr, "must be finite and > 0")?;
        check_hp(self.momentum.is_finite() && self.momentum >= 0.0, "momentum", self.momentum, "must be >= 0")?;
        check_hp(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight_decay",
            self.weight_decay,
            "must be >= 0",
        )?;
        check_hp((0.0..=1.0).contains(&self.dampening), "dampening", self.dampening, "must be in [0, 1]")?;
        check_hp(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "nesterov",
            self.nesterov,
            "Nesterov momentum requires a momentum and zero dampening",
        )
    }
}

/// SGD with PyTorch semantics. Momentum buffers are keyed by parameter name and always detached.
#[derive(Debug)]
pub struct Sgd {
    cfg: SgdConfig,
    lr: f64,
    buffers: HashMap<String, Tensor>,
}

impl Sgd {
    pub fn new(cfg: SgdConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { lr: cfg.lr, cfg, buffers: HashMap::new() })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    /// The current learning rate (set by a scheduler).
    pub fn lr(&self) -> f64 {
        self.lr
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One `optimizer.step()`:
    /// d = g + wd·p; buf = d (first step) or μ·buf + (1 − τ)·d; d = d + μ·buf (Nesterov) or buf;
    /// p ← p − lr·d.
    pub fn step(&mut self, grads: &ParamGrads) -> Result<()> {
        let c = &self.cfg;
        for e in grads.entries() {
            let p = e.var.as_tensor();
            let mut d = e.grad.detach();
            if c.weight_decay != 0.0 {
                d = (d + (p.detach() * c.weight_decay)?)?;
            }
            if c.momentum != 0.0 {
                let buf = match self.buffers.get(&e.name) {
                    None => d.clone(),
                    Some(b) => ((b * c.momentum)? + (&d * (1.0 - c.dampening))?)?,
                };
                let buf = buf.detach();
                d = if c.nesterov { (d + (&buf * c.momentum)?)? } else { buf.clone() };
                self.buffers.insert(e.name.clone(), buf);
            }
            let updated = (p.detach() - (d * self.lr)?)?;
            e.var.set(&updated)?;
        }
        Ok(())
    }

    /// Momentum buffers by parameter name (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self.buffers.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Restores buffers saved by [`Sgd::state`].
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) {
        self.buffers = state.into_iter().map(|(k, t)| (k, t.detach())).collect();
    }
}

/// `torch.optim.lr_scheduler.MultiStepLR`: lr = base · γ^(number of milestones ≤ epoch).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(deny_unknown_fields, default))]
pub struct MultiStepLr {
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// The official DGL code calls `scheduler.step()` at the *start* of each epoch
    /// (`main_dgl.py:74`), so the decay takes effect one epoch early. `true` reproduces that.
    pub official_off_by_one: bool,
}

impl Default for MultiStepLr {
    /// The paper's schedule: ×0.1 at epoch 70.
    fn default() -> Self {
        Self { milestones: vec![70], gamma: 0.1, official_off_by_one: false }
    }
}

impl MultiStepLr {
    pub fn validate(&self) -> Result<()> {
        check_hp(self.gamma.is_finite() && self.gamma > 0.0, "gamma", self.gamma, "must be finite and > 0")?;
        check_hp(
            self.milestones.windows(2).all(|w| w[0] < w[1]),
            "milestones",
            format!("{:?}", self.milestones),
            "must be strictly increasing",
        )
    }

    /// The learning rate during 0-based `epoch`.
    pub fn lr_at(&self, base_lr: f64, epoch: usize) -> f64 {
        let e = if self.official_off_by_one { epoch + 1 } else { epoch };
        let n = self.milestones.iter().filter(|&&m| m <= e).count();
        base_lr * self.gamma.powi(n as i32)
    }
}
