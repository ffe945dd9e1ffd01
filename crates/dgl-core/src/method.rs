//! The method interface: what the one training loop asks of a training method. A method says only
//! how a batch becomes parameter updates, what it needs around epochs, and how it predicts.
//!
//! [`RoutedMethod`] covers plain training, DGL and its ablations and fixed-weight blending; the
//! compared methods of the paper's Table 1 live in `dgl-baselines`.

use candle_core::Tensor;

use crate::grads::ParamGrads;
use crate::loss::Loss;
use crate::model::{MultimodalModel, NamedVar};
use crate::optim::Optimizer;
use crate::routing::{evaluate_logits, routed_step, Routing, StepOutput};
use crate::{Error, Result};

/// What a method may use during a training step.
pub struct StepContext<'a> {
    pub model: &'a dyn MultimodalModel,
    pub optimizer: &'a mut Optimizer,
    /// Global L2-norm clipping (the official DGL code clips at 40); `None` = no clipping.
    pub clip_norm: Option<f64>,
    pub loss: &'a dyn Loss,
    /// 0-based epoch, step within the epoch, steps per epoch, and global step.
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    pub global_step: u64,
}

impl StepContext<'_> {
    /// Refuses a non-finite loss, naming the term, the epoch and the step.
    pub fn check_losses(&self, losses: &[(String, f64)]) -> Result<()> {
        if let Some((name, v)) = losses.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "loss",
                detail: format!("{name} = {v}"),
                epoch: self.epoch,
                step: self.step_in_epoch,
            });
        }
        Ok(())
    }

    /// Finishes a routed step: names its losses (`loss_mm`, `loss_<modality>`), refuses non-finite
    /// ones, applies the gradients ([`StepContext::apply`]) and reports.
    pub fn apply_routed(&mut self, mut out: StepOutput, scalars: Vec<(String, f64)>) -> Result<StepReport> {
        let names = self.model.modality_names();
        let mut losses = vec![("loss_mm".to_string(), scalar(&out.loss_mm)?)];
        for (n, l) in names.iter().zip(&out.loss_uni) {
            losses.push((format!("loss_{n}"), scalar(l)?));
        }
        self.check_losses(&losses)?;
        let grad_norm = self.apply(&mut out.grads)?;
        Ok(StepReport {
            losses,
            logits_mm: Some(out.logits_mm),
            logits_branches: names.into_iter().zip(out.logits_uni).collect(),
            z: out.z,
            grad_norm,
            scalars,
        })
    }

    /// Checks the gradients are finite, clips them, and takes one optimizer step. Returns the
    /// global gradient norm before clipping.
    pub fn apply(&mut self, grads: &mut ParamGrads) -> Result<f64> {
        if let Some(name) = grads.first_non_finite()? {
            return Err(Error::NonFinite {
                what: "gradient",
                detail: format!("parameter `{name}`"),
                epoch: self.epoch,
                step: self.step_in_epoch,
            });
        }
        let norm = match self.clip_norm {
            Some(max) => grads.clip_global_norm(max)?,
            None => grads.global_norm()?,
        };
        self.optimizer.step(grads)?;
        Ok(norm)
    }
}

/// What a step reports to the loop (all tensors detached).
#[derive(Debug, Default)]
pub struct StepReport {
    /// Named scalar losses (`loss_mm`, `loss_audio`, …) as computed (unweighted).
    pub losses: Vec<(String, f64)>,
    /// Multimodal logits of the batch, for training accuracy.
    pub logits_mm: Option<Tensor>,
    /// Per-branch logits (name, logits), when the method computes them.
    pub logits_branches: Vec<(String, Tensor)>,
    /// Representations z_m of the batch (detached), for diagnostics.
    pub z: Vec<Tensor>,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Method-specific scalars to log (coefficients, ratios, …).
    pub scalars: Vec<(String, f64)>,
}

