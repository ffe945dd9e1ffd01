//! The ESANet-style segmentation model (paper Table 5): its pieces against independent
//! computations (nearest ×2 upsampling, the depthwise 3×3 convolution against candle's grouped
//! convolution, the learned upsampling's initial kernel, multi-scale packing), its DGL split, and
//! DGL's routed gradients with a per-pixel loss (class weights, ignored pixels) against independent
//! backward passes, in f64 with training-mode BatchNorm; head gradients against finite differences.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    assert_dgl_routing_matches_separate_passes, assert_grads_match_finite_differences, groups_with_unique_names, randn,
    rel_err, to_vec,
};
use dgl_core::loss::Loss;
use dgl_core::model::detach_all;
use dgl_core::rng::Rng;
use dgl_core::task::WeightedCrossEntropy;
use dgl_core::{routed_step, GroupKind, MultimodalModel, Routing};
use dgl_models::esanet::{depthwise3x3, upsample_nearest2x};
use dgl_models::{EsaNet, EsaNetOptions, InitCtx, ModelState, ResNetConfig};

const K: usize = 3;
const B: usize = 2;
const ALPHA: f64 = 2.0;

fn model() -> EsaNet {
    let opts = EsaNetOptions { decoder_blocks: 1, se_reduction: 2, ..EsaNetOptions::default() };
    let mods = [("rgb".to_string(), 3), ("depth".to_string(), 1)];
    EsaNet::new(&InitCtx::new(5, DType::F64, &Device::Cpu), &mods, (32, 32), ResNetConfig::resnet18(3, 2), &opts, K)
        .unwrap()
}

/// RGB (B, 3, 32, 32), depth (B, 1, 32, 32), labels (B, 32, 32) with some pixels void (255).
fn batch() -> (Vec<Tensor>, Tensor) {
    let mut rng = Rng::new(3);
    let x = vec![randn(&mut rng, &[B, 3, 32, 32], DType::F64), randn(&mut rng, &[B, 1, 32, 32], DType::F64)];
    let y: Vec<u32> = (0..B * 32 * 32).map(|i| if i % 7 == 0 { 255 } else { (i / 5 % K) as u32 }).collect();
    (x, Tensor::from_vec(y, (B, 32, 32), &Device::Cpu).unwrap())
}

fn loss() -> WeightedCrossEntropy {
    WeightedCrossEntropy { class_weights: Some(vec![1.0, 2.5, 0.5]), ignore_index: Some(255) }
}

#[test]
fn upsampling_pieces_match_independent_computations() {
    let mut rng = Rng::new(1);
    let x = randn(&mut rng, &[2, 3, 4, 5], DType::F64);
    // Nearest ×2: y[i][j] = x[i/2][j/2].
    let up = upsample_nearest2x(&x).unwrap();
    assert_eq!(up.dims(), &[2, 3, 8, 10]);
    let (xv, uv) = (to_vec(&x), to_vec(&up));
    for n in 0..6 {
        for i in 0..8 {
            for j in 0..10 {
                assert_eq!(uv[n * 80 + i * 10 + j], xv[n * 20 + (i / 2) * 5 + j / 2]);
            }
        }
    }
    // Depthwise 3×3 (zero padding 1) = candle's grouped convolution with groups = C, plus bias.
    let w = randn(&mut rng, &[3, 1, 3, 3], DType::F64);
    let b = randn(&mut rng, &[3], DType::F64);
    let got = to_vec(&depthwise3x3(&x, &w, &b).unwrap());
    let want = x.conv2d(&w, 1, 1, 1, 3).unwrap().broadcast_add(&b.reshape((1, 3, 1, 1)).unwrap()).unwrap();
    assert!(rel_err(&got, &to_vec(&want)) < 1e-14);
    // The learned upsampling starts as a smoothing of the nearest upsampling whose kernel sums to
    // 1: a constant map stays constant away from the zero-padded border.
    let model = model();
    let head = model.head_params();
    let up0 = head.iter().find(|p| p.name == "upsample.0.conv.weight").unwrap();
    let k = to_vec(up0.var.as_tensor());
    assert_eq!(&k[..9], &[1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0].map(|v| v / 16.0));
}

