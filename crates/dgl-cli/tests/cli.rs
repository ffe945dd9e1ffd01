//! The `dgl` binary refuses bad options before any work (exit status 2, a message naming the
//! problem) and never writes into a directory it was not asked to.

mod common;

use std::process::{Command, Output};

use common::tmp;

fn dgl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dgl")).args(args).output().expect("run dgl")
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = dgl(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in: {err}");
    }
}

#[test]
fn bad_options_fail_before_any_work() {
    let out = tmp("cli-bad");
    let o = out.to_str().unwrap();
    fails_with(&["train", "--out", o, "--batch-size", "0"], &["batch_size"]);
    fails_with(&["train", "--out", o, "--epochs", "0"], &["epochs"]);
    fails_with(&["train", "--out", o, "--lr", "0"], &["lr"]);
    // The former shared --alpha names each method's own option.
    fails_with(&["train", "--out", o, "--alpha", "2"], &["--alpha was removed", "--set method.unimodal_weight=2"]);
    fails_with(&["train", "--out", o, "--method", "vanilla", "--alpha", "1"], &["--alpha was removed", "`vanilla`"]);
    fails_with(&["train", "--out", o, "--set", "method.unimodal_weight=-1"], &["unimodal_weight"]);
    fails_with(&["train", "--out", o, "--set", "method.nope=1"], &["method.nope"]);
    fails_with(&["train", "--out", o, "--only", "text"], &["--only text", "\"audio\", \"visual\""]);
    fails_with(&["train", "--out", o, "--method", "ogmge"], &["unknown method `ogmge`", "ogm-ge"]);
    fails_with(&["train", "--out", o, "--optimizer", "adam"], &["adamw"]);
    fails_with(&["train", "--out", o, "--optimizer", "adamw", "--weight-decay", "-1"], &["weight_decay"]);
    fails_with(&["eval", o], &["no checkpoint", "cli-bad"]);
    fails_with(&["eval", o, "--noise", "0"], &["--noise"]);
    if !cfg!(feature = "cuda") {
        fails_with(&["train", "--out", o, "--device", "cuda"], &["no CUDA support"]);
    }
    let bad = tmp("cli-bad.toml");
    std::fs::write(&bad, "[model]\nbase_widht = 4\n").unwrap();
    fails_with(&["train", "--out", o, "--config", bad.to_str().unwrap()], &["cli-bad.toml", "model.base_widht"]);
    std::fs::write(&bad, "[train.optimizer]\nmomentun = 0.9\n").unwrap();
    fails_with(&["train", "--out", o, "--config", bad.to_str().unwrap()], &["momentun"]);
    assert!(!out.exists(), "no run directory for a refused configuration");
    let _ = std::fs::remove_file(&bad);

    // --resume: missing directory, no checkpoint, conflicting flags.
    fails_with(&["train", "--resume", o], &["no such run directory"]);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("config.toml"), "").unwrap();
    fails_with(&["train", "--resume", o], &["no checkpoint"]);
    fails_with(&["train", "--resume", o, "--out", "elsewhere"], &["--out"]);
    // A non-empty directory is never replaced without --overwrite.
    fails_with(&["train", "--out", o], &["already exists", "--overwrite"]);
    assert!(out.join("config.toml").exists());
    let _ = std::fs::remove_dir_all(&out);
}
