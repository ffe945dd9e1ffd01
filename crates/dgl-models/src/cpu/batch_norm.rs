//! Training-mode batch normalisation on the CPU as one custom op with a closed-form backward.
//!
//! For `x` viewed as (B, C, R) and per-channel batch statistics over the `n = B·R` values of
//! channel c, `μ_c` and the biased `σ²_c`, with `x̂ = (x − μ_c)/√(σ²_c + ε)`:
//!
//! * forward: `y = γ_c·x̂ + β_c`;
//! * backward (the standard result, e.g. Ioffe & Szegedy 2015, §3):
//!   `∂β_c = Σ dy`, `∂γ_c = Σ dy·x̂`,
//!   `∂x = γ_c/√(σ²_c + ε) · (dy − ∂β_c/n − x̂·∂γ_c/n)`.
//!
//! With `relu`, the op is `max(0, y)` (the ResNet's BN → ReLU pairs in one pass): the backward
//! first masks `dy` where the output is 0 (PyTorch's ReLU gradient, 0 at 0), inside the same passes.
//!
//! Statistics and sums are accumulated in f64 for both f32 and f64 inputs. candle's generic ops
//! need about ten graph nodes for the same function, each a full pass, and their backward reduces
//! the broadcast gradients with strided reductions; this op makes four passes (statistics,
//! normalise; sums, input gradient).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, Elem};

/// (B, C, R) geometry of a contiguous (B, C, …) tensor (shared with `crate::cudnn::batch_norm`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub(crate) b: usize,
    pub(crate) c: usize,
    pub(crate) r: usize,
}

impl Geom {
    pub(crate) fn of(shape: &Shape) -> Result<Self> {
        let d = shape.dims();
        if d.len() < 2 {
            bail!("batch_norm: expected (B, C, ...), got {shape:?}")
        }
        Ok(Self { b: d[0], c: d[1], r: d[2..].iter().product() })
    }
    /// Values per channel, B·R.
    fn n(&self) -> usize {
        self.b * self.r
    }
    /// Elements of the tensor, B·C·R.
    #[cfg_attr(not(feature = "cudnn"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.b * self.c * self.r
    }
    /// The B segments (each R long) of channel `c`.
    fn segments<'a, T>(&self, v: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> + 'a {
        let (cc, r) = (self.c, self.r);
        (0..self.b).map(move |b| &v[(b * cc + c) * r..(b * cc + c + 1) * r])
    }
}

/// Per channel c: `Σ f(c, segment)` over the channel's B segments.
fn per_channel<T: Elem>(g: &Geom, v: &[T], f: impl Fn(usize, &[T]) -> f64 + Sync) -> Vec<f64> {
    (0..g.c).into_par_iter().map(|c| g.segments(v, c).map(|seg| f(c, seg)).sum()).collect()
}

/// Independent partial sums per reduction: a single f64 accumulator makes every addition wait for
/// the previous one (4 cycles each); eight let the additions overlap and vectorise. The order is
/// fixed by the data layout alone, so results do not depend on the thread count.
const LANES: usize = 8;

/// `Σ f(v)` over `s` with [`LANES`] partial sums (added in a fixed order at the end).
fn lane_sum<T: Elem>(s: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = s.chunks_exact(LANES);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += f(v.into());
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a += f(v.into());
    }
    acc.iter().sum()
}

/// `[mean_c, biased var_c]` (two passes, f64).
fn stats<T: Elem>(g: &Geom, x: &[T]) -> Vec<[f64; 2]> {
    let n = g.n() as f64;
    let means: Vec<f64> = per_channel(g, x, |_, s| lane_sum(s, |v| v)).iter().map(|s| s / n).collect();
    let vars = per_channel(g, x, |c, s| {
        let m = means[c];
        lane_sum(s, |v| (v - m) * (v - m))
    });
    means.iter().zip(vars).map(|(&m, v)| [m, v / n]).collect()
}

