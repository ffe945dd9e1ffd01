//! Per-dataset defaults of every method, each with the official source it comes from.
//!
//! The DGL paper ran every Table-1 row with "batch 64, 100 epochs, concat, ResNet-18" and states no
//! per-method settings (official-code.md §7); the values below are what each method's own official
//! scripts (or, where those are silent, the stated fallback) use on CREMA-D, Kinetics-Sounds and
//! VGGSound. [`markdown_table`] renders all of them; docs/methods.md holds that table verbatim
//! (a test checks it), so the documentation cannot drift from the code.
//!
//! Two kinds of defaults:
//! - the method's own options ([`method_config`], declared by each method's
//!   [`crate::spec::MethodSpec::official`]), used on every preset;
//! - its learning-rate schedule for the 100-epoch protocol ([`crate::spec::MethodSpec::schedule`],
//!   [`unimodal_schedule`] for a one-modality model), used by the paper preset
//!   (a run of another length keeps its own, unified schedule — a 10-epoch run cannot follow a
//!   schedule that decays at epoch 70).

use std::fmt;

use crate::registry::{MethodConfig, MethodKind};

/// The datasets the official scripts give settings for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Benchmark {
    CremaD,
    KineticsSounds,
    VggSound,
}

impl Benchmark {
    pub const ALL: [Benchmark; 3] = [Benchmark::CremaD, Benchmark::KineticsSounds, Benchmark::VggSound];

    /// The benchmark of a dataset name as the CLI spells it (`cremad`, `ks`, `vggsound`); `None`
    /// for any other dataset (synthetic, AV-digits, generic, a cache), which then gets the
    /// CREMA-D settings — the only dataset every official repository covers.
    pub fn from_dataset_name(name: &str) -> Option<Self> {
        match name {
            "cremad" => Some(Self::CremaD),
            "ks" => Some(Self::KineticsSounds),
            "vggsound" => Some(Self::VggSound),
            _ => None,
        }
    }
}

impl fmt::Display for Benchmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Benchmark::CremaD => "CREMA-D",
            Benchmark::KineticsSounds => "Kinetics-Sounds",
            Benchmark::VggSound => "VGGSound",
        })
    }
}

/// One default: the configuration key, its value and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: &'static str,
    pub value: String,
    pub source: &'static str,
}

/// A learning-rate schedule for the 100-epoch protocol (SGD, momentum 0.9, weight decay 1e-4 in
/// every official repository): base rate, MultiStepLR milestones (empty = constant) and γ.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub lr: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub source: &'static str,
}

impl Setting {
    pub fn new(key: &'static str, value: impl fmt::Display, source: &'static str) -> Self {
        Self { key, value: value.to_string(), source }
    }
}

impl Schedule {
    /// MultiStepLR(`milestones`, γ = 0.1) from `lr`.
    pub fn new(lr: f64, milestones: &[usize], source: &'static str) -> Self {
        Self { lr, milestones: milestones.to_vec(), gamma: 0.1, source }
    }
}

/// The learning-rate schedule of a unimodal model of `modality` (plain training of one encoder)
/// for the 100-epoch protocol: the official unimodal runs (GDL `main.py`).
pub fn unimodal_schedule(modality: &str, b: Option<Benchmark>) -> Schedule {
    match modality {
        "visual" if b.is_none_or(|b| b == Benchmark::CremaD) => Schedule::new(
            1e-3,
            &[30, 70],
            "GDL `main.py` MultiStepLR [30, 70]; `cramed_audio.sh` passes lr 1e-3 for visual",
        ),
        "visual" => {
            Schedule::new(2e-3, &[30, 70], "GDL `main.py` defaults (lr 2e-3, MultiStepLR [30, 70]), `ks_visual.sh`")
        }
        _ => {
            Schedule::new(2e-3, &[30, 70], "GDL `main.py` defaults (lr 2e-3, MultiStepLR [30, 70]), `cramed_audio.sh`")
        }
    }
}

/// The official configuration of `kind` on `b` (`None`: any other dataset, which gets the
/// CREMA-D values). Every option is explicit, so the saved `config.toml` records it.
pub fn method_config(kind: MethodKind, b: Option<Benchmark>) -> MethodConfig {
    kind.official(b)
}

/// Every default of `kind` on `b` as (key, value, source) rows.
pub fn settings(kind: MethodKind, b: Option<Benchmark>) -> Vec<Setting> {
    let mut out = kind.official_settings(b);
    out.push(schedule_setting(&kind.schedule(b)));
    out
}

fn schedule_setting(sch: &Schedule) -> Setting {
    let milestones = if sch.milestones.is_empty() { "constant".to_string() } else { format!("{:?}", sch.milestones) };
    Setting { key: "lr / milestones (paper preset)", value: format!("{} / {milestones}", sch.lr), source: sch.source }
}

