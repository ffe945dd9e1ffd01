//! The one slow test: the paper's shapes at base width 64, forward + backward on a batch of 2.

mod common;

use candle_core::{DType, Device};
use common::*;
use dgl_core::rng::Rng;
use dgl_core::MultimodalModel;
use dgl_models::{build_model, ModelConfig, ModelState};

#[test]
fn paper_shapes_forward_backward_every_param_gets_a_finite_gradient() {
    let t0 = std::time::Instant::now();
    let cfg = ModelConfig::default();
    let model = build_model(&cfg, &[vec![1, 257, 188], vec![3, 1, 224, 224]], &Device::Cpu, 0).unwrap();
    let t_build = t0.elapsed();
    let mut rng = Rng::new(9);
    let audio = randn(&mut rng, &[2, 1, 257, 188], DType::F32);
    let frames = randn(&mut rng, &[2, 3, 1, 224, 224], DType::F32);
    let z = model.encode_all(&[audio, frames], true).unwrap();
    assert_eq!(z[0].dims(), &[2, 512]);
    assert_eq!(z[1].dims(), &[2, 512]);
    let logits = model.fuse(&z, true).unwrap();
    assert_eq!(logits.dims(), &[2, 6]);
    let t_fwd = t0.elapsed();
    let loss = logits.sqr().unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let t_bwd = t0.elapsed();
    let params = model.named_params();
    assert_eq!(params.len(), 2 * 60 + 2);
    for nv in &params {
        let g = grads.get(nv.var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {}", nv.name));
        assert_eq!(g.dims(), nv.var.as_tensor().dims(), "{}", nv.name);
        let v = to_vec(g);
        assert!(v.iter().all(|x| x.is_finite()), "non-finite gradient for {}", nv.name);
        assert!(v.iter().any(|&x| x != 0.0), "all-zero gradient for {}", nv.name);
    }
    for nv in model.named_buffers() {
        assert!(grads.get(nv.var.as_tensor()).is_none(), "buffer {} got a gradient", nv.name);
    }
    eprintln!("build {t_build:?}, forward {:?}, backward {:?}", t_fwd - t_build, t_bwd - t_fwd);
}
