//! A fast CPU 2-D convolution with its own backward: im2col + gemm forward, gemm + col2im input
//! gradient, gemm weight gradient, parallel with rayon over groups of samples and row blocks.
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
//! with `CK = C_in·kh·kw` and `P = H_out·W_out`. Where a map is small (P < [`MIN_COLS`], the deep
//! layers), the samples of a group are placed side by side so each product has `n·P` columns: one
//! product per group instead of one per sample, and a weight-gradient reduction over `n·P` terms
//! per partial sum instead of P (at 224×224, layer 4's P is 49). Products with few groups are split
//! into row blocks so that every thread has work. Both splits depend on the shapes only, so results
//! are bit-identical for any thread count. f32 and f64 only; other dtypes and other devices go
//! through candle's own convolution ([`crate::ops::conv2d_any`] dispatches). Second-order gradients
//! are not supported (the backward ops have no backward of their own).

use std::sync::{Arc, OnceLock};

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

/// Output rows narrower than this are gathered through a [`Taps`] table instead of row by row:
/// on small maps (the deep layers, the tiny preset) the per-row bookkeeping of [`push_tap_row`]
/// costs more than the copies (most of a tiny-preset step was spent there, docs/performance.md).
const MIN_ROW_COPY: usize = 32;

/// For every kernel tap `k = ki·kw + kj` and output position `q = ho·W_out + wo`, the offset of the
/// input pixel it reads within one channel's `H × W` map, or `H·W + q` where it reads the zero
/// padding (`P` zeros appended to the channel's copy): `taps[k·P + q]`. The same for every channel
/// and sample of a convolution. Every entry is below `H·W + P` (by construction), which is what
/// makes the unchecked reads and writes of [`group_cols`] and [`col2im`] sound. One padding slot
/// per position, not one for all: [`col2im`] adds into the slots, and additions into a single
/// slot would each wait for the previous one.
struct Taps {
    t: Vec<u32>,
    hw: usize,
}

impl Taps {
    /// The table, where the output rows are narrow (`W_out < MIN_ROW_COPY`) and the offsets fit
    /// in `u32`; `None` otherwise (rows are copied as slices).
    fn for_narrow(g: &Geom) -> Option<Self> {
        let hw = g.h * g.w;
        if g.wo >= MIN_ROW_COPY || hw + g.p() >= u32::MAX as usize {
            return None;
        }
        let mut t = Vec::with_capacity(g.kh * g.kw * g.p());
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let (lo, hi) = g.valid_cols(kj);
                for ho in 0..g.ho {
                    let r = g.in_row(ho, ki);
                    t.extend((0..g.wo).map(|wo| match r {
                        Some(r) if (lo..hi).contains(&wo) => (r * g.w + wo * g.stride + kj - g.padding) as u32,
                        _ => (hw + ho * g.wo + wo) as u32,
                    }));
                }
            }
        }
        Some(Self { t, hw })
    }

    /// The taps of kernel tap `k`, one per output position.
    fn of(&self, k: usize, p: usize) -> &[u32] {
        &self.t[k * p..(k + 1) * p]
    }
}

/// The im2col matrix `(CK × n·P)` of a group of `n` samples `xg (n × C × H × W)`: row
/// `(c, ki, kj)` holds, sample after sample, the input pixel each output position reads through
/// that tap (zero on the padding). Built in memory order, so the buffer is never zero-filled first:
/// through the tap table where there is one, else row by row (slices copied or stepped through).
fn group_cols<T: Elem>(g: &Geom, taps: Option<&Taps>, xg: &[T]) -> Vec<T> {
    let n = xg.len() / g.x_len();
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let mut col = Vec::with_capacity(g.ck() * n * p);
    match taps {
        Some(taps) => {
            // Channel c of every sample, each followed by the P zeros that the padding taps read.
            let mut xz = vec![T::ZERO; n * (hw + p)];
            for c in 0..g.c {
                for (i, z) in xz.chunks_mut(hw + p).enumerate() {
                    z[..hw].copy_from_slice(&xg[i * g.x_len() + c * hw..][..hw]);
                }
                for k in 0..kk {
                    let t = taps.of(k, p);
                    for z in xz.chunks(hw + p) {
                        // SAFETY: every tap is below hw + P (Taps) and z has hw + P elements.
                        col.extend(t.iter().map(|&j| unsafe { *z.get_unchecked(j as usize) }));
                    }
                }
            }
        }
        None => {
            for c in 0..g.c {
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        for xb in xg.chunks(g.x_len()) {
                            push_tap_row(g, &xb[c * hw..(c + 1) * hw], ki, kj, &mut col);
                        }
                    }
                }
            }
        }
    }
    debug_assert_eq!(col.len(), g.ck() * n * p);
    col
}

