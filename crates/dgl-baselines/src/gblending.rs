//! Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020). No official PyTorch code exists.
//!
//! * [`fixed`]: what the DGL paper ran (Table 4; Table 1 ≈ α = 4): L_mm + α Σ_m L_m with
//!   L_m = CE(h(0, …, z_m, …, 0)) through the shared head, every gradient everywhere
//!   ([`Routing::blend`]).
//! * [`GBlendingOgr`]: the original online overfitting-to-generalisation-ratio weights, structured as
//!   BalanceBenchmark's `GBlending_trainer.py:306-376`: every `every` epochs (from epoch 0), for each
//!   branch b ∈ {modality 0, …, modality M−1, multimodal}: restore the model snapshot, measure the
//!   branch's mean training and validation losses, train the copy on that branch alone for
//!   `epochs` epochs (own SGD, fresh momentum; the main optimizer is untouched), measure again;
//!   G = L_val,now − L_val,pre, O = (L_val,now − L_tr,now) − (L_val,pre − L_tr,pre),
//!   w_b = |G/O²|, normalised to sum 1; the snapshot is restored. Training then uses
//!   w_mm·L_mm + Σ_m w_m·L_m ([`routed_step_weighted`], every gradient everywhere).

use candle_core::Tensor;
use dgl_core::loss::{CrossEntropy, Loss};
use dgl_core::method::{restore, snapshot};
use dgl_core::routing::{routed_step_weighted, LossWeights};
use dgl_core::{
    BatchSource, Error, Method, MultimodalModel, Result, RoutedMethod, Routing, Sgd, SgdConfig, Split, StepContext,
    StepReport,
};
use serde::{Deserialize, Serialize};

use crate::util::{all_grads, check_hp, f64_tensor, require_multimodal, scalar, state_f64};

/// G-Blending as the DGL paper ran it: fixed-weight blending L_mm + α Σ_m L_m.
pub fn fixed(alpha: f64) -> RoutedMethod {
    RoutedMethod::new("gblending", Routing::blend(alpha))
}

/// OGR re-estimation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GBlendingConfig {
    /// Re-estimate the weights every this many epochs, starting at epoch 0 (BalanceBenchmark
    /// `super_epoch` 10).
    pub ogr_every: usize,
    /// Epochs each branch copy is trained between the two measurements (BalanceBenchmark trains
    /// `super_epoch` = 10 epochs; 1 keeps the cost near +50 %).
    pub ogr_epochs: usize,
    /// SGD of the copy training (the paper's optimizer; fresh momentum buffers each time).
    pub ogr_lr: f64,
    pub ogr_momentum: f64,
    pub ogr_weight_decay: f64,
}

impl Default for GBlendingConfig {
    fn default() -> Self {
        Self { ogr_every: 10, ogr_epochs: 1, ogr_lr: 2e-3, ogr_momentum: 0.9, ogr_weight_decay: 1e-4 }
    }
}

impl GBlendingConfig {
    pub fn validate(&self) -> Result<()> {
        check_hp(self.ogr_every > 0, "ogr_every", self.ogr_every, "must be > 0")?;
        check_hp(self.ogr_epochs > 0, "ogr_epochs", self.ogr_epochs, "must be > 0")?;
        self.sgd().validate()
    }

    fn sgd(&self) -> SgdConfig {
        SgdConfig {
            lr: self.ogr_lr,
            momentum: self.ogr_momentum,
            dampening: 0.0,
            weight_decay: self.ogr_weight_decay,
            nesterov: false,
        }
    }
}

/// Losses of one branch before and after the copy training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OgrMeasure {
    pub train_pre: f64,
    pub val_pre: f64,
    pub train_now: f64,
    pub val_now: f64,
}

