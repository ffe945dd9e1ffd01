//! The run directory: resolved config, metrics (CSV and JSON lines) and atomic checkpoints.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub mod replace;

use crate::error::{io_err, CliError, Result};
pub use crate::fsio::write_atomic;
use replace::{check_replaceable, not_replaceable, Staged};

/// Files of a run.
#[derive(Debug)]
pub struct RunDir {
    /// Where the files are written: the run directory, or while a new run replacing an old one
    /// has no checkpoint yet, its staging directory ([`replace`]).
    pub path: PathBuf,
    /// The run directory being replaced, until [`RunDir::commit`].
    staged: Option<Staged>,
}

/// What a new run does with its `--out` ([`RunDir::check_new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewRun {
    /// The directory is absent or empty: the run is written into it.
    Fresh,
    /// It holds a run `dgl` wrote and `--overwrite` was given: the new run replaces it once its
    /// first checkpoint is written.
    Replace,
}

impl RunDir {
    pub const CONFIG: &'static str = "config.toml";
    pub const METRICS_CSV: &'static str = "metrics.csv";
    pub const METRICS_JSONL: &'static str = "metrics.jsonl";
    pub const CHECKPOINT: &'static str = "checkpoint.safetensors";
    pub const STEPS_CSV: &'static str = "steps.csv";
    /// One JSON line per start or resume: what produced the run (`crate::environment`).
    pub const ENVIRONMENT: &'static str = "environment.jsonl";
    /// `dgl eval`'s report.
    pub const EVAL_JSON: &'static str = "eval.json";
    pub const EVAL_MD: &'static str = "eval.md";
    /// The marker `cargo xtask reproduce-table*` leaves in a finished run.
    pub const DONE: &'static str = "DONE";
    /// `dgl plot`'s figures: the only sub-directory of a run.
    pub const PLOTS: &'static str = "plots";
    /// Every file `dgl` (and the table runner) writes at the top of a run directory; `plots/`
    /// (`dgl plot`) is the only sub-directory. `--overwrite` replaces nothing else.
    pub const FILES: [&'static str; 9] = [
        Self::CONFIG,
        Self::METRICS_CSV,
        Self::METRICS_JSONL,
        Self::CHECKPOINT,
        Self::STEPS_CSV,
        Self::ENVIRONMENT,
        Self::EVAL_JSON,
        Self::EVAL_MD,
        Self::DONE,
    ];

