//! The real binary, interrupted: Ctrl-C (SIGINT) checkpoints and exits 130; `kill -9` at random
//! moments and in the middle of checkpoint writes always leaves a loadable checkpoint; resuming
//! after all that ends bit-identical to an uninterrupted run (weights, optimizer, method RNG,
//! metrics without wall time, step diagnostics).
#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_run, tmp};
use dgl_cli::checkpoint::{read_meta, Checkpoint};
use dgl_cli::config::TrainConfig;
use dgl_cli::run_dir::RunDir;
use dgl_cli::{train, RunOptions};

const EPOCHS: usize = 10;

// One step per epoch (8 samples, batch 8), so checkpoints are written often; OGM-GE draws random
// noise during training (its generator is part of the checkpoint); diagnostics every step.
const CONFIG: &str = r#"
[method]
name = "ogm-ge"
[data.dataset]
n_train = 8
n_test = 6
[model]
base_width = 2
[train]
epochs = 10
batch_size = 8
diagnostics_every = 1
"#;

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dgl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dgl")
}

fn wait_for(mut cond: impl FnMut() -> bool, child: &mut Child, limit: Duration) {
    let t = Instant::now();
    while !cond() && t.elapsed() < limit && child.try_wait().unwrap().is_none() {
        std::hint::spin_loop();
    }
}

fn finished(dir: &Path) -> bool {
    read_meta(&dir.join(RunDir::CHECKPOINT)).is_ok_and(|m| m.epoch == EPOCHS && m.progress.is_none())
}

#[test]
fn ctrl_c_and_kill_9_never_lose_work() {
    let cfg_path = tmp("crash.toml");
    std::fs::write(&cfg_path, CONFIG).unwrap();
    let cfg = TrainConfig::from_toml_file(&cfg_path).unwrap();
    assert_eq!(cfg.train.epochs, EPOCHS);
    let reference = tmp("crash-ref");
    train(&cfg, &reference, &RunOptions::default()).unwrap();

    let dir = tmp("crash");
    let d = dir.to_str().unwrap().to_string();
    let ckpt = dir.join(RunDir::CHECKPOINT);
    let partial = dir.join(format!(".{}.tmp", RunDir::CHECKPOINT));

    // Ctrl-C once the first checkpoint exists: the current step finishes, a checkpoint is
    // written, the exit status is 130 and the message says how to resume.
    let mut child = spawn(&["train", "--config", cfg_path.to_str().unwrap(), "--out", &d, "--quiet"]);
    wait_for(|| ckpt.exists(), &mut child, Duration::from_secs(120));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("checkpoint written") && err.contains(&format!("dgl train --resume {d}")), "{err}");
    let meta = Checkpoint::load(&ckpt).unwrap().meta;
    assert!(meta.epoch < EPOCHS, "interrupted {}", meta.position());

    // kill -9: alternately as soon as a checkpoint write has begun (its temporary file exists)
    // and at a random moment. The checkpoint in place must always load, and never go backwards.
    let mut rng = dgl_core::rng::Rng::new(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    );
    let mut during_write = 0;
    for round in 0..8 {
        if finished(&dir) {
            break;
        }
        let before = read_meta(&ckpt).unwrap();
        let _ = std::fs::remove_file(&partial);
        let mut child = spawn(&["train", "--resume", &d, "--quiet"]);
        if round % 2 == 0 {
            wait_for(|| partial.exists(), &mut child, Duration::from_secs(60));
        } else {
            let ms = 100 + rng.below(1400) as u64;
            std::thread::sleep(Duration::from_millis(ms));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if partial.exists() {
            during_write += 1;
        }
        let after = Checkpoint::load(&ckpt)
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint does not load after kill -9: {e}"));
        assert!(after.meta.global_step >= before.global_step, "round {round}");
    }
    eprintln!("{during_write} of the kills landed while a checkpoint was being written");

    // Finish and compare with the uninterrupted run.
    if !finished(&dir) {
        let out = spawn(&["train", "--resume", &d, "--quiet"]).wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_same_run(&reference, &dir);
    let _ = std::fs::remove_dir_all(&reference);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&cfg_path);
}
