//! Model sizes are checked before anything is allocated: the estimate of the parameter count
//! equals the built model's, the ResNet's stage sizes are computed from the input shape (an empty
//! map is refused naming the modality, its shape and the minimum), and every configured size
//! has a limit named in its error with the variable that raises it.

use candle_core::{DType, Device};
use dgl_models::{
    build_model, build_model_dtype, EncoderKind, FusionKind, HeadOptions, ModalityConfig, Model, ModelConfig,
    ModelState, ResNetConfig, ResNetDepth,
};

fn param_elems(model: &impl ModelState) -> u128 {
    model.named_params().iter().map(|p| p.var.as_tensor().elem_count() as u128).sum()
}

fn mlp(name: &str, hidden: Vec<usize>) -> ModalityConfig {
    ModalityConfig::new(name, EncoderKind::Mlp { hidden })
}

/// The estimate is what the builder allocates, for every encoder kind, head and the unimodal case.
#[test]
fn estimated_parameters_equal_the_built_model() {
    let av = |fusion, head| ModelConfig { base_width: 2, fusion, head, num_classes: 5, ..ModelConfig::default() };
    let gated = HeadOptions { hidden: Some(7), condition_on_first: true };
    let film_second = HeadOptions { hidden: None, condition_on_first: false };
    let cases = [
        (av(FusionKind::Concat, HeadOptions::default()), vec![vec![1, 20, 9], vec![3, 1, 8, 8]]),
        (
            ModelConfig { frames: 2, ..av(FusionKind::Sum, HeadOptions::default()) },
            vec![vec![2, 5, 3], vec![3, 2, 5, 4]],
        ),
        (av(FusionKind::Gated, gated), vec![vec![7, 9], vec![3, 6, 6]]),
        (av(FusionKind::Film, film_second), vec![vec![1, 3, 3], vec![1, 1, 1, 1]]),
        (
            ModelConfig {
                modalities: vec![mlp("a", vec![6, 3]), mlp("b", vec![]), mlp("c", vec![4])],
                num_classes: 3,
                ..ModelConfig::default()
            },
            vec![vec![5], vec![2], vec![9]],
        ),
        (av(FusionKind::Concat, HeadOptions::default()).unimodal("visual").unwrap(), vec![vec![3, 1, 4, 4]]),
    ];
    for (cfg, shapes) in cases {
        let model = build_model(&cfg, &shapes, &Device::Cpu, 0).unwrap();
        assert_eq!(cfg.estimate(&shapes).unwrap().params, param_elems(&model), "{:?} {shapes:?}", cfg.fusion);
    }
}

/// Stage sizes follow PyTorch's formula; a 1-pixel input gives 1×1 maps everywhere (the stem's
/// padding 3 covers its 7×7 kernel), so the minimum input is 1×1 and only an empty map is refused.
#[test]
fn stage_sizes_and_the_minimum_input() {
    let net = ResNetConfig::resnet18(3, 64);
    let f = net.feature_sizes(224, 224).unwrap();
    assert_eq!((f.stem, f.pool, f.layers), ((112, 112), (56, 56), [(56, 56), (28, 28), (14, 14), (7, 7)]));
    let f = net.feature_sizes(257, 188).unwrap();
    assert_eq!(f.layers[3], (9, 6));
    let f = net.feature_sizes(1, 2).unwrap();
    assert_eq!((f.stem, f.layers[3]), ((1, 1), (1, 1)));
    assert_eq!(net.min_input_side(), 1);
    assert!(net.feature_sizes(0, 5).is_err() && net.feature_sizes(5, 0).is_err());
    // The paper's pair: 22.4 M parameters (11.17 M + 11.18 M + the 1024×6 head).
    let paper = ModelConfig::default();
    let e = paper.estimate(&[vec![1, 257, 188], vec![3, 1, 224, 224]]).unwrap();
    assert_eq!(e.params, 11_170_240 + 11_176_512 + 1024 * 6 + 6);
    // 2.66 M for the spectrogram, 2.68 M for the frame (docs/runs.md: 5.3 M).
    assert_eq!(e.activations_per_sample, 2_659_904 + 2_684_416);
}

