//! OGM and OGM-GE (Peng et al., CVPR 2022), `OGM-GE_CVPR2022/main.py:80-153`, in an M-modality
//! form (any M ≥ 2) that is the official two-modality rule at M = 2.
//!
//! After the backward of L = CE(h(z_1, …, z_M), y):
//!
//! * per-modality logits ([`OgmUnimodalLogits::Official`], `main.py:95-104`): `out_m = W_m z_m + b_m`,
//!   the modality's own term of a head linear in each modality — concat: the weight block W_m and
//!   the shared bias over M, `fc_out.bias / M` (the official `/ 2` at M = 2); sum: layer m's weight
//!   and its own bias (`fc_x`, `fc_y`). The official formula is undefined for the gated and FiLM
//!   heads, which are refused ([`Method::check`], and [`MethodSpec::check_model`] before anything
//!   is built) unless the zero-masked shared head h(0, …, z_m, …, 0) is chosen
//!   ([`OgmUnimodalLogits::ZeroMask`], a deviation);
//! * s_m = Σ_i softmax(out_m)_i\[y_i\] (batch sum);
//! * ρ_m = mean_{j≠m} s_m / s_j (`util::mean_score_ratios`; BalanceBenchmark `OGM_trainer.py:113-134`
//!   at `4c1482f`, method `OGM_GE3`, whose scores are these). BalanceBenchmark's
//!   `ratios[modality] /= count` (l.134) sits outside its loop, so only the last modality's ratio
//!   is averaged: fixed here, every ρ_m is a mean. Its `+ 1e-5` in the denominators is not taken
//!   (the official OGM-GE code has none). At M = 2: ρ_a = s_a / s_v, ρ_v = s_v / s_a, the official
//!   pair (ρ_a as s_a / s_v rather than the official 1/ρ_v: equal up to rounding, ~1e-16);
//! * the official per-modality rule for every modality whose ρ_m > 1:
//!   k_m = 1 − tanh(α·relu(ρ_m)) (α: `modulation_strength`; the official discontinuity at ρ = 1,
//!   tanh(α·ρ) rather than tanh(α·(ρ − 1)), is kept), otherwise k_m = 1. At M = 2 the official
//!   `if ρ_v > 1 … else …` is kept literally: modality 0 takes the else branch, so an exact tie
//!   (ρ = 1) modulates it with 1 − tanh(α); at M ≥ 3 a tie modulates nothing (BalanceBenchmark);
//! * inside the modulation window [start, end] (0-based epochs, inclusive), for the selected
//!   encoder parameters: g ← k_m·g (OGM) or g ← k_m·g + N(0, std(g)+1e-8) (OGM-GE; std of the
//!   *unscaled* gradient, Bessel-corrected as `torch.Tensor.std()`; noise on every modality).
//!
//! Modality 0 plays the official "audio", modality 1 "visual". The step reports ρ_v (as
//! `ratio_<name of modality 1>`) at M = 2, and every ρ_m (`ratio_<name>`) at M ≥ 3.
//!
//! BalanceBenchmark's other three-modality rule (`OGM_GE` at M = 3: s_m counts only correctly
//! classified samples, with softmax(cos(out_m)), and ρ_m = s_m / min_j s_j) is not implemented:
//! it does not reduce to the official rule at M = 2.

use candle_core::Tensor;
use dgl_core::grads::ParamGrads;
use dgl_core::model::{detach_all, GroupKind};
use dgl_core::rng::Rng;
use dgl_core::{Error, Method, MultimodalModel, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, ModelFacts, TaskKind};
use crate::util::{
    all_grads, check_losses, check_non_negative, check_window, flatten_rows, gaussian, in_window, mean_score_ratios,
    rng_from_tensor, rng_tensor, scalar, std_unbiased, target_probs, upload,
};

/// How the per-modality logits of the ratio are formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OgmUnimodalLogits {
    /// W_m z_m + b_m, as the official code (`main.py:95-104`): concat b_m = b/2, sum b_m = the
    /// layer's own bias (`linear_head_block`, `linear_head_bias`). Needs a head linear in each
    /// modality (concat, sum). `half-bias`, its former name, is still accepted.
    #[default]
    #[serde(alias = "half-bias")]
    Official,
    /// h(0, …, z_m, …, 0): zero-masked shared head, full bias (the DGL paper's remark for
    /// baselines); defined for every head.
    ZeroMask,
}

impl OgmUnimodalLogits {
    /// The configuration value (`method.ogm.unimodal_logits`).
    pub fn as_str(self) -> &'static str {
        match self {
            OgmUnimodalLogits::Official => "official",
            OgmUnimodalLogits::ZeroMask => "zero-mask",
        }
    }
}

/// Which encoder gradients are modulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OgmParams {
    /// 4-D (convolution) weights when the encoder has any, otherwise every gradient of rank ≥ 2
    /// (the weight matrices of an MLP encoder).
    #[default]
    Auto,
    /// 4-D gradients only (official: `len(parms.grad.size()) == 4`); an MLP encoder is then not
    /// modulated at all.
    Conv,
    /// Every gradient of rank ≥ 2 (conv and linear weights; never biases or BatchNorm affine).
    Matrices,
}

