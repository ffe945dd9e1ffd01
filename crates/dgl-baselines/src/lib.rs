//! # dgl-baselines — the methods DGL is compared with
//!
//! Every balanced-multimodal-learning method of the paper's Table 1, each a
//! [`dgl_core::Method`] driven by the one training loop: a method says how a batch becomes
//! parameter updates, what it needs around epochs, and how it predicts.
//!
//! | name | module | rule |
//! |---|---|---|
//! | `vanilla` (with one modality: the unimodal baselines) | [`routed`] | plain CE |
//! | `dgl`, `dgl-mt`, `dgl-ut` | [`routed`] | DGL and its ablations |
//! | `gblending` | [`gblending::fixed`] | L_mm + α Σ L_m (as the DGL paper ran it; separate unimodal heads by default) |
//! | `gblending-ogr` | [`gblending::GBlendingOgr`] | OGR weights re-estimated on a validation split |
//! | `ogm`, `ogm-ge` | [`ogm::Ogm`] | on-the-fly gradient modulation (+ Gaussian noise) |
//! | `pmr` | [`pmr::Pmr`] | prototypical cross-entropy with a ratio switch |
//! | `agm` | [`agm::Agm`] | Shapley mono-modal responses, cotangent scaling |
//! | `mla` | [`mla::Mla`] | alternating unimodal half-steps through one shared head (official) or the masked model head |
//! | `mmpareto` | [`mmpareto::MmPareto`] | Pareto (min-norm) integration of per-loss encoder gradients (separate unimodal heads by default) |
//! | `dnr` | [`dnr::Dnr`] | diagnosing (k-means purity gap) and partial re-initialisation |
//!
//! Heads owned by a method (separate unimodal heads, MLA's shared head) live in [`heads`].
//! Each module declares its method once: a configuration type implementing [`spec::MethodSpec`]
//! (descriptor, options, checks, construction, official defaults); [`registry`] lists them, one line
//! each, and derives [`MethodKind`] and the `name`-tagged [`MethodConfig`]. Build a method with
//! [`MethodConfig::build`]. Equations, defaults and every deviation from the official code:
//! `docs/methods.md`.

pub mod agm;
pub mod defaults;
pub mod dnr;
pub mod gblending;
pub mod heads;
pub mod kmeans;
pub mod mla;
pub mod mmpareto;
pub mod ogm;
pub mod pmr;
pub mod registry;
pub mod routed;
pub mod spec;
mod util;

#[cfg(test)]
mod testutil;

pub use registry::{MethodConfig, MethodKind};
pub use spec::{BuildContext, MethodDescriptor, MethodSpec, ModelFacts, TaskKind};
