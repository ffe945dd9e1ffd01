//! Training-mode batch normalisation on CUDA through cuDNN (`cudnnBatchNormalizationForwardTraining`
//! / `cudnnBatchNormalizationBackward`, `CUDNN_BATCHNORM_SPATIAL` — what PyTorch's `BatchNorm2d`
//! runs), as one candle op with one backward op.
//!
//! candle builds batch norm from about ten generic ops, and its autograd keeps their full-size
//! intermediates (x − μ, (x − μ)², the scaled copy, …) alive until the backward: several extra
//! activation-sized tensors per layer, the main reason a candle step of the paper's model needed
//! 21.6 GB where PyTorch needs 6.2 GB (../shared/cuda/BUILD.md). This op keeps only its input and
//! one packed output `[y | μ | 1/√(σ² + ε)]` (the saved statistics cuDNN's backward reads), and the
//! backward is one cuDNN call producing `[dx | dγ | dβ]`.
//!
//! cudarc's safe cuDNN API has no batch norm, so this file calls the C API (`cudarc::cudnn::sys`)
//! with its own handle and descriptors. f32 and f64 (scale/bias/statistics in the input's type, as
//! cuDNN requires for float and double).
//!
//! **Status:** compiled by `cargo xtask cuda-build --cudnn`, never run (no GPU yet);
//! `crates/dgl-models/tests/cuda_parity.rs` compares it with the CPU op (forward, statistics and all
//! three gradients) the first time a GPU runs `benchmarks/gpu-check.sh`. `DGL_KERNELS=candle`
//! switches it off with the other kernels.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::{result, sys, CudnnDataType};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, CudaView};
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{bail, CudaDevice, CudaStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};

use crate::cpu::batch_norm::Geom;

/// A raw cuDNN handle bound to a device's stream (one per thread and device).
struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `cudnnCreate` and destroyed once, here.
        let _ = unsafe { result::destroy_handle(self.0) };
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Handle>> = RefCell::new(HashMap::new());
}

fn with_handle<R>(dev: &CudaDevice, f: impl FnOnce(sys::cudnnHandle_t) -> Result<R>) -> Result<R> {
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        if !h.contains_key(&dev.id()) {
            let raw = result::create_handle().map_err(candle_core::Error::wrap)?;
            let handle = Handle(raw);
            // SAFETY: a valid handle and the device's own stream (candle runs every op on it).
            unsafe { result::set_stream(raw, dev.cuda_stream().cu_stream() as sys::cudaStream_t) }
                .map_err(candle_core::Error::wrap)?;
            h.insert(dev.id(), handle);
        }
        f(h[&dev.id()].0)
    })
}

/// A 4-d NCHW tensor descriptor, destroyed on drop.
struct Desc(sys::cudnnTensorDescriptor_t);

impl Desc {
    fn new<T: CudnnDataType>(dims: [usize; 4]) -> Result<Self> {
        let d = Desc(result::create_tensor_descriptor().map_err(candle_core::Error::wrap)?);
        let dims = dims.map(|v| v as i32);
        // SAFETY: a freshly created descriptor.
        unsafe {
            result::set_tensor4d_descriptor(d.0, sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW, T::DATA_TYPE, dims)
        }
        .map_err(candle_core::Error::wrap)?;
        Ok(d)
    }
}

impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created by `cudnnCreateTensorDescriptor` and destroyed once, here.
        let _ = unsafe { result::destroy_tensor_descriptor(self.0) };
    }
}

/// x viewed as NCHW (B, C, R, 1), within cuDNN's i32 dimensions.
fn geom(shape: &Shape) -> Result<Geom> {
    let g = Geom::of(shape)?;
    if [g.b, g.c, g.r].iter().any(|&v| i32::try_from(v).is_err()) {
        bail!("batch_norm: {shape:?} exceeds cuDNN's i32 dimensions")
    }
    Ok(g)
}

/// The contiguous device range of a storage / layout pair.
fn range(l: &Layout, what: &str) -> Result<(usize, usize)> {
    match l.contiguous_offsets() {
        Some(r) => Ok(r),
        None => bail!("cuDNN batch norm: {what} must be contiguous"),
    }
}

/// Which cuDNN call an op makes.
#[derive(Clone, Copy, Debug)]
enum Pass {
    /// `(x, γ, β) → [y | μ | 1/√(σ² + ε)]`
    Forward,
    /// `(x, dy, [μ | 1/√(σ² + ε) | γ]) → [dx | dγ | dβ]`
    Backward,
}