#[test]
fn an_empty_spatial_map_is_refused_naming_modality_shape_and_minimum() {
    let cfg = ModelConfig { base_width: 2, ..ModelConfig::default() };
    for shapes in [vec![vec![1, 0, 7], vec![3, 1, 8, 8]], vec![vec![1, 7, 7], vec![3, 1, 8, 0]]] {
        let e = build_model(&cfg, &shapes, &Device::Cpu, 0).unwrap_err().to_string();
        let (name, shape) = if shapes[0][1] == 0 { ("audio", &shapes[0]) } else { ("visual", &shapes[1]) };
        for n in [format!("modality `{name}`"), format!("{shape:?}"), "at least 1×1".into()] {
            assert!(e.contains(&n), "`{n}` not in: {e}");
        }
    }
    let e = build_model(&cfg, &[vec![0, 8, 8], vec![3, 1, 8, 8]], &Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("no channels"), "{e}");
    let mlp_cfg = ModelConfig { modalities: vec![mlp("a", vec![2]), mlp("b", vec![2])], ..cfg };
    let e = build_model(&mlp_cfg, &[vec![0], vec![3]], &Device::Cpu, 0).unwrap_err().to_string();
    assert!(e.contains("modality `a`") && e.contains("[0]"), "{e}");
}

/// Each size limit, named with its key, bound and variable; nothing is allocated (these would
/// need terabytes).
#[test]
fn sizes_above_their_limits_are_refused_before_allocating() {
    let shapes = vec![vec![1, 16, 16], vec![3, 1, 16, 16]];
    let base = ModelConfig { base_width: 2, ..ModelConfig::default() };
    let mlps = ModelConfig { modalities: vec![mlp("a", vec![4]), mlp("b", vec![1 << 40])], ..base.clone() };
    for (cfg, shapes, needles) in [
        (
            ModelConfig { base_width: 100_000, ..base.clone() },
            shapes.clone(),
            ["`model.base_width` = 100000", "512", "DGL_MAX_BASE_WIDTH"],
        ),
        (ModelConfig { frames: 1 << 20, ..base.clone() }, shapes.clone(), ["`model.frames`", "256", "DGL_MAX_FRAMES"]),
        (
            ModelConfig { num_classes: 4_000_000_000, ..base.clone() },
            shapes.clone(),
            ["`model.num_classes`", "100000", "DGL_MAX_CLASSES"],
        ),
        (mlps, vec![vec![3], vec![3]], ["`model.modalities[1].encoder.hidden[0]`", "65536", "DGL_MAX_HIDDEN_SIZE"]),
        (
            ModelConfig {
                fusion: FusionKind::Gated,
                head: HeadOptions { hidden: Some(1 << 30), condition_on_first: true },
                ..base.clone()
            },
            shapes.clone(),
            ["`model.head.hidden`", "65536", "DGL_MAX_HIDDEN_SIZE"],
        ),
        // Within every per-key limit, but 512 wide on 100 000 input channels: 2.5 G parameters.
        (
            ModelConfig { base_width: 512, ..base.clone() },
            vec![vec![100_000, 8, 8], vec![3, 1, 8, 8]],
            ["`model parameters`", "500000000", "DGL_MAX_MODEL_PARAMS"],
        ),
        // A 60 000 × 60 000 spectrogram: 14 G activations per sample.
        (
            base.clone(),
            vec![vec![1, 60_000, 60_000], vec![3, 1, 8, 8]],
            ["`model activations per sample`", "268435456", "DGL_MAX_SAMPLE_ACTIVATIONS"],
        ),
    ] {
        let e = build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F32, 0).unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "`{n}` not in: {e}");
        }
    }
}