/// OGM's options (`ogm`); OGM-GE ([`OgmGeConfig`]) has the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OgmConfig {
    /// α of k = 1 − tanh(α·relu(ρ)) (official `--alpha`: README recommends 0.8 for CREMA-D,
    /// 0.1 for VGGSound).
    pub modulation_strength: f64,
    /// First modulated epoch (0-based, inclusive). Official default 0.
    pub modulation_starts: usize,
    /// Last modulated epoch (inclusive); `None` = until the end. Official default 50.
    pub modulation_ends: Option<usize>,
    pub unimodal_logits: OgmUnimodalLogits,
    pub params: OgmParams,
}

impl Default for OgmConfig {
    fn default() -> Self {
        Self {
            modulation_strength: 0.8,
            modulation_starts: 0,
            modulation_ends: Some(50),
            unimodal_logits: OgmUnimodalLogits::Official,
            params: OgmParams::Auto,
        }
    }
}

impl OgmConfig {
    fn check(&self) -> Result<()> {
        check_non_negative("modulation_strength", self.modulation_strength)?;
        check_window(self.modulation_starts, self.modulation_ends)
    }

    /// The head check of both variants: the official per-modality logits need a head affine in
    /// each modality.
    fn check_head<S: MethodSpec>(&self, model: &ModelFacts<'_>) -> Result<()> {
        S::DESCRIPTOR.check_facts(model)?;
        if self.unimodal_logits == OgmUnimodalLogits::Official && !model.head_is_linear {
            return Err(Error::InvalidInput(format!(
                "`{}` cannot train with model.fusion = \"{}\": {NON_LINEAR_HEAD}",
                S::DESCRIPTOR.name,
                model.head
            )));
        }
        Ok(())
    }

    fn official_strength(bench: Option<Benchmark>) -> (f64, &'static str) {
        match bench.unwrap_or(Benchmark::CremaD) {
            Benchmark::CremaD => (0.8, "OGM-GE README (recommends 0.8 for CREMA-D)"),
            Benchmark::KineticsSounds => (0.8, "GDL `ks_ogm.sh` (`--alpha 0.8`)"),
            Benchmark::VggSound => (0.1, "OGM-GE README (recommends 0.1 for VGGSound)"),
        }
    }

    fn official(bench: Option<Benchmark>) -> Self {
        Self { modulation_strength: Self::official_strength(bench).0, modulation_ends: Some(50), ..Self::default() }
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        let (a, source) = Self::official_strength(bench);
        vec![
            Setting::new("method.modulation_strength", a, source),
            Setting::new("method.modulation_ends", 50, "OGM-GE `main.py` (modulation epochs 0..50, inclusive)"),
        ]
    }
}

const OGM_TASKS: &[TaskKind] = &[TaskKind::Classification];

fn ogm_schedule() -> Schedule {
    Schedule::new(1e-3, &[70], "OGM-GE `main.py` (lr 1e-3, StepLR(70, 0.1))")
}

impl MethodSpec for OgmConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "ogm",
        label: "OGM",
        summary: "on-the-fly gradient modulation of the dominant encoder",
        modalities: ModalityCount::AtLeast(2),
        heads: HeadSupport::LinearInEachModality,
        tasks: OGM_TASKS,
        needs_validation: false,
    };

    fn validate(&self) -> Result<()> {
        self.check()
    }

    fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
        self.check_head::<Self>(model)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Ogm::new(false, self.clone(), ctx.seed)))
    }

    fn official(bench: Option<Benchmark>) -> Self {
        OgmConfig::official(bench)
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        OgmConfig::official_settings(bench)
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        ogm_schedule()
    }
}

/// OGM-GE's options: OGM's ([`OgmConfig`]); the method adds Gaussian noise.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OgmGeConfig(pub OgmConfig);

impl std::ops::Deref for OgmGeConfig {
    type Target = OgmConfig;
    fn deref(&self) -> &OgmConfig {
        &self.0
    }
}

impl std::ops::DerefMut for OgmGeConfig {
    fn deref_mut(&mut self) -> &mut OgmConfig {
        &mut self.0
    }
}

impl MethodSpec for OgmGeConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "ogm-ge",
        label: "OGM-GE",
        summary: "on-the-fly gradient modulation plus generalisation-enhancing Gaussian noise",
        ..OgmConfig::DESCRIPTOR
    };

    fn validate(&self) -> Result<()> {
        self.0.check()
    }

    fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
        self.0.check_head::<Self>(model)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(Ogm::new(true, self.0.clone(), ctx.seed)))
    }

    fn official(bench: Option<Benchmark>) -> Self {
        Self(OgmConfig::official(bench))
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        OgmConfig::official_settings(bench)
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        ogm_schedule()
    }
}

