//! The method registry: one line per method ([`methods!`]) gives its name, aliases and
//! configuration type; the kind enum, the serde-tagged configuration, the descriptor lookup,
//! validation, model checks, construction and official defaults are derived from it. What a
//! method is and supports is declared in its own module ([`MethodSpec`]).

use std::fmt;
use std::str::FromStr;

use dgl_core::{Error, Method, Result};
use serde::{Deserialize, Serialize};

use crate::defaults::{Benchmark, Schedule, Setting};
use crate::spec::{BuildContext, MethodDescriptor, MethodSpec, ModelFacts};

/// Declares the registered methods: `Variant = "name" | "alias" => ConfigType`.
macro_rules! methods {
    ($( $variant:ident = $name:tt $(| $alias:tt)* => $spec:ty ),* $(,)?) => {
        /// Which method (without its options), in the paper's order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MethodKind { $( $variant, )* }

        impl MethodKind {
            /// Every registered method, in the paper's order.
            pub const ALL: &'static [MethodKind] = &[$( MethodKind::$variant, )*];

            /// What the method declares about itself.
            pub fn descriptor(self) -> &'static MethodDescriptor {
                match self { $( MethodKind::$variant => &<$spec as MethodSpec>::DESCRIPTOR, )* }
            }

            /// Other names the configuration and the command line accept.
            pub fn aliases(self) -> &'static [&'static str] {
                match self { $( MethodKind::$variant => &[$( $alias, )*], )* }
            }

            /// The method's options as its official scripts set them on `bench`.
            pub fn official(self, bench: Option<Benchmark>) -> MethodConfig {
                match self { $( MethodKind::$variant => MethodConfig::$variant(<$spec>::official(bench)), )* }
            }

            /// The official options of [`MethodKind::official`] with their sources.
            pub fn official_settings(self, bench: Option<Benchmark>) -> Vec<Setting> {
                match self { $( MethodKind::$variant => <$spec>::official_settings(bench), )* }
            }

            /// The learning-rate schedule of the official 100-epoch protocol on `bench`.
            pub fn schedule(self, bench: Option<Benchmark>) -> Schedule {
                match self { $( MethodKind::$variant => <$spec>::schedule(bench), )* }
            }
        }

        /// A method and its options, tagged by `name`; only the chosen method's options are
        /// present. Every option has a default (the official code's); unknown options are refused.
        ///
        /// ```toml
        /// [method]
        /// name = "ogm-ge"
        /// modulation_strength = 0.8
        /// modulation_ends = 50
        /// ```
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name")]
        pub enum MethodConfig {
            $( #[serde(rename = $name $(, alias = $alias)*)] $variant($spec), )*
        }

        impl MethodConfig {
            /// The method's default options.
            pub fn new(kind: MethodKind) -> Self {
                match kind { $( MethodKind::$variant => MethodConfig::$variant(<$spec>::default()), )* }
            }

            pub fn kind(&self) -> MethodKind {
                match self { $( MethodConfig::$variant(_) => MethodKind::$variant, )* }
            }

            /// Checks every option before any work.
            pub fn validate(&self) -> Result<()> {
                match self { $( MethodConfig::$variant(c) => c.validate(), )* }
            }

            /// Refuses, before anything is built, a model the method cannot train.
            pub fn check_model(&self, model: &ModelFacts<'_>) -> Result<()> {
                match self { $( MethodConfig::$variant(c) => c.check_model(model), )* }
            }

            /// Builds the method (its options validated first).
            pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Method>> {
                self.validate()?;
                crate::util::check_hp(ctx.num_classes >= 1, "num_classes", ctx.num_classes, "must be >= 1")?;
                match self { $( MethodConfig::$variant(c) => c.build(ctx), )* }
            }
        }
    };
}

methods! {
    Vanilla = "vanilla" | "concat" => crate::routed::VanillaConfig,
    Dgl = "dgl" => crate::routed::DglConfig,
    DglMt = "dgl-mt" => crate::routed::DglMtConfig,
    DglUt = "dgl-ut" => crate::routed::DglUtConfig,
    GBlending = "gblending" => crate::gblending::GBlendingConfig,
    GBlendingOgr = "gblending-ogr" => crate::gblending::GBlendingOgrConfig,
    Ogm = "ogm" => crate::ogm::OgmConfig,
    OgmGe = "ogm-ge" => crate::ogm::OgmGeConfig,
    Pmr = "pmr" => crate::pmr::PmrConfig,
    Agm = "agm" => crate::agm::AgmConfig,
    Mla = "mla" => crate::mla::MlaConfig,
    MmPareto = "mmpareto" => crate::mmpareto::MmParetoConfig,
    Dnr = "dnr" => crate::dnr::DnrConfig,
}

