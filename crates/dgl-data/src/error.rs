//! Errors of dgl-data. Every error that comes from a file names the file (and the line for text
//! formats).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file whose content cannot be used, with the reason (and line when known).
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadFile { path: PathBuf, line: Option<usize>, reason: String },
    /// Invalid arguments or configuration.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::BadFile { path: path.into(), line: None, reason: reason.into() }
    }
    pub fn bad_line(path: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Self {
        DataError::BadFile { path: path.into(), line: Some(line), reason: reason.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
