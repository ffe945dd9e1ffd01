//! `cargo xtask reproduce-table1 | reproduce-table3 | reproduce-table4`: train every row of a paper
//! table over several seeds through the one training loop and write the table beside the paper's
//! numbers (Markdown, CSV, JSON). Finished runs are never redone.

mod cuda;
mod eval_table;
mod paper;
mod protocol;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{DatasetKind, DeviceKind, Preset, TrainConfig};
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{train, RunOptions};

use table::{Cell, Protocol, Table, TableRow};

/// mimalloc instead of glibc malloc: the per-item buffers (spectrograms, activations) are large
/// enough that glibc returns them to the OS after every item and page-faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Table 1: every method (Multi / Audio / Visual, mean ± std over seeds).
    ReproduceTable1(Common),
    /// Table 3: plain / +MT / +UT / DGL.
    ReproduceTable3(Common),
    /// Table 4: α = 1..5 for DGL and fixed-weight G-Blending.
    ReproduceTable4(Common),
    /// Build `dgl` and `step-bench` with CUDA (no GPU needed here) into gpu-bundle/ (docs/gpu.md).
    CudaBuild {
        /// Also link cuDNN (candle's `cudnn` feature: cuDNN forward convolutions).
        #[arg(long)]
        cudnn: bool,
    },
}

#[derive(clap::Args, Clone)]
struct Common {
    #[arg(long, value_enum, default_value = "synthetic")]
    dataset: DatasetKind,
    #[arg(long)]
    root: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    #[arg(long, value_enum, default_value = "tiny")]
    preset: Preset,
    #[arg(long, value_enum)]
    device: Option<DeviceKind>,
    /// Independent runs side by side; on the CPU the cores are split between them (each run gets
    /// its own thread pool of cores / jobs threads, which beats one shared pool on a few cores).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Override the preset's number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Results directory (default results/TABLE-DATASET-PRESET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The paper's protocol: best epoch chosen on the test set (optimistic), every run trained on
    /// the whole training split (no validation carve-out) unless its method needs a validation
    /// split (D&R, G-Blending OGR). Default: a validation split carved from the training set for
    /// every run, which selects the epoch.
    #[arg(long)]
    paper_protocol: bool,
    /// Only these rows (comma-separated labels, e.g. `Concat,DGL`); the table is then written as
    /// table-ROWS.{md,csv,json} beside the full one.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// reproduce-table4 only: the α values to sweep (default the paper's 1,2,3,4,5), e.g.
    /// `--alphas 0.5,1,2,4,8` — the DGL authors note the best α depends on the software stack.
    #[arg(long, value_delimiter = ',')]
    alphas: Vec<f64>,
    /// Also evaluate every run's final checkpoint (`dgl eval --probe`: macro-F1, Shapley modality
    /// contributions, linear probes, robustness) and write TABLE-eval.md.
    #[arg(long)]
    eval: bool,
}

/// One run of a table: a row label, a method configuration and a seed.
struct Job {
    row: String,
    method: MethodConfig,
    seed: u64,
}

fn rows(cmd: &Cmd) -> Vec<(String, MethodConfig)> {
    let m = |k: MethodKind| MethodConfig::new(k);
    match cmd {
        Cmd::ReproduceTable1(_) => vec![
            ("Audio-only".into(), m(MethodKind::AudioOnly)),
            ("Visual-only".into(), m(MethodKind::VisualOnly)),
            ("Concat".into(), m(MethodKind::Vanilla)),
            ("G-Blending".into(), m(MethodKind::GBlending)),
            ("OGM-GE".into(), m(MethodKind::OgmGe)),
            ("PMR".into(), m(MethodKind::Pmr)),
            ("AGM".into(), m(MethodKind::Agm)),
            ("MLA".into(), m(MethodKind::Mla)),
            ("MMPareto".into(), m(MethodKind::MmPareto)),
            ("D&R".into(), m(MethodKind::Dnr)),
            ("DGL".into(), m(MethodKind::Dgl)),
        ],
        Cmd::ReproduceTable3(_) => vec![
            ("Baseline".into(), m(MethodKind::Vanilla)),
            ("+MT".into(), m(MethodKind::DglMt)),
            ("+UT".into(), m(MethodKind::DglUt)),
            ("DGL".into(), m(MethodKind::Dgl)),
        ],
        Cmd::ReproduceTable4(c) => {
            let alphas = if c.alphas.is_empty() { vec![1.0, 2.0, 3.0, 4.0, 5.0] } else { c.alphas.clone() };
            let mut v = Vec::new();
            for k in [MethodKind::Dgl, MethodKind::GBlending] {
                for &a in &alphas {
                    v.push((
                        format!("{} α={a}", if k == MethodKind::Dgl { "DGL" } else { "G-Blending" }),
                        MethodConfig::with_alpha(k, a),
                    ));
                }
            }
            v
        }
        Cmd::CudaBuild { .. } => Vec::new(),
    }
}

