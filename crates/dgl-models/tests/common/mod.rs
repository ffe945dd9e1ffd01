//! Shared test helpers: seeded tensors and finite differences (f64, CPU).
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use dgl_core::rng::Rng;

pub fn randn(rng: &mut Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let n: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    d / n.max(1e-300)
}

pub fn to_vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Central finite-difference gradient of the scalar `f(x)` w.r.t. every entry of `x` (f64).
pub fn fd_grad(x: &Tensor, eps: f64, f: &dyn Fn(&Tensor) -> Result<f64>) -> Vec<f64> {
    let base = to_vec(x);
    let shape = x.dims().to_vec();
    (0..base.len())
        .map(|i| {
            let mut p = base.clone();
            p[i] += eps;
            let fp = f(&Tensor::from_vec(p.clone(), shape.as_slice(), &Device::Cpu).unwrap()).unwrap();
            p[i] -= 2.0 * eps;
            let fm = f(&Tensor::from_vec(p, shape.as_slice(), &Device::Cpu).unwrap()).unwrap();
            (fp - fm) / (2.0 * eps)
        })
        .collect()
}

pub fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f64.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}: entry {i}: {x} vs {y}");
    }
}

/// Analytic gradient of `sum(f(x) * r)` w.r.t. `x` via candle backward.
pub fn analytic_grad(x: &Var, out: &Tensor, r: &Tensor) -> Vec<f64> {
    let loss = (out * r).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    to_vec(g.get(x.as_tensor()).expect("no gradient"))
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}
