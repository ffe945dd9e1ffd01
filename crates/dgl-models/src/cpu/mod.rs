//! CPU kernels for the ops that dominate a training step on the CPU — convolution
//! ([`conv::conv2d_cpu`]), training-mode batch normalisation with an optional ReLU
//! ([`batch_norm::batch_norm_train_act`]), the stem's max-pool ([`pool::max_pool2d_cpu`]) and the
//! residual add + ReLU ([`eltwise::add_relu_cpu`]) — as candle custom ops with their own backward. candle 0.11.1 runs them as chains of generic
//! ops (naive transposed convolution for the input gradient, strided reductions for the
//! per-channel statistics and the broadcast gradients), which made a CPU step several times slower
//! than its arithmetic requires. f32 and f64 on the CPU only; [`supports`] says when they apply, and
//! the layers fall back to candle's ops everywhere else (on CUDA, to `crate::cudnn` in a `cudnn`
//! build). [`crate::kernels::set_enabled`] turns them off.

pub mod batch_norm;
pub mod conv;
pub mod eltwise;
pub mod pool;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};

/// Whether the CPU kernels handle these tensors: enabled ([`crate::kernels::enabled`]) and
/// [`cpu_f32_or_f64`].
pub fn supports(ts: &[&Tensor]) -> bool {
    crate::kernels::enabled() && cpu_f32_or_f64(ts)
}

/// All on the CPU, all f32 or all f64 (what the kernels can compute, whether enabled or not).
pub fn cpu_f32_or_f64(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else { return false };
    let dtype = first.dtype();
    matches!(dtype, DType::F32 | DType::F64) && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == dtype)
}

/// Element types the kernels are written for.
pub(crate) trait Elem:
    Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + std::ops::AddAssign
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + Into<f64>
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
}
impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}
impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// The contiguous slice of a storage/layout pair.
pub(crate) fn slice<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("CPU kernel: {what} must be contiguous"),
    }
}

/// Runs the `f32` or `f64` kernel on two CPU storages of one dtype.
pub(crate) fn dispatch2(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    f32_op: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
    f64_op: impl FnOnce(&[f64], &[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => {
            Ok(CpuStorage::F32(f32_op(slice(a, l1, "lhs")?, slice(b, l2, "rhs")?)))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b)) => {
            Ok(CpuStorage::F64(f64_op(slice(a, l1, "lhs")?, slice(b, l2, "rhs")?)))
        }
        _ => bail!("CPU kernel: f32 or f64 inputs of one dtype expected, got {:?} and {:?}", s1.dtype(), s2.dtype()),
    }
}
