//! Every method of the registry trains end to end through the one loop on a micro version of the
//! embedded dataset, writing config, metrics and a checkpoint; bad options are clear errors.

mod common;

use dgl_baselines::MethodKind;
use dgl_cli::config::{DeviceKind, Preset, TrainConfig};
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{train, RunOptions};

/// The shared micro configuration, with the gradient-source diagnostics on every 2nd step.
fn micro(kind: MethodKind) -> TrainConfig {
    let mut cfg = common::micro(kind);
    cfg.train.diagnostics_every = 2;
    cfg
}

#[test]
fn every_method_trains_and_writes_a_run_directory() {
    for kind in MethodKind::ALL {
        let out = common::tmp(kind.as_str());
        let outcome = train(&micro(kind), &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcome.epochs.len(), 2, "{kind}");
        let last = outcome.last();
        let acc = last.get("test_acc").unwrap();
        assert!((0.0..=1.0).contains(&acc), "{kind}: {acc}");
        if kind.unimodal_modality().is_none() {
            for b in ["test_acc_audio", "test_acc_visual"] {
                assert!(last.get(b).is_some(), "{kind}: no {b} in {:?}", last.header());
            }
        }
        for f in [RunDir::CONFIG, RunDir::METRICS_CSV, RunDir::METRICS_JSONL, RunDir::CHECKPOINT] {
            assert!(out.join(f).is_file(), "{kind}: missing {f}");
        }
        let rows = read_metrics(&out.join(RunDir::METRICS_JSONL)).unwrap();
        assert_eq!(rows.len(), 2);
        assert!((rows[1].get("test_acc").unwrap() - acc).abs() < 1e-12);
        // The written config reads back to the same configuration.
        let back = TrainConfig::from_toml_file(&out.join(RunDir::CONFIG)).unwrap();
        assert_eq!(back, micro(kind), "{kind}");
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn same_seed_same_numbers() {
    let a = train(&micro(MethodKind::Dgl), &common::tmp("det-a"), &RunOptions::default()).unwrap();
    let b = train(&micro(MethodKind::Dgl), &common::tmp("det-b"), &RunOptions::default()).unwrap();
    for (ra, rb) in a.epochs.iter().zip(&b.epochs) {
        for ((ka, va), (kb, vb)) in ra.0.iter().zip(&rb.0) {
            assert_eq!(ka, kb);
            if ka != "seconds" {
                assert_eq!(va.to_bits(), vb.to_bits(), "{ka}: {va} vs {vb}");
            }
        }
    }
}

#[test]
fn bad_options_are_clear_errors() {
    let e = "nonsense".parse::<MethodKind>().unwrap_err().to_string();
    assert!(e.contains("nonsense") && e.contains("dgl"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    cfg.method.alpha = Some(-1.0);
    let e = train(&cfg, &common::tmp("alpha"), &RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("alpha"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    cfg.preset = Preset::Paper;
    cfg.device = DeviceKind::Cpu;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("paper preset") && e.contains("--device cuda"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    cfg.device = DeviceKind::Cuda;
    if !cfg!(feature = "cuda") {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("no CUDA support"), "{e}");
    }

    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.batch_size = 0;
    assert!(cfg.validate().unwrap_err().to_string().contains("batch_size"));

    let e = toml::from_str::<TrainConfig>("seed = 1\nunknown_key = 3\n").unwrap_err().to_string();
    assert!(e.contains("unknown_key"), "{e}");
}

#[test]
fn a_non_empty_run_directory_is_not_overwritten_by_accident() {
    let out = common::tmp("exists");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "x").unwrap();
    let e = train(&micro(MethodKind::Vanilla), &out, &RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("--overwrite"), "{e}");
    assert!(out.join("precious.txt").exists());
    // --overwrite replaces only a run directory dgl wrote (tests/hostile_rundir.rs).
    let opts = RunOptions { overwrite: true, ..RunOptions::default() };
    let e = train(&micro(MethodKind::Vanilla), &out, &opts).unwrap_err().to_string();
    assert!(e.contains("not a run directory") && e.contains("precious.txt"), "{e}");
    assert!(out.join("precious.txt").exists());
    std::fs::remove_file(out.join("precious.txt")).unwrap();
    train(&micro(MethodKind::Vanilla), &out, &RunOptions::default()).unwrap();
    train(&micro(MethodKind::Dgl), &out, &opts).unwrap();
    assert_eq!(dgl_cli::checkpoint::read_meta(&out.join(RunDir::CHECKPOINT)).unwrap().method, "dgl");
    let _ = std::fs::remove_dir_all(&out);
}
