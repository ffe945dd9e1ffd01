//! The CPU kernels added for speed (docs/performance.md): the max-pool op, batch norm with a fused
//! ReLU, the residual add + ReLU, and the convolution's grouped / row-split matrix products,
//! against naive f64 references, central finite differences and candle's generic ops, and
//! bit-identical for 1, 2, 3 and 5 threads.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use dgl_core::rng::Rng;
use dgl_models::cpu::batch_norm::batch_norm_train_act;
use dgl_models::cpu::eltwise::add_relu_cpu;
use dgl_models::cpu::pool::max_pool2d_cpu;
use dgl_models::ops::{conv2d_any, max_pool2d_generic};

/// The max-pool kernel equals candle's generic max-pool, forward and gradient (random inputs: no
/// ties), f32 and f64, on odd and even sizes and the stem's geometry.
#[test]
fn max_pool_kernel_matches_the_generic_pool() {
    let mut rng = Rng::new(11);
    for dtype in [DType::F64, DType::F32] {
        for &(h, w) in &[(7, 8), (9, 6), (112, 112), (129, 94), (1, 1), (2, 3)] {
            for &(k, s, p) in &[(3, 2, 1), (2, 2, 0), (3, 1, 1), (4, 3, 2), (1, 1, 0)] {
                if h + 2 * p < k || w + 2 * p < k {
                    continue;
                }
                let x0 = randn(&mut rng, &[2, 3, h, w], dtype);
                let run = |pool: fn(&Tensor, usize, usize, usize) -> candle_core::Result<Tensor>| {
                    let x = Var::from_tensor(&x0).unwrap();
                    let y = pool(x.as_tensor(), k, s, p).unwrap();
                    let r = Tensor::ones(y.dims(), dtype, &Device::Cpu).unwrap().cumsum(3).unwrap().cos().unwrap();
                    let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                    (to_vec(&y), to_vec(g.get(x.as_tensor()).unwrap()))
                };
                let (y, gx) = run(max_pool2d_cpu);
                let (y_ref, gx_ref) = run(max_pool2d_generic);
                let what = format!("{dtype:?} k{k} s{s} p{p} {h}x{w}");
                assert_eq!(y, y_ref, "{what} y");
                assert_close(&gx, &gx_ref, 1e-6, &format!("{what} dx"));
            }
        }
    }
}

