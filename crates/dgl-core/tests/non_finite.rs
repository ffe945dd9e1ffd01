//! The non-finite gradient check tests elements, not sums: a healthy gradient whose f32 sum (or sum
//! of squares) overflows passes, is clipped and stepped; a single NaN or ±∞ element anywhere is
//! caught and named.

use candle_core::{DType, Device, Tensor, Var};
use dgl_core::grads::{has_non_finite, ParamGrads};
use dgl_core::model::{GroupKind, NamedVar, ParamGroup};
use dgl_core::{Sgd, SgdConfig};

/// Gradients equal to `values` (L = Σ_i c_i p_i), one parameter per entry, in `dtype`.
fn grads(values: &[(&str, Vec<f64>)], dtype: DType) -> (Vec<Var>, ParamGrads) {
    let mut vars = Vec::new();
    let mut params = Vec::new();
    let mut loss: Option<Tensor> = None;
    for (name, c) in values {
        let var = Var::from_tensor(&Tensor::zeros(c.len(), dtype, &Device::Cpu).unwrap()).unwrap();
        let c = Tensor::new(c.as_slice(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        let l = (var.as_tensor() * c).unwrap().sum_all().unwrap();
        loss = Some(match loss {
            None => l,
            Some(acc) => (acc + l).unwrap(),
        });
        params.push(NamedVar::new(*name, var.clone()));
        vars.push(var);
    }
    let groups = [ParamGroup { kind: GroupKind::Encoder(0), params }];
    let g = ParamGrads::from_store(&loss.unwrap().backward().unwrap(), &groups, |_| true);
    (vars, g)
}

fn host(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

#[test]
fn finite_gradients_whose_f32_sum_overflows_are_healthy() {
    // 3e38 + 3e38 = inf in f32, and every square overflows: the old sum-based check stopped here.
    let (vars, mut g) = grads(&[("w", vec![3e38, 3e38]), ("b", vec![1.0])], DType::F32);
    assert_eq!(host(g.get("w").unwrap()), vec![3e38f32 as f64; 2]);
    assert!(!has_non_finite(g.get("w").unwrap()).unwrap());
    assert_eq!(g.first_non_finite().unwrap(), None);
    let big = 3e38f32 as f64;
    let want = (2.0 * big * big + 1.0).sqrt();
    let norm = g.global_norm().unwrap();
    assert!(norm.is_finite() && (norm / want - 1.0).abs() < 1e-12, "norm {norm} vs {want}");
    assert!((g.magnitude(GroupKind::Encoder(0)).unwrap() - (big + 1.0)).abs() / big < 1e-12);
    // Clipping at 40 brings it back to norm 40, and the SGD step is finite.
    let before = g.clip_global_norm(40.0).unwrap();
    assert_eq!(before, norm);
    let after = g.global_norm().unwrap();
    assert!((after - 40.0).abs() < 1e-3, "clipped norm {after}");
    let mut sgd = Sgd::new(SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
    sgd.step(&g).unwrap();
    let w = host(vars[0].as_tensor());
    assert!(w.iter().all(|v| v.is_finite() && (v + 0.1 * 40.0 / 2f64.sqrt()).abs() < 1e-4), "{w:?}");
}

#[test]
fn any_non_finite_element_is_caught_and_named() {
    for dtype in [DType::F32, DType::F64] {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            // The bad element last, in a tensor whose other elements are ordinary.
            let mut w: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) * 1e-3).collect();
            w.push(bad);
            let (_, g) = grads(&[("ok", vec![1.0, -2.0]), ("enc.w", w)], dtype);
            assert!(has_non_finite(g.get("enc.w").unwrap()).unwrap(), "{dtype:?} {bad}");
            assert!(!has_non_finite(g.get("ok").unwrap()).unwrap(), "{dtype:?}");
            assert_eq!(g.first_non_finite().unwrap().as_deref(), Some("enc.w"), "{dtype:?} {bad}");
        }
        // +∞ and −∞ together (their sum is NaN) and a lone NaN among huge finite values.
        let (_, g) = grads(&[("a", vec![f64::INFINITY, f64::NEG_INFINITY])], dtype);
        assert_eq!(g.first_non_finite().unwrap().as_deref(), Some("a"));
        let (_, g) = grads(&[("a", vec![1e30, f64::NAN, -1e30])], dtype);
        assert_eq!(g.first_non_finite().unwrap().as_deref(), Some("a"));
    }
    // Integer and empty tensors have no non-finite elements.
    assert!(!has_non_finite(&Tensor::new(&[1u32, 2], &Device::Cpu).unwrap()).unwrap());
    assert!(!has_non_finite(&Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap()).unwrap());
}
