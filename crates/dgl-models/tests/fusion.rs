//! Fusion heads: formulas, modality dropout, linear blocks, gradients vs finite differences.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ops::sigmoid;
use common::*;
use dgl_core::rng::Rng;
use dgl_models::fusion::{build_head, FusionHead, FusionKind, HeadOptions};
use dgl_models::init::InitCtx;

fn ctx() -> InitCtx {
    InitCtx::new(11, DType::F64, &Device::Cpu)
}

fn head(kind: FusionKind, dims: &[usize], opts: HeadOptions) -> Box<dyn FusionHead> {
    build_head(&ctx(), kind, dims, 3, opts).unwrap()
}

/// Random (non-zero) weights, so biases and gates are not at their zero init.
fn randomize(h: &dyn FusionHead, rng: &mut Rng) {
    for p in h.params() {
        let t = randn(rng, p.var.as_tensor().dims(), DType::F64);
        p.var.set(&(t * 0.5).unwrap()).unwrap();
    }
}

fn cases() -> Vec<(FusionKind, Vec<usize>, HeadOptions)> {
    let d = HeadOptions::default();
    let swapped = HeadOptions { hidden: Some(6), condition_on_first: false };
    vec![
        (FusionKind::Concat, vec![5, 4], d),
        (FusionKind::Concat, vec![5, 4, 3], d),
        (FusionKind::Sum, vec![5, 4], d),
        (FusionKind::Sum, vec![5, 4, 3], d),
        (FusionKind::Gated, vec![5, 4], d),
        (FusionKind::Gated, vec![5, 4], swapped),
        (FusionKind::Film, vec![5, 4], d),
        (FusionKind::Film, vec![5, 4], swapped),
    ]
}

#[test]
fn names_follow_the_official_modules() {
    let names = |k, dims: &[usize]| -> Vec<String> {
        head(k, dims, HeadOptions::default()).params().into_iter().map(|p| p.name).collect()
    };
    assert_eq!(names(FusionKind::Concat, &[5, 4]), ["fc_out.weight", "fc_out.bias"]);
    assert_eq!(names(FusionKind::Sum, &[5, 4]), ["fc_x.weight", "fc_x.bias", "fc_y.weight", "fc_y.bias"]);
    assert_eq!(names(FusionKind::Sum, &[5, 4, 3])[4], "fc_m2.weight");
    assert_eq!(
        names(FusionKind::Gated, &[5, 4]),
        ["fc_x.weight", "fc_x.bias", "fc_y.weight", "fc_y.bias", "fc_out.weight", "fc_out.bias"]
    );
    assert_eq!(names(FusionKind::Film, &[5, 4]), ["fc.weight", "fc.bias", "fc_out.weight", "fc_out.bias"]);
    // shapes: gated hidden defaults to d_1; FiLM fc: d_1 -> 2 d_2, fc_out: d_2 -> K
    let g = head(FusionKind::Gated, &[5, 4], HeadOptions::default());
    assert_eq!(g.params()[0].var.as_tensor().dims(), &[5, 5]);
    assert_eq!(g.params()[2].var.as_tensor().dims(), &[5, 4]);
    let f = head(FusionKind::Film, &[5, 4], HeadOptions::default());
    assert_eq!(f.params()[0].var.as_tensor().dims(), &[8, 5]);
    assert_eq!(f.params()[2].var.as_tensor().dims(), &[3, 4]);
    // M = 2 only for gated / FiLM
    assert!(build_head(&ctx(), FusionKind::Gated, &[5, 4, 3], 3, HeadOptions::default()).is_err());
    assert!(build_head(&ctx(), FusionKind::Film, &[5], 3, HeadOptions::default()).is_err());
    assert!(build_head(&ctx(), FusionKind::Concat, &[5], 3, HeadOptions::default()).is_err());
}

