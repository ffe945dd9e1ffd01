//! `dgl train --pretrained FILE` / `model.pretrained`: the file is loaded into every ResNet encoder of
//! a new run's model before training; a resumed run restores its checkpoint without reading it; a
//! bad file stops the run before its directory is created.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use common::{micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::setup::setup;
use dgl_cli::{resume, train, DeviceKind, RunControl, RunOptions};
use dgl_models::ModelState;

/// A torchvision ResNet-18 `state_dict` of base width `base` (fc and num_batches_tracked
/// included), with distinct values.
fn write_resnet18(path: &Path, base: usize) {
    let mut shapes: Vec<(String, Vec<usize>)> = vec![("conv1.weight".into(), vec![base, 3, 7, 7])];
    let bn = |v: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] {
            v.push((format!("{p}.{s}"), if s == "num_batches_tracked" { vec![] } else { vec![c] }));
        }
    };
    bn(&mut shapes, "bn1", base);
    let mut inp = base;
    for stage in 0..4 {
        let out = base << stage;
        for b in 0..2 {
            let p = format!("layer{}.{b}", stage + 1);
            shapes.push((format!("{p}.conv1.weight"), vec![out, inp, 3, 3]));
            bn(&mut shapes, &format!("{p}.bn1"), out);
            shapes.push((format!("{p}.conv2.weight"), vec![out, out, 3, 3]));
            bn(&mut shapes, &format!("{p}.bn2"), out);
            if b == 0 && stage > 0 {
                shapes.push((format!("{p}.downsample.0.weight"), vec![out, inp, 1, 1]));
                bn(&mut shapes, &format!("{p}.downsample.1"), out);
            }
            inp = out;
        }
    }
    shapes.push(("fc.weight".into(), vec![1000, 8 * base]));
    shapes.push(("fc.bias".into(), vec![1000]));
    let tensors: Vec<(String, Tensor)> = shapes
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let t = if shape.is_empty() {
                Tensor::new(1i64, &Device::Cpu).unwrap()
            } else {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|j| ((i * 131 + j * 7) % 509) as f32 / 512.0 + 0.25).collect();
                Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap()
            };
            (name, t)
        })
        .collect();
    let views: Vec<(String, &Tensor)> = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn weights(model: &dgl_models::Model, name: &str) -> Vec<f32> {
    let nv = model.named_state().into_iter().find(|nv| nv.name == name).unwrap();
    nv.var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn setup_loads_model_pretrained_only_for_a_new_run() {
    let file = tmp("pretrained-w2.safetensors");
    write_resnet18(&file, 2);
    let mut cfg = micro(MethodKind::Dgl);
    let fresh = setup(&cfg, DeviceKind::Cpu, false, true).unwrap();
    assert!(fresh.pretrained.is_none());
    cfg.model.pretrained = Some(file.clone());
    let loaded = setup(&cfg, DeviceKind::Cpu, false, true).unwrap();
    let report = loaded.pretrained.as_ref().expect("loaded");
    let prefixes: Vec<&str> = report.encoders.iter().map(|e| e.prefix.as_str()).collect();
    assert_eq!(prefixes, ["audio_net", "visual_net"]);
    let first = |m: &dgl_models::Model, n: &str| weights(m, n)[0];
    // visual conv1 as is, audio conv1 summed over the RGB channels (1-channel spectrogram).
    assert_eq!(first(&loaded.model, "visual_net.conv1.weight"), 0.25);
    assert_ne!(first(&fresh.model, "visual_net.conv1.weight"), 0.25);
    let v = weights(&loaded.model, "visual_net.conv1.weight");
    assert_eq!(first(&loaded.model, "audio_net.conv1.weight"), v[0] + v[49] + v[98]);
    // A resumed run / `dgl eval`: not loaded (the checkpoint holds every weight).
    let restored = setup(&cfg, DeviceKind::Cpu, false, false).unwrap();
    assert!(restored.pretrained.is_none());
    assert_eq!(weights(&restored.model, "visual_net.conv1.weight"), weights(&fresh.model, "visual_net.conv1.weight"));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_pretrained_run_records_the_file_and_resumes_without_it() {
    let file = tmp("pretrained-run.safetensors");
    write_resnet18(&file, 2);
    let mut cfg = micro(MethodKind::Vanilla);
    cfg.train.epochs = 1;
    cfg.model.pretrained = Some(file.clone());
    let dir = tmp("pretrained-run");
    train(&cfg, &dir, &RunOptions::default()).unwrap();
    let written = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(written.contains("pretrained = ") && written.contains("resnet = \"resnet18\""), "{written}");
    std::fs::remove_file(&file).unwrap();
    cfg.train.epochs = 2;
    let outcome = resume(&dir, Some(&cfg), &RunOptions::default(), &RunControl::default()).unwrap();
    assert_eq!(outcome.epochs.len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dgl_train_pretrained_flag_loads_or_fails_before_creating_the_run() {
    let file = tmp("pretrained-cli.safetensors");
    write_resnet18(&file, 2);
    let out = tmp("pretrained-cli-run");
    let base = [
        "train",
        "--method",
        "vanilla",
        "--epochs",
        "1",
        "--set",
        "model.base_width=2",
        "--set",
        "data.dataset.n_train=16",
        "--set",
        "data.dataset.n_test=8",
        "--batch-size",
        "8",
        "--out",
    ];
    let run = |pretrained: &Path| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend([out.to_str().unwrap(), "--pretrained", pretrained.to_str().unwrap()]);
        Command::new(env!("CARGO_BIN_EXE_dgl")).args(&args).output().unwrap()
    };
    let o = run(&file);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    for want in ["pretrained ", "loaded into audio_net (resnet18, 100 tensors, conv1 summed", "visual_net", "fc.weight"]
    {
        assert!(stdout.contains(want), "`{want}` not in: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&out);

    // A garbage file: exit status 2, a message naming it, no run directory.
    let garbage = tmp("pretrained-garbage.pth");
    std::fs::write(&garbage, b"not a state dict").unwrap();
    let o = run(&garbage);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&garbage.display().to_string()) && stderr.contains("pretrained weights"), "{stderr}");
    assert!(!out.exists(), "no run directory for a refused file");
    let _ = std::fs::remove_file(&garbage);

    // The file's size is bounded before it is read.
    let mut args: Vec<&str> = base.to_vec();
    args.extend([out.to_str().unwrap(), "--pretrained", file.to_str().unwrap()]);
    let o =
        Command::new(env!("CARGO_BIN_EXE_dgl")).args(&args).env("DGL_MAX_PRETRAINED_BYTES", "1000").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    for want in ["pretrained file size", "1000", "DGL_MAX_PRETRAINED_BYTES"] {
        assert!(stderr.contains(want), "`{want}` not in: {stderr}");
    }
    assert!(!out.exists());
    let _ = std::fs::remove_file(&file);
}
