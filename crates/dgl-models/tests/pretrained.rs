//! Pretrained torchvision ResNet weights (`dgl_models::pretrained`): the name mapping into every
//! ResNet encoder, the 1-channel conv1 rule (ESANet: summed over the RGB channels), BatchNorm
//! statistics, ignored keys, `.safetensors` files generated here and `.pth` fixtures written by
//! PyTorch (`tests/fixtures/make_torchvision_pth.py`), and the errors.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::to_vec;
use dgl_models::{
    build_model, load_torchvision_resnet, Conv1Rule, EncoderKind, FusionKind, ModalityConfig, Model, ModelConfig,
    ModelError, ModelState, ResNetDepth,
};

/// torchvision's ResNet `state_dict` keys and shapes for BasicBlocks `blocks` and base width
/// `base` (`torchvision/models/resnet.py`), with `fc` for `classes` classes; written from the
/// architecture, not from dgl-models.
fn torchvision_shapes(blocks: [usize; 4], base: usize, classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let bn = |v: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            v.push((format!("{p}.{s}"), vec![c]));
        }
        v.push((format!("{p}.num_batches_tracked"), vec![]));
    };
    v.push(("conv1.weight".into(), vec![base, 3, 7, 7]));
    bn(&mut v, "bn1", base);
    let mut inp = base;
    for (stage, &n) in blocks.iter().enumerate() {
        let out = base << stage;
        for b in 0..n {
            let p = format!("layer{}.{b}", stage + 1);
            v.push((format!("{p}.conv1.weight"), vec![out, inp, 3, 3]));
            bn(&mut v, &format!("{p}.bn1"), out);
            v.push((format!("{p}.conv2.weight"), vec![out, out, 3, 3]));
            bn(&mut v, &format!("{p}.bn2"), out);
            if b == 0 && stage > 0 {
                v.push((format!("{p}.downsample.0.weight"), vec![out, inp, 1, 1]));
                bn(&mut v, &format!("{p}.downsample.1"), out);
            }
            inp = out;
        }
    }
    v.push(("fc.weight".into(), vec![classes, 8 * base]));
    v.push(("fc.bias".into(), vec![classes]));
    v
}

