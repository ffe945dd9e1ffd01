//! `resume` continues a run bit-identically (CPU): interrupted inside an epoch, at an epoch
//! boundary, and again after being resumed, for plain training, DGL and the stateful baselines.
//! Checkpoints of another configuration, method or model shape are refused with clear messages.

mod common;

use std::collections::HashMap;

use common::{assert_same_run, micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::checkpoint::Checkpoint;
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{resume, train, train_with, CliError, RunControl, RunOptions};

/// Reference run vs. the same run stopped after each of `stops` (global step counts) and resumed
/// each time; they must agree to the bit. The second stop must fall on an epoch boundary, the
/// others inside epochs.
fn interrupted_run_matches(kind: MethodKind, cfg: &dgl_cli::TrainConfig, stops: &[u64]) {
    let opts = RunOptions::default();
    let tag = format!("{kind}-{:?}", cfg.train.optimizer.kind); // tests run in parallel: distinct dirs
    let reference = tmp(&format!("{tag}-ref"));
    train(cfg, &reference, &opts).unwrap_or_else(|e| panic!("{kind}: {e}"));
    let dir = tmp(&format!("{tag}-stopped"));
    for (n, &at) in stops.iter().enumerate() {
        let control = RunControl { stop_after_steps: Some(at), ..RunControl::default() };
        let r = if n == 0 { train_with(cfg, &dir, &opts, &control) } else { resume(&dir, None, &opts, &control) };
        match r {
            Err(CliError::Interrupted(m)) => {
                assert!(m.contains("--resume") && m.contains(&dir.display().to_string()), "{kind}: {m}")
            }
            other => panic!("{kind}: stop after {at} steps: expected an interruption, got {other:?}"),
        }
        let meta = Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap().meta;
        assert_eq!(meta.global_step, at, "{kind}: checkpoint position");
        assert_eq!(meta.progress.is_none(), n == 1, "{kind}: stop {n} after {at} steps is at {}", meta.position());
    }
    let outcome = resume(&dir, None, &opts, &RunControl::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
    assert_eq!(outcome.epochs.len(), cfg.train.epochs, "{kind}: every epoch reported");
    assert_same_run(&reference, &dir);
    let _ = std::fs::remove_dir_all(&reference);
    let _ = std::fs::remove_dir_all(&dir);
}

// 4 steps per epoch (3 with a validation split): stop inside epoch 1, at the end of epoch 1,
// inside epoch 2 (of a resumed run).
const STOPS: [u64; 3] = [2, 4, 6];

#[test]
fn resume_is_bit_identical_for_vanilla_and_dgl() {
    for kind in [MethodKind::Vanilla, MethodKind::Dgl] {
        // With the gradient-source diagnostics (steps.csv) every 3 steps.
        let mut cfg = micro(kind);
        cfg.train.diagnostics_every = 3;
        interrupted_run_matches(kind, &cfg, &STOPS);
    }
}

#[test]
fn resume_is_bit_identical_with_adamw() {
    // Moments and per-parameter step counts travel through the checkpoint.
    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.optimizer.kind = dgl_core::OptimizerKind::AdamW;
    cfg.train.optimizer.lr = 1e-3;
    cfg.train.optimizer.weight_decay = 1e-2;
    interrupted_run_matches(MethodKind::Dgl, &cfg, &STOPS);
}

#[test]
fn resume_is_bit_identical_for_pmr_and_agm() {
    for kind in [MethodKind::Pmr, MethodKind::Agm] {
        interrupted_run_matches(kind, &micro(kind), &STOPS);
    }
}

#[test]
fn resume_is_bit_identical_for_mla_and_ogm_ge() {
    for kind in [MethodKind::Mla, MethodKind::OgmGe] {
        interrupted_run_matches(kind, &micro(kind), &STOPS);
    }
}

#[test]
fn resume_is_bit_identical_for_dnr_across_a_relearning_round() {
    // 3 steps per epoch (a validation split is carved out); re-learning after epoch 2 (every = 1),
    // whose diagnosis is reported in epoch 3: stop right after it, and inside epoch 3.
    let mut cfg = micro(MethodKind::Dnr);
    let dgl_baselines::MethodConfig::Dnr(dnr) = &mut cfg.method else { unreachable!() };
    dnr.every = 1;
    cfg.train.epochs = 3;
    interrupted_run_matches(MethodKind::Dnr, &cfg, &[1, 6, 7]);
}

#[test]
fn resume_is_bit_identical_for_mmpareto_and_gblending_ogr() {
    let mut g = micro(MethodKind::GBlendingOgr);
    let dgl_baselines::MethodConfig::GBlendingOgr(ogr) = &mut g.method else { unreachable!() };
    ogr.ogr_every = 1;
    interrupted_run_matches(MethodKind::GBlendingOgr, &g, &[1, 3, 4]);
    interrupted_run_matches(MethodKind::MmPareto, &micro(MethodKind::MmPareto), &STOPS);
}

#[test]
fn a_finished_run_extends_with_more_epochs_and_refuses_other_configurations() {
    let opts = RunOptions::default();
    let none = RunControl::default();
    let mut two = micro(MethodKind::Vanilla);
    two.train.epochs = 2;
    let mut one = two.clone();
    one.train.epochs = 1;
    let reference = tmp("extend-ref");
    train(&two, &reference, &opts).unwrap();
    let dir = tmp("extend");
    train(&one, &dir, &opts).unwrap();

    // Finished: nothing to resume without more epochs.
    let e = resume(&dir, None, &opts, &none).unwrap_err().to_string();
    assert!(e.contains("nothing to do") && e.contains("--epochs"), "{e}");
    // A fresh run into it is refused, pointing at --resume.
    let e = train(&one, &dir, &opts).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("--resume"), "{e}");

    // Another method, another model shape, another hyper-parameter: refused, naming them.
    let mut other = two.clone();
    other.method = dgl_baselines::MethodConfig::new(MethodKind::Dgl);
    let e = resume(&dir, Some(&other), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("method `vanilla`, not `dgl`"), "{e}");
    let mut other = two.clone();
    other.model.base_width = 4;
    let e = resume(&dir, Some(&other), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("`model.base_width`: 2 in the checkpoint, 4 now"), "{e}");
    let mut other = two.clone();
    other.train.optimizer.lr = 0.5;
    other.seed = 7;
    let e = resume(&dir, Some(&other), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("`train.optimizer.lr`") && e.contains("`seed`") && e.contains("train.epochs"), "{e}");

    // Weights of another shape under this configuration's name: refused by the shape check.
    let wide_dir = tmp("extend-wide");
    let mut wide = one.clone();
    wide.model.base_width = 4;
    train(&wide, &wide_dir, &opts).unwrap();
    let saved = std::fs::read(dir.join(RunDir::CHECKPOINT)).unwrap();
    let mine = Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap();
    let theirs = Checkpoint::load(&wide_dir.join(RunDir::CHECKPOINT)).unwrap();
    Checkpoint { meta: mine.meta.clone(), tensors: theirs.tensors }.save(&dir.join(RunDir::CHECKPOINT)).unwrap();
    let e = resume(&dir, Some(&two), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("does not fit the model") && e.contains("shape"), "{e}");
    // A damaged file and a safetensors file that is no dgl checkpoint: clear errors.
    std::fs::write(dir.join(RunDir::CHECKPOINT), &saved[..saved.len() / 2]).unwrap();
    let e = resume(&dir, Some(&two), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("cannot use this checkpoint") && e.contains("damaged"), "{e}");
    let plain: HashMap<String, candle_core::Tensor> = mine.model_tensors();
    candle_core::safetensors::save(&plain, dir.join(RunDir::CHECKPOINT)).unwrap();
    let e = resume(&dir, Some(&two), &opts, &none).unwrap_err().to_string();
    assert!(e.contains("not a dgl checkpoint"), "{e}");

    // Back to the real checkpoint: more epochs continue to exactly the longer run.
    std::fs::write(dir.join(RunDir::CHECKPOINT), &saved).unwrap();
    let out = resume(&dir, Some(&two), &opts, &none).unwrap();
    assert_eq!(out.epochs.len(), 2);
    assert_same_run(&reference, &dir);
    assert_eq!(read_metrics(&dir.join(RunDir::METRICS_JSONL)).unwrap().len(), 2);

    // Missing directory, directory without a checkpoint.
    let e = resume(&tmp("nowhere"), None, &opts, &none).unwrap_err().to_string();
    assert!(e.contains("no such run directory"), "{e}");
    let empty = tmp("no-checkpoint");
    std::fs::create_dir_all(&empty).unwrap();
    let e = resume(&empty, None, &opts, &none).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    for d in [reference, dir, wide_dir, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The MMTM dense-fusion model resumes bit-identically too (its blocks, later stages and BatchNorm
/// statistics are in the checkpoint).
#[test]
fn resume_is_bit_identical_for_dgl_on_mmtm() {
    let cfg = micro(MethodKind::Dgl).with_key("model.fusion", "mmtm".into()).unwrap();
    interrupted_run_matches(MethodKind::Dgl, &cfg, &STOPS);
}
