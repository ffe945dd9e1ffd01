//! The project's CUDA kernels through cuDNN (`cudnn` feature only): the convolution with cuDNN's
//! forward **and** backward ([`conv`]), and training-mode batch normalisation as one op with one
//! backward ([`batch_norm`]) — the two places where candle 0.11.1's generic ops cost the most time
//! (convolution backward) and memory (batch-norm intermediates) on a GPU.
//! [`crate::kernels::set_enabled`] / `DGL_KERNELS=candle` switch them off with the CPU kernels.

pub mod batch_norm;
pub mod conv;

pub use batch_norm::batch_norm_train_cudnn;
pub use conv::conv2d_cudnn;

use candle_core::{DType, Tensor};

/// Whether the cuDNN kernels handle these tensors: the project's kernels are on
/// ([`crate::kernels::enabled`]), all on one CUDA device, all f32 or all f64.
pub fn supports(ts: &[&Tensor]) -> bool {
    crate::kernels::enabled() && cuda_f32_or_f64(ts)
}

/// All on one CUDA device, all f32 or all f64 (what the kernels compute, whether enabled or not).
pub fn cuda_f32_or_f64(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else { return false };
    let dtype = first.dtype();
    matches!(dtype, DType::F32 | DType::F64)
        && ts.iter().all(|t| t.device().is_cuda() && t.device().same_device(first.device()) && t.dtype() == dtype)
}
