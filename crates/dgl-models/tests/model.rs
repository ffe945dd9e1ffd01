//! FusionModel / UnimodalClassifier / ModelConfig / checkpoint state.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use dgl_core::loss::CrossEntropy;
use dgl_core::rng::Rng;
use dgl_core::routing::{routed_step, Routing};
use dgl_core::{GroupKind, MultimodalModel};
use dgl_models::{
    build_model, build_model_dtype, export_state, export_state_map, import_state, EncoderKind, FusionKind,
    ModalityConfig, Model, ModelConfig, ModelError, ModelState,
};

fn small_cfg() -> ModelConfig {
    ModelConfig { base_width: 4, ..ModelConfig::default() }
}

fn shapes() -> Vec<Vec<usize>> {
    vec![vec![1, 64, 48], vec![3, 1, 32, 32]]
}

fn inputs(rng: &mut Rng, b: usize) -> Vec<Tensor> {
    vec![randn(rng, &[b, 1, 64, 48], DType::F32), randn(rng, &[b, 3, 1, 32, 32], DType::F32)]
}

#[test]
fn default_model_names_groups_and_forward() {
    let model = build_model(&small_cfg(), &shapes(), &Device::Cpu, 0).unwrap();
    assert!(matches!(model, Model::Fusion(_)));
    assert_eq!(model.num_modalities(), 2);
    assert_eq!(model.modality_names(), ["audio", "visual"]);
    let groups = model.param_groups();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].kind, GroupKind::Encoder(0));
    assert_eq!(groups[0].params.len(), 60);
    assert_eq!(groups[1].params.len(), 60);
    assert_eq!(groups[2].kind, GroupKind::Head);
    let names: Vec<String> = model.named_state().into_iter().map(|n| n.name).collect();
    for want in [
        "audio_net.conv1.weight",
        "audio_net.layer1.0.bn1.running_mean",
        "visual_net.layer2.0.downsample.0.weight",
        "visual_net.layer4.1.bn2.running_var",
        "fusion_module.fc_out.weight",
        "fusion_module.fc_out.bias",
    ] {
        assert!(names.contains(&want.to_string()), "missing {want}");
    }
    assert!(groups.iter().flat_map(|g| &g.params).all(|p| !p.name.contains("running")));
    assert_eq!(model.named_buffers().len(), 80);
    assert!(groups[0].params.iter().all(|p| p.name.starts_with("audio_net.")));
    assert!(groups[2].params.iter().all(|p| p.name.starts_with("fusion_module.")));
    let visual_conv1 = &groups[1].params[0];
    assert_eq!(visual_conv1.name, "visual_net.conv1.weight");
    assert_eq!(visual_conv1.var.as_tensor().dims(), &[4, 3, 7, 7]);

    let mut rng = Rng::new(1);
    let z = model.encode_all(&inputs(&mut rng, 2), true).unwrap();
    assert_eq!(z[0].dims(), &[2, 32]);
    let logits = model.fuse(&z, true).unwrap();
    assert_eq!(logits.dims(), &[2, 6]);
    assert_eq!(model.linear_head_block(0).unwrap().dims(), &[6, 32]);
    let uni = model.fuse_only(&z, 1, true).unwrap();
    let want = z[1]
        .matmul(&model.linear_head_block(1).unwrap().t().unwrap())
        .unwrap()
        .broadcast_add(model.head_params()[1].var.as_tensor())
        .unwrap();
    assert_close(&to_vec(&uni), &to_vec(&want), 1e-5, "fuse_only visual");
}

#[test]
fn dgl_routing_runs_on_the_model() {
    let model = build_model(&small_cfg(), &shapes(), &Device::Cpu, 0).unwrap();
    let mut rng = Rng::new(2);
    let y = Tensor::new(&[1u32, 4], &Device::Cpu).unwrap();
    let out = routed_step(&model, &inputs(&mut rng, 2), &y, &Routing::dgl(4.0), &CrossEntropy).unwrap();
    let n_params = model.named_params().len();
    assert_eq!(out.grads.len(), n_params);
    assert!(out.grads.first_non_finite().unwrap().is_none());
}

#[test]
fn unimodal_classifier_shares_encoder_init() {
    let cfg = small_cfg();
    let multi = build_model(&cfg, &shapes(), &Device::Cpu, 5).unwrap();
    let uni = build_model(&cfg.unimodal("audio").unwrap(), &shapes()[..1], &Device::Cpu, 5).unwrap();
    assert!(matches!(uni, Model::Unimodal(_)));
    assert_eq!(uni.num_modalities(), 1);
    assert_eq!(uni.modality_names(), ["audio"]);
    let head: Vec<String> = uni.head_params().into_iter().map(|p| p.name).collect();
    assert_eq!(head, ["head.weight", "head.bias"]);
    assert_eq!(uni.head_params()[0].var.as_tensor().dims(), &[6, 32]);
    let a = multi.encoder_params(0);
    let b = uni.encoder_params(0);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert_eq!(to_vec(x.var.as_tensor()), to_vec(y.var.as_tensor()), "{}", x.name);
    }
    let mut rng = Rng::new(3);
    let z = uni.encode_all(&inputs(&mut rng, 2)[..1], false).unwrap();
    assert_eq!(uni.fuse(&z, false).unwrap().dims(), &[2, 6]);
    assert!(uni.fuse(&[z[0].clone(), z[0].clone()], false).is_err());
    assert_eq!(uni.param_groups().len(), 2);
    let visual = build_model(&cfg.unimodal("visual").unwrap(), &shapes()[1..], &Device::Cpu, 5).unwrap();
    assert!(visual.named_params()[0].name.starts_with("visual_net."));
}

