//! `dgl` — train DGL and the methods it is compared with.
//!
//! Exit status: 0 success; 2 a configuration, I/O or other error; 3 a NaN / infinite loss or
//! gradient stopped training (the last checkpoint is kept); 130 interrupted by Ctrl-C / SIGTERM
//! after writing a checkpoint (continue with `dgl train --resume RUN_DIR`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use dgl_cli::checkpoint::read_meta;
use dgl_cli::config::{DeviceKind, Preset, TrainConfig};
use dgl_cli::run_dir::RunDir;
use dgl_cli::train::{resume, train_with, RunControl, RunOptions};
use dgl_cli::CliError;
use dgl_core::OptimizerKind;

/// mimalloc instead of glibc malloc: the per-item buffers (spectrograms, activations) are large
/// enough that glibc returns them to the OS after every item and page-faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dgl", version, about = "Disentangled Gradient Learning (ICCV 2025) and its baselines on candle")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one method on one dataset; writes config.toml, metrics.csv/jsonl and a checkpoint.
    /// Ctrl-C stops after the current step with a checkpoint; `--resume RUN_DIR` continues it.
    Train(Box<TrainArgs>),
    /// Draw the figures of a run (accuracies, gradient sources, s statistic) into RUN_DIR/plots/.
    Plot {
        /// Run directories (each gets its own plots/).
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
    },
    /// The evaluation report of a run's checkpoint on the test split: accuracy and macro-F1 of every
    /// head, modality contributions (Shapley values), robustness to a zeroed or noisy modality, and
    /// (--probe) linear probes of the frozen encoders; for a segmentation run mIoU, pixel accuracy
    /// and per-class IoU of every head, contributions and robustness in mIoU. Writes
    /// RUN_DIR/eval.json and eval.md.
    Eval {
        /// Run directories (each gets its own eval.json / eval.md).
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// Noise levels σ, in units of the input's standard deviation.
        #[arg(long, value_delimiter = ',', default_value = "0.5,1,2")]
        noise: Vec<f64>,
        /// Also fit linear probes on the frozen encoders' features.
        #[arg(long)]
        probe: bool,
        /// Evaluate on this device instead of the run's.
        #[arg(long, value_enum)]
        device: Option<DeviceKind>,
    },
    /// Decode and transform an on-disk dataset once into a cache (train and test splits, in
    /// parallel); train from it with `--dataset cached --root OUT`. Fails with a report of missing /
    /// corrupt items per split and class unless --skip-bad.
    Prepare {
        /// cremad, ks, vggsound, av-digits or generic (the layout's default options).
        #[arg(long, value_parser = parse_dataset_kind)]
        dataset: String,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Leave out missing / corrupt items (counted in the report) instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adamw,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long, help = method_help(), long_help = method_long_help())]
    method: Option<String>,
    /// Train a unimodal model of this modality only (keeps that entry of model.modalities; the
    /// unimodal baselines are `--method vanilla --only audio` / `--only visual`).
    #[arg(long, value_name = "MODALITY")]
    only: Option<String>,
    /// Set any configuration key, e.g. `--set method.unimodal_weight=2`, `--set train.drop_last=false`
    /// (the value is TOML; repeatable; applied after the other flags).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// synthetic, cremad, ks, vggsound, av-digits, generic or cached: that layout with its
    /// default options (a --config file's [data.dataset] is kept when it is of that kind)
    #[arg(long, value_parser = parse_dataset_kind)]
    dataset: Option<String>,
    /// Dataset root directory (on-disk datasets).
    #[arg(long)]
    root: Option<PathBuf>,
    /// tiny: CPU-sized model and schedule; paper: the paper's ResNet-18 pair and schedule. With
    /// --config, the base of every key the file leaves out (when the file sets no `preset`).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Removed: each method names its own options (`--set method.unimodal_weight=2` for DGL).
    #[arg(long, hide = true, allow_negative_numbers = true)]
    alpha: Option<f64>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// sgd (the paper's) or adamw (train.optimizer.kind; β1/β2/ε in the config file).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// A torchvision ResNet-18/34 state_dict (.safetensors, or a torch.save .pth) loaded into every
    /// ResNet encoder before training (model.pretrained; docs/pretrained.md).
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    #[arg(long, value_enum)]
    device: Option<DeviceKind>,
    /// A TOML configuration (see `config.toml` in any run directory); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory (default runs/METHOD-DATASET-PRESET-sSEED).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Replace an existing run directory (one `dgl` wrote; anything else is refused). The old run
    /// stays in place until the new one has written its first checkpoint.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Continue the run in RUN_DIR from its checkpoint, with its own configuration (flags may only
    /// raise --epochs or add --skip-non-finite / --tf32).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Skip (and count in `skipped_steps`) steps with a NaN / infinite loss or gradient instead of
    /// stopping the run.
    #[arg(long)]
    skip_non_finite: bool,
    /// On CUDA, TF32 tensor cores for f32 matrix products and convolutions (train.tf32).
    #[arg(long)]
    tf32: bool,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    quiet: bool,
}

