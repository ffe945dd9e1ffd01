//! MMPareto (Wei & Hu, ICML 2024), `MMPareto_ICML2024/code/MMPareto.py:113-209`,
//! `min_norm_solvers.py`.
//!
//! Losses L_mm = CE(h(z)), L_m = CE(unimodal logits of m). Per step, separate backward passes give
//! g_mm (of L_mm) and g_m (of L_m) on every parameter. For each encoder m (over all its parameter
//! tensors flattened together):
//!
//! * cos(g_mm, g_m) > 0 ⇒ (k_mm, k_m) = (½, ½); otherwise the 2-task MGDA min-norm weights: with
//!   v11 = ‖g_mm‖², v12 = g_mm·g_m, v22 = ‖g_m‖²: γ = 0.999 if v12 ≥ v11, 0.001 if v12 ≥ v22, else
//!   γ = (v22 − v12)/(v11 + v22 − 2 v12); (k_mm, k_m) = (γ, 1 − γ);
//! * per parameter tensor *separately*: n3 = ‖g_mm + g_m‖, g_new = 2k_mm g_mm + 2k_m g_m;
//!   g = (n3/‖g_new‖)·γ_mag·g_new when n3/‖g_new‖ > 1, else γ_mag·g_new (γ_mag = α, official 1.5).
//!
//! Every other parameter (fusion/head, unimodal heads) keeps the plain gradient of
//! L_mm + Σ_m L_m. The official code takes a 4th backward of the sum; summing the per-loss
//! gradients is the same. Unimodal logits: separate `Linear(d_m, K)` heads owned by the method
//! (default; the official model's `head_audio` / `head_video`, [`UnimodalHeads::Separate`]) or the
//! zero-masked shared head h(0, …, z_m, …, 0) (the DGL paper's remark for its baselines; dense fusion;
//! [`UnimodalHeads::SharedMasked`]). With separate heads the model's head receives only ∇L_mm and
//! head m only ∇L_m; with masking the shared head receives ∇L_mm + Σ_m ∇L_m.

use candle_core::Tensor;
use dgl_core::grads::ParamGrads;
use dgl_core::model::{detach_all, GroupKind};
use dgl_core::{Method, MultimodalModel, Prediction, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
pub use crate::heads::UnimodalHeads;
use crate::heads::{HeadInit, LinearHeads, UnimodalBranches};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, ModelFacts, TaskKind};
use crate::util::{check_hp, check_losses, scalar};

/// MMPareto's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmParetoConfig {
    /// γ_mag, the magnitude factor of the integrated encoder gradient (official: 1.5, hard-coded).
    pub gamma_mag: f64,
    pub unimodal_heads: UnimodalHeads,
}

impl Default for MmParetoConfig {
    fn default() -> Self {
        Self { gamma_mag: 1.5, unimodal_heads: UnimodalHeads::default() }
    }
}

impl MethodSpec for MmParetoConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "mmpareto",
        label: "MMPareto",
        summary: "Pareto (min-norm) integration of the per-loss encoder gradients",
        modalities: ModalityCount::AtLeast(2),
        heads: HeadSupport::Any,
        // Its losses are the task's (per-pixel with shared-masked heads: Table 5's extra rows).
        tasks: &[TaskKind::Classification, TaskKind::DenseLabels],
        needs_validation: false,
    };

    fn validate(&self) -> Result<()> {
        let g = self.gamma_mag;
        check_hp(g.is_finite() && g > 0.0, "gamma_mag", g, "must be finite and > 0")
    }

    fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
        Self::DESCRIPTOR.check_facts(model)?;
        crate::heads::check_heads_fit(Self::DESCRIPTOR.name, self.unimodal_heads, model)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(MmPareto::new(self.clone(), ctx.num_classes, ctx.seed)))
    }

    fn official_settings(_bench: Option<Benchmark>) -> Vec<Setting> {
        vec![Setting::new("method.gamma_mag", 1.5, "MMPareto `MMPareto.py` (γ_mag = 1.5 hard-coded, every dataset)")]
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        Schedule::new(2e-3, &[], "MMPareto `MMPareto.py` (lr 2e-3; StepLR created but never stepped: constant)")
    }
}

/// The 2-task min-norm solution (`MinNormSolver._min_norm_element_from2`): γ on the first vector.
pub fn min_norm_2(v11: f64, v12: f64, v22: f64) -> f64 {
    if v12 >= v11 {
        0.999
    } else if v12 >= v22 {
        0.001
    } else {
        (v22 - v12) / (v11 + v22 - 2.0 * v12)
    }
}

