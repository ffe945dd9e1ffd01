//! A fast CPU 2-D convolution with its own backward: im2col + gemm forward, gemm + col2im input
//! gradient, gemm weight gradient, parallel over the batch with rayon.
//!
//! candle 0.11.1's CPU backward of `conv2d` computes the input gradient with a naive
//! transposed-convolution kernel (one `vec_dot` per output element) and the weight gradient as a
//! convolution whose kernel is the whole output map; on the ResNet-18 pair this made a training
//! step 3-4× slower than the forward and backward FLOPs require (see docs/performance.md).
//! [`conv2d_cpu`] computes the same function (PyTorch's `F.conv2d(x, w, stride=s, padding=p)`,
//! dilation 1, one group) with three matrix products per sample:
//!
//! * forward: `Y_b (O × P) = W (O × CK) · col(x_b) (CK × P)`;
//! * input gradient: `dx_b = col2im(Wᵀ · dY_b)`;
//! * weight gradient: `dW = Σ_b dY_b · col(x_b)ᵀ`,
//!
//! with `CK = C_in·kh·kw` and `P = H_out·W_out`. f32 and f64 only; other dtypes and other devices go
//! through candle's own convolution ([`crate::ops::conv2d_any`] dispatches). Second-order gradients
//! are not supported (the backward ops have no backward of their own).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch2, Elem};

/// Geometry of one convolution (shared with the cuDNN op, `crate::cudnn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub(crate) b: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl Geom {
    /// Validates the shapes (channels agree, no empty dim but the batch, stride ≥ 1, kernel fits
    /// the padded input), so the kernels below never index outside their buffers.
    pub(crate) fn new(
        x: (usize, usize, usize, usize),
        k: (usize, usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (b, c, h, w) = x;
        let (o, ci, kh, kw) = k;
        if ci != c {
            bail!("conv2d: input has {c} channels, kernel expects {ci}")
        }
        if c == 0 || h == 0 || w == 0 || o == 0 || kh == 0 || kw == 0 {
            bail!("conv2d: empty input {:?} or kernel {:?} (only the batch may be 0)", (b, c, h, w), (o, ci, kh, kw))
        }
        if stride == 0 {
            bail!("conv2d: stride must be at least 1")
        }
        if h + 2 * padding < kh || w + 2 * padding < kw {
            bail!("conv2d: kernel {kh}x{kw} larger than the padded input {}x{}", h + 2 * padding, w + 2 * padding)
        }
        let ho = (h + 2 * padding - kh) / stride + 1;
        let wo = (w + 2 * padding - kw) / stride + 1;
        Ok(Self { b, c, h, w, o, kh, kw, stride, padding, ho, wo })
    }
    fn ck(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.ho * self.wo
    }
    fn x_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Output columns `[lo, hi)` whose input column `wo·s + kj − p` lies inside `[0, w)`.
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let off = kj as isize - p;
        // smallest wo with wo·s + off ≥ 0
        let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
        // largest wo with wo·s + off ≤ w − 1, plus one
        let last = self.w as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / s + 1 };
        // Both ends lie in [0, wo] and lo ≤ hi: with a kernel wider than the image (a 7×7 stem on
        // a 1-pixel-wide input), the first valid column of a tap can lie past the last output.
        let lo = (lo.max(0) as usize).min(self.wo);
        (lo, (hi.max(0) as usize).min(self.wo).max(lo))
    }
    /// Input row of output row `ho` and kernel row `ki`, if inside the image.
    fn in_row(&self, ho: usize, ki: usize) -> Option<usize> {
        let r = (ho * self.stride + ki) as isize - self.padding as isize;
        (r >= 0 && (r as usize) < self.h).then_some(r as usize)
    }
}

