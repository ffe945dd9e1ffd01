//! The MMTM model (paper Table 2, left): its split for DGL (encoders = stem..layer2; MMTM blocks as
//! fusion groups; layer3/4 and the head in h), its modality-dropout forward, and DGL's routed
//! gradients on it against independent backward passes, in f64 with training-mode BatchNorm, and
//! against central finite differences of the MMTM block's own parameters.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    assert_dgl_routing_matches_separate_passes, assert_grads_match_finite_differences, groups_with_unique_names, randn,
    to_vec,
};
use dgl_core::loss::{CrossEntropy, Loss};
use dgl_core::model::detach_all;
use dgl_core::rng::Rng;
use dgl_core::{routed_step, GroupKind, MultimodalModel, Routing};
use dgl_models::{InitCtx, MmtmModel};

const ALPHA: f64 = 4.0;
const K: usize = 3;
const B: usize = 4;

fn model() -> MmtmModel {
    MmtmModel::audio_visual(&InitCtx::new(7, DType::F64, &Device::Cpu), 2, K).unwrap()
}

/// Audio (B, 1, 32, 32) and one visual frame (B, 3, 1, 32, 32): layer 4 at 1×1.
fn batch() -> (Vec<Tensor>, Tensor) {
    let mut rng = Rng::new(11);
    let x = vec![randn(&mut rng, &[B, 1, 32, 32], DType::F64), randn(&mut rng, &[B, 3, 1, 32, 32], DType::F64)];
    let y = Tensor::from_vec((0..B as u32).map(|i| (2 * i + 1) % K as u32).collect::<Vec<_>>(), B, &Device::Cpu);
    (x, y.unwrap())
}

#[test]
fn split_groups_and_modality_dropout() {
    let model = model();
    let (x, _) = batch();
    let (groups, kinds) = groups_with_unique_names(&model);
    assert_eq!(
        kinds,
        [
            GroupKind::Encoder(0),
            GroupKind::Encoder(1),
            GroupKind::Fusion { after_stage: 2 },
            GroupKind::Fusion { after_stage: 3 },
            GroupKind::Fusion { after_stage: 4 },
            GroupKind::Head
        ]
    );
    // Every parameter in exactly one group; encoders end at layer2, layer3/4 are in h.
    assert!(groups[0].params.iter().all(|p| p.name.starts_with("audio_net.") && !p.name.contains("layer3")));
    assert!(groups[0].params.iter().any(|p| p.name.starts_with("audio_net.layer2.")));
    assert!(groups[5].params.iter().any(|p| p.name.starts_with("visual_net.layer4.")));
    // MMTM linears: PyTorch's default init, U(−1/√fan_in, 1/√fan_in) (layer2: 4 + 4 channels in).
    let sq = groups[2].params.iter().find(|p| p.name == "mmtm2.fc_squeeze.weight").unwrap();
    let w = to_vec(sq.var.as_tensor());
    assert_eq!(sq.var.as_tensor().dims(), &[8, 8]);
    let bound = 1.0 / 8f64.sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > bound / 2.0), "{w:?}");
    // BatchNorm statistics are part of the state, not of the trainable groups.
    let state: Vec<String> = model.state_vars().into_iter().map(|v| v.name).collect();
    assert!(state.iter().any(|n| n == "visual_net.layer3.0.bn1.running_mean"));
    let n_params: usize = groups.iter().map(|g| g.params.len()).sum();
    assert_eq!(state.len() - n_params, state.iter().filter(|n| n.contains("running_")).count());
    // z_m is the layer2 map; the zeroed modality still runs through the blocks and later stages.
    let z = model.encode_all(&x, true).unwrap();
    assert_eq!(z[0].dims(), &[B, 4, 4, 4], "base 2: layer2 has 4 channels at 32/8");
    for m in 0..2 {
        let l = model.fuse_only(&z, m, true).unwrap();
        assert_eq!(l.dims(), &[B, K]);
        assert!(to_vec(&l).iter().all(|v| v.is_finite()));
    }
    // More than one frame is refused (the paper's MMTM setting is one frame).
    let two = randn(&mut Rng::new(3), &[B, 3, 2, 32, 32], DType::F64);
    assert!(model.encode(1, &two, false).unwrap_err().to_string().contains("one frame"));
}

/// DGL on MMTM: encoder m receives exactly α·∇L_m (unimodal loss through the live h, other layer2
/// map zeroed); every MMTM block, layer3/4 and the head exactly ∇L_d (h on detached layer2 maps).
#[test]
fn dgl_routing_on_mmtm_equals_separate_backward_passes() {
    let model = model();
    let (x, y) = batch();
    assert_dgl_routing_matches_separate_passes(&model, &x, &y, ALPHA, &CrossEntropy, true);
    let out = routed_step(&model, &x, &y, &Routing::dgl(ALPHA), &CrossEntropy).unwrap();
    // The MMTM blocks' gradients are not zero: they are trained (by L_d).
    let squeeze = to_vec(out.grads.get("mmtm3.fc_squeeze.weight").unwrap());
    assert!(squeeze.iter().any(|v| *v != 0.0));
}

/// The MMTM block's gradient (through the squeeze, the excitations and the channel gating)
/// against central finite differences of L_d, in evaluation mode.
#[test]
fn mmtm_block_gradient_matches_finite_differences() {
    let model = model();
    let (x, y) = batch();
    let z = detach_all(&model.encode_all(&x, false).unwrap());
    let loss = || CrossEntropy.loss(&model.fuse(&z, false).unwrap(), &y).unwrap();
    let all: Vec<_> = model.param_groups().into_iter().flat_map(|g| g.params).collect();
    let names = ["mmtm2.fc_squeeze.weight", "mmtm4.fc_1.bias", "mmtm3.fc_0.weight"];
    assert_grads_match_finite_differences(&all, &names, &loss);
}
