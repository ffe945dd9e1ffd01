//! MLA, Multimodal Learning with Alternating unimodal adaptation (Zhang et al., CVPR 2024),
//! `MLA/main.py:419-477, 622-651`, `utils/utils.py:12-41`.
//!
//! One forward of every encoder, then for m = 0, 1, …, M−1 a *half-step*: L_m = CE(head(z_m)),
//! backward, projection of the head weight gradient, `ctx.apply` (clip + optimizer step: the
//! momentum buffers are shared across half-steps). Half-step m+1 uses the head just updated by
//! half-step m. Two variants ([`MlaVariant`]):
//!
//! * **official** (default), as the published code runs with `--gs_flag`: one shared
//!   `Linear(d, K)` head (`fc_out`, input_dim 512; xavier-normal weight, zero bias from the official
//!   `weight_init`) owned by the method and applied to each z_m, so every z_m must have the same
//!   size d. Optimizer semantics of the pinned torch 1.8.1: `optimizer.zero_grad()` after each
//!   half-step *zeroes* the gradients (it does not set them to `None`) and `del p.grad` at the end
//!   of the batch sets them to `None`. So in half-step m the encoders of the modalities already
//!   stepped in this batch (j < m) carry a zero gradient and SGD still moves them by momentum and
//!   weight decay (buf ← μ·buf + wd·θ, θ ← θ − lr·buf), while the encoders of modalities j > m have
//!   no gradient and stay put. The projection is not applied (the official code tests
//!   `n == "module.weight"` on names `weight`/`bias`, [`MlaProjection::Off`]); test-time fusion is
//!   the fixed mean ½(out_a + out_v) ([`MlaFusion::Mean`]). The model's own head is unused.
//! * **masked-head**: the model's head with the other modalities zeroed, h(0, …, z_m, …, 0) (with
//!   a concat head modality m meets its own block W_m and the shared bias); only the parameters
//!   with a gradient are stepped (`set_to_none` semantics); the projection applied
//!   ([`MlaProjection::Replace`]); per-sample entropy fusion ([`MlaFusion::EntropySample`]).
//!
//! Gradient projection (orthogonal weight modification), in the head's input space (official: R^d,
//! r the batch mean of z_m; masked-head: R^D, D = Σ d_m, r the mean of the masked vector
//! [0, …, z_m, …, 0]): P₀ = I; at every half-step except the very first of the run, with
//! α_t = 0.1^(1 + batch_idx/len_loader): k = P rᵀ, P ← P − k kᵀ/(α_t + r k), P ← P/‖P‖_F,
//! grad_W ← grad_W Pᵀ. [`MlaProjection::Add`] is BalanceBenchmark's `grad += grad·Pᵀ`.
//!
//! Test-time fusion: Σ_m w_m·logits_m with w = softmax_m(−H_m), H_m the entropy of modality m's
//! prediction: per sample (paper intent), or the official per-batch value (softmax over the *batch*
//! dimension, summed over the batch), or the fixed mean.

use candle_core::{DType, Tensor};
use dgl_core::grads::ParamGrads;
use dgl_core::model::detach_all;
use dgl_core::{Error, Method, MultimodalModel, NamedVar, Prediction, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule};
use crate::heads::{vector_dims, HeadInit, LinearHeads};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, TaskKind};
use crate::util::{
    all_grads, batch_mean, check_losses, entropy, f64_tensor, find_state, host_f64, scalar, state_f64, upload,
};

/// Which MLA (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlaVariant {
    /// As published: shared `Linear(d, K)` head, torch-1.8 optimizer semantics, no projection,
    /// fixed mean fusion (default).
    #[default]
    Official,
    /// The model's head with the other modalities zeroed, projection applied, entropy fusion.
    MaskedHead,
}

/// What happens to the head weight gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlaProjection {
    /// grad_W ← grad_W Pᵀ (the method as written; the masked-head default).
    Replace,
    /// grad_W ← grad_W + grad_W Pᵀ (BalanceBenchmark).
    Add,
    /// No projection (what the official code effectively does; the official default).
    Off,
}

/// Test-time fusion of the per-modality logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlaFusion {
    /// Per-sample entropy weights (paper intent; the masked-head default).
    EntropySample,
    /// One weight per modality per batch from the batch-dimension softmax (official `--dynamic`).
    EntropyBatch,
    /// Equal weights 1/M (official without `--dynamic`; the official default).
    Mean,
}

/// MLA's options. `projection` and `fusion` default to the variant's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlaConfig {
    pub variant: MlaVariant,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<MlaProjection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion: Option<MlaFusion>,
}