/// Batches a method can iterate outside the training step (prototypes, k-means features, …).
pub trait BatchSource {
    /// Number of batches of the split.
    fn num_batches(&self, split: Split) -> usize;
    /// Calls `f(inputs, targets)` for the first `limit` batches (all when `None`) of the split, in
    /// a deterministic order, without augmentation.
    fn for_each_batch(
        &self,
        split: Split,
        limit: Option<usize>,
        f: &mut dyn FnMut(&[Tensor], &Tensor) -> Result<()>,
    ) -> Result<()>;
}

/// A data split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    /// Held out from the training set (reproducibly), for methods that need one.
    Validation,
}

/// Predictions for evaluation: multimodal logits and named per-branch logits.
#[derive(Debug)]
pub struct Prediction {
    pub multimodal: Tensor,
    pub branches: Vec<(String, Tensor)>,
}

/// A training method.
pub trait Method {
    /// Short identifier (`dgl`, `ogm-ge`, …).
    fn name(&self) -> String;

    /// Refuses, with a clear error, a model it cannot train (e.g. a modality count it does not
    /// support). Called before any work.
    fn check(&self, model: &dyn MultimodalModel) -> Result<()>;

    /// Whether the loop must carve a validation split from the training set.
    fn needs_validation(&self) -> bool {
        false
    }

    /// Called before the first step of every epoch.
    fn on_epoch_start(&mut self, _model: &dyn MultimodalModel, _epoch: usize, _data: &dyn BatchSource) -> Result<()> {
        Ok(())
    }

    /// One batch → parameter updates (through `ctx.apply`).
    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport>;

    /// Called after the last step of every epoch, before the epoch is evaluated (PMR refreshes
    /// its prototypes here, as the official loop does before its validation).
    fn on_epoch_end(&mut self, _ctx: &mut StepContext<'_>, _data: &dyn BatchSource) -> Result<()> {
        Ok(())
    }

    /// Called once the epoch has been evaluated (its validation / test metrics computed and
    /// recorded) and before the end-of-epoch checkpoint is written: what changes here (D&R's
    /// re-learning) shapes the next epoch, never the metrics of this one, and is in the checkpoint.
    fn after_evaluation(&mut self, _ctx: &mut StepContext<'_>, _data: &dyn BatchSource) -> Result<()> {
        Ok(())
    }

    /// Evaluation-mode prediction. Default: h(z) and the modality-dropout branches h(0, …, z_m, …, 0).
    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        let (mm, uni) = evaluate_logits(model, inputs)?;
        let names = model.modality_names();
        Ok(Prediction { multimodal: mm, branches: names.into_iter().zip(uni).collect() })
    }

    /// Method state to checkpoint (prototypes, running scores, …), as named tensors.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }

    /// Restores what [`Method::state`] returned.
    fn load_state(&mut self, _state: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }
}

/// Plain training, DGL, "MT only", "UT only" and fixed-weight blending: one routed step, clipping,
/// one SGD step.
#[derive(Clone, Debug)]
pub struct RoutedMethod {
    pub name: String,
    pub routing: Routing,
}

impl RoutedMethod {
    pub fn new(name: impl Into<String>, routing: Routing) -> Self {
        Self { name: name.into(), routing }
    }
}

impl Method for RoutedMethod {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        self.routing.validate(model.num_modalities())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let out = routed_step(ctx.model, inputs, targets, &self.routing, ctx.loss)?;
        ctx.apply_routed(out, Vec::new())
    }
}

/// A scalar tensor as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Snapshot of named tensors (deep copies), e.g. D&R's θ_init or a G-Blending model copy.
pub fn snapshot(vars: &[NamedVar]) -> Result<Vec<(String, Tensor)>> {
    vars.iter().map(|v| Ok((v.name.clone(), v.var.as_tensor().copy()?.detach()))).collect()
}

/// Restores a [`snapshot`] into the same variables (matched by name).
pub fn restore(vars: &[NamedVar], snap: &[(String, Tensor)]) -> Result<()> {
    for v in vars {
        let (_, t) = snap
            .iter()
            .find(|(n, _)| *n == v.name)
            .ok_or_else(|| Error::InvalidInput(format!("snapshot has no tensor `{}`", v.name)))?;
        v.var.set(t)?;
    }
    Ok(())
}
