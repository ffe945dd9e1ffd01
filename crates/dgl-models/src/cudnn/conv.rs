//! The 2-D convolution on CUDA through cuDNN, forward **and backward** (`cudnn` feature only).
//!
//! candle 0.11.1's `cudnn` feature runs only the forward convolution through cuDNN; its backward
//! computes the input gradient with a naive transposed-convolution kernel and the weight gradient
//! as a convolution whose kernel is the whole output map — the cost that kept a candle training
//! step of the paper's model at 0.13× PyTorch eager on an H200 (../shared/cuda/BUILD.md).
//! [`conv2d_cudnn`] is a custom op whose three products are cuDNN's own:
//!
//! * forward: `cudnnConvolutionForward` (y = x ⋆ w);
//! * input gradient: `cudnnConvolutionBackwardData` (dx = dy ⋆ᵀ w);
//! * weight gradient: `cudnnConvolutionBackwardFilter` (dw = Σ_b dy_b ⋆ x_b),
//!
//! which is what PyTorch's `F.conv2d` runs on a GPU. cuDNN takes the padding and stride directly,
//! so the mismatched-remainder case that [`crate::ops::conv2d_candle`] works around needs nothing
//! here. Algorithms come from cuDNN's heuristics (`cudnnGet…Algorithm_v7`, like PyTorch with
//! `benchmark=False`).
//!
//! Precision: f32 runs with `CUDNN_FMA_MATH` (strict fp32, PyTorch's `allow_tf32=False`) unless
//! candle's reduced-precision f32 matmul switch is on (`candle_core::cuda::set_gemm_reduced_precision_f32`,
//! `--tf32` in the tools), then with `CUDNN_DEFAULT_MATH` (TF32 tensor cores). f64 uses the default.
//! Other dtypes go through candle's convolution ([`super::supports`]).
//!
//! **Status:** compiled by `cargo xtask cuda-build`; no session has had a GPU yet, so this op has
//! never run. `crates/dgl-models/tests/cuda_parity.rs` compares it with the CPU kernel and with
//! candle's CUDA convolution (forward and both gradients) the first time it runs on a GPU
//! (`benchmarks/gpu-check.sh`); until then treat it as unverified and switch it off with
//! [`crate::kernels::set_enabled`]`(false)` (or `DGL_KERNELS=candle`) if in doubt.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::{
    sys, ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType, FilterDescriptor,
    TensorDescriptor,
};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{bail, CudaDevice, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

use crate::cpu::conv::Geom;

thread_local! {
    /// cuDNN handles are neither `Send` nor `Sync`: one per thread and device (as candle does).
    static HANDLES: RefCell<HashMap<DeviceId, Arc<Cudnn>>> = RefCell::new(HashMap::new());
}

fn handle(dev: &CudaDevice) -> Result<Arc<Cudnn>> {
    HANDLES.with(|h| {
        if let Some(c) = h.borrow().get(&dev.id()) {
            return Ok(c.clone());
        }
        let c = Cudnn::new(dev.cuda_stream()).map_err(candle_core::Error::wrap)?;
        h.borrow_mut().insert(dev.id(), c.clone());
        Ok(c)
    })
}

/// The four cuDNN descriptors of one convolution.
struct Descriptors<T: CudnnDataType> {
    conv: ConvDescriptor<T>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
}

fn as_i32(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("conv2d_cudnn: dimension {v} exceeds i32")))
}

fn descriptors<T: CudnnDataType>(cudnn: &Arc<Cudnn>, g: &Geom, dtype: DType) -> Result<Descriptors<T>> {
    let e = candle_core::Error::wrap;
    let (p, s) = (as_i32(g.padding)?, as_i32(g.stride)?);
    let mut conv = cudnn
        .create_conv2d::<T>([p, p], [s, s], [1, 1], sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION)
        .map_err(e)?;
    if dtype == DType::F32 {
        let math = if candle_core::cuda::gemm_reduced_precision_f32() {
            sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        };
        conv.set_math_type(math).map_err(e)?;
    }
    let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let x = cudnn.create_4d_tensor::<T>(nchw, [as_i32(g.b)?, as_i32(g.c)?, as_i32(g.h)?, as_i32(g.w)?]).map_err(e)?;
    let w = cudnn.create_4d_filter::<T>(nchw, [as_i32(g.o)?, as_i32(g.c)?, as_i32(g.kh)?, as_i32(g.kw)?]).map_err(e)?;
    let y = cudnn.create_4d_tensor::<T>(nchw, [as_i32(g.b)?, as_i32(g.o)?, as_i32(g.ho)?, as_i32(g.wo)?]).map_err(e)?;
    Ok(Descriptors { conv, x, w, y })
}

/// Which of the three cuDNN products an op computes; `(a, b)` are its two inputs.
#[derive(Clone, Copy, Debug)]
enum Product {
    /// `(x, w) → y`
    Forward,
    /// `(dy, w) → dx`
    BackwardData,
    /// `(x, dy) → dw`
    BackwardFilter,
}

impl Product {
    fn out_shape(self, g: &Geom) -> Shape {
        match self {
            Product::Forward => Shape::from((g.b, g.o, g.ho, g.wo)),
            Product::BackwardData => Shape::from((g.b, g.c, g.h, g.w)),
            Product::BackwardFilter => Shape::from((g.o, g.c, g.kh, g.kw)),
        }
    }
}

