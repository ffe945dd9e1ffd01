//! Errors of dgl-models.

/// Every error a dgl-models constructor, builder or checkpoint function returns.
///
/// Forward passes return `candle_core::Result` (they implement `dgl_core::MultimodalModel`, whose
/// methods return candle's result type); a [`ModelError`] converts into a `candle_core::Error`
/// and back, so both compose with `?`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An error from candle (shape mismatch, device error, …).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An invalid model configuration, caught before any tensor is allocated.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A size above its limit ([`crate::limits`]), caught before any tensor is allocated.
    #[error("invalid model configuration: {0}")]
    Limit(#[from] dgl_core::LimitError),
    /// A tensor the model needs is absent from the checkpoint (strict import).
    #[error("checkpoint is missing tensor `{0}`")]
    MissingTensor(String),
    /// The checkpoint holds a tensor the model does not have (strict import).
    #[error("checkpoint has tensor `{0}` that the model does not have")]
    UnexpectedTensor(String),
    /// A pretrained-weights file that cannot be loaded into the model ([`crate::pretrained`]): not a
    /// valid file, a missing or extra key, a shape or dtype mismatch.
    #[error("pretrained weights {}: {msg}", file.display())]
    Pretrained { file: std::path::PathBuf, msg: String },
    /// A checkpoint tensor whose shape differs from the model's.
    #[error("tensor `{name}` has shape {found:?} in the checkpoint, the model expects {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },
}

/// `Result` with dgl-models' [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;

impl From<ModelError> for candle_core::Error {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}

pub(crate) fn config_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(ModelError::Config(msg.into()))
}