/// Appends what tap `(ki, kj)` reads from one channel `xc (H × W)` at every output position,
/// row by row of the output: zeros on the padding, the valid span copied (stride 1) or stepped.
fn push_tap_row<T: Elem>(g: &Geom, xc: &[T], ki: usize, kj: usize, col: &mut Vec<T>) {
    let (lo, hi) = g.valid_cols(kj);
    let zeros = |col: &mut Vec<T>, k: usize| col.extend(std::iter::repeat_n(T::ZERO, k));
    for ho in 0..g.ho {
        match g.in_row(ho, ki) {
            Some(r) if lo < hi => {
                zeros(col, lo);
                let xr = &xc[r * g.w..(r + 1) * g.w];
                let first = lo * g.stride + kj - g.padding;
                if g.stride == 1 {
                    col.extend_from_slice(&xr[first..first + (hi - lo)]);
                } else {
                    col.extend(xr[first..].iter().step_by(g.stride).take(hi - lo).copied());
                }
                zeros(col, g.wo - hi);
            }
            _ => zeros(col, g.wo),
        }
    }
}

/// `dx (C × H × W) += col2im(dcol (CK × P))`, reading the columns `[off, off + P)` of a matrix
/// with leading dimension `ld`: through the tap table where there is one. Both paths add into each
/// input pixel in the same order (channel, tap, output position), so they give identical results.
fn col2im<T: Elem>(g: &Geom, taps: Option<&Taps>, dcol: &[T], dx: &mut [T], ld: usize, off: usize) {
    let Some(taps) = taps else { return col2im_rows(g, dcol, dx, ld, off) };
    let (hw, kk, p) = (taps.hw, g.kh * g.kw, g.p());
    // One channel and the P slots after it that the padding taps add into (then dropped).
    let mut dz = vec![T::ZERO; hw + p];
    for c in 0..g.c {
        let dxc = &mut dx[c * hw..(c + 1) * hw];
        dz[..hw].copy_from_slice(dxc);
        for k in 0..kk {
            let row = &dcol[(c * kk + k) * ld + off..][..p];
            for (v, &i) in row.iter().zip(taps.of(k, p)) {
                // SAFETY: every tap is below hw + P (Taps) and dz has hw + P elements.
                unsafe { *dz.get_unchecked_mut(i as usize) += *v };
            }
        }
        dxc.copy_from_slice(&dz[..hw]);
    }
}