fn run(cmd: Cmd) -> Result<(), String> {
    if let Cmd::CudaBuild { cudnn } = cmd {
        return cuda::cuda_build(cudnn);
    }
    let (name, c) = match &cmd {
        Cmd::ReproduceTable1(c) => ("table1", c.clone()),
        Cmd::ReproduceTable3(c) => ("table3", c.clone()),
        Cmd::ReproduceTable4(c) => ("table4", c.clone()),
        Cmd::CudaBuild { .. } => unreachable!(),
    };
    if name != "table4" && !c.alphas.is_empty() {
        return Err(format!("--alphas applies to reproduce-table4 (the α sweep), not to {name}"));
    }
    if let Some(a) = c.alphas.iter().find(|a| !(a.is_finite() && **a >= 0.0)) {
        return Err(format!("--alphas: {a} is not a finite α >= 0"));
    }
    let dataset = format!("{:?}", c.dataset).to_lowercase();
    let preset = format!("{:?}", c.preset).to_lowercase();
    let out = c.out.clone().unwrap_or_else(|| PathBuf::from("results").join(format!("{name}-{dataset}-{preset}")));
    std::fs::create_dir_all(out.join("runs")).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut base = TrainConfig::preset(c.preset);
    base.data.dataset = c.dataset;
    base.data.root = c.root.clone();
    base.data.always_validate = protocol::always_validate(c.paper_protocol);
    if let Some(d) = c.device {
        base.device = d;
    }
    if let Some(e) = c.epochs {
        base.train.epochs = e;
    }
    let mut table_rows = rows(&cmd);
    if !c.rows.is_empty() {
        if let Some(bad) = c.rows.iter().find(|r| !table_rows.iter().any(|(l, _)| l == *r)) {
            let valid: Vec<&str> = table_rows.iter().map(|(l, _)| l.as_str()).collect();
            return Err(format!("no row `{bad}` in {name}; rows: {}", valid.join(", ")));
        }
        table_rows.retain(|(l, _)| c.rows.contains(l));
    }
    let stem = if c.rows.is_empty() {
        "table".to_string()
    } else {
        format!("table-{}", c.rows.iter().map(|r| slug(r)).collect::<Vec<_>>().join("-"))
    };
    let jobs: Vec<Job> = table_rows
        .iter()
        .flat_map(|(row, m)| (0..c.seeds).map(move |seed| Job { row: row.clone(), method: m.clone(), seed }))
        .collect();
    let run_dir = |j: &Job| out.join("runs").join(format!("{}-s{}", slug(&j.row), j.seed));
    let config_of = |j: &Job| {
        let mut cfg = base.clone();
        cfg.method = j.method.clone();
        cfg.seed = j.seed;
        cfg
    };
    for j in &jobs {
        config_of(j).validate().map_err(|e| format!("{}: {e}", j.row))?;
    }
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let total = jobs.len();
    // One worker: takes the next unfinished run until none is left.
    let run_jobs = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(j) = jobs.get(i) else { break };
        let dir = run_dir(j);
        let cfg = config_of(j);
        if is_finished(&dir, &cfg) {
            println!("[{}/{total}] {} seed {}: finished earlier, kept", i + 1, j.row, j.seed);
            continue;
        }
        let t = Instant::now();
        let opts = RunOptions { progress: false, verbose: false, overwrite: true };
        match train(&cfg, &dir, &opts) {
            Ok(o) => {
                let l = o.last();
                println!(
                    "[{}/{total}] {} seed {}: test {:.2}% ({:.0} s)",
                    i + 1,
                    j.row,
                    j.seed,
                    100.0 * l.get("test_acc").unwrap_or(f64::NAN),
                    t.elapsed().as_secs_f64()
                );
                let _ = std::fs::write(dir.join("DONE"), "");
            }
            Err(e) => errors.lock().unwrap().push(format!("{} seed {}: {e}", j.row, j.seed)),
        }
    };
    let n_jobs = c.jobs.max(1);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads_per_job = (cores / n_jobs).max(1);
    std::thread::scope(|s| {
        for _ in 0..n_jobs {
            s.spawn(|| {
                let pool = (n_jobs > 1)
                    .then(|| rayon::ThreadPoolBuilder::new().num_threads(threads_per_job).build().ok())
                    .flatten();
                match pool {
                    Some(p) => p.install(run_jobs),
                    None => run_jobs(),
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let protocol = if c.paper_protocol { Protocol::BestTest } else { Protocol::BestValidation };
    let mut table = Table {
        title: format!("{name} on {dataset} ({preset} preset, {} seed(s))", c.seeds),
        protocol,
        rows: Vec::new(),
    };
    let mut trained = Vec::new();
    for (row, _) in &table_rows {
        let mut cells: Vec<Cell> = Vec::new();
        let mut on = Vec::new();
        for j in jobs.iter().filter(|j| &j.row == row) {
            let rows = read_metrics(&run_dir(j).join(RunDir::METRICS_JSONL)).map_err(|e| e.to_string())?;
            cells.push(Cell::select(&rows, protocol).ok_or_else(|| format!("{row}: no metrics"))?);
            on.push(protocol::TrainedOn::of(&rows));
        }
        trained.push((row.clone(), on));
        let paper = paper::lookup(name, &dataset, row);
        table.rows.push(TableRow::aggregate(row, &cells, paper));
    }
    let md = table.markdown() + &protocol::note(c.paper_protocol, &trained);
    println!("\n{md}");
    let w = |f: &str, s: String| std::fs::write(out.join(f), s).map_err(|e| format!("{}: {e}", out.join(f).display()));
    w(&format!("{stem}.md"), md)?;
    w(&format!("{stem}.csv"), table.csv())?;
    w(&format!("{stem}.json"), table.json())?;
    println!("wrote {}/{stem}.{{md,csv,json}} in {:.1} min", out.display(), started.elapsed().as_secs_f64() / 60.0);
    if c.eval {
        let mut groups: Vec<(String, Vec<dgl_cli::eval::EvalReport>)> = Vec::new();
        for (row, _) in &table_rows {
            let mut reports = Vec::new();
            for j in jobs.iter().filter(|j| &j.row == row) {
                let opts = dgl_cli::eval::EvalOptions { probe: true, ..Default::default() };
                let r =
                    dgl_cli::eval::eval_run(&run_dir(j), &opts).map_err(|e| format!("{row} seed {}: {e}", j.seed))?;
                reports.push(r);
            }
            groups.push((row.clone(), reports));
        }
        let md = eval_table::markdown(&format!("{name} on {dataset} ({preset} preset, {} seed(s))", c.seeds), &groups);
        println!("\n{md}");
        w(&format!("{stem}-eval.md"), md)?;
        println!("wrote {}/{stem}-eval.md", out.display());
    }
    Ok(())
}

/// A run counts as finished when it wrote its DONE marker and its configuration is the one asked.
fn is_finished(dir: &std::path::Path, cfg: &TrainConfig) -> bool {
    // The saved configuration records the dataset's number of classes (set when the run starts).
    dir.join("DONE").is_file()
        && TrainConfig::from_toml_file(&dir.join(RunDir::CONFIG)).is_ok_and(|mut c| {
            c.model.num_classes = cfg.model.num_classes;
            c == *cfg
        })
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// A table row's label as a file-name part: `+MT` → `plus-mt`, `DGL α=1` → `dgl-alpha-1`,
/// `D&R` → `d-and-r`, `Audio-only` → `audio-only` (lower-case ASCII, words joined by one `-`).
fn slug(label: &str) -> String {
    let spelled = label.replace('+', " plus ").replace('α', " alpha ").replace('&', " and ");
    let lower = spelled.to_lowercase();
    let words: Vec<&str> = lower.split(|ch: char| !ch.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_become_readable_distinct_names() {
        let cases = [
            ("+MT", "plus-mt"),
            ("+UT", "plus-ut"),
            ("DGL α=1", "dgl-alpha-1"),
            ("G-Blending α=5", "g-blending-alpha-5"),
            ("D&R", "d-and-r"),
            ("Audio-only", "audio-only"),
            ("OGM-GE", "ogm-ge"),
        ];
        for (label, want) in cases {
            assert_eq!(slug(label), want, "{label}");
        }
    }

    #[test]
    fn table4_sweeps_the_requested_alphas() {
        let cli = Cli::try_parse_from(["xtask", "reproduce-table4", "--alphas", "0.5,8"]).unwrap();
        let sweep = rows(&cli.cmd);
        let labels: Vec<&str> = sweep.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["DGL α=0.5", "DGL α=8", "G-Blending α=0.5", "G-Blending α=8"]);
        assert_eq!(sweep[1].1.effective_alpha(), Some(8.0));
        assert_eq!(slug(labels[0]), "dgl-alpha-0-5");
        let paper = Cli::try_parse_from(["xtask", "reproduce-table4"]).unwrap();
        assert_eq!(rows(&paper.cmd).len(), 10, "the paper's α = 1..5 for both methods");
    }

    /// A finished run (DONE marker + the same configuration) is kept; any other configuration, or a
    /// run without the marker (interrupted), is redone.
    #[test]
    fn finished_runs_are_recognised_and_kept() {
        let mut cfg = TrainConfig::preset(Preset::Tiny);
        cfg.method = MethodConfig::new(MethodKind::Dgl);
        cfg.data.synthetic.n_train = 48;
        cfg.data.synthetic.n_test = 16;
        cfg.model.base_width = 2;
        cfg.train.epochs = 1;
        cfg.train.batch_size = 16;
        cfg.train.diagnostics_every = 0;
        let dir = std::env::temp_dir().join(format!("xtask-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        train(&cfg, &dir, &RunOptions { overwrite: true, ..RunOptions::default() }).unwrap();
        assert!(!is_finished(&dir, &cfg), "no DONE marker yet: an interrupted run is redone");
        std::fs::write(dir.join("DONE"), "").unwrap();
        assert!(is_finished(&dir, &cfg));
        let mut other = cfg.clone();
        other.seed = 1;
        assert!(!is_finished(&dir, &other), "another configuration is not this run");
        let rows = read_metrics(&dir.join(RunDir::METRICS_JSONL)).unwrap();
        let cell = Cell::select(&rows, Protocol::BestTest).unwrap();
        assert_eq!(cell.epoch, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
