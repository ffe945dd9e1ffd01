//! # dgl-core — Disentangled Gradient Learning for candle
//!
//! The gradient-splitting logic of *Disentangled Gradient Learning* (DGL, ICCV 2025), usable with
//! any candle model that can be split into per-modality encoders φ_m and a fusion module + head h:
//!
//! * [`model::MultimodalModel`] — the split (encoders, fusion + head, named parameter groups) and the
//!   modality-dropout forward h(0, …, z_m, …, 0);
//! * [`routing`] — the DGL step (paper Eq. 9-15, Algorithm 1): the head is trained only by
//!   L_d = CE(h(sg z_1, …, sg z_M)), encoder m only by α·L_m = α·CE(h(0, …, z_m, …, 0)); plus the
//!   "MT only", "UT only", plain and fixed-weight blending variants;
//! * [`grads::ParamGrads`] — detached, group-aware gradients (global-norm clipping, magnitudes);
//! * [`optim`] — what candle lacks, with PyTorch semantics: SGD with momentum / dampening / weight
//!   decay / Nesterov, `MultiStepLR`;
//! * [`diagnostics`] — the paper's Fig. 1(c)/3(b) gradient magnitudes and the Fig. 3(a) statistic
//!   s = exp((W_k − W_y) z);
//! * [`task`] — what the labels are, the loss and the metrics: classification (accuracy) and
//!   segmentation (cross-entropy with class weights and an ignore index; mIoU, pixel accuracy).
//!
//! This crate depends on candle and thiserror only.

pub mod diagnostics;
pub mod error;
pub mod grads;
pub mod limits;
pub mod loss;
pub mod method;
pub mod model;
pub mod optim;
pub mod rng;
pub mod routing;
pub mod task;

pub use error::{Error, Result};
pub use grads::ParamGrads;
pub use limits::{Limit, LimitError};
pub use method::{BatchSource, Method, Prediction, RoutedMethod, Split, StepContext, StepReport};
pub use model::{GroupKind, MultimodalModel, NamedVar, ParamGroup};
pub use optim::{
    AdamW, AdamWConfig, LrSchedule, Optimizer, OptimizerConfig, OptimizerKind, ScheduleKind, Scheduled, Sgd, SgdConfig,
};
pub use routing::{evaluate_logits, routed_step, Routing, StepOutput};
pub use task::{Classification, Metric, Segmentation, Task};