/// A torchvision state dict with distinct values, exact in f32 and with exact sums of three
/// (multiples of 1/256 below 8 in magnitude); `num_batches_tracked` is int64 as in PyTorch.
fn torchvision_state(blocks: [usize; 4], base: usize) -> Vec<(String, Tensor)> {
    torchvision_shapes(blocks, base, 10)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let t = if name.ends_with("num_batches_tracked") {
                Tensor::new(7i64, &Device::Cpu).unwrap()
            } else {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|j| ((i * 7919 + j * 31) % 4001) as f32 / 256.0 - 7.8).collect();
                Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap()
            };
            (name, t)
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) {
    let views: Vec<(String, &Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dgl-pretrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Audio (1-channel spectrogram) + visual (RGB frame) model.
fn av_model(base: usize, resnet: ResNetDepth, fusion: FusionKind, audio_channels: usize) -> Model {
    let cfg = ModelConfig { base_width: base, resnet, fusion, num_classes: 3, ..ModelConfig::default() };
    build_model(&cfg, &[vec![audio_channels, 40, 40], vec![3, 1, 32, 32]], &Device::Cpu, 1).unwrap()
}

fn state(model: &Model) -> HashMap<String, Vec<f64>> {
    model.named_state().into_iter().map(|nv| (nv.name, to_vec(nv.var.as_tensor()))).collect()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// conv1 of a 1-channel encoder: Σ_c w[o, c, y, x], computed here element by element.
fn summed_conv1(w: &Tensor) -> Vec<f64> {
    let (o, c, k, _) = w.dims4().unwrap();
    let v = to_vec(w);
    let mut out = vec![0.0; o * k * k];
    for oi in 0..o {
        for ci in 0..c {
            for p in 0..k * k {
                out[oi * k * k + p] += v[(oi * c + ci) * k * k + p];
            }
        }
    }
    out
}

/// Every tensor of the ResNet encoders equals the file's (conv1 of the 1-channel `audio_net`
/// summed over the input channels); everything else is unchanged; `tol` is absolute.
fn assert_loaded(model: &Model, before: &HashMap<String, Vec<f64>>, file: &HashMap<String, Tensor>, tol: f64) {
    let mut loaded = 0;
    for nv in model.named_state() {
        let got = to_vec(nv.var.as_tensor());
        let rel = ["audio_net.", "visual_net."].iter().find_map(|p| nv.name.strip_prefix(p));
        let want = match rel {
            Some("conv1.weight") if nv.name.starts_with("audio_net") => summed_conv1(&file["conv1.weight"]),
            Some(rel) => to_vec(&file[rel]),
            None => before[&nv.name].clone(),
        };
        assert_eq!(got.len(), want.len(), "{}", nv.name);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= tol, "{}: {g} vs {w}", nv.name);
        }
        loaded += usize::from(rel.is_some());
    }
    assert!(loaded > 0);
}

#[test]
fn safetensors_state_dict_loads_into_every_encoder_with_the_esanet_conv1_rule() {
    let model = av_model(4, ResNetDepth::Resnet18, FusionKind::Concat, 1);
    let before = state(&model);
    let sd = torchvision_state([2, 2, 2, 2], 4);
    let path = tmp("r18-w4.safetensors");
    write_safetensors(&path, &sd);
    let report = load_torchvision_resnet(&model, &path).unwrap();

    let file: HashMap<String, Tensor> = sd.into_iter().collect();
    assert_loaded(&model, &before, &file, 0.0);
    // The fusion head kept its initialisation; BN statistics are no longer the initial 0 / 1.
    assert_eq!(state(&model)["fusion_module.fc_out.weight"], before["fusion_module.fc_out.weight"]);
    let var = &state(&model)["visual_net.layer3.0.downsample.1.running_var"];
    assert_eq!(var, &to_vec(&file["layer3.0.downsample.1.running_var"]));
    assert_ne!(var, &before["visual_net.layer3.0.downsample.1.running_var"]);

    assert_eq!(report.format, "safetensors");
    assert_eq!(report.encoders.len(), 2);
    let (a, v) = (&report.encoders[0], &report.encoders[1]);
    assert_eq!((a.prefix.as_str(), a.in_channels, a.conv1), ("audio_net", 1, Conv1Rule::SumOverChannels));
    assert_eq!((v.prefix.as_str(), v.in_channels, v.conv1), ("visual_net", 3, Conv1Rule::AsIs));
    // 60 parameters + 40 running statistics per ResNet-18.
    assert_eq!((a.tensors, v.tensors, a.depth.as_str()), (100, 100, "resnet18"));
    let mut ignored = report.ignored.clone();
    ignored.sort();
    assert_eq!(&ignored[..2], ["bn1.num_batches_tracked", "fc.bias"]);
    assert!(ignored.contains(&"fc.weight".to_string()));
    assert_eq!(ignored.iter().filter(|k| k.ends_with("num_batches_tracked")).count(), 20);
    let line = report.to_string();
    for want in ["audio_net (resnet18, 100 tensors, conv1 summed", "visual_net (resnet18, 100 tensors)", "fc.weight"] {
        assert!(line.contains(want), "{line}");
    }
    assert!(line.contains("20 × num_batches_tracked"), "{line}");
}

#[test]
fn resnet34_state_dict_loads_into_mmtm_and_unimodal_models() {
    let sd = torchvision_state([3, 4, 6, 3], 2);
    let path = tmp("r34-w2.safetensors");
    write_safetensors(&path, &sd);
    let file: HashMap<String, Tensor> = sd.into_iter().collect();

    let mmtm = av_model(2, ResNetDepth::Resnet34, FusionKind::Mmtm, 1);
    assert!(matches!(mmtm, Model::Mmtm(_)));
    let before = state(&mmtm);
    let report = load_torchvision_resnet(&mmtm, &path).unwrap();
    assert_loaded(&mmtm, &before, &file, 0.0);
    // 36 BNs: 108 parameters + 72 running statistics (torchvision's 218 keys less fc and the counters).
    assert!(report.encoders.iter().all(|e| e.tensors == 180 && e.depth == "resnet34"));
    assert!(before.contains_key("visual_net.layer3.5.bn2.running_mean"));

    // One RGB modality: a unimodal classifier with its own head.
    let cfg = ModelConfig {
        modalities: vec![ModalityConfig::new("visual", EncoderKind::Resnet18Visual)],
        base_width: 2,
        resnet: ResNetDepth::Resnet34,
        num_classes: 3,
        ..ModelConfig::default()
    };
    let uni = build_model(&cfg, &[vec![3, 1, 32, 32]], &Device::Cpu, 0).unwrap();
    let before = state(&uni);
    let report = load_torchvision_resnet(&uni, &path).unwrap();
    assert_loaded(&uni, &before, &file, 0.0);
    assert_eq!(report.encoders.len(), 1);
}

#[test]
fn pth_fixtures_written_by_pytorch_match_their_safetensors_references() {
    // (fixture, base width, absolute tolerance of the summed conv1)
    for (name, base, tol) in [("resnet18_w2", 2, 1e-6), ("resnet18_w1_nested", 1, 1e-2)] {
        let pth = fixture(&format!("{name}.pth"));
        assert!(std::fs::metadata(&pth).unwrap().len() < 100_000, "{name}.pth is not small");
        let reference = candle_core::safetensors::load(fixture(&format!("{name}.ref.safetensors")), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap()))
            .collect::<HashMap<_, _>>();
        assert_eq!(reference.len(), 100 + 2, "{name}: 100 model tensors + fc");
        let model = av_model(base, ResNetDepth::Resnet18, FusionKind::Concat, 1);
        let before = state(&model);
        let report = load_torchvision_resnet(&model, &pth).unwrap();
        assert_eq!(report.format, "pth", "{name}");
        // Every value is the reference's exactly (f32 / f16 into an f32 model), conv1 summed in
        // f32 here within `tol` (the f16 file sums in f32 as well; the reference is in f64).
        for nv in model.named_state() {
            if let Some(rel) = ["audio_net.", "visual_net."].iter().find_map(|p| nv.name.strip_prefix(p)) {
                let got = to_vec(nv.var.as_tensor());
                let want = if nv.name == "audio_net.conv1.weight" {
                    summed_conv1(&reference["conv1.weight"])
                } else {
                    to_vec(&reference[rel])
                };
                let t = if rel == "conv1.weight" { tol } else { 0.0 };
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= t, "{name} {}: {g} vs {w}", nv.name);
                }
            } else {
                assert_eq!(to_vec(nv.var.as_tensor()), before[&nv.name]);
            }
        }
        let ignored: Vec<&str> = report.ignored.iter().map(String::as_str).collect();
        assert!(ignored.contains(&"fc.weight") && ignored.contains(&"fc.bias"), "{name}: {ignored:?}");
        assert_eq!(ignored.iter().filter(|k| k.ends_with("num_batches_tracked")).count(), 20, "{name}");
    }
}

