//! `dgl` — train DGL and the methods it is compared with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dgl_cli::config::{DatasetKind, DeviceKind, Preset, TrainConfig};
use dgl_cli::train::{train, RunOptions};

#[derive(Parser)]
#[command(name = "dgl", version, about = "Disentangled Gradient Learning (ICCV 2025) and its baselines on candle")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one method on one dataset; writes config.toml, metrics.csv/jsonl and a checkpoint.
    Train(TrainArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// vanilla (concat), dgl, dgl-mt, dgl-ut, audio-only, visual-only, gblending, gblending-ogr,
    /// ogm, ogm-ge, pmr, agm, mla, mmpareto, dnr
    #[arg(long, default_value = "dgl")]
    method: String,
    #[arg(long, value_enum, default_value = "synthetic")]
    dataset: DatasetKind,
    /// Dataset root directory (on-disk datasets).
    #[arg(long)]
    root: Option<PathBuf>,
    /// tiny: CPU-sized model and schedule; paper: the paper's ResNet-18 pair and schedule.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Weight α of the unimodal losses.
    #[arg(long)]
    alpha: Option<f64>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum)]
    device: Option<DeviceKind>,
    /// A TOML configuration (see `config.toml` in any run directory); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory (default runs/<method>-<dataset>-<preset>-s<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a non-empty run directory.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    quiet: bool,
}

fn resolve(a: &TrainArgs) -> dgl_cli::Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(p) => TrainConfig::from_toml_file(p)?,
        None => TrainConfig::preset(a.preset.unwrap_or_default()),
    };
    if let (Some(p), Some(_)) = (a.preset, &a.config) {
        if p != cfg.preset {
            return Err(dgl_cli::CliError::Config(format!(
                "--preset {p:?} disagrees with the configuration file's preset {:?}",
                cfg.preset
            )));
        }
    }
    let kind: dgl_baselines::MethodKind = a.method.parse().map_err(|e: dgl_core::Error| dgl_cli::CliError::Config(e.to_string()))?;
    if kind != cfg.method.name {
        // A different method than the file's: its own defaults, keeping the file's sub-tables.
        cfg.method.name = kind;
        cfg.method.alpha = None;
    }
    cfg.data.dataset = a.dataset;
    if a.root.is_some() {
        cfg.data.root = a.root.clone();
    }
    if let Some(x) = a.alpha {
        cfg.method.alpha = Some(x);
    }
    if let Some(x) = a.epochs {
        cfg.train.epochs = x;
    }
    if let Some(x) = a.batch_size {
        cfg.train.batch_size = x;
    }
    if let Some(x) = a.lr {
        cfg.train.optimizer.lr = x;
    }
    if let Some(x) = a.seed {
        cfg.seed = x;
    }
    if let Some(x) = a.device {
        cfg.device = x;
    }
    Ok(cfg)
}

fn run_train(a: TrainArgs) -> dgl_cli::Result<()> {
    let cfg = resolve(&a)?;
    cfg.validate()?;
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{:?}-{:?}-s{}",
            cfg.method.name,
            cfg.data.dataset,
            cfg.preset,
            cfg.seed
        ).to_lowercase())
    });
    if !a.quiet {
        println!(
            "dgl train: method {} (alpha {:?}), dataset {:?}, preset {:?}, seed {}, device {:?} → {}",
            cfg.method.name, cfg.method.effective_alpha(), cfg.data.dataset, cfg.preset, cfg.seed, cfg.device, out.display()
        );
    }
    let opts = RunOptions { progress: !a.quiet, verbose: !a.quiet, overwrite: a.overwrite };
    let outcome = train(&cfg, &out, &opts)?;
    let last = outcome.last();
    let best = outcome
        .epochs
        .iter()
        .max_by(|a, b| a.get("test_acc").unwrap_or(0.0).total_cmp(&b.get("test_acc").unwrap_or(0.0)))
        .unwrap_or(last);
    let fmt = |r: &dgl_cli::run_dir::Row| {
        let mut s = format!("multimodal {:.2}%", 100.0 * r.get("test_acc").unwrap_or(f64::NAN));
        for c in &outcome.branch_columns {
            s += &format!(", {} {:.2}%", c.trim_start_matches("test_acc_"), 100.0 * r.get(c).unwrap_or(f64::NAN));
        }
        s
    };
    println!("final (epoch {}): {}", last.get("epoch").unwrap_or(0.0), fmt(last));
    println!(
        "best test epoch {} (selected on the test set, the paper's protocol): {}",
        best.get("epoch").unwrap_or(0.0),
        fmt(best)
    );
    println!("run directory: {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Train(a) => run_train(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
