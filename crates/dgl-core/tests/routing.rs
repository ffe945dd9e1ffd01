//! The routed gradients of every routing equal independently computed ones: separate backward
//! passes of each loss, and central finite differences (f64), for M = 2 and M = 3, concat and sum.

mod common;

use candle_core::{DType, Tensor};
use common::{Head, ToyModel};
use dgl_core::loss::{CrossEntropy, Loss};
use dgl_core::model::GroupKind;
use dgl_core::{routed_step, MultimodalModel, ParamGrads, Routing};

const K: usize = 4;

fn targets(b: usize) -> Tensor {
    Tensor::from_vec((0..b as u32).map(|i| (i * 7 + 1) % K as u32).collect::<Vec<_>>(), b, &candle_core::Device::Cpu)
        .unwrap()
}

/// L_mm on non-detached features and each L_m, as plain scalars.
fn losses(model: &ToyModel, x: &[Tensor], y: &Tensor) -> (f64, Vec<f64>) {
    let z = model.encode_all(x, true).unwrap();
    let l_mm = CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap().to_scalar::<f64>().unwrap();
    let l_m = (0..z.len())
        .map(|m| CrossEntropy.loss(&model.fuse_only(&z, m, true).unwrap(), y).unwrap().to_scalar::<f64>().unwrap())
        .collect();
    (l_mm, l_m)
}

/// The objective whose derivative a parameter of `group` must receive under `r`.
fn objective(r: &Routing, group: GroupKind, l_mm: f64, l_m: &[f64]) -> f64 {
    let uni: f64 = r.unimodal_weight * l_m.iter().sum::<f64>();
    match group {
        GroupKind::Encoder(_) => (if r.multimodal_to_encoders { l_mm } else { 0.0 }) + uni,
        GroupKind::Head | GroupKind::Fusion { .. } => l_mm + if r.unimodal_to_head { uni } else { 0.0 },
    }
}

/// Expected gradients from separate backward passes of each loss (no routing code involved).
fn separate_backward(model: &ToyModel, x: &[Tensor], y: &Tensor, r: &Routing) -> Vec<(String, Tensor)> {
    let z = model.encode_all(x, true).unwrap();
    let g_mm = CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap().backward().unwrap();
    let g_m: Vec<_> = (0..z.len())
        .map(|m| CrossEntropy.loss(&model.fuse_only(&z, m, true).unwrap(), y).unwrap().backward().unwrap())
        .collect();
    let mut out = Vec::new();
    for g in model.param_groups() {
        for p in &g.params {
            let t = p.var.as_tensor();
            let zeros = t.zeros_like().unwrap();
            let get = |s: &candle_core::backprop::GradStore| s.get(t).cloned().unwrap_or_else(|| zeros.clone());
            let uni = g_m.iter().fold(zeros.clone(), |acc, s| (acc + get(s)).unwrap());
            let uni = (uni * r.unimodal_weight).unwrap();
            let mm = get(&g_mm);
            let e = match g.kind {
                GroupKind::Encoder(_) => {
                    if r.multimodal_to_encoders {
                        (mm + uni).unwrap()
                    } else {
                        uni
                    }
                }
                GroupKind::Head | GroupKind::Fusion { .. } => {
                    if r.unimodal_to_head {
                        (mm + uni).unwrap()
                    } else {
                        mm
                    }
                }
            };
            out.push((p.name.clone(), e));
        }
    }
    out
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    let n = b.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    d / n.max(1e-12)
}

fn got(grads: &ParamGrads, name: &str, like: &Tensor) -> Tensor {
    grads.get(name).cloned().unwrap_or_else(|| like.zeros_like().unwrap())
}

