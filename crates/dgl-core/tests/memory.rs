//! Host memory stays flat over many DGL steps with momentum: gradients are detached before any
//! state keeps them (candle 0.11.1 leaves Var gradients attached to the step's graph).

mod common;

use candle_core::DType;
use common::{Head, ToyModel};
use dgl_core::loss::CrossEntropy;
use dgl_core::{routed_step, Routing, Sgd, SgdConfig};

#[cfg(target_os = "linux")]
fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[cfg(target_os = "linux")]
fn check_flat(routing: Routing) {
    let dims = [512, 512];
    let model = ToyModel::new(&dims, 512, 8, Head::Concat, 1, DType::F32).unwrap();
    let x = model.inputs(&dims, 64, 2, DType::F32).unwrap();
    let y = candle_core::Tensor::from_vec((0..64u32).map(|i| i % 8).collect::<Vec<_>>(), 64, &candle_core::Device::Cpu)
        .unwrap();
    let mut opt = Sgd::new(SgdConfig { lr: 1e-3, ..SgdConfig::default() }).unwrap();
    let mut rss_after_warmup = 0;
    for step in 0..250 {
        let mut out = routed_step(&model, &x, &y, &routing, &CrossEntropy).unwrap();
        out.grads.clip_global_norm(40.0).unwrap();
        opt.step(&out.grads).unwrap();
        if step == 50 {
            rss_after_warmup = rss_bytes();
        }
    }
    let growth = rss_bytes() as i64 - rss_after_warmup as i64;
    // A leaked graph keeps the fused 64×1024 features and the encoders' activations of every step.
    assert!(growth < 40 << 20, "{routing:?}: host memory grew by {} MB over 200 steps", growth >> 20);
}

/// Plain training is where the head weight's raw gradient references the (attached) fused features:
/// without the detach in `ParamGrads`/`Sgd` this test sees > 100 MB of growth.
#[cfg(target_os = "linux")]
#[test]
fn memory_is_flat_plain_and_dgl() {
    check_flat(Routing::plain());
    check_flat(Routing::dgl(2.0));
    check_flat(Routing::blend(1.0));
}
