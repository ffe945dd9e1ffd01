//! OGM and OGM-GE (Peng et al., CVPR 2022), `OGM-GE_CVPR2022/main.py:80-153`.
//!
//! After the backward of L = CE(h(z_a, z_v), y):
//!
//! * per-modality logits: `out_m = W_m z_m + b/2` (official, [`OgmUnimodalLogits::HalfBias`]) or
//!   h(0, …, z_m, …, 0) (zero-masked shared head with the full bias, [`OgmUnimodalLogits::ZeroMask`]);
//!   for a linear head W_m z_m + b/2 = h(0,…,z_m,…,0) − ½ h(0, …, 0), which is how it is computed
//!   here (no access to the head's parameters needed);
//! * s_m = Σ_i softmax(out_m)_i\[y_i\] (batch sum), ρ_v = s_v / s_a, ρ_a = 1/ρ_v;
//! * ρ_v > 1: k_v = 1 − tanh(α·relu(ρ_v)), k_a = 1; otherwise k_a = 1 − tanh(α·relu(ρ_a)), k_v = 1;
//! * inside the modulation window [start, end] (0-based epochs, inclusive), for the selected
//!   encoder parameters: g ← k_m·g (OGM) or g ← k_m·g + N(0, std(g)+1e-8) (OGM-GE; std of the
//!   *unscaled* gradient, Bessel-corrected as `torch.Tensor.std()`; noise on both modalities).
//!
//! Modality 0 plays the official "audio", modality 1 "visual". Two modalities only.

use candle_core::Tensor;
use dgl_core::grads::ParamGrads;
use dgl_core::model::{detach_all, GroupKind};
use dgl_core::rng::Rng;
use dgl_core::{Method, MultimodalModel, Result, StepContext, StepReport};
use serde::{Deserialize, Serialize};

use crate::util::{
    all_grads, check_losses, check_window, gaussian, in_window, require_two_modalities, rng_from_tensor, rng_tensor,
    scalar, std_unbiased, target_probs, upload,
};

/// How the per-modality logits of the ratio are formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OgmUnimodalLogits {
    /// W_m z_m + b/2, as the official code (`main.py:95-104`).
    #[default]
    HalfBias,
    /// h(0, …, z_m, …, 0): zero-masked shared head, full bias (the DGL paper's remark for baselines).
    ZeroMask,
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

/// OGM / OGM-GE hyper-parameters (α is [`crate::MethodConfig::alpha`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OgmConfig {
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
            modulation_starts: 0,
            modulation_ends: Some(50),
            unimodal_logits: OgmUnimodalLogits::HalfBias,
            params: OgmParams::Auto,
        }
    }
}

impl OgmConfig {
    pub fn validate(&self) -> Result<()> {
        check_window(self.modulation_starts, self.modulation_ends)
    }
}

/// The OGM coefficients of one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OgmCoefficients {
    /// ρ_v = s_v / s_a.
    pub ratio: f64,
    /// k_a, k_v.
    pub k: [f64; 2],
}

/// `k` from the batch scores s_a, s_v (official `main.py:106-117`; discontinuous at ρ = 1).
pub fn coefficients(score_a: f64, score_v: f64, alpha: f64) -> OgmCoefficients {
    let ratio_v = score_v / score_a;
    let ratio_a = 1.0 / ratio_v;
    let relu = |x: f64| x.max(0.0);
    let k = if ratio_v > 1.0 {
        [1.0, 1.0 - (alpha * relu(ratio_v)).tanh()]
    } else {
        [1.0 - (alpha * relu(ratio_a)).tanh(), 1.0]
    };
    OgmCoefficients { ratio: ratio_v, k }
}

/// The per-modality logits used by the ratio (no gradient).
pub fn unimodal_logits(model: &dyn MultimodalModel, z: &[Tensor], m: usize, how: OgmUnimodalLogits) -> Result<Tensor> {
    let z = detach_all(z);
    let masked = model.fuse_only(&z, m, false)?;
    Ok(match how {
        OgmUnimodalLogits::ZeroMask => masked,
        OgmUnimodalLogits::HalfBias => {
            let zeros: Vec<Tensor> = z.iter().map(|t| t.zeros_like()).collect::<candle_core::Result<_>>()?;
            let offset = model.fuse(&zeros, false)?;
            (masked - (offset * 0.5)?)?
        }
    })
}

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
    pub alpha: f64,
    pub ge: bool,
    pub cfg: OgmConfig,
    rng: Rng,
}

impl Ogm {
    pub fn new(alpha: f64, ge: bool, cfg: OgmConfig, seed: u64) -> Self {
        Self { alpha, ge, cfg, rng: Rng::derive(seed, 0x0060_6E6E) }
    }
}