#[test]
fn concat_with_zeroed_modalities_is_block_times_z_plus_bias() {
    let mut rng = Rng::new(1);
    let dims = [5, 4, 3];
    let h = head(FusionKind::Concat, &dims, HeadOptions::default());
    randomize(h.as_ref(), &mut rng);
    let z: Vec<Tensor> = dims.iter().map(|&d| randn(&mut rng, &[2, d], DType::F64)).collect();
    let b = h.params()[1].var.as_tensor().clone();
    let full = h.forward_t(&z, true).unwrap();
    let mut sum_blocks = b.unsqueeze(0).unwrap().broadcast_as((2, 3)).unwrap().contiguous().unwrap();
    for m in 0..3 {
        let w_m = h.linear_block(m).unwrap();
        assert_eq!(w_m.dims(), &[3, dims[m]]);
        let only = dgl_core::model::keep_only(&z, m).unwrap();
        let got = h.forward_t(&only, true).unwrap();
        let want = z[m].matmul(&w_m.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        assert_close(&to_vec(&got), &to_vec(&want), 1e-12, &format!("concat keep_only {m}"));
        sum_blocks = (sum_blocks + z[m].matmul(&w_m.t().unwrap()).unwrap()).unwrap();
    }
    assert_close(&to_vec(&full), &to_vec(&sum_blocks), 1e-12, "concat = sum of blocks + b");
    assert!(h.linear_block(3).is_none());
}

#[test]
fn sum_gated_film_formulas() {
    let mut rng = Rng::new(2);
    let a = randn(&mut rng, &[2, 5], DType::F64);
    let v = randn(&mut rng, &[2, 4], DType::F64);
    let z = [a.clone(), v.clone()];
    let lin = |x: &Tensor, w: &Tensor, b: &Tensor| x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap();
    let p = |h: &dyn FusionHead, i: usize| h.params()[i].var.as_tensor().clone();

    let s = head(FusionKind::Sum, &[5, 4], HeadOptions::default());
    randomize(s.as_ref(), &mut rng);
    let want = (lin(&a, &p(&*s, 0), &p(&*s, 1)) + lin(&v, &p(&*s, 2), &p(&*s, 3))).unwrap();
    assert_close(&to_vec(&s.forward_t(&z, true).unwrap()), &to_vec(&want), 1e-12, "sum");
    assert_eq!(to_vec(&s.linear_block(1).unwrap()), to_vec(&p(&*s, 2)));

    let g = head(FusionKind::Gated, &[5, 4], HeadOptions::default());
    randomize(g.as_ref(), &mut rng);
    let gate = sigmoid(&lin(&a, &p(&*g, 0), &p(&*g, 1))).unwrap();
    let want = lin(&(gate * lin(&v, &p(&*g, 2), &p(&*g, 3))).unwrap(), &p(&*g, 4), &p(&*g, 5));
    assert_close(&to_vec(&g.forward_t(&z, true).unwrap()), &to_vec(&want), 1e-12, "gated");
    assert!(g.linear_block(0).is_none());

    let f = head(FusionKind::Film, &[5, 4], HeadOptions::default());
    randomize(f.as_ref(), &mut rng);
    let gb = lin(&a, &p(&*f, 0), &p(&*f, 1));
    let (gamma, beta) = (gb.narrow(1, 0, 4).unwrap(), gb.narrow(1, 4, 4).unwrap());
    let want = lin(&((gamma * &v).unwrap() + beta).unwrap(), &p(&*f, 2), &p(&*f, 3));
    assert_close(&to_vec(&f.forward_t(&z, true).unwrap()), &to_vec(&want), 1e-12, "film");
}

#[test]
fn every_head_accepts_zeroed_modalities() {
    let mut rng = Rng::new(3);
    for (kind, dims, opts) in cases() {
        let h = head(kind, &dims, opts);
        randomize(h.as_ref(), &mut rng);
        let z: Vec<Tensor> = dims.iter().map(|&d| randn(&mut rng, &[2, d], DType::F64)).collect();
        for m in 0..dims.len() {
            let y = h.forward_t(&dgl_core::model::keep_only(&z, m).unwrap(), true).unwrap();
            assert_eq!(y.dims(), &[2, 3]);
            assert!(to_vec(&y).iter().all(|v| v.is_finite()));
        }
        let zeros: Vec<Tensor> = z.iter().map(|t| t.zeros_like().unwrap()).collect();
        assert!(h.forward_t(&zeros, false).is_ok());
        // wrong shapes are rejected
        assert!(h.forward_t(&z[..1], true).is_err());
        let mut bad = z.clone();
        bad[0] = randn(&mut rng, &[2, dims[0] + 1], DType::F64);
        assert!(h.forward_t(&bad, true).is_err(), "{kind:?}");
    }
}

#[test]
fn every_head_gradient_matches_finite_differences() {
    let mut rng = Rng::new(4);
    for (kind, dims, opts) in cases() {
        let h = head(kind, &dims, opts);
        randomize(h.as_ref(), &mut rng);
        let z0: Vec<Tensor> = dims.iter().map(|&d| randn(&mut rng, &[3, d], DType::F64)).collect();
        let r = randn(&mut rng, &[3, 3], DType::F64);
        // Full input and each modality-dropout input.
        for keep in std::iter::once(None).chain((0..dims.len()).map(Some)) {
            let inputs = match keep {
                None => z0.clone(),
                Some(m) => dgl_core::model::keep_only(&z0, m).unwrap(),
            };
            let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let zt: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let y = h.forward_t(&zt, true).unwrap();
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for m in 0..dims.len() {
                let g = to_vec(grads.get(vars[m].as_tensor()).unwrap());
                let f = |t: &Tensor| {
                    let mut zz = inputs.clone();
                    zz[m] = t.clone();
                    (h.forward_t(&zz, true)? * &r)?.sum_all()?.to_scalar::<f64>()
                };
                let num = fd_grad(&inputs[m], 1e-6, &f);
                assert_close(&g, &num, 1e-6, &format!("{kind:?} {opts:?} keep {keep:?} dz_{m}"));
            }
            // and w.r.t. every head parameter
            for p in h.params() {
                let g = to_vec(grads.get(p.var.as_tensor()).unwrap());
                let orig = p.var.as_tensor().copy().unwrap();
                let f = |t: &Tensor| {
                    p.var.set(t)?;
                    let out = (h.forward_t(&inputs, true)? * &r)?.sum_all()?.to_scalar::<f64>();
                    p.var.set(&orig)?;
                    out
                };
                let num = fd_grad(&orig, 1e-6, &f);
                assert_close(&g, &num, 1e-6, &format!("{kind:?} keep {keep:?} d{}", p.name));
            }
        }
    }
}
