//! The method registry: names, configuration (serde, TOML/JSON) and construction.

use std::fmt;
use std::str::FromStr;

use dgl_core::{Error, Method, Result, RoutedMethod, Routing};
use serde::{Deserialize, Serialize};

use crate::agm::{Agm, AgmConfig};
use crate::dnr::{Dnr, DnrConfig};
use crate::gblending::{self, GBlendingConfig, GBlendingOgr};
use crate::mla::{Mla, MlaConfig};
use crate::mmpareto::{MmPareto, MmParetoConfig};
use crate::ogm::{Ogm, OgmConfig};
use crate::pmr::{Pmr, PmrConfig};
use crate::util::{check_hp, hp_error};

/// Every method of the paper's Table 1 (and DGL's ablations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MethodKind {
    /// Plain joint training of the concat model ("Concat").
    #[serde(rename = "vanilla", alias = "concat")]
    Vanilla,
    /// Disentangled Gradient Learning.
    #[serde(rename = "dgl")]
    Dgl,
    /// DGL ablation: multimodal truncation only.
    #[serde(rename = "dgl-mt")]
    DglMt,
    /// DGL ablation: unimodal truncation only.
    #[serde(rename = "dgl-ut")]
    DglUt,
    /// Unimodal model of the first ("audio") modality: plain training of a 1-modality model.
    #[serde(rename = "audio-only")]
    AudioOnly,
    /// Unimodal model of the second ("visual") modality.
    #[serde(rename = "visual-only")]
    VisualOnly,
    /// G-Blending as the DGL paper ran it: L_mm + α Σ L_m.
    #[serde(rename = "gblending")]
    GBlending,
    /// G-Blending with re-estimated OGR weights.
    #[serde(rename = "gblending-ogr")]
    GBlendingOgr,
    #[serde(rename = "ogm")]
    Ogm,
    #[serde(rename = "ogm-ge")]
    OgmGe,
    #[serde(rename = "pmr")]
    Pmr,
    #[serde(rename = "agm")]
    Agm,
    #[serde(rename = "mla")]
    Mla,
    #[serde(rename = "mmpareto")]
    MmPareto,
    /// Diagnosing & Re-learning.
    #[serde(rename = "dnr")]
    Dnr,
}

impl MethodKind {
    /// Every kind, in the paper's order.
    pub const ALL: [MethodKind; 15] = [
        MethodKind::Vanilla,
        MethodKind::Dgl,
        MethodKind::DglMt,
        MethodKind::DglUt,
        MethodKind::AudioOnly,
        MethodKind::VisualOnly,
        MethodKind::GBlending,
        MethodKind::GBlendingOgr,
        MethodKind::Ogm,
        MethodKind::OgmGe,
        MethodKind::Pmr,
        MethodKind::Agm,
        MethodKind::Mla,
        MethodKind::MmPareto,
        MethodKind::Dnr,
    ];

    /// The name used in configurations and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Vanilla => "vanilla",
            MethodKind::Dgl => "dgl",
            MethodKind::DglMt => "dgl-mt",
            MethodKind::DglUt => "dgl-ut",
            MethodKind::AudioOnly => "audio-only",
            MethodKind::VisualOnly => "visual-only",
            MethodKind::GBlending => "gblending",
            MethodKind::GBlendingOgr => "gblending-ogr",
            MethodKind::Ogm => "ogm",
            MethodKind::OgmGe => "ogm-ge",
            MethodKind::Pmr => "pmr",
            MethodKind::Agm => "agm",
            MethodKind::Mla => "mla",
            MethodKind::MmPareto => "mmpareto",
            MethodKind::Dnr => "dnr",
        }
    }

    /// The default α, or `None` for a method without the knob. Meaning per method: DGL/ablations
    /// and G-Blending: unimodal-loss weight (paper, CREMA-D: 4; KS/VGGSound use 2); OGM: modulation
    /// strength (README: 0.8 CREMA-D, 0.1 VGGSound); PMR: prototype-loss weight (2.0, CREMA-D
    /// concat); AGM: modulation strength (1.5, author's CREMA-D value); MMPareto: γ_mag (1.5);
    /// D&R: λ of w = tanh(λ·gap) (3).
    pub fn default_alpha(self) -> Option<f64> {
        match self {
            MethodKind::Dgl | MethodKind::DglMt | MethodKind::DglUt | MethodKind::GBlending => Some(4.0),
            MethodKind::Ogm | MethodKind::OgmGe => Some(0.8),
            MethodKind::Pmr => Some(2.0),
            MethodKind::Agm => Some(1.5),
            MethodKind::MmPareto => Some(1.5),
            MethodKind::Dnr => Some(3.0),
            MethodKind::Vanilla
            | MethodKind::AudioOnly
            | MethodKind::VisualOnly
            | MethodKind::GBlendingOgr
            | MethodKind::Mla => None,
        }
    }

    /// For the unimodal baselines, the index of the modality the (1-modality) model keeps.
    pub fn unimodal_modality(self) -> Option<usize> {
        match self {
            MethodKind::AudioOnly => Some(0),
            MethodKind::VisualOnly => Some(1),
            _ => None,
        }
    }

    /// For the unimodal baselines, the name of the modality they train (`audio` / `visual`): the
    /// data and model keep the modality of that name, wherever the dataset lists it.
    pub fn unimodal_modality_name(self) -> Option<&'static str> {
        self.unimodal_modality().map(|i| ["audio", "visual"][i])
    }

    /// Whether the loop must carve a validation split from the training set.
    pub fn needs_validation(self) -> bool {
        matches!(self, MethodKind::GBlendingOgr | MethodKind::Dnr)
    }

    /// Methods written for exactly two modalities.
    pub fn two_modalities_only(self) -> bool {
        matches!(self, MethodKind::Ogm | MethodKind::OgmGe | MethodKind::Pmr | MethodKind::Agm)
    }

    fn valid_names() -> String {
        Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "concat" {
            return Ok(MethodKind::Vanilla);
        }
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| Error::InvalidInput(format!("unknown method `{s}`; valid methods: {}", Self::valid_names())))
    }
}