/// The modalities of the unimodal rows of Table 1 (a one-modality `vanilla` model each).
pub const UNIMODAL_ROWS: [&str; 2] = ["audio", "visual"];

/// The table of every method's defaults on every benchmark (docs/methods.md holds it verbatim).
pub fn markdown_table() -> String {
    let mut s = String::from("| method | dataset | key | value | source |\n|---|---|---|---|---|\n");
    let mut rows = |name: String, per: Vec<Vec<Setting>>| {
        for (i, st) in per[0].iter().enumerate() {
            // A setting equal on every benchmark is one row.
            if per.iter().all(|p| p.get(i) == Some(st)) {
                s += &format!("| {name} | all | `{}` | {} | {} |\n", st.key, st.value, st.source);
                continue;
            }
            for (b, p) in Benchmark::ALL.iter().zip(&per) {
                if let Some(st) = p.get(i) {
                    s += &format!("| {name} | {b} | `{}` | {} | {} |\n", st.key, st.value, st.source);
                }
            }
        }
    };
    for m in UNIMODAL_ROWS {
        let per = Benchmark::ALL.iter().map(|b| vec![schedule_setting(&unimodal_schedule(m, Some(*b)))]).collect();
        rows(format!("`vanilla`, `{m}` only"), per);
    }
    for &kind in MethodKind::ALL {
        rows(format!("`{kind}`"), Benchmark::ALL.iter().map(|b| settings(kind, Some(*b))).collect());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(c: &MethodConfig) -> Option<f64> {
        match c {
            MethodConfig::Dgl(c) => Some(c.unimodal_weight),
            MethodConfig::OgmGe(c) => Some(c.modulation_strength),
            _ => None,
        }
    }

    #[test]
    fn per_dataset_defaults_follow_the_official_scripts() {
        let w = |k, b| weight(&method_config(k, b));
        assert_eq!(w(MethodKind::Dgl, Some(Benchmark::CremaD)), Some(4.0));
        assert_eq!(w(MethodKind::Dgl, Some(Benchmark::KineticsSounds)), Some(2.0));
        assert_eq!(w(MethodKind::Dgl, Some(Benchmark::VggSound)), Some(2.0));
        assert_eq!(w(MethodKind::OgmGe, Some(Benchmark::CremaD)), Some(0.8));
        assert_eq!(w(MethodKind::OgmGe, Some(Benchmark::VggSound)), Some(0.1));
        assert_eq!(w(MethodKind::Dgl, None), Some(4.0), "other datasets get the CREMA-D values");
        let MethodConfig::Pmr(p) = method_config(MethodKind::Pmr, Some(Benchmark::CremaD)) else { panic!() };
        assert_eq!(p.momentum_coef, 0.0);
        for &kind in MethodKind::ALL {
            for b in Benchmark::ALL.map(Some).into_iter().chain([None]) {
                method_config(kind, b).validate().unwrap_or_else(|e| panic!("{kind} on {b:?}: {e}"));
            }
        }
    }

    #[test]
    fn schedules_follow_the_official_scripts() {
        assert_eq!(unimodal_schedule("audio", None).milestones, [30, 70]);
        assert_eq!(unimodal_schedule("visual", Some(Benchmark::CremaD)).lr, 1e-3);
        assert_eq!(MethodKind::Dgl.schedule(Some(Benchmark::KineticsSounds)).milestones, [70]);
        assert!(MethodKind::MmPareto.schedule(None).milestones.is_empty());
        assert_eq!(MethodKind::Dnr.schedule(Some(Benchmark::KineticsSounds)).lr, 1e-3);
        assert_eq!(MethodKind::OgmGe.schedule(Some(Benchmark::CremaD)).lr, 1e-3);
    }

    /// Every key of the table is an option of the method's configuration (or the schedule).
    #[test]
    fn settings_name_real_options() {
        for &kind in MethodKind::ALL {
            let t = toml::Value::try_from(method_config(kind, None)).unwrap();
            for st in settings(kind, None) {
                if let (Some(key), false) = (st.key.strip_prefix("method."), st.value.starts_with("none")) {
                    for k in key.split(" / ") {
                        assert!(t.get(k).is_some(), "{kind}: `{k}` is not an option of {t}");
                    }
                }
            }
        }
    }

    /// docs/methods.md holds the rendered table, so every documented default is the code's.
    #[test]
    fn docs_hold_the_defaults_table() {
        let docs = include_str!("../../../docs/methods.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/methods.md is out of date: paste `dgl_baselines::defaults::markdown_table()` (see the test output)\n{}",
            markdown_table()
        );
    }
}