fn resolve(a: &TrainArgs) -> dgl_cli::Result<TrainConfig> {
    let mut cfg = match (&a.config, &a.resume) {
        (Some(p), _) => TrainConfig::from_toml_file_with_preset(p, a.preset)?,
        (None, Some(dir)) => {
            let path = dir.join(RunDir::CHECKPOINT);
            if !dir.is_dir() {
                return Err(CliError::Run(format!("--resume {}: no such run directory", dir.display())));
            }
            if !path.is_file() {
                return Err(CliError::Run(format!(
                    "--resume {}: there is no checkpoint ({}) in it — the run stopped before its first checkpoint \
                     was written; start it again (with --overwrite)",
                    dir.display(),
                    RunDir::CHECKPOINT
                )));
            }
            read_meta(&path)?.config()?
        }
        (None, None) => TrainConfig::preset(a.preset.unwrap_or_default()),
    };
    if let (Some(p), true) = (a.preset, a.config.is_some() || a.resume.is_some()) {
        if p != cfg.preset {
            return Err(CliError::Config(format!(
                "--preset {p:?} disagrees with the configuration's preset {:?}",
                cfg.preset
            )));
        }
    }
    let method = match (&a.method, a.config.is_some() || a.resume.is_some()) {
        (Some(m), _) => Some(m.as_str()),
        (None, true) => None,
        (None, false) => Some("dgl"),
    };
    if let Some(m) = method {
        let kind: dgl_baselines::MethodKind =
            m.parse().map_err(|e: dgl_core::Error| CliError::Config(e.to_string()))?;
        if kind != cfg.method.kind() {
            // A different method than the file's: its own defaults.
            cfg.method = dgl_baselines::MethodConfig::new(kind);
        }
    }
    if let Some(name) = &a.only {
        let have: Vec<&str> = cfg.model.modalities.iter().map(|m| m.name.as_str()).collect();
        cfg.model = cfg.model.unimodal(name).ok_or_else(|| {
            CliError::Config(format!("--only {name}: the model has no `{name}` modality (model.modalities: {have:?})"))
        })?;
    }
    if let Some(d) = &a.dataset {
        let kind: dgl_data::DatasetKind = d.parse()?;
        if kind != cfg.data.dataset.kind() {
            // Another layout: its defaults (the options of one layout mean nothing to another).
            cfg.data.dataset = dgl_data::DatasetSpec::from_kind(d, a.root.clone())?;
        }
    }
    if let Some(root) = &a.root {
        cfg.data.dataset.set_root(root.clone()).map_err(|e| CliError::Config(format!("--root: {e}")))?;
    }
    if let Some(x) = a.alpha {
        let key = dgl_baselines::registry::former_alpha(cfg.method.kind());
        return Err(CliError::Config(match key {
            Some(k) => format!("--alpha was removed: each method names its own options; use --set method.{k}={x}"),
            None => format!("--alpha was removed, and `{}` has no option it stood for", cfg.method.name()),
        }));
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
    if let Some(x) = a.optimizer {
        cfg.train.optimizer.kind = match x {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Adamw => OptimizerKind::AdamW,
        };
    }
    if let Some(x) = a.weight_decay {
        cfg.train.optimizer.weight_decay = x;
    }
    if let Some(x) = a.seed {
        cfg.seed = x;
    }
    if let Some(x) = &a.pretrained {
        cfg.model.pretrained = Some(x.clone());
    }
    if let Some(x) = a.device {
        cfg.device = x;
    }
    if a.skip_non_finite {
        cfg.train.skip_non_finite = true;
    }
    if a.tf32 {
        cfg.train.tf32 = true;
    }
    for spec in &a.set {
        let (key, value) = dgl_cli::config::parse_assignment(spec)?;
        cfg = cfg.with_key(&key, value).map_err(|e| CliError::Config(format!("--set {e}")))?;
    }
    Ok(cfg)
}

/// candle attaches a backtrace to every error it creates whenever `RUST_BACKTRACE` is set, and its
/// message prints it: an error for a bad input would read like a crash. Unless the user asks for
/// them with `RUST_LIB_BACKTRACE` (e.g. `RUST_LIB_BACKTRACE=1` to debug), error values carry none;
/// panics still print theirs under `RUST_BACKTRACE`.
fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Edition 2021, first statement of main: no other thread reads the environment yet.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Ctrl-C / SIGTERM: the first asks the run to stop after the current step with a checkpoint; a
/// second one exits at once (the previous checkpoint stays valid: checkpoints are atomic).
fn install_stop_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let r = ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting now without a new checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint (interrupt again to exit at once)");
    });
    if let Err(e) = r {
        eprintln!("warning: cannot handle Ctrl-C ({e}); an interrupted run resumes from its last epoch checkpoint");
    }
    stop
}

