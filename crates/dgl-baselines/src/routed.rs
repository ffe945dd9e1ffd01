//! The methods that are one routed step of `dgl-core` ([`dgl_core::RoutedMethod`]): plain joint
//! training (Concat; with a one-modality model, the unimodal baselines), DGL (paper Eq. 15) and
//! its two ablations (Table 3).

use std::ops::{Deref, DerefMut};

use dgl_core::{Method, Result, RoutedMethod, Routing};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, HeadSupport, MethodDescriptor, MethodSpec, ModalityCount, ModelFacts, TaskKind};
use crate::util::check_non_negative;

const ANY_TASK: &[TaskKind] = &[TaskKind::Classification, TaskKind::DenseLabels];

/// Plain joint training: L_mm only. No options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VanillaConfig {}

impl MethodSpec for VanillaConfig {
    const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
        name: "vanilla",
        label: "Concat",
        summary: "plain joint training, CE of the fused logits (with one modality: a unimodal model)",
        modalities: ModalityCount::AtLeast(1),
        heads: HeadSupport::Any,
        tasks: ANY_TASK,
        needs_validation: false,
    };

    fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Method>> {
        Ok(Box::new(RoutedMethod::new(Self::DESCRIPTOR.name, Routing::plain())))
    }

    fn schedule(_bench: Option<Benchmark>) -> Schedule {
        Schedule::new(
            2e-3,
            &[70],
            "silent (the GDL code that produced this row is not runnable); DGL's schedule is used",
        )
    }
}

/// DGL and its ablations: the unimodal-loss weight α of Eq. 15 (L = L_d + α Σ_m L_m).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DglOptions {
    /// α: the weight of each unimodal loss L_m = CE(h(0, …, z_m, …, 0)) (paper: 4 on CREMA-D, 2 on
    /// Kinetics-Sounds and VGGSound). 0 leaves only L_d: plain training of the head, none of the
    /// encoders (DGL) or of everything (UT only).
    pub unimodal_weight: f64,
}

impl Default for DglOptions {
    fn default() -> Self {
        Self { unimodal_weight: 4.0 }
    }
}

const DGL_SCRIPTS: &str = "GeWu-Lab/GDL: main_dgl.py args (SGD 0.9, wd 1e-4, MultiStepLR [70]) and every shipped script's `--learning_rate 0.002`";

impl DglOptions {
    fn check(&self) -> Result<()> {
        check_non_negative("unimodal_weight", self.unimodal_weight)
    }

    /// A unimodal model needs no modality dropout: with α = 0, DGL trains one modality too.
    fn check_modalities(&self, d: &MethodDescriptor, model: &ModelFacts<'_>) -> Result<()> {
        d.check_task(model.task)?;
        if self.unimodal_weight == 0.0 && model.modalities >= 1 {
            return Ok(());
        }
        d.check_modalities(model.modalities)
    }

    fn official(bench: Option<Benchmark>) -> Self {
        Self { unimodal_weight: if bench.is_none_or(|b| b == Benchmark::CremaD) { 4.0 } else { 2.0 } }
    }

    fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
        let source = match bench.unwrap_or(Benchmark::CremaD) {
            Benchmark::CremaD => "GDL `cramed_dgl.sh` (α=4 → 77.48, the Table-1 value)",
            Benchmark::KineticsSounds => "GDL `ks_dgl.sh` (α=2 → 74.78, the Table-1 value)",
            Benchmark::VggSound => "GDL `vggsound.sh`",
        };
        vec![Setting::new("method.unimodal_weight", Self::official(bench).unimodal_weight, source)]
    }
}

/// Declares a DGL variant: a configuration type with [`DglOptions`]'s options, its descriptor and
/// routing.
macro_rules! dgl_variant {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $label:literal, $summary:literal, $routing:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $ty(pub DglOptions);

        impl Deref for $ty {
            type Target = DglOptions;
            fn deref(&self) -> &DglOptions {
                &self.0
            }
        }

        impl DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut DglOptions {
                &mut self.0
            }
        }

        impl MethodSpec for $ty {
            const DESCRIPTOR: MethodDescriptor = MethodDescriptor {
                name: $name,
                label: $label,
                summary: $summary,
                modalities: ModalityCount::AtLeast(2),
                heads: HeadSupport::Any,
                tasks: ANY_TASK,
                needs_validation: false,
            };

            fn validate(&self) -> Result<()> {
                self.0.check()
            }

            fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
                self.0.check_modalities(&Self::DESCRIPTOR, model)
            }

            fn build(&self, _ctx: &BuildContext) -> Result<Box<dyn Method>> {
                Ok(Box::new(RoutedMethod::new($name, $routing(self.unimodal_weight))))
            }

            fn official(bench: Option<Benchmark>) -> Self {
                Self(DglOptions::official(bench))
            }

            fn official_settings(bench: Option<Benchmark>) -> Vec<Setting> {
                DglOptions::official_settings(bench)
            }

            fn schedule(_bench: Option<Benchmark>) -> Schedule {
                Schedule::new(2e-3, &[70], DGL_SCRIPTS)
            }
        }
    };
}

dgl_variant!(
    /// `dgl`: the head trained only by L_d on detached features, each encoder only by α·L_m (Eq. 15).
    DglConfig,
    "dgl",
    "DGL",
    "Disentangled Gradient Learning: head by L_d on sg z, encoder m by α·L_m only (Eq. 15)",
    Routing::dgl
);
dgl_variant!(
    /// `dgl-mt`: multimodal truncation only (Table 3, "+MT").
    DglMtConfig,
    "dgl-mt",
    "+MT",
    "DGL ablation: the multimodal loss does not reach the encoders (Table 3)",
    Routing::mt_only
);
dgl_variant!(
    /// `dgl-ut`: unimodal truncation only (Table 3, "+UT").
    DglUtConfig,
    "dgl-ut",
    "+UT",
    "DGL ablation: the unimodal losses do not reach the head (Table 3)",
    Routing::ut_only
);