/// The OGM coefficients of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct OgmCoefficients {
    /// ρ_m = mean_{j≠m} s_m / s_j for every modality (M = 2: 1/ρ_v and ρ_v = s_v / s_a, computed as
    /// the official code does).
    pub ratios: Vec<f64>,
    /// k_m for every modality.
    pub k: Vec<f64>,
}

/// `k` from the batch scores s_m (official `main.py:106-117` at M = 2, discontinuous at ρ = 1;
/// see the module documentation for M ≥ 3).
pub fn coefficients(scores: &[f64], alpha: f64) -> OgmCoefficients {
    let ratios = match scores {
        // The official pair, computed as it does (ρ_a = 1/ρ_v, which can differ from s_a/s_v in
        // the last bit), so that runs stay bit-identical to the two-modality code.
        [s_a, s_v] => {
            let rho_v = s_v / s_a;
            vec![1.0 / rho_v, rho_v]
        }
        _ => mean_score_ratios(scores),
    };
    let relu = |x: f64| x.max(0.0);
    // M = 2: the official `if ρ_v > 1 {k_v} else {k_a}`; modality 0 takes the else branch.
    let official_else = match ratios.as_slice() {
        [_, rho_v] => rho_v.partial_cmp(&1.0) != Some(std::cmp::Ordering::Greater), // ρ_v ≤ 1 or NaN
        _ => false,
    };
    let k = ratios
        .iter()
        .enumerate()
        .map(|(m, &r)| if r > 1.0 || (m == 0 && official_else) { 1.0 - (alpha * relu(r)).tanh() } else { 1.0 })
        .collect();
    OgmCoefficients { ratios, k }
}

/// The ratios a step reports: ρ_v at M = 2 (the official pair's ρ_a = 1/ρ_v adds nothing), every
/// ρ_m at M ≥ 3.
fn reported_ratios(names: &[String], ratios: &[f64]) -> Vec<(String, f64)> {
    let first = if ratios.len() == 2 { 1 } else { 0 };
    names.iter().zip(ratios).skip(first).map(|(n, &r)| (format!("ratio_{n}"), r)).collect()
}

/// The per-modality logits used by the ratio (no gradient).
pub fn unimodal_logits(model: &dyn MultimodalModel, z: &[Tensor], m: usize, how: OgmUnimodalLogits) -> Result<Tensor> {
    let z = detach_all(z);
    Ok(match how {
        OgmUnimodalLogits::ZeroMask => model.fuse_only(&z, m, false)?,
        OgmUnimodalLogits::Official => {
            let (w, b) = linear_term(model, m).ok_or_else(|| Error::InvalidInput(format!("OGM: {NON_LINEAR_HEAD}")))?;
            flatten_rows(&z[m])?.matmul(&w.detach().t()?)?.broadcast_add(&b.detach())?
        }
    })
}

/// (W^{(m)}, b^{(m)}) of a head linear in each modality.
fn linear_term(model: &dyn MultimodalModel, m: usize) -> Option<(Tensor, Tensor)> {
    Some((model.linear_head_block(m)?, model.linear_head_bias(m)?))
}

/// Why a head without per-modality affine terms is refused (the official formula needs them).
pub const NON_LINEAR_HEAD: &str =
    "the official per-modality logits W_m z_m + b_m (OGM-GE main.py:95-104) need a fusion \
     head linear in each modality (concat or sum) and are undefined for the gated and FiLM heads: use \
     model.fusion = \"concat\" or \"sum\", or method.ogm.unimodal_logits = \"zero-mask\" (the zero-masked shared \
     head, a deviation)";

/// Which gradients of encoder `m` are modulated under `sel`.
fn selected(grads: &ParamGrads, m: usize, sel: OgmParams) -> impl Fn(usize) -> bool {
    let has_conv = grads.entries().iter().any(|e| e.group == GroupKind::Encoder(m) && e.grad.rank() == 4);
    move |rank: usize| match sel {
        OgmParams::Conv => rank == 4,
        OgmParams::Matrices => rank >= 2,
        OgmParams::Auto => {
            if has_conv {
                rank == 4
            } else {
                rank >= 2
            }
        }
    }
}

