//! DGL's routed gradients on the real ResNet-18 pair (audio 2-D ResNet, visual per-frame ResNet,
//! concat head) in training mode — BatchNorm normalising with batch statistics, whose own gradient
//! is part of the encoders' — equal independently computed ones, in f64:
//!
//! * separate backward passes, each from its own forward: α·∇L_m of the unimodal loss through the
//!   live head for encoder m (official step 4, whose head gradient is then discarded), ∇L_d of the
//!   multimodal loss on detached features for the head (official step 6);
//! * central finite differences of α·(L_a + L_v) (encoder parameters) and of L_d (head
//!   parameters) at sampled coordinates, every evaluation a fresh training-mode forward.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_dgl_routing_matches_separate_passes, randn, to_vec};
use dgl_core::loss::{CrossEntropy, Loss};
use dgl_core::model::{detach_all, keep_only};
use dgl_core::rng::Rng;
use dgl_core::{routed_step, GroupKind, MultimodalModel, Routing};
use dgl_models::{build_model_dtype, Model, ModelConfig, ModelState};

const ALPHA: f64 = 4.0;
const K: usize = 3;
const B: usize = 4;

fn model() -> Model {
    let cfg = ModelConfig { base_width: 2, num_classes: K, ..ModelConfig::default() };
    // 32×32 inputs reach layer 4 at 1×1: the smallest the topology allows (batch statistics over
    // B = 4 values there).
    let shapes = [vec![1, 32, 32], vec![3, 1, 32, 32]];
    build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F64, 7).unwrap()
}

fn batch() -> (Vec<Tensor>, Tensor) {
    let mut rng = Rng::new(11);
    let x = vec![randn(&mut rng, &[B, 1, 32, 32], DType::F64), randn(&mut rng, &[B, 3, 1, 32, 32], DType::F64)];
    let y = Tensor::from_vec((0..B as u32).map(|i| (2 * i + 1) % K as u32).collect::<Vec<_>>(), B, &Device::Cpu);
    (x, y.unwrap())
}

/// α·L_m of modality m from a fresh training-mode forward (the other representation zeroed).
fn unimodal_loss(model: &Model, x: &[Tensor], y: &Tensor, m: usize) -> Tensor {
    let z = model.encode_all(x, true).unwrap();
    let logits = model.fuse(&keep_only(&z, m).unwrap(), true).unwrap();
    (CrossEntropy.loss(&logits, y).unwrap() * ALPHA).unwrap()
}

/// L_d = CE(h(sg z)) from a fresh training-mode forward.
fn detached_loss(model: &Model, x: &[Tensor], y: &Tensor) -> Tensor {
    let z = detach_all(&model.encode_all(x, true).unwrap());
    CrossEntropy.loss(&model.fuse(&z, true).unwrap(), y).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

#[test]
fn dgl_routing_on_the_resnet18_pair_equals_separate_backward_passes_and_finite_differences() {
    let model = model();
    let (x, y) = batch();
    let out = routed_step(&model, &x, &y, &Routing::dgl(ALPHA), &CrossEntropy).unwrap();
    let groups = model.param_groups();
    assert_eq!(out.grads.len(), model.named_params().len(), "every parameter gets a gradient");

    // 1. Separate backward passes, one forward each.
    let g_uni = assert_dgl_routing_matches_separate_passes(&model, &x, &y, ALPHA, &CrossEntropy, true);
    // The unimodal losses really reach the other encoder not at all, and the head gets no α·L_m.
    assert!(g_uni[0].get(groups[1].params[0].var.as_tensor()).is_none());

    // 2. Central finite differences at sampled coordinates (BatchNorm affine and convolution
    //    weights deep in both encoders, the head).
    let objective = |kind: GroupKind| match kind {
        GroupKind::Encoder(_) => scalar(&unimodal_loss(&model, &x, &y, 0)) + scalar(&unimodal_loss(&model, &x, &y, 1)),
        GroupKind::Head | GroupKind::Fusion { .. } => scalar(&detached_loss(&model, &x, &y)),
    };
    let eps = 1e-5;
    let probes = [
        ("audio_net.conv1.weight", 5),
        ("audio_net.layer3.0.bn2.weight", 1),
        ("audio_net.layer4.1.conv2.weight", 17),
        ("visual_net.layer2.0.downsample.0.weight", 3),
        ("visual_net.bn1.bias", 0),
        ("visual_net.layer4.0.bn1.weight", 2),
        ("fusion_module.fc_out.weight", 20),
        ("fusion_module.fc_out.bias", 1),
    ];
    for (name, i) in probes {
        let (kind, var) = groups
            .iter()
            .find_map(|g| g.params.iter().find(|p| p.name == name).map(|p| (g.kind, p.var.clone())))
            .unwrap_or_else(|| panic!("no parameter {name}"));
        let t0 = var.as_tensor().copy().unwrap();
        let base = to_vec(&t0);
        let at = |delta: f64| {
            let mut v = base.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, t0.shape(), &Device::Cpu).unwrap()).unwrap();
            objective(kind)
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        var.set(&t0).unwrap();
        let got = to_vec(out.grads.get(name).unwrap())[i];
        assert!((got - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "{name}[{i}]: routed {got} vs finite difference {fd}");
    }
}
