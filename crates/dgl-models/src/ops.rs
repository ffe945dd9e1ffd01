//! Differentiable building blocks that candle 0.11.1 lacks or gets wrong, built from
//! device-agnostic tensor ops (`cat`, `narrow`, `reshape`, `maximum`, `conv2d`) so they run and
//! back-propagate on every backend.
//!
//! * [`max_pool2d_padded`]: candle's `max_pool2d` has no padding and no backward when
//!   kernel ≠ stride, but the ResNet stem needs a 3×3 / stride 2 / padding 1 pool
//!   (torchvision `nn.MaxPool2d(kernel_size=3, stride=2, padding=1)`).
//! * [`conv2d_any`]: candle's `Conv2D` backward derives the transposed convolution's
//!   `output_padding` from the height only, so a strided conv whose height and width leave different
//!   remainders fails in `backward()` (e.g. a ResNet on 257×299 spectrograms meets a 33×38 map in
//!   layer 3). See `shared/cuda/BUILD.md`, "candle 0.11.1 pitfalls".

use candle_core::{bail, DType, Result, Tensor};

/// Output length of a pooling / convolution window along one axis (PyTorch, `ceil_mode=False`).
pub fn out_len(len: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
    match window_count(len, kernel, stride, padding) {
        Ok(n) => Ok(n),
        Err(e) => bail!("{e}"),
    }
}

/// [`out_len`] with a plain message as its error (no candle error, which carries a backtrace
/// when `RUST_BACKTRACE` is set), for checks made before anything runs.
pub fn window_count(len: usize, kernel: usize, stride: usize, padding: usize) -> std::result::Result<usize, String> {
    if kernel == 0 || stride == 0 {
        return Err(format!("kernel and stride must be >= 1 (kernel {kernel}, stride {stride})"));
    }
    let padded = len.checked_add(padding.saturating_mul(2)).ok_or_else(|| format!("input length {len} overflows"))?;
    if padded < kernel {
        return Err(format!("input length {len} with padding {padding} is smaller than the kernel {kernel}"));
    }
    Ok((padded - kernel) / stride + 1)
}

/// A tensor shaped like `x` but with `len` along `dim`, filled with −∞.
fn neg_inf_like(x: &Tensor, dim: usize, len: usize) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    dims[dim] = len;
    let t = Tensor::full(f32::NEG_INFINITY, dims, x.device())?;
    if x.dtype() == DType::F32 {
        Ok(t)
    } else {
        t.to_dtype(x.dtype())
    }
}

/// Max over the windows `[i·stride − padding, i·stride − padding + kernel)` along `dim`, for
/// `i < out`; positions outside the input count as −∞.
///
/// The axis is padded (with −∞) or cropped to `q·stride` entries, q = (kernel−1)/stride + out, and
/// viewed as (q, stride); window offset j = a·stride + r is then the view `[a..a+out, r]`, so every
/// offset is a strided view (no gather) and the max is a chain of `maximum`s.
fn max_pool_axis(x: &Tensor, dim: usize, kernel: usize, stride: usize, padding: usize, out: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let q = (kernel - 1) / stride + out;
    let len = q * stride;
    let mut parts = Vec::with_capacity(3);
    if padding > 0 {
        parts.push(neg_inf_like(x, dim, padding)?);
    }
    parts.push(x.clone());
    if len > padding + n {
        parts.push(neg_inf_like(x, dim, len - padding - n)?);
    }
    let xp = if parts.len() == 1 { x.clone() } else { Tensor::cat(&parts, dim)? };
    let xp = if xp.dim(dim)? > len { xp.narrow(dim, 0, len)? } else { xp };
    let mut split = xp.dims()[..dim].to_vec();
    split.extend([q, stride]);
    split.extend(&xp.dims()[dim + 1..]);
    let xs = xp.reshape(split)?;
    let mut acc: Option<Tensor> = None;
    for j in 0..kernel {
        let (a, r) = (j / stride, j % stride);
        let view = xs.narrow(dim, a, out)?.narrow(dim + 1, r, 1)?.squeeze(dim + 1)?;
        acc = Some(match acc {
            None => view,
            Some(m) => m.maximum(&view)?,
        });
    }
    Ok(acc.expect("kernel >= 1"))
}

/// 2-D max pooling of `x` (B, C, H, W) with a square `kernel`, `stride` and symmetric zero-free
/// `padding` (padded positions never win), `ceil_mode = False`, dilation 1 — the semantics of
/// PyTorch's `nn.MaxPool2d(kernel, stride, padding)`, with a backward for every kernel/stride.
///
/// The output is (B, C, ⌊(H + 2p − k)/s⌋ + 1, ⌊(W + 2p − k)/s⌋ + 1). As in PyTorch, `padding`
/// must be at most `kernel / 2`, so every window holds at least one input element and the output
/// is finite.
///
/// On the CPU with f32/f64 tensors and the project's kernels on, it runs
/// [`crate::cpu::pool::max_pool2d_cpu`] (one pass each way), whose gradient follows PyTorch's rule
/// for ties (all of a window's gradient to its first maximum); the description below is the
/// generic path (other devices, or the kernels off).
///
/// It is separable: a max over the k rows of each window, then over its k columns, 2(k−1)
/// `maximum`s of strided views. The gradient is candle's `maximum` backward: where the inputs of a
/// `maximum` are not tied, the whole gradient goes to the larger one, so for windows with a unique
/// maximum the result equals PyTorch's. **Ties differ**: candle splits the gradient of a tied
/// `maximum` equally between its two inputs, so a window whose maximum occurs several times spreads
/// its gradient over those elements (in unequal, order-dependent shares; the total is preserved),
/// whereas PyTorch gives all of it to the first maximum in scan order. In the ResNet stem the pool
/// follows a ReLU, so ties happen mostly between zeros, whose upstream ReLU gradient is (almost
/// surely) zero anyway.
pub fn max_pool2d_padded(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if padding * 2 > kernel {
        bail!("max_pool2d_padded: padding {padding} must be at most half the kernel {kernel}")
    }
    out_len(h, kernel, stride, padding)?;
    out_len(w, kernel, stride, padding)?;
    if crate::cpu::supports(&[x]) {
        return crate::cpu::pool::max_pool2d_cpu(x, kernel, stride, padding);
    }
    max_pool2d_generic(x, kernel, stride, padding)
}

