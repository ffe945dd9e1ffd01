//! Errors of the `dgl` command.

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration error: {0}")]
    Config(String),
    #[error(transparent)]
    Core(#[from] dgl_core::Error),
    #[error(transparent)]
    Model(#[from] dgl_models::ModelError),
    #[error(transparent)]
    Data(#[from] dgl_data::DataError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Run(String),
    /// A NaN or infinite loss or gradient stopped the run (the last checkpoint is kept).
    #[error("{0}")]
    NonFinite(String),
    /// The run was interrupted (Ctrl-C / SIGTERM) and checkpointed; it can be resumed.
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T> = std::result::Result<T, CliError>;

pub fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io { path: path.to_path_buf(), source }
}
