//! Helpers shared by the run-safety tests: micro configurations and bit-level run comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::checkpoint::Checkpoint;
use dgl_cli::config::{Preset, TrainConfig};
use dgl_cli::run_dir::RunDir;

/// A configuration that trains in about a second: 32 / 12 samples, ResNet width 2, 2 epochs of
/// 4 steps of 8 samples (3 when a validation split is carved out), no step diagnostics.
pub fn micro(kind: MethodKind) -> TrainConfig {
    let mut cfg = TrainConfig::preset(Preset::Tiny);
    cfg.method = MethodConfig::new(kind);
    cfg.data.synthetic_mut().unwrap().n_train = 32;
    cfg.data.synthetic_mut().unwrap().n_test = 12;
    cfg.data.validation_fraction = 0.25;
    cfg.model.base_width = 2;
    cfg.train.epochs = 2;
    cfg.train.batch_size = 8;
    cfg.train.diagnostics_every = 0;
    cfg
}

/// A fresh, empty temporary path (not created).
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dgl-cli-runs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// CSV lines without their last field (`seconds`, the only wall-time column, is always last).
fn csv_without_seconds(text: &str) -> Vec<String> {
    text.lines().map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_string()).collect()
}

/// JSON lines without the `seconds` field (always last).
fn jsonl_without_seconds(text: &str) -> Vec<String> {
    text.lines().map(|l| l.rfind(",\"seconds\":").map_or(l, |i| &l[..i]).to_string()).collect()
}

/// Every tensor of two checkpoints is bit-identical (same names, dtypes, shapes and bytes).
pub fn assert_same_tensors(a: &Path, b: &Path, skip: &[&str]) {
    let (ba, bb) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let sa = safetensors::SafeTensors::deserialize(&ba).unwrap();
    let sb = safetensors::SafeTensors::deserialize(&bb).unwrap();
    let mut na: Vec<String> =
        sa.names().into_iter().filter(|n| !skip.iter().any(|s| n.starts_with(s))).map(|n| n.to_string()).collect();
    let mut nb: Vec<String> =
        sb.names().into_iter().filter(|n| !skip.iter().any(|s| n.starts_with(s))).map(|n| n.to_string()).collect();
    na.sort();
    nb.sort();
    assert_eq!(na, nb, "tensor names differ between {} and {}", a.display(), b.display());
    for n in &na {
        let (ta, tb) = (sa.tensor(n).unwrap(), sb.tensor(n).unwrap());
        assert_eq!(ta.dtype(), tb.dtype(), "{n}");
        assert_eq!(ta.shape(), tb.shape(), "{n}");
        assert!(ta.data() == tb.data(), "tensor `{n}` differs between {} and {}", a.display(), b.display());
    }
}

/// Two finished runs are the same to the bit: final weights, BatchNorm statistics, optimizer and
/// method state, metrics (but wall time) and the step diagnostics.
pub fn assert_same_run(reference: &Path, other: &Path) {
    assert_same_tensors(&reference.join(RunDir::CHECKPOINT), &other.join(RunDir::CHECKPOINT), &[]);
    let ca = Checkpoint::load(&reference.join(RunDir::CHECKPOINT)).unwrap().meta;
    let cb = Checkpoint::load(&other.join(RunDir::CHECKPOINT)).unwrap().meta;
    assert_eq!((ca.epoch, ca.global_step, &ca.progress), (cb.epoch, cb.global_step, &cb.progress));
    assert_eq!(ca.config_toml, cb.config_toml);
    assert_eq!(
        csv_without_seconds(&read(&reference.join(RunDir::METRICS_CSV))),
        csv_without_seconds(&read(&other.join(RunDir::METRICS_CSV))),
        "metrics.csv"
    );
    assert_eq!(
        jsonl_without_seconds(&read(&reference.join(RunDir::METRICS_JSONL))),
        jsonl_without_seconds(&read(&other.join(RunDir::METRICS_JSONL))),
        "metrics.jsonl"
    );
    let steps = |d: &Path| std::fs::read_to_string(d.join(RunDir::STEPS_CSV)).unwrap_or_default();
    assert_eq!(steps(reference), steps(other), "steps.csv");
    assert_eq!(read(&reference.join(RunDir::CONFIG)), read(&other.join(RunDir::CONFIG)), "config.toml");
}