/// `x → (2, C)` f64: rows mean and biased variance.
struct Stats;

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "dgl-batch-norm-stats"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::of(l.shape())?;
        let st = match s {
            CpuStorage::F32(v) => stats(&g, slice(v, l, "x")?),
            CpuStorage::F64(v) => stats(&g, slice(v, l, "x")?),
            _ => bail!("batch_norm: f32 or f64 expected"),
        };
        let flat = st.iter().map(|s| s[0]).chain(st.iter().map(|s| s[1])).collect();
        Ok((CpuStorage::F64(flat), Shape::from((2, g.c))))
    }
}

/// Per-channel constants of one normalisation.
#[derive(Clone, Debug)]
struct Norm {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// `(x, γ, β) → y` (or `max(0, y)` with `relu`).
struct Forward {
    norm: Norm,
    relu: bool,
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "dgl-batch-norm-train"
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
        let g = Geom::of(l1.shape())?;
        // Per-channel affine map y = a_c·x + b_c with a_c = γ_c/σ_c, b_c = β_c − a_c·μ_c.
        let affine = |gamma: Vec<f64>, beta: Vec<f64>| -> Vec<(f64, f64)> {
            (0..g.c)
                .map(|c| {
                    let a = gamma[c] * self.norm.inv_std[c];
                    (a, beta[c] - a * self.norm.mean[c])
                })
                .collect()
        };
        let relu = self.relu;
        // y = a_c·x + b_c in the tensor's precision (coefficients from f64), one segment at a time.
        fn run<T: Elem>(g: &Geom, x: &[T], ab: &[(f64, f64)], relu: bool) -> Vec<T> {
            let ab: Vec<(T, T)> = ab.iter().map(|&(a, b)| (T::from_f64(a), T::from_f64(b))).collect();
            let r = g.r.max(1);
            let mut out = vec![T::ZERO; x.len()];
            out.par_chunks_mut(r).zip(x.par_chunks(r)).enumerate().for_each(|(i, (o, x))| {
                let (a, b) = ab[i % g.c];
                affine_segment(o, x, a, b, relu)
            });
            out
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let to64 = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
                let ab = affine(to64(slice(w, l2, "weight")?), to64(slice(b, l3, "bias")?));
                CpuStorage::F32(run(&g, slice(x, l1, "x")?, &ab, relu))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let ab = affine(slice(w, l2, "weight")?.to_vec(), slice(b, l3, "bias")?.to_vec());
                CpuStorage::F64(run(&g, slice(x, l1, "x")?, &ab, relu))
            }
            _ => bail!("batch_norm: x, weight and bias must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        // With the ReLU, dy is masked where y = 0 inside both passes (the third input); without,
        // the third input is unused.
        let mask = if self.relu { y.contiguous()? } else { dy.clone() };
        let relu = self.relu;
        let sums = x.apply_op3_no_bwd(&dy, &mask, &ParamGrads { norm: self.norm.clone(), relu })?; // (2, C) f64
        let d_gamma = sums.get(0)?.to_dtype(gamma.dtype())?;
        let d_beta = sums.get(1)?.to_dtype(gamma.dtype())?;
        let sums = sums.to_vec2::<f64>()?;
        let gamma = gamma.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let n = Geom::of(x.shape())?.n() as f64;
        let op = InputGrad {
            norm: self.norm.clone(),
            relu,
            scale: gamma.iter().zip(&self.norm.inv_std).map(|(g, s)| g * s).collect(),
            mean_dy: sums[1].iter().map(|s| s / n).collect(),
            mean_dy_xhat: sums[0].iter().map(|s| s / n).collect(),
        };
        let dx = dy.apply_op3_no_bwd(x, &mask, &op)?;
        Ok((Some(dx), Some(d_gamma), Some(d_beta)))
    }
}

/// `o = a·x + b`, or `max(0, a·x + b)` with `relu`.
fn affine_segment<T: Elem>(o: &mut [T], x: &[T], a: T, b: T, relu: bool) {
    if relu {
        for (o, &v) in o.iter_mut().zip(x) {
            let t = a * v + b;
            *o = if t > T::ZERO { t } else { T::ZERO };
        }
    } else {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = a * v + b;
        }
    }
}