fn load_err(model: &Model, path: &Path) -> String {
    let before = state(model);
    let e = load_torchvision_resnet(model, path).unwrap_err();
    assert!(matches!(e, ModelError::Pretrained { .. } | ModelError::Limit(_)), "{e:?}");
    // Nothing is written unless everything loads.
    assert_eq!(state(model), before, "a failed load changed the model");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "the message does not name the file: {msg}");
    msg
}

fn assert_has(msg: &str, wants: &[&str]) {
    for w in wants {
        assert!(msg.contains(w), "`{w}` not in: {msg}");
    }
}

#[test]
fn mismatches_are_errors_naming_the_key_both_shapes_and_the_file() {
    let model = av_model(4, ResNetDepth::Resnet18, FusionKind::Concat, 1);
    let full = torchvision_state([2, 2, 2, 2], 4);

    // A missing key.
    let missing: Vec<_> = full.iter().filter(|(k, _)| k != "layer3.0.downsample.1.running_var").cloned().collect();
    let path = tmp("missing.safetensors");
    write_safetensors(&path, &missing);
    assert_has(&load_err(&model, &path), &["no tensor `layer3.0.downsample.1.running_var`", "audio_net"]);

    // Another base width: conv1 first (the 1-channel encoder's shape and the file's).
    let path = tmp("w8.safetensors");
    write_safetensors(&path, &torchvision_state([2, 2, 2, 2], 8));
    assert_has(&load_err(&model, &path), &["`conv1.weight`", "[8, 3, 7, 7]", "[4, 1, 7, 7]", "base width is 8"]);

    // One tensor of another shape.
    let mut bad = full.clone();
    for (k, t) in bad.iter_mut() {
        if k == "layer2.1.bn1.bias" {
            *t = Tensor::zeros(9, DType::F32, &Device::Cpu).unwrap();
        }
    }
    let path = tmp("shape.safetensors");
    write_safetensors(&path, &bad);
    assert_has(&load_err(&model, &path), &["`layer2.1.bn1.bias`", "[9]", "[8]", "audio_net.layer2.1.bn1.bias"]);

    // A non-float tensor.
    let mut ints = full.clone();
    for (k, t) in ints.iter_mut() {
        if k == "layer1.0.conv2.weight" {
            *t = t.to_dtype(DType::I64).unwrap();
        }
    }
    let path = tmp("int.safetensors");
    write_safetensors(&path, &ints);
    assert_has(&load_err(&model, &path), &["`layer1.0.conv2.weight`", "I64", "not a floating-point"]);

    // Another depth, both ways.
    let path = tmp("r34.safetensors");
    write_safetensors(&path, &torchvision_state([3, 4, 6, 3], 4));
    assert_has(&load_err(&model, &path), &["layer1.2.", "a ResNet-34", "resnet18", "model.resnet"]);
    let deep = av_model(4, ResNetDepth::Resnet34, FusionKind::Concat, 1);
    let path = tmp("r18.safetensors");
    write_safetensors(&path, &full);
    assert_has(&load_err(&deep, &path), &["no tensor `layer1.2.conv1.weight`", "a ResNet-18", "resnet34"]);
}