/// A method and its hyper-parameters. Every field has a default (the paper's or the official
/// code's); unknown fields are refused. Only the table of the selected method is used.
///
/// ```toml
/// name = "ogm-ge"
/// alpha = 0.8
/// [ogm]
/// modulation_ends = 50
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodConfig {
    /// Which method.
    pub name: MethodKind,
    /// The shared knob (see [`MethodKind::default_alpha`]); `None` = the method's default. Setting
    /// it for a method without the knob is an error.
    pub alpha: Option<f64>,
    pub gblending: GBlendingConfig,
    pub ogm: OgmConfig,
    pub pmr: PmrConfig,
    pub agm: AgmConfig,
    pub mla: MlaConfig,
    pub mmpareto: MmParetoConfig,
    pub dnr: DnrConfig,
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::new(MethodKind::Dgl)
    }
}

impl MethodConfig {
    /// Defaults for `kind`.
    pub fn new(kind: MethodKind) -> Self {
        Self {
            name: kind,
            alpha: None,
            gblending: GBlendingConfig::default(),
            ogm: OgmConfig::default(),
            pmr: PmrConfig::default(),
            agm: AgmConfig::default(),
            mla: MlaConfig::default(),
            mmpareto: MmParetoConfig::default(),
            dnr: DnrConfig::default(),
        }
    }

    /// `kind` with α.
    pub fn with_alpha(kind: MethodKind, alpha: f64) -> Self {
        Self { alpha: Some(alpha), ..Self::new(kind) }
    }

    /// The α the method will use (`None` for a method without the knob).
    pub fn effective_alpha(&self) -> Option<f64> {
        self.alpha.or(self.name.default_alpha())
    }

    /// Checks every hyper-parameter before any work.
    pub fn validate(&self) -> Result<()> {
        match (self.alpha, self.name.default_alpha()) {
            (Some(a), None) => {
                return Err(Error::InvalidInput(format!(
                    "`{}` has no alpha hyper-parameter, but alpha = {a} was given",
                    self.name
                )))
            }
            (Some(a), Some(_)) => {
                check_hp(a.is_finite() && a >= 0.0, "alpha", a, "must be finite and >= 0")?;
                if self.name == MethodKind::MmPareto && a == 0.0 {
                    return Err(hp_error("alpha", a, "MMPareto's γ_mag must be > 0"));
                }
            }
            _ => {}
        }
        self.gblending.validate()?;
        self.ogm.validate()?;
        self.pmr.validate()?;
        self.agm.validate()?;
        self.dnr.validate()
    }

    /// Refuses, before anything is built, a fusion head for which the method's official formula is
    /// undefined: OGM / OGM-GE with their official per-modality logits W_m z_m + b_m need a head
    /// linear in each modality (concat, sum), not gated or FiLM. `head` is the head's configuration
    /// name (`model.fusion`), `linear` whether it is linear in each modality.
    pub fn check_head(&self, head: &str, linear: bool) -> Result<()> {
        let official_ogm = matches!(self.name, MethodKind::Ogm | MethodKind::OgmGe)
            && self.ogm.unimodal_logits == crate::ogm::OgmUnimodalLogits::Official;
        if official_ogm && !linear {
            return Err(Error::InvalidInput(format!(
                "`{}` cannot train with model.fusion = \"{head}\": {}",
                self.name,
                crate::ogm::NON_LINEAR_HEAD
            )));
        }
        Ok(())
    }
}

