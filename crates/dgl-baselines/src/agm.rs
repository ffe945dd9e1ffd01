//! AGM, Adaptive Gradient Modulation (Li et al., ICCV 2023), in the M-modality form of its
//! official code (any 2 ≤ M ≤ [`MAX_MODALITIES`]): `AGM_ICCV2023/model/CREMAD_net.py:7-72`,
//! `run/CREMAD_main.py:126-248` (M = 2) and `model/URFunny_net.py:6-126`, `run/URFunny_main.py:104-133`
//! (M = 3, audio / visual / text), both at lihong2303/AGM_ICCV2023 `5a65542c70`.
//!
//! Per step, forwards of the same model for every non-empty coalition S of modalities: f(N) (all
//! present) in training mode and, in evaluation mode (BatchNorm running statistics) but *with*
//! gradient, f(S) for every other S, where a modality outside S is a zeroed raw input. That is
//! 2^M − 1 head forwards (M = 2: f(a,v), f(a,0), f(0,v)); the official code also computes
//! f(∅) = f(0, …, 0), which the responses do not use (it is skipped).
//!
//! * Mono-modal (Shapley) responses with f(∅) dropped (taken as 0):
//!   m_i = Σ_{S ⊆ N∖{i}} |S|!(M−|S|−1)!/M! · (f(S ∪ {i}) − f(S)), so Σ_i m_i = f(N) → CE.
//!   M = 2: m_a = ½(f(a,v) − f(0,v) + f(a,0)), m_v = ½(f(a,v) − f(a,0) + f(0,v)) (`CREMAD_net.py`);
//!   M = 3: m_a = [f(AVT) − f(VT) + f(A)]/3 + [f(AV) − f(V) + f(AT) − f(T)]/6 (`URFunny_net.py`
//!   `Modality_Audio`).
//! * Scores s_m = mean_i −log max(softmax(m_m)_i\[y_i\], 1e-8) (the CREMA-D floor; the UR-Funny
//!   code has none). r_m = exp(M/(M−1)·(s̄ − s_m)), s̄ the mean score (`URFunny_main.py`:
//!   `exp((mean_score − score_m)·3/2)`), computed as exp(mean_{j≠m}(s_j − s_m)), the same number,
//!   which at M = 2 is exactly the CREMA-D code's r_a = exp(s_v − s_a), r_v = exp(s_a − s_v).
//!   Running means S_m over every iteration so far (across epochs); r*_m the same function of S
//!   *before* this iteration's update; k_m = exp(α·min(r*_m − r_m, c)) (α: `modulation_strength`),
//!   with the official cap c = 10 at M = 2 (`CREMAD_main.py`) and c = 7 at M ≥ 3
//!   (`URFunny_main.py`); then S_m ← S_m·(t−1)/t + s_m/t.
//! * The official backward hooks multiply the gradient flowing out of m_i by k_i. Here the same
//!   gradients come from one backward of CE(Σ_i k_i·m_i + sg(Σ_i m_i − Σ_i k_i·m_i)): its value is
//!   CE(Σ_i m_i) and its cotangent on m_i is k_i·g, exactly the hooks'. At M = 2, with
//!   g = ∂CE/∂out: f(a,v) receives ½(k_a+k_v)·g, f(0,v) ½(k_v−k_a)·g, f(a,0) ½(k_a−k_v)·g.
//! * If any element of the head weight gradient leaves [−1, 1], every gradient is clipped to global
//!   norm 1 (`clip_grad_norm_(model.parameters(), 1.0)`).
//!
//! Unimodal predictions are argmax m_i. More than [`MAX_MODALITIES`] modalities (2^M − 1 forwards
//! per step) are refused by [`MethodSpec::check_model`] and [`Method::check`].

use candle_core::Tensor;
use dgl_core::grads::ParamGrads;
use dgl_core::model::{detach_all, GroupKind};
use dgl_core::{Error, Method, MultimodalModel, Prediction, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, ModelFacts, TaskKind};
use crate::util::{
    all_grads, check_hp, check_losses, check_non_negative, check_window, f64_tensor, find_state, host_f64,
    host_targets, in_window, scalar, state_f64, target_probs,
};

/// The most modalities AGM trains: a step runs 2^M − 1 head forwards (255 at M = 8).
pub const MAX_MODALITIES: usize = 8;