/// Applies g ← k_m·g (+ N(0, std(g)+1e-8) when `noise` is given) to the selected encoder grads.
pub fn modulate(grads: &mut ParamGrads, k: &[f64], sel: OgmParams, mut noise: Option<&mut Rng>) -> Result<()> {
    let pick: Vec<_> = (0..k.len()).map(|m| selected(grads, m, sel)).collect();
    let mut err = None;
    grads.map(|e| {
        let m = match e.group {
            GroupKind::Encoder(m) if m < k.len() && pick[m](e.grad.rank()) => m,
            _ => return Ok(e.grad.clone()),
        };
        let scaled = (&e.grad * k[m])?;
        match noise.as_deref_mut() {
            None => Ok(scaled),
            Some(rng) => {
                let std = match std_unbiased(&e.grad) {
                    Ok(s) => s + 1e-8,
                    Err(x) => {
                        err = Some(x);
                        return Ok(scaled);
                    }
                };
                let n = gaussian(rng, e.grad.elem_count(), std);
                match upload(n, e.grad.dims(), e.grad.dtype(), e.grad.device()) {
                    Ok(t) => scaled + t,
                    Err(x) => {
                        err = Some(x);
                        Ok(scaled)
                    }
                }
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// OGM (`ge = false`) or OGM-GE (`ge = true`).
#[derive(Clone, Debug)]
pub struct Ogm {
    pub ge: bool,
    pub cfg: OgmConfig,
    rng: Rng,
}

impl Ogm {
    pub fn new(ge: bool, cfg: OgmConfig, seed: u64) -> Self {
        Self { ge, cfg, rng: Rng::derive(seed, 0x0060_6E6E) }
    }
}

impl Method for Ogm {
    fn name(&self) -> String {
        if self.ge { OgmGeConfig::DESCRIPTOR.name } else { OgmConfig::DESCRIPTOR.name }.to_string()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        OgmConfig::DESCRIPTOR.check_modalities(model.num_modalities())?;
        let official = self.cfg.unimodal_logits == OgmUnimodalLogits::Official;
        if official && (0..model.num_modalities()).any(|m| linear_term(model, m).is_none()) {
            return Err(Error::InvalidInput(format!("`{}` with this model's head: {NON_LINEAR_HEAD}", self.name())));
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        self.check(ctx.model)?;
        let model = ctx.model;
        let z = model.encode_all(inputs, true)?;
        let logits = model.fuse(&z, true)?;
        let loss = ctx.loss.loss(&logits, targets)?;
        let losses = vec![("loss_mm".to_string(), scalar(&loss)?)];
        check_losses(&losses, ctx)?;
        let mut grads = all_grads(model, &loss)?;

        let y = crate::util::host_targets(targets)?;
        let uni = (0..model.num_modalities())
            .map(|m| unimodal_logits(model, &z, m, self.cfg.unimodal_logits))
            .collect::<Result<Vec<_>>>()?;
        let scores = uni.iter().map(|u| Ok(target_probs(u, &y)?.iter().sum())).collect::<Result<Vec<f64>>>()?;
        let c = coefficients(&scores, self.cfg.modulation_strength);
        let active = in_window(ctx.epoch, self.cfg.modulation_starts, self.cfg.modulation_ends);
        if active {
            let rng = if self.ge { Some(&mut self.rng) } else { None };
            modulate(&mut grads, &c.k, self.cfg.params, rng)?;
        }
        let grad_norm = ctx.apply(&mut grads)?;

        let names = model.modality_names();
        let mut scalars = reported_ratios(&names, &c.ratios);
        scalars.extend(names.iter().zip(&c.k).map(|(n, &k)| (format!("coeff_{n}"), if active { k } else { 1.0 })));
        Ok(StepReport {
            losses,
            logits_mm: Some(logits.detach()),
            logits_branches: names.iter().cloned().zip(uni).collect(),
            z: detach_all(&z),
            grad_norm,
            scalars,
        })
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![("ogm.rng".to_string(), rng_tensor(&self.rng)?)])
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(t) = crate::util::find_state(state, "ogm.rng") {
            self.rng = rng_from_tensor(t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use dgl_core::loss::{CrossEntropy, Loss};

    /// The training-mode representations and the gradients of the unmodulated loss CE(h(z)).
    fn plain_grads(model: &Toy, x: &[Tensor], y: &Tensor) -> (Vec<Tensor>, ParamGrads) {
        let z = model.encode_all(x, true).unwrap();
        let l = CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap();
        let g = all_grads(model, &l).unwrap();
        (z, g)
    }

    /// The two-modality rule exactly as this module had it before the M-modality form: ρ_v =
    /// s_v/s_a, ρ_a = 1/ρ_v; ρ_v > 1 ⇒ k_v = 1 − tanh(α·relu(ρ_v)), else k_a = 1 − tanh(α·relu(ρ_a)).
    fn two_modality_rule(score_a: f64, score_v: f64, alpha: f64) -> (f64, [f64; 2]) {
        let ratio_v = score_v / score_a;
        let ratio_a = 1.0 / ratio_v;
        let relu = |x: f64| x.max(0.0);
        let k = if ratio_v > 1.0 {
            [1.0, 1.0 - (alpha * relu(ratio_v)).tanh()]
        } else {
            [1.0 - (alpha * relu(ratio_a)).tanh(), 1.0]
        };
        (ratio_v, k)
    }

    /// s_m = Σ_i softmax(W_m z_m + b/M)_i\[y_i\], by hand on the host from the toy's concat head
    /// `[K, M·d]` (the official per-modality logits, b/2 at M = 2).
    fn toy_scores(model: &Toy, z: &[Tensor], y: &[usize]) -> Vec<f64> {
        let (w, b, mm, d, k) =
            (vec(model.head_w.as_tensor()), vec(model.head_b.as_tensor()), z.len(), model.d, model.k);
        (0..mm)
            .map(|m| {
                let zm = vec(&z[m]);
                y.iter()
                    .enumerate()
                    .map(|(i, &yi)| {
                        let logit = |c: usize| {
                            (0..d).map(|j| w[c * mm * d + m * d + j] * zm[i * d + j]).sum::<f64>() + b[c] / mm as f64
                        };
                        let e: Vec<f64> = (0..k).map(|c| logit(c).exp()).collect();
                        e[yi] / e.iter().sum::<f64>()
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn m2_coefficients_equal_the_two_modality_rule() {
        let mut rng = Rng::new(21);
        let mut cases: Vec<(f64, f64)> = (0..2000).map(|_| (64.0 * rng.uniform(), 64.0 * rng.uniform())).collect();
        // Ties (the official else branch), zero scores, and nearly equal scores.
        cases.extend([
            (2.0, 2.0),
            (0.0, 3.0),
            (3.0, 0.0),
            (0.0, 0.0),
            (1.0, 1.0 + f64::EPSILON),
            (1.0 + f64::EPSILON, 1.0),
        ]);
        for (i, &(sa, sv)) in cases.iter().enumerate() {
            let alpha = [0.1, 0.8, 2.5][i % 3];
            let (ratio_v, k_ref) = two_modality_rule(sa, sv, alpha);
            let c = coefficients(&[sa, sv], alpha);
            assert!(c.ratios[1] == ratio_v || (ratio_v.is_nan() && c.ratios[1].is_nan()), "{sa} {sv}: ρ_v");
            assert_eq!(c.k.len(), 2);
            for (m, (&k, &k_ref)) in c.k.iter().zip(&k_ref).enumerate() {
                assert!((k - k_ref).abs() <= 1e-15, "{sa} {sv}: k_{m} {k} vs {k_ref}");
                assert_eq!(k == 1.0, k_ref == 1.0, "{sa} {sv}: which modality is modulated");
            }
        }
    }

    #[test]
    fn m3_coefficients_by_hand() {
        // s = (1, 2, 4): ρ = ((1/2 + 1/4)/2, (2 + 1/2)/2, (4 + 2)/2) = (0.375, 1.25, 3);
        // visual and text are dominant.
        let c = coefficients(&[1.0, 2.0, 4.0], 0.5);
        assert_close(&c.ratios, &[0.375, 1.25, 3.0], 1e-15, "ρ");
        assert_close(&c.k, &[1.0, 1.0 - 0.625f64.tanh(), 1.0 - 1.5f64.tanh()], 1e-15, "k");
        // s = (3, 0.5, 1): ρ_0 = (6 + 3)/2 = 4.5, ρ_1 = (1/6 + 1/2)/2 = 1/3, ρ_2 = (2 + 1/3)/2 = 7/6.
        let c = coefficients(&[3.0, 0.5, 1.0], 0.8);
        assert_close(&c.ratios, &[4.5, 1.0 / 3.0, 7.0 / 6.0], 1e-15, "ρ");
        assert_close(&c.k, &[1.0 - 3.6f64.tanh(), 1.0, 1.0 - (0.8f64 * 7.0 / 6.0).tanh()], 1e-15, "k");
        // A three-way tie modulates nothing (at M = 2 the official else branch modulates modality 0).
        assert_eq!(coefficients(&[2.0, 2.0, 2.0], 1.0).k, vec![1.0; 3]);
        assert_eq!(coefficients(&[2.0, 2.0], 1.0).k, vec![1.0 - 1f64.tanh(), 1.0]);
    }

    /// A real (dgl-models) two-modality model with MLP encoders and the given head, in f64.
    fn mlp_model(fusion: dgl_models::FusionKind, seed: u64) -> dgl_models::Model {
        use dgl_models::{EncoderKind, ModalityConfig, ModelConfig};
        let mlp = |n: &str| ModalityConfig::new(n, EncoderKind::Mlp { hidden: vec![6] });
        let cfg =
            ModelConfig { modalities: vec![mlp("audio"), mlp("visual")], fusion, num_classes: 3, ..Default::default() };
        let dev = candle_core::Device::Cpu;
        dgl_models::build_model_dtype(&cfg, &[vec![5], vec![7]], &dev, candle_core::DType::F64, seed).unwrap()
    }

    fn param(model: &dyn MultimodalModel, name: &str) -> dgl_core::NamedVar {
        model.head_params().into_iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn official_logits_are_each_modalitys_own_term() {
        // Concat: W_m z_m + b/2 (`fc_out.bias / 2`).
        let model = Toy::new(&[3, 4], 5, 3, 1);
        let x = model.inputs(6, 2);
        let z = model.encode_all(&x, false).unwrap();
        for m in 0..2 {
            let got = vec(&unimodal_logits(&model, &z, m, OgmUnimodalLogits::Official).unwrap());
            let w = model.linear_head_block(m).unwrap();
            let b = model.head_b.as_tensor();
            let want = z[m].matmul(&w.t().unwrap()).unwrap().broadcast_add(&(b * 0.5).unwrap()).unwrap();
            assert_close(&got, &vec(&want), 1e-12, "W_m z_m + b/2");
        }

        // Sum: fc_x(z_a) = W_x z_a + b_x and fc_y(z_v) = W_y z_v + b_y, each with its own bias —
        // not W_m z_m + (b_x + b_y)/2 (what halving the zero-masked head's bias gives).
        let model = mlp_model(dgl_models::FusionKind::Sum, 3);
        let mut rng = Rng::new(8);
        for (name, scale) in [("fusion_module.fc_x.bias", 1.0), ("fusion_module.fc_y.bias", -2.0)] {
            let b: Vec<f64> = (0..3).map(|_| scale * (1.0 + rng.uniform())).collect();
            param(&model, name).var.set(&Tensor::new(b.as_slice(), &candle_core::Device::Cpu).unwrap()).unwrap();
        }
        let x: Vec<Tensor> = [5, 7]
            .iter()
            .map(|&d| {
                let v: Vec<f64> = (0..4 * d).map(|_| rng.normal()).collect();
                Tensor::from_vec(v, (4, d), &candle_core::Device::Cpu).unwrap()
            })
            .collect();
        let z = model.encode_all(&x, false).unwrap();
        let masked_half: Vec<Vec<f64>> = (0..2)
            .map(|m| {
                let zeros: Vec<Tensor> = z.iter().map(|t| t.zeros_like().unwrap()).collect();
                let half = (model.fuse(&zeros, false).unwrap() * 0.5).unwrap();
                vec(&(model.fuse_only(&z, m, false).unwrap() - half).unwrap())
            })
            .collect();
        for (m, layer) in ["fc_x", "fc_y"].iter().enumerate() {
            let w = param(&model, &format!("fusion_module.{layer}.weight")).var.as_tensor().clone();
            let b = param(&model, &format!("fusion_module.{layer}.bias")).var.as_tensor().clone();
            let want = vec(&z[m].matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap());
            let got = vec(&unimodal_logits(&model, &z, m, OgmUnimodalLogits::Official).unwrap());
            assert_close(&got, &want, 1e-12, layer);
            let off = got.iter().zip(&masked_half[m]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(off > 0.1, "{layer}: the own bias differs from the halved sum of biases ({off})");
        }
        // The ratio of a training step uses them: s_v / s_a from the official logits.
        let y = targets(4, 3);
        let yv = crate::util::host_targets(&y).unwrap();
        let z_train = model.encode_all(&x, true).unwrap();
        let s: Vec<f64> = (0..2)
            .map(|m| {
                let lg = unimodal_logits(&model, &z_train, m, OgmUnimodalLogits::Official).unwrap();
                target_probs(&lg, &yv).unwrap().iter().sum()
            })
            .collect();
        let mut method = Ogm::new(false, OgmConfig { modulation_strength: 0.8, ..OgmConfig::default() }, 0);
        method.check(&model).unwrap();
        let mut sgd = plain_sgd(0.1);
        let mut ctx = context(&model, &mut sgd, 0);
        let rep = method.train_step(&mut ctx, &x, &y).unwrap();
        let ratio = rep.scalars.iter().find(|(n, _)| n == "ratio_visual").unwrap().1;
        assert!((ratio - s[1] / s[0]).abs() < 1e-12, "ratio {ratio} vs {}", s[1] / s[0]);
    }

    /// Gated and FiLM heads have no per-modality affine terms: OGM / OGM-GE refuse them (at
    /// configuration time and on the built model), naming the method and the head, unless the
    /// zero-masked head is chosen; other methods and heads are unaffected.
    #[test]
    fn heads_without_per_modality_terms_are_refused() {
        use crate::registry::{MethodConfig, MethodKind};
        use dgl_models::FusionKind;
        for fusion in [FusionKind::Concat, FusionKind::Sum, FusionKind::Gated, FusionKind::Film] {
            let model = mlp_model(fusion, 1);
            let facts = ModelFacts {
                modalities: 2,
                head: fusion.as_str(),
                head_is_linear: fusion.is_linear(),
                dense: false,
                task: TaskKind::Classification,
            };
            for kind in [MethodKind::Ogm, MethodKind::OgmGe] {
                let cfg = MethodConfig::new(kind);
                let at_config = cfg.check_model(&facts);
                let on_model = Ogm::new(kind == MethodKind::OgmGe, OgmConfig::default(), 0).check(&model);
                if fusion.is_linear() {
                    at_config.unwrap();
                    on_model.unwrap();
                    continue;
                }
                let e = at_config.unwrap_err().to_string();
                let head = format!("model.fusion = \"{}\"", fusion.as_str());
                assert!(e.contains(&format!("`{kind}`")) && e.contains(&head) && e.contains("zero-mask"), "{e}");
                let e = on_model.unwrap_err().to_string();
                assert!(e.contains(&format!("`{kind}`")) && e.contains("gated and FiLM"), "{e}");
                // Opting into the zero-masked shared head is accepted.
                let zm = OgmConfig { unimodal_logits: OgmUnimodalLogits::ZeroMask, ..OgmConfig::default() };
                zm.check_model(&facts).unwrap();
                OgmGeConfig(zm.clone()).check_model(&facts).unwrap();
                Ogm::new(true, zm, 0).check(&model).unwrap();
            }
            MethodConfig::new(MethodKind::Dgl).check_model(&facts).unwrap();
        }
        // The former name of the official logits still parses.
        let c: OgmConfig = toml::from_str("unimodal_logits = \"half-bias\"").unwrap();
        assert_eq!(c.unimodal_logits, OgmUnimodalLogits::Official);
    }

    /// The reference update of the former two-modality code: the plain gradients with k (from
    /// [`two_modality_rule`] on hand-computed scores) on the rank ≥ 2 encoder gradients (MLP
    /// encoder, `Auto`), plus, for OGM-GE, the seeded noise of the method's generator.
    fn two_modality_update(model: &Toy, x: &[Tensor], y: &Tensor, alpha: f64, ge_seed: Option<u64>) -> ParamGrads {
        let (z, mut g) = plain_grads(model, x, y);
        let s = toy_scores(model, &z, &crate::util::host_targets(y).unwrap());
        let (_, k) = two_modality_rule(s[0], s[1], alpha);
        let mut rng = ge_seed.map(|seed| Ogm::new(true, OgmConfig::default(), seed).rng);
        modulate(&mut g, &k, OgmParams::Auto, rng.as_mut()).unwrap();
        g
    }

    /// At M = 2 one OGM / OGM-GE step changes the parameters exactly as the former two-modality
    /// code did, on random toys and batches; outside the window the gradients are untouched.
    #[test]
    fn m2_step_equals_the_two_modality_update() {
        for seed in 0..6u64 {
            let model = Toy::new(&[3, 4], 5, 3, seed);
            let x = model.inputs(8, 100 + seed);
            let y = targets(8, 3);
            let alpha = [0.3, 0.7, 1.6][seed as usize % 3];
            for ge in [false, true] {
                let (z, _) = plain_grads(&model, &x, &y);
                let s = toy_scores(&model, &z, &crate::util::host_targets(&y).unwrap());
                let want = two_modality_update(&model, &x, &y, alpha, ge.then_some(seed));
                let cfg = OgmConfig { modulation_strength: alpha, ..OgmConfig::default() };
                let mut method = Ogm::new(ge, cfg, seed);
                let (upd, rep) = grads_by_sgd(&mut method, &model, 0, &x, &y);
                for (name, got) in &upd {
                    assert_close(got, &vec(want.get(name).unwrap()), 1e-12, &format!("seed {seed} ge {ge}: {name}"));
                }
                // The reported ratio is still ρ_v = s_v / s_a, alone.
                let ratios: Vec<_> = rep.scalars.iter().filter(|(n, _)| n.starts_with("ratio_")).collect();
                assert_eq!(ratios.len(), 1);
                assert_eq!(ratios[0].0, "ratio_visual");
                assert!((ratios[0].1 - s[1] / s[0]).abs() < 1e-12);
            }
        }
        // Outside the window (epoch 51 > 50): plain gradients.
        let model = Toy::new(&[3, 4], 5, 3, 3);
        let (x, y) = (model.inputs(8, 4), targets(8, 3));
        let (_, g) = plain_grads(&model, &x, &y);
        let mut method = Ogm::new(false, OgmConfig { modulation_strength: 0.7, ..OgmConfig::default() }, 0);
        let (upd, _) = grads_by_sgd(&mut method, &model, 51, &x, &y);
        for (name, got) in &upd {
            assert_close(got, &vec(g.get(name).unwrap()), 1e-12, name);
        }
    }

    /// At M = 3: k from the hand-computed ρ_m = (s_m/s_j + s_m/s_l)/2 scales each encoder's weight
    /// gradient; OGM-GE's step changes every encoder.
    #[test]
    fn m3_step_modulates_every_dominant_encoder() {
        let model = Toy::new(&[3, 4, 2], 5, 3, 11);
        let x = model.inputs(9, 12);
        let y = targets(9, 3);
        let (z, g) = plain_grads(&model, &x, &y);
        let s = toy_scores(&model, &z, &crate::util::host_targets(&y).unwrap());
        let alpha = 0.9;
        let rho: Vec<f64> = (0..3).map(|m| (s[m] / s[(m + 1) % 3] + s[m] / s[(m + 2) % 3]) / 2.0).collect();
        let k: Vec<f64> = rho.iter().map(|&r| if r > 1.0 { 1.0 - (alpha * r).tanh() } else { 1.0 }).collect();
        assert!(k.iter().any(|&k| k < 1.0) && k.contains(&1.0), "a dominant and a weak modality: {k:?}");

        let cfg = OgmConfig { modulation_strength: alpha, ..OgmConfig::default() };
        let mut method = Ogm::new(false, cfg.clone(), 0);
        method.check(&model).unwrap();
        let (upd, rep) = grads_by_sgd(&mut method, &model, 0, &x, &y);
        for (name, got) in &upd {
            let factor = match name.strip_prefix("enc").and_then(|n| n.strip_suffix(".weight")) {
                Some(m) => k[m.parse::<usize>().unwrap()],
                None => 1.0,
            };
            let want: Vec<f64> = vec(g.get(name).unwrap()).iter().map(|v| v * factor).collect();
            assert_close(got, &want, 1e-12, name);
        }
        for (m, name) in ["audio", "visual", "text"].iter().enumerate() {
            let get = |key: String| rep.scalars.iter().find(|(n, _)| *n == key).unwrap().1;
            assert!((get(format!("ratio_{name}")) - rho[m]).abs() < 1e-12, "ρ_{name}");
            assert!((get(format!("coeff_{name}")) - k[m]).abs() < 1e-12, "k_{name}");
        }

        // OGM-GE trains the three encoders (noise on all of them, k on the dominant ones).
        let before = values(&model);
        let mut method = Ogm::new(true, cfg, 5);
        let mut sgd = plain_sgd(0.1);
        step(&mut method, &model, &mut sgd, 0, &x, &y);
        let after = values(&model);
        for m in 0..3 {
            let name = format!("enc{m}.weight");
            let (b, a) = (
                &before.iter().find(|(n, _)| *n == name).unwrap().1,
                &after.iter().find(|(n, _)| *n == name).unwrap().1,
            );
            assert!(b.iter().zip(a.iter()).any(|(b, a)| b != a), "{name} unchanged");
        }
    }

    #[test]
    fn conv_selection_and_ge_noise_scale() {
        // Conv-shaped encoder weights ([d, i, 1, 1]): Auto and Conv both pick them.
        let model = Toy::build(&[3, 4], 5, 3, 5, true, false);
        let x = model.inputs(8, 6);
        let y = targets(8, 3);
        let (_, g) = plain_grads(&model, &x, &y);
        let mut g2 = g.clone();
        modulate(&mut g2, &[0.25, 1.0], OgmParams::Auto, None).unwrap();
        let w0 = vec(g.get("enc0.weight").unwrap());
        let w0s = vec(g2.get("enc0.weight").unwrap());
        assert_close(&w0s, &w0.iter().map(|v| v * 0.25).collect::<Vec<_>>(), 1e-12, "conv k·g");
        assert_close(&vec(g2.get("enc0.bias").unwrap()), &vec(g.get("enc0.bias").unwrap()), 0.0, "bias");

        // GE noise: N(0, std(g_orig) + 1e-8) with the unscaled gradient's (unbiased) std, both
        // modalities; reproducible from the seed.
        let big = Tensor::from_vec(
            (0..40_000).map(|i| ((i % 97) as f64 - 48.0) * 0.01).collect::<Vec<_>>(),
            (200, 200, 1, 1),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let var = candle_core::Var::from_tensor(&big).unwrap();
        let groups = vec![dgl_core::ParamGroup {
            kind: GroupKind::Encoder(1),
            params: vec![dgl_core::NamedVar::new("w", var.clone())],
        }];
        let loss = (var.as_tensor() * &big).unwrap().sum_all().unwrap(); // d/dw = big
        let grads = ParamGrads::from_store(&loss.backward().unwrap(), &groups, |_| true);
        let std0 = std_unbiased(&big).unwrap();
        let mut noisy = grads.clone();
        let mut rng = Rng::new(9);
        modulate(&mut noisy, &[1.0, 0.5], OgmParams::Auto, Some(&mut rng)).unwrap();
        let orig = vec(&big);
        let got = vec(noisy.get("w").unwrap());
        let noise: Vec<f64> = got.iter().zip(&orig).map(|(g, o)| g - 0.5 * o).collect();
        let n = noise.len() as f64;
        let mean = noise.iter().sum::<f64>() / n;
        let sd = (noise.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.02 * std0, "noise mean {mean}");
        assert!((sd / (std0 + 1e-8) - 1.0).abs() < 0.02, "noise std {sd} vs {std0}");
        // The noise is exactly the seeded host draws.
        let want = gaussian(&mut Rng::new(9), orig.len(), std0 + 1e-8);
        assert_close(&noise, &want, 1e-9, "seeded noise");
    }

    #[test]
    fn state_roundtrip_and_any_modality_count() {
        let mut a = Ogm::new(true, OgmConfig { modulation_strength: 0.1, ..OgmConfig::default() }, 3);
        a.rng.next_u64();
        let st = a.state().unwrap();
        let mut b = Ogm::new(true, OgmConfig { modulation_strength: 0.1, ..OgmConfig::default() }, 99);
        b.load_state(&st).unwrap();
        assert_eq!(a.rng.next_u64(), b.rng.next_u64());
        a.check(&Toy::new(&[2, 2, 2], 3, 2, 0)).unwrap();
        let e = a.check(&Toy::new(&[2], 3, 2, 0)).unwrap_err().to_string();
        assert!(e.contains("2 or more modalities"), "{e}");
    }
}
