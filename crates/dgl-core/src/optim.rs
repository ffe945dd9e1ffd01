//! What candle lacks for training, with PyTorch semantics: SGD with momentum, dampening, weight
//! decay and Nesterov (`torch.optim.SGD`), AdamW (`torch.optim.AdamW`, what the journal versions of
//! MMPareto / InfoReg trained with) and Adam (`torch.optim.Adam`: L2 weight decay, ESANet's
//! option), [`Optimizer`] (any of them, chosen by [`OptimizerConfig`]), and [`LrSchedule`]:
//! `MultiStepLR` (which is also `StepLR`: milestones every k epochs) or `OneCycleLR` per epoch
//! (ESANet's).
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
    /// The checks `torch.optim.SGD.__init__` makes, plus finiteness and `momentum < 1`: PyTorch
    /// accepts any momentum ≥ 0, but with momentum 1 the buffer never forgets a gradient (the
    /// step grows without bound) and above 1 it diverges geometrically.
    pub fn validate(&self) -> Result<()> {
        check_hp(self.lr.is_finite() && self.lr > 0.0, "lr", self.lr, "must be finite and > 0")?;
        check_hp(
            (0.0..1.0).contains(&self.momentum),
            "momentum",
            self.momentum,
            "must be in [0, 1) (momentum 1 never forgets a gradient)",
        )?;
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

/// `torch.optim.AdamW` hyper-parameters (PyTorch's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 }
    }
}

impl AdamWConfig {
    /// The checks `torch.optim.AdamW.__init__` makes, plus finiteness.
    pub fn validate(&self) -> Result<()> {
        check_hp(self.lr.is_finite() && self.lr > 0.0, "lr", self.lr, "must be finite and > 0")?;
        check_hp((0.0..1.0).contains(&self.beta1), "beta1", self.beta1, "must be in [0, 1)")?;
        check_hp((0.0..1.0).contains(&self.beta2), "beta2", self.beta2, "must be in [0, 1)")?;
        check_hp(self.eps.is_finite() && self.eps >= 0.0, "eps", self.eps, "must be finite and >= 0")?;
        check_hp(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight_decay",
            self.weight_decay,
            "must be >= 0",
        )
    }
}

