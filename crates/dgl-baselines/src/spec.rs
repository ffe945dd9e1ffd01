//! What a method declares about itself, once: its [`MethodDescriptor`] (name, what it supports,
//! whether it needs a validation split), its own configuration type and how it is built
//! ([`MethodSpec`]), and its per-dataset official defaults. The registry
//! ([`crate::registry`]) lists the specs, one line each, and derives every list from them.

use std::fmt::Debug;

use dgl_core::{Error, Method, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::defaults::{Benchmark, Schedule, Setting};

/// How many modalities a method can train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModalityCount {
    /// m ≥ n.
    AtLeast(usize),
    /// m = n (unused since OGM, OGM-GE, PMR and AGM gained their M-modality forms).
    Exactly(usize),
}

impl ModalityCount {
    pub fn allows(self, m: usize) -> bool {
        match self {
            ModalityCount::AtLeast(n) => m >= n,
            ModalityCount::Exactly(n) => m == n,
        }
    }

    /// "2 or more modalities", "exactly 2 modalities".
    pub fn describe(self) -> String {
        match self {
            ModalityCount::AtLeast(n) => format!("{n} or more modalities"),
            ModalityCount::Exactly(n) => format!("exactly {n} modalities"),
        }
    }
}

/// The fusion heads a method can train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSupport {
    /// Any head h(z_1, …, z_M) that accepts zeroed representations.
    Any,
    /// A head that is affine in each modality, h(z) = Σ_m W^{(m)} z_m + b (concat, sum): the
    /// method's formula reads W^{(m)} (OGM / OGM-GE's official per-modality logits).
    LinearInEachModality,
    /// Any late-fusion head: the method puts heads of its own on the pooled features z_m (MLA's
    /// shared `Linear(d, K)`), so a dense fusion (MMTM, where z_m is a feature map) is refused.
    LateFusion,
}

/// What the training task's labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// One class per sample.
    Classification,
    /// A label per position (semantic segmentation), with an ignore value.
    DenseLabels,
}

/// A method's fixed facts, declared next to its implementation.
#[derive(Clone, Copy, Debug)]
pub struct MethodDescriptor {
    /// The configuration / command-line name (`ogm-ge`).
    pub name: &'static str,
    /// The label of its row in the paper's tables (`OGM-GE`).
    pub label: &'static str,
    /// One line for `--help` and docs.
    pub summary: &'static str,
    pub modalities: ModalityCount,
    pub heads: HeadSupport,
    pub tasks: &'static [TaskKind],
    /// Whether the loop must carve a validation split from the training set.
    pub needs_validation: bool,
}

impl MethodDescriptor {
    /// Refuses a task the method does not support.
    pub fn check_task(&self, task: TaskKind) -> Result<()> {
        if self.tasks.contains(&task) {
            return Ok(());
        }
        let what = match task {
            TaskKind::Classification => "classification",
            TaskKind::DenseLabels => "dense prediction (a label per position, e.g. segmentation)",
        };
        Err(Error::InvalidInput(format!(
            "`{}` does not train {what}: as published it needs per-sample unimodal logits or class prototypes",
            self.name
        )))
    }

    /// The facts every method checks: the modality count and the task.
    pub fn check_facts(&self, model: &ModelFacts<'_>) -> Result<()> {
        self.check_modalities(model.modalities)?;
        self.check_task(model.task)
    }

    /// Refuses a modality count the method does not support.
    pub fn check_modalities(&self, m: usize) -> Result<()> {
        if self.modalities.allows(m) {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "`{}` supports {}; the model has {m} modalities",
                self.name,
                self.modalities.describe()
            )))
        }
    }
}

/// Facts about the model a method will train, known before it is built (from its configuration).
#[derive(Clone, Copy, Debug)]
pub struct ModelFacts<'a> {
    pub modalities: usize,
    /// The fusion head's configuration name (`concat`, `gated`, …).
    pub head: &'a str,
    /// Whether the head is affine in each modality.
    pub head_is_linear: bool,
    /// Whether the fusion is dense (inside the encoders: z_m is a feature map, not a vector).
    pub dense: bool,
    /// What the model predicts: a class per sample, or a class per position (segmentation).
    pub task: TaskKind,
}

/// What building a method needs beyond its options.
#[derive(Clone, Copy, Debug)]
pub struct BuildContext {
    /// K: PMR prototypes, D&R k-means, the separate heads of MMPareto and G-Blending, MLA's head.
    pub num_classes: usize,
    /// Seeds the method's own randomness (OGM-GE noise, k-means, head initialisation).
    pub seed: u64,
}

/// A method's configuration type: its options (every field with the official default), their
/// checks, how the method is built from them, and its official per-dataset defaults.
pub trait MethodSpec: Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned {
    const DESCRIPTOR: MethodDescriptor;

    /// Checks every option before any work (errors name the option).
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Refuses, before anything is built, a model the method cannot train. Default: the
    /// descriptor's modality count and head support.
    fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
        let d = Self::DESCRIPTOR;
        d.check_facts(model)?;
        if d.heads == HeadSupport::LinearInEachModality && !model.head_is_linear {
            return Err(Error::InvalidInput(format!(
                "`{}` cannot train with model.fusion = \"{}\": it needs a head affine in each modality (concat, sum)",
                d.name, model.head
            )));
        }
        if d.heads == HeadSupport::LateFusion && model.dense {
            return Err(Error::InvalidInput(format!(
                "`{}` cannot train with model.fusion = \"{}\": it puts heads of its own on each modality's pooled \
                 features, and this dense fusion has none (the paper leaves it out of its dense-fusion table)",
                d.name, model.head
            )));
        }
        Ok(())
    }

    /// The method, from validated options.
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>>;

    /// The options the method's official scripts use on `bench` (`None`: any other dataset, which
    /// gets the CREMA-D values — the only dataset every official repository covers).
    fn official(_bench: Option<Benchmark>) -> Self {
        Self::default()
    }

    /// The rows of the defaults table: each official option with its source.
    fn official_settings(_bench: Option<Benchmark>) -> Vec<Setting> {
        Vec::new()
    }

    /// The learning-rate schedule of the official 100-epoch protocol on `bench`.
    fn schedule(bench: Option<Benchmark>) -> Schedule;
}