impl MlaConfig {
    /// The projection in effect: the configured one, else the variant's (official: off,
    /// masked-head: replace).
    pub fn projection(&self) -> MlaProjection {
        self.projection.unwrap_or(match self.variant {
            MlaVariant::Official => MlaProjection::Off,
            MlaVariant::MaskedHead => MlaProjection::Replace,
        })
    }

    /// The test-time fusion in effect: the configured one, else the variant's (official: mean,
    /// masked-head: per-sample entropy).
    pub fn fusion(&self) -> MlaFusion {
        self.fusion.unwrap_or(match self.variant {
            MlaVariant::Official => MlaFusion::Mean,
            MlaVariant::MaskedHead => MlaFusion::EntropySample,
        })
    }
}

impl MethodSpec for MlaConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "mla",
        label: "MLA",
        summary: "alternating unimodal half-steps through one shared head (official) or the masked model head",
        modalities: ModalityCount::AtLeast(2),
        heads: HeadSupport::LateFusion,
        tasks: &[TaskKind::Classification],
        needs_validation: false,
    };

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Mla::new(self.clone(), ctx.num_classes, ctx.seed)))
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        Schedule::new(1e-3, &[70], "MLA `main.py` (lr 1e-3, StepLR(70, 0.1))")
    }
}

/// Memory layout of the head weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[K, D]` (PyTorch `nn.Linear`): grad ← grad Pᵀ.
    OutIn,
    /// `[D, K]`: grad ← P grad.
    InOut,
}

/// The head weight the projection acts on.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadWeight {
    pub name: String,
    pub layout: WeightLayout,
    /// Input sizes d_m of the head's blocks.
    pub dims: Vec<usize>,
}

impl HeadWeight {
    pub fn input_dim(&self) -> usize {
        self.dims.iter().sum()
    }
}

/// Finds the linear head weight W (with W[:, block m] = `linear_head_block(m)`) among the head
/// parameters.
pub fn find_head_weight(model: &dyn MultimodalModel) -> Result<HeadWeight> {
    let mm = model.num_modalities();
    let mut blocks = Vec::with_capacity(mm);
    for m in 0..mm {
        blocks.push(model.linear_head_block(m).ok_or_else(|| {
            Error::InvalidInput(
                "MLA's gradient projection needs a linear late-fusion head \
                 (MultimodalModel::linear_head_block); use mla.projection = \"off\" otherwise"
                    .into(),
            )
        })?);
    }
    let k = blocks[0].dim(0)?;
    let dims: Vec<usize> = blocks.iter().map(|b| b.dim(1)).collect::<candle_core::Result<_>>()?;
    let d: usize = dims.iter().sum();
    let want = host_f64(&blocks[0])?;
    for p in model.head_params() {
        let t = p.var.as_tensor();
        if t.rank() != 2 {
            continue;
        }
        let (r, c) = t.dims2()?;
        let candidates = [(WeightLayout::OutIn, (k, d)), (WeightLayout::InOut, (d, k))];
        for (layout, shape) in candidates {
            if (r, c) != shape {
                continue;
            }
            let block = match layout {
                WeightLayout::OutIn => t.narrow(1, 0, dims[0])?,
                WeightLayout::InOut => t.narrow(0, 0, dims[0])?.t()?,
            };
            if host_f64(&block)? == want {
                return Ok(HeadWeight { name: p.name.clone(), layout, dims });
            }
        }
    }
    Err(Error::InvalidInput(
        "MLA: no head parameter matches the linear head blocks; use mla.projection = \"off\"".into(),
    ))
}

/// One projection update, row-major `P ∈ R^{D×D}`: k = P r, P ← P − k kᵀ/(α + r·k), P ← P/‖P‖_F.
pub fn update_projection(p: &mut [f64], r: &[f64], alpha: f64) {
    let d = r.len();
    let k: Vec<f64> = (0..d).map(|i| (0..d).map(|j| p[i * d + j] * r[j]).sum()).collect();
    let denom = alpha + r.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>();
    for i in 0..d {
        for j in 0..d {
            p[i * d + j] -= k[i] * k[j] / denom;
        }
    }
    let fro = p.iter().map(|v| v * v).sum::<f64>().sqrt();
    for v in p.iter_mut() {
        *v /= fro;
    }
}

/// α_t = 0.1^(1 + batch_idx/len_loader).
pub fn projection_alpha(step_in_epoch: usize, steps_per_epoch: usize) -> f64 {
    0.1f64.powf(1.0 + step_in_epoch as f64 / steps_per_epoch.max(1) as f64)
}