/// The method's name, and the modality of a unimodal model (`vanilla-audio`).
fn run_label(cfg: &TrainConfig) -> String {
    match cfg.model.modalities.as_slice() {
        [only] => format!("{}-{}", cfg.method.name(), only.name),
        _ => cfg.method.name().to_string(),
    }
}

/// The method's options, `key = value, …` (or "no options").
fn method_options(method: &dgl_baselines::MethodConfig) -> String {
    let v = toml::Value::try_from(method).ok();
    let opts: Vec<String> = v
        .iter()
        .filter_map(|v| v.as_table())
        .flatten()
        .filter(|(k, _)| k.as_str() != "name")
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if opts.is_empty() {
        "no options".into()
    } else {
        opts.join(", ")
    }
}

fn run_train(a: TrainArgs, stop: Arc<AtomicBool>) -> dgl_cli::Result<()> {
    let cfg = resolve(&a)?;
    cfg.validate()?;
    let out = match (&a.resume, &a.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => PathBuf::from("runs").join(
            format!("{}-{}-{:?}-s{}", run_label(&cfg), cfg.data.dataset.kind_name(), cfg.preset, cfg.seed)
                .to_lowercase(),
        ),
    };
    if !a.quiet {
        println!(
            "dgl train: method {} ({}), dataset {}, preset {:?}, seed {}, device {:?} → {}",
            run_label(&cfg),
            method_options(&cfg.method),
            cfg.data.dataset.kind_name(),
            cfg.preset,
            cfg.seed,
            cfg.device,
            out.display()
        );
    }
    let opts = RunOptions { progress: !a.quiet, verbose: !a.quiet, overwrite: a.overwrite };
    let control = RunControl { stop: Some(stop), ..RunControl::default() };
    let outcome = match &a.resume {
        Some(dir) => resume(dir, Some(&cfg), &opts, &control)?,
        None => train_with(&cfg, &out, &opts, &control)?,
    };
    let last = outcome.last();
    let key = format!("test_{}", outcome.score);
    let best = outcome
        .epochs
        .iter()
        .max_by(|a, b| a.get(&key).unwrap_or(0.0).total_cmp(&b.get(&key).unwrap_or(0.0)))
        .unwrap_or(last);
    let what = if outcome.score == "miou" { "mIoU " } else { "" };
    let fmt = |r: &dgl_cli::run_dir::Row| {
        let mut s = format!("multimodal {what}{:.2}%", 100.0 * r.get(&key).unwrap_or(f64::NAN));
        for c in &outcome.branch_columns {
            let name = c.trim_start_matches(&format!("{key}_")).to_string();
            s += &format!(", {name} {:.2}%", 100.0 * r.get(c).unwrap_or(f64::NAN));
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
    if outcome.score == "miou" {
        println!(
            "next: `dgl plot {0}` (figures, predictions), `dgl eval {0}` (per-class IoU, modality contributions, \
             robustness)",
            out.display()
        );
    } else {
        println!(
            "next: `dgl plot {0}` (figures), `dgl eval {0} --probe` (F1, modality contributions, robustness, probes)",
            out.display()
        );
    }
    Ok(())
}

fn run_plot(dirs: &[PathBuf]) -> dgl_cli::Result<()> {
    for d in dirs {
        let files = dgl_cli::plot::plot_run(Path::new(d))?;
        for f in files {
            println!("{}", f.display());
        }
    }
    Ok(())
}

/// `--dataset NAME`: a layout name or alias (`crema-d`, `kinetics-sounds`, `avdigits`, …).
/// `--method`'s help: the registered methods (from their descriptors).
fn method_help() -> String {
    let names: Vec<&str> = dgl_baselines::MethodKind::ALL.iter().map(|k| k.as_str()).collect();
    format!(
        "{} [default: dgl, or the --config file's method]; its options with --set method.KEY=VALUE",
        names.join(", ")
    )
}

/// `--method`'s long help: each method's name, aliases and summary (`dgl train --help`).
fn method_long_help() -> String {
    let mut s = String::from("The training method [default: dgl, or the --config file's method]:\n");
    for &k in dgl_baselines::MethodKind::ALL {
        let d = k.descriptor();
        let aliases = k.aliases();
        let alias = if aliases.is_empty() { String::new() } else { format!(" (also {})", aliases.join(", ")) };
        s += &format!("  {}{alias}: {}\n", d.name, d.summary);
    }
    s + "Its options: --set method.KEY=VALUE (docs/methods.md). A unimodal model: --method vanilla --only MODALITY."
}

fn parse_dataset_kind(s: &str) -> Result<String, String> {
    s.parse::<dgl_data::DatasetKind>().map(|_| s.to_string()).map_err(|e| e.to_string())
}

fn run_prepare(dataset: &str, root: &std::path::Path, out: &std::path::Path, skip_bad: bool) -> dgl_cli::Result<()> {
    use dgl_data::datasets::{prepare, PrepareError};
    use dgl_data::DatasetKind;
    let kind: DatasetKind = dataset.parse()?;
    if !kind.on_disk() || kind == DatasetKind::Cached {
        return Err(dgl_cli::CliError::Config(format!("`dgl prepare` is for on-disk datasets, not {kind}")));
    }
    let mut spec = dgl_data::DatasetSpec::from_kind(dataset, Some(root.to_path_buf()))?;
    spec.set_skip_bad(skip_bad);
    for split in [dgl_data::Split::Train, dgl_data::Split::Test] {
        let (ds, open_report) = spec.open(split)?;
        let pb = indicatif::ProgressBar::new(ds.len() as u64);
        pb.set_message(format!("{split:?}"));
        let report = prepare(ds.as_ref(), split, out, skip_bad, &|done, _total| pb.set_position(done as u64));
        pb.finish_and_clear();
        match report {
            Ok(r) => println!("opening the layout: {open_report}decoding into the cache: {r}"),
            Err(PrepareError::Bad(r)) => {
                return Err(dgl_cli::CliError::Run(format!(
                    "{split:?}: missing or corrupt items (re-run with --skip-bad to leave them out):\n{r}"
                )))
            }
            Err(e) => return Err(dgl_cli::CliError::Run(e.to_string())),
        }
    }
    println!("cache written to {}: train with `dgl train --dataset cached --root {}`", out.display(), out.display());
    Ok(())
}

fn main() -> ExitCode {
    // Before any tensor op: candle's own CPU ops on the calling thread, the project's kernels on
    // rayon's pool (no second pool of spinning workers; see dgl_models::kernels).
    dgl_models::kernels::configure_cpu_training();
    quiet_error_backtraces();
    let cli = Cli::parse();
    // The command runs on a worker of rayon's pool, so that the CPU kernels' parallel loops are
    // fork-joins inside the pool instead of hand-offs from this thread (dgl_models::kernels).
    let r = dgl_models::kernels::on_cpu_pool(move || match cli.command {
        Command::Train(a) => run_train(*a, install_stop_handler()),
        Command::Plot { run_dirs } => run_plot(&run_dirs),
        Command::Eval { run_dirs, noise, probe, device } => {
            let opts = dgl_cli::eval::EvalOptions { noise, probe, device };
            run_dirs.iter().try_for_each(|d| {
                dgl_cli::eval::evaluate(d, &opts).map(|r| {
                    print!("{}", r.markdown());
                    println!("\nwritten: {}, {}\n", d.join("eval.json").display(), d.join("eval.md").display());
                })
            })
        }
        Command::Prepare { dataset, root, out, skip_bad } => run_prepare(&dataset, &root, &out, skip_bad),
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CliError::Interrupted(_)) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e @ CliError::NonFinite(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
