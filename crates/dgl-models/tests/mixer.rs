//! The MLP-Mixer model (paper Table 2, right; CubeMLP): its DGL split at M = 3, the pieces it is
//! built from against independent computations (adaptive pooling windows, LayerNorm, one CubeMLP
//! block written out by hand), DGL's routed gradients against independent backward passes, and
//! the mixer's parameter gradients against central finite differences.

mod common;

use std::collections::HashSet;

use candle_core::{DType, Device, Tensor};
use common::{
    assert_dgl_routing_matches_separate_passes, assert_grads_match_finite_differences, randn, rel_err, to_vec,
};
use dgl_core::loss::{CrossEntropy, Loss};
use dgl_core::model::detach_all;
use dgl_core::rng::Rng;
use dgl_core::{GroupKind, MultimodalModel};
use dgl_models::mixer::adaptive_pool_matrix;
use dgl_models::{
    build_model_dtype, EncoderKind, FusionKind, InitCtx, MixerModel, MixerOptions, MixerStage, ModalityConfig,
    ModelConfig, ModelState,
};

const ALPHA: f64 = 3.0;
const K: usize = 2;
const B: usize = 5;

fn opts() -> MixerOptions {
    MixerOptions {
        seq_len: 4,
        width: 6,
        blocks: vec![MixerStage { seq_len: 4, channels: 6 }, MixerStage { seq_len: 2, channels: 3 }],
    }
}

/// Three modalities of different lengths and widths (MOSI unaligned-like: text, audio, visual).
fn inputs() -> Vec<(String, usize, Vec<usize>)> {
    vec![("text".into(), 7, vec![]), ("audio".into(), 5, vec![8]), ("visual".into(), 4, vec![5])]
}

fn model() -> MixerModel {
    MixerModel::new(&InitCtx::new(3, DType::F64, &Device::Cpu), &inputs(), &opts(), K).unwrap()
}

fn batch() -> (Vec<Tensor>, Tensor) {
    let mut rng = Rng::new(17);
    let x = vec![
        randn(&mut rng, &[B, 3, 7], DType::F64),
        randn(&mut rng, &[B, 9, 5], DType::F64),
        randn(&mut rng, &[B, 6, 4], DType::F64),
    ];
    let y = Tensor::from_vec((0..B as u32).map(|i| i % K as u32).collect::<Vec<_>>(), B, &Device::Cpu).unwrap();
    (x, y)
}

