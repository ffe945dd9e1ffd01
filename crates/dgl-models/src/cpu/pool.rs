//! 2-D max pooling on the CPU as one custom op with its own backward (the ResNet stem's
//! 3×3 / stride 2 / padding 1 pool).
//!
//! candle has no padded max-pool with a backward, so [`crate::ops::max_pool2d_padded`] builds it
//! from `cat`, strided views and 2(k−1) `maximum`s, each a full pass over the map in the forward
//! and several in the backward (masks, `where`, additions). This op makes one pass forward and one
//! backward. The gradient follows PyTorch's rule: each window's gradient goes to the **first**
//! maximum in scan order (row by row, left to right), found again in the backward by comparing the
//! input with the pooled output. (candle's `maximum` splits ties equally; the total per window is
//! the same either way.)

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, Elem};

/// Geometry of one pooling: input (B·C planes of H × W), square kernel k, stride s, padding p.
#[derive(Clone, Copy, Debug)]
struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    fn new(shape: &Shape, k: usize, s: usize, p: usize) -> Result<Self> {
        let (b, c, h, w) = shape.dims4()?;
        if k == 0 || s == 0 || 2 * p > k || h == 0 || w == 0 || h + 2 * p < k || w + 2 * p < k {
            bail!("max_pool2d_cpu: kernel {k}, stride {s}, padding {p} do not fit a {h}x{w} map")
        }
        Ok(Self { planes: b * c, h, w, k, s, p, ho: (h + 2 * p - k) / s + 1, wo: (w + 2 * p - k) / s + 1 })
    }
    /// Input rows (or columns) `[lo, hi)` of the window at output index `i` along an axis of length `n`.
    fn window(&self, i: usize, n: usize) -> (usize, usize) {
        let start = (i * self.s) as isize - self.p as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + self.k as isize).max(0) as usize).min(n);
        (lo, hi)
    }
}

/// NaN is the only value that is not equal to itself.
#[inline(always)]
#[allow(clippy::eq_op)]
fn is_nan<T: Elem>(v: T) -> bool {
    v != v
}

/// Plane by plane: the max of every window (padding never wins; every window holds at least one
/// input element because `p ≤ k/2`).
fn forward<T: Elem>(g: &Geom, x: &[T]) -> Vec<T> {
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    let mut y = vec![T::ZERO; g.planes * out];
    y.par_chunks_mut(out).zip(x.par_chunks(hw)).for_each(|(yp, xp)| forward_plane(g, xp, yp));
    y
}

fn forward_plane<T: Elem>(g: &Geom, xp: &[T], yp: &mut [T]) {
    for i in 0..g.ho {
        let (r0, r1) = g.window(i, g.h);
        for j in 0..g.wo {
            let (c0, c1) = g.window(j, g.w);
            let mut m = xp[r0 * g.w + c0];
            for r in r0..r1 {
                for &v in &xp[r * g.w + c0..r * g.w + c1] {
                    // NaN propagates like PyTorch's max pool. A select, not a branch (`|`, not `||`): on real data which value wins
                    // is unpredictable, and a mispredicted branch per element cost more than
                    // the comparisons.
                    let take = (v > m) | is_nan(v);
                    m = if take { v } else { m };
                }
            }
            yp[i * g.wo + j] = m;
        }
    }
}

/// `(x, y) → dx` given `dy` (captured): each window's `dy` added at the first position (scan
/// order) where `x` equals the window's maximum `y`.
fn backward<T: Elem>(g: &Geom, x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    let mut dx = vec![T::ZERO; g.planes * hw];
    dx.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .zip(y.par_chunks(out).zip(dy.par_chunks(out)))
        .for_each(|((dxp, xp), (yp, dyp))| backward_plane(g, xp, yp, dyp, dxp));
    dx
}

fn backward_plane<T: Elem>(g: &Geom, xp: &[T], yp: &[T], dyp: &[T], dxp: &mut [T]) {
    for i in 0..g.ho {
        let (r0, r1) = g.window(i, g.h);
        for j in 0..g.wo {
            let (c0, c1) = g.window(j, g.w);
            let m = yp[i * g.wo + j];
            let mut at = r0 * g.w + c0;
            'find: for r in r0..r1 {
                for c in c0..c1 {
                    let v = xp[r * g.w + c];
                    // A NaN window's gradient goes to its first NaN.
                    if v == m || (is_nan(m) && is_nan(v)) {
                        at = r * g.w + c;
                        break 'find;
                    }
                }
            }
            dxp[at] += dyp[i * g.wo + j];
        }
    }
}

/// Forward op: `x → y`.
struct MaxPool {
    k: usize,
    s: usize,
    p: usize,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "dgl-max-pool2d-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l.shape(), self.k, self.s, self.p)?;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(forward(&g, slice(v, l, "x")?)),
            CpuStorage::F64(v) => CpuStorage::F64(forward(&g, slice(v, l, "x")?)),
            _ => bail!("max_pool2d_cpu: f32 or f64 expected"),
        };
        let (b, c, _, _) = l.shape().dims4()?;
        Ok((out, Shape::from((b, c, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let op = MaxPoolGrad { g: Geom::new(x.shape(), self.k, self.s, self.p)? };
        Ok(Some(x.apply_op3_no_bwd(y, &dy.contiguous()?, &op)?))
    }
}

/// `(x, y, dy) → dx`.
struct MaxPoolGrad {
    g: Geom,
}

impl CustomOp3 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "dgl-max-pool2d-cpu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(y), CpuStorage::F32(dy)) => {
                CpuStorage::F32(backward(g, slice(x, l1, "x")?, slice(y, l2, "y")?, slice(dy, l3, "dy")?))
            }
            (CpuStorage::F64(x), CpuStorage::F64(y), CpuStorage::F64(dy)) => {
                CpuStorage::F64(backward(g, slice(x, l1, "x")?, slice(y, l2, "y")?, slice(dy, l3, "dy")?))
            }
            _ => bail!("max_pool2d_cpu backward: x, y and dy must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `nn.MaxPool2d(k, stride=s, padding=p)` (`ceil_mode=False`, dilation 1, `p ≤ k/2`) of `x`
/// (B, C, H, W) on the CPU, f32/f64, with a backward ([`super::cpu_f32_or_f64`]).
pub fn max_pool2d_cpu(x: &Tensor, k: usize, s: usize, p: usize) -> Result<Tensor> {
    if !super::cpu_f32_or_f64(&[x]) {
        bail!("max_pool2d_cpu: a CPU f32/f64 tensor expected, got {:?} on {:?}", x.dtype(), x.device())
    }
    x.contiguous()?.apply_op1(MaxPool { k, s, p })
}
