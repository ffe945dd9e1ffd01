//! The project's ops give the same result on CUDA as on the CPU, forward and backward: the padded
//! max-pool, the convolution (our CPU kernel vs candle's CUDA convolution, including the
//! mismatched-remainder case that `conv2d_any` fixes), the training-mode batch norm (our fused CPU
//! op vs candle's generic ops on CUDA) and a whole ResNet-18 audio encoder. In a `cudnn` build the
//! CUDA side of the convolution is the project's cuDNN op (forward, backward data, backward
//! filter), compared besides with candle's own CUDA convolution, and in f64 with the CPU kernel
//! to 1e-9; and the batch norm is cuDNN's, compared with the CPU op (output, statistics, gradients).
//!
//! Built only with `--features cuda`; on a machine without a usable GPU it says so and passes.
//! `cargo xtask cuda-build` bundles this test as `gpu-bundle/cuda-parity`, and
//! `benchmarks/gpu-check.sh` runs it on the lent GPU.
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use dgl_core::rng::Rng;
use dgl_models::layers::BatchNorm2d;
use dgl_models::ops::{conv2d_any, max_pool2d_padded};
use dgl_models::{AudioEncoder, Encoder, InitCtx};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no usable CUDA device ({e}); the CPU/CUDA comparison needs a GPU");
            None
        }
    }
}

/// Runs `f` on copies of `inputs` on each device: returns the output and the gradients of
/// `sum(out · r)` w.r.t. every input, as host vectors.
fn run(dev: &Device, inputs: &[Tensor], r: &Tensor, f: &dyn Fn(&[Tensor]) -> Tensor) -> Vec<Vec<f64>> {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(&t.to_device(dev).unwrap()).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts);
    let g = (&out * &r.to_device(dev).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    let mut res = vec![to_vec(&out.to_device(&Device::Cpu).unwrap())];
    for v in &vars {
        res.push(to_vec(&g.get(v.as_tensor()).unwrap().to_device(&Device::Cpu).unwrap()));
    }
    res
}

fn compare(name: &str, inputs: &[Tensor], out_dims: &[usize], tol: f64, f: &dyn Fn(&[Tensor]) -> Tensor) {
    let Some(cuda) = gpu() else { return };
    let mut rng = Rng::new(11);
    let r = randn(&mut rng, out_dims, DType::F32);
    let cpu = run(&Device::Cpu, inputs, &r, f);
    let gpu = run(&cuda, inputs, &r, f);
    for (i, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        let what = if i == 0 { "output".to_string() } else { format!("gradient of input {}", i - 1) };
        assert_close(a, b, tol, &format!("{name}: {what} (CPU vs CUDA)"));
    }
    println!("{name}: CPU and CUDA agree (output and {} gradients) within {tol:e}", inputs.len());
}

#[test]
fn conv_matches_on_cpu_and_cuda() {
    let mut rng = Rng::new(1);
    for (h, w, k, s, p) in [(33, 38, 3, 2, 1), (65, 63, 7, 2, 3), (17, 16, 3, 1, 1), (17, 16, 1, 2, 0)] {
        let x = randn(&mut rng, &[4, 3, h, w], DType::F32);
        let wt = randn(&mut rng, &[5, 3, k, k], DType::F32);
        let y = conv2d_any(&x, &wt, p, s).unwrap();
        compare(&format!("conv {h}x{w} k{k} s{s} p{p}"), &[x, wt], y.dims(), 1e-3, &|t| {
            conv2d_any(&t[0], &t[1], p, s).unwrap()
        });
    }
}

#[test]
fn max_pool_matches_on_cpu_and_cuda() {
    let mut rng = Rng::new(2);
    let x = randn(&mut rng, &[2, 3, 33, 38], DType::F32);
    let y = max_pool2d_padded(&x, 3, 2, 1).unwrap();
    compare("max_pool2d_padded 3/2/1", &[x], y.dims(), 1e-6, &|t| max_pool2d_padded(&t[0], 3, 2, 1).unwrap());
}

#[test]
fn batch_norm_matches_on_cpu_and_cuda() {
    let mut rng = Rng::new(3);
    let x = (randn(&mut rng, &[6, 4, 9, 7], DType::F32) * 3.0).unwrap();
    let dims = x.dims().to_vec();
    compare("batch norm (train)", &[x], &dims, 1e-4, &|t| {
        let bn = BatchNorm2d::new(&InitCtx::new(0, DType::F32, t[0].device()), "bn", 4).unwrap();
        bn.forward_t(&t[0], true).unwrap()
    });
}

#[test]
fn resnet_encoder_matches_on_cpu_and_cuda() {
    let mut rng = Rng::new(4);
    let x = randn(&mut rng, &[4, 1, 65, 63], DType::F32);
    compare("ResNet-18 audio encoder (width 8, train mode)", &[x], &[4, 64], 2e-3, &|t| {
        let enc = AudioEncoder::new(&InitCtx::new(0, DType::F32, t[0].device()), 1, 8).unwrap();
        enc.forward_t(&t[0], true).unwrap()
    });
}

