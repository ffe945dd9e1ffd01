//! # dgl-cli — the `dgl` command as a library
//!
//! Configuration, the one training loop, run directories. The binary `dgl` is a thin clap front.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod environment;
pub mod error;
pub mod eval;
mod fsio;
pub mod methods;
pub mod observe;
pub mod plot;
mod resume_check;
pub mod run_dir;
pub mod setup;
pub mod train;

pub use config::{DeviceKind, Preset, TrainConfig};
pub use error::{CliError, Result};
pub use train::{resume, train, train_with, RunControl, RunOptions, RunOutcome};