/// [`max_pool2d_padded`] through candle's generic ops on every device (the path taken off the CPU
/// or with the project's kernels off; callable to compare the two).
pub fn max_pool2d_generic(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if padding * 2 > kernel {
        bail!("max_pool2d_padded: padding {padding} must be at most half the kernel {kernel}")
    }
    let ho = out_len(h, kernel, stride, padding)?;
    let wo = out_len(w, kernel, stride, padding)?;
    let rows = max_pool_axis(x, 2, kernel, stride, padding, ho)?;
    max_pool_axis(&rows, 3, kernel, stride, padding, wo)
}

/// Zero-pads `x` by `padding` on both sides of `dim` and keeps the first `keep` entries.
fn pad_crop(x: &Tensor, dim: usize, padding: usize, keep: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    // keep <= n + 2·padding, so at most `padding` zeros are needed on the right.
    let right = keep.saturating_sub(padding + n);
    let xp = x.pad_with_zeros(dim, padding, right)?;
    if xp.dim(dim)? > keep {
        xp.narrow(dim, 0, keep)
    } else {
        Ok(xp)
    }
}

/// 2-D convolution of `x` (B, C_in, H, W) with `w` (C_out, C_in, kh, kw), symmetric zero
/// `padding`, `stride`, dilation 1, one group — PyTorch's `F.conv2d(x, w, padding=p, stride=s)`
/// for any H, W, with a correct backward.
///
/// candle 0.11.1 computes the input gradient with `conv_transpose2d` and an `output_padding` taken
/// from the height, `(H + 2p − kh) mod s`, and uses it for the width too; when
/// `(H + 2p − kh) mod s ≠ (W + 2p − kw) mod s` the backward fails with a shape mismatch. In that case
/// this function pads explicitly, crops each spatial dim to `(out − 1)·s + k` (the trailing rows and
/// columns the convolution never reads) and convolves with padding 0, so both remainders are 0. When
/// the remainders agree, candle's own padded convolution is already correct and is used directly
/// (no copies). Both paths give PyTorch's output.
///
/// On the CPU with f32/f64 tensors it runs [`crate::cpu::conv::conv2d_cpu`] (im2col + gemm with its own
/// backward, several times faster than candle's CPU convolution backward); on CUDA f32/f64 in a
/// `cudnn` build, `crate::cudnn::conv2d_cudnn` (cuDNN forward and backward); elsewhere candle's
/// convolution, as described above ([`conv2d_candle`]).
pub fn conv2d_any(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if crate::cpu::supports(&[x, w]) {
        return crate::cpu::conv::conv2d_cpu(x, w, padding, stride);
    }
    #[cfg(feature = "cudnn")]
    if crate::cudnn::supports(&[x, w]) {
        return crate::cudnn::conv2d_cudnn(x, w, padding, stride);
    }
    conv2d_candle(x, w, padding, stride)
}

/// [`conv2d_any`] through candle's own `conv2d` on every device (the path taken off the CPU; kept
/// callable to compare the two).
pub fn conv2d_candle(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let ho = out_len(h, kh, stride, padding)?;
    let wo = out_len(wd, kw, stride, padding)?;
    let rem_h = (h + 2 * padding - kh) % stride;
    let rem_w = (wd + 2 * padding - kw) % stride;
    if rem_h == rem_w {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let xp = pad_crop(x, 2, padding, (ho - 1) * stride + kh)?;
    let xp = pad_crop(&xp, 3, padding, (wo - 1) * stride + kw)?;
    xp.conv2d(w, 0, stride, 1, 1)
}

/// `relu(a + b)` (the end of a ResNet block): one op with its backward on the CPU
/// ([`crate::cpu::eltwise::add_relu_cpu`], gradient 0 where the output is 0, as PyTorch's), candle's
/// `add` then `relu` elsewhere.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if crate::cpu::supports(&[a, b]) && a.shape() == b.shape() {
        return crate::cpu::eltwise::add_relu_cpu(a, b);
    }
    (a + b)?.relu()
}

/// Global average pooling over every dim after the first two: (B, C, …) → (B, C).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    if x.rank() < 3 {
        bail!("global_avg_pool expects (B, C, ...), got {:?}", x.shape())
    }
    x.flatten_from(2)?.mean(2)
}

/// GELU, x·Φ(x) = ½·x·(1 + erf(x/√2)) (PyTorch `nn.GELU()`, exact form), built from `erf` so that
/// its gradient is exact: candle's fused `gelu_erf` backward uses the constant 0.398942 for
/// 1/√(2π), a relative error of about 7·10⁻⁷ that finite-difference checks see.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let phi = ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?;
    (x * 0.5)? * phi
}