/// Refuses a modality count AGM cannot train: the descriptor's (M ≥ 2) and M ≤ [`MAX_MODALITIES`].
fn check_modality_count(m: usize) -> Result<()> {
    AgmConfig::DESCRIPTOR.check_modalities(m)?;
    if m > MAX_MODALITIES {
        return Err(Error::InvalidInput(format!(
            "`agm` supports at most {MAX_MODALITIES} modalities (a step runs a forward for each of the 2^M − 1 \
             coalitions); the model has {m}"
        )));
    }
    Ok(())
}

/// AGM's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgmConfig {
    /// α of k_m = exp(α·min(r*_m − r_m, c)) (the author's CREMA-D value 1.5, lihongcs/AGM#5).
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
        modalities: ModalityCount::AtLeast(2),
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

    fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
        Self::DESCRIPTOR.check_task(model.task)?;
        check_modality_count(model.modalities)
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
    /// f(S) for every non-empty coalition S, at index mask(S) − 1 (bit m of the mask: modality m
    /// present); the last is f(N), the full forward (training or evaluation mode).
    pub coalitions: Vec<Tensor>,
    /// m_i for every modality.
    pub m: Vec<Tensor>,
    /// z of the f(N) forward.
    pub z: Vec<Tensor>,
}

impl Responses {
    /// f(S) of the coalition whose bit mask is `mask` (≥ 1).
    pub fn f(&self, mask: usize) -> &Tensor {
        &self.coalitions[mask - 1]
    }

    /// f(N), all modalities present.
    pub fn full(&self) -> &Tensor {
        &self.coalitions[self.coalitions.len() - 1]
    }
}

/// The Shapley weights |S|!(M−|S|−1)!/M! for |S| = 0, …, M−1 (M = 2: ½, ½; M = 3: ⅓, ⅙, ⅓).
pub fn shapley_weights(m: usize) -> Vec<f64> {
    let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    (0..m).map(|s| fact(s) * fact(m - s - 1) / fact(m)).collect()
}

/// Computes f(N) (in training mode when `train`), f(S) for every other non-empty coalition
/// (evaluation mode, with gradient; absent modalities are zeroed raw inputs) and the Shapley
/// responses.
pub fn responses(model: &dyn MultimodalModel, inputs: &[Tensor], train: bool) -> Result<Responses> {
    let n = model.num_modalities();
    check_modality_count(n)?;
    if inputs.len() != n {
        return Err(Error::InvalidInput(format!("AGM: {} inputs for a {n}-modality model", inputs.len())));
    }
    let z = model.encode_all(inputs, train)?;
    let full = model.fuse(&z, train)?;
    let present: Vec<Tensor> = if train {
        (0..n).map(|m| model.encode(m, &inputs[m], false)).collect::<candle_core::Result<_>>()?
    } else {
        z.clone()
    };
    let absent: Vec<Tensor> =
        (0..n).map(|m| model.encode(m, &inputs[m].zeros_like()?, false)).collect::<candle_core::Result<_>>()?;
    let all = (1usize << n) - 1;
    let mut coalitions = Vec::with_capacity(all);
    for mask in 1..all {
        let zs: Vec<Tensor> =
            (0..n).map(|m| if (mask >> m) & 1 == 1 { present[m].clone() } else { absent[m].clone() }).collect();
        coalitions.push(model.fuse(&zs, false)?);
    }
    coalitions.push(full);
    let f = |mask: usize| &coalitions[mask - 1];
    let w = shapley_weights(n);
    // At M = 2 every weight is ½ and the sum is scaled once, largest coalition first:
    // m_a = ((f(AV) − f(V)) + f(A))·½, the same graph as the two-modality code, so that f32 runs
    // (whose rounding depends on the graph, forward and backward) are bit-identical to it.
    let equal_weights = w.iter().all(|&x| x == w[0]);
    let response = |i: usize| -> Result<Tensor> {
        let bit = 1usize << i;
        let terms = (0..=all).rev().filter(|s| s & bit == 0).map(|s| {
            // f(∅) is dropped: the empty coalition's marginal is f({i}).
            let marginal = if s == 0 { f(bit).clone() } else { (f(s | bit) - f(s))? };
            Ok(if equal_weights { marginal } else { (marginal * w[s.count_ones() as usize])? })
        });
        let sum = sum_of(terms.collect::<Result<Vec<_>>>()?)?;
        Ok(if equal_weights { sum.affine(w[0], 0.0)? } else { sum })
    };
    let m = (0..n).map(response).collect::<Result<Vec<_>>>()?;
    Ok(Responses { coalitions, m, z })
}