/// Batch normalisation in training needs two values per channel: a ResNet whose last map is 1×1
/// per sample needs batches of 2; larger maps, or several frames, train with 1; an MLP always.
#[test]
fn min_train_batch_follows_the_last_stage_map() {
    let av = ModelConfig { base_width: 2, ..ModelConfig::default() };
    assert_eq!(av.min_train_batch(&[vec![1, 65, 63], vec![3, 1, 32, 32]]).unwrap(), 2, "32×32 frames end 1×1");
    assert_eq!(av.min_train_batch(&[vec![1, 65, 63], vec![3, 1, 33, 64]]).unwrap(), 1, "2×2 and 2×2");
    assert_eq!(av.min_train_batch(&[vec![1, 257, 188], vec![3, 1, 224, 224]]).unwrap(), 1);
    let two_frames = ModelConfig { frames: 2, ..av.clone() };
    assert_eq!(two_frames.min_train_batch(&[vec![1, 65, 63], vec![3, 2, 32, 32]]).unwrap(), 1, "2 frames");
    let mlps = ModelConfig { modalities: vec![mlp("a", vec![2]), mlp("b", vec![])], ..av };
    assert_eq!(mlps.min_train_batch(&[vec![1], vec![1]]).unwrap(), 1);
}

/// `model.resnet = "resnet34"` makes every ResNet encoder (fusion, unimodal, MMTM) a ResNet-34: the
/// estimate is the built model's, the geometry (and so the smallest batch) is ResNet-18's, and a
/// configuration without the key is the ResNet-18 one.
#[test]
fn model_resnet_chooses_the_depth_of_every_resnet_encoder() {
    let r34 = |fusion| ModelConfig {
        base_width: 2,
        resnet: ResNetDepth::Resnet34,
        fusion,
        num_classes: 5,
        ..ModelConfig::default()
    };
    let shapes = [vec![1, 20, 9], vec![3, 1, 8, 8]];
    for cfg in [r34(FusionKind::Concat), r34(FusionKind::Mmtm), r34(FusionKind::Concat).unimodal("audio").unwrap()] {
        let shapes = &shapes[..cfg.modalities.len()];
        let model = build_model(&cfg, shapes, &Device::Cpu, 0).unwrap();
        assert_eq!(cfg.estimate(shapes).unwrap().params, param_elems(&model), "{:?}", cfg.fusion);
        let names: Vec<String> = model.named_state().into_iter().map(|nv| nv.name).collect();
        let deepest = format!("{}_net.layer3.5.bn2.running_var", cfg.modalities[0].name);
        assert!(names.contains(&deepest), "{:?}", cfg.fusion);
        if cfg.fusion == FusionKind::Mmtm {
            assert!(matches!(model, Model::Mmtm(_)));
        }
    }
    // Paper-sized: each encoder is torchvision's resnet34 without fc (the audio one 1-channel).
    let paper = ModelConfig { resnet: ResNetDepth::Resnet34, ..ModelConfig::default() };
    let e = paper.estimate(&[vec![1, 257, 188], vec![3, 1, 224, 224]]).unwrap();
    assert_eq!(e.params, (21_284_672 - 2 * 64 * 49) + 21_284_672 + 1024 * 6 + 6);
    let r18 = ModelConfig::default().estimate(&[vec![1, 257, 188], vec![3, 1, 224, 224]]).unwrap();
    assert!(e.activations_per_sample > r18.activations_per_sample);
    for s in [[vec![1, 65, 63], vec![3, 1, 32, 32]], [vec![1, 65, 63], vec![3, 1, 33, 64]]] {
        assert_eq!(paper.min_train_batch(&s).unwrap(), ModelConfig::default().min_train_batch(&s).unwrap());
    }
    // serde: the default, the value names, old configurations.
    assert_eq!(ModelConfig::default().resnet, ResNetDepth::Resnet18);
    let cfg: ModelConfig = serde_json::from_str(r#"{"resnet": "resnet34", "pretrained": "w.pth"}"#).unwrap();
    assert_eq!((cfg.resnet, cfg.pretrained.as_deref()), (ResNetDepth::Resnet34, Some(std::path::Path::new("w.pth"))));
    let old: ModelConfig = serde_json::from_str(r#"{"base_width": 8}"#).unwrap();
    assert_eq!((old.resnet, old.pretrained), (ResNetDepth::Resnet18, None));
    assert!(serde_json::from_str::<ModelConfig>(r#"{"resnet": "resnet50"}"#).is_err());
    let json = serde_json::to_string(&ModelConfig::default()).unwrap();
    assert!(json.contains(r#""resnet":"resnet18""#) && !json.contains("pretrained"), "{json}");
}