impl Method for Ogm {
    fn name(&self) -> String {
        if self.ge { "ogm-ge" } else { "ogm" }.to_string()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        require_two_modalities(model, &self.name())
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
        let uni =
            (0..2).map(|m| unimodal_logits(model, &z, m, self.cfg.unimodal_logits)).collect::<Result<Vec<_>>>()?;
        let s_a: f64 = target_probs(&uni[0], &y)?.iter().sum();
        let s_v: f64 = target_probs(&uni[1], &y)?.iter().sum();
        let c = coefficients(s_a, s_v, self.alpha);
        let active = in_window(ctx.epoch, self.cfg.modulation_starts, self.cfg.modulation_ends);
        if active {
            let rng = if self.ge { Some(&mut self.rng) } else { None };
            modulate(&mut grads, &c.k, self.cfg.params, rng)?;
        }
        let grad_norm = ctx.apply(&mut grads)?;

        let names = model.modality_names();
        Ok(StepReport {
            losses,
            logits_mm: Some(logits.detach()),
            logits_branches: names.iter().cloned().zip(uni).collect(),
            z: detach_all(&z),
            grad_norm,
            scalars: vec![
                (format!("ratio_{}", names[1]), c.ratio),
                (format!("coeff_{}", names[0]), if active { c.k[0] } else { 1.0 }),
                (format!("coeff_{}", names[1]), if active { c.k[1] } else { 1.0 }),
            ],
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

    #[test]
    fn coefficients_match_hand_computation() {
        // ρ_v = 3/2 > 1 → visual dominant: k_v = 1 − tanh(0.5·1.5), k_a = 1.
        let c = coefficients(2.0, 3.0, 0.5);
        assert!((c.ratio - 1.5).abs() < 1e-15);
        assert_eq!(c.k[0], 1.0);
        assert!((c.k[1] - (1.0 - 0.75f64.tanh())).abs() < 1e-15);
        // ρ_v = 1/4 → audio dominant: ρ_a = 4, k_a = 1 − tanh(0.8·4).
        let c = coefficients(4.0, 1.0, 0.8);
        assert!((c.k[0] - (1.0 - 3.2f64.tanh())).abs() < 1e-15);
        assert_eq!(c.k[1], 1.0);
        // ρ = 1 exactly: the else branch, k_a = 1 − tanh(α) (the official discontinuity).
        let c = coefficients(2.0, 2.0, 1.0);
        assert!((c.k[0] - (1.0 - 1f64.tanh())).abs() < 1e-15);
    }

    #[test]
    fn half_bias_logits_are_block_plus_half_bias() {
        let model = Toy::new(&[3, 4], 5, 3, 1);
        let x = model.inputs(6, 2);
        let z = model.encode_all(&x, false).unwrap();
        for m in 0..2 {
            let got = vec(&unimodal_logits(&model, &z, m, OgmUnimodalLogits::HalfBias).unwrap());
            let w = model.linear_head_block(m).unwrap();
            let b = model.head_b.as_tensor();
            let want = z[m].matmul(&w.t().unwrap()).unwrap().broadcast_add(&(b * 0.5).unwrap()).unwrap();
            assert_close(&got, &vec(&want), 1e-12, "W_m z_m + b/2");
        }
    }

    /// The step's gradients equal k·g on the rank ≥ 2 encoder gradients (MLP encoder, `Auto`),
    /// untouched elsewhere; outside the window everything is untouched.
    #[test]
    fn ogm_scales_the_dominant_encoder_weight_gradients() {
        let model = Toy::new(&[3, 4], 5, 3, 3);
        let x = model.inputs(8, 4);
        let y = targets(8, 3);
        // Reference: plain gradients and the expected coefficients.
        let (z, g) = plain_grads(&model, &x, &y);
        let yv = crate::util::host_targets(&y).unwrap();
        let s: Vec<f64> = (0..2)
            .map(|m| {
                let lg = unimodal_logits(&model, &z, m, OgmUnimodalLogits::HalfBias).unwrap();
                target_probs(&lg, &yv).unwrap().iter().sum()
            })
            .collect();
        let c = coefficients(s[0], s[1], 0.7);
        assert!(c.k.iter().any(|&k| k < 1.0));

        let mut method = Ogm::new(0.7, false, OgmConfig::default(), 0);
        let (upd, rep) = grads_by_sgd(&mut method, &model, 0, &x, &y);
        for (name, got) in &upd {
            let want = vec(g.get(name).unwrap());
            let factor = match name.as_str() {
                "enc0.weight" => c.k[0],
                "enc1.weight" => c.k[1],
                _ => 1.0,
            };
            let want: Vec<f64> = want.iter().map(|v| v * factor).collect();
            assert_close(got, &want, 1e-9, name);
        }
        assert!(rep.scalars.iter().any(|(n, v)| n == "ratio_visual" && (*v - c.ratio).abs() < 1e-12));

        // Outside the window (epoch 51 > 50): plain gradients.
        let model = Toy::new(&[3, 4], 5, 3, 3);
        let mut method = Ogm::new(0.7, false, OgmConfig::default(), 0);
        let (upd, _) = grads_by_sgd(&mut method, &model, 51, &x, &y);
        for (name, got) in &upd {
            assert_close(got, &vec(g.get(name).unwrap()), 1e-9, name);
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
    fn state_roundtrip_and_m2_only() {
        let mut a = Ogm::new(0.1, true, OgmConfig::default(), 3);
        a.rng.next_u64();
        let st = a.state().unwrap();
        let mut b = Ogm::new(0.1, true, OgmConfig::default(), 99);
        b.load_state(&st).unwrap();
        assert_eq!(a.rng.next_u64(), b.rng.next_u64());
        let m3 = Toy::new(&[2, 2, 2], 3, 2, 0);
        let e = a.check(&m3).unwrap_err().to_string();
        assert!(e.contains("exactly 2 modalities"), "{e}");
    }
}
