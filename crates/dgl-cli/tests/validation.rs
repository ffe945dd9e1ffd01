//! Configurations are checked before any work starts: unknown keys at every depth, out-of-range
//! hyper-parameters, a method that does not support the dataset's modality count, a device the
//! build lacks — each a clear error naming what is wrong.

mod common;

use common::{micro, tmp};
use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{DeviceKind, Preset, TrainConfig};
use dgl_cli::{train, RunOptions};
use dgl_data::DatasetSpec;

fn cremad(root: &str) -> DatasetSpec {
    DatasetSpec::from_kind("cremad", Some(root.into())).unwrap()
}

#[test]
fn unknown_keys_are_refused_in_every_section() {
    for (toml, key) in [
        ("seeed = 1", "seeed"),
        ("[train]\nepoch = 3", "epoch"),
        ("[train.optimizer]\nmomentun = 0.9", "momentun"),
        ("[train.scheduler]\nmilestone = [3]", "milestone"),
        ("[data]\nvalidation = 0.1", "validation"),
        ("[method]\nname = \"ogm\"\nmodulation_end = 3", "modulation_end"),
        ("[method]\nname = \"ogm-ge\"\nunimodal_weight = 3", "unimodal_weight"),
        // Sections whose types (in other crates) do not deny unknown fields themselves.
        ("[data.dataset]\nn_trian = 10", "n_trian"),
        ("[data.dataset]\nkind = \"cremad\"\nroot = \"/c\"\nfrmaes = 1", "frmaes"),
        ("[data.dataset]\nkind = \"generic\"\nroot = \"/g\"\nframes = 1", "frames"),
        ("[data.dataset]\nkind = \"av-digits\"\nroot = \"/a\"\n[data.dataset.av_digits]\nhopp = 1", "hopp"),
        ("[model]\nbase_widht = 4", "model.base_widht"),
        ("[model.head]\nhiden = 4", "model.head.hiden"),
        (
            "[[model.modalities]]\nname = \"audio\"\nencoder = { kind = \"resnet18_audio\" }\nchanels = 1\n\
             [[model.modalities]]\nname = \"visual\"\nencoder = { kind = \"resnet18_visual\" }",
            "model.modalities[0].chanels",
        ),
    ] {
        let e = TrainConfig::from_toml_str(toml).unwrap_err().to_string();
        assert!(e.contains(key), "{toml:?}: {e}");
    }
    // Known keys round-trip without complaint, written configurations read back.
    let cfg = micro(MethodKind::OgmGe);
    assert_eq!(TrainConfig::from_toml_str(&cfg.to_toml().unwrap()).unwrap(), cfg);
    TrainConfig::from_toml_str("[model]\nbase_width = 4\n[model.head]\nhidden = 8\n[data.dataset]\nn_train = 10")
        .unwrap();
    // The file name is part of the message.
    let p = tmp("bad.toml");
    std::fs::write(&p, "[model]\nbase_widht = 4\n").unwrap();
    let e = TrainConfig::from_toml_file(&p).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("model.base_widht"), "{e}");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn out_of_range_hyper_parameters_are_clear_errors() {
    type Edit = fn(&mut TrainConfig);
    let cases: [(Edit, &str); 16] = [
        (|c| ogm(c).modulation_strength = -1.0, "modulation_strength"),
        (|c| ogm(c).modulation_strength = f64::NAN, "modulation_strength"),
        (|c| c.train.optimizer.lr = 0.0, "lr"),
        (|c| c.train.optimizer.lr = -1e-3, "lr"),
        (|c| c.train.optimizer.momentum = -0.1, "momentum"),
        (|c| c.train.batch_size = 0, "batch_size"),
        (|c| c.train.epochs = 0, "epochs"),
        (|c| c.train.clip_norm = Some(0.0), "clip_norm"),
        (|c| c.train.scheduler.gamma = 0.0, "gamma"),
        (|c| c.train.scheduler.milestones = vec![5, 3], "milestones"),
        (|c| c.train.scheduler.milestones = vec![0], "milestones"),
        (|c| c.data.validation_fraction = 1.0, "validation_fraction"),
        (|c| c.model.base_width = 0, "base_width"),
        (|c| c.model.frames = 0, "frames"),
        (|c| c.data.synthetic_mut().unwrap().n_train = 0, "n_train"),
        (|c| ogm(c).modulation_ends = Some(0), "modulation_ends"),
    ];
    fn ogm(c: &mut TrainConfig) -> &mut dgl_baselines::ogm::OgmConfig {
        let MethodConfig::OgmGe(o) = &mut c.method else { unreachable!() };
        o
    }
    for (i, (edit, name)) in cases.iter().enumerate() {
        let mut cfg = micro(MethodKind::OgmGe);
        ogm(&mut cfg).modulation_starts = 1;
        edit(&mut cfg);
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(name), "case {i} ({name}): {e}");
    }
    // An empty milestone list is allowed: a constant learning rate.
    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.scheduler.milestones.clear();
    cfg.validate().unwrap();
    assert_eq!(cfg.train.scheduler.lr_at(0.1, 0, 2000), cfg.train.scheduler.lr_at(0.1, 1000, 2000));
    // The presets are valid.
    TrainConfig::preset(Preset::Tiny).validate().unwrap();
    // train() refuses before creating anything.
    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.optimizer.lr = 0.0;
    let out = tmp("invalid");
    assert!(train(&cfg, &out, &RunOptions::default()).unwrap_err().to_string().contains("lr"));
    assert!(!out.exists(), "nothing is written for an invalid configuration");
}