/// The fused logits Σ_m w_m·logits_m.
pub fn fuse_branches(logits: &[Tensor], how: MlaFusion) -> Result<Tensor> {
    let mm = logits.len();
    let weighted = |w: Vec<Tensor>| -> Result<Tensor> {
        let mut acc: Option<Tensor> = None;
        for (l, w) in logits.iter().zip(w) {
            let t = l.broadcast_mul(&w)?;
            acc = Some(match acc {
                Some(a) => (a + t)?,
                None => t,
            });
        }
        acc.ok_or_else(|| Error::InvalidInput("no branch logits to fuse".into()))
    };
    match how {
        MlaFusion::Mean => {
            let w = (0..mm)
                .map(|_| Tensor::new(1.0 / mm as f64, logits[0].device())?.to_dtype(logits[0].dtype()))
                .collect::<candle_core::Result<Vec<_>>>()?;
            weighted(w)
        }
        MlaFusion::EntropySample => {
            let h = logits.iter().map(|l| entropy(l, 1)).collect::<Result<Vec<_>>>()?; // [B] each
            let w = entropy_weights(&h)?.iter().map(|w| w.unsqueeze(1)).collect::<candle_core::Result<Vec<_>>>()?;
            weighted(w)
        }
        MlaFusion::EntropyBatch => {
            let h = logits.iter().map(|l| entropy(l, 0)?.sum_all().map_err(Error::from)).collect::<Result<Vec<_>>>()?; // scalar each
            weighted(entropy_weights(&h)?)
        }
    }
}

/// w_m = softmax_m(−H_m) from the entropies H_m (tensors of one shape), one weight tensor per
/// modality.
fn entropy_weights(h: &[Tensor]) -> Result<Vec<Tensor>> {
    let w = candle_nn::ops::softmax(&Tensor::stack(h, 0)?.neg()?, 0)?;
    Ok((0..h.len()).map(|m| w.get(m)).collect::<candle_core::Result<Vec<_>>>()?)
}

/// MLA.
#[derive(Debug)]
pub struct Mla {
    pub cfg: MlaConfig,
    /// Row-major projection matrix (`None` until the first projection).
    projection: Option<Vec<f64>>,
    /// Half-steps taken so far (the official `exp_count`).
    half_steps: u64,
    /// The weight the projection acts on (masked-head: found in the model; official: the shared
    /// head's).
    head: Option<HeadWeight>,
    /// The official variant's shared head `mla.fc_out.0` (created on the first step).
    shared: LinearHeads,
}

impl Mla {
    pub fn new(cfg: MlaConfig, num_classes: usize, seed: u64) -> Self {
        let shared = LinearHeads::new("mla.fc_out", num_classes, HeadInit::XavierNormal, seed);
        Self { cfg, projection: None, half_steps: 0, head: None, shared }
    }

    /// The current projection matrix (row-major, D×D) if one exists.
    pub fn projection(&self) -> Option<&[f64]> {
        self.projection.as_deref()
    }

    /// Creates the official shared head `Linear(d, K)` on first use; every z_m must have size d.
    fn ensure_shared(&mut self, z: &[Tensor]) -> Result<()> {
        let dims = vector_dims(z, "mla.variant = \"official\"")?;
        if dims.iter().any(|&d| d != dims[0]) {
            return Err(Error::InvalidInput(format!(
                "`mla.variant = \"official\"` applies one Linear(d, K) head to every modality, so every z_m \
                 needs the same size d; the sizes are {dims:?}: give the encoders one output size or use \
                 mla.variant = \"masked-head\""
            )));
        }
        self.shared.ensure(&dims[..1], z[0].dtype(), z[0].device())?;
        if self.head.is_none() {
            let name = self.shared.params()[0].name.clone();
            self.head = Some(HeadWeight { name, layout: WeightLayout::OutIn, dims: vec![dims[0]] });
        }
        Ok(())
    }

    /// The logits of modality `m`'s half-step.
    fn branch(&self, model: &dyn MultimodalModel, z: &[Tensor], m: usize, train: bool) -> Result<Tensor> {
        match self.cfg.variant {
            MlaVariant::Official => self.shared.logits(0, &z[m]),
            MlaVariant::MaskedHead => Ok(model.fuse_only(z, m, train)?),
        }
    }

