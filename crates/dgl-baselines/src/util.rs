//! Small helpers shared by the methods: host conversions, hyper-parameter checks, state encoding.

use candle_core::{DType, Device, Tensor};
use dgl_core::grads::ParamGrads;
use dgl_core::rng::Rng;
use dgl_core::{Error, MultimodalModel, Result, StepContext};

/// An invalid-hyper-parameter error.
pub(crate) fn hp_error(name: &'static str, value: impl ToString, reason: &'static str) -> Error {
    Error::InvalidHyperParameter { name, value: value.to_string(), reason }
}

/// `Ok(())` when `ok`, else an invalid-hyper-parameter error.
pub(crate) fn check_hp(ok: bool, name: &'static str, value: impl ToString, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(hp_error(name, value, reason))
    }
}

/// Refuses a weight or strength that is negative, NaN or infinite, naming the option.
pub(crate) fn check_non_negative(name: &'static str, value: f64) -> Result<()> {
    check_hp(value.is_finite() && value >= 0.0, name, value, "must be finite and >= 0")
}

/// A scalar tensor as f64.
pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?
        .first()
        .copied()
        .ok_or_else(|| Error::InvalidInput("empty tensor where a scalar was expected".into()))
}

/// Every element of a tensor, row-major, as f64.
pub(crate) fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Class indices of a target tensor (u8/u32/i64/…), flattened.
pub(crate) fn host_targets(t: &Tensor) -> Result<Vec<usize>> {
    let flat = t.flatten_all()?;
    let v: Vec<usize> = match flat.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?.into_iter().map(usize::from).collect(),
        DType::U32 => flat.to_vec1::<u32>()?.into_iter().map(|x| x as usize).collect(),
        _ => {
            let v = flat.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            if v.iter().any(|x| *x < 0.0 || x.fract() != 0.0) {
                return Err(Error::InvalidInput("targets must be non-negative class indices".into()));
            }
            v.into_iter().map(|x| x as usize).collect()
        }
    };
    Ok(v)
}

/// Row-wise softmax of a `[B, K]` host matrix.
pub(crate) fn softmax_rows(logits: &[f64], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(k) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|x| (x - max).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.into_iter().map(|x| x / s));
    }
    out
}

/// softmax(logits)_i\[y_i\] for every sample of a `[B, K]` logits tensor.
pub(crate) fn target_probs(logits: &Tensor, targets: &[usize]) -> Result<Vec<f64>> {
    let (b, k) = logits.dims2()?;
    if b != targets.len() {
        return Err(Error::InvalidInput(format!("{b} logit rows for {} targets", targets.len())));
    }
    let p = softmax_rows(&host_f64(logits)?, k);
    targets
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if y >= k {
                Err(Error::InvalidInput(format!("target {y} out of range for {k} classes")))
            } else {
                Ok(p[i * k + y])
            }
        })
        .collect()
}

/// ρ_m = mean_{j≠m} s_m / s_j for every modality m: OGM-GE and PMR's M-modality ratio,
/// BalanceBenchmark `OGM_trainer.py:125-134` at `4c1482f` (method `OGM_GE3`), with its `/ count`
/// applied to every ρ_m — BalanceBenchmark divides only the last modality's, its l.134 sitting
/// outside the loop — and without its `+ 1e-5` in the denominators, which the official
/// two-modality codes do not have.
///
/// At M = 2 it is bit for bit (s_0/s_1, s_1/s_0): the mean of one term is that term. A zero score
/// gives an infinite or NaN ratio, as the official division does. Empty for fewer than 2 scores.
pub(crate) fn mean_score_ratios(scores: &[f64]) -> Vec<f64> {
    if scores.len() < 2 {
        return Vec::new();
    }
    let others = (scores.len() - 1) as f64;
    scores
        .iter()
        .enumerate()
        .map(|(m, &s_m)| {
            let sum: f64 = scores.iter().enumerate().filter(|&(j, _)| j != m).map(|(_, &s_j)| s_m / s_j).sum();
            sum / others
        })
        .collect()
}

/// Whether 0-based `epoch` lies in the inclusive window [start, end] (`end = None`: no end).
pub(crate) fn in_window(epoch: usize, start: usize, end: Option<usize>) -> bool {
    epoch >= start && end.is_none_or(|e| epoch <= e)
}

/// Validates a modulation window.
pub(crate) fn check_window(start: usize, end: Option<usize>) -> Result<()> {
    check_hp(
        end.is_none_or(|e| e >= start),
        "modulation_ends",
        format!("{end:?}"),
        "must be >= modulation_starts (or absent for no end)",
    )
}

/// Errors on a non-finite loss, as the routed step does.
pub(crate) fn check_losses(losses: &[(String, f64)], ctx: &StepContext<'_>) -> Result<()> {
    ctx.check_losses(losses)
}

/// The gradients of every trainable parameter of the model from one backward of `loss`.
pub(crate) fn all_grads(model: &dyn MultimodalModel, loss: &Tensor) -> Result<ParamGrads> {
    Ok(ParamGrads::from_store(&loss.backward()?, &model.param_groups(), |_| true))
}