#[test]
fn mlp_modalities_and_other_heads() {
    let mlp = |n: &str, h: Vec<usize>| ModalityConfig::new(n, EncoderKind::Mlp { hidden: h });
    for (fusion, m) in [(FusionKind::Concat, 3), (FusionKind::Sum, 3), (FusionKind::Gated, 2), (FusionKind::Film, 2)] {
        let mods = [mlp("audio", vec![16]), mlp("visual", vec![16]), mlp("text", vec![8, 16])];
        let cfg = ModelConfig { modalities: mods[..m].to_vec(), fusion, num_classes: 2, ..ModelConfig::default() };
        let shapes: Vec<Vec<usize>> = [vec![5], vec![7], vec![9]][..m].to_vec();
        let model = build_model(&cfg, &shapes, &Device::Cpu, 1).unwrap();
        let mut rng = Rng::new(4);
        let x: Vec<Tensor> = shapes.iter().map(|s| randn(&mut rng, &[3, s[0]], DType::F32)).collect();
        let z = model.encode_all(&x, true).unwrap();
        assert_eq!(model.fuse(&z, true).unwrap().dims(), &[3, 2], "{fusion:?}");
        for k in 0..m {
            assert_eq!(model.fuse_only(&z, k, true).unwrap().dims(), &[3, 2]);
        }
        if m == 3 {
            assert!(model.encoder_params(2).iter().any(|p| p.name == "text_net.net.2.weight"));
        }
        let head: Vec<String> = model.head_params().into_iter().map(|p| p.name).collect();
        assert!(head.iter().all(|n| n.starts_with("fusion_module.")), "{head:?}");
        if fusion == FusionKind::Sum {
            assert!(head.contains(&"fusion_module.fc_m2.weight".to_string()));
        }
        assert_eq!(model.linear_head_block(0).is_some(), matches!(fusion, FusionKind::Concat | FusionKind::Sum));
        // A linear head is the sum of its per-modality terms W^{(m)} z_m + b^{(m)} (concat: b/M each,
        // sum: each layer's own bias); the others have no such terms.
        assert_eq!(fusion.is_linear(), model.linear_head_bias(0).is_some(), "{fusion:?}");
        if fusion.is_linear() {
            let terms: Vec<Tensor> = (0..m)
                .map(|k| {
                    let w = model.linear_head_block(k).unwrap();
                    z[k].matmul(&w.t().unwrap()).unwrap().broadcast_add(&model.linear_head_bias(k).unwrap()).unwrap()
                })
                .collect();
            let sum = terms.iter().skip(1).fold(terms[0].clone(), |a, t| (a + t).unwrap());
            assert_close(&to_vec(&sum), &to_vec(&model.fuse(&z, true).unwrap()), 1e-5, fusion.as_str());
        }
    }
}

