//! The size limits of a model configuration, all in one place ([`dgl_core::Limit`]: the key, the
//! default bound, and the `DGL_MAX_*` environment variable that raises it for a real need).
//!
//! [`crate::build_model_dtype`] checks them, and the parameter count and per-sample activation size
//! it estimates from the configuration and the input shapes ([`crate::ModelConfig::estimate`]),
//! before any tensor is allocated. The defaults are far above the paper's setting (base width 64,
//! 1-3 frames, 6-309 classes, 22.4 M parameters, about 5.3 M convolution and pooling outputs per
//! audio-visual sample) and far below what exhausts a machine's memory. docs/runs.md lists them.

use dgl_core::Limit;

/// `model.base_width`: ResNet parameters grow with its square (64 → 11.2 M per encoder).
pub const BASE_WIDTH: Limit = Limit {
    key: "model.base_width",
    what: "ResNet width of layer 1; the paper's is 64 and parameters grow with its square",
    default: 512,
    env: "DGL_MAX_BASE_WIDTH",
};

/// `model.frames`: frames per clip a visual encoder runs its trunk on.
pub const FRAMES: Limit = Limit { key: "model.frames", ..dgl_core::limits::FRAMES };

/// Every MLP hidden size and the gated head's `model.head.hidden`.
pub const HIDDEN_SIZE: Limit = Limit {
    key: "hidden size",
    what: "width of one fully connected layer",
    default: 65_536,
    env: "DGL_MAX_HIDDEN_SIZE",
};

/// `model.num_classes` (the logits; set from the dataset by `dgl train`).
pub const NUM_CLASSES: Limit = Limit { key: "model.num_classes", ..dgl_core::limits::CLASSES };

/// Trainable parameters of the whole model, estimated before building it.
pub const PARAMETERS: Limit = Limit {
    key: "model parameters",
    what: "trainable parameters estimated from the configuration and the input shapes; the paper's pair has 22.4 M, \
           and training keeps about 4 copies (weights, gradients, momentum, a snapshot)",
    default: 500_000_000,
    env: "DGL_MAX_MODEL_PARAMS",
};

/// Convolution outputs per sample, all encoders together (a training step keeps several
/// tensors of this size per sample: convolution, batch-norm and ReLU outputs and their gradients).
pub const SAMPLE_ACTIVATIONS: Limit = Limit {
    key: "model activations per sample",
    what:
        "convolution outputs per sample estimated from the input shapes; the paper's 257×188 spectrogram and 224×224 \
           frame give about 5.3 M",
    default: 1 << 28,
    env: "DGL_MAX_SAMPLE_ACTIVATIONS",
};

/// Size of a pretrained-weights file (`model.pretrained`), checked before it is read: a torchvision
/// ResNet-34 `state_dict` is 87 MB, a ResNet-18 47 MB.
pub const PRETRAINED_BYTES: Limit = Limit {
    key: "pretrained file size",
    what: "bytes of the model.pretrained file read into memory; torchvision's ResNet-34 state_dict is 87 MB",
    default: 1 << 30,
    env: "DGL_MAX_PRETRAINED_BYTES",
};