#[test]
fn adaptive_pool_windows_are_pytorchs() {
    // adaptive_avg_pool1d(T = 5 → L = 3): windows [0, 2), [1, 4), [3, 5).
    let p = adaptive_pool_matrix(5, 3);
    let want = [[0.5, 0.5, 0.0, 0.0, 0.0], [0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0], [0.0, 0.0, 0.0, 0.5, 0.5]];
    for (i, row) in want.iter().enumerate() {
        assert_eq!(&p[i * 5..(i + 1) * 5], row);
    }
    // Upsampling (T = 2 → L = 4) repeats each step twice.
    assert_eq!(adaptive_pool_matrix(2, 4), [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn split_is_the_extractors_against_mixer_and_head() {
    let model = model();
    let groups = model.param_groups();
    let kinds: Vec<GroupKind> = groups.iter().map(|g| g.kind).collect();
    assert_eq!(kinds, [GroupKind::Encoder(0), GroupKind::Encoder(1), GroupKind::Encoder(2), GroupKind::Head]);
    let names: Vec<String> = groups.iter().flat_map(|g| g.params.iter().map(|p| p.name.clone())).collect();
    assert_eq!(names.len(), names.iter().collect::<HashSet<_>>().len());
    for (m, prefix) in ["text_net.", "audio_net.", "visual_net."].iter().enumerate() {
        assert!(groups[m].params.iter().all(|p| p.name.starts_with(prefix)), "{prefix}");
    }
    assert!(groups[3].params.iter().any(|p| p.name == "mixer.layers_stack.1.res_projection_l.weight"));
    assert!(groups[3].params.iter().any(|p| p.name == "mixer.layers_stack.0.ln_k.weight"));
    assert!(!groups[3].params.iter().any(|p| p.name == "mixer.layers_stack.0.res_projection_l.weight"));
    // The parameter count computed without building the model is the built one's.
    let n: usize = model.named_params().iter().map(|p| p.var.as_tensor().elem_count()).sum();
    let dims: Vec<(usize, Vec<usize>)> = inputs().into_iter().map(|(_, d, h)| (d, h)).collect();
    assert_eq!(opts().param_count(&dims, K), n as u128);
    // z_m is (B, L, d) whatever T_m; each modality-dropout forward gives finite logits.
    let (x, _) = batch();
    let z = model.encode_all(&x, true).unwrap();
    assert!(z.iter().all(|z| z.dims() == [B, 4, 6]));
    for m in 0..3 {
        let l = model.fuse_only(&z, m, true).unwrap();
        assert_eq!(l.dims(), &[B, K]);
        assert!(to_vec(&l).iter().all(|v| v.is_finite()));
    }
}

/// The model's logits against the same computation written out independently with plain tensor
/// ops from the model's own parameters: pooling by explicit window means, CubeMLP's
/// `forward_ln_last` per axis (permute, MLP, residual, LayerNorm by hand), mean over L, head.
#[test]
fn forward_matches_a_hand_written_cubemlp_block() {
    let one = MixerOptions { seq_len: 3, width: 4, blocks: vec![MixerStage { seq_len: 2, channels: 4 }] };
    let inputs = vec![("a".to_string(), 2, vec![]), ("b".to_string(), 3, vec![])];
    let model = MixerModel::new(&InitCtx::new(9, DType::F64, &Device::Cpu), &inputs, &one, K).unwrap();
    let mut rng = Rng::new(5);
    let x = vec![randn(&mut rng, &[2, 5, 2], DType::F64), randn(&mut rng, &[2, 3, 3], DType::F64)];
    let got = to_vec(&model.fuse(&model.encode_all(&x, false).unwrap(), false).unwrap());

    let p = |name: &str| {
        let v = model.named_params().into_iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name}"));
        v.var.as_tensor().clone()
    };
    let linear = |x: &Tensor, w: &str| -> Tensor {
        let y = x.contiguous().unwrap().broadcast_matmul(&p(&format!("{w}.weight")).t().unwrap()).unwrap();
        y.broadcast_add(&p(&format!("{w}.bias"))).unwrap()
    };
    let ln = |x: &Tensor, w: &str| -> Tensor {
        let n = x.dim(3).unwrap() as f64;
        let mean = (x.sum_keepdim(3).unwrap() / n).unwrap();
        let c = x.broadcast_sub(&mean).unwrap();
        let var = (c.sqr().unwrap().sum_keepdim(3).unwrap() / n).unwrap();
        let y = c.broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap()).unwrap();
        y.broadcast_mul(&p(&format!("{w}.weight"))).unwrap().broadcast_add(&p(&format!("{w}.bias"))).unwrap()
    };
    let gelu = |x: &Tensor| -> Tensor {
        let v: Vec<f64> = to_vec(x).iter().map(|&v| 0.5 * v * (1.0 + libm_erf(v / 2f64.sqrt()))).collect();
        Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap()
    };
    // Encoders: window means (T = 5 → 3: [0,2), [1,4), [3,5); T = 3 → 3: identity), then Linear.
    let windows =
        |t: usize| -> Vec<(usize, usize)> { (0..3).map(|i| (i * t / 3, ((i + 1) * t).div_ceil(3))).collect() };
    let mut z = Vec::new();
    for (m, name) in ["a", "b"].iter().enumerate() {
        let t = x[m].dim(1).unwrap();
        let steps: Vec<Tensor> =
            windows(t).iter().map(|&(s, e)| x[m].narrow(1, s, e - s).unwrap().mean_keepdim(1).unwrap()).collect();
        z.push(linear(&Tensor::cat(&steps, 1).unwrap(), &format!("{name}_net.net.0")));
    }
    let xs = Tensor::stack(&z, 2).unwrap(); // (B, L, M, d)
    let pre = "mixer.layers_stack.0";
    // Sequence axis: L 3 → 2, residual projected. permute(0, 2, 3, 1) puts L last.
    let t = xs.permute((0, 2, 3, 1)).unwrap();
    let res =
        t.contiguous().unwrap().broadcast_matmul(&p(&format!("{pre}.res_projection_l.weight")).t().unwrap()).unwrap();
    let y = linear(&gelu(&linear(&t, &format!("{pre}.mlp_l.fc1"))), &format!("{pre}.mlp_l.fc2"));
    let xs = ln(&(y + res).unwrap(), &format!("{pre}.ln_l")).permute((0, 3, 1, 2)).unwrap();
    // Modality axis: M 2 → 2.
    let t = xs.permute((0, 1, 3, 2)).unwrap();
    let y = linear(&gelu(&linear(&t, &format!("{pre}.mlp_k.fc1"))), &format!("{pre}.mlp_k.fc2"));
    let xs = ln(&(y + &t).unwrap(), &format!("{pre}.ln_k")).permute((0, 1, 3, 2)).unwrap();
    // Channel axis: d 4 → 4.
    let y = linear(&gelu(&linear(&xs, &format!("{pre}.mlp_d.fc1"))), &format!("{pre}.mlp_d.fc2"));
    let xs = ln(&(y + &xs).unwrap(), &format!("{pre}.ln_d"));
    let pooled = xs.mean(1).unwrap().reshape((2, 8)).unwrap();
    let want = to_vec(&linear(&pooled, "fc"));
    assert!(rel_err(&got, &want) < 1e-12, "{got:?} vs {want:?}");
}

/// erf by its Maclaurin series (|x| small here) — independent of candle's implementation.
fn libm_erf(x: f64) -> f64 {
    if x.abs() > 3.0 {
        return x.signum();
    }
    let mut sum = 0.0;
    let mut term = x;
    for n in 0..200 {
        sum += term / (2 * n + 1) as f64;
        term *= -x * x / (n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// DGL on the mixer at M = 3: encoder m receives exactly α·∇L_m (the other two slices of X
/// zeroed, through the live h); the mixer and the head exactly ∇L_d on detached z.
#[test]
fn dgl_routing_on_the_mixer_at_three_modalities_equals_separate_backward_passes() {
    let model = model();
    let (x, y) = batch();
    let g_uni = assert_dgl_routing_matches_separate_passes(&model, &x, &y, ALPHA, &CrossEntropy, true);
    // The unimodal loss of one modality does not reach the other encoders.
    let text_w = model.encoder_params(0)[0].var.as_tensor().clone();
    assert!(g_uni[1].get(&text_w).is_none_or(|g| to_vec(g).iter().all(|v| *v == 0.0)));
}

/// The mixer's gradients (LayerNorm, GELU MLPs, residual projections, per axis) against central
/// finite differences of L_d.
#[test]
fn mixer_gradient_matches_finite_differences() {
    let model = model();
    let (x, y) = batch();
    let z = detach_all(&model.encode_all(&x, false).unwrap());
    let loss = || CrossEntropy.loss(&model.fuse(&z, false).unwrap(), &y).unwrap();
    let names = [
        "mixer.layers_stack.0.mlp_l.fc1.weight",
        "mixer.layers_stack.0.ln_k.weight",
        "mixer.layers_stack.1.res_projection_d.weight",
        "mixer.layers_stack.1.mlp_k.fc2.bias",
        "mixer.layers_stack.1.ln_d.bias",
    ];
    assert_grads_match_finite_differences(&model.head_params(), &names, &loss);
}

fn mixer_config(shapes_hidden: &[(&str, Vec<usize>)]) -> ModelConfig {
    ModelConfig {
        modalities: shapes_hidden
            .iter()
            .map(|(n, h)| ModalityConfig::new(*n, EncoderKind::Mlp { hidden: h.clone() }))
            .collect(),
        fusion: FusionKind::Mixer,
        mixer: opts(),
        num_classes: K,
        ..ModelConfig::default()
    }
}

#[test]
fn the_builder_makes_mixer_models_of_any_modality_count_and_refuses_what_it_cannot_read() {
    let cfg = mixer_config(&[("text", vec![]), ("audio", vec![8]), ("visual", vec![5])]);
    let shapes = vec![vec![3, 7], vec![9, 5], vec![6, 4]];
    let built = build_model_dtype(&cfg, &shapes, &Device::Cpu, DType::F64, 3).unwrap();
    assert_eq!(built.num_modalities(), 3);
    // Same seed, same labels: the builder's model is the directly built one.
    let direct = model();
    let (x, _) = batch();
    let a = to_vec(&built.fuse(&built.encode_all(&x, false).unwrap(), false).unwrap());
    let b = to_vec(&direct.fuse(&direct.encode_all(&x, false).unwrap(), false).unwrap());
    assert_eq!(a, b);
    let est = cfg.estimate(&shapes).unwrap();
    assert_eq!(est.params, built.named_params().iter().map(|p| p.var.as_tensor().elem_count() as u128).sum());
    assert_eq!(cfg.min_train_batch(&shapes).unwrap(), 1);

    // One modality (the unimodal-only rows): no modality-axis mixer; the logits depend on x.
    let uni = cfg.unimodal("audio").unwrap();
    let m1 = build_model_dtype(&uni, &[vec![9, 5]], &Device::Cpu, DType::F64, 3).unwrap();
    assert!(!m1.named_params().iter().any(|p| p.name.contains("_k.")));
    let l1 = to_vec(&m1.fuse(&m1.encode_all(&x[1..2], false).unwrap(), false).unwrap());
    let x2 = vec![(&x[1] * 2.0).unwrap()];
    let l2 = to_vec(&m1.fuse(&m1.encode_all(&x2, false).unwrap(), false).unwrap());
    assert!(rel_err(&l1, &l2) > 1e-6);

    // A ResNet encoder, a 3-D input, and a sequence without the mixer are refused by name.
    let mut resnet = cfg.clone();
    resnet.modalities[1].encoder = EncoderKind::Resnet18Audio;
    let e = build_model_dtype(&resnet, &shapes, &Device::Cpu, DType::F64, 3).unwrap_err().to_string();
    assert!(e.contains("`audio`") && e.contains("mlp"), "{e}");
    let e = build_model_dtype(&cfg, &[vec![3, 7], vec![1, 9, 5], vec![6, 4]], &Device::Cpu, DType::F64, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`audio`") && e.contains("[1, 9, 5]"), "{e}");
    let concat = ModelConfig { fusion: FusionKind::Concat, ..cfg.clone() };
    let e = build_model_dtype(&concat, &shapes, &Device::Cpu, DType::F64, 3).unwrap_err().to_string();
    assert!(e.contains("mixer"), "{e}");
    let mut zero = cfg.clone();
    zero.mixer.blocks[1].channels = 0;
    let e = build_model_dtype(&zero, &shapes, &Device::Cpu, DType::F64, 3).unwrap_err().to_string();
    assert!(e.contains("model.mixer.blocks[1].channels"), "{e}");
}
