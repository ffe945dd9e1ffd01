//! PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023),
//! `Modal-Imbalance-PMR/main_Prototype_grad.py`, in an M-modality form (any M ≥ 2) that is the
//! official two-modality rule at M = 2.
//!
//! * Prototypes (383-441): before training and after every epoch, in evaluation mode, the class
//!   means p_c^m of z_m over the first ⌊fraction·N_batches⌋ (at least 1) training batches; after
//!   epoch e > 0 they are blended with the previous ones, p ← (1−μ)·p_new + μ·p_old.
//! * Prototypical cross-entropy logits sim_m = −‖z_m − p_c^m‖₂ (no temperature).
//! * s_m = Σ_i softmax(sim_m)_i\[y_i\]; ρ_m = mean_{j≠m} s_m / s_j (the ratio OGM-GE's
//!   M-modality form uses, `util::mean_score_ratios`); at M = 2, ρ_a = s_a / s_v is the official ρ and
//!   ρ_v = s_v / s_a.
//! * The official binary switch, per modality: the prototypical cross-entropy of modality m gets
//!   the weight α (`prototype_weight`) when ρ_m < 1 (a weaker modality), 0 otherwise. At M = 2
//!   this is the official (β, λ) = (0, α) if ρ > 1, (α, 0) if ρ < 1, (0, 0) if ρ = 1.
//! * Loss (152-178), inside the modulation window: CE(out) + Σ_m w_m·CE(sim_m); outside: CE(out).
//!   One backward. The paper's prototype-entropy regulariser is not in the official code (PMR#7,
//!   #9) and not here.
//!
//! The alternative three-modality rule, BalanceBenchmark's
//! (`balancemm/trainer/PMR_trainer.py:147-192` at `4c1482f`), is not implemented: at M ≥ 3 it
//! drops the prototypical cross-entropy, uses ρ_m = s_m / min_j s_j and scales the encoder
//! gradients as OGM does, g ← (1 − tanh(η·ρ_m))·g − N(0, std g) when ρ_m > 1 (η 0.01) — a
//! different method from its own two-modality PMR.
//!
//! The step reports `ratio` (ρ_a), `beta` and `lambda` at M = 2, as the official code names them,
//! and `ratio_<name>`, `proto_weight_<name>` for every modality at M ≥ 3.

use candle_core::Tensor;
use dgl_core::model::detach_all;
use dgl_core::{BatchSource, Method, MultimodalModel, Result, Split, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, TaskKind};
use crate::util::{
    all_grads, check_hp, check_losses, check_non_negative, check_window, find_state, flatten_rows, host_f64,
    host_targets, in_window, mean_score_ratios, one_hot, scalar, target_probs, upload,
};

/// PMR's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PmrConfig {
    /// α: the weight of the weaker modality's prototypical cross-entropy (`--alpha`; the CREMA-D
    /// concat script's 2.0).
    pub prototype_weight: f64,
    /// μ of the prototype EMA (`--momentum_coef`; code default 0.2, the shipped scripts 0.0).
    pub momentum_coef: f64,
    /// Fraction of the training batches used for the prototypes (official 0.1; AVE 0.5).
    pub prototype_fraction: f64,
    /// First modulated epoch (0-based, inclusive). Official 0.
    pub modulation_starts: usize,
    /// Last modulated epoch (inclusive); `None` = until the end. Official CREMA-D script 70.
    pub modulation_ends: Option<usize>,
}

impl Default for PmrConfig {
    fn default() -> Self {
        Self {
            prototype_weight: 2.0,
            momentum_coef: 0.2,
            prototype_fraction: 0.1,
            modulation_starts: 0,
            modulation_ends: Some(70),
        }
    }
}