/// s = mean_i −log max(softmax(m)_i\[y_i\], 1e-8).
pub fn score(m: &Tensor, targets: &[usize]) -> Result<f64> {
    let p = target_probs(m, targets)?;
    Ok(p.iter().map(|&p| -(p.max(1e-8)).ln()).sum::<f64>() / p.len() as f64)
}

/// r_m = exp(M/(M−1)·(s̄ − s_m)), computed as exp(mean_{j≠m}(s_j − s_m)) (algebraically equal; at
/// M = 2 exactly the CREMA-D code's exp(s_v − s_a), exp(s_a − s_v)).
pub fn balance_ratios(s: &[f64]) -> Vec<f64> {
    let others = s.len().saturating_sub(1).max(1) as f64;
    s.iter()
        .enumerate()
        .map(|(m, &s_m)| {
            let sum: f64 = s.iter().enumerate().filter(|&(j, _)| j != m).map(|(_, &s_j)| s_j - s_m).sum();
            (sum / others).exp()
        })
        .collect()
}

/// The official cap c of k_m = exp(α·min(r*_m − r_m, c)): 10 at M = 2 (`CREMAD_main.py`), 7 at
/// M ≥ 3 (`URFunny_main.py`).
pub fn ratio_cap(m: usize) -> f64 {
    if m <= 2 {
        10.0
    } else {
        7.0
    }
}

/// k_m from this batch's scores and the running scores before the update.
pub fn coefficients(s: &[f64], running: &[f64], alpha: f64) -> Vec<f64> {
    let cap = ratio_cap(s.len());
    let (r, r_opt) = (balance_ratios(s), balance_ratios(running));
    r.iter().zip(&r_opt).map(|(r, r_opt)| (alpha * (r_opt - r).min(cap)).exp()).collect()
}

/// S ← S·(t−1)/t + s/t for iteration t ≥ 1.
pub fn update_running(running: &[f64], s: &[f64], t: u64) -> Vec<f64> {
    let t = t as f64;
    running.iter().zip(s).map(|(r, s)| r * (t - 1.0) / t + s / t).collect()
}

/// Σ_i t_i, left to right (an error for no term).
fn sum_of(terms: impl IntoIterator<Item = Tensor>) -> Result<Tensor> {
    let mut it = terms.into_iter();
    let first = it.next().ok_or_else(|| Error::InvalidInput("AGM: no mono-modal response".into()))?;
    it.try_fold(first, |a, t| Ok((a + t)?))
}

/// The output whose CE has the value CE(Σ_i m_i) and whose gradient is the hooks' (k_i on m_i).
pub fn scaled_output(m: &[Tensor], k: &[f64]) -> Result<Tensor> {
    let scaled = sum_of(m.iter().zip(k).map(|(m, &k)| m * k).collect::<candle_core::Result<Vec<_>>>()?)?;
    let sum = sum_of(m.iter().cloned())?;
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
    /// S_m per modality; empty until the first step (or a loaded state) fixes M.
    running: Vec<f64>,
    iteration: u64,
}

impl Agm {
    pub fn new(cfg: AgmConfig) -> Self {
        Self { cfg, running: Vec::new(), iteration: 0 }
    }

    /// Running scores S_m (empty before the first step) and the number of iterations they average.
    pub fn running(&self) -> (&[f64], u64) {
        (&self.running, self.iteration)
    }

    /// The running scores for an `n`-modality model: zeros before the first step.
    fn running_for(&self, n: usize) -> Result<Vec<f64>> {
        match self.running.len() {
            0 => Ok(vec![0.0; n]),
            len if len == n => Ok(self.running.clone()),
            len => {
                Err(Error::InvalidInput(format!("AGM holds running scores for {len} modalities, the model has {n}")))
            }
        }
    }
}

