//! `relu(a + b)` (the end of a ResNet BasicBlock: residual add, then ReLU) as one CPU op with
//! its backward: one pass forward; one pass backward giving the gradient of both inputs (the
//! same tensor: `dy` where the output is positive, else 0 — PyTorch's ReLU gradient, 0 at 0).
//! candle's ops need an addition and a ReLU forward, and five passes (a zero tensor, a
//! comparison, a conversion, a product, an addition) for the ReLU's backward.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{dispatch2, Elem};

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// `out = f(a, b)` chunk by chunk ([`CHUNK`] elements), in parallel.
fn map2<T: Elem>(a: &[T], b: &[T], f: impl Fn(&mut [T], &[T], &[T]) + Sync) -> Vec<T> {
    let mut out = vec![T::ZERO; a.len()];
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(o, (a, b))| f(o, a, b));
    out
}

fn add_relu<T: Elem>(a: &[T], b: &[T]) -> Vec<T> {
    map2(a, b, add_relu_chunk)
}

fn add_relu_chunk<T: Elem>(o: &mut [T], a: &[T], b: &[T]) {
    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
        let mut v = a;
        v += b;
        *o = if v > T::ZERO { v } else { T::ZERO };
    }
}

fn relu_grad<T: Elem>(dy: &[T], y: &[T]) -> Vec<T> {
    map2(dy, y, relu_grad_chunk)
}

fn relu_grad_chunk<T: Elem>(o: &mut [T], dy: &[T], y: &[T]) {
    for ((o, &d), &y) in o.iter_mut().zip(dy).zip(y) {
        *o = if y > T::ZERO { d } else { T::ZERO };
    }
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "dgl-add-relu-cpu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!("add_relu: shapes {:?} and {:?} differ", l1.shape(), l2.shape())
        }
        Ok((dispatch2(s1, l1, s2, l2, add_relu, add_relu)?, l1.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, _b: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = dy.contiguous()?.apply_op2_no_bwd(y, &ReluGrad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `(dy, y) → dy·[y > 0]`.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "dgl-relu-grad-cpu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((dispatch2(s1, l1, s2, l2, relu_grad, relu_grad)?, l1.shape().clone()))
    }
}

/// `max(0, a + b)` for CPU f32/f64 tensors of one shape, with a backward for both
/// ([`super::cpu_f32_or_f64`]).
pub fn add_relu_cpu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !super::cpu_f32_or_f64(&[a, b]) || a.shape() != b.shape() {
        bail!("add_relu_cpu: CPU f32/f64 tensors of one dtype and shape expected")
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}