#[test]
fn split_groups_shapes_and_modality_dropout() {
    let model = model();
    let (groups, kinds) = groups_with_unique_names(&model);
    assert_eq!(
        kinds,
        [
            GroupKind::Encoder(0),
            GroupKind::Encoder(1),
            GroupKind::Fusion { after_stage: 1 },
            GroupKind::Fusion { after_stage: 2 },
            GroupKind::Fusion { after_stage: 3 },
            GroupKind::Fusion { after_stage: 4 },
            GroupKind::Head
        ]
    );
    assert!(groups[0].params.iter().any(|p| p.name == "rgb_net.layer4.1.conv2.weight"));
    assert!(groups[1].params.iter().any(|p| p.name == "depth_net.conv1.weight"));
    assert!(groups[2].params.iter().any(|p| p.name == "fuse1.se_depth.fc1.weight"));
    assert!(groups[6].params.iter().any(|p| p.name == "decoder.2.skip.conv.weight"));
    let state: Vec<String> = model.named_buffers().into_iter().map(|v| v.name).collect();
    assert!(state.iter().any(|n| n == "context.ppm.1.bn.running_var"));
    // z_m packs layer1..layer4 (2·8·8 + 4·4·4 + 8·2·2 + 16·1·1 values at base 2, 32×32).
    let (x, _) = batch();
    let z = model.encode_all(&x, true).unwrap();
    assert_eq!(z[0].dims(), &[B, 2 * 64 + 4 * 16 + 8 * 4 + 16]);
    let maps = model.layout().unpack(&z[1]).unwrap();
    assert_eq!(maps[3].dims(), &[B, 16, 1, 1]);
    assert_eq!(to_vec(&model.layout().pack(&maps).unwrap()), to_vec(&z[1]));
    // Per-pixel logits at the input size, also with either modality zeroed at every scale.
    for m in [None, Some(0), Some(1)] {
        let l = match m {
            None => model.fuse(&z, true).unwrap(),
            Some(m) => model.fuse_only(&z, m, true).unwrap(),
        };
        assert_eq!(l.dims(), &[B, K, 32, 32]);
        assert!(to_vec(&l).iter().all(|v| v.is_finite()));
    }
    // Sizes that are not multiples of 32 are refused.
    let mods = [("rgb".to_string(), 3)];
    let e = EsaNet::new(
        &InitCtx::new(5, DType::F64, &Device::Cpu),
        &mods,
        (48, 40),
        ResNetConfig::resnet18(3, 2),
        &EsaNetOptions::default(),
        K,
    )
    .unwrap_err();
    assert!(e.to_string().contains("multiple of 32"), "{e}");
}

/// DGL on the segmentation model with a per-pixel weighted loss and void pixels: each encoder gets
/// exactly α·∇L_m (the other modality zeroed at all four fusion points, through the live fusion
/// modules, context and decoder); every fusion module, the context module and the decoder get
/// exactly ∇L_d on detached features.
#[test]
fn dgl_routing_with_a_per_pixel_loss_equals_separate_backward_passes() {
    let model = model();
    let (x, y) = batch();
    assert_dgl_routing_matches_separate_passes(&model, &x, &y, ALPHA, &loss(), false);
    let out = routed_step(&model, &x, &y, &Routing::dgl(ALPHA), &loss()).unwrap();
    let se = to_vec(out.grads.get("fuse2.se_rgb.fc2.weight").unwrap());
    assert!(se.iter().any(|v| *v != 0.0), "the fusion modules are trained (by L_d)");
}

/// Gradients of the learned upsampling, the SE fusion, the context module and the classifier
/// against central finite differences of the per-pixel loss, in evaluation mode.
#[test]
fn head_gradients_match_finite_differences() {
    let model = model();
    let (x, y) = batch();
    let z = detach_all(&model.encode_all(&x, false).unwrap());
    let l = || loss().loss(&model.fuse(&z, false).unwrap(), &y).unwrap();
    let all: Vec<_> = model.param_groups().into_iter().flat_map(|g| g.params).collect();
    let names = [
        "upsample.1.conv.weight",
        "decoder.1.upsample.conv.bias",
        "fuse3.se_depth.fc1.weight",
        "context.ppm.1.conv.weight",
        "classifier.conv.bias",
    ];
    assert_grads_match_finite_differences(&all, &names, &l);
}

/// `model.fusion = "esanet"` builds the same network from a configuration, and refuses inputs it
/// cannot segment, naming the modality.
#[test]
fn the_builder_makes_the_segmentation_model() {
    use dgl_models::{build_model_dtype, EncoderKind, FusionKind, ModalityConfig, ModelConfig};
    let cfg = ModelConfig {
        modalities: vec![
            ModalityConfig::new("rgb", EncoderKind::Resnet18Visual),
            ModalityConfig::new("depth", EncoderKind::Resnet18Visual),
        ],
        base_width: 2,
        fusion: FusionKind::Esanet,
        esanet: EsaNetOptions { decoder_blocks: 1, se_reduction: 2, ..EsaNetOptions::default() },
        num_classes: K,
        ..ModelConfig::default()
    };
    let shapes = vec![vec![3, 32, 32], vec![1, 32, 32]];
    let built = build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F64, 5).unwrap();
    let direct = model();
    let (x, _) = batch();
    let a = to_vec(&built.fuse(&built.encode_all(&x, false).unwrap(), false).unwrap());
    let b = to_vec(&direct.fuse(&direct.encode_all(&x, false).unwrap(), false).unwrap());
    assert_eq!(a, b);
    assert_eq!(cfg.min_train_batch(&shapes).unwrap(), 2, "layer4 is 1×1 at 32×32");
    let bad = |shapes: Vec<Vec<usize>>| {
        build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F64, 5).unwrap_err().to_string()
    };
    let e = bad(vec![vec![3, 32, 32], vec![1, 64, 64]]);
    assert!(e.contains("`depth`") && e.contains("one size"), "{e}");
    let e = bad(vec![vec![3, 48, 48], vec![1, 48, 48]]);
    assert!(e.contains("multiple of 32"), "{e}");
    let mut mlp = cfg.clone();
    mlp.modalities[1].encoder = EncoderKind::Mlp { hidden: vec![] };
    let e = build_model_dtype(&mlp, &[vec![3, 32, 32], vec![4]], &Device::Cpu, DType::F64, 5).unwrap_err().to_string();
    assert!(e.contains("`depth`"), "{e}");
}