impl Method for Agm {
    fn name(&self) -> String {
        AgmConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        check_modality_count(model.num_modalities())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        self.check(ctx.model)?;
        let model = ctx.model;
        let running = self.running_for(model.num_modalities())?;
        let r = responses(model, inputs, true)?;
        let y = host_targets(targets)?;
        let s = r.m.iter().map(|m| score(m, &y)).collect::<Result<Vec<_>>>()?;
        let k_raw = coefficients(&s, &running, self.cfg.modulation_strength);
        self.iteration += 1;
        self.running = update_running(&running, &s, self.iteration);
        let active = in_window(ctx.epoch, self.cfg.modulation_starts, self.cfg.modulation_ends);
        let k = if active { k_raw } else { vec![1.0; s.len()] };

        let out = scaled_output(&r.m, &k)?;
        let loss = ctx.loss.loss(&out, targets)?;
        let names = model.modality_names();
        let mut losses = vec![("loss_mm".to_string(), scalar(&loss)?)];
        for (n, m) in names.iter().zip(&r.m) {
            losses.push((format!("loss_{n}"), scalar(&ctx.loss.loss(m, targets)?)?));
        }
        check_losses(&losses, ctx)?;
        let mut grads = all_grads(model, &loss)?;
        // Instrumentation (issue #13 item 12): the modulated gradient before the conditional clip.
        let grad_norm_raw = grads.global_norm()?;
        let head_grad_max = head_weight_grad_max(&grads)?;
        let clipped = clip_on_head_weight(&mut grads, self.cfg.clip_threshold)?;
        let grad_norm = ctx.apply(&mut grads)?;
        let logits_mm = sum_of(r.m.iter().cloned())?.detach();
        let per =
            |what: &str, v: &[f64]| names.iter().zip(v).map(|(n, &x)| (format!("{what}_{n}"), x)).collect::<Vec<_>>();
        let mut scalars = per("score", &s);
        scalars.extend(per("running_score", &self.running));
        scalars.extend(per("coeff", &k));
        scalars.extend([
            ("clipped".into(), if clipped { 1.0 } else { 0.0 }),
            ("grad_norm_raw".into(), grad_norm_raw),
            ("head_grad_max".into(), head_grad_max),
        ]);
        Ok(StepReport {
            losses,
            logits_mm: Some(logits_mm),
            logits_branches: names.iter().cloned().zip(r.m.iter().map(|m| m.detach())).collect(),
            z: detach_all(&r.z),
            grad_norm,
            scalars,
        })
    }

