//! AGM, Adaptive Gradient Modulation (Li et al., ICCV 2023), `AGM_ICCV2023/model/CREMAD_net.py:7-72`,
//! `run/CREMAD_main.py:126-248`.
//!
//! Per step, forwards of the same model: f(a,v) in training mode and, in evaluation mode (BatchNorm
//! running statistics) but *with* gradient, f(a,0) and f(0,v), where 0 is a zeroed raw input. The
//! official code also computes f(0,0), which the two-player responses do not use; it is skipped.
//!
//! * Mono-modal (Shapley) responses: m_a = ½(f(a,v) − f(0,v) + f(a,0)),
//!   m_v = ½(f(a,v) − f(a,0) + f(0,v)); the output is m_a + m_v (= f(a,v)) → CE.
//! * Scores s_m = mean_i −log max(softmax(m_m)_i\[y_i\], 1e-8); r_a = exp(s_v − s_a),
//!   r_v = exp(s_a − s_v); running means S_m over every iteration so far (across epochs);
//!   r*_a = exp(S_v − S_a) with S *before* this iteration's update; k_a = exp(α·min(r*_a − r_a, 10)) (α: `modulation_strength`),
//!   k_v likewise; then S_m ← S_m·(t−1)/t + s_m/t.
//! * The official backward hooks multiply the gradient flowing out of m_a by k_a and out of m_v by
//!   k_v. With g = ∂CE/∂out: f(a,v) receives ½(k_a+k_v)·g, f(0,v) receives ½(k_v−k_a)·g and
//!   f(a,0) receives ½(k_a−k_v)·g. Here the same gradients come from one backward of
//!   CE(k_a·m_a + k_v·m_v + sg(m_a + m_v − k_a·m_a − k_v·m_v)): its value is CE(m_a + m_v) and its
//!   cotangents on m_a, m_v are k_a·g, k_v·g, exactly the hooks'.
//! * If any element of the head weight gradient leaves [−1, 1], every gradient is clipped to global
//!   norm 1 (`clip_grad_norm_(model.parameters(), 1.0)`).
//!
//! Unimodal predictions are argmax m_a, argmax m_v. Two modalities only.

use candle_core::Tensor;
use dgl_core::grads::ParamGrads;
use dgl_core::model::{detach_all, GroupKind};
use dgl_core::{Method, MultimodalModel, Prediction, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, TaskKind};
use crate::util::{
    all_grads, check_hp, check_losses, check_non_negative, check_window, f64_tensor, host_targets, in_window, scalar,
    state_f64, target_probs,
};

/// AGM's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgmConfig {
    /// α of k_m = exp(α·min(r*_m − r_m, 10)) (the author's CREMA-D value 1.5, lihongcs/AGM#5).
    pub modulation_strength: f64,
    /// First modulated epoch (0-based, inclusive).
    pub modulation_starts: usize,
    /// Last modulated epoch (inclusive); `None` = always on (the author's CREMA-D setting,
    /// lihongcs/AGM#5: end 1500; the config default is 20).
    pub modulation_ends: Option<usize>,
    /// Clip to this global norm when an element of the head weight gradient exceeds it in
    /// magnitude (official 1.0).
    pub clip_threshold: f64,
}

impl Default for AgmConfig {
    fn default() -> Self {
        Self { modulation_strength: 1.5, modulation_starts: 0, modulation_ends: None, clip_threshold: 1.0 }
    }
}