/// [`col2im`] row by row.
fn col2im_rows<T: Elem>(g: &Geom, dcol: &[T], dx: &mut [T], ld: usize, off: usize) {
    let (p, wo) = (g.p(), g.wo);
    for c in 0..g.c {
        let dxc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcol[((c * g.kh + ki) * g.kw + kj) * ld + off..][..p];
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

/// Samples are grouped so that every matrix product has at least this many columns (`n·P`):
/// the deep layers' maps are small (7×7 at 224×224 input), and one product per sample would be
/// too thin for the gemm kernels (and, in the weight gradient, a reduction of only P terms into
/// the whole `O × CK` matrix per sample).
const MIN_COLS: usize = 512;

/// Work items wanted per convolution: the products of a group are split into row blocks until
/// groups × blocks reaches this (so two or more threads have work when there is one group). The
/// split depends on the shapes only, never on the thread count: every output element is computed
/// by the same sequence of operations whatever the number of threads (bit-reproducible runs).
const MIN_TASKS: usize = 4;

/// Samples per group (the last group may be smaller).
fn group_size(g: &Geom) -> usize {
    MIN_COLS.div_ceil(g.p().max(1)).clamp(1, g.b.max(1))
}

/// Rows per block when a product with `rows` rows is split for `groups` groups.
fn row_block(rows: usize, groups: usize) -> usize {
    let blocks = MIN_TASKS.div_ceil(groups.max(1)).min(rows / 16).max(1);
    rows.div_ceil(blocks).max(1)
}

/// The `n` samples' `(O × P)` maps of `src` (layout (n, O, P)) side by side as one `(O × n·P)`
/// matrix.
fn gather_cols<T: Elem>(src: &[T], n: usize, o: usize, p: usize, dst: &mut [T]) {
    let ld = n * p;
    for i in 0..n {
        for r in 0..o {
            dst[r * ld + i * p..][..p].copy_from_slice(&src[(i * o + r) * p..][..p]);
        }
    }
}

/// The inverse of [`gather_cols`].
fn scatter_cols<T: Elem>(src: &[T], n: usize, o: usize, p: usize, dst: &mut [T]) {
    let ld = n * p;
    for i in 0..n {
        for r in 0..o {
            dst[(i * o + r) * p..][..p].copy_from_slice(&src[r * ld + i * p..][..p]);
        }
    }
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)` with the rows of `dst` (row stride `n`) split into
/// blocks of `rb` rows computed in parallel; `lhs_row(r)` is the offset of row r in `lhs`.
#[allow(clippy::too_many_arguments)]
fn matmul_rows<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    rb: usize,
    dst: &mut [T],
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    rhs_strides: (usize, usize),
) {
    dst[..m * n].par_chunks_mut(rb * n).enumerate().for_each(|(blk, d)| {
        let rows = d.len() / n;
        let lhs_blk = &lhs[blk * rb * lhs_rs..];
        matmul(rows, n, k, d, false, lhs_blk, (lhs_rs, lhs_cs), rhs, rhs_strides);
    });
}

/// A convolution's im2col matrix is kept from the forward for the weight gradient when it has at
/// most this many elements (all groups together; 8 MiB in f32): the backward then skips its own
/// im2col. Larger ones (the wide maps of the paper-size model) are rebuilt, so that memory stays
/// bounded by the activations.
const KEEP_COLS_MAX: usize = 1 << 21;

/// The im2col matrices of one forward (a `Vec<Vec<T>>`, one per group of samples, in the tensor's
/// element type), kept for the backward.
type KeptCols = Arc<OnceLock<Box<dyn std::any::Any + Send + Sync>>>;

/// [`forward`], storing the kept matrices in `store`.
fn forward_keeping<T: Elem>(g: &Geom, x: &[T], w: &[T], keep: bool, store: &KeptCols) -> Vec<T> {
    let (y, cols) = forward(g, x, w, keep);
    if let Some(c) = cols {
        // A node's forward runs once; a second set could only store the same columns.
        let _ = store.set(Box::new(c));
    }
    y
}

/// The matrices in `store`, if the forward kept them (in element type `T`).
fn kept_cols<T: Elem>(store: &KeptCols) -> Option<&[Vec<T>]> {
    store.get()?.downcast_ref::<Vec<Vec<T>>>().map(Vec::as_slice)
}

/// `y = conv(x, w)`, and the groups' im2col matrices when `keep` (see [`KEEP_COLS_MAX`]).
fn forward<T: Elem>(g: &Geom, x: &[T], w: &[T], keep: bool) -> (Vec<T>, Option<Vec<Vec<T>>>) {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    let mut y = vec![T::ZERO; g.b * o * p];
    if g.b == 0 {
        return (y, None);
    }
    let gs = group_size(g);
    let rb = row_block(o, g.b.div_ceil(gs));
    let taps = Taps::for_narrow(g);
    let cols: Vec<Option<Vec<T>>> = y
        .par_chunks_mut(gs * o * p)
        .zip(x.par_chunks(gs * g.x_len()))
        .map(|(yg, xg)| {
            let n = yg.len() / (o * p);
            let ld = n * p;
            let col = group_cols(g, taps.as_ref(), xg);
            if n == 1 {
                matmul_rows(o, p, ck, rb, yg, w, (ck, 1), &col, (p, 1));
            } else {
                // Y_group (O × n·P) = W · col, then back to the (n, O, P) layout.
                let mut tmp = vec![T::ZERO; o * ld];
                matmul_rows(o, ld, ck, rb, &mut tmp, w, (ck, 1), &col, (ld, 1));
                scatter_cols(&tmp, n, o, p, yg);
            }
            keep.then_some(col)
        })
        .collect();
    (y, cols.into_iter().collect())
}

/// The output gradient of a group of `n` samples as one O × n·P matrix: the group's own memory
/// for one sample, its columns gathered otherwise.
fn dy_columns<T: Elem>(dyg: &[T], n: usize, o: usize, p: usize) -> std::borrow::Cow<'_, [T]> {
    if n == 1 {
        return std::borrow::Cow::Borrowed(dyg);
    }
    let mut t = vec![T::ZERO; o * n * p];
    gather_cols(dyg, n, o, p, &mut t);
    std::borrow::Cow::Owned(t)
}

fn input_grad<T: Elem>(g: &Geom, dy: &[T], w: &[T]) -> Vec<T> {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    let mut dx = vec![T::ZERO; g.b * g.x_len()];
    if g.b == 0 {
        return dx;
    }
    let gs = group_size(g);
    let rb = row_block(ck, g.b.div_ceil(gs));
    let taps = Taps::for_narrow(g);
    dx.par_chunks_mut(gs * g.x_len()).zip(dy.par_chunks(gs * o * p)).for_each(|(dxg, dyg)| {
        let n = dyg.len() / (o * p);
        let ld = n * p;
        let dy_mat = dy_columns(dyg, n, o, p);
        let dy_mat: &[T] = &dy_mat;
        // dcol (CK × n·P) = Wᵀ (CK × O) · dY_group (O × n·P)
        let mut dcol = vec![T::ZERO; ck * ld];
        matmul_rows(ck, ld, o, rb, &mut dcol, w, (1, ck), dy_mat, (ld, 1));
        dxg.par_chunks_mut(g.x_len()).enumerate().for_each(|(i, dxb)| col2im(g, taps.as_ref(), &dcol, dxb, ld, i * p));
    });
    dx
}

/// Convolutions with at most this many output channels compute their weight gradient as `dWᵀ`
/// (see [`weight_grad`]).
const SMALL_O: usize = 64;

/// `dW = Σ_groups dY_group · col_groupᵀ`, with the forward's im2col matrices when it kept them
/// (the same values: the result is identical either way).
///
/// With few output channels (`O ≤` [`SMALL_O`]: the tiny preset's and the early layers' 8-64) the
/// product computed is `dWᵀ (CK × O)`, row-major: `gemm` then reads the large operand,
/// the `CK × n·P` im2col matrix, in place. Stored row-major, `gemm` computes the transposed
/// problem and first copies that whole matrix, transposed and padded to its 64-row panels, which
/// at 8 output channels cost more than the arithmetic (docs/performance.md, step 7). Every entry is
/// the same dot product over the group's `n·P` terms either way, but `gemm` accumulates it in
/// another order, so the two layouts differ in the last bits.
fn weight_grad<T: Elem>(g: &Geom, x: &[T], dy: &[T], kept: Option<&[Vec<T>]>) -> Vec<T> {
    let (ck, p, o) = (g.ck(), g.p(), g.o);
    if g.b == 0 {
        return vec![T::ZERO; o * ck];
    }
    let gs = group_size(g);
    let groups = g.b.div_ceil(gs);
    let transposed = o <= SMALL_O;
    let taps = if kept.is_none() { Taps::for_narrow(g) } else { None };
    // One partial dW per group (computed in parallel), added in group order: the result does not
    // depend on the number of threads or on scheduling.
    let partials: Vec<Vec<T>> = x
        .par_chunks(gs * g.x_len())
        .zip(dy.par_chunks(gs * o * p))
        .enumerate()
        .map(|(grp, (xg, dyg))| {
            let n = dyg.len() / (o * p);
            let ld = n * p;
            let col = match kept {
                Some(cols) => std::borrow::Cow::Borrowed(cols[grp].as_slice()),
                None => std::borrow::Cow::Owned(group_cols(g, taps.as_ref(), xg)),
            };
            let col: &[T] = &col;
            let dy_mat = dy_columns(dyg, n, o, p);
            let dy_mat: &[T] = &dy_mat;
            // dW_group (O × CK) = dY_group (O × n·P) · colᵀ (n·P × CK)
            let mut acc = vec![T::ZERO; o * ck];
            if transposed {
                // dW_groupᵀ (CK × O) = col (CK × n·P) · dY_groupᵀ (n·P × O)
                matmul_rows(ck, o, ld, row_block(ck, groups), &mut acc, col, (ld, 1), dy_mat, (1, ld));
            } else {
                matmul_rows(o, ck, ld, row_block(o, groups), &mut acc, dy_mat, (ld, 1), col, (1, ld));
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::ZERO; o * ck]);
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
    }
    if transposed {
        // dWᵀ (CK × O) → dW (O × CK)
        let mut dw = vec![T::ZERO; o * ck];
        for (j, row) in total.chunks(o).enumerate() {
            for (i, v) in row.iter().enumerate() {
                dw[i * ck + j] = *v;
            }
        }
        total = dw;
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
    /// The forward's im2col matrices, when small enough ([`KEEP_COLS_MAX`]) and the weight may be
    /// asked for a gradient (`keep`); shared with the weight-gradient op of every backward
    /// through this node.
    cols: KeptCols,
    keep: bool,
}

impl CustomOp2 for Conv2dCpu {
    fn name(&self) -> &'static str {
        "dgl-conv2d-cpu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(dims4(l1)?, dims4(l2)?, self.stride, self.padding)?;
        let keep = self.keep && g.ck() * g.p() * g.b <= KEEP_COLS_MAX;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            |x, w| forward_keeping(&g, x, w, keep, &self.cols),
            |x, w| forward_keeping(&g, x, w, keep, &self.cols),
        )?;
        Ok((out, Shape::from((g.b, g.o, g.ho, g.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let g = Geom::new(x.dims4()?, w.dims4()?, self.stride, self.padding)?;
        // Only the gradients someone needs: the stem's input is data (no op recorded, not a
        // variable), whose gradient candle would compute and then drop; frozen weights likewise.
        let dx = x.track_op().then(|| dy.apply_op2_no_bwd(w, &Conv2dCpuInputGrad { g })).transpose()?;
        let dw = w
            .track_op()
            .then(|| x.apply_op2_no_bwd(&dy, &Conv2dCpuWeightGrad { g, cols: self.cols.clone() }))
            .transpose()?;
        Ok((dx, dw))
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
    cols: KeptCols,
}

impl CustomOp2 for Conv2dCpuWeightGrad {
    fn name(&self) -> &'static str {
        "dgl-conv2d-cpu-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let cols = &self.cols;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            |x, dy| weight_grad(g, x, dy, kept_cols(cols)),
            |x, dy| weight_grad(g, x, dy, kept_cols(cols)),
        )?;
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
    // The im2col matrices serve the weight gradient only.
    let keep = w.track_op();
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv2dCpu { stride, padding, cols: Arc::default(), keep })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight gradient from the forward's kept im2col matrices is bit for bit the one that
    /// rebuilds them (one group and several, narrow and wide maps).
    #[test]
    fn kept_columns_give_the_same_weight_gradient() {
        for (b, h, w, k, s, p) in [(1, 40, 36, 3, 1, 1), (6, 5, 4, 3, 2, 1), (40, 3, 3, 3, 1, 1)] {
            let g = Geom::new((b, 3, h, w), (4, 3, k, k), s, p).unwrap();
            let x: Vec<f64> = (0..b * g.x_len()).map(|i| (i as f64 * 0.37).sin()).collect();
            let wt: Vec<f64> = (0..4 * g.ck()).map(|i| (i as f64 * 0.23).cos()).collect();
            let (y, kept) = forward(&g, &x, &wt, true);
            let dy: Vec<f64> = y.iter().map(|v| v * 0.5 - 0.1).collect();
            let kept = kept.expect("kept columns");
            assert_eq!(kept.len(), b.div_ceil(group_size(&g)));
            let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(weight_grad(&g, &x, &dy, Some(&kept))), bits(weight_grad(&g, &x, &dy, None)));
            assert_eq!(forward(&g, &x, &wt, false).0, y);
        }
    }

    /// The tap-table gather and scatter give exactly what the row-by-row copies give, on narrow
    /// maps with stride 1 and 2, padding wider than the image, 1×1 and 7×7 kernels, 1 and 3 samples.
    #[test]
    fn tap_table_matches_the_row_copies() {
        for (n, h, w, k, s, p) in [
            (1, 5, 4, 3, 1, 1),
            (3, 9, 8, 3, 2, 1),
            (1, 3, 2, 7, 2, 3),
            (3, 6, 5, 1, 2, 0),
            (1, 4, 3, 3, 3, 2),
            (3, 1, 1, 3, 1, 1),
        ] {
            let g = Geom::new((n, 3, h, w), (4, 3, k, k), s, p).unwrap();
            let taps = Taps::for_narrow(&g).expect("narrow map");
            let x: Vec<f64> = (0..n * g.x_len()).map(|i| (i as f64 * 0.37).sin()).collect();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let cols = group_cols(&g, Some(&taps), &x);
            assert_eq!(bits(&cols), bits(&group_cols(&g, None, &x)), "im2col n {n} h {h} w {w} k {k} s {s} p {p}");
            let ld = n * g.p();
            let dcol: Vec<f64> = (0..g.ck() * ld).map(|i| (i as f64 * 0.11).cos()).collect();
            for i in 0..n {
                let xb = &x[i * g.x_len()..(i + 1) * g.x_len()];
                let (mut da, mut db) = (xb.to_vec(), xb.to_vec());
                col2im(&g, Some(&taps), &dcol, &mut da, ld, i * g.p());
                col2im_rows(&g, &dcol, &mut db, ld, i * g.p());
                assert_eq!(bits(&da), bits(&db), "col2im n {n} h {h} w {w} k {k} s {s} p {p}");
            }
        }
    }

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
