//! Every method of the registry trains end to end through the one loop on a micro version of the
//! embedded dataset, writing config, metrics and a checkpoint; bad options are clear errors.

mod common;

use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{DeviceKind, Preset, TrainConfig};
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{train, RunOptions};

/// The shared micro configuration, with the gradient-source diagnostics on every 2nd step; `only`
/// keeps one modality of the model (a unimodal baseline).
fn micro_of(kind: MethodKind, only: Option<&str>) -> TrainConfig {
    let mut cfg = common::micro(kind);
    cfg.train.diagnostics_every = 2;
    if let Some(m) = only {
        cfg.model = cfg.model.unimodal(m).unwrap();
    }
    cfg
}

fn micro(kind: MethodKind) -> TrainConfig {
    micro_of(kind, None)
}

#[test]
fn every_method_trains_and_writes_a_run_directory() {
    // Every method on the pair, and the unimodal baselines (plain training of one modality).
    let cases = MethodKind::ALL
        .iter()
        .map(|&k| (k, None))
        .chain([(MethodKind::Vanilla, Some("audio")), (MethodKind::Vanilla, Some("visual"))]);
    for (kind, only) in cases {
        let out = common::tmp(&format!("{kind}-{only:?}"));
        let cfg = micro_of(kind, only);
        let outcome = train(&cfg, &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcome.epochs.len(), 2, "{kind}");
        let last = outcome.last();
        let acc = last.get("test_acc").unwrap();
        assert!((0.0..=1.0).contains(&acc), "{kind}: {acc}");
        for b in ["test_acc_audio", "test_acc_visual"] {
            assert_eq!(last.get(b).is_some(), only.is_none(), "{kind} {only:?}: {b} in {:?}", last.header());
        }
        for f in [RunDir::CONFIG, RunDir::METRICS_CSV, RunDir::METRICS_JSONL, RunDir::CHECKPOINT] {
            assert!(out.join(f).is_file(), "{kind}: missing {f}");
        }
        let rows = read_metrics(&out.join(RunDir::METRICS_JSONL)).unwrap();
        assert_eq!(rows.len(), 2);
        assert!((rows[1].get("test_acc").unwrap() - acc).abs() < 1e-12);
        // The written config reads back to the same configuration.
        let back = TrainConfig::from_toml_file(&out.join(RunDir::CONFIG)).unwrap();
        assert_eq!(back, cfg, "{kind}");
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn same_seed_same_numbers() {
    let a = train(&micro(MethodKind::Dgl), &common::tmp("det-a"), &RunOptions::default()).unwrap();
    let b = train(&micro(MethodKind::Dgl), &common::tmp("det-b"), &RunOptions::default()).unwrap();
    for (ra, rb) in a.epochs.iter().zip(&b.epochs) {
        for ((ka, va), (kb, vb)) in ra.0.iter().zip(&rb.0) {
            assert_eq!(ka, kb);
            if ka != "seconds" {
                assert_eq!(va.to_bits(), vb.to_bits(), "{ka}: {va} vs {vb}");
            }
        }
    }
}

#[test]
fn bad_options_are_clear_errors() {
    let e = "nonsense".parse::<MethodKind>().unwrap_err().to_string();
    assert!(e.contains("nonsense") && e.contains("dgl"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    let MethodConfig::Dgl(dgl) = &mut cfg.method else { unreachable!() };
    dgl.unimodal_weight = -1.0;
    let e = train(&cfg, &common::tmp("alpha"), &RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("unimodal_weight"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    cfg.preset = Preset::Paper;
    cfg.device = DeviceKind::Cpu;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("paper preset") && e.contains("--device cuda"), "{e}");

    let mut cfg = micro(MethodKind::Dgl);
    cfg.device = DeviceKind::Cuda;
    if !cfg!(feature = "cuda") {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("no CUDA support"), "{e}");
    }

    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.batch_size = 0;
    assert!(cfg.validate().unwrap_err().to_string().contains("batch_size"));

    let e = toml::from_str::<TrainConfig>("seed = 1\nunknown_key = 3\n").unwrap_err().to_string();
    assert!(e.contains("unknown_key"), "{e}");
}

#[test]
fn a_non_empty_run_directory_is_not_overwritten_by_accident() {
    let out = common::tmp("exists");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "x").unwrap();
    let e = train(&micro(MethodKind::Vanilla), &out, &RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("--overwrite"), "{e}");
    assert!(out.join("precious.txt").exists());
    // --overwrite replaces only a run directory dgl wrote (tests/hostile_rundir.rs).
    let opts = RunOptions { overwrite: true, ..RunOptions::default() };
    let e = train(&micro(MethodKind::Vanilla), &out, &opts).unwrap_err().to_string();
    assert!(e.contains("not a run directory") && e.contains("precious.txt"), "{e}");
    assert!(out.join("precious.txt").exists());
    std::fs::remove_file(out.join("precious.txt")).unwrap();
    train(&micro(MethodKind::Vanilla), &out, &RunOptions::default()).unwrap();
    train(&micro(MethodKind::Dgl), &out, &opts).unwrap();
    assert_eq!(dgl_cli::checkpoint::read_meta(&out.join(RunDir::CHECKPOINT)).unwrap().method, "dgl");
    let _ = std::fs::remove_dir_all(&out);
}

/// D&R re-learns after the epoch has been evaluated (official `ours.py`: train, valid, keep the
/// best, reinit): the metrics of a re-learning epoch are those of the model *before*
/// re-initialisation. Reference: plain training on the same split (D&R trains exactly as plain
/// training until it re-learns), whose rows the D&R rows must equal to the bit, while the D&R
/// checkpoint written after the epoch holds the re-initialised encoders.
#[test]
fn dnr_metrics_of_a_relearning_epoch_describe_the_model_before_reinitialisation() {
    let mut dnr = common::micro(MethodKind::Dnr);
    let MethodConfig::Dnr(c) = &mut dnr.method else { unreachable!() };
    c.lambda = 50.0; // w = tanh(50·gap) ≈ 1 for any purity gap ≥ 0.05
    c.every = 1; // re-learn after 0-based epoch 1 = the last one (2 epochs)
    c.max_times = 1;
    let mut plain = common::micro(MethodKind::Vanilla);
    plain.data.always_validate = true; // the same training / validation split as D&R
    let (dnr_dir, plain_dir) = (common::tmp("dnr-timing"), common::tmp("dnr-timing-plain"));
    let d = train(&dnr, &dnr_dir, &RunOptions::default()).unwrap();
    let p = train(&plain, &plain_dir, &RunOptions::default()).unwrap();
    for (e, (rd, rp)) in d.epochs.iter().zip(&p.epochs).enumerate() {
        let keys = |r: &dgl_cli::run_dir::Row| r.0.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(keys(rd), keys(rp), "epoch {}", e + 1);
        for ((k, vd), (_, vp)) in rd.0.iter().zip(&rp.0) {
            if k != "seconds" {
                assert_eq!(vd.to_bits(), vp.to_bits(), "epoch {} `{k}`: D&R {vd} vs plain {vp}", e + 1);
            }
        }
    }
    // The re-learning took place: a positive weight, moved encoders, an untouched head.
    let ck = |dir: &std::path::Path| dgl_cli::checkpoint::Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap();
    let (cd, cp) = (ck(&dnr_dir), ck(&plain_dir));
    let diag = cd.tensors["method.dnr.last_diagnosis"].flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let weights = [diag[2], diag[5]];
    assert!(weights.iter().any(|&w| w > 0.5), "diagnosis (purity train, purity val, weight) × 2: {diag:?}");
    let same = |name: &str| {
        let a = cd.tensors[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = cp.tensors[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a == b
    };
    for (m, name) in ["audio_net.conv1.weight", "visual_net.conv1.weight"].iter().enumerate() {
        assert_eq!(same(name), weights[m] == 0.0, "{name} with weight {}", weights[m]);
    }
    assert!(same("fusion_module.fc_out.weight") && same("audio_net.bn1.running_mean"));
    // …and it changes what the model predicts: the re-initialised model's test accuracies (from
    // the checkpoint) are not the ones the re-learning epoch reported (the old order reported them).
    let report =
        dgl_cli::eval::eval_run(&dnr_dir, &dgl_cli::eval::EvalOptions { noise: vec![], ..Default::default() }).unwrap();
    let last = d.last();
    let reported = ["multimodal", "audio", "visual"].map(|n| {
        let col = if n == "multimodal" { "test_acc".to_string() } else { format!("test_acc_{n}") };
        (report.scores.iter().find(|s| s.name == n).unwrap().accuracy, last.get(&col).unwrap())
    });
    assert!(reported.iter().any(|(after, row)| (after - row).abs() > 1e-9), "{reported:?}");
    let _ = std::fs::remove_dir_all(&dnr_dir);
    let _ = std::fs::remove_dir_all(&plain_dir);
}

/// OGM / OGM-GE refuse, at configuration validation, a fusion head for which the official
/// per-modality logits are undefined, naming the method and the head.
#[test]
fn ogm_refuses_gated_and_film_heads_before_training() {
    for kind in [MethodKind::Ogm, MethodKind::OgmGe] {
        for fusion in [dgl_models::FusionKind::Gated, dgl_models::FusionKind::Film] {
            let mut cfg = common::micro(kind);
            cfg.model.fusion = fusion;
            let out = common::tmp(&format!("ogm-head-{kind}-{}", fusion.as_str()));
            let e = train(&cfg, &out, &RunOptions::default()).unwrap_err().to_string();
            let head = format!("model.fusion = \"{}\"", fusion.as_str());
            assert!(e.contains(&format!("`{kind}`")) && e.contains(&head), "{e}");
            assert!(!out.exists(), "refused before the run directory is created");
            match &mut cfg.method {
                MethodConfig::Ogm(c) => c.unimodal_logits = dgl_baselines::ogm::OgmUnimodalLogits::ZeroMask,
                MethodConfig::OgmGe(c) => c.unimodal_logits = dgl_baselines::ogm::OgmUnimodalLogits::ZeroMask,
                _ => unreachable!(),
            }
            cfg.validate().unwrap();
        }
    }
}

/// The methods of Table 2 with the options the paper states for dense fusion: zero-masked unimodal
/// logits for G-Blending, OGM-GE and MMPareto.
const TABLE2_METHODS: &[(MethodKind, &[(&str, &str)])] = &[
    (MethodKind::Vanilla, &[]),
    (MethodKind::Dgl, &[]),
    (MethodKind::GBlending, &[("unimodal_heads", "\"shared-masked\"")]),
    (MethodKind::OgmGe, &[("unimodal_logits", "\"zero-mask\"")]),
    (MethodKind::Pmr, &[]),
    (MethodKind::Agm, &[]),
    (MethodKind::MmPareto, &[("unimodal_heads", "\"shared-masked\"")]),
    (MethodKind::Dnr, &[]),
];

/// The MMTM dense-fusion model (`model.fusion = "mmtm"`, paper Table 2 left) trains end to end under
/// the methods the paper runs on it — with zero-masked unimodal logits for G-Blending, OGM-GE and
/// MMPareto — its checkpoint evaluates, and MLA / separate unimodal heads are refused before any
/// work, naming what to change.
#[test]
fn mmtm_dense_fusion_trains_under_the_table_2_methods() {
    for &(kind, options) in TABLE2_METHODS {
        let mut cfg = micro(kind).with_key("model.fusion", "mmtm".into()).unwrap();
        for (k, v) in options {
            cfg = cfg.with_key(&format!("method.{k}"), dgl_cli::config::parse_value(v)).unwrap();
        }
        let out = common::tmp(&format!("mmtm-{kind}"));
        let outcome = train(&cfg, &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let last = outcome.last();
        for col in ["test_acc", "test_acc_audio", "test_acc_visual"] {
            assert!(last.get(col).is_some_and(|v| (0.0..=1.0).contains(&v)), "{kind}: {col} in {:?}", last.header());
        }
        let opts = dgl_cli::eval::EvalOptions { noise: vec![], ..Default::default() };
        let report = dgl_cli::eval::eval_run(&out, &opts).unwrap_or_else(|e| panic!("{kind}: eval: {e}"));
        let multi = report.scores.iter().find(|s| s.name == "multimodal").unwrap().accuracy;
        assert!(
            (multi - last.get("test_acc").unwrap()).abs() < 1e-12,
            "{kind}: the checkpoint is the last epoch's model"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    for (kind, needle) in
        [(MethodKind::Mla, "`mla`"), (MethodKind::MmPareto, "shared-masked"), (MethodKind::OgmGe, "zero-mask")]
    {
        let cfg = micro(kind).with_key("model.fusion", "mmtm".into()).unwrap();
        let out = common::tmp(&format!("mmtm-refused-{kind}"));
        let e = train(&cfg, &out, &RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("mmtm"), "{kind}: {e}");
        assert!(!out.exists());
    }
}

/// A micro run of the MLP-Mixer model (`model.fusion = "mixer"`, paper Table 2 right) on the
/// embedded three-modality sequence set, written as a user's TOML would be.
fn micro_mixer(kind: MethodKind) -> TrainConfig {
    let text = r#"
        [data.dataset]
        kind = "synthetic-sequences"
        n_train = 32
        n_test = 12
        [model]
        fusion = "mixer"
        modalities = [
            { name = "audio", encoder = { kind = "mlp", hidden = [6] } },
            { name = "visual", encoder = { kind = "mlp", hidden = [6] } },
            { name = "text", encoder = { kind = "mlp", hidden = [] } },
        ]
        [model.mixer]
        seq_len = 4
        width = 8
        blocks = [{ seq_len = 4, channels = 8 }, { seq_len = 2, channels = 4 }]
        [train]
        epochs = 2
        batch_size = 8
        diagnostics_every = 2
    "#;
    let mut cfg = TrainConfig::from_toml_str(text).unwrap();
    cfg.method = MethodConfig::new(kind);
    cfg.data.validation_fraction = 0.25;
    cfg
}

/// The mixer model trains end to end with three modalities under every method of Table 2 (right),
/// zero-masked unimodal logits for G-Blending, OGM-GE and MMPareto as the paper states; every
/// modality's branch accuracy is reported; the checkpoint evaluates to the last epoch; a
/// one-modality mixer trains (the unimodal rows); MLA is refused.
#[test]
fn mixer_fusion_trains_three_modalities_under_the_table_2_methods() {
    for &(kind, options) in TABLE2_METHODS {
        let mut cfg = micro_mixer(kind);
        for (k, v) in options {
            cfg = cfg.with_key(&format!("method.{k}"), dgl_cli::config::parse_value(v)).unwrap();
        }
        let out = common::tmp(&format!("mixer-{kind}"));
        let outcome = train(&cfg, &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let last = outcome.last();
        for col in ["test_acc", "test_acc_audio", "test_acc_visual", "test_acc_text"] {
            assert!(last.get(col).is_some_and(|v| (0.0..=1.0).contains(&v)), "{kind}: {col} in {:?}", last.header());
        }
        let opts = dgl_cli::eval::EvalOptions { noise: vec![], ..Default::default() };
        let report = dgl_cli::eval::eval_run(&out, &opts).unwrap_or_else(|e| panic!("{kind}: eval: {e}"));
        let multi = report.scores.iter().find(|s| s.name == "multimodal").unwrap().accuracy;
        assert!((multi - last.get("test_acc").unwrap()).abs() < 1e-12, "{kind}");
        let back = TrainConfig::from_toml_file(&out.join(RunDir::CONFIG)).unwrap();
        let mut want = cfg.clone();
        want.model.num_classes = 2; // data-derived
        assert_eq!(back, want, "{kind}: the written config reads back");
        let _ = std::fs::remove_dir_all(&out);
    }
    let mut text_only = micro_mixer(MethodKind::Vanilla);
    text_only.model = text_only.model.unimodal("text").unwrap();
    let out = common::tmp("mixer-text-only");
    let outcome = train(&text_only, &out, &RunOptions::default()).unwrap();
    assert!(outcome.last().get("test_acc").is_some());
    let _ = std::fs::remove_dir_all(&out);
    let out = common::tmp("mixer-refused-mla");
    let e = train(&micro_mixer(MethodKind::Mla), &out, &RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("`mla`") && e.contains("mixer"), "{e}");
    assert!(!out.exists());
}

/// RGB-D segmentation (`model.fusion = "esanet"` on the embedded scenes, paper Table 5) trains end
/// to end under the methods that apply to dense prediction, reporting mIoU per branch; the others
/// are refused before any work; `dgl eval` says where a segmentation run's scores are.
#[test]
fn segmentation_trains_under_the_dense_methods() {
    let text = r#"
        [data.dataset]
        kind = "synthetic-rgbd"
        n_train = 20
        n_test = 6
        height = 32
        width = 32
        [model]
        fusion = "esanet"
        base_width = 2
        modalities = [
            { name = "rgb", encoder = { kind = "resnet18_visual" } },
            { name = "depth", encoder = { kind = "resnet18_visual" } },
        ]
        [model.esanet]
        decoder_blocks = 1
        [train]
        epochs = 1
        batch_size = 4
        diagnostics_every = 2
    "#;
    let base = TrainConfig::from_toml_str(text).unwrap();
    let cases: [(MethodKind, &[(&str, &str)]); 4] = [
        (MethodKind::Vanilla, &[]),
        (MethodKind::Dgl, &[]),
        (MethodKind::GBlending, &[("unimodal_heads", "\"shared-masked\"")]),
        (MethodKind::MmPareto, &[("unimodal_heads", "\"shared-masked\"")]),
    ];
    for (kind, options) in cases {
        let mut cfg = TrainConfig { method: MethodConfig::new(kind), ..base.clone() };
        for (k, v) in options {
            cfg = cfg.with_key(&format!("method.{k}"), dgl_cli::config::parse_value(v)).unwrap();
        }
        let out = common::tmp(&format!("seg-{kind}"));
        let outcome = train(&cfg, &out, &RunOptions::default()).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcome.score, "miou");
        let last = outcome.last();
        for col in ["test_miou", "test_pixel_acc", "test_miou_rgb", "test_miou_depth", "train_acc"] {
            assert!(last.get(col).is_some_and(|v| (0.0..=1.0).contains(&v)), "{kind}: {col} in {:?}", last.header());
        }
        if matches!(kind, MethodKind::Vanilla | MethodKind::Dgl) {
            check_segmentation_eval(&out, kind, last.get("test_miou").unwrap());
        }
        if kind == MethodKind::Dgl {
            check_segmentation_plot(&out);
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    for kind in [MethodKind::OgmGe, MethodKind::Pmr, MethodKind::Agm, MethodKind::Mla, MethodKind::Dnr] {
        let cfg = TrainConfig { method: MethodConfig::new(kind), ..base.clone() };
        let out = common::tmp(&format!("seg-refused-{kind}"));
        let e = train(&cfg, &out, &RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains("dense prediction"), "{kind}: {e}");
        assert!(!out.exists());
    }
}

/// `dgl eval` of a segmentation run: every head scored, consistent with the training log and with
/// itself; probes and the classification-only entry point refused.
fn check_segmentation_eval(out: &std::path::Path, kind: MethodKind, logged_miou: f64) {
    use dgl_cli::eval::{evaluate, EvalOptions, Evaluation};
    let opts = EvalOptions { noise: vec![1.0], ..EvalOptions::default() };
    let Evaluation::Segmentation(r) = evaluate(out, &opts).unwrap() else {
        panic!("{kind}: not a segmentation report")
    };
    let names: Vec<&str> = r.heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["multimodal", "rgb", "depth"], "{kind}");
    // The checkpoint is the last epoch's: its multimodal test mIoU is the one the run logged.
    assert!((r.heads[0].miou - logged_miou).abs() < 1e-9, "{kind}: {} vs logged {logged_miou}", r.heads[0].miou);
    for h in &r.heads {
        let present: Vec<f64> = h.class_iou.iter().flatten().copied().collect();
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        assert!((mean - h.miou).abs() < 1e-12, "{kind} {}: mean class IoU {mean} vs mIoU {}", h.name, h.miou);
    }
    // Both modalities present through the fusion + decoder is the multimodal prediction (vanilla's
    // and DGL's predict); one present is that modality's branch (the other zeroed at every fusion
    // point).
    let subset = |mods: &[&str]| r.subsets.iter().find(|s| s.modalities == mods).unwrap().miou;
    assert_eq!(subset(&["rgb", "depth"]), r.heads[0].miou, "{kind}");
    assert_eq!(subset(&["rgb"]), r.heads[1].miou, "{kind}");
    assert_eq!(subset(&["depth"]), r.heads[2].miou, "{kind}");
    let shapley: f64 = r.contributions.iter().map(|c| c.shapley).sum();
    assert!((shapley - (subset(&["rgb", "depth"]) - subset(&[]))).abs() < 1e-12, "{kind}: efficiency");
    assert_eq!(r.robustness.len(), 4, "{kind}: two modalities × (zeroed, σ = 1)");
    assert!(r.labelled_pixels > 0 && r.test_images == 6, "{kind}: {} images", r.test_images);
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("| head | mIoU % |") && md.contains("IoU % per class"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert!((json["heads"][0]["miou"].as_f64().unwrap() - r.heads[0].miou).abs() < 1e-15);
    let e = evaluate(out, &EvalOptions { probe: true, ..EvalOptions::default() }).unwrap_err().to_string();
    assert!(e.contains("--probe") && e.contains("classification"), "{e}");
    let e = dgl_cli::eval::eval_run(out, &opts).unwrap_err().to_string();
    assert!(e.contains("segmentation run") && e.contains("evaluate"), "{e}");
}

/// `dgl plot` of a segmentation run: the mIoU curves and the prediction figure (4 test images ×
/// rgb, depth, ground truth, prediction, 2 branches); without a checkpoint the latter is skipped,
/// saying why.
fn check_segmentation_plot(out: &std::path::Path) {
    let report = dgl_cli::plot::plot_run_report(out).unwrap();
    let written: Vec<String> =
        report.written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for f in ["miou.png", "miou.svg", "grad_sources_epoch.png", "predictions.png"] {
        assert!(written.iter().any(|w| w == f), "{f} not in {written:?}");
    }
    assert!(!written.iter().any(|w| w.starts_with("accuracy")), "{written:?}");
    let img = image::open(out.join("plots/predictions.png")).unwrap();
    // Six columns of 192-pixel tiles (32 × 32 scenes drawn 192 × 192), four rows.
    assert!(img.width() >= 6 * 192 && img.height() >= 4 * 192, "{}×{}", img.width(), img.height());
    let svg = std::fs::read_to_string(out.join("plots/miou.svg")).unwrap();
    assert!(svg.contains("mIoU"), "the mIoU figure's axis");
    std::fs::remove_file(out.join("checkpoint.safetensors")).unwrap();
    let report = dgl_cli::plot::plot_run_report(out).unwrap();
    assert!(report.skipped.iter().any(|s| s.starts_with("predictions: no checkpoint")), "{:?}", report.skipped);
}

/// The mixer trains on a generic dataset of (T, D_m) sequences of different lengths and widths per
/// modality: the committed MOSI-structured export (crates/dgl-data/tests/fixtures/mosi-tiny).
#[test]
fn mixer_trains_on_the_mosi_export() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dgl-data/tests/fixtures/mosi-tiny");
    let mut cfg = micro_mixer(MethodKind::Dgl);
    cfg.data.dataset = dgl_data::DatasetSpec::from_kind("generic", Some(root)).unwrap();
    cfg.train.batch_size = 3;
    cfg.train.diagnostics_every = 0;
    let out = common::tmp("mixer-mosi");
    let outcome = train(&cfg, &out, &RunOptions::default()).unwrap();
    let last = outcome.last();
    for col in ["test_acc", "test_acc_audio", "test_acc_visual", "test_acc_text"] {
        assert!(last.get(col).is_some_and(|v| (0.0..=1.0).contains(&v)), "{col} in {:?}", last.header());
    }
    let _ = std::fs::remove_dir_all(&out);
}
