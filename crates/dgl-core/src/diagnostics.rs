//! The paper's diagnostics.
//!
//! * Fig. 1(c)/3(b): the gradient magnitude reaching each encoder from the multimodal loss vs from
//!   its unimodal loss ([`gradient_sources`]), measured as the official code does: Σ over the
//!   encoder's parameter tensors of mean |∂L/∂p| (`main_dgl.py:132-152`), *without* the α factor
//!   (the official log includes α, which inflates the DGL-vs-vanilla comparison).
//! * Fig. 3(a): s_k = exp((W_k^{(o)} − W_y^{(o)}) z_o) for k ≠ y ([`s_statistic`]): the factor by which
//!   the other modality o scales the multimodal gradient reaching this modality's encoder (Eq. 4-7).

use candle_core::{DType, Tensor, D};

use crate::grads::ParamGrads;
use crate::loss::Loss;
use crate::model::{GroupKind, MultimodalModel};
use crate::Result;

/// Per-encoder gradient magnitude from each loss.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientSources {
    /// Σ_p mean|∂L_mm/∂p| over encoder m's parameters (L_mm on non-detached features).
    pub from_multimodal: f64,
    /// Σ_p mean|∂L_m/∂p| (unweighted unimodal loss through the shared head).
    pub from_unimodal: f64,
}

/// Measures, for representations `z` still attached to the encoders' graph, the gradient each
/// encoder receives from L_mm = CE(h(z)) and from L_m = CE(h(0, …, z_m, …, 0)). Costs M + 1 extra
/// backward passes: call it every N steps, not every step.
pub fn gradient_sources(
    model: &dyn MultimodalModel,
    z: &[Tensor],
    targets: &Tensor,
    loss: &dyn Loss,
) -> Result<Vec<GradientSources>> {
    let groups = model.param_groups();
    let l_mm = loss.loss(&model.fuse(z, true)?, targets)?;
    let g_mm = ParamGrads::from_store(&l_mm.backward()?, &groups, |k| !k.is_fusion_or_head());
    let mut out = Vec::with_capacity(z.len());
    for m in 0..z.len() {
        let l_m = loss.loss(&model.fuse_only(z, m, true)?, targets)?;
        let g_m = ParamGrads::from_store(&l_m.backward()?, &groups, |k| k == GroupKind::Encoder(m));
        out.push(GradientSources {
            from_multimodal: g_mm.magnitude(GroupKind::Encoder(m))?,
            from_unimodal: g_m.magnitude(GroupKind::Encoder(m))?,
        });
    }
    Ok(out)
}

/// Summary of s over k ≠ y and the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct SStats {
    pub mean: f64,
    pub median: f64,
    pub min: f64,
}

/// s_k = exp((W_k − W_y) z) for every sample and every k ≠ y, with `w_other` ∈ R^{K×d} the head block
/// of the *other* modality and `z_other` ∈ R^{B×d} its representation; summarised over k ≠ y and
/// the batch. s = 1 for a unimodal model; s < 1 shrinks the multimodal gradient (Eq. 4-7).
pub fn s_statistic(w_other: &Tensor, z_other: &Tensor, targets: &Tensor) -> Result<SStats> {
    let logits = z_other.detach().to_dtype(DType::F64)?.matmul(&w_other.detach().to_dtype(DType::F64)?.t()?)?; // B×K
    let y = targets.to_dtype(DType::U32)?;
    let ly = logits.gather(&y.unsqueeze(D::Minus1)?, D::Minus1)?; // B×1
    let s = logits.broadcast_sub(&ly)?.exp()?;
    let s: Vec<Vec<f64>> = s.to_vec2()?;
    let y: Vec<u32> = y.to_vec1()?;
    let mut vals: Vec<f64> = Vec::new();
    for (row, &yi) in s.iter().zip(&y) {
        for (k, &v) in row.iter().enumerate() {
            if k != yi as usize {
                vals.push(v);
            }
        }
    }
    if vals.is_empty() {
        return Ok(SStats { mean: f64::NAN, median: f64::NAN, min: f64::NAN });
    }
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    vals.sort_by(|a, b| a.total_cmp(b));
    let median = vals[vals.len() / 2];
    Ok(SStats { mean, median, min: vals[0] })
}
