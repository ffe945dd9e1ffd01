//! MLA, Multimodal Learning with Alternating unimodal adaptation (Zhang et al., CVPR 2024),
//! `MLA/main.py:419-477, 622-651`, `utils/utils.py:12-41`.
//!
//! One forward of every encoder, then for m = 0, 1, …, M−1 a *half-step*: L_m = CE(h(0, …, z_m, …, 0))
//! through the one shared head (the zero-masked shared head stands for MLA's 512→K head applied
//! to each modality; with a concat head each modality meets its own block W_m and the shared bias),
//! backward, projection of the head weight gradient, `ctx.apply` (clip + SGD step: the momentum
//! buffers are shared across half-steps). Half-step m+1 uses the head just updated by half-step m.
//!
//! Gradient projection (orthogonal weight modification), in the head's input space R^D
//! (D = Σ d_m; the modality's features enter as the masked vector [0, …, z_m, …, 0]):
//! P₀ = I; at every half-step except the very first of the run, with r the batch mean of the
//! masked features and α_t = 0.1^(1 + batch_idx/len_loader):
//! k = P rᵀ, P ← P − k kᵀ/(α_t + r k), P ← P/‖P‖_F, grad_W ← grad_W Pᵀ.
//! The official code never applies it (it tests `n == "module.weight"` on names `weight`/`bias`);
//! [`MlaProjection::Off`] reproduces that, [`MlaProjection::Add`] BalanceBenchmark's
//! `grad += grad·Pᵀ`.
//!
//! Test-time fusion: Σ_m w_m·h(0, …, z_m, …, 0) with w = softmax_m(−H_m), H_m the entropy of
//! modality m's prediction: per sample (paper intent, default), or the official per-batch value
//! (softmax over the *batch* dimension, summed over the batch), or the fixed mean.

use candle_core::{DType, Tensor};
use dgl_core::grads::ParamGrads;
use dgl_core::model::detach_all;
use dgl_core::{Error, Method, MultimodalModel, Prediction, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::util::{
    all_grads, batch_mean, check_losses, entropy, f64_tensor, find_state, host_f64, require_multimodal, scalar,
    state_f64, upload,
};

/// What happens to the head weight gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlaProjection {
    /// grad_W ← grad_W Pᵀ (the method as written; default).
    #[default]
    Replace,
    /// grad_W ← grad_W + grad_W Pᵀ (BalanceBenchmark).
    Add,
    /// No projection (what the official code effectively does).
    Off,
}

/// Test-time fusion of the per-modality logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlaFusion {
    /// Per-sample entropy weights (paper intent; default).
    #[default]
    EntropySample,
    /// One weight per modality per batch from the batch-dimension softmax (official `--dynamic`).
    EntropyBatch,
    /// Equal weights 1/M (official without `--dynamic`).
    Mean,
}

/// MLA options (MLA has no α).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlaConfig {
    pub projection: MlaProjection,
    pub fusion: MlaFusion,
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
#[derive(Clone, Debug)]
pub struct Mla {
    pub cfg: MlaConfig,
    /// Row-major projection matrix (`None` until the first projection).
    projection: Option<Vec<f64>>,
    /// Half-steps taken so far (the official `exp_count`).
    half_steps: u64,
    head: Option<HeadWeight>,
}

impl Mla {
    pub fn new(cfg: MlaConfig) -> Self {
        Self { cfg, projection: None, half_steps: 0, head: None }
    }

    /// The current projection matrix (row-major, D×D) if one exists.
    pub fn projection(&self) -> Option<&[f64]> {
        self.projection.as_deref()
    }

    /// Updates P with the masked feature mean of modality `m` and projects the head weight
    /// gradient (no-op at the first half-step ever and with `Off`).
    fn project(
        &mut self,
        model: &dyn MultimodalModel,
        grads: &mut ParamGrads,
        z_m: &Tensor,
        m: usize,
        alpha_t: f64,
    ) -> Result<()> {
        if self.cfg.projection == MlaProjection::Off {
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
        let off: usize = head.dims[..m].iter().sum();
        let mean = batch_mean(z_m)?;
        if mean.len() != head.dims[m] {
            return Err(Error::InvalidInput(format!(
                "MLA: z_{m} has {} features, the head block {}",
                mean.len(),
                head.dims[m]
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
        let (name, layout, mode) = (head.name.clone(), head.layout, self.cfg.projection);
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

impl Method for Mla {
    fn name(&self) -> String {
        "mla".into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        require_multimodal(model, "mla")?;
        if self.cfg.projection != MlaProjection::Off {
            find_head_weight(model)?;
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let model = ctx.model;
        let z = model.encode_all(inputs, true)?;
        let names = model.modality_names();
        let alpha_t = projection_alpha(ctx.step_in_epoch, ctx.steps_per_epoch);
        let mut losses = Vec::new();
        let mut branches = Vec::new();
        let mut scalars = Vec::new();
        let mut grad_norm = 0f64;
        for m in 0..model.num_modalities() {
            // After the previous half-step's update: the head is the new one.
            let logits = model.fuse_only(&z, m, true)?;
            let loss = ctx.loss.loss(&logits, targets)?;
            let l = vec![(format!("loss_{}", names[m]), scalar(&loss)?)];
            check_losses(&l, ctx)?;
            let mut grads = all_grads(model, &loss)?;
            self.project(model, &mut grads, &z[m].detach(), m, alpha_t)?;
            self.half_steps += 1;
            let n = ctx.apply(&mut grads)?;
            grad_norm = grad_norm.max(n);
            scalars.push((format!("grad_norm_{}", names[m]), n));
            losses.extend(l);
            branches.push(logits.detach());
        }
        let logits_mm = fuse_branches(&branches, self.cfg.fusion)?;
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
            .map(|m| model.fuse_only(&z, m, false).map(|t| t.detach()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Prediction {
            multimodal: fuse_branches(&branches, self.cfg.fusion)?,
            branches: model.modality_names().into_iter().zip(branches).collect(),
        })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = vec![("mla.half_steps".to_string(), f64_tensor(&[self.half_steps as f64])?)];
        if let Some(p) = &self.projection {
            let d = (p.len() as f64).sqrt().round() as usize;
            v.push(("mla.projection".into(), f64_tensor(p)?.reshape((d, d))?));
        }
        Ok(v)
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(v) = state_f64(state, "mla.half_steps", 1)? {
            self.half_steps = v[0] as u64;
        }
        if let Some(t) = find_state(state, "mla.projection") {
            self.projection = Some(host_f64(&t.to_dtype(DType::F64)?)?);
        }
        Ok(())
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
            let mut mla = Mla::new(MlaConfig::default());
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
            let mut other = Mla::new(MlaConfig::default());
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
}