/// w_b = |G/O²| normalised to sum 1. A vanishing O² is floored at 1e-12; when no weight is
/// positive and finite the weights are uniform.
pub fn ogr_weights(measures: &[OgrMeasure]) -> Vec<f64> {
    let raw: Vec<f64> = measures
        .iter()
        .map(|m| {
            let g = m.val_now - m.val_pre;
            let o = (m.val_now - m.train_now) - (m.val_pre - m.train_pre);
            (g / (o * o).max(1e-12)).abs()
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        raw.iter().map(|w| w / sum).collect()
    } else {
        vec![1.0 / measures.len() as f64; measures.len()]
    }
}

/// Logits of branch `b` (< M: modality dropout; M: multimodal).
fn branch_logits(model: &dyn MultimodalModel, inputs: &[Tensor], b: usize, train: bool) -> Result<Tensor> {
    let z = model.encode_all(inputs, train)?;
    Ok(if b < model.num_modalities() { model.fuse_only(&z, b, train)? } else { model.fuse(&z, train)? })
}

/// Mean over the batches of a split of the branch's evaluation-mode loss.
fn mean_loss(model: &dyn MultimodalModel, data: &dyn BatchSource, split: Split, b: usize) -> Result<f64> {
    let (mut total, mut n) = (0.0, 0usize);
    data.for_each_batch(split, None, &mut |x, y| {
        let l = CrossEntropy.loss(&branch_logits(model, x, b, false)?.detach(), y)?;
        total += scalar(&l)?;
        n += 1;
        Ok(())
    })?;
    if n == 0 {
        return Err(Error::InvalidInput(format!("G-Blending (OGR) needs a non-empty {split:?} split")));
    }
    Ok(total / n as f64)
}

/// Measures every branch (M unimodal, then multimodal), restoring the model after each.
pub fn measure_branches(
    model: &dyn MultimodalModel,
    data: &dyn BatchSource,
    cfg: &GBlendingConfig,
) -> Result<Vec<OgrMeasure>> {
    let vars = model.state_vars();
    let snap = snapshot(&vars)?;
    let mut out = Vec::new();
    let result = (|| -> Result<()> {
        for b in 0..=model.num_modalities() {
            restore(&vars, &snap)?;
            let train_pre = mean_loss(model, data, Split::Train, b)?;
            let val_pre = mean_loss(model, data, Split::Validation, b)?;
            let mut sgd = Sgd::new(cfg.sgd())?;
            for _ in 0..cfg.ogr_epochs {
                data.for_each_batch(Split::Train, None, &mut |x, y| {
                    let l = CrossEntropy.loss(&branch_logits(model, x, b, true)?, y)?;
                    let g = all_grads(model, &l)?;
                    sgd.step(&g)
                })?;
            }
            let train_now = mean_loss(model, data, Split::Train, b)?;
            let val_now = mean_loss(model, data, Split::Validation, b)?;
            out.push(OgrMeasure { train_pre, val_pre, train_now, val_now });
        }
        Ok(())
    })();
    restore(&vars, &snap)?;
    result.map(|_| out)
}

/// G-Blending with re-estimated OGR weights.
#[derive(Clone, Debug)]
pub struct GBlendingOgr {
    pub cfg: GBlendingConfig,
    /// w_0 … w_{M−1}, w_mm.
    weights: Option<Vec<f64>>,
}

impl GBlendingOgr {
    pub fn new(cfg: GBlendingConfig) -> Self {
        Self { cfg, weights: None }
    }

    /// Current weights (unimodal…, multimodal).
    pub fn weights(&self) -> Option<&[f64]> {
        self.weights.as_deref()
    }
}

impl Method for GBlendingOgr {
    fn name(&self) -> String {
        "gblending-ogr".into()
    }

    fn check(&self, model: &dyn MultimodalModel) -> Result<()> {
        require_multimodal(model, "gblending-ogr")
    }

    fn needs_validation(&self) -> bool {
        true
    }

    fn on_epoch_start(&mut self, model: &dyn MultimodalModel, epoch: usize, data: &dyn BatchSource) -> Result<()> {
        let stale = self.weights.as_ref().is_none_or(|w| w.len() != model.num_modalities() + 1);
        if epoch % self.cfg.ogr_every == 0 || stale {
            self.weights = Some(ogr_weights(&measure_branches(model, data, &self.cfg)?));
        }
        Ok(())
    }

    fn train_step(&mut self, ctx: &mut StepContext<'_>, inputs: &[Tensor], targets: &Tensor) -> Result<StepReport> {
        let model = ctx.model;
        let mm = model.num_modalities();
        let w = self.weights.as_ref().filter(|w| w.len() == mm + 1).ok_or_else(|| {
            Error::InvalidInput(
                "G-Blending (OGR) has no weights: the loop must call on_epoch_start before training".into(),
            )
        })?;
        let weights = LossWeights { multimodal: w[mm], unimodal: w[..mm].to_vec() };
        let out = routed_step_weighted(model, inputs, targets, &Routing::blend(1.0), &weights, ctx.loss)?;
        let names = model.modality_names();
        let mut scalars: Vec<(String, f64)> = names.iter().zip(w).map(|(n, w)| (format!("weight_{n}"), *w)).collect();
        scalars.push(("weight_mm".into(), w[mm]));
        ctx.apply_routed(out, scalars)
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(match &self.weights {
            Some(w) => vec![("gblending.weights".into(), f64_tensor(w)?)],
            None => Vec::new(),
        })
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some(t) = crate::util::find_state(state, "gblending.weights") {
            let n = t.elem_count();
            self.weights = state_f64(state, "gblending.weights", n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn ogr_weights_by_hand() {
        let m = [
            // G = 0.8 − 1.0 = −0.2; O = (0.8 − 0.5) − (1.0 − 0.9) = 0.2 ⇒ |G/O²| = 5.
            OgrMeasure { train_pre: 0.9, val_pre: 1.0, train_now: 0.5, val_now: 0.8 },
            // G = −0.1; O = (0.9 − 0.4) − (1.0 − 1.0) = 0.5 ⇒ 0.4.
            OgrMeasure { train_pre: 1.0, val_pre: 1.0, train_now: 0.4, val_now: 0.9 },
            // G = −0.3; O = (0.7 − 0.6) − (1.0 − 1.0) = 0.1 ⇒ 30.
            OgrMeasure { train_pre: 1.0, val_pre: 1.0, train_now: 0.6, val_now: 0.7 },
        ];
        let w = ogr_weights(&m);
        assert_close(&w, &[5.0 / 35.4, 0.4 / 35.4, 30.0 / 35.4], 1e-12, "w");
        // Degenerate: nothing moves ⇒ uniform.
        let z = OgrMeasure { train_pre: 1.0, val_pre: 1.0, train_now: 1.0, val_now: 1.0 };
        assert_eq!(ogr_weights(&[z, z]), vec![0.5, 0.5]);
    }

    /// The weights come from the measured losses of each branch; the model is left unchanged;
    /// the step trains with w_mm L_mm + Σ w_m L_m.
    #[test]
    fn estimation_restores_the_model_and_weights_the_step() {
        let model = Toy::new(&[3, 2], 4, 3, 5);
        let data = Data::random(&model, 3, 2, 6, 6);
        let cfg = GBlendingConfig { ogr_lr: 0.5, ogr_momentum: 0.0, ogr_weight_decay: 0.0, ..Default::default() };
        let before = values(&model);
        let measures = measure_branches(&model, &data, &cfg).unwrap();
        assert_eq!(values(&model), before);
        assert_eq!(measures.len(), 3);
        // The pre-training measurement of the multimodal branch by hand.
        let mut tot = 0.0;
        for (x, y) in &data.val {
            let z = model.encode_all(x, false).unwrap();
            tot += scalar(&CrossEntropy.loss(&model.fuse(&z, false).unwrap(), y).unwrap()).unwrap();
        }
        assert!((measures[2].val_pre - tot / 2.0).abs() < 1e-12);
        // Training lowered every branch's training loss.
        for m in &measures {
            assert!(m.train_now < m.train_pre, "{m:?}");
        }

        let mut ogr = GBlendingOgr::new(cfg);
        assert!(ogr.needs_validation());
        ogr.on_epoch_start(&model, 0, &data).unwrap();
        let w = ogr.weights().unwrap().to_vec();
        assert_close(&w, &ogr_weights(&measures), 1e-12, "weights");
        assert_eq!(values(&model), before);
        // Epoch 3 (not a multiple of 10): unchanged.
        ogr.weights = Some(vec![0.2, 0.3, 0.5]);
        ogr.on_epoch_start(&model, 3, &data).unwrap();
        assert_eq!(ogr.weights().unwrap(), &[0.2, 0.3, 0.5]);

        // The step's gradient is that of 0.5 L_mm + 0.2 L_a + 0.3 L_v.
        let (x, y) = &data.train[0];
        let z = model.encode_all(x, true).unwrap();
        let l = ((CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap() * 0.5).unwrap()
            + ((CrossEntropy.loss(&model.fuse_only(&z, 0, true).unwrap(), y).unwrap() * 0.2).unwrap()
                + (CrossEntropy.loss(&model.fuse_only(&z, 1, true).unwrap(), y).unwrap() * 0.3).unwrap())
            .unwrap())
        .unwrap();
        let g = all_grads(&model, &l).unwrap();
        let (upd, _) = grads_by_sgd(&mut ogr, &model, 3, x, y);
        for (n, got) in &upd {
            assert_close(got, &vec(g.get(n).unwrap()), 1e-10, n);
        }
        let mut other = GBlendingOgr::new(GBlendingConfig::default());
        other.load_state(&ogr.state().unwrap()).unwrap();
        assert_eq!(other.weights().unwrap(), &[0.2, 0.3, 0.5]);
    }
}
