//! Loss functions the step takes as a parameter, so that non-classification heads (segmentation:
//! per-pixel logits) can use the same gradient routing.

use candle_core::{Result, Tensor};

/// A differentiable loss of (logits, targets) → scalar.
pub trait Loss {
    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor>;
}

/// Mean cross-entropy over the batch, as `torch.nn.CrossEntropyLoss()` (targets: class indices,
/// `u32`/`i64`; logits `[B, K]`, or `[B, K, ...]` for dense prediction where K is dim 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy;

impl Loss for CrossEntropy {
    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if logits.rank() == 2 {
            candle_nn::loss::cross_entropy(logits, targets)
        } else {
            // [B, K, d1, ...] → [B·d1·…, K]
            let k = logits.dim(1)?;
            let rank = logits.rank();
            let mut perm: Vec<usize> = (0..rank).collect();
            perm.remove(1);
            perm.push(1);
            let flat = logits.permute(perm)?.contiguous()?.reshape(((), k))?;
            candle_nn::loss::cross_entropy(&flat, &targets.flatten_all()?)
        }
    }
}

impl<F: Fn(&Tensor, &Tensor) -> Result<Tensor>> Loss for F {
    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        self(logits, targets)
    }
}
