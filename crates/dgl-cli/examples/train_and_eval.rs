//! The whole pipeline as a library: a configuration built in code, one training run of each of two
//! methods, and the evaluation report of each (`dgl train` + `dgl eval` without the command line).
//!
//! ```bash
//! cargo run --release -p dgl-cli --example train_and_eval            # about a minute on 2 cores
//! ```
//!
//! The embedded default dataset (no files), the tiny preset shortened to 4 epochs; runs are
//! written under `runs/example-*` (config.toml, metrics, checkpoint, environment, eval.md).

use std::path::PathBuf;

use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{Preset, TrainConfig};
use dgl_cli::eval::{eval_run, EvalOptions};
use dgl_cli::{train, RunOptions};

fn main() -> dgl_cli::Result<()> {
    for kind in [MethodKind::Vanilla, MethodKind::Dgl] {
        // Every field of the configuration is a plain struct field with a default (burn-style);
        // the run directory gets the resolved configuration as config.toml.
        let mut cfg = TrainConfig::preset(Preset::Tiny);
        cfg.method = MethodConfig::new(kind);
        cfg.train.epochs = 4;
        cfg.validate()?;
        let out = PathBuf::from("runs").join(format!("example-{kind}"));
        let outcome = train(&cfg, &out, &RunOptions { overwrite: true, progress: false, verbose: false })?;
        let last = outcome.last();
        println!(
            "{kind}: test accuracy after {} epochs {:.2}% ({})",
            cfg.train.epochs,
            100.0 * last.get("test_acc").unwrap_or(f64::NAN),
            out.display()
        );
        // The evaluation report: macro-F1, Shapley contributions, robustness, linear probes.
        let report = eval_run(&out, &EvalOptions { probe: true, ..EvalOptions::default() })?;
        for c in &report.contributions {
            println!("  Shapley value of {}: {:.2} points", c.modality, 100.0 * c.shapley);
        }
        for p in &report.probes {
            println!("  linear probe on {} ({} features): {:.2}%", p.features, p.dim, 100.0 * p.test_accuracy);
        }
    }
    Ok(())
}