/// AdamW with PyTorch semantics (`amsgrad=False`), or Adam ([`AdamW::adam`]: the weight decay
/// added to the gradient, `torch.optim.Adam`). Moments and step counts are kept per parameter
/// name, moments always detached; a parameter without a gradient this step is skipped entirely
/// (its step count does not advance), as PyTorch skips `grad is None`.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    lr: f64,
    /// AdamW's decoupled decay (`true`) or Adam's L2 term in the gradient.
    decoupled: bool,
    /// name → (exp_avg, exp_avg_sq, step)
    state: HashMap<String, (Tensor, Tensor, u64)>,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { lr: cfg.lr, cfg, decoupled: true, state: HashMap::new() })
    }

    /// `torch.optim.Adam` (`amsgrad=False`): as AdamW but g ← g + wd·p instead of the decoupled
    /// decay.
    pub fn adam(cfg: AdamWConfig) -> Result<Self> {
        Ok(Self { decoupled: false, ..Self::new(cfg)? })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Sets β1 (a one-cycle schedule cycles it).
    pub fn set_beta1(&mut self, beta1: f64) {
        self.cfg.beta1 = beta1;
    }

    /// One `optimizer.step()`: t += 1; p ← p·(1 − lr·wd) (AdamW) or g ← g + wd·p (Adam);
    /// m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε).
    pub fn step(&mut self, grads: &ParamGrads) -> Result<()> {
        let c = &self.cfg;
        for e in grads.entries() {
            let p = e.var.as_tensor().detach();
            let mut g = e.grad.detach();
            if !self.decoupled && c.weight_decay != 0.0 {
                g = (g + (&p * c.weight_decay)?)?;
            }
            let (m, v, t) = match self.state.get(&e.name) {
                None => (g.zeros_like()?, g.zeros_like()?, 0),
                Some((m, v, t)) => (m.clone(), v.clone(), *t),
            };
            let t = t + 1;
            let p = if self.decoupled && c.weight_decay != 0.0 { (p * (1.0 - self.lr * c.weight_decay))? } else { p };
            let m = ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?.detach();
            let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?.detach();
            let bias1 = 1.0 - c.beta1.powf(t as f64);
            let bias2_sqrt = (1.0 - c.beta2.powf(t as f64)).sqrt();
            let denom = ((v.sqrt()? / bias2_sqrt)? + c.eps)?;
            let updated = (p - ((&m / denom)? * (self.lr / bias1))?)?;
            e.var.set(&updated)?;
            self.state.insert(e.name.clone(), (m, v, t));
        }
        Ok(())
    }

    /// `exp_avg.<name>`, `exp_avg_sq.<name>` and `step.<name>` (f64 scalar), sorted by key.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = Vec::new();
        for (k, (m, s, t)) in &self.state {
            v.push((format!("exp_avg.{k}"), m.clone()));
            v.push((format!("exp_avg_sq.{k}"), s.clone()));
            v.push((format!("step.{k}"), Tensor::new(&[*t as f64], &candle_core::Device::Cpu)?));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Restores what [`AdamW::state`] returned; a parameter with a moment but no step count (or the
    /// reverse) is an error.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut m = HashMap::new();
        let mut s = HashMap::new();
        let mut t = HashMap::new();
        for (k, v) in state {
            if let Some(n) = k.strip_prefix("exp_avg.") {
                m.insert(n.to_string(), v.detach());
            } else if let Some(n) = k.strip_prefix("exp_avg_sq.") {
                s.insert(n.to_string(), v.detach());
            } else if let Some(n) = k.strip_prefix("step.") {
                let step = v.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
                t.insert(n.to_string(), step.first().copied().unwrap_or(0.0) as u64);
            } else {
                return Err(crate::Error::InvalidInput(format!("AdamW state: unexpected entry `{k}`")));
            }
        }
        self.state.clear();
        for (n, mv) in m {
            match (s.remove(&n), t.remove(&n)) {
                (Some(sv), Some(tv)) => {
                    self.state.insert(n, (mv, sv, tv));
                }
                _ => return Err(crate::Error::InvalidInput(format!("AdamW state: `{n}` lacks exp_avg_sq or step"))),
            }
        }
        if let Some(n) = s.keys().chain(t.keys()).next() {
            return Err(crate::Error::InvalidInput(format!("AdamW state: `{n}` lacks exp_avg")));
        }
        Ok(())
    }
}

/// Which optimizer [`OptimizerConfig`] builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum OptimizerKind {
    /// `torch.optim.SGD` (the paper's).
    #[default]
    Sgd,
    /// `torch.optim.AdamW`.
    AdamW,
    /// `torch.optim.Adam` (L2 weight decay; ESANet's `--optimizer Adam`).
    Adam,
}

/// The optimizer of a run, as one flat table (`[train.optimizer]`): `kind` chooses SGD, AdamW or
/// Adam; `lr` and `weight_decay` are shared; `momentum`, `dampening`, `nesterov` are SGD's; `beta1`,
/// `beta2`, `eps` are AdamW's and Adam's. Defaults: the paper's SGD (lr 2e-3, momentum 0.9, weight decay
/// 1e-4) and PyTorch's AdamW betas/eps; the weight decay stays 1e-4 for AdamW unless set (PyTorch's
/// AdamW default is 1e-2).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(deny_unknown_fields, default))]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        let s = SgdConfig::default();
        let a = AdamWConfig::default();
        Self {
            kind: OptimizerKind::Sgd,
            lr: s.lr,
            momentum: s.momentum,
            dampening: s.dampening,
            weight_decay: s.weight_decay,
            nesterov: s.nesterov,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
        }
    }
}

impl OptimizerConfig {
    /// The SGD hyper-parameters of this table.
    pub fn sgd(&self) -> SgdConfig {
        SgdConfig {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
        }
    }

    /// The AdamW hyper-parameters of this table.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    /// Validates the hyper-parameters of the chosen kind, after refusing a non-finite value in
    /// any field (also those the other kind would use: a NaN left in the table is a mistake).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("weight_decay", self.weight_decay),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
        ] {
            check_hp(v.is_finite(), name, v, "must be finite")?;
        }
        match self.kind {
            OptimizerKind::Sgd => self.sgd().validate(),
            OptimizerKind::AdamW | OptimizerKind::Adam => self.adamw().validate(),
        }
    }

    pub fn build(&self) -> Result<Optimizer> {
        Ok(match self.kind {
            OptimizerKind::Sgd => Optimizer::Sgd(Sgd::new(self.sgd())?),
            OptimizerKind::AdamW => Optimizer::AdamW(AdamW::new(self.adamw())?),
            OptimizerKind::Adam => Optimizer::AdamW(AdamW::adam(self.adamw())?),
        })
    }
}