#[cfg(feature = "cudnn")]
#[test]
fn cudnn_conv_matches_candle_on_cuda_and_the_cpu_kernel() {
    use dgl_models::cpu::conv::conv2d_cpu;
    use dgl_models::cudnn::conv2d_cudnn;
    use dgl_models::ops::conv2d_candle;
    let Some(cuda) = gpu() else { return };
    let mut rng = Rng::new(5);
    for (h, w, k, s, p) in [(33, 38, 3, 2, 1), (65, 63, 7, 2, 3), (17, 16, 3, 1, 1), (17, 16, 1, 2, 0)] {
        for (dtype, tol) in [(DType::F32, 1e-3), (DType::F64, 1e-9)] {
            let x = randn(&mut rng, &[4, 3, h, w], dtype);
            let wt = randn(&mut rng, &[5, 3, k, k], dtype);
            let y = conv2d_cpu(&x, &wt, p, s).unwrap();
            let r = randn(&mut rng, y.dims(), dtype);
            let inputs = [x, wt];
            let ours = run(&cuda, &inputs, &r, &|t| conv2d_cudnn(&t[0], &t[1], p, s).unwrap());
            let cpu = run(&Device::Cpu, &inputs, &r, &|t| conv2d_cpu(&t[0], &t[1], p, s).unwrap());
            let name = format!("cuDNN conv {h}x{w} k{k} s{s} p{p} {dtype:?}");
            for (i, what) in ["output", "dx", "dw"].iter().enumerate() {
                assert_close(&cpu[i], &ours[i], tol, &format!("{name}: {what} (CPU kernel vs cuDNN)"));
            }
            if dtype == DType::F32 {
                let candle = run(&cuda, &inputs, &r, &|t| conv2d_candle(&t[0], &t[1], p, s).unwrap());
                for (i, what) in ["output", "dx", "dw"].iter().enumerate() {
                    assert_close(&candle[i], &ours[i], tol, &format!("{name}: {what} (candle CUDA vs cuDNN)"));
                }
            }
            println!("{name}: cuDNN agrees with the CPU kernel (and candle's CUDA conv) within {tol:e}");
        }
    }
}

#[cfg(feature = "cudnn")]
#[test]
fn cudnn_batch_norm_matches_the_cpu_op() {
    use dgl_models::cpu::batch_norm::batch_norm_train;
    use dgl_models::cudnn::batch_norm_train_cudnn;
    let Some(cuda) = gpu() else { return };
    let mut rng = Rng::new(6);
    for (shape, dtype, tol) in
        [(vec![6, 4, 9, 7], DType::F32, 1e-4), (vec![6, 4, 9, 7], DType::F64, 1e-9), (vec![3, 5, 17], DType::F32, 1e-4)]
    {
        let x = randn(&mut rng, &shape, dtype).affine(3.0, 1.5).unwrap();
        let gamma = randn(&mut rng, &[shape[1]], dtype).affine(1.0, 1.0).unwrap();
        let beta = randn(&mut rng, &[shape[1]], dtype);
        let r = randn(&mut rng, &shape, dtype);
        let inputs = [x.clone(), gamma.clone(), beta.clone()];
        let ours = run(&cuda, &inputs, &r, &|t| batch_norm_train_cudnn(&t[0], &t[1], &t[2], 1e-5).unwrap().0);
        let cpu = run(&Device::Cpu, &inputs, &r, &|t| batch_norm_train(&t[0], &t[1], &t[2], 1e-5).unwrap().0);
        let name = format!("cuDNN batch norm {shape:?} {dtype:?}");
        for (i, what) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
            assert_close(&cpu[i], &ours[i], tol, &format!("{name}: {what} (CPU op vs cuDNN)"));
        }
        // The batch statistics the layer uses for its running averages.
        let (_, m_gpu, v_gpu) = batch_norm_train_cudnn(
            &x.to_device(&cuda).unwrap(),
            &gamma.to_device(&cuda).unwrap(),
            &beta.to_device(&cuda).unwrap(),
            1e-5,
        )
        .unwrap();
        let (_, m_cpu, v_cpu) = batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
        assert_close(&to_vec(&m_cpu), &to_vec(&m_gpu.to_device(&Device::Cpu).unwrap()), tol, &format!("{name}: mean"));
        assert_close(
            &to_vec(&v_cpu),
            &to_vec(&v_gpu.to_device(&Device::Cpu).unwrap()),
            10.0 * tol,
            &format!("{name}: var"),
        );
        println!("{name}: cuDNN agrees with the CPU op (y, 3 gradients, mean, var) within {tol:e}");
    }
}
