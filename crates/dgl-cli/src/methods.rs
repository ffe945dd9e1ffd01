//! From the configured method to a [`dgl_core::Method`]. The methods themselves live in `dgl-core`
//! (the routed step) and `dgl-baselines` (each declared once, with its options, by its
//! [`dgl_baselines::MethodSpec`]).

use dgl_baselines::BuildContext;
use dgl_core::Method;

use crate::config::TrainConfig;
use crate::error::Result;

/// Whether the run needs a validation split carved from the training set: the method's
/// descriptor says so, or the configuration asks for one.
pub fn needs_validation(cfg: &TrainConfig) -> bool {
    cfg.data.always_validate || cfg.method.descriptor().needs_validation
}

/// The configured method, for a dataset of `num_classes` classes.
pub fn build_method(cfg: &TrainConfig, num_classes: usize) -> Result<Box<dyn Method>> {
    Ok(cfg.method.build(&BuildContext { num_classes, seed: cfg.seed })?)
}