/// What a method supports comes from its descriptor and is checked against the model (its
/// modality count: a model of one modality is a unimodal model) before anything is built.
#[test]
fn methods_are_checked_against_the_modality_count_before_anything_is_built() {
    let with_modalities = |k: MethodKind, names: &[&str]| {
        let mut cfg = micro(k);
        let first = cfg.model.modalities[0].clone();
        cfg.model.modalities =
            names.iter().map(|n| dgl_models::ModalityConfig { name: n.to_string(), ..first.clone() }).collect();
        cfg
    };
    // Every method takes 3 modalities (OGM-GE, PMR, AGM in their M-modality forms); AGM's
    // 2^M − 1 coalition forwards are capped at M = 8.
    // (The method check passes; what is left is that the micro data have no such modalities.)
    for k in [MethodKind::Ogm, MethodKind::OgmGe, MethodKind::Pmr, MethodKind::Agm] {
        let e = with_modalities(k, &["a", "b", "c"]).validate().unwrap_err().to_string();
        assert!(e.contains("do not match the modalities of the synthetic dataset"), "{k}: {e}");
    }
    let nine: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let e = with_modalities(MethodKind::Agm, &nine).validate().unwrap_err().to_string();
    assert!(e.contains('8') && e.contains('9'), "{e}");
    for k in [MethodKind::Dgl, MethodKind::Mla, MethodKind::MmPareto, MethodKind::GBlendingOgr] {
        let mut one = micro(k);
        one.model = one.model.unimodal("audio").unwrap();
        let e = one.validate().unwrap_err().to_string();
        assert!(e.contains("2 or more modalities"), "{k}: {e}");
    }
    // A unimodal model trains with plain training, and with DGL only without unimodal losses.
    let mut one = micro(MethodKind::Vanilla);
    one.model = one.model.unimodal("visual").unwrap();
    one.validate().unwrap();
    let mut dgl0 = one.with_key("method.name", "dgl".into()).unwrap();
    let MethodConfig::Dgl(d) = &mut dgl0.method else { unreachable!() };
    d.unimodal_weight = 0.0;
    dgl0.validate().unwrap();

    // A model naming a modality the dataset lacks is refused by validate(), before any data.
    let mut cfg = micro(MethodKind::Dgl);
    let extra = cfg.model.modalities[0].clone();
    cfg.model.modalities.push(dgl_models::ModalityConfig { name: "text".into(), ..extra });
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("no [\"text\"]") && e.contains("\"audio\", \"visual\"]"), "{e}");
}