    /// Updates P with the feature mean of modality `m` (masked to its block in the masked-head
    /// variant) and projects the head weight gradient (no-op at the first half-step ever and with
    /// `Off`).
    fn project(
        &mut self,
        model: &dyn MultimodalModel,
        grads: &mut ParamGrads,
        z_m: &Tensor,
        m: usize,
        alpha_t: f64,
    ) -> Result<()> {
        let mode = self.cfg.projection();
        if mode == MlaProjection::Off {
            return Ok(());
        }
        if self.head.is_none() {
            self.head = Some(find_head_weight(model)?);
        }
        let head = self.head.as_ref().expect("set above");
        let d = head.input_dim();
        if self.half_steps == 0 {
            return Ok(());
        }
        // Official: one block (the shared head's input); masked-head: modality m's block.
        let block = if head.dims.len() == 1 { 0 } else { m };
        let off: usize = head.dims[..block].iter().sum();
        let mean = batch_mean(z_m)?;
        if mean.len() != head.dims[block] {
            return Err(Error::InvalidInput(format!(
                "MLA: z_{m} has {} features, the head block {}",
                mean.len(),
                head.dims[block]
            )));
        }
        let mut r = vec![0f64; d];
        r[off..off + mean.len()].copy_from_slice(&mean);
        let p = self.projection.get_or_insert_with(|| {
            let mut i = vec![0f64; d * d];
            for j in 0..d {
                i[j * d + j] = 1.0;
            }
            i
        });
        if p.len() != d * d {
            return Err(Error::InvalidInput(format!(
                "MLA: projection state is {} values for a {d}-dimensional head input",
                p.len()
            )));
        }
        update_projection(p, &r, alpha_t);
        let p = p.clone();
        let (name, layout) = (head.name.clone(), head.layout);
        grads.map(|e| {
            if e.name != name {
                return Ok(e.grad.clone());
            }
            let pt = upload(p.clone(), &[d, d], e.grad.dtype(), e.grad.device())
                .map_err(|x| candle_core::Error::Msg(x.to_string()))?;
            let projected = match layout {
                WeightLayout::OutIn => e.grad.matmul(&pt.t()?)?,
                WeightLayout::InOut => pt.matmul(&e.grad)?,
            };
            match mode {
                MlaProjection::Add => &e.grad + projected,
                _ => Ok(projected),
            }
        })?;
        Ok(())
    }
}

/// The gradients of `loss` on `groups`, with PyTorch 1.8's `zero_grad()` semantics: every
/// parameter in `touched` (one that had a gradient earlier in this batch) but without a gradient
/// from `loss` gets a zero gradient, so the optimizer still applies momentum and weight decay to
/// it; `touched` then grows by the parameters that received one.
pub fn grads_keeping_zeroed(
    loss: &Tensor,
    groups: &[dgl_core::ParamGroup],
    touched: &mut Vec<NamedVar>,
) -> Result<ParamGrads> {
    let mut store = loss.backward()?;
    for p in touched.iter() {
        let t = p.var.as_tensor();
        if store.get(t).is_none() {
            store.insert(t, t.zeros_like()?);
        }
    }
    for g in groups {
        for p in &g.params {
            if store.get(p.var.as_tensor()).is_some() && !touched.iter().any(|q| q.var.id() == p.var.id()) {
                touched.push(p.clone());
            }
        }
    }
    Ok(ParamGrads::from_store(&store, groups, |_| true))
}