    /// The metrics files a checkpoint records the length of (truncated back to it on resume).
    /// `metrics.csv` is not one of them: it is rewritten from `metrics.jsonl` after every epoch
    /// ([`metrics_csv`]), because its columns can grow (a method may report a value from some epoch
    /// on, e.g. D&R after its first re-learning).
    pub const APPENDED: [&'static str; 2] = [Self::METRICS_JSONL, Self::STEPS_CSV];

    /// What a new run into `path` would do, checked before any work: an absent or empty
    /// directory is used; a non-empty one is refused unless `overwrite` and it is a run
    /// directory `dgl` wrote ([`replace::check_replaceable`]). Changes nothing.
    pub fn check_new(path: &Path, overwrite: bool) -> Result<NewRun> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NewRun::Fresh),
            Err(e) => return Err(io_err(path)(e)),
        };
        if !path.is_dir() {
            let what =
                if meta.file_type().is_symlink() { "a symbolic link to no directory" } else { "not a directory" };
            return Err(CliError::Run(format!("{} exists and is {what}", path.display())));
        }
        if fs::read_dir(path).map_err(io_err(path))?.next().is_none() {
            return Ok(NewRun::Fresh);
        }
        if overwrite {
            check_replaceable(path)?;
            return Ok(NewRun::Replace);
        }
        if let Some(why) = not_replaceable(path)? {
            return Err(CliError::Run(format!(
                "{} already exists and is not empty, and --overwrite would not replace it ({why}): choose another --out",
                path.display()
            )));
        }
        let hint = match crate::checkpoint::read_meta(&path.join(Self::CHECKPOINT)) {
            Ok(m) => format!(
                " (it holds a checkpoint {}: continue it with `dgl train --resume {}`)",
                m.position(),
                path.display()
            ),
            Err(_) => String::new(),
        };
        Err(CliError::Run(format!(
            "{} already exists and is not empty{hint}: choose another --out, or pass --overwrite to replace it",
            path.display()
        )))
    }

    /// Creates a fresh run directory ([`Self::check_new`] first). A run replacing an old one is
    /// written into a staging directory until [`Self::commit`].
    pub fn create(path: &Path, overwrite: bool) -> Result<Self> {
        match Self::check_new(path, overwrite)? {
            NewRun::Fresh => {
                fs::create_dir_all(path).map_err(io_err(path))?;
                Ok(Self { path: path.to_path_buf(), staged: None })
            }
            NewRun::Replace => {
                let staged = Staged::create(path)?;
                Ok(Self { path: staged.staging.clone(), staged: Some(staged) })
            }
        }
    }

    /// Opens an existing run directory (to resume it).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(CliError::Run(format!("{}: no such run directory", path.display())));
        }
        Ok(Self { path: path.to_path_buf(), staged: None })
    }

    /// The run directory (where the run is, or will be once it replaced the old one).
    pub fn target(&self) -> &Path {
        self.staged.as_ref().map_or(&self.path, |s| &s.target)
    }

    /// Whether this new run replaces an old one that is still in place (no checkpoint yet).
    pub fn replacing(&self) -> bool {
        self.staged.is_some()
    }

    /// Called once a checkpoint is written: a new run replacing an old one takes its place now.
    pub fn commit(&mut self) -> Result<()> {
        if let Some(staged) = self.staged.take() {
            if let Err(e) = staged.swap() {
                // The new run stays in its staging directory (named in the message), not deleted.
                self.path = staged.staging.clone();
                return Err(e);
            }
            self.path = staged.target.clone();
        }
        Ok(())
    }

    /// Length in bytes of a run file (0 when absent).
    pub fn file_len(&self, name: &str) -> Result<u64> {
        let p = self.file(name);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Flushes an appended file to disk (before a checkpoint records its length).
    pub fn sync_file(&self, name: &str) -> Result<()> {
        let p = self.file(name);
        match File::open(&p) {
            Ok(f) => f.sync_all().map_err(io_err(&p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Cuts an appended file back to `len` bytes (what a checkpoint recorded), dropping rows
    /// written after it. A file shorter than `len` means the directory was changed by hand.
    pub fn truncate_to(&self, name: &str, len: u64) -> Result<()> {
        let have = self.file_len(name)?;
        if have < len {
            return Err(CliError::Run(format!(
                "{} has {have} bytes, fewer than the {len} the checkpoint recorded: the run directory was modified, cannot resume it",
                self.file(name).display()
            )));
        }
        if have > len {
            let p = self.file(name);
            let f = OpenOptions::new().write(true).open(&p).map_err(io_err(&p))?;
            f.set_len(len).map_err(io_err(&p))?;
            f.sync_all().map_err(io_err(&p))?;
        }
        Ok(())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `name` atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.file(name), bytes)
    }

    /// Rewrites `metrics.csv` (atomically) from the rows of `metrics.jsonl`, the run's record.
    pub fn write_metrics_csv(&self) -> Result<()> {
        let jsonl = self.file(Self::METRICS_JSONL);
        let rows = if jsonl.is_file() { read_metrics(&jsonl)? } else { Vec::new() };
        self.write_metrics_csv_of(&rows)
    }

    /// Rewrites `metrics.csv` (atomically) from `rows` (nothing when there are none).
    pub fn write_metrics_csv_of(&self, rows: &[Row]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write_atomic(Self::METRICS_CSV, metrics_csv(rows).as_bytes())
    }

    /// Appends one line to a text file (metrics).
    pub fn append_line(&self, name: &str, line: &str) -> Result<()> {
        let p = self.file(name);
        let mut f = OpenOptions::new().create(true).append(true).open(&p).map_err(io_err(&p))?;
        writeln!(f, "{line}").map_err(io_err(&p))
    }

    /// Saves named tensors as one safetensors file, atomically.
    pub fn save_tensors(&self, name: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let bytes = safetensors_bytes(tensors)?;
        self.write_atomic(name, &bytes)
    }
}

impl Drop for RunDir {
    /// A new run that ends before its first checkpoint leaves the run it was to replace as it
    /// was: its staging directory is removed.
    fn drop(&mut self) {
        if let Some(staged) = &self.staged {
            staged.discard();
        }
    }
}

/// Serialises tensors (moved to the CPU) in the safetensors format.
pub fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let cpu: Vec<(String, Tensor)> =
        tensors.iter().map(|(k, t)| Ok((k.clone(), t.to_device(&candle_core::Device::Cpu)?))).collect::<Result<_>>()?;
    let views: Vec<(String, &Tensor)> = cpu.iter().map(|(k, t)| (k.clone(), t)).collect();
    safetensors::serialize(views, None).map_err(|e| CliError::Run(format!("safetensors: {e}")))
}

/// One row of named values, kept in insertion order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row(pub Vec<(String, f64)>);

impl Row {
    pub fn push(&mut self, k: impl Into<String>, v: f64) {
        self.0.push((k.into(), v));
    }
    pub fn get(&self, k: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
    }
    pub fn header(&self) -> String {
        self.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(",")
    }
    pub fn csv(&self) -> String {
        self.0.iter().map(|(_, v)| fmt_num(*v)).collect::<Vec<_>>().join(",")
    }
    pub fn json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = if v.is_finite() { fmt_num(*v) } else { "null".into() };
                format!("{}:{}", serde_json::to_string(k).unwrap_or_default(), v)
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// The epoch rows as one CSV table: the union of their columns as the header (`epoch` first,
/// `seconds` — the only wall-time column — last, the others in order of first appearance), an
/// empty field where a row lacks a column.
pub fn metrics_csv(rows: &[Row]) -> String {
    let mut cols: Vec<&str> = Vec::new();
    for r in rows {
        for (k, _) in &r.0 {
            if !cols.contains(&k.as_str()) {
                cols.push(k);
            }
        }
    }
    for (name, first) in [("epoch", true), ("seconds", false)] {
        if let Some(i) = cols.iter().position(|c| *c == name) {
            let c = cols.remove(i);
            if first {
                cols.insert(0, c);
            } else {
                cols.push(c);
            }
        }
    }
    let mut out = cols.join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = cols.iter().map(|c| r.get(c).map(fmt_num).unwrap_or_default()).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Parses `metrics.jsonl` back into rows (for plots and tables).
pub fn read_metrics(path: &Path) -> Result<Vec<Row>> {
    parse_metrics(&fs::read_to_string(path).map_err(io_err(path))?, path)
}

/// Parses the text of `metrics.jsonl` (read from `path`, for messages) into rows.
pub fn parse_metrics(text: &str, path: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| CliError::Run(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let obj =
            v.as_object().ok_or_else(|| CliError::Run(format!("{}:{}: not a JSON object", path.display(), i + 1)))?;
        let mut row = Row::default();
        for (k, x) in obj {
            row.push(k.clone(), x.as_f64().unwrap_or(f64::NAN));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_csv_keeps_columns_aligned_when_rows_gain_keys() {
        let r1 = Row(vec![("acc".into(), 0.5), ("epoch".into(), 1.0), ("seconds".into(), 3.5)]);
        let r2 = Row(vec![("acc".into(), 0.25), ("epoch".into(), 2.0), ("extra".into(), 7.0), ("seconds".into(), 4.0)]);
        let csv = metrics_csv(&[r1, r2]);
        assert_eq!(csv, "epoch,acc,extra,seconds\n1,0.5,,3.5\n2,0.25,7,4\n");
        for line in csv.lines() {
            assert_eq!(line.split(',').count(), 4, "{line}");
        }
    }
}