impl From<SgdConfig> for OptimizerConfig {
    fn from(s: SgdConfig) -> Self {
        Self {
            lr: s.lr,
            momentum: s.momentum,
            dampening: s.dampening,
            weight_decay: s.weight_decay,
            nesterov: s.nesterov,
            ..Self::default()
        }
    }
}

/// SGD or Adam(W) behind one interface (the training loop's and [`crate::StepContext`]'s optimizer).
#[derive(Debug)]
pub enum Optimizer {
    Sgd(Sgd),
    AdamW(AdamW),
}

impl From<Sgd> for Optimizer {
    fn from(s: Sgd) -> Self {
        Optimizer::Sgd(s)
    }
}

impl Optimizer {
    /// The current learning rate (set by a scheduler).
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd(o) => o.lr(),
            Optimizer::AdamW(o) => o.lr,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::Sgd(o) => o.set_lr(lr),
            Optimizer::AdamW(o) => o.lr = lr,
        }
    }

    /// Sets SGD's momentum or Adam(W)'s β1 (what a one-cycle schedule cycles).
    pub fn set_momentum(&mut self, momentum: f64) {
        match self {
            Optimizer::Sgd(o) => o.cfg.momentum = momentum,
            Optimizer::AdamW(o) => o.set_beta1(momentum),
        }
    }

    /// Applies the schedule's values for an epoch.
    pub fn apply(&mut self, s: Scheduled) {
        self.set_lr(s.lr);
        if let Some(m) = s.momentum {
            self.set_momentum(m);
        }
    }

    pub fn step(&mut self, grads: &ParamGrads) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => o.step(grads),
            Optimizer::AdamW(o) => o.step(grads),
        }
    }

    /// Named state tensors for checkpoints: `momentum_buffer.<name>` (SGD) or `exp_avg.<name>`,
    /// `exp_avg_sq.<name>`, `step.<name>` (AdamW) — PyTorch's `state_dict` field names.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        match self {
            Optimizer::Sgd(o) => Ok(o.state().into_iter().map(|(k, t)| (format!("momentum_buffer.{k}"), t)).collect()),
            Optimizer::AdamW(o) => o.state(),
        }
    }

    /// Restores what [`Optimizer::state`] returned.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => {
                let mut buffers = Vec::new();
                for (k, t) in state {
                    match k.strip_prefix("momentum_buffer.") {
                        Some(n) => buffers.push((n.to_string(), t)),
                        None => return Err(crate::Error::InvalidInput(format!("SGD state: unexpected entry `{k}`"))),
                    }
                }
                o.load_state(buffers);
                Ok(())
            }
            Optimizer::AdamW(o) => o.load_state(state),
        }
    }
}

/// Which learning-rate schedule [`LrSchedule`] follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum ScheduleKind {
    /// `torch.optim.lr_scheduler.MultiStepLR` (the paper's).
    #[default]
    MultiStep,
    /// `torch.optim.lr_scheduler.OneCycleLR` stepped once per epoch, as ESANet trains (its
    /// `train.py`: `total_steps = epochs`, cosine annealing, momentum / β1 cycled).
    OneCycle,
}

/// The learning-rate schedule of a run, one flat table (`[train.scheduler]`): `kind` chooses it;
/// `milestones`, `gamma`, `official_off_by_one` are MultiStepLR's; `pct_start`, `div_factor`,
/// `final_div_factor`, `cycle_momentum`, `base_momentum`, `max_momentum` are OneCycleLR's, with
/// PyTorch's defaults (which ESANet keeps). The fields of the other kind are ignored.
///
/// * MultiStepLR: lr = base · γ^(number of milestones ≤ epoch).
/// * OneCycleLR (`max_lr` = the optimizer's lr, T = the run's epochs): the lr rises from
///   max_lr / div_factor to max_lr over the first `pct_start · T − 1` steps and falls to
///   max_lr / div_factor / final_div_factor at step T − 1, both by cosine annealing
///   `end + (start − end)/2 · (1 + cos(π·pct))`; with `cycle_momentum` the momentum (SGD) or β1
///   (Adam/AdamW) moves the opposite way between `max_momentum` and `base_momentum`. Where
///   PyTorch divides by zero (a warm-up of zero length, `pct_start · T = 1`, e.g. T = 10 with
///   `pct_start` 0.1) step 0 takes the warm-up's start values, so that the cycle begins at
///   max_lr / div_factor as it does for every T where PyTorch runs; past T − 1 the schedule stays
///   at its last value (PyTorch raises).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize), serde(deny_unknown_fields, default))]
pub struct LrSchedule {
    pub kind: ScheduleKind,
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// The official DGL code calls `scheduler.step()` at the *start* of each epoch
    /// (`main_dgl.py:74`), so the decay takes effect one epoch early. `true` reproduces that.
    pub official_off_by_one: bool,
    pub pct_start: f64,
    pub div_factor: f64,
    pub final_div_factor: f64,
    pub cycle_momentum: bool,
    pub base_momentum: f64,
    pub max_momentum: f64,
}

