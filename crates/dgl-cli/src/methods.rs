//! From a method name to a [`dgl_core::Method`] (and, for the unimodal baselines, the modality the
//! model keeps).

use dgl_core::{Method, RoutedMethod, Routing};

use crate::config::TrainConfig;
use crate::error::{CliError, Result};

/// A method and, for `audio-only` / `visual-only`, the single modality its model sees.
pub struct BuiltMethod {
    pub method: Box<dyn Method>,
    pub unimodal: Option<String>,
}

/// Names `dgl train --method` accepts.
pub const METHODS: &[&str] = &["vanilla", "dgl", "dgl-mt", "dgl-ut", "audio-only", "visual-only"];

pub fn build_method(cfg: &TrainConfig) -> Result<BuiltMethod> {
    let a = cfg.method.alpha;
    let name = cfg.method.name.as_str();
    let (routing, unimodal) = match name {
        "vanilla" | "concat" => (Routing::plain(), None),
        "dgl" => (Routing::dgl(a), None),
        "dgl-mt" => (Routing::mt_only(a), None),
        "dgl-ut" => (Routing::ut_only(a), None),
        "audio-only" => (Routing::plain(), Some("audio".to_string())),
        "visual-only" => (Routing::plain(), Some("visual".to_string())),
        other => {
            return Err(CliError::Config(format!("unknown method `{other}`; valid methods: {}", METHODS.join(", "))))
        }
    };
    Ok(BuiltMethod { method: Box::new(RoutedMethod::new(name, routing)), unimodal })
}