/// Ties: PyTorch's rule, the whole gradient of a window to its first maximum in scan order.
#[test]
fn max_pool_kernel_gives_a_tied_window_gradient_to_its_first_maximum() {
    // Windows of a 2×2 / stride 2 pool on a 4×4 map of ones: every window is a tie.
    let x = Var::from_tensor(&Tensor::ones((1, 1, 4, 4), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2d_cpu(x.as_tensor(), 2, 2, 0).unwrap();
    let r = Tensor::new(&[[[[1f64, 2.], [3., 4.]]]], &Device::Cpu).unwrap();
    let g = to_vec((&y * &r).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap());
    let mut want = vec![0.0; 16];
    for (i, (row, col)) in [(0, 0), (0, 2), (2, 0), (2, 2)].into_iter().enumerate() {
        want[row * 4 + col] = (i + 1) as f64;
    }
    assert_eq!(g, want);
}

fn naive_bn_relu(x: &[f64], (b, c, r): (usize, usize, usize), gamma: &[f64], beta: &[f64], relu: bool) -> Vec<f64> {
    let n = (b * r) as f64;
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let idx = |bi: usize, ri: usize| (bi * c + ch) * r + ri;
        let vals: Vec<f64> =
            (0..b).flat_map(|bi| (0..r).map(move |ri| (bi, ri))).map(|(bi, ri)| x[idx(bi, ri)]).collect();
        let mean = vals.iter().sum::<f64>() / n;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        for bi in 0..b {
            for ri in 0..r {
                let v = gamma[ch] * (x[idx(bi, ri)] - mean) / (var + 1e-5).sqrt() + beta[ch];
                y[idx(bi, ri)] = if relu { v.max(0.0) } else { v };
            }
        }
    }
    y
}

/// Batch norm with and without the fused ReLU: forward against a naive f64 reference, gradients
/// of x, γ and β against central finite differences.
#[test]
fn batch_norm_relu_matches_naive_and_finite_differences() {
    let mut rng = Rng::new(12);
    for relu in [false, true] {
        for &(b, c, h, w) in &[(3, 4, 5, 3), (2, 3, 1, 1), (5, 2, 4, 4)] {
            let x0 = randn(&mut rng, &[b, c, h, w], DType::F64);
            let g0 = (randn(&mut rng, &[c], DType::F64) + 1.0).unwrap();
            let b0 = randn(&mut rng, &[c], DType::F64);
            let (y, _, _) = batch_norm_train_act(&x0, &g0, &b0, 1e-5, relu).unwrap();
            let want = naive_bn_relu(&to_vec(&x0), (b, c, h * w), &to_vec(&g0), &to_vec(&b0), relu);
            let what = format!("relu {relu} {b}x{c}x{h}x{w}");
            assert_close(&to_vec(&y), &want, 1e-12, &what);
            if relu {
                assert!(to_vec(&y).contains(&0.0), "{what}: the ReLU should clip something");
            }
            let (x, gm, bt) =
                (Var::from_tensor(&x0).unwrap(), Var::from_tensor(&g0).unwrap(), Var::from_tensor(&b0).unwrap());
            let (y, _, _) = batch_norm_train_act(x.as_tensor(), gm.as_tensor(), bt.as_tensor(), 1e-5, relu).unwrap();
            let r = randn(&mut rng, y.dims(), DType::F64);
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let loss = |x: &Tensor, g: &Tensor, bb: &Tensor| -> candle_core::Result<f64> {
                (batch_norm_train_act(x, g, bb, 1e-5, relu)?.0 * &r)?.sum_all()?.to_scalar::<f64>()
            };
            let fx = fd_grad(&x0, 1e-6, &|t| loss(t, &g0, &b0));
            assert_close(&to_vec(grads.get(x.as_tensor()).unwrap()), &fx, 1e-5, &format!("{what} dx"));
            let fg = fd_grad(&g0, 1e-6, &|t| loss(&x0, t, &b0));
            assert_close(&to_vec(grads.get(gm.as_tensor()).unwrap()), &fg, 1e-5, &format!("{what} dgamma"));
            let fb = fd_grad(&b0, 1e-6, &|t| loss(&x0, &g0, t));
            assert_close(&to_vec(grads.get(bt.as_tensor()).unwrap()), &fb, 1e-5, &format!("{what} dbeta"));
        }
    }
}

/// `relu(a + b)`: forward against the naive formula, both gradients against finite differences.
#[test]
fn add_relu_matches_naive_and_finite_differences() {
    let mut rng = Rng::new(13);
    for dims in [vec![2, 3, 4, 5], vec![1, 1, 1, 1], vec![3, 40000]] {
        let a0 = randn(&mut rng, &dims, DType::F64);
        let b0 = randn(&mut rng, &dims, DType::F64);
        let y = add_relu_cpu(&a0, &b0).unwrap();
        let want: Vec<f64> = to_vec(&a0).iter().zip(to_vec(&b0)).map(|(a, b)| (a + b).max(0.0)).collect();
        assert_eq!(to_vec(&y), want, "{dims:?}");
        if dims.iter().product::<usize>() > 1000 {
            continue; // finite differences on the small shapes only
        }
        let (a, b) = (Var::from_tensor(&a0).unwrap(), Var::from_tensor(&b0).unwrap());
        let y = add_relu_cpu(a.as_tensor(), b.as_tensor()).unwrap();
        let r = randn(&mut rng, y.dims(), DType::F64);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let fa = fd_grad(&a0, 1e-6, &|t| (add_relu_cpu(t, &b0)? * &r)?.sum_all()?.to_scalar::<f64>());
        assert_close(&to_vec(grads.get(a.as_tensor()).unwrap()), &fa, 1e-6, "add_relu da");
        let fb = fd_grad(&b0, 1e-6, &|t| (add_relu_cpu(&a0, t)? * &r)?.sum_all()?.to_scalar::<f64>());
        assert_close(&to_vec(grads.get(b.as_tensor()).unwrap()), &fb, 1e-6, "add_relu db");
    }
}

/// The convolution's products grouped over samples (small maps: P < 512) and split into row blocks
/// (wide layers, few groups): equal to candle's convolution in f64 (forward and both gradients),
/// on shapes that exercise one group, several groups with a short last one, and row splits.
#[test]
fn grouped_and_row_split_conv_matches_candle() {
    let mut rng = Rng::new(14);
    let cases = [
        // (b, c_in, c_out, h, w, k, s, p): P = 1 (a 1×1 map, all samples in one group), P = 6
        // (groups of 86 > b), P = 300 (groups of 2, the last one short), c_out 64 / c_in·k² 288
        // (row blocks in the forward, input and weight gradients)
        (5, 3, 4, 1, 1, 3, 1, 1),
        (3, 32, 64, 3, 2, 3, 1, 1),
        (5, 4, 8, 20, 15, 3, 1, 1),
        (3, 16, 64, 7, 8, 3, 2, 1),
    ];
    assert_conv_matches_candle(&mut rng, &cases, DType::F64, 1e-12);
}

/// Inputs of a ResNet block: x, the first convolution's weight, BN γ and β, the second weight.
struct Block {
    x: Tensor,
    w: Tensor,
    gamma: Tensor,
    beta: Tensor,
    w2: Tensor,
}

impl Block {
    fn random(rng: &mut Rng, (b, c, h, w): (usize, usize, usize, usize), o: usize) -> Self {
        Self {
            x: randn(rng, &[b, c, h, w], DType::F32),
            w: randn(rng, &[o, c, 3, 3], DType::F32),
            gamma: randn(rng, &[o], DType::F32),
            beta: randn(rng, &[o], DType::F32),
            w2: (randn(rng, &[o, o, 3, 3], DType::F32) * 0.05).unwrap(),
        }
    }

    /// The bits of the output and of the gradients of x and w, through the new kernels
    /// (convolution, BN + ReLU, convolution, add + ReLU, BN without ReLU, max-pool).
    fn bits(&self) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let x = Var::from_tensor(&self.x).unwrap();
        let w = Var::from_tensor(&self.w).unwrap();
        let y = conv2d_any(x.as_tensor(), w.as_tensor(), 1, 1).unwrap();
        let (y, _, _) = batch_norm_train_act(&y, &self.gamma, &self.beta, 1e-5, true).unwrap();
        let y2 = conv2d_any(&y, &self.w2, 1, 1).unwrap();
        let y = add_relu_cpu(&y2, &y).unwrap();
        let (y, _, _) = batch_norm_train_act(&y, &self.gamma, &self.beta, 1e-5, false).unwrap();
        let y = max_pool2d_cpu(&y, 3, 2, 1).unwrap();
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: &Tensor| {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        (bits(&y), bits(g.get(x.as_tensor()).unwrap()), bits(g.get(w.as_tensor()).unwrap()))
    }
}

/// A whole ResNet block's worth of the new kernels (grouped/row-split convolution, BN + ReLU,
/// add + ReLU, max-pool) gives bit-identical outputs and gradients for 1, 2, 3 and 5 threads.
#[test]
fn new_kernels_do_not_depend_on_the_thread_count() {
    let block = Block::random(&mut Rng::new(15), (7, 16, 12, 10), 64);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| block.bits())
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert!(run(threads) == one, "results differ between 1 and {threads} threads");
    }
}

/// The convolution computes only the gradients that are needed: none for a data input (no op, not
/// a variable), which candle would drop, and the same weight gradient either way.
#[test]
fn conv_skips_the_gradient_of_a_data_input() {
    let mut rng = Rng::new(17);
    let x0 = randn(&mut rng, &[3, 2, 9, 8], DType::F32);
    let w = Var::from_tensor(&randn(&mut rng, &[4, 2, 3, 3], DType::F32)).unwrap();
    let loss = |x: &Tensor| conv2d_any(x, w.as_tensor(), 1, 1).unwrap().sqr().unwrap().sum_all().unwrap();
    let from_data = loss(&x0).backward().unwrap();
    assert!(from_data.get(&x0).is_none(), "a gradient for the data input");
    let x = Var::from_tensor(&x0).unwrap();
    let from_var = loss(x.as_tensor()).backward().unwrap();
    assert!(from_var.get(x.as_tensor()).is_some(), "no gradient for a variable input");
    let bits =
        |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(from_data.get(w.as_tensor()).unwrap()), bits(from_var.get(w.as_tensor()).unwrap()));
}