/// Builds the method of `cfg` (validated first). `num_classes` is K (PMR prototypes, D&R k-means,
/// the separate heads of MMPareto and G-Blending, MLA's shared head); `seed` seeds the method's own
/// randomness (OGM-GE noise, k-means, head init).
pub fn build_method(cfg: &MethodConfig, num_classes: usize, seed: u64) -> Result<Box<dyn Method>> {
    cfg.validate()?;
    check_hp(num_classes >= 1, "num_classes", num_classes, "must be >= 1")?;
    let alpha = cfg.effective_alpha().unwrap_or(0.0);
    let name = cfg.name.as_str();
    Ok(match cfg.name {
        MethodKind::Vanilla | MethodKind::AudioOnly | MethodKind::VisualOnly => {
            Box::new(RoutedMethod::new(name, Routing::plain()))
        }
        MethodKind::Dgl => Box::new(RoutedMethod::new(name, Routing::dgl(alpha))),
        MethodKind::DglMt => Box::new(RoutedMethod::new(name, Routing::mt_only(alpha))),
        MethodKind::DglUt => Box::new(RoutedMethod::new(name, Routing::ut_only(alpha))),
        MethodKind::GBlending => Box::new(gblending::fixed(alpha, &cfg.gblending, num_classes, seed)),
        MethodKind::GBlendingOgr => Box::new(GBlendingOgr::new(cfg.gblending.clone(), num_classes, seed)),
        MethodKind::Ogm => Box::new(Ogm::new(alpha, false, cfg.ogm.clone(), seed)),
        MethodKind::OgmGe => Box::new(Ogm::new(alpha, true, cfg.ogm.clone(), seed)),
        MethodKind::Pmr => Box::new(Pmr::new(alpha, cfg.pmr.clone(), num_classes)),
        MethodKind::Agm => Box::new(Agm::new(alpha, cfg.agm.clone())),
        MethodKind::Mla => Box::new(Mla::new(cfg.mla.clone(), num_classes, seed)),
        MethodKind::MmPareto => Box::new(MmPareto::new(alpha, cfg.mmpareto.clone(), num_classes, seed)),
        MethodKind::Dnr => Box::new(Dnr::new(alpha, cfg.dnr.clone(), num_classes, seed)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn names_round_trip_and_errors() {
        for k in MethodKind::ALL {
            assert_eq!(k.as_str().parse::<MethodKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!("Concat".parse::<MethodKind>().unwrap(), MethodKind::Vanilla);
        let e = "ogmge".parse::<MethodKind>().unwrap_err().to_string();
        assert!(e.contains("unknown method `ogmge`") && e.contains("ogm-ge") && e.contains("dnr"), "{e}");
    }

    #[test]
    fn serde_defaults_and_unknown_fields() {
        let c: MethodConfig = toml::from_str("name = \"pmr\"\nalpha = 3.0\n[pmr]\nmomentum_coef = 0.0\n").unwrap();
        assert_eq!(c.name, MethodKind::Pmr);
        assert_eq!(c.effective_alpha(), Some(3.0));
        assert_eq!(c.pmr.momentum_coef, 0.0);
        assert_eq!(c.pmr.modulation_ends, Some(70));
        let c: MethodConfig = toml::from_str("name = \"concat\"").unwrap();
        assert_eq!(c.name, MethodKind::Vanilla);
        assert!(toml::from_str::<MethodConfig>("name = \"dgl\"\nbeta = 1").is_err());
        assert!(toml::from_str::<MethodConfig>("name = \"ogm\"\n[ogm]\nmodulation_end = 3").is_err());
        assert!(toml::from_str::<MethodConfig>("name = \"nope\"").is_err());
        let c = MethodConfig::default();
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<MethodConfig>(&j).unwrap(), c);
        let t = toml::to_string(&MethodConfig::with_alpha(MethodKind::OgmGe, 0.1)).unwrap();
        assert_eq!(toml::from_str::<MethodConfig>(&t).unwrap(), MethodConfig::with_alpha(MethodKind::OgmGe, 0.1));
        let c: MethodConfig =
            toml::from_str("name = \"mla\"\n[mla]\nprojection = \"off\"\nfusion = \"entropy-batch\"").unwrap();
        assert_eq!(c.mla.projection, Some(crate::mla::MlaProjection::Off));
        assert_eq!(c.mla.variant, crate::mla::MlaVariant::Official);
        let c: MethodConfig = toml::from_str("name = \"mla\"\n[mla]\nvariant = \"masked-head\"").unwrap();
        assert_eq!(c.mla.projection(), crate::mla::MlaProjection::Replace);
        assert_eq!(c.mla.fusion(), crate::mla::MlaFusion::EntropySample);
        let c: MethodConfig =
            toml::from_str("name = \"mmpareto\"\n[mmpareto]\nunimodal_heads = \"zero-mask\"").unwrap();
        assert_eq!(c.mmpareto.unimodal_heads, crate::heads::UnimodalHeads::SharedMasked);
        assert_eq!(
            MethodConfig::new(MethodKind::MmPareto).mmpareto.unimodal_heads,
            crate::heads::UnimodalHeads::Separate
        );
    }

    #[test]
    fn validation() {
        assert!(MethodConfig::with_alpha(MethodKind::Mla, 1.0).validate().is_err());
        assert!(MethodConfig::with_alpha(MethodKind::Vanilla, 1.0).validate().is_err());
        assert!(MethodConfig::with_alpha(MethodKind::Dgl, -1.0).validate().is_err());
        assert!(MethodConfig::with_alpha(MethodKind::Dgl, f64::NAN).validate().is_err());
        assert!(MethodConfig::with_alpha(MethodKind::MmPareto, 0.0).validate().is_err());
        let mut c = MethodConfig::new(MethodKind::Ogm);
        c.ogm.modulation_starts = 10;
        c.ogm.modulation_ends = Some(5);
        assert!(c.validate().is_err());
        let mut c = MethodConfig::new(MethodKind::Dnr);
        c.dnr.every = 0;
        assert!(build_method(&c, 6, 0).is_err());
        for k in MethodKind::ALL {
            assert!(MethodConfig::new(k).validate().is_ok(), "{k}");
        }
    }

    /// Every method builds, checks a 2-modality toy, trains a few steps through the one loop
    /// shape (epoch hooks included) and predicts.
    #[test]
    fn every_method_trains_and_predicts() {
        for k in MethodKind::ALL {
            let bimodal = k.unimodal_modality().is_none();
            let model = if bimodal { Toy::new(&[3, 2], 4, 3, 1) } else { Toy::new(&[3], 4, 3, 1) };
            let data = Data::random(&model, 2, 1, 6, 2);
            let mut cfg = MethodConfig::new(k);
            cfg.gblending.ogr_every = 1;
            cfg.dnr.every = 1;
            let mut method = build_method(&cfg, 3, 0).unwrap();
            assert_eq!(method.name(), k.as_str());
            assert_eq!(method.needs_validation(), k.needs_validation(), "{k}");
            method.check(&model).unwrap();
            let mut sgd: dgl_core::Optimizer = dgl_core::Sgd::new(dgl_core::SgdConfig::default()).unwrap().into();
            for epoch in 0..2 {
                method.on_epoch_start(&model, epoch, &data).unwrap();
                for (i, (x, y)) in data.train.iter().enumerate() {
                    let mut ctx = dgl_core::StepContext {
                        clip_norm: Some(40.0),
                        step_in_epoch: i,
                        steps_per_epoch: data.train.len(),
                        global_step: (epoch * data.train.len() + i) as u64,
                        ..context(&model, &mut sgd, epoch)
                    };
                    let rep = method.train_step(&mut ctx, x, y).unwrap();
                    assert!(rep.losses.iter().all(|(_, v)| v.is_finite()), "{k}");
                    assert_eq!(rep.logits_mm.unwrap().dims(), &[6, 3], "{k}");
                }
                let mut ctx = dgl_core::StepContext {
                    clip_norm: Some(40.0),
                    steps_per_epoch: data.train.len(),
                    ..context(&model, &mut sgd, epoch)
                };
                method.on_epoch_end(&mut ctx, &data).unwrap();
                method.after_evaluation(&mut ctx, &data).unwrap();
            }
            let p = method.predict(&model, &data.val[0].0).unwrap();
            assert_eq!(p.multimodal.dims(), &[6, 3], "{k}");
            assert_eq!(p.branches.len(), if bimodal { 2 } else { 0 }, "{k}");
            let st = method.state().unwrap();
            let mut fresh = build_method(&cfg, 3, 0).unwrap();
            fresh.load_state(&st).unwrap();
        }
        // Two-modality-only methods refuse three.
        let m3 = Toy::new(&[2, 2, 2], 3, 3, 0);
        for k in MethodKind::ALL.into_iter().filter(|k| k.two_modalities_only()) {
            assert!(build_method(&MethodConfig::new(k), 3, 0).unwrap().check(&m3).is_err(), "{k}");
        }
        for k in [MethodKind::Mla, MethodKind::MmPareto, MethodKind::Dgl, MethodKind::GBlendingOgr] {
            build_method(&MethodConfig::new(k), 3, 0).unwrap().check(&m3).unwrap();
        }
    }
}