impl MethodSpec for PmrConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "pmr",
        label: "PMR",
        summary: "prototypical cross-entropy for the weaker modality, switched by the prototype ratio",
        modalities: ModalityCount::AtLeast(2),
        heads: HeadSupport::Any,
        tasks: &[TaskKind::Classification],
        needs_validation: false,
    };

    fn validate(&self) -> Result<()> {
        check_non_negative("prototype_weight", self.prototype_weight)?;
        check_hp((0.0..=1.0).contains(&self.momentum_coef), "momentum_coef", self.momentum_coef, "must be in [0, 1]")?;
        check_hp(
            self.prototype_fraction > 0.0 && self.prototype_fraction <= 1.0,
            "prototype_fraction",
            self.prototype_fraction,
            "must be in (0, 1]",
        )?;
        check_window(self.modulation_starts, self.modulation_ends)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Pmr::new(self.clone(), ctx.num_classes)))
    }

    fn official(_bench: Option<Benchmark>) -> Self {
        Self { prototype_weight: 2.0, momentum_coef: 0.0, modulation_ends: Some(70), ..Self::default() }
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        let silent = bench.is_some_and(|b| b != Benchmark::CremaD);
        vec![
            Setting::new(
                "method.prototype_weight",
                2.0,
                if silent {
                    "silent (PMR has no KS/VGGSound script); the CREMA-D α=2.0 is used"
                } else {
                    "PMR `bash.sh` (CREMA-D, concat fusion: α=2.0)"
                },
            ),
            Setting::new(
                "method.momentum_coef",
                "0.0",
                if silent {
                    "silent; the CREMA-D script's 0.0 is used"
                } else {
                    "PMR `bash.sh` (`--momentum_coef 0.0`; the code default 0.2 is not what was run)"
                },
            ),
            Setting::new("method.modulation_ends", 70, "PMR `bash.sh` (modulation epochs 0..70)"),
        ]
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        Schedule::new(1e-3, &[70], "PMR `main_Prototype_grad.py` defaults (lr 1e-3, StepLR(70, 0.1))")
    }
}

/// Number of training batches the prototypes use: the official loop breaks once
/// `sample_count >= all_num // 10`, i.e. max(1, ⌊fraction·n⌋) batches.
pub fn prototype_batches(n_batches: usize, fraction: f64) -> usize {
    (((n_batches as f64) * fraction + 1e-9).floor() as usize).max(1)
}