/// Configurations of the format before each method had its own options are refused with what
/// changed; the same goes for the removed command-line names.
#[test]
fn former_method_formats_say_what_changed() {
    for (toml, want) in [
        ("[method]\nname = \"dgl\"\nalpha = 2", "unimodal_weight = 2"),
        ("[method]\nname = \"ogm-ge\"\nalpha = 0.1", "modulation_strength = 0.1"),
        ("[method]\nname = \"dnr\"\nalpha = 3", "lambda = 3"),
        ("[method]\nname = \"ogm\"\n[method.ogm]\nmodulation_ends = 3", "[method.ogm] was removed"),
        ("[method]\nname = \"audio-only\"", "--only audio"),
        ("[method]\nname = \"visual-only\"", "--only visual"),
    ] {
        let e = TrainConfig::from_toml_str(toml).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("earlier version"), "{toml:?}: {e}");
    }
    // Options alone keep the preset's method (DGL).
    let cfg = TrainConfig::from_toml_str("[method]\nunimodal_weight = 2").unwrap();
    let MethodConfig::Dgl(d) = &cfg.method else { panic!("{:?}", cfg.method) };
    assert_eq!(d.unimodal_weight, 2.0);
    // Another method's name replaces the preset's method whole (none of DGL's options carried over).
    let cfg = TrainConfig::from_toml_str("[method]\nname = \"pmr\"\nprototype_weight = 1").unwrap();
    assert_eq!(toml::Value::try_from(&cfg.method).unwrap().get("unimodal_weight"), None);
}

#[test]
fn a_device_the_build_lacks_is_refused() {
    let mut cfg = micro(MethodKind::Dgl);
    cfg.device = DeviceKind::Cuda;
    if cfg!(feature = "cuda") {
        return;
    }
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("no CUDA support") && e.contains("--features cuda"), "{e}");
}

/// The config file is read through dgl-data's bounded reader (a device or FIFO is refused by name,
/// not read forever) and the data options are checked against the limits before any work,
/// naming the key.
#[test]
fn config_reads_are_bounded_and_data_options_are_checked() {
    if std::path::Path::new("/dev/zero").exists() {
        let e = TrainConfig::from_toml_file(std::path::Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");
    }
    type Edit = fn(&mut TrainConfig);
    let cases: [(Edit, &[&str]); 4] = [
        (
            |c| c.data.synthetic_mut().unwrap().n_train = 1 << 40,
            &["data.dataset", "n_train", "DGL_MAX_SYNTHETIC_SAMPLES"],
        ),
        (|c| c.data.synthetic_mut().unwrap().visual_noise = f64::NAN, &["data.dataset", "visual_noise"]),
        (
            |c| {
                c.data.dataset = cremad("/c");
                c.data.dataset.clip_options_mut().unwrap().frames = Some(1 << 30);
            },
            &["data.dataset", "frames", "DGL_MAX_FRAMES"],
        ),
        (
            |c| {
                let mut r = dgl_data::SpectrogramRecipe::librosa_cremad();
                r.hop = 0;
                c.data.dataset = cremad("/c");
                c.data.dataset.clip_options_mut().unwrap().recipe = Some(r);
            },
            &["data.dataset", "recipe.hop"],
        ),
    ];
    for (i, (edit, parts)) in cases.iter().enumerate() {
        let mut cfg = micro(MethodKind::Dgl);
        edit(&mut cfg);
        let e = cfg.validate().unwrap_err().to_string();
        for p in *parts {
            assert!(e.contains(p), "case {i}: {e}");
        }
    }
}

/// `[data.dataset]` is a tagged table: a file naming another kind replaces the preset's synthetic
/// table whole (no synthetic key is inherited), and every variant round-trips through TOML.
#[test]
fn dataset_spec_in_config_files() {
    let c =
        TrainConfig::from_toml_str("[data.dataset]\nkind = \"cremad\"\nroot = \"/data/cremad\"\nframes = 1").unwrap();
    let DatasetSpec::Cremad(o) = &c.data.dataset else { panic!("{:?}", c.data.dataset) };
    assert_eq!((o.root.to_str(), o.clip.frames), (Some("/data/cremad"), Some(1)));
    let written = c.to_toml().unwrap();
    assert!(!written.contains("n_train") && !written.contains("visual_noise"), "{written}");
    assert_eq!(TrainConfig::from_toml_str(&written).unwrap(), c);
    // Only kind + root: the layout's defaults, nothing of the synthetic table.
    let c = TrainConfig::from_toml_str("[data.dataset]\nkind = \"crema-d\"\nroot = \"/c\"").unwrap();
    assert_eq!(c.data.dataset, cremad("/c"));
    // A synthetic key in a cremad table is unknown there.
    let e = TrainConfig::from_toml_str("[data.dataset]\nkind = \"cremad\"\nroot = \"/c\"\nn_train = 3").unwrap_err();
    assert!(e.to_string().contains("n_train"), "{e}");
    // The same kind as the preset merges key by key.
    let c = TrainConfig::from_toml_str("[data.dataset]\nkind = \"synthetic\"\nn_test = 7").unwrap();
    let tiny = TrainConfig::preset(Preset::Tiny);
    let (s, t) = (c.clone().data.synthetic_mut().unwrap().clone(), tiny.clone().data.synthetic_mut().unwrap().clone());
    assert_eq!((s.n_train, s.n_test), (t.n_train, 7));
    // Every variant round-trips.
    for kind in ["synthetic", "cremad", "ks", "vggsound", "av-digits", "generic", "cached"] {
        let root = (kind != "synthetic").then(|| std::path::PathBuf::from(format!("/data/{kind}")));
        let mut cfg = TrainConfig::preset(Preset::Tiny);
        cfg.data.dataset = DatasetSpec::from_kind(kind, root).unwrap();
        if let Some(clip) = cfg.data.dataset.clip_options_mut() {
            clip.frames = Some(2);
            clip.recipe = Some(dgl_data::SpectrogramRecipe::librosa_ks());
        }
        let text = cfg.to_toml().unwrap();
        assert!(text.contains(&format!("kind = \"{kind}\"")), "{text}");
        assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), cfg, "{kind}: {text}");
    }
}