fn check(m: usize, head: Head, r: Routing) {
    let dims: Vec<usize> = (0..m).map(|i| 3 + i).collect();
    let model = ToyModel::new(&dims, 5, K, head, 11 + m as u64, DType::F64).unwrap();
    let x = model.inputs(&dims, 6, 5, DType::F64).unwrap();
    let y = targets(6);
    let out = routed_step(&model, &x, &y, &r, &CrossEntropy).unwrap();

    // 1. Against separate backward passes.
    for (name, expected) in separate_backward(&model, &x, &y, &r) {
        let g = got(&out.grads, &name, &expected);
        let e = rel_err(&g, &expected);
        assert!(e <= 1e-5, "{r:?} M={m} {head:?} {name}: rel err vs separate backward {e}");
    }

    // 2. Against central finite differences of the objective each group must follow.
    let eps = 1e-6;
    for group in model.param_groups() {
        for p in &group.params {
            let t0 = p.var.as_tensor().copy().unwrap();
            let flat: Vec<f64> = t0.flatten_all().unwrap().to_vec1().unwrap();
            let mut fd = vec![0f64; flat.len()];
            for i in 0..flat.len() {
                let eval = |delta: f64| {
                    let mut v = flat.clone();
                    v[i] += delta;
                    p.var.set(&Tensor::from_vec(v, t0.shape(), t0.device()).unwrap()).unwrap();
                    let (l_mm, l_m) = losses(&model, &x, &y);
                    objective(&r, group.kind, l_mm, &l_m)
                };
                fd[i] = (eval(eps) - eval(-eps)) / (2.0 * eps);
            }
            p.var.set(&t0).unwrap();
            let fd = Tensor::from_vec(fd, t0.shape(), t0.device()).unwrap();
            let g = got(&out.grads, &p.name, &fd);
            let e = rel_err(&g, &fd);
            assert!(e <= 1e-5, "{r:?} M={m} {head:?} {}: rel err vs finite differences {e}", p.name);
        }
    }

    // 3. Losses reported are the real ones.
    let (l_mm, l_m) = losses(&model, &x, &y);
    assert!((out.loss_mm.to_scalar::<f64>().unwrap() - l_mm).abs() < 1e-12);
    if r.unimodal_weight > 0.0 {
        for (a, b) in out.loss_uni.iter().zip(&l_m) {
            assert!((a.to_scalar::<f64>().unwrap() - b).abs() < 1e-12);
        }
    }
}

fn all_routings() -> Vec<Routing> {
    vec![Routing::plain(), Routing::dgl(4.0), Routing::mt_only(2.0), Routing::ut_only(3.0), Routing::blend(1.5)]
}

#[test]
fn routing_m2_concat() {
    all_routings().into_iter().for_each(|r| check(2, Head::Concat, r));
}

#[test]
fn routing_m2_sum() {
    all_routings().into_iter().for_each(|r| check(2, Head::Sum, r));
}

#[test]
fn routing_m3_concat() {
    all_routings().into_iter().for_each(|r| check(3, Head::Concat, r));
}

#[test]
fn routing_m3_sum() {
    all_routings().into_iter().for_each(|r| check(3, Head::Sum, r));
}

/// A fusion module between encoder stages (`GroupKind::Fusion`, dense fusion) is part of h: every
/// routing treats it as the head (DGL: L_d on detached features only).
#[test]
fn routing_with_a_fusion_module_between_stages() {
    for m in [2, 3] {
        let dims: Vec<usize> = (0..m).map(|i| 3 + i).collect();
        let model = ToyModel::new(&dims, 5, K, Head::GatedConcat, 4, DType::F64).unwrap();
        let kinds: Vec<GroupKind> = model.param_groups().iter().map(|g| g.kind).collect();
        assert!(kinds.contains(&GroupKind::Fusion { after_stage: 0 }), "{kinds:?}");
        all_routings().into_iter().for_each(|r| check(m, Head::GatedConcat, r));
    }
}

/// DGL's defining property, stated directly: the head gets nothing from the unimodal losses and the
/// encoders nothing from the multimodal loss — changing α scales encoder grads only.
#[test]
fn dgl_encoder_grads_scale_with_alpha_head_grads_do_not() {
    let dims = [3, 4];
    let model = ToyModel::new(&dims, 5, K, Head::Concat, 3, DType::F64).unwrap();
    let x = model.inputs(&dims, 8, 9, DType::F64).unwrap();
    let y = targets(8);
    let a = routed_step(&model, &x, &y, &Routing::dgl(1.0), &CrossEntropy).unwrap();
    let b = routed_step(&model, &x, &y, &Routing::dgl(3.0), &CrossEntropy).unwrap();
    for e in a.grads.entries() {
        let gb = b.grads.get(&e.name).unwrap();
        let expected = match e.group {
            GroupKind::Head | GroupKind::Fusion { .. } => e.grad.clone(),
            GroupKind::Encoder(_) => (&e.grad * 3.0).unwrap(),
        };
        assert!(rel_err(gb, &expected) < 1e-12, "{}", e.name);
    }
}

#[test]
fn alpha_must_be_non_negative() {
    let dims = [3, 4];
    let model = ToyModel::new(&dims, 5, K, Head::Concat, 3, DType::F64).unwrap();
    let x = model.inputs(&dims, 4, 9, DType::F64).unwrap();
    let err = routed_step(&model, &x, &targets(4), &Routing::dgl(-1.0), &CrossEntropy).unwrap_err();
    assert!(err.to_string().contains("unimodal_weight"), "{err}");
}
