//! # dgl-models — tensor models for Disentangled Gradient Learning (ICCV 2025)
//!
//! The networks of the paper's audio-visual experiments, written for candle 0.11.1 and
//! implementing [`dgl_core::MultimodalModel`]:
//!
//! * [`ops`]: a padded max-pool with a backward for kernel ≠ stride and a strided convolution whose
//!   backward works for any H, W (both missing / broken in candle 0.11.1);
//! * [`cpu`] (and `cudnn` in a `cudnn` build): the project's own convolution / batch-norm kernels
//!   with their own backward, switched by [`kernels::set_enabled`];
//! * [`layers`]: Conv2d, BatchNorm2d (train / eval, running statistics as buffers), Linear;
//! * [`resnet`]: torchvision-topology ResNet-18 trunk (official `models/backbone.py`) and ResNet-34
//!   (`model.resnet`);
//! * [`encoder`]: the [`Encoder`] trait and the audio / visual ResNet encoders and an MLP;
//! * [`pretrained`]: torchvision ResNet-18/34 `state_dict`s (`.safetensors` / `.pth`) loaded into
//!   every ResNet encoder (`model.pretrained`);
//! * [`fusion`]: concat / sum / gated / FiLM heads ([`FusionHead`]);
//! * [`multimodal`]: [`FusionModel`] (M encoders + head) and [`UnimodalClassifier`];
//! * [`config`]: [`ModelConfig`] and [`build_model`];
//! * [`limits`]: the size limits a configuration is checked against before building;
//! * [`state`]: export / import of every named tensor for checkpoints;
//! * [`init`]: seeded host-side initialisation (official `weight_init`).
//!
//! Parameter names are the official PyTorch `state_dict` keys (`audio_net.layer1.0.conv1.weight`,
//! `visual_net.layer2.0.downsample.0.weight`, `fusion_module.fc_out.weight`, …).

pub mod config;
pub mod cpu;
#[cfg(feature = "cudnn")]
pub mod cudnn;
pub mod encoder;
pub mod error;
pub mod esanet;
pub mod fusion;
pub mod init;
pub mod kernels;
pub mod layers;
pub mod limits;
pub mod mixer;
pub mod mmtm;
pub mod multimodal;
pub mod ops;
pub mod pretrained;
pub mod resnet;
pub mod state;

pub use config::{
    build_encoder, build_model, build_model_dtype, EncoderKind, ModalityConfig, Model, ModelConfig, ModelEstimate,
};
pub use encoder::{AudioEncoder, Encoder, MlpEncoder, StagedEncoder, VisualEncoder};
pub use error::{ModelError, Result};
pub use esanet::{EsaNet, EsaNetOptions, MultiScale};
pub use fusion::{
    build_head, head_param_count, ConcatFusion, FilmFusion, FusionHead, FusionKind, GatedFusion, HeadOptions, SumFusion,
};
pub use init::InitCtx;
pub use mixer::{MixerModel, MixerOptions, MixerStage, SequenceEncoder};
pub use mmtm::{Mmtm, MmtmModel};
pub use multimodal::{encoder_prefix, FusionModel, ModelState, UnimodalClassifier};
pub use ops::{conv2d_any, max_pool2d_padded};
pub use pretrained::{load_torchvision_resnet, Conv1Rule, EncoderLoad, LoadReport};
pub use resnet::{FeatureSizes, ResNet, ResNetConfig, ResNetDepth};
pub use state::{export_state, export_state_map, import_state};