/// One cuDNN batch-norm call as a candle op; the forward pass carries the backward.
struct BatchNormOp {
    pass: Pass,
    g: Geom,
    eps: f64,
}

/// What both cuDNN calls need: the three inputs as device views, the packed output
/// (`B·C·R + 2C` elements, every one written by cuDNN), and the x / per-channel descriptors.
struct Call<'a, T: DeviceRepr> {
    dev: CudaDevice,
    stream: std::sync::Arc<CudaStream>,
    inputs: [CudaView<'a, T>; 3],
    out: CudaSlice<T>,
    x_desc: Desc,
    c_desc: Desc,
}

impl<'a, T: CudaDType + CudnnDataType + DeviceRepr> Call<'a, T> {
    fn new(g: Geom, inputs: [(&'a CudaStorage, &Layout, &str); 3]) -> Result<Self> {
        let dev = inputs[0].0.device().clone();
        let view = |(s, l, what): (&'a CudaStorage, &Layout, &str)| -> Result<CudaView<'a, T>> {
            let (a, b) = range(l, what)?;
            Ok(s.as_cuda_slice::<T>()?.slice(a..b))
        };
        let inputs = [view(inputs[0])?, view(inputs[1])?, view(inputs[2])?];
        // SAFETY: every element of the packed output is written by cuDNN (beta factors are 0).
        let out = unsafe { dev.alloc::<T>(g.len() + 2 * g.c)? };
        let (x_desc, c_desc) = (Desc::new::<T>([g.b, g.c, g.r, 1])?, Desc::new::<T>([1, g.c, 1, 1])?);
        Ok(Self { stream: dev.cuda_stream(), dev, inputs, out, x_desc, c_desc })
    }
}

fn forward<T: CudaDType + CudnnDataType + DeviceRepr + WithDType>(
    op: &BatchNormOp,
    x: (&CudaStorage, &Layout),
    gamma: (&CudaStorage, &Layout),
    beta: (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let g = op.g;
    let mut call = Call::<T>::new(g, [(x.0, x.1, "x"), (gamma.0, gamma.1, "weight"), (beta.0, beta.1, "bias")])?;
    let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
    let size = std::mem::size_of::<T>() as u64;
    with_handle(&call.dev, |h| {
        let s = &call.stream;
        let (xp, _a) = call.inputs[0].device_ptr(s);
        let (gp, _b) = call.inputs[1].device_ptr(s);
        let (bp, _c) = call.inputs[2].device_ptr(s);
        let (yp, _d) = call.out.device_ptr_mut(s);
        let mean = yp + g.len() as u64 * size;
        let inv = mean + g.c as u64 * size;
        // SAFETY: descriptors match the buffers (x, y: B·C·R; γ, β, μ, 1/σ: C); no running
        // statistics (both NULL, which cuDNN allows); alpha/beta are host scalars of type T.
        unsafe {
            sys::cudnnBatchNormalizationForwardTraining(
                h,
                sys::cudnnBatchNormMode_t::CUDNN_BATCHNORM_SPATIAL,
                &one as *const T as *const c_void,
                &zero as *const T as *const c_void,
                call.x_desc.0,
                xp as *const c_void,
                call.x_desc.0,
                yp as *mut c_void,
                call.c_desc.0,
                gp as *const c_void,
                bp as *const c_void,
                0.0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                op.eps,
                mean as *mut c_void,
                inv as *mut c_void,
            )
        }
        .result()
        .map_err(candle_core::Error::wrap)
    })?;
    Ok(CudaStorage::wrap_cuda_slice(call.out, call.dev))
}

fn backward<T: CudaDType + CudnnDataType + DeviceRepr + WithDType>(
    op: &BatchNormOp,
    x: (&CudaStorage, &Layout),
    dy: (&CudaStorage, &Layout),
    saved: (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let g = op.g;
    let mut call = Call::<T>::new(g, [(x.0, x.1, "x"), (dy.0, dy.1, "dy"), (saved.0, saved.1, "saved statistics")])?;
    let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
    let size = std::mem::size_of::<T>() as u64;
    with_handle(&call.dev, |h| {
        let s = &call.stream;
        let (xp, _a) = call.inputs[0].device_ptr(s);
        let (dyp, _b) = call.inputs[1].device_ptr(s);
        let (sp, _c) = call.inputs[2].device_ptr(s);
        let (dxp, _d) = call.out.device_ptr_mut(s);
        let (mean, inv, gamma) = (sp, sp + g.c as u64 * size, sp + 2 * g.c as u64 * size);
        let dgamma = dxp + g.len() as u64 * size;
        let dbeta = dgamma + g.c as u64 * size;
        // SAFETY: as in `forward`; the saved statistics are the forward's own.
        unsafe {
            sys::cudnnBatchNormalizationBackward(
                h,
                sys::cudnnBatchNormMode_t::CUDNN_BATCHNORM_SPATIAL,
                &one as *const T as *const c_void,
                &zero as *const T as *const c_void,
                &one as *const T as *const c_void,
                &zero as *const T as *const c_void,
                call.x_desc.0,
                xp as *const c_void,
                call.x_desc.0,
                dyp as *const c_void,
                call.x_desc.0,
                dxp as *mut c_void,
                call.c_desc.0,
                gamma as *const c_void,
                dgamma as *mut c_void,
                dbeta as *mut c_void,
                op.eps,
                mean as *const c_void,
                inv as *const c_void,
            )
        }
        .result()
        .map_err(candle_core::Error::wrap)
    })?;
    Ok(CudaStorage::wrap_cuda_slice(call.out, call.dev))
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "dgl-batch-norm-cudnn",
            Pass::Backward => "dgl-batch-norm-cudnn-backward",
        }
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        bail!("{}: CUDA tensors expected (on the CPU use crate::cpu::batch_norm)", self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (a, b, c) = ((s1, l1), (s2, l2), (s3, l3));
        let out = match (self.pass, s1.dtype()) {
            (Pass::Forward, DType::F32) => forward::<f32>(self, a, b, c)?,
            (Pass::Forward, DType::F64) => forward::<f64>(self, a, b, c)?,
            (Pass::Backward, DType::F32) => backward::<f32>(self, a, b, c)?,
            (Pass::Backward, DType::F64) => backward::<f64>(self, a, b, c)?,
            (_, d) => bail!("{}: f32 or f64 expected, got {d:?}", self.name()),
        };
        Ok((out, Shape::from(self.g.len() + 2 * self.g.c)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        dres: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if let Pass::Backward = self.pass {
            bail!("{}: second-order gradients are not supported", self.name())
        }
        let (n, c) = (self.g.len(), self.g.c);
        let dy = dres.narrow(0, 0, n)?.contiguous()?;
        // [μ | 1/σ] from the forward's output, then γ: the backward op's third input.
        let saved = Tensor::cat(&[&res.narrow(0, n, 2 * c)?.detach(), &gamma.detach()], 0)?;
        let op = BatchNormOp { pass: Pass::Backward, ..*self };
        let out = x.apply_op3_no_bwd(&dy, &saved, &op)?;
        let dx = out.narrow(0, 0, n)?.reshape(x.shape())?;
        Ok((Some(dx), Some(out.narrow(0, n, c)?), Some(out.narrow(0, n + c, c)?)))
    }
}

/// cuDNN requires ε ≥ `CUDNN_BN_MIN_EPSILON` (1e-5, PyTorch's default); below it the layer uses
/// candle's ops.
pub const MIN_EPS: f64 = 1e-5;

/// Training-mode batch normalisation of `x` (B, C, …) on CUDA: returns `y` (differentiable in
/// `x`, `weight`, `bias`) and the batch `mean` and biased `var` (C, detached) for the running
/// averages — the same contract as [`crate::cpu::batch_norm::batch_norm_train`].
pub fn batch_norm_train_cudnn(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !super::cuda_f32_or_f64(&[x, weight, bias]) {
        bail!("batch_norm_train_cudnn: f32/f64 tensors on one CUDA device expected")
    }
    if eps < MIN_EPS {
        bail!("batch_norm_train_cudnn: cuDNN needs eps >= {MIN_EPS}, got {eps}")
    }
    let g = geom(x.shape())?;
    if weight.dims() != [g.c] || bias.dims() != [g.c] {
        bail!("batch_norm_train_cudnn: weight/bias of shape ({},) expected", g.c)
    }
    let res = x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        BatchNormOp { pass: Pass::Forward, g, eps },
    )?;
    let (n, c) = (g.len(), g.c);
    let y = res.narrow(0, 0, n)?.reshape(x.shape())?;
    let mean = res.narrow(0, n, c)?.detach();
    let inv_std = res.narrow(0, n + c, c)?.detach();
    // σ² = 1/(1/√(σ² + ε))² − ε (biased, as the CPU op returns).
    let var = (inv_std.sqr()?.recip()? - eps)?;
    Ok((y, mean, var))
}