    fn predict(&self, model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<Prediction> {
        let r = responses(model, inputs, false)?;
        let names = model.modality_names();
        Ok(Prediction {
            multimodal: sum_of(r.m.iter().cloned())?.detach(),
            branches: names.into_iter().zip(r.m.iter().map(|m| m.detach())).collect(),
        })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut st = vec![("agm.iteration".to_string(), f64_tensor(&[self.iteration as f64])?)];
        if !self.running.is_empty() {
            st.insert(0, ("agm.running_scores".into(), f64_tensor(&self.running)?));
        }
        Ok(st)
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(t) = find_state(state, "agm.running_scores") {
            let v = host_f64(t)?;
            if !(2..=MAX_MODALITIES).contains(&v.len()) {
                return Err(Error::InvalidInput(format!(
                    "method state `agm.running_scores` has {} values, expected 2 to {MAX_MODALITIES}",
                    v.len()
                )));
            }
            self.running = v;
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
    use dgl_core::rng::Rng;

    /// f(S) by hand: present modalities re-encoded in evaluation mode, absent ones from zeroed
    /// inputs; `mask` = all gives the full forward.
    fn forward(model: &Toy, x: &[Tensor], mask: usize) -> Tensor {
        let z: Vec<Tensor> = (0..x.len())
            .map(|m| {
                let input = if (mask >> m) & 1 == 1 { x[m].clone() } else { x[m].zeros_like().unwrap() };
                model.encode(m, &input, false).unwrap()
            })
            .collect();
        model.fuse(&z, false).unwrap()
    }

    /// The former two-modality responses: m_a = ½((f(a,v) − f(0,v)) + f(a,0)), m_v likewise.
    fn two_modality_responses(model: &Toy, x: &[Tensor]) -> [Tensor; 2] {
        let full = model.fuse(&model.encode_all(x, true).unwrap(), true).unwrap();
        let (only_a, only_v) = (forward(model, x, 1), forward(model, x, 2));
        let m_a = ((&full - &only_v).unwrap() + &only_a).unwrap().affine(0.5, 0.0).unwrap();
        let m_v = ((&full - &only_a).unwrap() + &only_v).unwrap().affine(0.5, 0.0).unwrap();
        [m_a, m_v]
    }

    /// The former two-modality coefficients (cap 10).
    fn two_modality_coefficients(s: [f64; 2], running: [f64; 2], alpha: f64) -> [f64; 2] {
        let r = [(s[1] - s[0]).exp(), (s[0] - s[1]).exp()];
        let r_opt = [(running[1] - running[0]).exp(), (running[0] - running[1]).exp()];
        [(alpha * (r_opt[0] - r[0]).min(10.0)).exp(), (alpha * (r_opt[1] - r[1]).min(10.0)).exp()]
    }

    /// The official UR-Funny responses (`URFunny_net.py` `Modality_Audio` / `_Visual` / `_Text`),
    /// written out from hand forwards; bits: audio 1, visual 2, text 4.
    fn urfunny_responses(model: &Toy, x: &[Tensor]) -> Vec<Tensor> {
        let f = |mask: usize| forward(model, x, mask);
        let total = model.fuse(&model.encode_all(x, true).unwrap(), true).unwrap();
        let (pad_audio, pad_visual, pad_text) = (f(6), f(5), f(3));
        let (pad_visual_audio, pad_visual_text, pad_audio_text) = (f(4), f(1), f(2));
        let third_sixth = |a: Tensor, b: Tensor| ((a / 3.0).unwrap() + (b / 6.0).unwrap()).unwrap();
        let m_a = third_sixth(
            ((&total - &pad_audio).unwrap() + &pad_visual_text).unwrap(),
            (((&pad_visual - &pad_audio_text).unwrap() + &pad_text).unwrap() - &pad_visual_audio).unwrap(),
        );
        let m_v = third_sixth(
            ((&total - &pad_visual).unwrap() + &pad_audio_text).unwrap(),
            (((&pad_audio - &pad_visual_text).unwrap() + &pad_text).unwrap() - &pad_visual_audio).unwrap(),
        );
        let m_t = third_sixth(
            ((&total - &pad_text).unwrap() + &pad_visual_audio).unwrap(),
            (((&pad_visual - &pad_audio_text).unwrap() + &pad_audio).unwrap() - &pad_visual_text).unwrap(),
        );
        vec![m_a, m_v, m_t]
    }

    /// s = mean_i −log max(softmax(m)_i[y_i], 1e-8), by hand on the host.
    fn hand_score(m: &Tensor, y: &[usize]) -> f64 {
        let (v, k) = (vec(m), m.dim(1).unwrap());
        let nll = |i: usize| {
            let row = &v[i * k..(i + 1) * k];
            let p = row[y[i]].exp() / row.iter().map(|x| x.exp()).sum::<f64>();
            -p.max(1e-8).ln()
        };
        (0..y.len()).map(nll).sum::<f64>() / y.len() as f64
    }

    /// The gradients of the hook semantics: a surrogate Σ_i k_i ⟨g, m_i⟩ with g = ∂CE/∂out of
    /// out = Σ_i m_i held fixed, i.e. cotangent k_i·g on m_i.
    fn hook_grads(model: &Toy, m: &[Tensor], k: &[f64], y: &Tensor) -> ParamGrads {
        let out = m.iter().skip(1).fold(m[0].clone(), |a, t| (a + t).unwrap());
        let (b, kk) = out.dims2().unwrap();
        let p = candle_nn::ops::softmax(&out, 1).unwrap();
        let oh =
            crate::util::one_hot(&host_targets(y).unwrap(), kk, candle_core::DType::F64, &candle_core::Device::Cpu)
                .unwrap();
        let g = ((p - oh).unwrap() / b as f64).unwrap().detach();
        let surrogate = m
            .iter()
            .zip(k)
            .map(|(mi, &ki)| ((&g * ki).unwrap() * mi).unwrap().sum_all().unwrap())
            .reduce(|a, t| (a + t).unwrap())
            .unwrap();
        all_grads(model, &surrogate).unwrap()
    }

    #[test]
    fn shapley_weights_by_hand() {
        assert_eq!(shapley_weights(2), vec![0.5, 0.5]);
        assert_close(&shapley_weights(3), &[1.0 / 3.0, 1.0 / 6.0, 1.0 / 3.0], 1e-15, "M = 3");
        assert_close(&shapley_weights(4), &[0.25, 1.0 / 12.0, 1.0 / 12.0, 0.25], 1e-15, "M = 4");
        // Σ_S w(|S|) over the 2^(M−1) coalitions without i is 1.
        for m in 2..=MAX_MODALITIES {
            let w = shapley_weights(m);
            let binom = |n: usize, k: usize| (0..k).fold(1.0, |a, j| a * (n - j) as f64 / (j + 1) as f64);
            let total: f64 = (0..m).map(|s| binom(m - 1, s) * w[s]).sum();
            assert!((total - 1.0).abs() < 1e-12, "M = {m}: {total}");
        }
    }

    /// At M = 2 the Shapley responses are bit for bit the former ½(f(a,v) − f(0,v) + f(a,0)).
    #[test]
    fn m2_responses_equal_the_two_modality_formula() {
        for seed in 0..6u64 {
            let model = Toy::new(&[3, 4], 5, 3, seed);
            let x = model.inputs(6, 50 + seed);
            let r = responses(&model, &x, true).unwrap();
            assert_eq!(r.coalitions.len(), 3);
            let want = two_modality_responses(&model, &x);
            for (m, (got, want)) in r.m.iter().zip(&want).enumerate() {
                assert_close(&vec(got), &vec(want), 0.0, &format!("seed {seed}: m_{m}"));
            }
            assert_close(&vec(r.f(1)), &vec(&forward(&model, &x, 1)), 0.0, "f(a,0)");
            let sum = vec(&(&r.m[0] + &r.m[1]).unwrap());
            assert_close(&sum, &vec(r.full()), 1e-12, "m_a + m_v = f(a,v)");
        }
    }

    #[test]
    fn m2_coefficients_and_running_means_equal_the_two_modality_rule() {
        let mut rng = Rng::new(17);
        for i in 0..2000 {
            let mut draw = || 6.0 * rng.uniform();
            let (s, running) = ([draw(), draw()], [draw(), draw()]);
            let alpha = [0.1, 1.5, 4.0][i % 3];
            assert_eq!(
                coefficients(&s, &running, alpha),
                two_modality_coefficients(s, running, alpha),
                "{s:?} {running:?}"
            );
            let t = 1 + i as u64 % 50;
            let old = [0, 1].map(|m| running[m] * (t as f64 - 1.0) / t as f64 + s[m] / t as f64);
            assert_eq!(update_running(&running, &s, t), old);
        }
        // The cap 10 at M = 2.
        assert_eq!(coefficients(&[10.0, 0.0], &[0.0, 30.0], 0.1)[0], 1f64.exp());
    }

    /// At M = 2 one step changes the parameters as the former code did: its responses, its
    /// coefficients from the running scores before the update, its scaled output, and the
    /// conditional clip, on random toys, states and clip thresholds.
    #[test]
    fn m2_step_equals_the_two_modality_update() {
        for seed in 0..6u64 {
            let model = Toy::new(&[3, 4], 5, 3, seed);
            let x = model.inputs(6, 10 + seed);
            let y = targets(6, 3);
            let yv = host_targets(&y).unwrap();
            let running = [0.2 + 0.1 * seed as f64, 0.9 - 0.1 * seed as f64];
            let clip_threshold = if seed % 2 == 0 { 1e9 } else { 0.05 };
            let mut agm = Agm::new(AgmConfig { clip_threshold, ..AgmConfig::default() });
            agm.load_state(&[("agm.running_scores".into(), f64_tensor(&running).unwrap())]).unwrap();
            agm.iteration = 4;

            let m = two_modality_responses(&model, &x);
            let s = [hand_score(&m[0], &yv), hand_score(&m[1], &yv)];
            let k = two_modality_coefficients(s, running, 1.5);
            let scaled = ((&m[0] * k[0]).unwrap() + (&m[1] * k[1]).unwrap()).unwrap();
            let sum = (&m[0] + &m[1]).unwrap();
            let out = (&scaled + (sum - &scaled).unwrap().detach()).unwrap();
            let mut want = all_grads(&model, &CrossEntropy.loss(&out, &y).unwrap()).unwrap();
            let clipped = clip_on_head_weight(&mut want, clip_threshold).unwrap();
            assert_eq!(clipped, seed % 2 == 1, "the clip is exercised on odd seeds");

            let (upd, rep) = grads_by_sgd(&mut agm, &model, 3, &x, &y);
            for (name, got) in &upd {
                assert_close(got, &vec(want.get(name).unwrap()), 1e-12, &format!("seed {seed}: {name}"));
            }
            let get = |key: &str| rep.scalars.iter().find(|(n, _)| n == key).unwrap().1;
            assert!((get("coeff_audio") - k[0]).abs() < 1e-12 && (get("coeff_visual") - k[1]).abs() < 1e-12);
            let (run, it) = agm.running();
            assert_eq!(it, 5);
            assert_close(run, &[0, 1].map(|m| running[m] * 4.0 / 5.0 + s[m] / 5.0), 1e-12, "running");
        }
    }

    /// The gradients of the scaled output equal the hook formula at M = 2: ½(k_a+k_v)·g on f(a,v),
    /// ½(k_v−k_a)·g on f(0,v), ½(k_a−k_v)·g on f(a,0).
    #[test]
    fn scaled_gradients_equal_the_hook_formula() {
        let model = Toy::new(&[3, 4], 5, 3, 7);
        let x = model.inputs(6, 8);
        let y = targets(6, 3);
        let k = [1.7, 0.4];
        let r = responses(&model, &x, true).unwrap();
        let out = scaled_output(&r.m, &k).unwrap();
        let g_ours = all_grads(&model, &CrossEntropy.loss(&out, &y).unwrap()).unwrap();

        let r = responses(&model, &x, true).unwrap();
        let out = (&r.m[0] + &r.m[1]).unwrap();
        let p = candle_nn::ops::softmax(&out, 1).unwrap();
        let oh =
            crate::util::one_hot(&host_targets(&y).unwrap(), 3, candle_core::DType::F64, &candle_core::Device::Cpu)
                .unwrap();
        let g = ((p - oh).unwrap() / 6.0).unwrap().detach();
        let c = |f: f64| (&g * f).unwrap();
        let surrogate = (((c(0.5 * (k[0] + k[1])) * r.full()).unwrap().sum_all().unwrap()
            + (c(0.5 * (k[1] - k[0])) * r.f(2)).unwrap().sum_all().unwrap())
        .unwrap()
            + (c(0.5 * (k[0] - k[1])) * r.f(1)).unwrap().sum_all().unwrap())
        .unwrap();
        let g_hook = all_grads(&model, &surrogate).unwrap();
        assert_eq!(g_ours.len(), g_hook.len());
        for e in g_hook.entries() {
            assert_close(&vec(g_ours.get(&e.name).unwrap()), &vec(&e.grad), 1e-10, &e.name);
        }
    }

    #[test]
    fn score_floor_and_running_means() {
        let m = Tensor::new(&[[0.0f64, 0.0], [100.0, -100.0]], &candle_core::Device::Cpu).unwrap();
        let s = score(&m, &[0, 1]).unwrap();
        assert!((s - 0.5 * (2f64.ln() + 1e8f64.ln())).abs() < 1e-9, "{s}");
        let mut r = vec![0.0; 3];
        for (t, s) in [[1.0, 2.0, 0.0], [3.0, 4.0, 3.0], [5.0, 0.0, 9.0]].iter().enumerate() {
            r = update_running(&r, s, t as u64 + 1);
        }
        assert_close(&r, &[3.0, 2.0, 4.0], 1e-12, "running");
    }

    /// At M = 3 the responses are the official UR-Funny formula and sum to f(AVT).
    #[test]
    fn m3_responses_are_the_official_urfunny_formula() {
        let model = Toy::new(&[3, 4, 2], 5, 3, 2);
        let x = model.inputs(6, 3);
        let r = responses(&model, &x, true).unwrap();
        assert_eq!(r.coalitions.len(), 7, "2^3 − 1 forwards");
        let want = urfunny_responses(&model, &x);
        assert_eq!(r.m.len(), 3);
        for (m, (got, want)) in r.m.iter().zip(&want).enumerate() {
            assert_close(&vec(got), &vec(want), 1e-12, &format!("m_{m}"));
        }
        let sum = r.m.iter().skip(1).fold(r.m[0].clone(), |a, t| (a + t).unwrap());
        assert_close(&vec(&sum), &vec(r.full()), 1e-12, "Σ m = f(AVT)");
    }

    /// M = 3 coefficients by the UR-Funny code's own arithmetic: r_m = exp((s̄ − s_m)·3/2), cap 7.
    #[test]
    fn m3_coefficients_by_hand() {
        let (s, running, alpha): ([f64; 3], [f64; 3], f64) = ([0.5, 1.0, 2.0], [0.9, 0.6, 0.3], 1.2);
        let mean = (0.5 + 1.0 + 2.0) / 3.0;
        let mean_opt = (0.9 + 0.6 + 0.3) / 3.0;
        let want: Vec<f64> = (0..3)
            .map(|m| {
                let ratio = ((mean - s[m]) * 3.0 / 2.0).exp();
                let optimal = ((mean_opt - running[m]) * 3.0 / 2.0).exp();
                (alpha * (optimal - ratio).min(7.0)).exp()
            })
            .collect();
        assert_close(&coefficients(&s, &running, alpha), &want, 1e-12, "k");
        // r*_audio − r_audio = exp(20) − 1 is capped at 7 (10 at M = 2).
        let k = coefficients(&[0.0; 3], &[0.0, 20.0, 20.0], 0.5);
        assert_eq!(k[0], 3.5f64.exp());
        assert_eq!(ratio_cap(2), 10.0);
    }

    /// At M = 3 a step's gradients are the hooks' (cotangent k_i·g on the official m_i, k from
    /// hand scores and the running scores), and every encoder changes.
    #[test]
    fn m3_step_matches_the_hooks_and_trains_every_encoder() {
        let model = Toy::new(&[3, 4, 2], 5, 3, 4);
        let x = model.inputs(9, 5);
        let y = targets(9, 3);
        let yv = host_targets(&y).unwrap();
        let running = [0.4, 1.1, 0.7];
        let mut agm = Agm::new(AgmConfig { clip_threshold: 1e9, ..AgmConfig::default() });
        agm.load_state(&[("agm.running_scores".into(), f64_tensor(&running).unwrap())]).unwrap();
        agm.iteration = 2;

        let m = urfunny_responses(&model, &x);
        let s: Vec<f64> = m.iter().map(|mi| hand_score(mi, &yv)).collect();
        let mean = s.iter().sum::<f64>() / 3.0;
        let mean_opt = running.iter().sum::<f64>() / 3.0;
        let k: Vec<f64> = (0..3)
            .map(|i| (1.5 * (((mean_opt - running[i]) * 1.5).exp() - ((mean - s[i]) * 1.5).exp()).min(7.0)).exp())
            .collect();
        let want = hook_grads(&model, &m, &k, &y);
        let (upd, rep) = grads_by_sgd(&mut agm, &model, 0, &x, &y);
        for (name, got) in &upd {
            assert_close(got, &vec(want.get(name).unwrap()), 1e-10, name);
            if name.starts_with("enc") {
                assert!(got.iter().any(|v| *v != 0.0), "{name} unchanged");
            }
        }
        for (i, name) in ["audio", "visual", "text"].iter().enumerate() {
            let get = |key: String| rep.scalars.iter().find(|(n, _)| *n == key).unwrap().1;
            assert!((get(format!("coeff_{name}")) - k[i]).abs() < 1e-12, "k_{name}");
            assert!((get(format!("score_{name}")) - s[i]).abs() < 1e-12, "s_{name}");
        }
        assert_eq!(agm.running().0.len(), 3);
        let p = agm.predict(&model, &x).unwrap();
        assert_eq!(p.branches.len(), 3);
    }

    /// Bad modality counts and states are clear errors, not panics.
    #[test]
    fn refuses_too_many_modalities_and_mismatched_state() {
        let facts = |m| ModelFacts {
            modalities: m,
            head: "concat",
            head_is_linear: true,
            dense: false,
            task: TaskKind::Classification,
        };
        let cfg = AgmConfig::default();
        cfg.check_model(&facts(MAX_MODALITIES)).unwrap();
        let e = cfg.check_model(&facts(MAX_MODALITIES + 1)).unwrap_err().to_string();
        assert!(e.contains("at most 8 modalities") && e.contains("has 9"), "{e}");
        assert!(cfg.check_model(&facts(1)).unwrap_err().to_string().contains("2 or more"));
        let nine = Toy::new(&[1; 9], 2, 2, 0);
        let agm = Agm::new(cfg.clone());
        assert!(agm.check(&nine).unwrap_err().to_string().contains("at most 8"));
        assert!(responses(&nine, &nine.inputs(2, 0), false).unwrap_err().to_string().contains("at most 8"));

        // Running scores of a two-modality run do not train a three-modality model.
        let model = Toy::new(&[3, 4, 2], 5, 3, 4);
        let (x, y) = (model.inputs(4, 1), targets(4, 3));
        let mut agm = Agm::new(cfg.clone());
        agm.load_state(&[("agm.running_scores".into(), f64_tensor(&[0.1, 0.2]).unwrap())]).unwrap();
        let mut sgd = plain_sgd(0.1);
        let e = agm.train_step(&mut context(&model, &mut sgd, 0), &x, &y).unwrap_err().to_string();
        assert!(e.contains("running scores for 2 modalities"), "{e}");
        let e = Agm::new(cfg.clone()).load_state(&[("agm.running_scores".into(), f64_tensor(&[0.1]).unwrap())]);
        assert!(e.unwrap_err().to_string().contains("expected 2 to 8"));

        // State round trip after a three-modality step.
        let mut agm = Agm::new(cfg);
        assert!(agm.state().unwrap().iter().all(|(n, _)| n != "agm.running_scores"), "no scores before a step");
        agm.train_step(&mut context(&model, &mut sgd, 0), &x, &y).unwrap();
        let mut other = Agm::new(AgmConfig::default());
        other.load_state(&agm.state().unwrap()).unwrap();
        assert_eq!(other.running(), agm.running());
    }
}
