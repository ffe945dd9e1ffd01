//! Datasets of a run (train / validation / test) and the [`BatchSource`] methods iterate.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use dgl_core::{BatchSource, Split};
use dgl_data::{load_batch, stratified_split, Dataset, Mode, Subset};

use crate::config::TrainConfig;
use crate::error::{CliError, Result};

/// The splits of a run. `modalities` selects, by index into the dataset's modalities, what the
/// model sees (all of them, or the subset the model names).
pub struct RunData {
    pub train: Arc<dyn Dataset>,
    pub validation: Option<Arc<dyn Dataset>>,
    pub test: Arc<dyn Dataset>,
    pub modalities: Vec<usize>,
    pub batch_size: usize,
    pub device: Device,
}

impl RunData {
    /// Builds the datasets named by the configuration; carves a validation split from the training
    /// set (stratified, seeded) when `need_validation`.
    pub fn build(cfg: &TrainConfig, need_validation: bool, device: &Device) -> Result<Self> {
        // The synthetic set's draws depend on the run seed; on-disk layouts are what they are.
        let spec = cfg.data.dataset.for_run_seed(cfg.seed);
        let open = |split| spec.open(split).map(|(d, _report)| Arc::<dyn Dataset>::from(d));
        let (full_train, test) = (open(dgl_data::Split::Train)?, open(dgl_data::Split::Test)?);
        crate::config::check_data_modalities(cfg, &full_train.modality_names())?;
        let (train, validation) = if need_validation {
            let labels = (0..full_train.len()).map(|i| full_train.label(i)).collect::<dgl_data::Result<Vec<_>>>()?;
            let (tr, va) = stratified_split(&labels, cfg.data.validation_fraction.max(0.05), cfg.seed ^ 0x5EED);
            let t: Arc<dyn Dataset> = Arc::new(Subset { inner: full_train.clone(), indices: tr });
            let v: Arc<dyn Dataset> = Arc::new(Subset { inner: full_train, indices: va });
            (t, Some(v))
        } else {
            (full_train, None)
        };
        check_train_batches(cfg, train.as_ref())?;
        let modalities = (0..train.modality_names().len()).collect();
        Ok(Self { train, validation, test, modalities, batch_size: cfg.train.batch_size, device: device.clone() })
    }

    /// Keeps the modalities `names`, in that order: all of the dataset's or a subset (a unimodal
    /// model keeps one), listed in any order (batches follow it).
    pub fn select_modalities<S: AsRef<str>>(&mut self, names: &[S]) -> Result<()> {
        let all = self.train.modality_names();
        self.modalities = names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                all.iter().position(|n| n == name).ok_or_else(|| {
                    CliError::Config(format!(
                        "model.modalities names `{name}`, and the dataset has no such modality (it has {all:?})"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    pub fn modality_names(&self) -> Vec<String> {
        let all = self.train.modality_names();
        self.modalities.iter().map(|&i| all[i].clone()).collect()
    }

    pub fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let all = self.train.modality_shapes();
        self.modalities.iter().map(|&i| all[i].clone()).collect()
    }

    /// Loads a batch and keeps the selected modalities.
    pub fn batch(&self, ds: &dyn Dataset, indices: &[usize], mode: Mode) -> Result<(Vec<Tensor>, Tensor)> {
        let b = load_batch(ds, indices, mode, &self.device)?;
        let inputs = self.modalities.iter().map(|&i| b.inputs[i].clone()).collect();
        Ok((inputs, b.labels))
    }

    fn split(&self, split: Split) -> Option<&Arc<dyn Dataset>> {
        match split {
            Split::Train => Some(&self.train),
            Split::Validation => self.validation.as_ref(),
        }
    }
}

/// Refuses, before training, a batch size that leaves a training batch too small for the model's
/// batch normalisation ([`dgl_models::ModelConfig::min_train_batch`]): the configured batch, or
/// the last partial one when `train.drop_last` is off. The model's modalities are the dataset's
/// (checked by [`crate::config::check_data_modalities`] before).
fn check_train_batches(cfg: &TrainConfig, train: &dyn Dataset) -> Result<()> {
    let (names, shapes) = (train.modality_names(), train.modality_shapes());
    let model_shapes =
        cfg.model
            .modalities
            .iter()
            .map(|m| {
                names.iter().position(|n| *n == m.name).map(|i| shapes[i].clone()).ok_or_else(|| {
                    CliError::Config(format!("the dataset has no `{}` modality (it has {names:?})", m.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
    let min = cfg.model.min_train_batch(&model_shapes)?;
    let (n, b) = (train.len(), cfg.train.batch_size);
    let last = if cfg.train.drop_last || n % b == 0 { b.min(n) } else { n % b };
    if n > 0 && last < min {
        return Err(CliError::Config(format!(
            "a training batch of {last} sample(s) (train.batch_size = {b}, {n} training samples, drop_last = {}): the \
             model's ResNet ends on a single position per sample for the input shapes {shapes:?}, and batch \
             normalisation in training needs at least {min} samples per batch; raise train.batch_size{}",
            cfg.train.drop_last,
            if cfg.train.drop_last { "" } else { " or set train.drop_last = true" }
        )));
    }
    Ok(())
}

impl BatchSource for RunData {
    fn num_batches(&self, split: Split) -> usize {
        self.split(split).map_or(0, |d| d.len().div_ceil(self.batch_size))
    }

    fn for_each_batch(
        &self,
        split: Split,
        limit: Option<usize>,
        f: &mut dyn FnMut(&[Tensor], &Tensor) -> dgl_core::Result<()>,
    ) -> dgl_core::Result<()> {
        let ds = self
            .split(split)
            .ok_or_else(|| dgl_core::Error::InvalidInput("no validation split was prepared for this method".into()))?;
        let batches = dgl_data::epoch_batches(ds.len(), self.batch_size, None, false);
        for idx in batches.iter().take(limit.unwrap_or(usize::MAX)) {
            let (x, y) =
                self.batch(ds.as_ref(), idx, Mode::Eval).map_err(|e| dgl_core::Error::InvalidInput(e.to_string()))?;
            f(&x, &y)?;
        }
        Ok(())
    }
}
