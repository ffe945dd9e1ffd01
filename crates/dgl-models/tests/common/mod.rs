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

/// DGL's routed gradients on `model` against independent backward passes (f64, training mode):
/// encoder m must get exactly α·∇L_m (the other modalities zeroed, through the live h), every
/// fusion module and the head exactly ∇L_d on detached z; relative error < 1e-10 for every
/// parameter; with `nonzero`, every reference gradient must also be non-zero (a zero one proves
/// nothing; tiny test models can have dead ReLUs, hence the switch). Returns the unimodal passes'
/// gradients (for further checks).
pub fn assert_dgl_routing_matches_separate_passes(
    model: &dyn dgl_core::MultimodalModel,
    x: &[Tensor],
    y: &Tensor,
    alpha: f64,
    loss: &dyn dgl_core::loss::Loss,
    nonzero: bool,
) -> Vec<candle_core::backprop::GradStore> {
    use dgl_core::model::{detach_all, keep_only};
    use dgl_core::{routed_step, GroupKind, Routing};
    let out = routed_step(model, x, y, &Routing::dgl(alpha), loss).unwrap();
    let g_uni: Vec<_> = (0..model.num_modalities())
        .map(|m| {
            let z = model.encode_all(x, true).unwrap();
            let l = loss.loss(&model.fuse(&keep_only(&z, m).unwrap(), true).unwrap(), y).unwrap();
            (l * alpha).unwrap().backward().unwrap()
        })
        .collect();
    let z = detach_all(&model.encode_all(x, true).unwrap());
    let g_head = loss.loss(&model.fuse(&z, true).unwrap(), y).unwrap().backward().unwrap();
    let mut checked = 0;
    for g in model.param_groups() {
        for p in &g.params {
            let want = match g.kind {
                GroupKind::Encoder(m) => g_uni[m].get(p.var.as_tensor()),
                GroupKind::Head | GroupKind::Fusion { .. } => g_head.get(p.var.as_tensor()),
            };
            let want = to_vec(want.unwrap_or_else(|| panic!("{}: no reference gradient", p.name)));
            let got = to_vec(out.grads.get(&p.name).unwrap());
            let e = rel_err(&got, &want);
            assert!(e < 1e-10, "{}: relative error {e} against the separate backward pass", p.name);
            assert!(!nonzero || want.iter().any(|v| *v != 0.0), "{}: a zero gradient proves nothing", p.name);
            checked += 1;
        }
    }
    assert_eq!(checked, out.grads.len());
    g_uni
}

/// The model's parameter groups after checking that every parameter is in exactly one, with their
/// kinds in order.
pub fn groups_with_unique_names(
    model: &dyn dgl_core::MultimodalModel,
) -> (Vec<dgl_core::ParamGroup>, Vec<dgl_core::GroupKind>) {
    let groups = model.param_groups();
    let names: Vec<String> = groups.iter().flat_map(|g| g.params.iter().map(|p| p.name.clone())).collect();
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(names.len(), unique.len(), "a parameter is in two groups");
    let kinds = groups.iter().map(|g| g.kind).collect();
    (groups, kinds)
}

/// The gradients of the named parameters (from `params`) of the scalar `loss()` against central
/// finite differences (step 1e-6) at the first, middle and last coordinate.
pub fn assert_grads_match_finite_differences(params: &[dgl_core::NamedVar], names: &[&str], loss: &dyn Fn() -> Tensor) {
    let grads = loss().backward().unwrap();
    for &name in names {
        let p = params.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name}"));
        let g = to_vec(grads.get(p.var.as_tensor()).unwrap());
        let t0 = p.var.as_tensor().copy().unwrap();
        let flat = to_vec(&t0);
        for i in [0, flat.len() / 2, flat.len() - 1] {
            let at = |d: f64| {
                let mut v = flat.clone();
                v[i] += d;
                p.var.set(&Tensor::from_vec(v, t0.shape(), &Device::Cpu).unwrap()).unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
            p.var.set(&t0).unwrap();
            assert!((g[i] - fd).abs() <= 1e-7 * (1.0 + fd.abs()), "{name}[{i}]: {} vs {fd}", g[i]);
        }
    }
}

/// One convolution case: (batch, c_in, c_out, h, w, kernel, stride, padding).
pub type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

/// The project's convolution (`conv2d_any`) against candle's, forward and both gradients (of
/// Σ y·cos(cumsum)), on seeded `dtype` inputs for every case, within `tol` ([`assert_close`]).
pub fn assert_conv_matches_candle(rng: &mut Rng, cases: &[ConvCase], dtype: DType, tol: f64) {
    use dgl_models::ops::{conv2d_any, conv2d_candle};
    for &(b, ci, co, h, w, k, s, p) in cases {
        let x0 = randn(rng, &[b, ci, h, w], dtype);
        let w0 = randn(rng, &[co, ci, k, k], dtype);
        let run = |conv: fn(&Tensor, &Tensor, usize, usize) -> Result<Tensor>| {
            let x = Var::from_tensor(&x0).unwrap();
            let wt = Var::from_tensor(&w0).unwrap();
            let y = conv(x.as_tensor(), wt.as_tensor(), p, s).unwrap();
            let r = Tensor::ones(y.dims(), dtype, &Device::Cpu).unwrap().cumsum(3).unwrap().cos().unwrap();
            let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            (to_vec(&y), to_vec(g.get(x.as_tensor()).unwrap()), to_vec(g.get(wt.as_tensor()).unwrap()))
        };
        let (y, gx, gw) = run(conv2d_any);
        let (y_ref, gx_ref, gw_ref) = run(conv2d_candle);
        let what = format!("b{b} {ci}->{co} {h}x{w} k{k} s{s} p{p}");
        assert_close(&y, &y_ref, tol, &format!("{what} y"));
        assert_close(&gx, &gx_ref, tol, &format!("{what} dx"));
        assert_close(&gw, &gw_ref, tol, &format!("{what} dw"));
    }
}
