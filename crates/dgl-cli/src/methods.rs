//! From the configured method to a [`dgl_core::Method`] (and, for the unimodal baselines, the
//! modality the model keeps). The methods themselves live in `dgl-core` (DGL and its ablations) and
//! `dgl-baselines` (everything else).

use dgl_core::Method;

use crate::config::TrainConfig;
use crate::error::Result;

/// A method and, for `audio-only` / `visual-only`, the name of the single modality its model sees.
pub struct BuiltMethod {
    pub method: Box<dyn Method>,
    pub unimodal: Option<&'static str>,
}

/// Whether the configured method needs a validation split carved from the training set.
pub fn needs_validation(cfg: &TrainConfig) -> bool {
    cfg.data.always_validate || cfg.method.name.needs_validation()
}

pub fn build_method(cfg: &TrainConfig, num_classes: usize) -> Result<BuiltMethod> {
    let method = dgl_baselines::build_method(&cfg.method, num_classes, cfg.seed)?;
    Ok(BuiltMethod { method, unimodal: cfg.method.name.unimodal_modality_name() })
}