/// Configurations of the old `[data]` layout are refused with what to write instead.
#[test]
fn old_data_section_is_refused_with_the_new_form() {
    for old in [
        "[data]\ndataset = \"cremad\"\nroot = \"/data/cremad\"\n[data.options]\nframes = 1",
        "[data]\ndataset = \"synthetic\"",
        "[data.synthetic]\nn_train = 10",
        "[data.options]\nskip_bad = true",
    ] {
        let e = TrainConfig::from_toml_str(old).unwrap_err().to_string();
        for part in ["[data.dataset]", "kind =", "data.options", "data.synthetic", "now a table"] {
            assert!(e.contains(part), "{old:?}: {e}");
        }
    }
    let e =
        TrainConfig::from_toml_str("[data]\ndataset = \"cremad\"\nroot = \"/data/cremad\"").unwrap_err().to_string();
    assert!(e.contains("kind = \"cremad\"") && e.contains("root = \"/data/cremad\""), "{e}");
}

/// The model's modalities are checked against the data's, by name, in one place.
#[test]
fn modality_mismatch_is_one_clear_error() {
    let mut cfg = micro(MethodKind::Dgl);
    cfg.model.modalities[1].name = "video".into();
    let e = cfg.validate().unwrap_err().to_string();
    for part in ["model.modalities", "synthetic", "\"video\"", "\"visual\""] {
        assert!(e.contains(part), "{e}");
    }
    // The order does not matter (the data follow the model's order).
    let mut cfg = micro(MethodKind::Dgl);
    cfg.model.modalities.reverse();
    cfg.validate().unwrap();
    let check =
        |model: &[&str], data: &[&str]| dgl_data::datasets::check_modalities(model, data, "the generic dataset");
    let e = check(&["a", "b"], &["a", "c"]).unwrap_err().to_string();
    assert!(e.contains("no [\"b\"]") && e.contains("[\"a\", \"c\"]") && e.contains("generic"), "{e}");
    // A subset is a model of fewer modalities (one: a unimodal model); a name twice is refused.
    check(&["c"], &["a", "c"]).unwrap();
    let e = check(&["a", "a"], &["a", "c"]).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
}

/// Every configuration under docs/configs/ parses and validates (the docs point users at them).
#[test]
fn the_documented_configurations_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = TrainConfig::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cfg.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1, "no configuration in {}", dir.display());
}