/// `col (CK × P)` of one sample `x (C × H × W)`.
fn im2col<T: Elem>(g: &Geom, x: &[T], col: &mut [T]) {
    let (p, wo) = (g.p(), g.wo);
    for c in 0..g.c {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * p..][..p];
                let (lo, hi) = g.valid_cols(kj);
                for ho in 0..g.ho {
                    let out = &mut row[ho * wo..(ho + 1) * wo];
                    match g.in_row(ho, ki) {
                        None => out.fill(T::ZERO),
                        Some(_) if lo == hi => out.fill(T::ZERO),
                        Some(r) => {
                            out[..lo].fill(T::ZERO);
                            out[hi..].fill(T::ZERO);
                            let xr = &xc[r * g.w..(r + 1) * g.w];
                            let first = lo * g.stride + kj - g.padding;
                            if g.stride == 1 {
                                out[lo..hi].copy_from_slice(&xr[first..first + (hi - lo)]);
                            } else {
                                for (o, i) in out[lo..hi].iter_mut().zip(xr[first..].iter().step_by(g.stride)) {
                                    *o = *i;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dx (C × H × W) += col2im(dcol (CK × P))`.
fn col2im<T: Elem>(g: &Geom, dcol: &[T], dx: &mut [T]) {
    let (p, wo) = (g.p(), g.wo);
    for c in 0..g.c {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcol[((c * g.kh + ki) * g.kw + kj) * p..][..p];
                let (lo, hi) = g.valid_cols(kj);
                if lo >= hi {
                    continue;
                }
                for ho in 0..g.ho {
                    if let Some(r) = g.in_row(ho, ki) {
                        let src = &row[ho * wo + lo..ho * wo + hi];
                        let first = lo * g.stride + kj - g.padding;
                        let xr = &mut dxc[r * g.w..(r + 1) * g.w];
                        for (i, v) in xr[first..].iter_mut().step_by(g.stride).zip(src) {
                            *i += *v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst (m × n) = [dst +] lhs · rhs` with explicit (row, column) strides; single-threaded gemm.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    debug_assert!(dst.len() >= m * n);
    debug_assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the slices cover every index the strides reach (checked above in debug builds and
    // guaranteed by the callers' shapes); dst does not alias lhs or rhs (distinct &mut / &).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn forward<T: Elem>(g: &Geom, x: &[T], w: &[T]) -> Vec<T> {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    let mut y = vec![T::ZERO; g.b * o * p];
    y.par_chunks_mut(o * p).zip(x.par_chunks(g.x_len())).for_each_init(
        || vec![T::ZERO; ck * p],
        |col, (yb, xb)| {
            im2col(g, xb, col);
            matmul(o, p, ck, yb, false, w, (ck, 1), col, (p, 1));
        },
    );
    y
}

fn input_grad<T: Elem>(g: &Geom, dy: &[T], w: &[T]) -> Vec<T> {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    let mut dx = vec![T::ZERO; g.b * g.x_len()];
    dx.par_chunks_mut(g.x_len()).zip(dy.par_chunks(o * p)).for_each_init(
        || vec![T::ZERO; ck * p],
        |dcol, (dxb, dyb)| {
            // dcol (CK × P) = Wᵀ (CK × O) · dY_b (O × P)
            matmul(ck, p, o, dcol, false, w, (1, ck), dyb, (p, 1));
            col2im(g, dcol, dxb);
        },
    );
    dx
}

/// Samples are split into at most this many fixed chunks for the weight gradient: each chunk's
/// partial sum is computed in parallel and the partials are added in chunk order, so the result
/// does not depend on the number of threads or on scheduling (runs are bit-reproducible).
const WEIGHT_GRAD_CHUNKS: usize = 8;

fn weight_grad<T: Elem>(g: &Geom, x: &[T], dy: &[T]) -> Vec<T> {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    let per = g.b.div_ceil(WEIGHT_GRAD_CHUNKS).max(1);
    let partials: Vec<Vec<T>> = (0..g.b.div_ceil(per))
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![T::ZERO; o * ck];
            let mut col = vec![T::ZERO; ck * p];
            for b in chunk * per..((chunk + 1) * per).min(g.b) {
                im2col(g, &x[b * g.x_len()..(b + 1) * g.x_len()], &mut col);
                // dW (O × CK) += dY_b (O × P) · col_bᵀ (P × CK)
                matmul(o, ck, p, &mut acc, b > chunk * per, &dy[b * o * p..(b + 1) * o * p], (p, 1), &col, (1, p));
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::ZERO; o * ck]);
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
    }
    total
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

/// Forward op: `(x, w) → y`.
struct Conv2dCpu {
    stride: usize,
    padding: usize,
}

impl CustomOp2 for Conv2dCpu {
    fn name(&self) -> &'static str {
        "dgl-conv2d-cpu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(dims4(l1)?, dims4(l2)?, self.stride, self.padding)?;
        let out = dispatch2(s1, l1, s2, l2, |x, w| forward(&g, x, w), |x, w| forward(&g, x, w))?;
        Ok((out, Shape::from((g.b, g.o, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let g = Geom::new(x.dims4()?, w.dims4()?, self.stride, self.padding)?;
        let dx = dy.apply_op2_no_bwd(w, &Conv2dCpuInputGrad { g })?;
        let dw = x.apply_op2_no_bwd(&dy, &Conv2dCpuWeightGrad { g })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `(dy, w) → dx`.
struct Conv2dCpuInputGrad {
    g: Geom,
}

impl CustomOp2 for Conv2dCpuInputGrad {
    fn name(&self) -> &'static str {
        "dgl-conv2d-cpu-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let out = dispatch2(s1, l1, s2, l2, |dy, w| input_grad(g, dy, w), |dy, w| input_grad(g, dy, w))?;
        Ok((out, Shape::from((g.b, g.c, g.h, g.w))))
    }
}

/// `(x, dy) → dw`.
struct Conv2dCpuWeightGrad {
    g: Geom,
}

impl CustomOp2 for Conv2dCpuWeightGrad {
    fn name(&self) -> &'static str {
        "dgl-conv2d-cpu-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let out = dispatch2(s1, l1, s2, l2, |x, dy| weight_grad(g, x, dy), |x, dy| weight_grad(g, x, dy))?;
        Ok((out, Shape::from((g.o, g.c, g.kh, g.kw))))
    }
}

/// `F.conv2d(x, w, stride=stride, padding=padding)` on the CPU (see the module doc), with a
/// backward for `x` and `w`. Errors for devices or dtypes other than CPU f32/f64
/// ([`super::cpu_f32_or_f64`]).
pub fn conv2d_cpu(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if !super::cpu_f32_or_f64(&[x, w]) {
        bail!("conv2d_cpu: CPU f32/f64 tensors of one dtype expected, got {:?}/{:?}", x.dtype(), w.dtype())
    }
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv2dCpu { stride, padding })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_columns_cover_exactly_the_image() {
        for (w, k, s, p) in [(7, 3, 1, 1), (8, 3, 2, 1), (9, 7, 2, 3), (5, 1, 2, 0), (4, 3, 3, 2)] {
            let g = Geom::new((1, 1, 4, w), (1, 1, k, k), s, p).unwrap();
            for kj in 0..k {
                let (lo, hi) = g.valid_cols(kj);
                for wo in 0..g.wo {
                    let col = (wo * s + kj) as isize - p as isize;
                    let inside = col >= 0 && (col as usize) < w;
                    assert_eq!(inside, (lo..hi).contains(&wo), "w {w} k {k} s {s} p {p} kj {kj} wo {wo}");
                }
            }
        }
    }
}