/// `dy`, or 0 where the ReLU's output `y` is 0 (`relu`); a select, not a branch (`&` where `&&`
/// would short-circuit), so that the loops calling it vectorise.
#[inline(always)]
fn masked<T: Elem>(relu: bool, dy: T, y: T) -> f64 {
    let y: f64 = y.into();
    if relu & (y <= 0.0) {
        0.0
    } else {
        dy.into()
    }
}

/// `(x, dy, y) → (2, C)` f64: rows `Σ dy·x̂` (∂γ) and `Σ dy` (∂β), dy masked by `y > 0` with `relu`
/// (`y` is unused without).
struct ParamGrads {
    norm: Norm,
    relu: bool,
}

impl CustomOp3 for ParamGrads {
    fn name(&self) -> &'static str {
        "dgl-batch-norm-param-grads"
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
        let g = Geom::of(l1.shape())?;
        fn run<T: Elem>(g: &Geom, norm: &Norm, relu: bool, x: &[T], dy: &[T], y: &[T]) -> Vec<[f64; 2]> {
            (0..g.c)
                .into_par_iter()
                .map(|c| {
                    let m = norm.mean[c];
                    // Σ dy·(x − μ) and Σ dy in LANES partial sums each (see `lane_sum`); ∂γ = σ⁻¹·the first.
                    let (mut a, mut b) = ([0.0f64; LANES], [0.0f64; LANES]);
                    for ((xs, ds), ys) in g.segments(x, c).zip(g.segments(dy, c)).zip(g.segments(y, c)) {
                        param_sums_segment(xs, ds, ys, m, relu, &mut a, &mut b);
                    }
                    [a.iter().sum::<f64>() * norm.inv_std[c], b.iter().sum::<f64>()]
                })
                .collect()
        }
        let (norm, relu) = (&self.norm, self.relu);
        let sums = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(dy), CpuStorage::F32(y)) => {
                run(&g, norm, relu, slice(x, l1, "x")?, slice(dy, l2, "dy")?, slice(y, l3, "y")?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(dy), CpuStorage::F64(y)) => {
                run(&g, norm, relu, slice(x, l1, "x")?, slice(dy, l2, "dy")?, slice(y, l3, "y")?)
            }
            _ => bail!("batch_norm backward: x, dy and y must all be f32 or all f64"),
        };
        let flat = sums.iter().map(|s| s[0]).chain(sums.iter().map(|s| s[1])).collect();
        Ok((CpuStorage::F64(flat), Shape::from((2, g.c))))
    }
}

/// Adds one segment to the lanes of `Σ dy·(x − m)` (`a`) and `Σ dy` (`b`), dy masked by
/// `y > 0` with `relu`: element i goes to lane i % LANES, whole chunks of LANES first (the
/// loop over a chunk's lanes vectorises), then the remainder.
fn param_sums_segment<T: Elem>(
    xs: &[T],
    ds: &[T],
    ys: &[T],
    m: f64,
    relu: bool,
    a: &mut [f64; LANES],
    b: &mut [f64; LANES],
) {
    let (mut la, mut lb) = (*a, *b); // local copies stay in registers
    let whole = xs.len() - xs.len() % LANES;
    for ((xc, dc), yc) in
        xs[..whole].chunks_exact(LANES).zip(ds[..whole].chunks_exact(LANES)).zip(ys[..whole].chunks_exact(LANES))
    {
        for j in 0..LANES {
            let d = masked(relu, dc[j], yc[j]);
            la[j] += d * (xc[j].into() - m);
            lb[j] += d;
        }
    }
    for (j, ((&x, &d), &y)) in xs[whole..].iter().zip(&ds[whole..]).zip(&ys[whole..]).enumerate() {
        let d = masked(relu, d, y);
        la[j] += d * (x.into() - m);
        lb[j] += d;
    }
    (*a, *b) = (la, lb);
}

/// `(dy, x, y) → dx` (dy masked by `y > 0` with `relu`).
struct InputGrad {
    norm: Norm,
    relu: bool,
    /// γ_c/σ_c.
    scale: Vec<f64>,
    /// `Σ dy / n`.
    mean_dy: Vec<f64>,
    /// `Σ dy·x̂ / n`.
    mean_dy_xhat: Vec<f64>,
}

