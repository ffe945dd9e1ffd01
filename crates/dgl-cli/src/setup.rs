//! What a run computes with, built from its configuration: the device, the data (restricted to the
//! model's modalities), the method and the freshly initialised model (with `model.pretrained`
//! loaded into its ResNet encoders when asked). Shared by training and `dgl eval`.

use candle_core::Device;
use dgl_core::task::{Segmentation, WeightedCrossEntropy};
use dgl_core::{Classification, Method, Task};
use dgl_models::{build_model, load_torchvision_resnet, LoadReport, Model};

use crate::config::{ClassWeights, DeviceKind, TrainConfig};
use crate::data::RunData;
use crate::error::{CliError, Result};
use crate::methods::build_method;

/// The device of a configuration.
pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| CliError::Config(format!("--device cuda: {e}"))),
    }
}

/// What a run computes with (training, or `dgl eval` on its checkpoint).
pub struct Setup {
    /// The configuration with the dataset's class count (what the run directory records).
    pub cfg: TrainConfig,
    pub device: Device,
    /// The data, restricted to the model's modalities.
    pub data: RunData,
    pub method: Box<dyn Method>,
    /// Freshly initialised from `cfg.seed` (and `model.pretrained` when [`setup`] was asked to
    /// load it).
    pub model: Model,
    /// What `model.pretrained` loaded, when it was loaded.
    pub pretrained: Option<LoadReport>,
    /// The labels, loss and metrics: classification, or segmentation for a dataset of label maps.
    pub task: Box<dyn Task>,
}

/// The device, data, method and model of a configuration, on `device` (TF32 set as configured).
///
/// With `load_pretrained`, `model.pretrained` (when set) is loaded into every ResNet encoder of the
/// fresh model, before the method sees it: a new training run. A resumed run or `dgl eval` passes
/// false: the checkpoint they restore next holds every weight (a strict import), so the file is
/// not needed then (it may have moved since the run started).
pub fn setup(
    cfg: &TrainConfig,
    device_kind: DeviceKind,
    need_validation: bool,
    load_pretrained: bool,
) -> Result<Setup> {
    let device = device(device_kind)?;
    // Process-wide in candle (matmuls) and read by the cuDNN convolution; a no-op on the CPU.
    candle_core::cuda::set_gemm_reduced_precision_f32(cfg.train.tf32);
    let mut data = RunData::build(cfg, need_validation, &device)?;
    // The number of classes comes from the dataset; the configuration saved with the run (and in
    // its checkpoints) records the effective value (runs saved before that say the preset's).
    let mut cfg = cfg.clone();
    cfg.model.num_classes = data.train.num_classes();
    let method = build_method(&cfg, data.train.num_classes())?;
    // The model's modalities, by name and in the configuration's order, select the data's: all of
    // them, or a subset (one modality: a unimodal model; a generic dataset's views come sorted).
    let names: Vec<&str> = cfg.model.modalities.iter().map(|m| m.name.as_str()).collect();
    data.select_modalities(&names)?;
    let model_cfg = cfg.model.clone();
    let model = build_model(&model_cfg, &data.modality_shapes(), &device, cfg.seed)?;
    let pretrained = match (&model_cfg.pretrained, load_pretrained) {
        (Some(path), true) => Some(load_torchvision_resnet(&model, path)?),
        _ => None,
    };
    method.check(&model)?;
    let task = task_of(&cfg, &data)?;
    Ok(Setup { cfg, device, data, method, model, pretrained, task })
}

/// The task the data call for: classification, or — a dataset of label maps — segmentation with
/// the dataset's ignore label and the configured class weights (from the training split).
fn task_of(cfg: &TrainConfig, data: &RunData) -> Result<Box<dyn Task>> {
    if data.train.label_shape().is_none() {
        return Ok(Box::new(Classification));
    }
    let class_weights = match cfg.train.class_weights {
        ClassWeights::MedianFrequency => Some(dgl_data::median_frequency_weights(data.train.as_ref())?),
        ClassWeights::None => None,
    };
    let loss = WeightedCrossEntropy { class_weights, ignore_index: data.train.ignore_label() };
    Ok(Box::new(Segmentation { num_classes: data.train.num_classes(), loss }))
}