#[test]
fn config_validation() {
    let cfg = small_cfg();
    let dev = Device::Cpu;
    assert!(matches!(build_model(&cfg, &shapes()[..1], &dev, 0), Err(ModelError::Config(_))));
    // 3 frames configured, 1 given
    let three = ModelConfig { frames: 3, ..cfg.clone() };
    assert!(matches!(build_model(&three, &shapes(), &dev, 0), Err(ModelError::Config(_))));
    assert!(build_model(&three, &[vec![1, 64, 48], vec![3, 3, 32, 32]], &dev, 0).is_ok());
    // in_channels disagreeing with the shape
    let mut bad = cfg.clone();
    bad.modalities[0].in_channels = Some(2);
    assert!(matches!(build_model(&bad, &shapes(), &dev, 0), Err(ModelError::Config(_))));
    // gated needs M = 2
    let mut gated3 = ModelConfig { fusion: FusionKind::Gated, ..cfg.clone() };
    gated3.modalities.push(ModalityConfig::new("text", EncoderKind::Mlp { hidden: vec![4] }));
    let s3 = vec![vec![1, 64, 48], vec![3, 1, 32, 32], vec![5]];
    assert!(matches!(build_model(&gated3, &s3, &dev, 0), Err(ModelError::Config(_))));
    // duplicate names
    let mut dup = cfg.clone();
    dup.modalities[1].name = "audio".into();
    assert!(build_model(&dup, &shapes(), &dev, 0).is_err());
    // (F, T) audio shape is accepted
    assert!(build_model(&cfg, &[vec![64, 48], vec![3, 1, 32, 32]], &dev, 0).is_ok());
    // serde round trip, partial configs fill in defaults
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    let partial: ModelConfig = serde_json::from_str(r#"{"num_classes": 34, "fusion": "film"}"#).unwrap();
    assert_eq!(partial.num_classes, 34);
    assert_eq!(partial.fusion, FusionKind::Film);
    assert_eq!(partial.base_width, 64);
    let mlp: ModalityConfig =
        serde_json::from_str(r#"{"name": "text", "encoder": {"kind": "mlp", "hidden": [32]}}"#).unwrap();
    assert_eq!(mlp.encoder, EncoderKind::Mlp { hidden: vec![32] });
}

#[test]
fn state_export_import_roundtrip_and_errors() {
    let dev = Device::Cpu;
    let cfg = small_cfg();
    let a = build_model(&cfg, &shapes(), &dev, 1).unwrap();
    let b = build_model(&cfg, &shapes(), &dev, 2).unwrap();
    // move a's running stats away from their init
    let mut rng = Rng::new(6);
    a.encode_all(&inputs(&mut rng, 2), true).unwrap();
    let state = export_state(&a).unwrap();
    assert_eq!(state.len(), a.named_params().len() + a.named_buffers().len());
    // the export is a snapshot: changing a afterwards does not change it
    let first = to_vec(&state[0].1);
    a.named_params()[0].var.set(&a.named_params()[0].var.as_tensor().zeros_like().unwrap()).unwrap();
    assert_eq!(to_vec(&state[0].1), first);

    let mut map: HashMap<String, Tensor> = state.into_iter().collect();
    map.insert("audio_net.bn1.num_batches_tracked".into(), Tensor::new(3i64, &dev).unwrap());
    let loaded = import_state(&b, &map, true).unwrap();
    assert_eq!(loaded.len(), b.named_state().len());
    for nv in b.named_state() {
        assert_eq!(to_vec(nv.var.as_tensor()), to_vec(&map[&nv.name]), "{}", nv.name);
    }
    // f64 checkpoint into an f32 model converts
    let c64 = build_model_dtype(&cfg, &shapes(), &dev, DType::F64, 3).unwrap();
    let m64 = export_state_map(&c64).unwrap();
    import_state(&b, &m64, true).unwrap();
    assert_eq!(b.named_params()[0].var.dtype(), DType::F32);

    // errors, and nothing is written on error
    let before = to_vec(b.named_params()[0].var.as_tensor());
    let mut missing = map.clone();
    missing.remove("fusion_module.fc_out.bias");
    assert!(
        matches!(import_state(&b, &missing, true), Err(ModelError::MissingTensor(n)) if n == "fusion_module.fc_out.bias")
    );
    assert_eq!(to_vec(b.named_params()[0].var.as_tensor()), before);
    assert!(import_state(&b, &missing, false).is_ok());
    let mut extra = map.clone();
    extra.insert("fusion_module.fc_auxi.weight".into(), Tensor::zeros((6, 64), DType::F32, &dev).unwrap());
    assert!(
        matches!(import_state(&b, &extra, true), Err(ModelError::UnexpectedTensor(n)) if n == "fusion_module.fc_auxi.weight")
    );
    assert!(import_state(&b, &extra, false).is_ok());
    let mut wrong = map.clone();
    wrong.insert("fusion_module.fc_out.weight".into(), Tensor::zeros((7, 64), DType::F32, &dev).unwrap());
    let err = import_state(&b, &wrong, false).unwrap_err();
    assert!(
        matches!(&err, ModelError::ShapeMismatch { name, expected, found } if name == "fusion_module.fc_out.weight" && expected == &vec![6, 64] && found == &vec![7, 64]),
        "{err}"
    );
    assert!(err.to_string().contains("fusion_module.fc_out.weight"));
}

#[test]
fn same_seed_same_model() {
    let dev = Device::Cpu;
    let a = build_model(&small_cfg(), &shapes(), &dev, 42).unwrap();
    let b = build_model(&small_cfg(), &shapes(), &dev, 42).unwrap();
    let c = build_model(&small_cfg(), &shapes(), &dev, 43).unwrap();
    let sa = export_state(&a).unwrap();
    let sb = export_state(&b).unwrap();
    let sc = export_state(&c).unwrap();
    assert!(sa.iter().zip(&sb).all(|(x, y)| x.0 == y.0 && to_vec(&x.1) == to_vec(&y.1)));
    assert!(sa.iter().zip(&sc).any(|(x, y)| to_vec(&x.1) != to_vec(&y.1)));
    // audio and visual encoders draw from different streams
    let first8 = |m: usize| {
        let t = a.encoder_params(m)[3].var.as_tensor().flatten_all().unwrap();
        to_vec(&t.narrow(0, 0, 8).unwrap())
    };
    assert_ne!(first8(0), first8(1));
}

#[test]
fn models_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<dgl_models::FusionModel>();
    check::<dgl_models::UnimodalClassifier>();
    let model = build_model(&small_cfg(), &shapes(), &Device::Cpu, 0).unwrap();
    let as_dyn: &dyn MultimodalModel = &model;
    assert_eq!(as_dyn.num_modalities(), 2);
}