/// Unbiased standard deviation (`torch.Tensor.std()`, Bessel-corrected) of every element; 0 for
/// fewer than 2 elements.
pub(crate) fn std_unbiased(t: &Tensor) -> Result<f64> {
    let n = t.elem_count();
    if n < 2 {
        return Ok(0.0);
    }
    let x = t.to_dtype(DType::F64)?.flatten_all()?;
    let mean = x.mean_all()?;
    let ss = scalar(&x.broadcast_sub(&mean)?.sqr()?.sum_all()?)?;
    Ok((ss / (n - 1) as f64).sqrt())
}

/// `n` independent N(0, std²) draws from the host generator (Box-Muller, both outputs used).
pub(crate) fn gaussian(rng: &mut Rng, n: usize, std: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - rng.uniform(); // (0, 1]
        let u2 = rng.uniform();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push(r * th.cos());
        out.push(r * th.sin());
    }
    out.truncate(n);
    out
}

/// A tensor of host values with the given shape, dtype and device.
pub(crate) fn upload(values: Vec<f64>, shape: &[usize], dtype: DType, dev: &Device) -> Result<Tensor> {
    let t = match dtype {
        DType::F64 => Tensor::from_vec(values, shape, dev)?,
        _ => {
            let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
            Tensor::from_vec(v, shape, dev)?.to_dtype(dtype)?
        }
    };
    Ok(t)
}

/// One-hot `[B, K]` matrix of the targets.
pub(crate) fn one_hot(targets: &[usize], k: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mut v = vec![0f64; targets.len() * k];
    for (i, &y) in targets.iter().enumerate() {
        if y >= k {
            return Err(Error::InvalidInput(format!("target {y} out of range for {k} classes")));
        }
        v[i * k + y] = 1.0;
    }
    upload(v, &[targets.len(), k], dtype, dev)
}

/// Per-sample entropy −Σ_k p log p of `[B, K]` logits along dim 1 → `[B]`.
pub(crate) fn entropy(logits: &Tensor, dim: usize) -> Result<Tensor> {
    let lp = candle_nn::ops::log_softmax(logits, dim)?;
    Ok(lp.exp()?.mul(&lp)?.sum(dim)?.neg()?)
}

/// Flattens `[B, …]` to `[B, n]`.
pub(crate) fn flatten_rows(t: &Tensor) -> Result<Tensor> {
    Ok(if t.rank() == 2 { t.clone() } else { t.flatten_from(1)? })
}

/// `[B, d]` mean over the batch → host vector.
pub(crate) fn batch_mean(t: &Tensor) -> Result<Vec<f64>> {
    host_f64(&flatten_rows(t)?.mean(0)?)
}

// ----- method state encoding -----------------------------------------------------------------

/// Named f64 values as a CPU tensor.
pub(crate) fn f64_tensor(values: &[f64]) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, values.len(), &Device::Cpu)?)
}

/// The tensor called `name` in a saved state.
pub(crate) fn find_state<'a>(state: &'a [(String, Tensor)], name: &str) -> Option<&'a Tensor> {
    state.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

/// The f64 values of the state tensor `name`, checking its length.
pub(crate) fn state_f64(state: &[(String, Tensor)], name: &str, len: usize) -> Result<Option<Vec<f64>>> {
    match find_state(state, name) {
        None => Ok(None),
        Some(t) => {
            let v = host_f64(t)?;
            if v.len() != len {
                return Err(Error::InvalidInput(format!(
                    "method state `{name}` has {} values, expected {len}",
                    v.len()
                )));
            }
            Ok(Some(v))
        }
    }
}

/// An [`Rng`]'s state as a `[8]` u32 tensor.
pub(crate) fn rng_tensor(rng: &Rng) -> Result<Tensor> {
    let v: Vec<u32> = rng.state().iter().flat_map(|x| [(*x >> 32) as u32, *x as u32]).collect();
    Ok(Tensor::from_vec(v, 8, &Device::Cpu)?)
}

/// Restores an [`Rng`] saved by [`rng_tensor`].
pub(crate) fn rng_from_tensor(t: &Tensor) -> Result<Rng> {
    let v = t.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    if v.len() != 8 {
        return Err(Error::InvalidInput(format!("an rng state has 8 words, got {}", v.len())));
    }
    let mut s = [0u64; 4];
    for (i, w) in s.iter_mut().enumerate() {
        *w = ((v[2 * i] as u64) << 32) | v[2 * i + 1] as u64;
    }
    Ok(Rng::from_state(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_score_ratios_by_hand() {
        // M = 2: exactly s_a/s_v and s_v/s_a.
        let r = mean_score_ratios(&[0.3, 0.7]);
        assert_eq!(r, vec![0.3 / 0.7, 0.7 / 0.3]);
        // M = 3, s = (1, 2, 4): ρ_0 = (1/2 + 1/4)/2, ρ_1 = (2 + 1/2)/2, ρ_2 = (4 + 2)/2 — every ratio
        // averaged (BalanceBenchmark divides only the last one by the count).
        let r = mean_score_ratios(&[1.0, 2.0, 4.0]);
        assert_eq!(r, vec![0.375, 1.25, 3.0]);
        assert!(mean_score_ratios(&[1.0]).is_empty());
        // A zero score: the official division by zero.
        let r = mean_score_ratios(&[0.0, 2.0]);
        assert_eq!(r[0], 0.0);
        assert!(r[1].is_infinite());
    }
}