impl MethodSpec for AgmConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "agm",
        label: "AGM",
        summary: "Shapley mono-modal responses, cotangent scaling toward the running balance",
        modalities: ModalityCount::Exactly(2),
        heads: HeadSupport::Any,
        tasks: &[TaskKind::Classification],
        needs_validation: false,
    };

    fn validate(&self) -> Result<()> {
        check_non_negative("modulation_strength", self.modulation_strength)?;
        check_hp(
            self.clip_threshold.is_finite() && self.clip_threshold > 0.0,
            "clip_threshold",
            self.clip_threshold,
            "must be finite and > 0",
        )?;
        check_window(self.modulation_starts, self.modulation_ends)
    }

    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Agm::new(self.clone())))
    }

    fn official(_bench: Option<Benchmark>) -> Self {
        Self { modulation_strength: 1.5, modulation_ends: None, ..Self::default() }
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        let silent = bench.is_some_and(|b| b != Benchmark::CremaD);
        vec![
            Setting::new(
                "method.modulation_strength",
                1.5,
                if silent {
                    "silent (AGM has no KS/VGGSound setting); the CREMA-D α=1.5 is used"
                } else {
                    "author, lihongcs/AGM#5 (CREMA-D α=1.5)"
                },
            ),
            Setting::new(
                "method.modulation_ends",
                "none (always on)",
                if silent {
                    "silent; the CREMA-D setting is used"
                } else {
                    "author, lihongcs/AGM#5 (end 1500 = always on)"
                },
            ),
        ]
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        Schedule::new(
            2e-3,
            &[70],
            "AGM config StepLR(70, 0.1); its lr is not in our notes: the DGL scripts' 2e-3 is used",
        )
    }
}

/// The forwards of one batch and the mono-modal responses.
#[derive(Debug)]
pub struct Responses {
    /// f(a, v) (training or evaluation mode).
    pub full: Tensor,
    /// f(a, 0): the second raw input zeroed, evaluation mode.
    pub only_a: Tensor,
    /// f(0, v): the first raw input zeroed, evaluation mode.
    pub only_v: Tensor,
    /// m_a, m_v.
    pub m: [Tensor; 2],
    /// z of the f(a, v) forward.
    pub z: Vec<Tensor>,
}

/// Computes f(a,v) (in training mode when `train`), f(a,0), f(0,v) (evaluation mode, with
/// gradient) and the Shapley responses.
pub fn responses(model: &dyn MultimodalModel, inputs: &[Tensor], train: bool) -> Result<Responses> {
    let z = model.encode_all(inputs, train)?;
    let full = model.fuse(&z, train)?;
    let (za, zv) = if train {
        (model.encode(0, &inputs[0], false)?, model.encode(1, &inputs[1], false)?)
    } else {
        (z[0].clone(), z[1].clone())
    };
    let za0 = model.encode(0, &inputs[0].zeros_like()?, false)?;
    let zv0 = model.encode(1, &inputs[1].zeros_like()?, false)?;
    let only_a = model.fuse(&[za, zv0], false)?;
    let only_v = model.fuse(&[za0, zv], false)?;
    let m_a = ((&full - &only_v)? + &only_a)?.affine(0.5, 0.0)?;
    let m_v = ((&full - &only_a)? + &only_v)?.affine(0.5, 0.0)?;
    Ok(Responses { full, only_a, only_v, m: [m_a, m_v], z })
}

/// s = mean_i −log max(softmax(m)_i\[y_i\], 1e-8).
pub fn score(m: &Tensor, targets: &[usize]) -> Result<f64> {
    let p = target_probs(m, targets)?;
    Ok(p.iter().map(|&p| -(p.max(1e-8)).ln()).sum::<f64>() / p.len() as f64)
}

/// k_a, k_v from this batch's scores and the running scores before the update.
pub fn coefficients(s: [f64; 2], running: [f64; 2], alpha: f64) -> [f64; 2] {
    let r = [(s[1] - s[0]).exp(), (s[0] - s[1]).exp()];
    let r_opt = [(running[1] - running[0]).exp(), (running[0] - running[1]).exp()];
    [(alpha * (r_opt[0] - r[0]).min(10.0)).exp(), (alpha * (r_opt[1] - r[1]).min(10.0)).exp()]
}

/// S ← S·(t−1)/t + s/t for iteration t ≥ 1.
pub fn update_running(running: [f64; 2], s: [f64; 2], t: u64) -> [f64; 2] {
    let t = t as f64;
    [running[0] * (t - 1.0) / t + s[0] / t, running[1] * (t - 1.0) / t + s[1] / t]
}

