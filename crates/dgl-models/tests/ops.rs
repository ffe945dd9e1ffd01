//! `max_pool2d_padded` and `conv2d_any` against naive references (forward) and finite
//! differences (backward), f64 on CPU, with odd/even H/W mixes; the fast CPU convolution against
//! candle's own (f32, forward and both gradients).

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use dgl_core::rng::Rng;
use dgl_models::ops::{conv2d_any, global_avg_pool, max_pool2d_padded};

fn naive_max_pool(x: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
    let (b, c, h, w) = x.dims4().unwrap();
    let v = to_vec(x);
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (w + 2 * p - k) / s + 1;
    let mut out = Vec::new();
    for bc in 0..b * c {
        for i in 0..ho {
            for j in 0..wo {
                let mut m = f64::NEG_INFINITY;
                for di in 0..k {
                    for dj in 0..k {
                        let (y, xx) = ((i * s + di) as isize - p as isize, (j * s + dj) as isize - p as isize);
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            m = m.max(v[bc * h * w + y as usize * w + xx as usize]);
                        }
                    }
                }
                out.push(m);
            }
        }
    }
    out
}

fn naive_conv(x: &Tensor, wt: &Tensor, p: usize, s: usize) -> (Vec<f64>, [usize; 4]) {
    let (b, ci, h, w) = x.dims4().unwrap();
    let (co, _, kh, kw) = wt.dims4().unwrap();
    let xv = to_vec(x);
    let wv = to_vec(wt);
    let ho = (h + 2 * p - kh) / s + 1;
    let wo = (w + 2 * p - kw) / s + 1;
    let mut out = vec![0.0; b * co * ho * wo];
    for n in 0..b {
        for o in 0..co {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = 0.0;
                    for c in 0..ci {
                        for di in 0..kh {
                            for dj in 0..kw {
                                let y = (i * s + di) as isize - p as isize;
                                let xx = (j * s + dj) as isize - p as isize;
                                if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                    acc += xv[((n * ci + c) * h + y as usize) * w + xx as usize]
                                        * wv[((o * ci + c) * kh + di) * kw + dj];
                                }
                            }
                        }
                    }
                    out[((n * co + o) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    (out, [b, co, ho, wo])
}

const SIZES: [(usize, usize); 5] = [(7, 8), (9, 6), (11, 13), (8, 8), (6, 9)];

#[test]
fn max_pool_forward_matches_naive() {
    let mut rng = Rng::new(1);
    for &(h, w) in &SIZES {
        for &(k, s, p) in &[(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 0), (5, 2, 2), (4, 3, 2), (1, 1, 0)] {
            let x = randn(&mut rng, &[2, 3, h, w], DType::F64);
            let y = max_pool2d_padded(&x, k, s, p).unwrap();
            let want = naive_max_pool(&x, k, s, p);
            assert_eq!(y.dims()[2], (h + 2 * p - k) / s + 1);
            assert_eq!(y.dims()[3], (w + 2 * p - k) / s + 1);
            assert_eq!(to_vec(&y), want, "k{k} s{s} p{p} {h}x{w}");
        }
    }
    // f32 path and the stem pool on a realistic size (129x94 -> 65x47)
    let x = randn(&mut rng, &[1, 2, 129, 94], DType::F32);
    let y = max_pool2d_padded(&x, 3, 2, 1).unwrap();
    assert_eq!(y.dims(), &[1, 2, 65, 47]);
    assert_eq!(to_vec(&y), naive_max_pool(&x, 3, 2, 1));
}

#[test]
fn max_pool_rejects_bad_padding() {
    let x = Tensor::zeros((1, 1, 5, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(max_pool2d_padded(&x, 3, 2, 2).is_err());
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    let mut rng = Rng::new(2);
    for &(h, w) in &SIZES {
        for &(k, s, p) in &[(3, 2, 1), (3, 1, 1), (2, 2, 0), (4, 3, 2)] {
            let x0 = randn(&mut rng, &[2, 2, h, w], DType::F64);
            let x = Var::from_tensor(&x0).unwrap();
            let y = max_pool2d_padded(x.as_tensor(), k, s, p).unwrap();
            let r = randn(&mut rng, y.dims(), DType::F64);
            let g = analytic_grad(&x, &y, &r);
            let f = |t: &Tensor| (max_pool2d_padded(t, k, s, p)? * &r)?.sum_all()?.to_scalar::<f64>();
            let num = fd_grad(&x0, 1e-6, &f);
            assert_close(&g, &num, 1e-6, &format!("maxpool k{k} s{s} p{p} {h}x{w}"));
        }
    }
}

#[test]
fn max_pool_tie_gradient_is_conserved() {
    // A constant input: every window is a tie. candle splits, PyTorch picks the first; the total
    // gradient per window is the same.
    let x = Var::from_tensor(&Tensor::ones((1, 1, 4, 4), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2d_padded(x.as_tensor(), 2, 2, 0).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let gx = to_vec(g.get(x.as_tensor()).unwrap());
    assert!((gx.iter().sum::<f64>() - 4.0).abs() < 1e-12);
    assert!(gx.iter().all(|&v| v >= 0.0));
}

#[test]
fn conv_forward_matches_naive() {
    let mut rng = Rng::new(3);
    for &(h, w) in &SIZES {
        for &(k, s, p) in &[(3, 2, 1), (7, 2, 3), (1, 2, 0), (3, 1, 1), (3, 2, 0), (2, 2, 1)] {
            let x = randn(&mut rng, &[2, 3, h, w], DType::F64);
            let wt = randn(&mut rng, &[4, 3, k, k], DType::F64);
            let y = conv2d_any(&x, &wt, p, s).unwrap();
            let (want, dims) = naive_conv(&x, &wt, p, s);
            assert_eq!(y.dims(), &dims);
            assert_close(&to_vec(&y), &want, 1e-12, &format!("conv k{k} s{s} p{p} {h}x{w}"));
        }
    }
}

#[test]
fn conv_backward_matches_finite_differences() {
    let mut rng = Rng::new(4);
    for &(h, w) in &SIZES {
        for &(k, s, p) in &[(3, 2, 1), (7, 2, 3), (1, 2, 0), (3, 1, 1)] {
            let x0 = randn(&mut rng, &[2, 2, h, w], DType::F64);
            let w0 = randn(&mut rng, &[3, 2, k, k], DType::F64);
            let x = Var::from_tensor(&x0).unwrap();
            let wt = Var::from_tensor(&w0).unwrap();
            let y = conv2d_any(x.as_tensor(), wt.as_tensor(), p, s).unwrap();
            let r = randn(&mut rng, y.dims(), DType::F64);
            let loss = (&y * &r).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let gx = to_vec(grads.get(x.as_tensor()).unwrap());
            let gw = to_vec(grads.get(wt.as_tensor()).unwrap());
            let what = format!("conv k{k} s{s} p{p} {h}x{w}");
            let fx = |t: &Tensor| (conv2d_any(t, &w0, p, s)? * &r)?.sum_all()?.to_scalar::<f64>();
            assert_close(&gx, &fd_grad(&x0, 1e-6, &fx), 1e-6, &format!("{what} dx"));
            let fw = |t: &Tensor| (conv2d_any(&x0, t, p, s)? * &r)?.sum_all()?.to_scalar::<f64>();
            assert_close(&gw, &fd_grad(&w0, 1e-6, &fw), 1e-6, &format!("{what} dw"));
        }
    }
}

#[test]
fn candle_native_conv_backward_fails_where_conv2d_any_works() {
    // Documents the pitfall: a 33x38 map through a 3x3/s2/p1 conv.
    let x = Var::from_tensor(&Tensor::ones((1, 1, 33, 38), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let native = x.as_tensor().conv2d(w.as_tensor(), 1, 2, 1, 1).unwrap();
    assert!(native.sum_all().unwrap().backward().is_err());
    let fixed = conv2d_any(x.as_tensor(), w.as_tensor(), 1, 2).unwrap();
    assert_eq!(fixed.dims(), &[1, 1, 17, 19]);
    let g = fixed.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(x.as_tensor()).unwrap().dims(), &[1, 1, 33, 38]);
}

#[test]
fn global_avg_pool_is_mean() {
    let mut rng = Rng::new(5);
    let x = randn(&mut rng, &[2, 3, 4, 5], DType::F64);
    let y = global_avg_pool(&x).unwrap();
    let want = x.mean_keepdim(3).unwrap().mean_keepdim(2).unwrap().flatten_from(1).unwrap();
    assert_close(&to_vec(&y), &to_vec(&want), 1e-12, "gap");
}

/// The fast CPU convolution (`conv2d_any` on CPU) gives candle's result, forward and backward, in
/// f32 on the ResNet-18 layer geometries (batch larger than the thread count, so the batch-parallel
/// weight-gradient reduction is exercised).
#[test]
fn fast_cpu_conv_matches_candle_conv_f32() {
    let mut rng = Rng::new(5);
    let cases = [
        // (b, c_in, c_out, h, w, k, s, p)
        (9, 1, 8, 65, 63, 7, 2, 3),
        (9, 3, 8, 32, 32, 7, 2, 3),
        (9, 8, 8, 17, 16, 3, 1, 1),
        (9, 8, 16, 17, 16, 3, 2, 1),
        (9, 8, 16, 17, 16, 1, 2, 0),
        (5, 16, 4, 6, 9, 3, 2, 1),
    ];
    assert_conv_matches_candle(&mut rng, &cases, DType::F32, 1e-4);
}

/// The CPU kernels are bit-reproducible whatever the thread count (fixed reduction order).
#[test]
fn fast_cpu_kernels_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(6);
    let x0 = randn(&mut rng, &[13, 3, 20, 17], DType::F32);
    let w0 = randn(&mut rng, &[8, 3, 3, 3], DType::F32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let x = Var::from_tensor(&x0).unwrap();
            let w = Var::from_tensor(&w0).unwrap();
            let bn =
                dgl_models::layers::BatchNorm2d::new(&dgl_models::InitCtx::new(0, DType::F32, &Device::Cpu), "bn", 8)
                    .unwrap();
            let y = bn.forward_t(&conv2d_any(x.as_tensor(), w.as_tensor(), 1, 2).unwrap(), true).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let bits = |t: &Tensor| {
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            (bits(&y), bits(g.get(x.as_tensor()).unwrap()), bits(g.get(w.as_tensor()).unwrap()))
        })
    };
    let one = run(1);
    for threads in [2, 3, 5] {
        assert!(run(threads) == one, "results differ between 1 and {threads} threads");
    }
}

/// Inputs 1-2 pixels wide or high, narrower than the kernel (the ResNet stem's 7×7 / s2 / p3 on a
/// 1-pixel spectrogram, a 1×1 generic feature map): the CPU convolution gives the naive result
/// and finite-difference gradients instead of indexing outside its buffers (it panicked with
/// "range end index 2 out of range for slice of length 1").
#[test]
fn conv_on_inputs_narrower_than_the_kernel_matches_naive() {
    let mut rng = Rng::new(7);
    for &(h, w) in &[(1, 1), (1, 2), (2, 1), (2, 2), (1, 5), (6, 1), (3, 2)] {
        for &(k, s, p) in &[(7, 2, 3), (3, 2, 1), (1, 2, 0), (3, 1, 1), (5, 3, 2)] {
            let what = format!("conv k{k} s{s} p{p} {h}x{w}");
            let x0 = randn(&mut rng, &[2, 2, h, w], DType::F64);
            let w0 = randn(&mut rng, &[3, 2, k, k], DType::F64);
            let y = conv2d_any(&x0, &w0, p, s).unwrap();
            let (want, dims) = naive_conv(&x0, &w0, p, s);
            assert_eq!(y.dims(), &dims, "{what}");
            assert_close(&to_vec(&y), &want, 1e-12, &what);
            let (x, wt) = (Var::from_tensor(&x0).unwrap(), Var::from_tensor(&w0).unwrap());
            let y = conv2d_any(x.as_tensor(), wt.as_tensor(), p, s).unwrap();
            let r = randn(&mut rng, y.dims(), DType::F64);
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let fx = |t: &Tensor| (conv2d_any(t, &w0, p, s)? * &r)?.sum_all()?.to_scalar::<f64>();
            let gx = to_vec(grads.get(x.as_tensor()).unwrap());
            assert_close(&gx, &fd_grad(&x0, 1e-6, &fx), 1e-6, &format!("{what} dx"));
            let fw = |t: &Tensor| (conv2d_any(&x0, t, p, s)? * &r)?.sum_all()?.to_scalar::<f64>();
            let gw = to_vec(grads.get(wt.as_tensor()).unwrap());
            assert_close(&gw, &fd_grad(&w0, 1e-6, &fw), 1e-6, &format!("{what} dw"));
        }
    }
}

/// Empty dims (a 0-pixel side, no channels, no filters) and a kernel larger than the padded input
/// are errors from the convolution, not panics; an empty batch gives an empty output.
#[test]
fn conv_refuses_empty_and_too_small_shapes() {
    let zeros = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
    for (x, w, p) in [
        (vec![1, 1, 0, 4], vec![2, 1, 1, 1], 0),
        (vec![1, 1, 4, 0], vec![2, 1, 3, 3], 1),
        (vec![1, 0, 4, 4], vec![2, 0, 3, 3], 1),
        (vec![1, 1, 4, 4], vec![0, 1, 3, 3], 1),
        (vec![1, 1, 4, 4], vec![2, 1, 0, 3], 1),
        (vec![1, 1, 2, 2], vec![2, 1, 5, 5], 1),
    ] {
        let r = std::panic::catch_unwind(|| conv2d_any(&zeros(&x), &zeros(&w), p, 1).map(|y| y.dims().to_vec()));
        let r = r.unwrap_or_else(|_| panic!("conv2d_any panicked on x {x:?}, w {w:?}"));
        assert!(r.is_err(), "x {x:?}, w {w:?}: expected an error, got {r:?}");
    }
    let y = conv2d_any(&zeros(&[0, 1, 4, 4]), &zeros(&[2, 1, 3, 3]), 1, 2).unwrap();
    assert_eq!(y.dims(), &[0, 2, 2, 2]);
}

/// The stem's max-pool on 1-2 pixel maps matches the naive pool (forward and gradient), and an
/// empty map is an error.
#[test]
fn max_pool_on_one_and_two_pixel_maps() {
    let mut rng = Rng::new(8);
    for &(h, w) in &[(1, 1), (1, 2), (2, 1), (2, 2)] {
        for &(k, s, p) in &[(3, 2, 1), (3, 1, 1), (2, 2, 1), (1, 1, 0)] {
            let x0 = randn(&mut rng, &[2, 2, h, w], DType::F64);
            let y = max_pool2d_padded(&x0, k, s, p).unwrap();
            assert_eq!(to_vec(&y), naive_max_pool(&x0, k, s, p), "k{k} s{s} p{p} {h}x{w}");
            let x = Var::from_tensor(&x0).unwrap();
            let y = max_pool2d_padded(x.as_tensor(), k, s, p).unwrap();
            let r = randn(&mut rng, y.dims(), DType::F64);
            let f = |t: &Tensor| (max_pool2d_padded(t, k, s, p)? * &r)?.sum_all()?.to_scalar::<f64>();
            let what = format!("maxpool k{k} s{s} p{p} {h}x{w}");
            assert_close(&analytic_grad(&x, &y, &r), &fd_grad(&x0, 1e-6, &f), 1e-6, &what);
        }
    }
    for shape in [[1, 1, 0, 3], [1, 1, 3, 0]] {
        assert!(max_pool2d_padded(&Tensor::zeros(&shape, DType::F32, &Device::Cpu).unwrap(), 3, 2, 1).is_err());
    }
}