impl Default for LrSchedule {
    /// The paper's schedule: ×0.1 at epoch 70 (and PyTorch's OneCycleLR defaults).
    fn default() -> Self {
        Self {
            kind: ScheduleKind::MultiStep,
            milestones: vec![70],
            gamma: 0.1,
            official_off_by_one: false,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }
}

/// The learning rate (and, for a cycled momentum, the momentum / β1) of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheduled {
    pub lr: f64,
    pub momentum: Option<f64>,
}

impl LrSchedule {
    /// ESANet's schedule: one cycle with warm-up over the first 10 % of the epochs.
    pub fn esanet() -> Self {
        Self { kind: ScheduleKind::OneCycle, pct_start: 0.1, ..Self::default() }
    }

    pub fn validate(&self) -> Result<()> {
        check_hp(self.gamma.is_finite() && self.gamma > 0.0, "gamma", self.gamma, "must be finite and > 0")?;
        check_hp(
            self.milestones.windows(2).all(|w| w[0] < w[1]),
            "milestones",
            format!("{:?}", self.milestones),
            "must be strictly increasing",
        )?;
        check_hp((0.0..=1.0).contains(&self.pct_start), "pct_start", self.pct_start, "must be in [0, 1]")?;
        for (name, v) in [("div_factor", self.div_factor), ("final_div_factor", self.final_div_factor)] {
            check_hp(v.is_finite() && v > 0.0, name, v, "must be finite and > 0")?;
        }
        for (name, v) in [("base_momentum", self.base_momentum), ("max_momentum", self.max_momentum)] {
            check_hp((0.0..1.0).contains(&v), name, v, "must be in [0, 1)")?;
        }
        Ok(())
    }

    /// The learning rate during 0-based `epoch` of a run of `epochs` epochs.
    pub fn lr_at(&self, base_lr: f64, epoch: usize, epochs: usize) -> f64 {
        self.at(base_lr, epoch, epochs).lr
    }

    /// The learning rate and cycled momentum during 0-based `epoch` of `epochs`.
    pub fn at(&self, base_lr: f64, epoch: usize, epochs: usize) -> Scheduled {
        match self.kind {
            ScheduleKind::MultiStep => {
                let e = if self.official_off_by_one { epoch + 1 } else { epoch };
                let n = self.milestones.iter().filter(|&&m| m <= e).count();
                Scheduled { lr: base_lr * self.gamma.powi(n as i32), momentum: None }
            }
            ScheduleKind::OneCycle => self.one_cycle(base_lr, epoch, epochs),
        }
    }

    /// PyTorch's `OneCycleLR.get_lr` (two phases, cosine) at step `epoch` of `epochs`.
    fn one_cycle(&self, max_lr: f64, epoch: usize, epochs: usize) -> Scheduled {
        let initial = max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let step = epoch.min(epochs.saturating_sub(1)) as f64;
        let warm_end = self.pct_start * epochs as f64 - 1.0;
        let last = epochs as f64 - 1.0;
        let cos =
            |start: f64, end: f64, pct: f64| end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
        let pct = |from: f64, to: f64| if to > from { (step - from) / (to - from) } else { 0.0 };
        let (lr, momentum) = if step <= warm_end {
            let p = pct(0.0, warm_end);
            (cos(initial, max_lr, p), cos(self.max_momentum, self.base_momentum, p))
        } else {
            let p = pct(warm_end, last);
            (cos(max_lr, min, p), cos(self.base_momentum, self.max_momentum, p))
        };
        Scheduled { lr, momentum: self.cycle_momentum.then_some(momentum) }
    }
}