impl Method for Mla {
    fn name(&self) -> String {
        MlaConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        MlaConfig::DESCRIPTOR.check_modalities(model.num_modalities())?;
        if self.cfg.variant == MlaVariant::MaskedHead && self.cfg.projection() != MlaProjection::Off {
            find_head_weight(model)?;
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let model = ctx.model;
        let z = model.encode_all(inputs, true)?;
        let official = self.cfg.variant == MlaVariant::Official;
        if official {
            self.ensure_shared(&z)?;
        }
        let groups = self.shared.groups_with(model);
        let names = model.modality_names();
        let alpha_t = projection_alpha(ctx.step_in_epoch, ctx.steps_per_epoch);
        let mut losses = Vec::new();
        let mut branches = Vec::new();
        let mut scalars = Vec::new();
        let mut grad_norm = 0f64;
        // Official: the parameters holding a (possibly zeroed) gradient since the batch started.
        let mut touched = Vec::new();
        for m in 0..model.num_modalities() {
            // After the previous half-step's update: the head is the new one.
            let logits = self.branch(model, &z, m, true)?;
            let loss = ctx.loss.loss(&logits, targets)?;
            let l = vec![(format!("loss_{}", names[m]), scalar(&loss)?)];
            check_losses(&l, ctx)?;
            let mut grads =
                if official { grads_keeping_zeroed(&loss, &groups, &mut touched)? } else { all_grads(model, &loss)? };
            self.project(model, &mut grads, &z[m].detach(), m, alpha_t)?;
            self.half_steps += 1;
            let n = ctx.apply(&mut grads)?;
            grad_norm = grad_norm.max(n);
            scalars.push((format!("grad_norm_{}", names[m]), n));
            losses.extend(l);
            branches.push(logits.detach());
        }
        let logits_mm = fuse_branches(&branches, self.cfg.fusion())?;
        Ok(StepReport {
            losses,
            logits_mm: Some(logits_mm),
            logits_branches: names.into_iter().zip(branches).collect(),
            z: detach_all(&z),
            grad_norm,
            scalars,
        })
    }

    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        let z = detach_all(&model.encode_all(inputs, false)?);
        let branches = (0..model.num_modalities())
            .map(|m| self.branch(model, &z, m, false).map(|t| t.detach()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Prediction {
            multimodal: fuse_branches(&branches, self.cfg.fusion())?,
            branches: model.modality_names().into_iter().zip(branches).collect(),
        })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = vec![("mla.half_steps".to_string(), f64_tensor(&[self.half_steps as f64])?)];
        if let Some(p) = &self.projection {
            let d = (p.len() as f64).sqrt().round() as usize;
            v.push(("mla.projection".into(), f64_tensor(p)?.reshape((d, d))?));
        }
        v.extend(self.shared.state()?);
        Ok(v)
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(v) = state_f64(state, "mla.half_steps", 1)? {
            self.half_steps = v[0] as u64;
        }
        if let Some(t) = find_state(state, "mla.projection") {
            self.projection = Some(host_f64(&t.to_dtype(DType::F64)?)?);
        }
        self.shared.load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use candle_core::Device;
    use dgl_core::loss::{CrossEntropy, Loss};

    #[test]
    fn projection_update_by_hand() {
        // P = I₂, r = (1, 0): k = (1, 0), P = diag(α/(α+1), 1)/‖·‖_F.
        let a = 0.1;
        let mut p = vec![1.0, 0.0, 0.0, 1.0];
        update_projection(&mut p, &[1.0, 0.0], a);
        let d0 = a / (a + 1.0);
        let fro = (d0 * d0 + 1.0f64).sqrt();
        assert_close(&p, &[d0 / fro, 0.0, 0.0, 1.0 / fro], 1e-15, "P");
        assert!((projection_alpha(0, 10) - 0.1).abs() < 1e-15);
        assert!((projection_alpha(5, 10) - 0.1f64.powf(1.5)).abs() < 1e-15);
    }

    /// With a small α the projected gradient g Pᵀ is orthogonal to every previous feature mean.
    #[test]
    fn projected_gradient_is_orthogonal_to_previous_means() {
        let d = 6;
        let mut rng = dgl_core::rng::Rng::new(3);
        let mut p: Vec<f64> = (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let rs: Vec<Vec<f64>> = (0..3).map(|_| (0..d).map(|_| rng.normal()).collect()).collect();
        for r in &rs {
            update_projection(&mut p, r, 1e-9);
        }
        let g: Vec<f64> = (0..4 * d).map(|_| rng.normal()).collect(); // [K=4, D]
        let gp = Tensor::from_vec(g.clone(), (4, d), &Device::Cpu)
            .unwrap()
            .matmul(&Tensor::from_vec(p.clone(), (d, d), &Device::Cpu).unwrap().t().unwrap())
            .unwrap();
        let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        for r in &rs {
            let rt = Tensor::from_vec(r.clone(), (d, 1), &Device::Cpu).unwrap();
            let dot = vec(&gp.matmul(&rt).unwrap());
            let rn = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            for x in dot {
                assert!(x.abs() < 1e-6 * gnorm * rn, "g Pᵀ r = {x}");
            }
        }
        // …while a direction orthogonal to all of them passes through (up to the 1/‖P‖_F scale).
        let fro = p.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((fro - 1.0).abs() < 1e-12);
    }

    #[test]
    fn finds_the_head_weight_in_both_layouts() {
        let m = Toy::new(&[3, 2], 4, 3, 1);
        let h = find_head_weight(&m).unwrap();
        assert_eq!((h.name.as_str(), h.layout, h.input_dim()), ("head.weight", WeightLayout::OutIn, 8));
        let m = Toy::build(&[3, 2], 4, 3, 1, false, true);
        assert_eq!(find_head_weight(&m).unwrap().layout, WeightLayout::InOut);
    }

    /// Two half-steps: the first (first ever) unprojected, the second on the updated head with
    /// grad_W Pᵀ, P from the masked visual feature mean and α_t = 0.1.
    #[test]
    fn half_steps_match_a_manual_replay() {
        for transposed in [false, true] {
            let model = Toy::build(&[3, 2], 4, 3, 11, false, transposed);
            let twin = Toy::build(&[3, 2], 4, 3, 11, false, transposed);
            let x = model.inputs(5, 12);
            let y = targets(5, 3);
            let masked = MlaConfig { variant: MlaVariant::MaskedHead, ..Default::default() };
            let mut mla = Mla::new(masked.clone(), 3, 0);
            let mut sgd = plain_sgd(0.5);
            step(&mut mla, &model, &mut sgd, 0, &x, &y);

            let mut sgd2 = plain_sgd(0.5);
            let z = twin.encode_all(&x, true).unwrap();
            let l0 = CrossEntropy.loss(&twin.fuse_only(&z, 0, true).unwrap(), &y).unwrap();
            let g0 = all_grads(&twin, &l0).unwrap();
            sgd2.step(&g0).unwrap();
            let l1 = CrossEntropy.loss(&twin.fuse_only(&z, 1, true).unwrap(), &y).unwrap();
            let mut g1 = all_grads(&twin, &l1).unwrap();
            let mut p: Vec<f64> = (0..64).map(|i| if i % 9 == 0 { 1.0 } else { 0.0 }).collect();
            let mut r = vec![0.0; 4];
            r.extend(batch_mean(&z[1]).unwrap());
            update_projection(&mut p, &r, 0.1);
            let pt = Tensor::from_vec(p.clone(), (8, 8), &Device::Cpu).unwrap();
            g1.map(|e| {
                if e.name != "head.weight" {
                    Ok(e.grad.clone())
                } else if transposed {
                    pt.matmul(&e.grad)
                } else {
                    e.grad.matmul(&pt.t()?)
                }
            })
            .unwrap();
            sgd2.step(&g1).unwrap();
            for ((n, a), (_, b)) in values(&model).iter().zip(values(&twin)) {
                assert_close(a, &b, 1e-10, n);
            }
            assert_close(mla.projection().unwrap(), &p, 1e-12, "stored P");
            // State round trip.
            let mut other = Mla::new(masked, 3, 0);
            other.load_state(&mla.state().unwrap()).unwrap();
            assert_eq!(other.half_steps, 2);
            assert_close(other.projection().unwrap(), &p, 0.0, "P state");
        }
    }

    #[test]
    fn fusion_rules() {
        let dev = Device::Cpu;
        // Sample 0: branch a confident, b uniform; sample 1 the reverse.
        let a = Tensor::new(&[[4.0f64, 0.0], [0.0, 0.0]], &dev).unwrap();
        let b = Tensor::new(&[[0.0f64, 0.0], [0.0, 3.0]], &dev).unwrap();
        let h = |l: [f64; 2]| {
            let p = crate::util::softmax_rows(&l, 2);
            -p.iter().map(|p| p * p.ln()).sum::<f64>()
        };
        let fused = vec(&fuse_branches(&[a.clone(), b.clone()], MlaFusion::EntropySample).unwrap());
        let (ha0, hb0) = (h([4.0, 0.0]), h([0.0, 0.0]));
        let wa0 = (-ha0).exp() / ((-ha0).exp() + (-hb0).exp());
        assert!((fused[0] - wa0 * 4.0).abs() < 1e-12);
        let (ha1, hb1) = (h([0.0, 0.0]), h([0.0, 3.0]));
        let wb1 = (-hb1).exp() / ((-ha1).exp() + (-hb1).exp());
        assert!((fused[3] - wb1 * 3.0).abs() < 1e-12);
        let mean = vec(&fuse_branches(&[a.clone(), b.clone()], MlaFusion::Mean).unwrap());
        assert_close(&mean, &[2.0, 0.0, 0.0, 1.5], 1e-15, "mean");
        // Batch rule: softmax over the batch dimension, one weight per modality.
        let hb = |l: &Tensor| {
            let p = candle_nn::ops::softmax(l, 0).unwrap();
            -vec(&(&p * p.log().unwrap()).unwrap()).iter().sum::<f64>()
        };
        let (ea, eb) = (hb(&a), hb(&b));
        let wa = (-ea).exp() / ((-ea).exp() + (-eb).exp());
        let got = vec(&fuse_branches(&[a, b], MlaFusion::EntropyBatch).unwrap());
        assert!((got[0] - wa * 4.0).abs() < 1e-12);
        assert!((got[3] - (1.0 - wa) * 3.0).abs() < 1e-12);
    }

    /// A host re-statement of the official MLA update for the toy model (encoder
    /// z_m = tanh(x_m W_mᵀ + b_m), shared head W z + b): gradients by hand, and the SGD step of
    /// torch 1.8 with `zeroed` = `zero_grad()` leaving zero gradients (official) or setting `None`.
    fn official_replay(
        params: &mut std::collections::BTreeMap<String, Vec<f64>>,
        batches: &[(Vec<Vec<f64>>, Vec<usize>)],
        dims: (&[usize], usize, usize),
        (lr, mu, wd): (f64, f64, f64),
        zeroed: bool,
    ) {
        let (inp, d, k) = dims;
        let mut bufs: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        let mut sgd = |name: &str, p: &mut Vec<f64>, g: &[f64]| {
            let dp: Vec<f64> = g.iter().zip(p.iter()).map(|(g, p)| g + wd * p).collect();
            let buf = match bufs.get(name) {
                Some(b) => b.iter().zip(&dp).map(|(b, d)| mu * b + d).collect(),
                None => dp,
            };
            p.iter_mut().zip(&buf).for_each(|(p, b)| *p -= lr * b);
            bufs.insert(name.to_string(), buf);
        };
        for (x, y) in batches {
            let b = y.len();
            // One forward of both encoders at the start of the batch.
            let z: Vec<Vec<f64>> = (0..2)
                .map(|m| {
                    let (w, bias) = (&params[&format!("enc{m}.weight")], &params[&format!("enc{m}.bias")]);
                    let mut out = vec![0.0; b * d];
                    for i in 0..b {
                        for j in 0..d {
                            let pre: f64 =
                                (0..inp[m]).map(|c| x[m][i * inp[m] + c] * w[j * inp[m] + c]).sum::<f64>() + bias[j];
                            out[i * d + j] = pre.tanh();
                        }
                    }
                    out
                })
                .collect();
            let mut touched: Vec<String> = Vec::new();
            for m in 0..2 {
                let (hw, hb) = (params["mla.fc_out.0.weight"].clone(), params["mla.fc_out.0.bias"].clone());
                // dL/dlogits = (softmax − onehot)/B.
                let mut dl = vec![0.0; b * k];
                for i in 0..b {
                    let lg: Vec<f64> =
                        (0..k).map(|c| (0..d).map(|j| z[m][i * d + j] * hw[c * d + j]).sum::<f64>() + hb[c]).collect();
                    let p = crate::util::softmax_rows(&lg, k);
                    for c in 0..k {
                        dl[i * k + c] = (p[c] - if c == y[i] { 1.0 } else { 0.0 }) / b as f64;
                    }
                }
                let mut g: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
                g.insert(
                    "mla.fc_out.0.weight".into(),
                    (0..k * d).map(|cj| (0..b).map(|i| dl[i * k + cj / d] * z[m][i * d + cj % d]).sum()).collect(),
                );
                g.insert("mla.fc_out.0.bias".into(), (0..k).map(|c| (0..b).map(|i| dl[i * k + c]).sum()).collect());
                let dpre: Vec<f64> = (0..b * d)
                    .map(|ij| {
                        let (i, j) = (ij / d, ij % d);
                        let dz: f64 = (0..k).map(|c| dl[i * k + c] * hw[c * d + j]).sum();
                        dz * (1.0 - z[m][ij] * z[m][ij])
                    })
                    .collect();
                g.insert(
                    format!("enc{m}.weight"),
                    (0..d * inp[m])
                        .map(|jc| (0..b).map(|i| dpre[i * d + jc / inp[m]] * x[m][i * inp[m] + jc % inp[m]]).sum())
                        .collect(),
                );
                g.insert(format!("enc{m}.bias"), (0..d).map(|j| (0..b).map(|i| dpre[i * d + j]).sum()).collect());
                if zeroed {
                    for n in &touched {
                        g.entry(n.clone()).or_insert_with(|| vec![0.0; params[n].len()]);
                    }
                }
                for (n, gv) in &g {
                    sgd(n, params.get_mut(n).unwrap(), gv);
                    if !touched.contains(n) {
                        touched.push(n.clone());
                    }
                }
            }
        }
    }

    /// The official variant over two batches equals the host re-statement with torch 1.8's zeroed
    /// gradients: in half-step 2 the audio encoder still moves by momentum and weight decay (and
    /// the result differs from `set_to_none` semantics); the visual encoder does not move in
    /// half-step 1.
    #[test]
    fn official_half_steps_match_a_scalar_restatement() {
        let model = Toy::new(&[3, 2], 4, 3, 31);
        let data: Vec<(Vec<Tensor>, Tensor)> = (0..2).map(|i| (model.inputs(5, 40 + i), targets(5, 3))).collect();
        let mut mla = Mla::new(MlaConfig::default(), 3, 7);
        assert_eq!((mla.cfg.projection(), mla.cfg.fusion()), (MlaProjection::Off, MlaFusion::Mean));
        mla.ensure_shared(&model.encode_all(&data[0].0, false).unwrap()).unwrap();
        let mut params: std::collections::BTreeMap<String, Vec<f64>> = values(&model).into_iter().collect();
        for (n, t) in mla.state().unwrap() {
            if n.starts_with("mla.fc_out.") {
                params.insert(n, vec(&t));
            }
        }
        let host: Vec<(Vec<Vec<f64>>, Vec<usize>)> =
            data.iter().map(|(x, y)| (x.iter().map(vec).collect(), crate::util::host_targets(y).unwrap())).collect();
        let hp = (0.3, 0.9, 0.05);
        let mut sgd: dgl_core::Optimizer = dgl_core::Sgd::new(dgl_core::SgdConfig {
            lr: hp.0,
            momentum: hp.1,
            dampening: 0.0,
            weight_decay: hp.2,
            nesterov: false,
        })
        .unwrap()
        .into();
        // Half-step 1 of the first batch leaves the visual encoder untouched.
        let v0 = values(&model);
        let mut mla1 = Mla::new(MlaConfig::default(), 3, 7);
        let one = Toy::new(&[3, 2], 4, 3, 31);
        mla1.ensure_shared(&one.encode_all(&data[0].0, false).unwrap()).unwrap();
        for (x, y) in &data {
            step(&mut mla, &model, &mut sgd, 0, x, y);
        }
        let mut want = params.clone();
        official_replay(&mut want, &host, (&[3, 2], 4, 3), hp, true);
        let mut got: std::collections::BTreeMap<String, Vec<f64>> = values(&model).into_iter().collect();
        for (n, t) in mla.state().unwrap() {
            if n.starts_with("mla.fc_out.") {
                got.insert(n, vec(&t));
            }
        }
        for (n, w) in &want {
            assert_close(&got[n], w, 1e-10, n);
        }
        // The model's own head is not used by the official variant.
        assert_eq!(got["head.weight"], params["head.weight"]);
        // Without the zeroed gradients (set_to_none semantics) the audio encoder ends elsewhere.
        let mut none = params.clone();
        official_replay(&mut none, &host, (&[3, 2], 4, 3), hp, false);
        let diff = got["enc0.weight"].iter().zip(&none["enc0.weight"]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff > 1e-4, "momentum/weight decay on the zeroed gradient must move the audio encoder ({diff})");
        // One half-step by hand: only the audio encoder and the head move.
        let l = CrossEntropy
            .loss(&mla1.shared.logits(0, &one.encode_all(&data[0].0, true).unwrap()[0]).unwrap(), &data[0].1)
            .unwrap();
        let mut touched = Vec::new();
        let mut g = grads_keeping_zeroed(&l, &mla1.shared.groups_with(&one), &mut touched).unwrap();
        assert!(g.get("enc1.weight").is_none() && g.get("head.weight").is_none());
        let mut sgd1: dgl_core::Optimizer = dgl_core::Sgd::new(dgl_core::SgdConfig::default()).unwrap().into();
        sgd1.step(&g).unwrap();
        let after = values(&one);
        assert_eq!(
            after.iter().find(|(n, _)| n == "enc1.weight").unwrap(),
            v0.iter().find(|(n, _)| n == "enc1.weight").unwrap()
        );
        // The next half-step: the audio encoder now carries a zero gradient.
        let l = CrossEntropy
            .loss(&mla1.shared.logits(0, &one.encode_all(&data[0].0, true).unwrap()[1]).unwrap(), &data[0].1)
            .unwrap();
        g = grads_keeping_zeroed(&l, &mla1.shared.groups_with(&one), &mut touched).unwrap();
        assert_eq!(vec(g.get("enc0.weight").unwrap()), vec![0.0; 12]);
        assert!(g.get("enc1.weight").is_some());
    }

    /// Official prediction: the fixed mean of the shared head's logits; encoders of different sizes
    /// are refused with the switch named.
    #[test]
    fn official_prediction_and_size_check() {
        let model = Toy::new(&[3, 2], 4, 3, 5);
        let x = model.inputs(4, 6);
        let mut mla = Mla::new(MlaConfig::default(), 3, 1);
        let mut sgd = plain_sgd(0.1);
        step(&mut mla, &model, &mut sgd, 0, &x, &targets(4, 3));
        let p = mla.predict(&model, &x).unwrap();
        let z = model.encode_all(&x, false).unwrap();
        let (a, v) = (mla.shared.logits(0, &z[0]).unwrap(), mla.shared.logits(0, &z[1]).unwrap());
        assert_close(&vec(&p.multimodal), &vec(&((a + v).unwrap() * 0.5).unwrap()), 1e-12, "0.5/0.5");
        let mut other = Mla::new(MlaConfig::default(), 3, 9);
        other.load_state(&mla.state().unwrap()).unwrap();
        assert_close(&vec(&other.predict(&model, &x).unwrap().multimodal), &vec(&p.multimodal), 0.0, "state");
        // Unequal sizes: a clear error.
        let odd = Toy::new(&[3, 2], 4, 3, 5);
        let z = vec![
            odd.encode_all(&x, false).unwrap()[0].clone(),
            Tensor::zeros((4, 6), DType::F64, &Device::Cpu).unwrap(),
        ];
        let e = Mla::new(MlaConfig::default(), 3, 1).ensure_shared(&z).unwrap_err().to_string();
        assert!(e.contains("[4, 6]") && e.contains("masked-head"), "{e}");
    }
}