impl MethodKind {
    /// The name used in configurations and on the command line.
    pub fn as_str(self) -> &'static str {
        self.descriptor().name
    }

    /// Every name, for help and error messages.
    pub fn valid_names() -> String {
        Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of the unimodal baselines before they became a model setting.
const REMOVED_UNIMODAL: [(&str, &str); 2] = [("audio-only", "audio"), ("visual-only", "visual")];

/// How a unimodal baseline is configured now, for the error that refuses an old name.
pub fn removed_unimodal_hint(name: &str) -> Option<String> {
    REMOVED_UNIMODAL.iter().find(|(old, _)| *old == name).map(|(old, m)| {
        format!(
            "method `{old}` was removed: a unimodal model is a model setting, not a method — train `vanilla` on \
             the `{m}` modality only (`dgl train --method vanilla --only {m}`, or `model.modalities` listing only \
             `{m}` in the configuration)"
        )
    })
}

/// The sub-tables of the format before each method had its own options (`[method.ogm]`, …).
pub const FORMER_SUBTABLES: [&str; 7] = ["gblending", "ogm", "pmr", "agm", "mla", "mmpareto", "dnr"];

/// The option that the former shared `method.alpha` meant for `kind` (`None`: it had none).
pub fn former_alpha(kind: MethodKind) -> Option<&'static str> {
    use MethodKind::*;
    match kind {
        Dgl | DglMt | DglUt | GBlending => Some("unimodal_weight"),
        Ogm | OgmGe | Agm => Some("modulation_strength"),
        Pmr => Some("prototype_weight"),
        MmPareto => Some("gamma_mag"),
        Dnr => Some("lambda"),
        Vanilla | GBlendingOgr | Mla => None,
    }
}

impl FromStr for MethodKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(hint) = removed_unimodal_hint(&t) {
            return Err(Error::InvalidInput(hint));
        }
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == t || k.aliases().contains(&t.as_str()))
            .ok_or_else(|| Error::InvalidInput(format!("unknown method `{s}`; valid methods: {}", Self::valid_names())))
    }
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::new(MethodKind::Dgl)
    }
}

impl MethodConfig {
    pub fn descriptor(&self) -> &'static MethodDescriptor {
        self.kind().descriptor()
    }

    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