/// (k_mm, k_m) and the cosine from the flattened-gradient dot products.
pub fn pareto_weights(v11: f64, v12: f64, v22: f64) -> (f64, f64, f64) {
    let cos = v12 / (v11.sqrt() * v22.sqrt()).max(1e-8);
    if cos > 0.0 {
        (0.5, 0.5, cos)
    } else {
        let g = min_norm_2(v11, v12, v22);
        (g, 1.0 - g, cos)
    }
}

/// The per-tensor rescaled gradient from g_mm, g_m of one parameter.
pub fn rescale(g_mm: &Tensor, g_m: &Tensor, k: (f64, f64), gamma: f64) -> Result<Tensor> {
    let n3 = scalar(&(g_mm + g_m)?.sqr()?.sum_all()?)?.sqrt();
    let new = ((g_mm * (2.0 * k.0))? + (g_m * (2.0 * k.1))?)?;
    let nn = scalar(&new.sqr()?.sum_all()?)?.sqrt();
    // The official n3/‖g_new‖ is 0/0 or x/0 when g_new vanishes; the result is then 0.
    let factor = if nn > 0.0 && n3 / nn > 1.0 { n3 / nn * gamma } else { gamma };
    Ok((new * factor)?)
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    scalar(&(a * b)?.sum_all()?)
}

/// MMPareto.
#[derive(Debug)]
pub struct MmPareto {
    /// γ_mag.
    pub gamma: f64,
    pub cfg: MmParetoConfig,
    pub num_classes: usize,
    /// The unimodal branches; separate heads `mmpareto.head.<m>` (PyTorch default init: the official
    /// model has no `weight_init`) are created on the first step.
    heads: UnimodalBranches,
}

impl MmPareto {
    pub fn new(cfg: MmParetoConfig, num_classes: usize, seed: u64) -> Self {
        let heads = UnimodalBranches::new(
            cfg.unimodal_heads,
            "mmpareto.unimodal_heads",
            LinearHeads::new("mmpareto.head", num_classes, HeadInit::TorchDefault, seed),
        );
        Self { gamma: cfg.gamma_mag, cfg, num_classes, heads }
    }

    /// The MMPareto gradients of one batch (and the report pieces), without updating anything.
    pub fn gradients(
        &mut self,
        model: &dyn MultimodalModel,
        inputs: &[Tensor],
        targets: &Tensor,
        loss: &dyn dgl_core::loss::Loss,
    ) -> Result<(ParamGrads, StepReport)> {
        let z = model.encode_all(inputs, true)?;
        self.heads.prepare(&z)?;
        let names = model.modality_names();
        let groups = self.heads.groups(model);
        let out = model.fuse(&z, true)?;
        let l_mm = loss.loss(&out, targets)?;
        let mut losses = vec![("loss_mm".to_string(), scalar(&l_mm)?)];
        let g_mm = ParamGrads::from_store(&l_mm.backward()?, &groups, |_| true);
        let mut g_uni = Vec::new();
        let mut branches = Vec::new();
        for (m, name) in names.iter().enumerate() {
            let lg = self.heads.logits(model, &z, m, true)?;
            let l = loss.loss(&lg, targets)?;
            losses.push((format!("loss_{name}"), scalar(&l)?));
            g_uni.push(ParamGrads::from_store(&l.backward()?, &groups, |_| true));
            branches.push((name.clone(), lg.detach()));
        }
        // Per-encoder weights from the flattened encoder gradients.
        let mut scalars = Vec::new();
        let mut k = Vec::new();
        for (m, gu) in g_uni.iter().enumerate() {
            let (mut v11, mut v12, mut v22) = (0.0, 0.0, 0.0);
            for e in g_mm.entries().iter().filter(|e| e.group == GroupKind::Encoder(m)) {
                v11 += dot(&e.grad, &e.grad)?;
                if let Some(b) = gu.get(&e.name) {
                    v12 += dot(&e.grad, b)?;
                }
            }
            for e in gu.entries().iter().filter(|e| e.group == GroupKind::Encoder(m)) {
                v22 += dot(&e.grad, &e.grad)?;
            }
            let (k_mm, k_m, cos) = pareto_weights(v11, v12, v22);
            scalars.push((format!("cos_{}", names[m]), cos));
            scalars.push((format!("k_mm_{}", names[m]), k_mm));
            scalars.push((format!("k_uni_{}", names[m]), k_m));
            k.push((k_mm, k_m));
        }
        // Plain summed gradients everywhere, then the encoders' rescaled ones.
        let mut total = g_mm.clone();
        for gu in &g_uni {
            total.merge(gu.clone())?;
        }
        let gamma = self.gamma;
        total.map(|e| match e.group {
            GroupKind::Encoder(m) if m < k.len() => {
                let a = g_mm.get(&e.name).cloned().unwrap_or(e.grad.zeros_like()?);
                let b = g_uni[m].get(&e.name).cloned().unwrap_or(e.grad.zeros_like()?);
                rescale(&a, &b, k[m], gamma).map_err(|x| candle_core::Error::Msg(x.to_string()))
            }
            _ => Ok(e.grad.clone()),
        })?;
        Ok((
            total,
            StepReport {
                losses,
                logits_mm: Some(out.detach()),
                logits_branches: branches,
                z: detach_all(&z),
                grad_norm: 0.0,
                scalars,
            },
        ))
    }
}