#[test]
fn a_two_channel_encoder_is_refused() {
    let model = av_model(4, ResNetDepth::Resnet18, FusionKind::Concat, 2);
    let path = tmp("two-channels.safetensors");
    write_safetensors(&path, &torchvision_state([2, 2, 2, 2], 4));
    assert_has(&load_err(&model, &path), &["`audio_net` has 2 input channels", "[4, 3, 7, 7]", "not supported"]);
}

#[test]
fn files_that_are_not_state_dicts_are_errors_naming_the_file() {
    let model = av_model(2, ResNetDepth::Resnet18, FusionKind::Concat, 1);
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("garbage.pth", b"this is not a checkpoint at all, just text".to_vec(), &["neither a safetensors"]),
        ("empty.safetensors", Vec::new(), &["neither a safetensors"]),
        ("legacy.pth", b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.".to_vec(), &["legacy"]),
        (
            "bad-header.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}   ".to_vec(),
            &["not a valid safetensors"],
        ),
    ];
    for (name, bytes, wants) in cases {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        assert_has(&load_err(&model, &path), wants);
    }
    // A .pth cut short (its zip directory is at the end), and one with a byte of its pickle changed
    // (the zip's CRC catches it).
    let pth = std::fs::read(fixture("resnet18_w2.pth")).unwrap();
    let path = tmp("cut.pth");
    std::fs::write(&path, &pth[..pth.len() / 2]).unwrap();
    assert_has(&load_err(&model, &path), &["not a valid PyTorch zip archive"]);
    let mut flipped = pth.clone();
    let at = flipped.windows(8).position(|w| w == b"data.pkl").unwrap() + 8 + 200;
    flipped[at] ^= 0x55;
    let path = tmp("flipped.pth");
    std::fs::write(&path, &flipped).unwrap();
    load_err(&model, &path);
    // A truncated safetensors payload, a directory, a missing file.
    let path = tmp("short.safetensors");
    write_safetensors(&path, &torchvision_state([2, 2, 2, 2], 2));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert_has(&load_err(&model, &path), &["not a valid safetensors"]);
    let dir = tmp("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    assert_has(&load_err(&model, &dir), &["not a regular file"]);
    assert_has(&load_err(&model, &tmp("does-not-exist.pth")), &["cannot read"]);
}

#[test]
fn a_model_without_resnet_encoders_is_refused() {
    let cfg = ModelConfig {
        modalities: vec![
            ModalityConfig::new("a", EncoderKind::Mlp { hidden: vec![4] }),
            ModalityConfig::new("b", EncoderKind::Mlp { hidden: vec![4] }),
        ],
        num_classes: 3,
        ..ModelConfig::default()
    };
    let model = build_model(&cfg, &[vec![5], vec![6]], &Device::Cpu, 0).unwrap();
    let path = tmp("for-mlp.safetensors");
    write_safetensors(&path, &torchvision_state([2, 2, 2, 2], 2));
    assert_has(&load_err(&model, &path), &["no ResNet encoder"]);
}