impl CustomOp3 for InputGrad {
    fn name(&self) -> &'static str {
        "dgl-batch-norm-input-grad"
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
        let g = Geom::of(l1.shape())?;
        // dx = γσ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)) = A_c·dy + B_c·x + C_c, coefficients in f64,
        // the per-element map in the tensor's precision.
        let coef: Vec<[f64; 3]> = (0..g.c)
            .map(|c| {
                let (m, s, k) = (self.norm.mean[c], self.norm.inv_std[c], self.mean_dy_xhat[c]);
                let a = self.scale[c];
                [a, -a * s * k, -a * (self.mean_dy[c] - m * s * k)]
            })
            .collect();
        fn run<T: Elem>(g: &Geom, relu: bool, dy: &[T], x: &[T], y: &[T], coef: &[[f64; 3]]) -> Vec<T> {
            let coef: Vec<[T; 3]> = coef.iter().map(|k| k.map(T::from_f64)).collect();
            let r = g.r.max(1);
            let mut out = vec![T::ZERO; dy.len()];
            out.par_chunks_mut(r)
                .zip(dy.par_chunks(r))
                .zip(x.par_chunks(r).zip(y.par_chunks(r)))
                .enumerate()
                .for_each(|(i, ((o, dy), (x, y)))| input_grad_segment(o, dy, x, y, coef[i % g.c], relu));
            out
        }
        let relu = self.relu;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(dy), CpuStorage::F32(x), CpuStorage::F32(y)) => {
                CpuStorage::F32(run(&g, relu, slice(dy, l1, "dy")?, slice(x, l2, "x")?, slice(y, l3, "y")?, &coef))
            }
            (CpuStorage::F64(dy), CpuStorage::F64(x), CpuStorage::F64(y)) => {
                CpuStorage::F64(run(&g, relu, slice(dy, l1, "dy")?, slice(x, l2, "x")?, slice(y, l3, "y")?, &coef))
            }
            _ => bail!("batch_norm backward: dy, x and y must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `o = A·dy + B·x + C` with `[A, B, C] = coef`, dy masked by `y > 0` with `relu`.
fn input_grad_segment<T: Elem>(o: &mut [T], dy: &[T], x: &[T], y: &[T], coef: [T; 3], relu: bool) {
    let [a, b, k] = coef;
    for (((o, &d), &x), &y) in o.iter_mut().zip(dy).zip(x).zip(y) {
        let d = if relu && y <= T::ZERO { T::ZERO } else { d };
        *o = a * d + b * x + k;
    }
}

/// Training-mode batch normalisation of `x` (B, C, …) with affine `weight` and `bias` (C):
/// returns `y` (differentiable in `x`, `weight`, `bias`) and the batch statistics `mean` and biased
/// `var` (C, detached, dtype of `x`) for the running averages. CPU f32/f64 only
/// ([`super::cpu_f32_or_f64`]).
pub fn batch_norm_train(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_train_act(x, weight, bias, eps, false)
}

/// [`batch_norm_train`] followed by a ReLU when `relu` (one op: `y = max(0, BN(x))`, whose
/// gradient is 0 where `y` is 0, as PyTorch's ReLU).
pub fn batch_norm_train_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    if !super::cpu_f32_or_f64(&[x, weight, bias]) {
        bail!("batch_norm_train: CPU f32/f64 tensors of one dtype expected")
    }
    let g = Geom::of(x.shape())?;
    if weight.dims() != [g.c] || bias.dims() != [g.c] {
        bail!("batch_norm_train: weight/bias of shape ({},) expected, got {:?}/{:?}", g.c, weight.shape(), bias.shape())
    }
    let x = x.contiguous()?;
    let st = x.apply_op1_no_bwd(&Stats)?; // (2, C) f64
    let rows = st.to_vec2::<f64>()?;
    let norm = Norm { mean: rows[0].clone(), inv_std: rows[1].iter().map(|v| 1.0 / (v + eps).sqrt()).collect() };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Forward { norm, relu })?;
    Ok((y, st.get(0)?.to_dtype(x.dtype())?, st.get(1)?.to_dtype(x.dtype())?))
}
