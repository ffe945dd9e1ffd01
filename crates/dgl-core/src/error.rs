//! Errors of dgl-core.

/// Every error dgl-core returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from candle (shape mismatch, device error, …).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A hyper-parameter outside its valid range, caught before any work is done.
    #[error("invalid hyper-parameter `{name}` = {value}: {reason}")]
    InvalidHyperParameter { name: &'static str, value: String, reason: &'static str },
    /// The inputs do not match the model (wrong number of modalities, empty batch, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A loss or gradient that is NaN or infinite, and where.
    #[error("non-finite {what}: {detail} at epoch {epoch} step {step}")]
    NonFinite {
        /// `loss` or `gradient`.
        what: &'static str,
        /// Which one (`loss_mm = NaN`, ``parameter `enc0.weight` ``).
        detail: String,
        /// 0-based epoch and step within it.
        epoch: usize,
        step: usize,
    },
}

/// `Result` with dgl-core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn check_hp(ok: bool, name: &'static str, value: impl ToString, reason: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter { name, value: value.to_string(), reason })
    }
}