#[cfg(test)]
impl MethodConfig {
    /// The configuration with one option set (TOML round trip), for tests.
    fn with_key_for_test(&self, key: &str, value: &str) -> Self {
        let mut t = toml::Value::try_from(self).unwrap();
        t.as_table_mut().unwrap().insert(key.into(), toml::Value::String(value.into()));
        t.try_into().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::TaskKind;
    use crate::testutil::*;

    #[test]
    fn names_round_trip_and_errors() {
        for &k in MethodKind::ALL {
            assert_eq!(k.as_str().parse::<MethodKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
            assert_eq!(MethodConfig::new(k).kind(), k);
            assert_eq!(MethodConfig::new(k).name(), k.descriptor().name);
        }
        assert_eq!("Concat".parse::<MethodKind>().unwrap(), MethodKind::Vanilla);
        let e = "ogmge".parse::<MethodKind>().unwrap_err().to_string();
        assert!(e.contains("unknown method `ogmge`") && e.contains("ogm-ge") && e.contains("dnr"), "{e}");
        let e = "audio-only".parse::<MethodKind>().unwrap_err().to_string();
        assert!(e.contains("--only audio") && e.contains("vanilla"), "{e}");
    }

    /// The tagged configuration holds only the chosen method's options, each under its own name.
    #[test]
    fn serde_tagged_options() {
        let c: MethodConfig = toml::from_str("name = \"pmr\"\nprototype_weight = 3.0\nmomentum_coef = 0.0\n").unwrap();
        let MethodConfig::Pmr(p) = &c else { panic!("{c:?}") };
        assert_eq!((p.prototype_weight, p.momentum_coef, p.modulation_ends), (3.0, 0.0, Some(70)));
        let c: MethodConfig = toml::from_str("name = \"concat\"").unwrap();
        assert_eq!(c.kind(), MethodKind::Vanilla);
        // Another method's option, an unknown option, an unknown name.
        for bad in [
            "name = \"dgl\"\nmodulation_strength = 1",
            "name = \"ogm\"\nmodulation_end = 3",
            "name = \"nope\"",
            "name = \"dgl\"\nalpha = 2",
        ] {
            assert!(toml::from_str::<MethodConfig>(bad).is_err(), "{bad}");
        }
        for &k in MethodKind::ALL {
            for b in [None, Some(Benchmark::KineticsSounds)] {
                let c = k.official(b);
                let t = toml::to_string(&c).unwrap();
                assert!(t.contains(&format!("name = \"{k}\"")), "{t}");
                assert_eq!(toml::from_str::<MethodConfig>(&t).unwrap(), c, "{t}");
                let j = serde_json::to_string(&c).unwrap();
                assert_eq!(serde_json::from_str::<MethodConfig>(&j).unwrap(), c);
            }
        }
        let c: MethodConfig =
            toml::from_str("name = \"mla\"\nprojection = \"off\"\nfusion = \"entropy-batch\"").unwrap();
        let MethodConfig::Mla(m) = &c else { panic!() };
        assert_eq!(m.projection, Some(crate::mla::MlaProjection::Off));
        assert_eq!(m.variant, crate::mla::MlaVariant::Official);
        let c: MethodConfig = toml::from_str("name = \"mmpareto\"\nunimodal_heads = \"zero-mask\"").unwrap();
        let MethodConfig::MmPareto(m) = &c else { panic!() };
        assert_eq!(m.unimodal_heads, crate::heads::UnimodalHeads::SharedMasked);
    }

    #[test]
    fn validation() {
        let cfg = |t: &str| toml::from_str::<MethodConfig>(t).unwrap();
        assert!(cfg("name = \"dgl\"\nunimodal_weight = -1").validate().is_err());
        assert!(cfg("name = \"dgl\"\nunimodal_weight = nan").validate().is_err());
        assert!(cfg("name = \"mmpareto\"\ngamma_mag = 0").validate().is_err());
        assert!(cfg("name = \"ogm\"\nmodulation_starts = 10\nmodulation_ends = 5").validate().is_err());
        let dnr = cfg("name = \"dnr\"\nevery = 0");
        assert!(dnr.build(&BuildContext { num_classes: 6, seed: 0 }).is_err());
        for &k in MethodKind::ALL {
            assert!(MethodConfig::new(k).validate().is_ok(), "{k}");
        }
    }

    /// The descriptors decide what a method supports before anything is built.
    #[test]
    fn model_checks_follow_the_descriptors() {
        let facts = |m, head, lin| ModelFacts {
            modalities: m,
            head,
            head_is_linear: lin,
            dense: false,
            task: TaskKind::Classification,
        };
        // Every method trains two and three modalities (Table 2's right half has three).
        for &k in MethodKind::ALL {
            let c = MethodConfig::new(k);
            c.check_model(&facts(3, "concat", true)).unwrap();
            c.check_model(&facts(2, "concat", true)).unwrap();
        }
        // AGM runs 2^M − 1 forwards a step: more than 8 modalities are refused.
        let e = MethodConfig::new(MethodKind::Agm).check_model(&facts(9, "concat", true)).unwrap_err();
        assert!(e.to_string().contains("at most 8"), "{e}");
        let e = MethodConfig::new(MethodKind::OgmGe).check_model(&facts(2, "gated", false)).unwrap_err();
        assert!(e.to_string().contains("gated"), "{e}");
        assert!(MethodConfig::new(MethodKind::Vanilla).check_model(&facts(1, "concat", true)).is_ok());
        assert!(MethodConfig::new(MethodKind::Dgl).check_model(&facts(1, "concat", true)).is_err());
        let dgl0: MethodConfig = toml::from_str("name = \"dgl\"\nunimodal_weight = 0").unwrap();
        assert!(dgl0.check_model(&facts(1, "concat", true)).is_ok(), "without unimodal losses DGL is plain training");
        // Dense fusion (MMTM): MLA is refused, separate unimodal heads are refused naming the option,
        // the zero-masked variants and the rest are accepted.
        let mmtm = ModelFacts {
            modalities: 2,
            head: "mmtm",
            head_is_linear: false,
            dense: true,
            task: TaskKind::Classification,
        };
        let e = MethodConfig::new(MethodKind::Mla).check_model(&mmtm).unwrap_err().to_string();
        assert!(e.contains("`mla`") && e.contains("mmtm"), "{e}");
        for k in [MethodKind::GBlending, MethodKind::GBlendingOgr, MethodKind::MmPareto] {
            let e = MethodConfig::new(k).check_model(&mmtm).unwrap_err().to_string();
            assert!(e.contains("shared-masked"), "{k}: {e}");
            let masked = MethodConfig::new(k).with_key_for_test("unimodal_heads", "shared-masked");
            masked.check_model(&mmtm).unwrap();
        }
        for k in [MethodKind::Vanilla, MethodKind::Dgl, MethodKind::Pmr, MethodKind::Agm, MethodKind::Dnr] {
            MethodConfig::new(k).check_model(&mmtm).unwrap();
        }
        // Segmentation (Table 5): the routed methods, and G-Blending / MMPareto with shared-masked
        // heads (their losses are the task's); the methods needing per-sample logits or
        // prototypes are refused by the descriptor.
        let seg = ModelFacts {
            modalities: 2,
            head: "esanet",
            head_is_linear: false,
            dense: true,
            task: TaskKind::DenseLabels,
        };
        for k in [MethodKind::Vanilla, MethodKind::Dgl, MethodKind::DglMt, MethodKind::DglUt] {
            MethodConfig::new(k).check_model(&seg).unwrap();
        }
        for k in [MethodKind::GBlending, MethodKind::MmPareto] {
            MethodConfig::new(k).with_key_for_test("unimodal_heads", "shared-masked").check_model(&seg).unwrap();
        }
        for k in [
            MethodKind::OgmGe,
            MethodKind::Pmr,
            MethodKind::Agm,
            MethodKind::Mla,
            MethodKind::Dnr,
            MethodKind::GBlendingOgr,
        ] {
            let e = MethodConfig::new(k).check_model(&seg).unwrap_err().to_string();
            assert!(e.contains("dense prediction"), "{k}: {e}");
        }
        let needs_val: Vec<_> = MethodKind::ALL.iter().filter(|k| k.descriptor().needs_validation).collect();
        assert_eq!(needs_val, [&MethodKind::GBlendingOgr, &MethodKind::Dnr]);
    }

    /// Every method builds, checks a 2- and a 3-modality toy, trains a few steps through the one
    /// loop shape (epoch hooks included) and predicts; its built `needs_validation` is its
    /// descriptor's.
    #[test]
    fn every_method_trains_and_predicts() {
        for (&k, dims) in MethodKind::ALL.iter().flat_map(|k| [(k, &[3, 2][..]), (k, &[3, 2, 4][..])]) {
            let model = Toy::new(dims, 4, 3, 1);
            let data = Data::random(&model, 2, 1, 6, 2);
            let mut cfg = MethodConfig::new(k);
            match &mut cfg {
                MethodConfig::GBlendingOgr(c) => c.ogr_every = 1,
                MethodConfig::Dnr(c) => c.every = 1,
                _ => {}
            }
            let ctx0 = BuildContext { num_classes: 3, seed: 0 };
            let mut method = cfg.build(&ctx0).unwrap();
            assert_eq!(method.name(), k.as_str());
            assert_eq!(method.needs_validation(), k.descriptor().needs_validation, "{k}");
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
            assert_eq!(p.branches.len(), dims.len(), "{k}");
            let st = method.state().unwrap();
            let mut fresh = cfg.build(&ctx0).unwrap();
            fresh.load_state(&st).unwrap();
        }
        // A unimodal model trains with the plain method.
        let model = Toy::new(&[3], 4, 3, 1);
        let data = Data::random(&model, 1, 1, 6, 2);
        let mut method =
            MethodConfig::new(MethodKind::Vanilla).build(&BuildContext { num_classes: 3, seed: 0 }).unwrap();
        method.check(&model).unwrap();
        let mut sgd: dgl_core::Optimizer = dgl_core::Sgd::new(dgl_core::SgdConfig::default()).unwrap().into();
        let (x, y) = &data.train[0];
        method.train_step(&mut context(&model, &mut sgd, 0), x, y).unwrap();
        assert!(method.predict(&model, x).unwrap().branches.is_empty());
        // Built methods refuse what their descriptors refuse.
        let m3 = Toy::new(&[2, 2, 2], 3, 3, 0);
        for &k in MethodKind::ALL {
            let built = MethodConfig::new(k).build(&BuildContext { num_classes: 3, seed: 0 }).unwrap();
            assert_eq!(built.check(&m3).is_ok(), k.descriptor().modalities.allows(3), "{k}");
        }
    }
}