/// The output whose CE has the value CE(m_a + m_v) and whose gradient is the hooks' (k_a on m_a,
/// k_v on m_v).
pub fn scaled_output(m: &[Tensor; 2], k: [f64; 2]) -> Result<Tensor> {
    let scaled = ((&m[0] * k[0])? + (&m[1] * k[1])?)?;
    let sum = (&m[0] + &m[1])?;
    Ok((&scaled + (sum - &scaled)?.detach())?)
}

/// Clips every gradient to global norm `threshold` when an element of a head weight gradient
/// (head parameters of rank ≥ 2) exceeds it in magnitude. Returns whether it clipped.
pub fn clip_on_head_weight(grads: &mut ParamGrads, threshold: f64) -> Result<bool> {
    let exceed = head_weight_grad_max(grads)? > threshold;
    if exceed {
        grads.clip_global_norm(threshold)?;
    }
    Ok(exceed)
}

/// The largest |element| of the head weight gradients (head parameters of rank ≥ 2).
pub fn head_weight_grad_max(grads: &ParamGrads) -> Result<f64> {
    let mut mx = 0f64;
    for e in grads.entries() {
        if e.group == GroupKind::Head && e.grad.rank() >= 2 {
            mx = mx.max(scalar(&e.grad.abs()?.flatten_all()?.max(0)?)?);
        }
    }
    Ok(mx)
}

/// AGM.
#[derive(Clone, Debug)]
pub struct Agm {
    pub cfg: AgmConfig,
    running: [f64; 2],
    iteration: u64,
}

impl Agm {
    pub fn new(cfg: AgmConfig) -> Self {
        Self { cfg, running: [0.0; 2], iteration: 0 }
    }

    /// Running scores S_a, S_v and the number of iterations they average.
    pub fn running(&self) -> ([f64; 2], u64) {
        (self.running, self.iteration)
    }
}