/// Scratch memory for one cuDNN call (none when the algorithm needs none).
fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Ok(None);
    }
    // SAFETY: cuDNN's workspace is scratch space; it is never read before cuDNN writes it.
    Ok(Some(unsafe { dev.alloc::<u8>(bytes)? }))
}

fn run<T>(product: Product, g: &Geom, a: &CudaStorage, la: &Layout, b: &CudaStorage, lb: &Layout) -> Result<CudaStorage>
where
    T: CudaDType + CudnnDataType + DeviceRepr + WithDType,
{
    let e = candle_core::Error::wrap;
    let dev = a.device().clone();
    let (Some((a0, a1)), Some((b0, b1))) = (la.contiguous_offsets(), lb.contiguous_offsets()) else {
        bail!("conv2d_cudnn: inputs must be contiguous")
    };
    let a = a.as_cuda_slice::<T>()?.slice(a0..a1);
    let b = b.as_cuda_slice::<T>()?.slice(b0..b1);
    let cudnn = handle(&dev)?;
    let d = descriptors::<T>(&cudnn, g, T::DTYPE)?;
    // SAFETY: every element of the output is written by cuDNN (beta = 0).
    let mut out = unsafe { dev.alloc::<T>(product.out_shape(g).elem_count())? };
    let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
    match product {
        Product::Forward => {
            let op = ConvForward { conv: &d.conv, x: &d.x, w: &d.w, y: &d.y };
            let algo = op.pick_algorithm().map_err(e)?;
            let mut ws = workspace(&dev, op.get_workspace_size(algo).map_err(e)?)?;
            // SAFETY: a is x (B, C, H, W), b is w (O, C, kh, kw), out is y (B, O, Ho, Wo), as described.
            unsafe { op.launch(algo, ws.as_mut(), (one, zero), &a, &b, &mut out) }.map_err(e)?;
        }
        Product::BackwardData => {
            let op = ConvBackwardData { conv: &d.conv, dx: &d.x, w: &d.w, dy: &d.y };
            let algo = op.pick_algorithm().map_err(e)?;
            let mut ws = workspace(&dev, op.get_workspace_size(algo).map_err(e)?)?;
            // SAFETY: a is dy (B, O, Ho, Wo), b is w, out is dx (B, C, H, W), as described.
            unsafe { op.launch(algo, ws.as_mut(), (one, zero), &mut out, &b, &a) }.map_err(e)?;
        }
        Product::BackwardFilter => {
            let op = ConvBackwardFilter { conv: &d.conv, x: &d.x, dw: &d.w, dy: &d.y };
            let algo = op.pick_algorithm().map_err(e)?;
            let mut ws = workspace(&dev, op.get_workspace_size(algo).map_err(e)?)?;
            // SAFETY: a is x, b is dy, out is dw (O, C, kh, kw), as described.
            unsafe { op.launch(algo, ws.as_mut(), (one, zero), &a, &mut out, &b) }.map_err(e)?;
        }
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

/// One cuDNN product as a candle op; the forward product carries the backward.
struct CudnnConv {
    product: Product,
    g: Geom,
}

impl CustomOp2 for CudnnConv {
    fn name(&self) -> &'static str {
        match self.product {
            Product::Forward => "dgl-conv2d-cudnn",
            Product::BackwardData => "dgl-conv2d-cudnn-backward-data",
            Product::BackwardFilter => "dgl-conv2d-cudnn-backward-filter",
        }
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        bail!("{}: CUDA tensors expected (on the CPU use crate::cpu::conv::conv2d_cpu)", self.name())
    }

    fn cuda_fwd(&self, a: &CudaStorage, la: &Layout, b: &CudaStorage, lb: &Layout) -> Result<(CudaStorage, Shape)> {
        let out = match (a.dtype(), b.dtype()) {
            (DType::F32, DType::F32) => run::<f32>(self.product, &self.g, a, la, b, lb)?,
            (DType::F64, DType::F64) => run::<f64>(self.product, &self.g, a, la, b, lb)?,
            (da, db) => bail!("{}: f32 or f64 inputs of one dtype expected, got {da:?} and {db:?}", self.name()),
        };
        Ok((out, self.product.out_shape(&self.g)))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !matches!(self.product, Product::Forward) {
            bail!("{}: second-order gradients are not supported", self.name())
        }
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &CudnnConv { product: Product::BackwardData, g: self.g })?;
        let dw = x.apply_op2_no_bwd(&dy, &CudnnConv { product: Product::BackwardFilter, g: self.g })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `F.conv2d(x, w, stride=stride, padding=padding)` on CUDA through cuDNN, with cuDNN's backward
/// for `x` and `w` (see the module doc). Errors for tensors [`super::cuda_f32_or_f64`] rejects.
pub fn conv2d_cudnn(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if !super::cuda_f32_or_f64(&[x, w]) {
        bail!("conv2d_cudnn: f32/f64 tensors on one CUDA device expected, got {:?}/{:?}", x.dtype(), w.dtype())
    }
    let g = Geom::new(x.dims4()?, w.dims4()?, stride, padding)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, CudnnConv { product: Product::Forward, g })
}
