//! What `--overwrite` may replace, and how (docs/runs.md).
//!
//! Only a run directory `dgl` wrote is ever replaced: a real directory (not a symbolic link, not
//! the current directory or one holding it) whose every entry is a run file (`config.toml`,
//! `metrics.*`, `checkpoint.safetensors`, …, their `.NAME.tmp` leftovers, `plots/` with only
//! images), whose `config.toml` parses as a dgl configuration and whose checkpoint, if any, is a
//! dgl checkpoint. Anything else is refused with the first few entries that would be lost, and
//! nothing is touched.
//!
//! A replacing run is built in a sibling staging directory (`.NAME.dgl-new-PID`); the old run stays
//! as it was until the new run's first checkpoint is written ([`Staged::swap`]), so a new run that
//! fails before that (bad data, a NaN in its first steps, Ctrl-C before its first step) leaves the
//! old run intact and its staging directory is removed.

use std::fs;
use std::path::{Path, PathBuf};

use super::RunDir;
use crate::error::{io_err, CliError, Result};

/// How many unknown entries a refusal names.
const NAMED: usize = 5;

/// Refuses, naming why, a directory that is not a run directory `dgl` wrote.
pub fn check_replaceable(path: &Path) -> Result<()> {
    match not_replaceable(path)? {
        None => Ok(()),
        Some(why) => Err(CliError::Run(format!(
            "--overwrite refuses to replace {}: {why}; nothing was changed. Choose another --out",
            path.display()
        ))),
    }
}

/// Why `path` is not a run directory `dgl` wrote; `None` when it is one.
pub fn not_replaceable(path: &Path) -> Result<Option<String>> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.file_type().is_symlink() {
        return Ok(Some("it is a symbolic link (only a real run directory is replaced)".into()));
    }
    if !meta.is_dir() {
        return Ok(Some("it is not a directory".into()));
    }
    let canonical = fs::canonicalize(path).map_err(io_err(path))?;
    if std::env::current_dir().and_then(fs::canonicalize).is_ok_and(|cwd| cwd.starts_with(&canonical)) {
        return Ok(Some("it is the current directory or holds it".into()));
    }
    let unknown = unknown_entries(path)?;
    if !unknown.is_empty() {
        let n = unknown.len();
        let mut named: Vec<String> = unknown.into_iter().take(NAMED).collect();
        if n > NAMED {
            named.push(format!("and {} more", n - NAMED));
        }
        let (entries, are, files) = if n == 1 { ("entry", "is", "file") } else { ("entries", "are", "files") };
        return Ok(Some(format!(
            "it is not a run directory written by dgl; {n} {entries} in it {are} no run {files} and would be lost: {}",
            named.join(", ")
        )));
    }
    let config = path.join(RunDir::CONFIG);
    if !config.is_file() {
        return Ok(Some(format!("it has no {} (it is not a run directory written by dgl)", RunDir::CONFIG)));
    }
    if let Err(e) = crate::config::TrainConfig::from_toml_file(&config) {
        if !crate::config::written_by_earlier_version(&config) {
            return Ok(Some(format!("its {} is not a dgl configuration ({e})", RunDir::CONFIG)));
        }
    }
    let ckpt = path.join(RunDir::CHECKPOINT);
    if ckpt.exists() {
        if let Err(e) = crate::checkpoint::read_meta(&ckpt) {
            return Ok(Some(format!("its {} is not a dgl checkpoint ({e})", RunDir::CHECKPOINT)));
        }
    }
    Ok(None)
}

/// Entries of `dir` that are not run files (sorted), each with what it is when that is why.
fn unknown_entries(dir: &Path) -> Result<Vec<String>> {
    let mut unknown = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let kind = entry.file_type().map_err(io_err(&entry.path()))?; // does not follow links
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_file() && is_run_file(&name) {
            continue;
        }
        if kind.is_dir() && name == RunDir::PLOTS {
            for e in fs::read_dir(entry.path()).map_err(io_err(&entry.path()))? {
                let e = e.map_err(io_err(&entry.path()))?;
                let n = e.file_name().to_string_lossy().into_owned();
                let k = e.file_type().map_err(io_err(&e.path()))?;
                if !(k.is_file() && is_plot_file(&n)) {
                    unknown.push(described(&format!("{name}/{n}"), k));
                }
            }
            continue;
        }
        unknown.push(described(&name, kind));
    }
    unknown.sort();
    Ok(unknown)
}

fn described(name: &str, kind: fs::FileType) -> String {
    if kind.is_symlink() {
        format!("{name} (a symbolic link)")
    } else if kind.is_dir() {
        format!("{name}/")
    } else {
        name.to_string()
    }
}

/// A file `dgl` writes into a run directory, or the temporary file of an interrupted atomic write.
fn is_run_file(name: &str) -> bool {
    let base = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).unwrap_or(name);
    RunDir::FILES.contains(&base)
}

/// An image `dgl plot` writes (or its temporary file).
fn is_plot_file(name: &str) -> bool {
    let base = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).unwrap_or(name);
    base.ends_with(".png") || base.ends_with(".svg")
}

/// A new run being built beside the run directory it replaces.
#[derive(Debug)]
pub struct Staged {
    /// The run directory to replace.
    pub target: PathBuf,
    /// Where the new run is built until its first checkpoint.
    pub staging: PathBuf,
}

impl Staged {
    /// Creates the staging directory beside `target` (a run directory [`check_replaceable`]
    /// accepted).
    pub fn create(target: &Path) -> Result<Self> {
        let staging = sibling(target, "new")?;
        fs::create_dir(&staging).map_err(io_err(&staging))?;
        Ok(Self { target: target.to_path_buf(), staging })
    }

    /// Puts the new run (with its first checkpoint) in place of the old one: the old run is
    /// checked again (it may have changed meanwhile), renamed aside, the new one renamed into
    /// place, the old one deleted. On an error the old run is back in place and the new one
    /// stays in `staging`, named in the message.
    pub fn swap(&self) -> Result<()> {
        let kept = |why: String| {
            CliError::Run(format!("{why}; the new run is kept in {} (move it yourself)", self.staging.display()))
        };
        let old = if fs::symlink_metadata(&self.target).is_ok() {
            check_replaceable(&self.target)
                .map_err(|e| kept(format!("{} changed while the new run started: {e}", self.target.display())))?;
            let old = sibling(&self.target, "old")?;
            fs::rename(&self.target, &old).map_err(|e| kept(io_err(&self.target)(e).to_string()))?;
            Some(old)
        } else {
            None
        };
        if let Err(e) = fs::rename(&self.staging, &self.target) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.target);
            }
            return Err(kept(io_err(&self.target)(e).to_string()));
        }
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        if let Some(old) = old {
            if let Err(e) = fs::remove_dir_all(&old) {
                eprintln!("warning: the replaced run is left in {} (cannot delete it: {e})", old.display());
            }
        }
        Ok(())
    }

    /// Deletes the staging directory (the new run failed before its first checkpoint).
    pub fn discard(&self) {
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// `PARENT/.NAME.dgl-WHAT-PID` beside `target`.
fn sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| CliError::Run(format!("{}: not a directory name that can be replaced", target.display())))?;
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{}.dgl-{what}-{}", name.to_string_lossy(), std::process::id())))
}