/// Class sums and counts of the representations of every modality over `limit` training batches
/// (evaluation mode), then the class means blended with `old` when `ema` is `Some(μ)`.
///
/// A class with no sample keeps its previous prototype (zeros when there is none); the official
/// code divides by zero there.
pub fn compute_prototypes(
    model: &dyn MultimodalModel,
    data: &dyn BatchSource,
    num_classes: usize,
    limit: usize,
    old: Option<&[Tensor]>,
    ema: Option<f64>,
) -> Result<Vec<Tensor>> {
    let mm = model.num_modalities();
    let mut sums: Vec<Option<Tensor>> = vec![None; mm];
    let mut counts = vec![0usize; num_classes];
    data.for_each_batch(Split::Train, Some(limit), &mut |x, y| {
        let z = detach_all(&model.encode_all(x, false)?);
        let yv = host_targets(y)?;
        for &c in &yv {
            if c >= num_classes {
                return Err(dgl_core::Error::InvalidInput(format!(
                    "target {c} out of range for {num_classes} classes"
                )));
            }
            counts[c] += 1;
        }
        for (m, zm) in z.iter().enumerate() {
            let zm = flatten_rows(zm)?;
            let oh = one_hot(&yv, num_classes, zm.dtype(), zm.device())?;
            let s = oh.t()?.matmul(&zm)?; // [K, d]
            sums[m] = Some(match sums[m].take() {
                Some(acc) => (acc + s)?,
                None => s,
            });
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(mm);
    for (m, s) in sums.into_iter().enumerate() {
        let s = s.ok_or_else(|| dgl_core::Error::InvalidInput("PMR prototypes: the training split is empty".into()))?;
        let (k, d) = s.dims2()?;
        let sv = host_f64(&s)?;
        let ov = match old {
            Some(o) => Some(host_f64(&o[m])?),
            None => None,
        };
        let mut p = vec![0f64; k * d];
        for (c, &count) in counts.iter().enumerate().take(k) {
            for j in 0..d {
                let i = c * d + j;
                let prev = ov.as_ref().map(|o| o[i]);
                p[i] = if count == 0 {
                    prev.unwrap_or(0.0)
                } else {
                    let new = sv[i] / count as f64;
                    match (ema, prev) {
                        (Some(mu), Some(pr)) => (1.0 - mu) * new + mu * pr,
                        _ => new,
                    }
                };
            }
        }
        out.push(upload(p, &[k, d], s.dtype(), s.device())?);
    }
    Ok(out)
}

/// sim = −‖z_i − p_c‖₂ for every sample and class: `[B, d]`, `[K, d]` → `[B, K]`.
pub fn prototype_logits(z: &Tensor, protos: &Tensor) -> Result<Tensor> {
    let z = flatten_rows(z)?;
    let p = protos.to_device(z.device())?.to_dtype(z.dtype())?;
    let diff = z.unsqueeze(1)?.broadcast_sub(&p.unsqueeze(0)?)?;
    // + 1e-12 inside the root keeps the gradient finite when z equals a prototype exactly.
    Ok(diff.sqr()?.sum(2)?.affine(1.0, 1e-12)?.sqrt()?.neg()?)
}

/// The binary switch per modality: the weight of CE(sim_m), α when ρ_m < 1, else 0 (M = 2:
/// (β, λ) = (0, α) if ρ_a > 1, (α, 0) if ρ_a < 1, (0, 0) if ρ_a = 1).
pub fn prototype_weights(ratios: &[f64], alpha: f64) -> Vec<f64> {
    ratios.iter().map(|&r| if r < 1.0 { alpha } else { 0.0 }).collect()
}

/// The scalars a step reports: the official `ratio` (ρ_a), `beta`, `lambda` at M = 2, per-modality
/// names at M ≥ 3.
fn reported(names: &[String], ratios: &[f64], weights: &[f64]) -> Vec<(String, f64)> {
    if let ([rho_a, _], [beta, lam]) = (ratios, weights) {
        return vec![("ratio".into(), *rho_a), ("beta".into(), *beta), ("lambda".into(), *lam)];
    }
    let ratios = names.iter().zip(ratios).map(|(n, &r)| (format!("ratio_{n}"), r));
    ratios.chain(names.iter().zip(weights).map(|(n, &w)| (format!("proto_weight_{n}"), w))).collect()
}

/// PMR.
#[derive(Clone, Debug)]
pub struct Pmr {
    pub cfg: PmrConfig,
    pub num_classes: usize,
    prototypes: Option<Vec<Tensor>>,
}

impl Pmr {
    pub fn new(cfg: PmrConfig, num_classes: usize) -> Self {
        Self { cfg, num_classes, prototypes: None }
    }

    /// The current prototypes, one `[K, d_m]` tensor per modality.
    pub fn prototypes(&self) -> Option<&[Tensor]> {
        self.prototypes.as_deref()
    }

    fn refresh(&mut self, model: &dyn MultimodalModel, data: &dyn BatchSource, ema: bool) -> Result<()> {
        let limit = prototype_batches(data.num_batches(Split::Train), self.cfg.prototype_fraction);
        let old = self.prototypes.take();
        let p = compute_prototypes(
            model,
            data,
            self.num_classes,
            limit,
            old.as_deref(),
            if ema { Some(self.cfg.momentum_coef) } else { None },
        )?;
        self.prototypes = Some(p);
        Ok(())
    }
}

impl Method for Pmr {
    fn name(&self) -> String {
        PmrConfig::DESCRIPTOR.name.into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        PmrConfig::DESCRIPTOR.check_modalities(model.num_modalities())
    }

    fn on_epoch_start(&mut self, model: &dyn MultimodalModel, _epoch: usize, data: &dyn BatchSource) -> Result<()> {
        // Before the first epoch (or when resuming without saved prototypes): no EMA.
        if self.prototypes.is_none() {
            self.refresh(model, data, false)?;
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        self.check(ctx.model)?;
        let model = ctx.model;
        let protos = self.prototypes.as_ref().ok_or_else(|| {
            dgl_core::Error::InvalidInput(
                "PMR needs its prototypes: the loop must call on_epoch_start before training".into(),
            )
        })?;
        if protos.len() != model.num_modalities() {
            return Err(dgl_core::Error::InvalidInput(format!(
                "PMR holds prototypes for {} modalities, the model has {}",
                protos.len(),
                model.num_modalities()
            )));
        }
        let z = model.encode_all(inputs, true)?;
        let out = model.fuse(&z, true)?;
        let l_mm = ctx.loss.loss(&out, targets)?;
        let sim: Vec<Tensor> = z.iter().zip(protos).map(|(zm, p)| prototype_logits(zm, p)).collect::<Result<_>>()?;
        let l_p: Vec<Tensor> = sim.iter().map(|s| ctx.loss.loss(s, targets)).collect::<candle_core::Result<_>>()?;
        let y = host_targets(targets)?;
        let scores = sim.iter().map(|s| Ok(target_probs(s, &y)?.iter().sum())).collect::<Result<Vec<f64>>>()?;
        let ratios = mean_score_ratios(&scores);
        let active = in_window(ctx.epoch, self.cfg.modulation_starts, self.cfg.modulation_ends);
        let weights =
            if active { prototype_weights(&ratios, self.cfg.prototype_weight) } else { vec![0.0; ratios.len()] };
        let names = model.modality_names();
        let mut losses = vec![("loss_mm".to_string(), scalar(&l_mm)?)];
        for (n, l) in names.iter().zip(&l_p) {
            losses.push((format!("loss_proto_{n}"), scalar(l)?));
        }
        check_losses(&losses, ctx)?;
        let mut total = l_mm;
        for (l, &w) in l_p.iter().zip(&weights) {
            if w > 0.0 {
                total = (total + (l * w)?)?;
            }
        }
        let mut grads = all_grads(model, &total)?;
        let grad_norm = ctx.apply(&mut grads)?;
        Ok(StepReport {
            losses,
            logits_mm: Some(out.detach()),
            logits_branches: Vec::new(),
            z: detach_all(&z),
            grad_norm,
            scalars: reported(&names, &ratios, &weights),
        })
    }

    fn on_epoch_end(&mut self, ctx: &mut StepContext<'_>, data: &dyn BatchSource) -> Result<()> {
        // Official: calculate_prototype(..., epoch, old) blends only when epoch > 0.
        self.refresh(ctx.model, data, ctx.epoch > 0)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(match &self.prototypes {
            None => Vec::new(),
            Some(p) => p
                .iter()
                .enumerate()
                .map(|(m, t)| Ok((format!("pmr.prototypes.{m}"), t.to_device(&candle_core::Device::Cpu)?)))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut p = Vec::new();
        while let Some(t) = find_state(state, &format!("pmr.prototypes.{}", p.len())) {
            if t.dims2()?.0 != self.num_classes {
                return Err(dgl_core::Error::InvalidInput(format!(
                    "PMR prototypes have {} rows for {} classes",
                    t.dims2()?.0,
                    self.num_classes
                )));
            }
            p.push(t.clone());
        }
        if !p.is_empty() {
            self.prototypes = Some(p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use candle_core::{DType, Device};
    use dgl_core::grads::ParamGrads;
    use dgl_core::loss::{CrossEntropy, Loss};

    /// PMR (α = 2, default config, 3 classes) after the start of epoch 0: initial prototypes.
    fn started(model: &Toy, data: &Data) -> Pmr {
        let mut pmr = Pmr::new(PmrConfig::default(), 3);
        pmr.on_epoch_start(model, 0, data).unwrap();
        pmr
    }

    #[test]
    fn batch_count_follows_the_official_break() {
        assert_eq!(prototype_batches(105, 0.1), 10);
        assert_eq!(prototype_batches(70, 0.1), 7);
        assert_eq!(prototype_batches(9, 0.1), 1);
        assert_eq!(prototype_batches(1, 0.1), 1);
        assert_eq!(prototype_batches(10, 0.5), 5);
    }

    #[test]
    fn prototypes_are_class_means_then_ema() {
        let model = Toy::new(&[3, 2], 4, 3, 1);
        let data = Data::random(&model, 3, 1, 5, 2);
        // By hand: class means over the first 2 batches.
        let mut sums = vec![vec![0f64; 4 * 3]; 2];
        let mut counts = [0f64; 3];
        for (x, y) in data.train.iter().take(2) {
            let yv = host_targets(y).unwrap();
            for (m, s) in sums.iter_mut().enumerate() {
                let z = vec(&model.encode(m, &x[m], false).unwrap());
                for (i, &c) in yv.iter().enumerate() {
                    for j in 0..4 {
                        s[c * 4 + j] += z[i * 4 + j];
                    }
                }
            }
            for &c in &yv {
                counts[c] += 1.0;
            }
        }
        let means: Vec<Vec<f64>> =
            sums.iter().map(|s| s.iter().enumerate().map(|(i, v)| v / counts[i / 4]).collect()).collect();
        let p = compute_prototypes(&model, &data, 3, 2, None, None).unwrap();
        for m in 0..2 {
            assert_close(&vec(&p[m]), &means[m], 1e-12, "class means");
        }
        // EMA with μ = 0.3 against an old prototype of ones.
        let old: Vec<Tensor> = (0..2).map(|_| Tensor::ones((3, 4), DType::F64, &Device::Cpu).unwrap()).collect();
        let p = compute_prototypes(&model, &data, 3, 2, Some(&old), Some(0.3)).unwrap();
        for m in 0..2 {
            let want: Vec<f64> = means[m].iter().map(|v| 0.7 * v + 0.3).collect();
            assert_close(&vec(&p[m]), &want, 1e-12, "EMA");
        }
        // A class with no sample keeps its old prototype.
        let p = compute_prototypes(
            &model,
            &data,
            4,
            2,
            Some(&[
                Tensor::ones((4, 4), DType::F64, &Device::Cpu).unwrap(),
                Tensor::ones((4, 4), DType::F64, &Device::Cpu).unwrap(),
            ]),
            Some(0.3),
        )
        .unwrap();
        assert_close(&vec(&p[0])[12..], &[1.0; 4], 0.0, "empty class");
    }

    #[test]
    fn epoch_hooks_blend_only_after_epoch_0() {
        let model = Toy::new(&[3, 2], 4, 3, 1);
        let data = Data::random(&model, 10, 1, 5, 2);
        let mut pmr = started(&model, &data);
        let p0 = vec(&pmr.prototypes().unwrap()[0]);
        let fresh = compute_prototypes(&model, &data, 3, 1, None, None).unwrap();
        assert_close(&p0, &vec(&fresh[0]), 0.0, "initial");
        // Change the encoder so new means differ, then end epochs 0 and 1.
        let w = &model.enc[0].0;
        w.set(&(w.as_tensor() * 1.5).unwrap()).unwrap();
        let new = compute_prototypes(&model, &data, 3, 1, None, None).unwrap();
        let mut sgd = plain_sgd(0.1);
        let mut ctx = context(&model, &mut sgd, 0);
        pmr.on_epoch_end(&mut ctx, &data).unwrap(); // epoch 0: replaced
        assert_close(&vec(&pmr.prototypes().unwrap()[0]), &vec(&new[0]), 0.0, "after epoch 0");
        w.set(&(w.as_tensor() * 0.5).unwrap()).unwrap();
        let newer = compute_prototypes(&model, &data, 3, 1, None, None).unwrap();
        ctx.epoch = 1;
        pmr.on_epoch_end(&mut ctx, &data).unwrap(); // epoch 1: EMA μ = 0.2
        let want: Vec<f64> = vec(&newer[0]).iter().zip(vec(&new[0])).map(|(n, o)| 0.8 * n + 0.2 * o).collect();
        assert_close(&vec(&pmr.prototypes().unwrap()[0]), &want, 1e-12, "after epoch 1");
        // State round trip.
        let st = pmr.state().unwrap();
        let mut other = Pmr::new(PmrConfig::default(), 3);
        other.load_state(&st).unwrap();
        assert_close(&vec(&other.prototypes().unwrap()[1]), &vec(&pmr.prototypes().unwrap()[1]), 0.0, "state");
    }

    /// The two-modality switch exactly as this module had it before the M-modality form:
    /// (β, λ) for ρ = s_a / s_v.
    fn two_modality_switch(ratio: f64, alpha: f64) -> (f64, f64) {
        if ratio > 1.0 {
            (0.0, alpha)
        } else if ratio < 1.0 {
            (alpha, 0.0)
        } else {
            (0.0, 0.0)
        }
    }

    #[test]
    fn prototype_logits_by_hand() {
        let z = Tensor::new(&[[0.0f64, 0.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let p = Tensor::new(&[[0.0f64, 0.0], [3.0, 0.0]], &Device::Cpu).unwrap();
        let s = vec(&prototype_logits(&z, &p).unwrap());
        assert_close(&s, &[0.0, -3.0, -5.0, -4.0], 1e-6, "−‖z − p‖");
    }

    #[test]
    fn m2_weights_equal_the_binary_switch() {
        let mut rng = dgl_core::rng::Rng::new(4);
        let mut cases: Vec<(f64, f64)> = (0..2000).map(|_| (16.0 * rng.uniform(), 16.0 * rng.uniform())).collect();
        cases.extend([
            (2.0, 2.0),
            (0.0, 1.0),
            (1.0, 0.0),
            (0.0, 0.0),
            (1.0, 1.0 + f64::EPSILON),
            (1.0 + f64::EPSILON, 1.0),
        ]);
        for &(sa, sv) in &cases {
            let ratios = mean_score_ratios(&[sa, sv]);
            let ratio = sa / sv;
            assert!(ratios[0] == ratio || (ratio.is_nan() && ratios[0].is_nan()), "{sa} {sv}: ρ");
            let (beta, lam) = two_modality_switch(ratio, 2.0);
            assert_eq!(prototype_weights(&ratios, 2.0), vec![beta, lam], "{sa} {sv}");
        }
    }

    #[test]
    fn m3_weights_by_hand() {
        // s = (1, 1.1, 10): ρ_0 = (1/1.1 + 1/10)/2 ≈ 0.50, ρ_1 = (1.1 + 0.11)/2 = 0.605,
        // ρ_2 = (10 + 10/1.1)/2 ≈ 9.5: both weaker modalities get α.
        let r = mean_score_ratios(&[1.0, 1.1, 10.0]);
        assert_close(&r, &[(1.0 / 1.1 + 0.1) / 2.0, 0.605, (10.0 + 10.0 / 1.1) / 2.0], 1e-15, "ρ");
        assert_eq!(prototype_weights(&r, 2.0), vec![2.0, 2.0, 0.0]);
        // s = (3, 1, 2): ρ = ((3 + 3/2)/2, (1/3 + 1/2)/2, (2/3 + 2)/2) = (2.25, 5/12, 4/3).
        let r = mean_score_ratios(&[3.0, 1.0, 2.0]);
        assert_close(&r, &[2.25, 5.0 / 12.0, 4.0 / 3.0], 1e-15, "ρ");
        assert_eq!(prototype_weights(&r, 0.5), vec![0.0, 0.5, 0.0]);
        // A tie weights nothing.
        assert_eq!(prototype_weights(&mean_score_ratios(&[0.7; 3]), 2.0), vec![0.0; 3]);
    }

    /// CE(out) + Σ_m w_m CE(sim_m) with the given per-modality weights, from the given prototypes.
    fn reference_grads(model: &Toy, protos: &[Tensor], x: &[Tensor], y: &Tensor, w: &[f64]) -> ParamGrads {
        let z = model.encode_all(x, true).unwrap();
        let mut total = CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap();
        for (m, &wm) in w.iter().enumerate() {
            if wm > 0.0 {
                let sim = prototype_logits(&z[m], &protos[m]).unwrap();
                total = (total + (CrossEntropy.loss(&sim, y).unwrap() * wm).unwrap()).unwrap();
            }
        }
        all_grads(model, &total).unwrap()
    }

    /// s_m = Σ_i softmax(−‖z_m,i − p_c‖)\[y_i\] by hand on the host.
    fn hand_scores(model: &Toy, protos: &[Tensor], x: &[Tensor], y: &[usize]) -> Vec<f64> {
        let z = model.encode_all(x, true).unwrap();
        (0..z.len())
            .map(|m| {
                let (zm, p, d, k) = (vec(&z[m]), vec(&protos[m]), model.d, model.k);
                let sim =
                    |i: usize, c: usize| -(0..d).map(|j| (zm[i * d + j] - p[c * d + j]).powi(2)).sum::<f64>().sqrt();
                y.iter()
                    .enumerate()
                    .map(|(i, &yi)| sim(i, yi).exp() / (0..k).map(|c| sim(i, c).exp()).sum::<f64>())
                    .sum()
            })
            .collect()
    }

    /// At M = 2 the step's gradients are those of the former two-modality loss
    /// CE(out) + β CE(sim_a) + λ CE(sim_v), (β, λ) from the switch on ρ = s_a / s_v, on random toys.
    #[test]
    fn m2_step_equals_the_two_modality_update() {
        for seed in 0..6u64 {
            let model = Toy::new(&[3, 2], 4, 3, seed);
            let data = Data::random(&model, 2, 1, 6, 5 + seed);
            let mut pmr = started(&model, &data);
            let (x, y) = &data.train[1];
            let protos = pmr.prototypes().unwrap().to_vec();
            let s = hand_scores(&model, &protos, x, &host_targets(y).unwrap());
            let (beta, lam) = two_modality_switch(s[0] / s[1], 2.0);
            let g = reference_grads(&model, &protos, x, y, &[beta, lam]);
            let (upd, rep) = grads_by_sgd(&mut pmr, &model, 0, x, y);
            for (name, got) in &upd {
                assert_close(got, &vec(g.get(name).unwrap()), 1e-12, &format!("seed {seed}: {name}"));
            }
            let get = |key: &str| rep.scalars.iter().find(|(n, _)| n == key).unwrap().1;
            assert!((get("ratio") - s[0] / s[1]).abs() < 1e-12);
            assert_eq!((get("beta"), get("lambda")), (beta, lam));
        }
    }

    /// At M = 3 the prototypical cross-entropy of every modality with ρ_m < 1 (hand-computed
    /// ρ_m = (s_m/s_j + s_m/s_l)/2) is added with weight α, and the step changes every encoder.
    #[test]
    fn m3_step_weights_the_weaker_modalities() {
        let model = Toy::new(&[3, 2, 4], 4, 3, 6);
        let data = Data::random(&model, 2, 1, 6, 8);
        let mut pmr = started(&model, &data);
        let (x, y) = &data.train[1];
        let protos = pmr.prototypes().unwrap().to_vec();
        assert_eq!(protos.len(), 3);
        let s = hand_scores(&model, &protos, x, &host_targets(y).unwrap());
        let rho: Vec<f64> = (0..3).map(|m| (s[m] / s[(m + 1) % 3] + s[m] / s[(m + 2) % 3]) / 2.0).collect();
        let w: Vec<f64> = rho.iter().map(|&r| if r < 1.0 { 2.0 } else { 0.0 }).collect();
        assert!(w.contains(&2.0) && w.contains(&0.0), "{rho:?}");
        let g = reference_grads(&model, &protos, x, y, &w);
        let (upd, rep) = grads_by_sgd(&mut pmr, &model, 0, x, y);
        for (name, got) in &upd {
            assert_close(got, &vec(g.get(name).unwrap()), 1e-12, name);
            if name.starts_with("enc") && name.ends_with("weight") {
                assert!(got.iter().any(|v| *v != 0.0), "{name} unchanged");
            }
        }
        for (m, name) in ["audio", "visual", "text"].iter().enumerate() {
            let get = |key: String| rep.scalars.iter().find(|(n, _)| *n == key).unwrap().1;
            assert!((get(format!("ratio_{name}")) - rho[m]).abs() < 1e-12, "ρ_{name}");
            assert_eq!(get(format!("proto_weight_{name}")), w[m], "w_{name}");
        }
        assert_eq!(rep.losses.len(), 4);
        // Prototypes of another modality count are refused, not truncated.
        let mut two = Pmr::new(PmrConfig::default(), 3);
        two.load_state(&pmr.state().unwrap()[..2]).unwrap();
        let mut sgd = plain_sgd(0.1);
        let e = two.train_step(&mut context(&model, &mut sgd, 0), x, y).unwrap_err().to_string();
        assert!(e.contains("prototypes for 2 modalities"), "{e}");
    }
}
