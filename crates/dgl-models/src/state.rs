//! Export / import of every named tensor of a model (trainable parameters and BatchNorm running
//! statistics), for checkpoints. Names are PyTorch `state_dict` keys (without DataParallel's
//! `module.` prefix), so a safetensors file written from [`export_state`] maps onto the official
//! model's keys; PyTorch's `num_batches_tracked` entries are not exported and are ignored on
//! import. Writing / reading the file itself is done elsewhere.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::multimodal::ModelState;
use crate::{ModelError, Result};

/// Keys of PyTorch state that this crate does not model and silently skips on import.
pub fn is_ignored_key(name: &str) -> bool {
    name.ends_with(".num_batches_tracked") || name == "num_batches_tracked"
}

/// Snapshots of every named tensor (parameters, then buffers), in a stable order. Each tensor is
/// a copy on the model's device and dtype, detached from the graph: later optimizer steps do not
/// change it.
pub fn export_state<S: ModelState + ?Sized>(model: &S) -> Result<Vec<(String, Tensor)>> {
    model.named_state().into_iter().map(|nv| Ok((nv.name, nv.var.as_detached_tensor().copy()?))).collect()
}

/// [`export_state`] as a map.
pub fn export_state_map<S: ModelState + ?Sized>(model: &S) -> Result<HashMap<String, Tensor>> {
    Ok(export_state(model)?.into_iter().collect())
}

/// Loads `tensors` into the model's variables (converted to each variable's dtype and device).
///
/// Everything is validated before anything is written: a shape mismatch is always an error
/// ([`ModelError::ShapeMismatch`]); with `strict`, a model tensor absent from `tensors`
/// ([`ModelError::MissingTensor`]) or an entry of `tensors` the model does not have
/// ([`ModelError::UnexpectedTensor`], `num_batches_tracked` excepted) is an error too. Without
/// `strict`, only the names present in both are loaded. Returns the names loaded.
pub fn import_state<S: ModelState + ?Sized>(
    model: &S,
    tensors: &HashMap<String, Tensor>,
    strict: bool,
) -> Result<Vec<String>> {
    let state = model.named_state();
    if strict {
        let mut known: Vec<&str> = state.iter().map(|nv| nv.name.as_str()).collect();
        known.sort_unstable();
        let mut extra: Vec<&String> =
            tensors.keys().filter(|k| !is_ignored_key(k) && known.binary_search(&k.as_str()).is_err()).collect();
        extra.sort();
        if let Some(k) = extra.first() {
            return Err(ModelError::UnexpectedTensor((*k).clone()));
        }
    }
    let mut plan = Vec::with_capacity(state.len());
    for nv in &state {
        match tensors.get(&nv.name) {
            Some(t) => {
                let expected = nv.var.as_tensor().dims().to_vec();
                if t.dims() != expected.as_slice() {
                    return Err(ModelError::ShapeMismatch {
                        name: nv.name.clone(),
                        expected,
                        found: t.dims().to_vec(),
                    });
                }
                plan.push((nv, t));
            }
            None if strict => return Err(ModelError::MissingTensor(nv.name.clone())),
            None => {}
        }
    }
    let mut loaded = Vec::with_capacity(plan.len());
    for (nv, t) in plan {
        let v = &nv.var;
        let t = t.to_dtype(v.dtype())?.to_device(v.device())?;
        v.set(&t)?;
        loaded.push(nv.name.clone());
    }
    Ok(loaded)
}