impl Method for Agm {
    fn name(&self) -> String {
        AgmConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        AgmConfig::DESCRIPTOR.check_modalities(model.num_modalities())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        self.check(ctx.model)?;
        let model = ctx.model;
        let r = responses(model, inputs, true)?;
        let y = host_targets(targets)?;
        let s = [score(&r.m[0], &y)?, score(&r.m[1], &y)?];
        let k_raw = coefficients(s, self.running, self.cfg.modulation_strength);
        self.iteration += 1;
        self.running = update_running(self.running, s, self.iteration);
        let active = in_window(ctx.epoch, self.cfg.modulation_starts, self.cfg.modulation_ends);
        let k = if active { k_raw } else { [1.0, 1.0] };

        let out = scaled_output(&r.m, k)?;
        let loss = ctx.loss.loss(&out, targets)?;
        let names = model.modality_names();
        let losses = vec![
            ("loss_mm".to_string(), scalar(&loss)?),
            (format!("loss_{}", names[0]), scalar(&ctx.loss.loss(&r.m[0], targets)?)?),
            (format!("loss_{}", names[1]), scalar(&ctx.loss.loss(&r.m[1], targets)?)?),
        ];
        check_losses(&losses, ctx)?;
        let mut grads = all_grads(model, &loss)?;
        // Instrumentation (issue #13 item 12): the modulated gradient before the conditional clip.
        let grad_norm_raw = grads.global_norm()?;
        let head_grad_max = head_weight_grad_max(&grads)?;
        let clipped = clip_on_head_weight(&mut grads, self.cfg.clip_threshold)?;
        let grad_norm = ctx.apply(&mut grads)?;
        let logits_mm = (&r.m[0] + &r.m[1])?.detach();
        Ok(StepReport {
            losses,
            logits_mm: Some(logits_mm),
            logits_branches: vec![(names[0].clone(), r.m[0].detach()), (names[1].clone(), r.m[1].detach())],
            z: detach_all(&r.z),
            grad_norm,
            scalars: vec![
                (format!("score_{}", names[0]), s[0]),
                (format!("score_{}", names[1]), s[1]),
                (format!("running_score_{}", names[0]), self.running[0]),
                (format!("running_score_{}", names[1]), self.running[1]),
                (format!("coeff_{}", names[0]), k[0]),
                (format!("coeff_{}", names[1]), k[1]),
                ("clipped".into(), if clipped { 1.0 } else { 0.0 }),
                ("grad_norm_raw".into(), grad_norm_raw),
                ("head_grad_max".into(), head_grad_max),
            ],
        })
    }

    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        let r = responses(model, inputs, false)?;
        let names = model.modality_names();
        let [m_a, m_v] = r.m;
        Ok(Prediction {
            multimodal: (&m_a + &m_v)?.detach(),
            branches: vec![(names[0].clone(), m_a.detach()), (names[1].clone(), m_v.detach())],
        })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("agm.running_scores".into(), f64_tensor(&self.running)?),
            ("agm.iteration".into(), f64_tensor(&[self.iteration as f64])?),
        ])
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(v) = state_f64(state, "agm.running_scores", 2)? {
            self.running = [v[0], v[1]];
        }
        if let Some(v) = state_f64(state, "agm.iteration", 1)? {
            self.iteration = v[0] as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use dgl_core::loss::{CrossEntropy, Loss};

    /// The gradients of CE of the scaled output of `r`.
    fn scaled_grads(model: &Toy, r: &Responses, k: [f64; 2], y: &Tensor) -> ParamGrads {
        let out = scaled_output(&r.m, k).unwrap();
        all_grads(model, &CrossEntropy.loss(&out, y).unwrap()).unwrap()
    }

    #[test]
    fn shapley_responses_sum_to_the_full_output() {
        let model = Toy::new(&[3, 4], 5, 3, 1);
        let x = model.inputs(6, 2);
        let r = responses(&model, &x, true).unwrap();
        let full = vec(&r.full);
        let sum = vec(&(&r.m[0] + &r.m[1]).unwrap());
        assert_close(&sum, &full, 1e-12, "m_a + m_v = f(a,v)");
        // f(a,0) by hand: zero visual input → z_v = tanh(b_v).
        let za = model.encode(0, &x[0], false).unwrap();
        let zv0 = model.encode(1, &x[1].zeros_like().unwrap(), false).unwrap();
        let fa0 = vec(&model.fuse(&[za, zv0], false).unwrap());
        assert_close(&vec(&r.only_a), &fa0, 1e-12, "f(a,0)");
        let want: Vec<f64> =
            full.iter().zip(vec(&r.only_v)).zip(&fa0).map(|((f, ov), oa)| 0.5 * (f - ov + oa)).collect();
        assert_close(&vec(&r.m[0]), &want, 1e-12, "m_a");
    }

    #[test]
    fn scores_running_means_and_coefficients() {
        // Score: mean −log p_y with the 1e-8 floor.
        let m = Tensor::new(&[[0.0f64, 0.0], [100.0, -100.0]], &candle_core::Device::Cpu).unwrap();
        let s = score(&m, &[0, 1]).unwrap();
        assert!((s - 0.5 * (2f64.ln() + 1e8f64.ln())).abs() < 1e-9, "{s}");
        // Coefficients at the first iteration: S = 0 ⇒ r* = 1.
        let k = coefficients([0.5, 1.0], [0.0, 0.0], 1.5);
        assert!((k[0] - (1.5 * (1.0 - 0.5f64.exp())).exp()).abs() < 1e-12);
        assert!((k[1] - (1.5 * (1.0 - (-0.5f64).exp())).exp()).abs() < 1e-12);
        // The min(·, 10) cap.
        let k = coefficients([10.0, 0.0], [0.0, 30.0], 0.1);
        assert!((k[0] - 1f64.exp()).abs() < 1e-12, "{k:?}");
        // Running means: cumulative average.
        let mut r = [0.0, 0.0];
        for (t, s) in [[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]].iter().enumerate() {
            r = update_running(r, *s, t as u64 + 1);
        }
        assert_close(&r, &[3.0, 2.0], 1e-12, "running");
    }

    /// The gradients of the scaled output equal the hook formula: ½(k_a+k_v)·g on f(a,v),
    /// ½(k_v−k_a)·g on f(0,v), ½(k_a−k_v)·g on f(a,0).
    #[test]
    fn scaled_gradients_equal_the_hook_formula() {
        let model = Toy::new(&[3, 4], 5, 3, 7);
        let x = model.inputs(6, 8);
        let y = targets(6, 3);
        let k = [1.7, 0.4];
        let g_ours = scaled_grads(&model, &responses(&model, &x, true).unwrap(), k, &y);

        // Cotangent g = (softmax(out) − onehot)/B, then Σ c ⊙ f per forward.
        let r = responses(&model, &x, true).unwrap();
        let out = (&r.m[0] + &r.m[1]).unwrap();
        let p = candle_nn::ops::softmax(&out, 1).unwrap();
        let oh =
            crate::util::one_hot(&host_targets(&y).unwrap(), 3, candle_core::DType::F64, &candle_core::Device::Cpu)
                .unwrap();
        let g = ((p - oh).unwrap() / 6.0).unwrap().detach();
        let c = |f: f64| (&g * f).unwrap();
        let surrogate = (((c(0.5 * (k[0] + k[1])) * &r.full).unwrap().sum_all().unwrap()
            + (c(0.5 * (k[1] - k[0])) * &r.only_v).unwrap().sum_all().unwrap())
        .unwrap()
            + (c(0.5 * (k[0] - k[1])) * &r.only_a).unwrap().sum_all().unwrap())
        .unwrap();
        let g_hook = all_grads(&model, &surrogate).unwrap();
        assert_eq!(g_ours.len(), g_hook.len());
        for e in g_hook.entries() {
            assert_close(&vec(g_ours.get(&e.name).unwrap()), &vec(&e.grad), 1e-10, &e.name);
        }
    }

    #[test]
    fn step_uses_running_scores_before_update_and_clips() {
        let model = Toy::new(&[3, 4], 5, 3, 9);
        let x = model.inputs(6, 10);
        let y = targets(6, 3);
        let yv = host_targets(&y).unwrap();
        let cfg = AgmConfig { clip_threshold: 1e9, ..AgmConfig::default() };
        let mut agm = Agm::new(cfg);
        agm.running = [0.3, 0.9];
        agm.iteration = 4;
        let r = responses(&model, &x, true).unwrap();
        let s = [score(&r.m[0], &yv).unwrap(), score(&r.m[1], &yv).unwrap()];
        let k = coefficients(s, [0.3, 0.9], 1.5);
        let want = scaled_grads(&model, &r, k, &y);
        let (upd, rep) = grads_by_sgd(&mut agm, &model, 3, &x, &y);
        for (name, got) in &upd {
            assert_close(got, &vec(want.get(name).unwrap()), 1e-9, name);
        }
        let (run, it) = agm.running();
        assert_eq!(it, 5);
        assert_close(&run, &update_running([0.3, 0.9], s, 5), 1e-12, "running");
        assert!(rep.scalars.iter().any(|(n, v)| n == "coeff_audio" && (v - k[0]).abs() < 1e-12));

        // Clipping: threshold below the head-weight gradient ⇒ global norm = threshold.
        let mut g = want.clone();
        let mx = g
            .entries()
            .iter()
            .filter(|e| e.name == "head.weight")
            .map(|e| vec(&e.grad).iter().fold(0f64, |a, v| a.max(v.abs())))
            .next()
            .unwrap();
        assert!(!clip_on_head_weight(&mut g, mx * 1.01).unwrap());
        assert!(clip_on_head_weight(&mut g, mx * 0.5).unwrap());
        assert!((g.global_norm().unwrap() - mx * 0.5).abs() < 1e-6 * mx);

        // State round trip.
        let mut other = Agm::new(AgmConfig::default());
        other.load_state(&agm.state().unwrap()).unwrap();
        assert_eq!(other.running(), agm.running());
    }
}
