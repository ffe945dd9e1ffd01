//! Gradient routing: the DGL step (paper Eq. 9-15, Algorithm 1), its ablations and plain training.
//!
//! One forward of the encoders, z_m = φ_m(x_m), then
//!
//! * the multimodal loss L_mm = CE(h(z_1, …, z_M), y), or L_d = CE(h(sg z_1, …, sg z_M), y) when the
//!   multimodal gradient is cut from the encoders ("MT", paper Eq. 9);
//! * the unimodal losses L_m = CE(h(0, …, z_m, …, 0), y) through the same fusion module and head
//!   (modality dropout, Eq. 10-12), weighted by α;
//! * the unimodal gradient is removed from the fusion module / head when "UT" is on (Eq. 13-14).
//!
//! | routing | encoders receive | fusion/head receive |
//! |---|---|---|
//! | [`Routing::plain`] | ∇L_mm | ∇L_mm |
//! | [`Routing::dgl`] | α ∇Σ L_m | ∇L_d |
//! | [`Routing::mt_only`] | α ∇Σ L_m | ∇L_d + α ∇Σ L_m |
//! | [`Routing::ut_only`] | ∇L_mm + α ∇Σ L_m | ∇L_mm |
//! | [`Routing::blend`] (fixed-weight G-Blending) | ∇L_mm + α ∇Σ L_m | ∇L_mm + α ∇Σ L_m |
//!
//! Implementation: when the unimodal gradient is kept out of the head, the encoders' gradient comes
//! from one backward of (L_mm or 0) + α Σ L_m restricted to the encoder groups, and the head's from a
//! backward of the multimodal loss on detached features restricted to the head (cheap: the graph of
//! `sg z` stops at the head). This is exactly the official two-backward procedure
//! (`main_dgl.py:90-154`) and needs nothing from the model beyond [`MultimodalModel`].

use candle_core::Tensor;

use crate::error::check_hp;
use crate::grads::ParamGrads;
use crate::loss::Loss;
use crate::model::{detach_all, MultimodalModel};
use crate::{Error, Result};

/// Which losses reach which parameter groups, and the unimodal weight α.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Routing {
    /// Whether the multimodal loss back-propagates into the encoders (false = "MT", L_d on sg z).
    pub multimodal_to_encoders: bool,
    /// Whether the unimodal losses' gradient reaches the fusion module / head (false = "UT").
    pub unimodal_to_head: bool,
    /// α ≥ 0, the weight of Σ_m L_m. 0 disables the unimodal losses.
    pub unimodal_weight: f64,
}

impl Routing {
    /// Plain joint training: L_mm only.
    pub fn plain() -> Self {
        Self { multimodal_to_encoders: true, unimodal_to_head: true, unimodal_weight: 0.0 }
    }
    /// DGL: MT + UT (Eq. 15).
    pub fn dgl(unimodal_weight: f64) -> Self {
        Self { multimodal_to_encoders: false, unimodal_to_head: false, unimodal_weight }
    }
    /// Ablation "MT only" (Table 3).
    pub fn mt_only(unimodal_weight: f64) -> Self {
        Self { multimodal_to_encoders: false, unimodal_to_head: true, unimodal_weight }
    }
    /// Ablation "UT only" (Table 3).
    pub fn ut_only(unimodal_weight: f64) -> Self {
        Self { multimodal_to_encoders: true, unimodal_to_head: false, unimodal_weight }
    }
    /// Fixed-weight blending L_mm + α Σ L_m, every gradient everywhere (G-Blending as the DGL paper
    /// ran it, Table 4).
    pub fn blend(unimodal_weight: f64) -> Self {
        Self { multimodal_to_encoders: true, unimodal_to_head: true, unimodal_weight }
    }

    /// Checks α and the modality count before any work.
    pub fn validate(&self, num_modalities: usize) -> Result<()> {
        check_hp(
            self.unimodal_weight.is_finite() && self.unimodal_weight >= 0.0,
            "unimodal_weight",
            self.unimodal_weight,
            "must be finite and >= 0",
        )?;
        if self.unimodal_weight > 0.0 && num_modalities < 2 {
            return Err(Error::InvalidInput(format!(
                "unimodal losses by modality dropout need at least 2 modalities, the model has {num_modalities}"
            )));
        }
        Ok(())
    }
}

/// Optional per-loss weights, for methods that weight the losses differently (e.g. G-Blending's
/// OGR weights): the step then uses `multimodal`·L_mm and Σ_m `unimodal[m]`·L_m instead of 1 and α.
#[derive(Clone, Debug, PartialEq)]
pub struct LossWeights {
    pub multimodal: f64,
    pub unimodal: Vec<f64>,
}

impl LossWeights {
    /// (1, [α; M]).
    pub fn from_unimodal_weight(unimodal_weight: f64, num_modalities: usize) -> Self {
        Self { multimodal: 1.0, unimodal: vec![unimodal_weight; num_modalities] }
    }
}

