//! A resume checks everything before it changes a file (docs/runs.md): a refused `--resume`
//! leaves the run directory byte for byte as it was.
//!
//! [`check`] reads the run's files against its checkpoint — the position inside an epoch fits the
//! epoch's steps, the run's files are regular files (no links), every metrics file holds at least the bytes the checkpoint recorded, the part of
//! `metrics.jsonl` it recorded parses, and `config.toml` was not edited by hand — and only then
//! [`ResumePlan::apply`] cuts the metrics files back to the checkpoint and rewrites `metrics.csv`.

use crate::checkpoint::{config_differences, Checkpoint, DATA_DERIVED, RESUMABLE_CHANGES};
use crate::config::TrainConfig;
use crate::error::{io_err, CliError, Result};
use crate::run_dir::{parse_metrics, Row, RunDir};

/// What a checked resume does to the run directory.
pub(crate) struct ResumePlan {
    /// The epoch rows the checkpoint recorded (the prefix of `metrics.jsonl`).
    pub rows: Vec<Row>,
    /// Byte length of each appended metrics file at the checkpoint.
    truncate: Vec<(&'static str, u64)>,
    /// `config.toml` must be rewritten with the resumed configuration (it is, just before the
    /// next checkpoint, so that it always describes the checkpoint in place).
    pub config_changes: bool,
}

/// Checks the run in `run` can continue from `c` with `cfg` (the effective configuration, with
/// the dataset's class count), whose epochs have `steps_per_epoch` steps. Writes nothing.
pub(crate) fn check(run: &RunDir, c: &Checkpoint, cfg: &TrainConfig, steps_per_epoch: usize) -> Result<ResumePlan> {
    let dir = run.path.display();
    let refuse = |why: String| Err(CliError::Run(format!("--resume {dir}: {why}; nothing was changed")));
    if let Some(p) = &c.meta.progress {
        if p.step_in_epoch >= steps_per_epoch {
            return refuse(format!(
                "the checkpoint is at step {} of an epoch of {steps_per_epoch} steps: it does not belong to this run",
                p.step_in_epoch
            ));
        }
    }
    // Files are cut and appended to in place: never through a link to somewhere else.
    for name in RunDir::FILES {
        if std::fs::symlink_metadata(run.file(name)).is_ok_and(|m| !m.is_file()) {
            return refuse(format!(
                "{name} is not a regular file (a link or a directory): a resume writes only the run's own files"
            ));
        }
    }
    let mut truncate = Vec::new();
    for name in RunDir::APPENDED {
        let want = c.meta.files.get(name).copied().unwrap_or(0);
        let have = run.file_len(name)?;
        if have < want {
            return refuse(format!(
                "{name} has {have} bytes, fewer than the {want} the checkpoint recorded: the run directory was modified"
            ));
        }
        truncate.push((name, want));
    }
    let jsonl = run.file(RunDir::METRICS_JSONL);
    let want = c.meta.files.get(RunDir::METRICS_JSONL).copied().unwrap_or(0) as usize;
    let rows = if want == 0 {
        Vec::new()
    } else {
        let bytes = std::fs::read(&jsonl).map_err(io_err(&jsonl))?;
        let recorded = std::str::from_utf8(&bytes[..want.min(bytes.len())])
            .map_err(|e| CliError::Run(format!("--resume {dir}: {}: {e}; nothing was changed", jsonl.display())))?;
        match parse_metrics(recorded, &jsonl) {
            Ok(rows) => rows,
            Err(e) => return refuse(format!("the rows the checkpoint recorded do not parse: {e}")),
        }
    };
    let config_changes = check_config_file(run, c, cfg)?;
    Ok(ResumePlan { rows, truncate, config_changes })
}

/// Refuses a `config.toml` edited by hand: one that differs from the checkpoint's configuration
/// (what a resume continues with) unless it is exactly the configuration resumed now (e.g. a
/// resume with `--epochs 20` stopped before its first checkpoint). Returns whether `config.toml`
/// has to be rewritten.
fn check_config_file(run: &RunDir, c: &Checkpoint, cfg: &TrainConfig) -> Result<bool> {
    let path = run.file(RunDir::CONFIG);
    if !path.is_file() {
        return Ok(true);
    }
    let dir = run.path.display();
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let how = format!(
        "a run continues with its checkpoint's configuration, and resuming would overwrite the edit. \
         Undo it (only {} may change, with --epochs, --skip-non-finite, --tf32), or start a new run from it: \
         `dgl train --config {} --out NEW_DIR`; nothing was changed",
        RESUMABLE_CHANGES.join(", "),
        path.display()
    );
    let on_disk = TrainConfig::from_toml_str(&text).map_err(|e| {
        CliError::Run(format!("--resume {dir}: {} was edited by hand and does not parse ({e}); {how}", RunDir::CONFIG))
    })?;
    let saved = c.meta.config()?;
    let edits = config_differences(&on_disk, &saved, &[DATA_DERIVED])?;
    if !edits.is_empty() && !config_differences(&on_disk, cfg, &[DATA_DERIVED])?.is_empty() {
        let named: Vec<String> =
            edits.iter().map(|(k, file, ckpt)| format!("`{k}`: {file} in it, {ckpt} in the checkpoint")).collect();
        return Err(CliError::Run(format!(
            "--resume {dir}: {} was edited by hand ({}); {how}",
            RunDir::CONFIG,
            named.join("; ")
        )));
    }
    Ok(cfg.to_toml()? != text)
}

impl ResumePlan {
    /// Cuts the metrics files back to the checkpoint (dropping rows written after it) and
    /// rewrites `metrics.csv` from the recorded rows.
    pub fn apply(&self, run: &RunDir) -> Result<()> {
        for (name, len) in &self.truncate {
            run.truncate_to(name, *len)?;
        }
        run.write_metrics_csv_of(&self.rows)
    }
}

/// Steps of one training epoch of `n` samples (refused when `drop_last` leaves none).
pub(crate) fn steps_per_epoch(cfg: &TrainConfig, n: usize) -> Result<usize> {
    let steps = dgl_data::epoch_batches(n, cfg.train.batch_size, None, cfg.train.drop_last).len();
    if steps == 0 {
        return Err(CliError::Config(format!(
            "the training set ({n} samples) is smaller than one batch ({}) with drop_last",
            cfg.train.batch_size
        )));
    }
    Ok(steps)
}