impl Method for MmPareto {
    fn name(&self) -> String {
        MmParetoConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        MmParetoConfig::DESCRIPTOR.check_modalities(model.num_modalities())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let (mut grads, mut report) = self.gradients(ctx.model, inputs, targets, ctx.loss)?;
        check_losses(&report.losses, ctx)?;
        report.grad_norm = ctx.apply(&mut grads)?;
        Ok(report)
    }

    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        let z = detach_all(&model.encode_all(inputs, false)?);
        let names = model.modality_names();
        let branches = (0..model.num_modalities())
            .map(|m| Ok((names[m].clone(), self.heads.logits(model, &z, m, false)?.detach())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Prediction { multimodal: model.fuse(&z, false)?.detach(), branches })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        self.heads.state()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.heads.load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use candle_core::DType;
    use dgl_core::loss::{CrossEntropy, Loss};

    #[test]
    fn min_norm_cases() {
        assert_eq!(min_norm_2(1.0, 2.0, 5.0), 0.999);
        assert_eq!(min_norm_2(5.0, 2.0, 1.0), 0.001);
        // g1 = (1, 0), g2 = (−1, 1): v11 = 1, v12 = −1, v22 = 2 → γ = 3/5; γ g1 + (1−γ) g2 = (0.2, 0.4)
        // is the min-norm point of the segment (orthogonal to g1 − g2).
        let g = min_norm_2(1.0, -1.0, 2.0);
        assert!((g - 0.6).abs() < 1e-15);
        let p = [g - (1.0 - g), 1.0 - g];
        assert!((p[0] * 2.0 - p[1]).abs() < 1e-12);
        assert_eq!(pareto_weights(1.0, 0.3, 2.0), (0.5, 0.5, 0.3 / 2f64.sqrt()));
        let (a, b, c) = pareto_weights(1.0, -1.0, 2.0);
        assert!((a - 0.6).abs() < 1e-15 && (b - 0.4).abs() < 1e-15 && c < 0.0);
    }

    #[test]
    fn rescaling_by_hand() {
        let dev = candle_core::Device::Cpu;
        let a = Tensor::new(&[3.0f64, 0.0], &dev).unwrap();
        let b = Tensor::new(&[0.0f64, 4.0], &dev).unwrap();
        // k = (½, ½): g_new = a + b, n3 = ‖a + b‖ = 5 = ‖g_new‖ ⇒ ratio 1 ⇒ 1.5·g_new.
        assert_close(&vec(&rescale(&a, &b, (0.5, 0.5), 1.5).unwrap()), &[4.5, 6.0], 1e-15, "k=½");
        // k = (0.1, 0.9): g_new = (0.6, 7.2), ‖·‖ = √52.2; n3 = 5 < ‖g_new‖ ⇒ 1.5·g_new.
        assert_close(&vec(&rescale(&a, &b, (0.1, 0.9), 1.5).unwrap()), &[0.9, 10.8], 1e-12, "no boost");
        let a = Tensor::new(&[1.0f64, 0.0], &dev).unwrap();
        let b = Tensor::new(&[-1.0f64, 0.1], &dev).unwrap();
        // a = (1, 0), b = (−1, 0.1): n3 = ‖a + b‖ = 0.1.
        // k = (0.05, 0.05): g_new = (0, 0.01), n3 = 0.1 ⇒ ratio 10 ⇒ 10·1.5·g_new = (0, 0.15).
        assert_close(&vec(&rescale(&a, &b, (0.05, 0.05), 1.5).unwrap()), &[0.0, 0.15], 1e-12, "boost");
        let z = Tensor::zeros(2, DType::F64, &dev).unwrap();
        assert_close(&vec(&rescale(&z, &z, (0.5, 0.5), 1.5).unwrap()), &[0.0, 0.0], 0.0, "zero");
    }

    /// The step's gradients against per-loss backward passes and the formulas.
    #[test]
    fn step_matches_per_loss_gradients() {
        for heads in [UnimodalHeads::SharedMasked, UnimodalHeads::Separate] {
            let model = Toy::new(&[3, 4], 5, 3, 21);
            let x = model.inputs(7, 22);
            let y = targets(7, 3);
            let mut mp = MmPareto::new(MmParetoConfig { unimodal_heads: heads, ..MmParetoConfig::default() }, 3, 0);
            let (g, rep) = mp.gradients(&model, &x, &y, &CrossEntropy).unwrap();

            let z = model.encode_all(&x, true).unwrap();
            let groups = mp.heads.groups(&model);
            let l_mm = CrossEntropy.loss(&model.fuse(&z, true).unwrap(), &y).unwrap();
            let g_mm = ParamGrads::from_store(&l_mm.backward().unwrap(), &groups, |_| true);
            let g_u: Vec<ParamGrads> = (0..2)
                .map(|m| {
                    let l = CrossEntropy.loss(&mp.heads.logits(&model, &z, m, true).unwrap(), &y).unwrap();
                    ParamGrads::from_store(&l.backward().unwrap(), &groups, |_| true)
                })
                .collect();
            for (m, gu_m) in g_u.iter().enumerate() {
                let names = [format!("enc{m}.weight"), format!("enc{m}.bias")];
                let flat = |g: &ParamGrads| -> Vec<f64> { names.iter().flat_map(|n| vec(g.get(n).unwrap())).collect() };
                let (a, b) = (flat(&g_mm), flat(gu_m));
                let d = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
                let k = pareto_weights(d(&a, &a), d(&a, &b), d(&b, &b));
                for n in &names {
                    let want = rescale(g_mm.get(n).unwrap(), gu_m.get(n).unwrap(), (k.0, k.1), 1.5).unwrap();
                    assert_close(&vec(g.get(n).unwrap()), &vec(&want), 1e-10, n);
                }
                assert!(rep.scalars.iter().any(|(n, v)| n.starts_with("k_mm_") && (*v - k.0).abs() < 1e-12));
            }
            // Head (and separate heads): the plain sum.
            for e in g.entries().iter().filter(|e| e.group == GroupKind::Head) {
                let mut want = vec(g_mm.get(&e.name).cloned().unwrap_or(e.grad.zeros_like().unwrap()).as_ref());
                for gu in &g_u {
                    if let Some(t) = gu.get(&e.name) {
                        for (w, v) in want.iter_mut().zip(vec(t)) {
                            *w += v;
                        }
                    }
                }
                assert_close(&vec(&e.grad), &want, 1e-10, &e.name);
            }
            if heads == UnimodalHeads::Separate {
                // Independent gradients: the model's head gets ∇L_mm alone (no unimodal term), head m
                // gets ∇L_m alone (no multimodal term, nothing from the other modality).
                for n in ["head.weight", "head.bias"] {
                    assert_close(&vec(g.get(n).unwrap()), &vec(g_mm.get(n).unwrap()), 1e-12, n);
                    assert!(g_u.iter().all(|gu| gu.get(n).is_none()), "{n} receives a unimodal gradient");
                }
                for m in 0..2 {
                    for part in ["weight", "bias"] {
                        let n = format!("mmpareto.head.{m}.{part}");
                        assert_close(&vec(g.get(&n).unwrap()), &vec(g_u[m].get(&n).unwrap()), 1e-12, &n);
                        assert!(g_mm.get(&n).is_none() && g_u[1 - m].get(&n).is_none(), "{n}");
                    }
                }
                assert_eq!(g.entries().iter().filter(|e| e.name.starts_with("mmpareto.head.")).count(), 4);
                let st = mp.state().unwrap();
                assert_eq!(st.len(), 4);
                let mut other =
                    MmPareto::new(MmParetoConfig { unimodal_heads: heads, ..MmParetoConfig::default() }, 3, 5);
                other.load_state(&st).unwrap();
                let p = other.predict(&model, &x).unwrap();
                let q = mp.predict(&model, &x).unwrap();
                assert_close(&vec(&p.branches[1].1), &vec(&q.branches[1].1), 0.0, "heads state");
            } else {
                // Masked: the shared head also receives the unimodal gradients.
                let n = "head.weight";
                assert!(g_u.iter().all(|gu| gu.get(n).is_some()));
                assert!(mp.state().unwrap().is_empty());
            }
        }
    }
}