/// What one routed step produced. Every tensor is detached.
#[derive(Debug)]
pub struct StepOutput {
    /// Multimodal loss (L_mm, or L_d — same value), scalar.
    pub loss_mm: Tensor,
    /// L_m per modality (empty when α = 0), scalars.
    pub loss_uni: Vec<Tensor>,
    /// h(z) logits.
    pub logits_mm: Tensor,
    /// h(0, …, z_m, …, 0) logits per modality (empty when α = 0).
    pub logits_uni: Vec<Tensor>,
    /// The representations z_m.
    pub z: Vec<Tensor>,
    /// The routed gradients, ready for clipping and the optimizer step.
    pub grads: ParamGrads,
}

/// The routed step for one batch with weights (1, α…): forward in training mode, losses, routed
/// gradients. Does not update parameters.
pub fn routed_step(
    model: &dyn MultimodalModel,
    inputs: &[Tensor],
    targets: &Tensor,
    routing: &Routing,
    loss: &dyn Loss,
) -> Result<StepOutput> {
    let weights = LossWeights::from_unimodal_weight(routing.unimodal_weight, model.num_modalities());
    routed_step_weighted(model, inputs, targets, routing, &weights, loss)
}

/// [`routed_step`] with explicit per-loss weights (`routing.unimodal_weight` is then only used to decide
/// whether unimodal losses exist: they do when any unimodal weight is > 0).
pub fn routed_step_weighted(
    model: &dyn MultimodalModel,
    inputs: &[Tensor],
    targets: &Tensor,
    routing: &Routing,
    weights: &LossWeights,
    loss: &dyn Loss,
) -> Result<StepOutput> {
    let m_count = model.num_modalities();
    if weights.unimodal.len() != m_count {
        return Err(Error::InvalidInput(format!(
            "{} unimodal weights for {m_count} modalities",
            weights.unimodal.len()
        )));
    }
    let use_uni = weights.unimodal.iter().any(|&w| w > 0.0);
    routing.validate(if use_uni { m_count } else { m_count.max(2) })?;

    let z = model.encode_all(inputs, true)?;
    let z_sg = detach_all(&z);
    let logits_mm = model.fuse(if routing.multimodal_to_encoders { &z } else { &z_sg }, true)?;
    let loss_mm = loss.loss(&logits_mm, targets)?;

    let mut logits_uni = Vec::new();
    let mut loss_uni = Vec::new();
    let mut weighted_uni: Option<Tensor> = None;
    if use_uni {
        for (m, &w) in weights.unimodal.iter().enumerate() {
            let lg = model.fuse_only(&z, m, true)?;
            let l = loss.loss(&lg, targets)?;
            if w > 0.0 {
                let wl = (&l * w)?;
                weighted_uni = Some(match weighted_uni {
                    Some(acc) => (acc + wl)?,
                    None => wl,
                });
            }
            logits_uni.push(lg);
            loss_uni.push(l);
        }
    }

    let groups = model.param_groups();
    let weighted_mm = if weights.multimodal == 1.0 { loss_mm.clone() } else { (&loss_mm * weights.multimodal)? };
    let grads = match (&weighted_uni, routing.unimodal_to_head) {
        (None, _) | (Some(_), true) => {
            // One backward: every gradient goes everywhere the graph allows.
            let total = match &weighted_uni {
                Some(u) => (&weighted_mm + u)?,
                None => weighted_mm.clone(),
            };
            ParamGrads::from_store(&total.backward()?, &groups, |_| true)
        }
        (Some(uni), false) => {
            // Encoders: (L_mm if it reaches them) + α Σ L_m, restricted to the encoder groups.
            let enc_loss = if routing.multimodal_to_encoders { (&weighted_mm + uni)? } else { uni.clone() };
            let mut g = ParamGrads::from_store(&enc_loss.backward()?, &groups, |k| !k.is_fusion_or_head());
            // Head: the multimodal loss on detached features, restricted to the head.
            let head_loss = if routing.multimodal_to_encoders {
                let l = loss.loss(&model.fuse(&z_sg, true)?, targets)?;
                if weights.multimodal == 1.0 {
                    l
                } else {
                    (l * weights.multimodal)?
                }
            } else {
                weighted_mm.clone()
            };
            g.merge(ParamGrads::from_store(&head_loss.backward()?, &groups, |k| k.is_fusion_or_head()))?;
            g
        }
    };

    Ok(StepOutput {
        loss_mm: loss_mm.detach(),
        loss_uni: loss_uni.iter().map(|t| t.detach()).collect(),
        logits_mm: logits_mm.detach(),
        logits_uni: logits_uni.iter().map(|t| t.detach()).collect(),
        z: z_sg,
        grads,
    })
}

/// Evaluation forward (eval mode, no gradients kept): multimodal logits h(z) and, per modality m,
/// h(0, …, z_m, …, 0) — the accuracy of modality m inside the model (method.md, Evaluation).
pub fn evaluate_logits(model: &dyn MultimodalModel, inputs: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
    let z = detach_all(&model.encode_all(inputs, false)?);
    let mm = model.fuse(&z, false)?.detach();
    let uni = if model.num_modalities() >= 2 {
        (0..model.num_modalities())
            .map(|m| model.fuse_only(&z, m, false).map(|t| t.detach()))
            .collect::<candle_core::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    Ok((mm, uni))
}
