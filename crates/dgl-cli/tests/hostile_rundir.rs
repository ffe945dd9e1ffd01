//! Hostile run directories and configurations (issue 12): `--overwrite` never deletes what `dgl`
//! did not write and keeps the old run until the new one has started; a refused `--resume` leaves
//! every file byte-identical; a hand-edited `config.toml` is detected; partial config sections
//! inherit their preset; `dgl eval` and `--resume` refuse a damaged model; `dgl eval` stays
//! bounded for many modalities.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Tensor;
use common::{micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::checkpoint::Checkpoint;
use dgl_cli::config::{DeviceKind, Preset, TrainConfig};
use dgl_cli::eval::{eval_run, EvalOptions};
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{resume, train, train_with, CliError, RunControl, RunOptions};
use dgl_data::DatasetSpec;
use dgl_models::FusionKind;

const OVERWRITE: RunOptions = RunOptions { progress: false, verbose: false, overwrite: true };

/// Every file and link under `dir` (recursively, links not followed) with its bytes (a link: its
/// target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let kind = std::fs::symlink_metadata(&p).unwrap().file_type();
            if kind.is_symlink() {
                out.insert(rel, std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes());
            } else if kind.is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Entries beside `dir` that a replacing run left behind (its staging or old-run directories).
fn leftovers(dir: &Path) -> Vec<String> {
    let name = format!(".{}.dgl-", dir.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect()
}

fn dgl(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dgl"));
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().expect("run dgl")
}

/// A directory of somebody's documents.
fn documents(dir: &Path) {
    std::fs::create_dir_all(dir.join("chapters")).unwrap();
    std::fs::write(dir.join("notes.txt"), "my notes").unwrap();
    std::fs::write(dir.join("thesis.tex"), "\\documentclass{article}").unwrap();
    std::fs::write(dir.join("chapters/one.tex"), "chapter one").unwrap();
}

/// A finished one-epoch micro run (with step diagnostics, so `steps.csv` exists) in `dir`.
fn one_epoch_run(dir: &Path, kind: MethodKind) -> TrainConfig {
    let mut cfg = micro(kind);
    cfg.train.epochs = 1;
    cfg.train.diagnostics_every = 1;
    train(&cfg, dir, &RunOptions::default()).unwrap();
    cfg
}

#[test]
fn overwrite_refuses_a_directory_dgl_did_not_write_and_deletes_nothing() {
    let cfg = micro(MethodKind::Vanilla);
    let docs = tmp("mydocs");
    documents(&docs);
    let before = snapshot(&docs);
    let e = train(&cfg, &docs, &OVERWRITE).unwrap_err().to_string();
    assert!(e.contains("not a run directory") && e.contains("notes.txt") && e.contains("chapters/"), "{e}");
    assert!(e.contains("nothing was changed"), "{e}");
    assert_eq!(snapshot(&docs), before, "--overwrite touched a directory of documents");

    // The binary, as the issue ran it: exit status 2, the documents are all there.
    let config = tmp("mydocs.toml");
    std::fs::write(&config, cfg.to_toml().unwrap()).unwrap();
    let (c, d) = (config.to_str().unwrap(), docs.to_str().unwrap());
    let o = dgl(&["train", "--epochs", "1", "--quiet", "--overwrite", "--config", c, "--out", d], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a run directory") && err.contains("thesis.tex"), "{err}");
    assert_eq!(snapshot(&docs), before);

    // A run directory with one foreign file, or with a link to a file outside it under a run
    // file's name, or whose config.toml is no dgl configuration: refused, nothing deleted.
    let run = tmp("mydocs-run");
    train(&cfg, &run, &RunOptions::default()).unwrap();
    std::fs::write(run.join("paper-draft.md"), "draft").unwrap();
    let before = snapshot(&run);
    let e = train(&cfg, &run, &OVERWRITE).unwrap_err().to_string();
    assert!(e.contains("1 entry in it is no run file") && e.contains("paper-draft.md"), "{e}");
    assert_eq!(snapshot(&run), before);
    std::fs::remove_file(run.join("paper-draft.md")).unwrap();

    let outside = tmp("mydocs-outside.csv");
    std::fs::write(&outside, "precious").unwrap();
    std::fs::remove_file(run.join(RunDir::METRICS_CSV)).unwrap();
    std::os::unix::fs::symlink(&outside, run.join(RunDir::METRICS_CSV)).unwrap();
    let before = snapshot(&run);
    let e = train(&cfg, &run, &OVERWRITE).unwrap_err().to_string();
    assert!(e.contains("metrics.csv (a symbolic link)"), "{e}");
    assert_eq!(snapshot(&run), before);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");

    let foreign = tmp("mydocs-foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join(RunDir::CONFIG), "[package]\nname = \"mine\"\n").unwrap();
    let e = train(&cfg, &foreign, &OVERWRITE).unwrap_err().to_string();
    assert!(e.contains("not a dgl configuration") && e.contains("package"), "{e}");
    assert!(foreign.join(RunDir::CONFIG).is_file());

    // A link to a run directory is not replaced either (the run behind it stays).
    let link = tmp("mydocs-link");
    std::os::unix::fs::symlink(&run, &link).unwrap();
    let e = train(&cfg, &link, &OVERWRITE).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(snapshot(&run), before);
    for d in [&docs, &run, &foreign] {
        let _ = std::fs::remove_dir_all(d);
    }
    for f in [&config, &outside, &link] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn overwrite_of_the_current_directory_is_refused() {
    let cfg = micro(MethodKind::Vanilla);
    let config = tmp("cwd.toml");
    std::fs::write(&config, cfg.to_toml().unwrap()).unwrap();
    let c = config.to_str().unwrap();
    // `--out .` in a directory of documents.
    let docs = tmp("cwd-docs");
    documents(&docs);
    let before = snapshot(&docs);
    let o = dgl(&["train", "--epochs", "1", "--quiet", "--config", c, "--out", ".", "--overwrite"], Some(&docs));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("current directory"), "{err}");
    assert_eq!(snapshot(&docs), before, "`--out . --overwrite` emptied the current directory");

    // Even a real run directory is not replaced while it is the current directory.
    let run = tmp("cwd-run");
    train(&cfg, &run, &RunOptions::default()).unwrap();
    let before = snapshot(&run);
    let o = dgl(&["train", "--epochs", "1", "--quiet", "--config", c, "--out", ".", "--overwrite"], Some(&run));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("current directory"), "{err}");
    assert_eq!(snapshot(&run), before);
    let _ = std::fs::remove_dir_all(&docs);
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn overwrite_replaces_a_run_only_once_the_new_run_has_started() {
    let old_cfg = micro(MethodKind::Vanilla);
    let dir = tmp("replace");
    train(&old_cfg, &dir, &RunOptions::default()).unwrap();
    dgl_cli::plot::plot_run(&dir).unwrap();
    let before = snapshot(&dir);
    assert!(before.keys().any(|k| k.starts_with("plots")), "{:?}", before.keys());
    let mut new_cfg = micro(MethodKind::Dgl);
    new_cfg.seed = 3;

    // The new run's data cannot be opened: the old run is untouched, nothing is left beside it.
    let mut no_data = new_cfg.clone();
    no_data.data.dataset = DatasetSpec::from_kind("generic", Some(tmp("replace-no-such-root"))).unwrap();
    no_data.model.modalities.truncate(1);
    assert!(train(&no_data, &dir, &OVERWRITE).is_err());
    assert_eq!(snapshot(&dir), before, "a new run that could not open its data destroyed the old run");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));

    // A NaN in the new run's first steps stops it before its first checkpoint: old run intact.
    let nan = RunControl { inject_non_finite: Some(0..1), ..RunControl::default() };
    match train_with(&new_cfg, &dir, &OVERWRITE, &nan) {
        Err(CliError::NonFinite(m)) => {
            assert!(m.contains(&format!("the run in {} was not replaced", dir.display())), "{m}");
            assert!(!m.contains(".dgl-new") && !m.contains("--resume"), "{m}");
        }
        other => panic!("expected a non-finite stop, got {other:?}"),
    }
    assert_eq!(snapshot(&dir), before, "a new run that failed before its first checkpoint destroyed the old run");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));

    // Once the new run has a checkpoint (here: interrupted after its first step), it replaces
    // the old run whole: no old file (plots included) remains, nothing is left beside it.
    let stop = RunControl { stop_after_steps: Some(1), ..RunControl::default() };
    match train_with(&new_cfg, &dir, &OVERWRITE, &stop) {
        Err(CliError::Interrupted(m)) => assert!(m.contains(&format!("--resume {}", dir.display())), "{m}"),
        other => panic!("expected an interruption, got {other:?}"),
    }
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert!(!dir.join(dgl_cli::plot::PLOTS_DIR).exists());
    let meta = Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap().meta;
    assert_eq!((meta.method.as_str(), meta.global_step), ("dgl", 1));
    // It continues as any run does.
    let out = resume(&dir, None, &RunOptions::default(), &RunControl::default()).unwrap();
    assert_eq!(out.epochs.len(), new_cfg.train.epochs);
    assert_eq!(TrainConfig::from_toml_file(&dir.join(RunDir::CONFIG)).unwrap().seed, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_resume_leaves_every_file_byte_identical() {
    let dir = tmp("refused-resume");
    let cfg = one_epoch_run(&dir, MethodKind::Dgl);
    let mut two = cfg.clone();
    two.train.epochs = 2;
    // A second epoch whose checkpoint was lost (a `kill -9` after its rows were written): the
    // metrics files hold rows beyond what the checkpoint in place recorded.
    let first = std::fs::read(dir.join(RunDir::CHECKPOINT)).unwrap();
    resume(&dir, Some(&two), &RunOptions::default(), &RunControl::default()).unwrap();
    std::fs::write(dir.join(RunDir::CHECKPOINT), &first).unwrap();
    let good = snapshot(&dir);
    let refused = |why: &str| {
        let before = snapshot(&dir);
        let e = resume(&dir, Some(&two), &RunOptions::default(), &RunControl::default()).expect_err(why).to_string();
        assert_eq!(snapshot(&dir), before, "{why}: a refused resume changed the run directory ({e})");
        e
    };

    // steps.csv lost rows the checkpoint recorded; metrics.jsonl (checked first) has extra rows.
    let steps = std::fs::read(dir.join(RunDir::STEPS_CSV)).unwrap();
    std::fs::write(dir.join(RunDir::STEPS_CSV), &steps[..steps.len() / 4]).unwrap();
    let e = refused("shortened steps.csv");
    assert!(e.contains("steps.csv has") && e.contains("nothing was changed"), "{e}");
    std::fs::write(dir.join(RunDir::STEPS_CSV), &steps).unwrap();

    // The rows the checkpoint recorded are damaged (same length).
    let jsonl = std::fs::read(dir.join(RunDir::METRICS_JSONL)).unwrap();
    let mut damaged = jsonl.clone();
    damaged[0] = b'[';
    std::fs::write(dir.join(RunDir::METRICS_JSONL), &damaged).unwrap();
    let e = refused("damaged metrics.jsonl");
    assert!(e.contains("metrics.jsonl:1"), "{e}");
    std::fs::write(dir.join(RunDir::METRICS_JSONL), &jsonl).unwrap();

    // metrics.jsonl is a link to a file outside the run: nothing is cut or appended through it.
    let outside = tmp("refused-resume-outside.jsonl");
    std::fs::write(&outside, &jsonl).unwrap();
    std::fs::remove_file(dir.join(RunDir::METRICS_JSONL)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(RunDir::METRICS_JSONL)).unwrap();
    let e = refused("linked metrics.jsonl");
    assert!(e.contains("metrics.jsonl is not a regular file"), "{e}");
    assert_eq!(std::fs::read(&outside).unwrap(), jsonl);
    std::fs::remove_file(dir.join(RunDir::METRICS_JSONL)).unwrap();
    std::fs::remove_file(&outside).unwrap();
    std::fs::write(dir.join(RunDir::METRICS_JSONL), &jsonl).unwrap();

    // NaN weights and a negative BatchNorm running variance in the checkpoint.
    for (what, needle) in
        [(Damage::NanWeight, "non-finite"), (Damage::NegativeVar, "negative BatchNorm running variance")]
    {
        damage_checkpoint(&dir, what);
        let e = refused(needle);
        assert!(e.contains(needle) && e.contains("tensor `"), "{e}");
        std::fs::write(dir.join(RunDir::CHECKPOINT), &first).unwrap();
    }
    assert_eq!(snapshot(&dir), good);

    // Undamaged, the same resume cuts the stale rows and finishes; `dgl plot` reads the result.
    resume(&dir, Some(&two), &RunOptions::default(), &RunControl::default()).unwrap();
    assert_eq!(read_metrics(&dir.join(RunDir::METRICS_JSONL)).unwrap().len(), 2);
    dgl_cli::plot::plot_run(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hand_edited_config_toml_is_detected_on_resume() {
    let dir = tmp("edited-config");
    let cfg = one_epoch_run(&dir, MethodKind::Vanilla);
    let mut two = cfg.clone();
    two.train.epochs = 2;
    let path = dir.join(RunDir::CONFIG);
    let original = std::fs::read_to_string(&path).unwrap();
    let try_resume = || resume(&dir, Some(&two), &RunOptions::default(), &RunControl::default());

    // Another learning rate and seed, by hand: refused naming both, nothing changed.
    let mut by_hand = TrainConfig::from_toml_str(&original).unwrap();
    by_hand.train.optimizer.lr = 0.5;
    by_hand.seed = 9;
    let edited = by_hand.to_toml().unwrap();
    std::fs::write(&path, &edited).unwrap();
    let before = snapshot(&dir);
    let e = try_resume().unwrap_err().to_string();
    assert!(
        e.contains("edited by hand") && e.contains("`train.optimizer.lr`: 0.5 in it, 0.01 in the checkpoint"),
        "{e}"
    );
    assert!(e.contains("`seed`") && e.contains("--config"), "{e}");
    assert_eq!(snapshot(&dir), before);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited, "the user's edit was overwritten");

    // An edit that does not parse: refused too.
    std::fs::write(&path, "[train\nepochs = 2").unwrap();
    let e = try_resume().unwrap_err().to_string();
    assert!(e.contains("edited by hand") && e.contains("does not parse"), "{e}");

    // An edit of a resumable key that this resume asks for anyway, and comments: accepted; the
    // file then describes the resumed run.
    let mut by_hand = TrainConfig::from_toml_str(&original).unwrap();
    by_hand.train.epochs = 2;
    std::fs::write(&path, format!("# my note\n{}", by_hand.to_toml().unwrap())).unwrap();
    assert_eq!(try_resume().unwrap().epochs.len(), 2);
    let saved = TrainConfig::from_toml_file(&path).unwrap();
    assert_eq!(saved, Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap().meta.config().unwrap());
    assert_eq!(saved.train.epochs, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn partial_config_sections_inherit_the_preset() {
    let tiny = TrainConfig::preset(Preset::Tiny);
    let paper = TrainConfig::preset(Preset::Paper);
    // `[model]` with only the fusion: the tiny base width, not the paper's 64.
    let c = TrainConfig::from_toml_str("[model]\nfusion = \"sum\"").unwrap();
    assert_eq!((c.model.fusion, c.model.base_width), (FusionKind::Sum, tiny.model.base_width));
    // `[train]` with only the epochs: the tiny batch, learning rate, milestones and diagnostics.
    let c = TrainConfig::from_toml_str("[train]\nepochs = 3").unwrap();
    assert_eq!(c.train.epochs, 3);
    assert_eq!(c.train.batch_size, tiny.train.batch_size);
    assert_eq!(c.train.optimizer, tiny.train.optimizer);
    assert_eq!(c.train.scheduler, tiny.train.scheduler);
    assert_eq!(c.train.diagnostics_every, tiny.train.diagnostics_every);
    // Deeper tables too: `[data.dataset]` with only n_train keeps the tiny n_test.
    let c = TrainConfig::from_toml_str("[data.dataset]\nn_train = 10").unwrap();
    let tiny_synthetic = tiny.clone().data.synthetic_mut().unwrap().clone();
    let s = c.clone().data.synthetic_mut().unwrap().clone();
    assert_eq!((s.n_train, s.n_test), (10, tiny_synthetic.n_test));
    // Everything not given is exactly the preset.
    let mut expected = tiny.clone();
    expected.train.epochs = 3;
    expected.train.optimizer.momentum = 0.5;
    assert_eq!(TrainConfig::from_toml_str("[train]\nepochs = 3\n[train.optimizer]\nmomentum = 0.5").unwrap(), expected);
    // The paper preset, named in the file or by --preset, is the base the same way.
    let c = TrainConfig::from_toml_str("preset = \"paper\"\n[train]\nepochs = 3").unwrap();
    assert_eq!((c.train.batch_size, c.model.base_width, c.device), (paper.train.batch_size, 64, DeviceKind::Cuda));
    assert_eq!(c.train.scheduler, paper.train.scheduler);
    let c = TrainConfig::from_toml_str_with_preset("[model]\nfusion = \"sum\"", Some(Preset::Paper)).unwrap();
    assert_eq!((c.preset, c.model.base_width, &c.data.dataset), (Preset::Paper, 64, &paper.data.dataset));
    let e = TrainConfig::from_toml_str_with_preset("preset = \"tiny\"", Some(Preset::Paper)).unwrap_err().to_string();
    assert!(e.contains("disagrees"), "{e}");
    // Arrays are replaced whole: a one-entry milestone list is that list.
    let c = TrainConfig::from_toml_str("[train.scheduler]\nmilestones = [2]").unwrap();
    assert_eq!((c.train.scheduler.milestones.clone(), c.train.scheduler.gamma), (vec![2], tiny.train.scheduler.gamma));

    // A complete configuration reads back identical: both presets, and a run's saved config.toml.
    for cfg in [tiny, paper, micro(MethodKind::OgmGe)] {
        assert_eq!(TrainConfig::from_toml_str(&cfg.to_toml().unwrap()).unwrap(), cfg);
    }
    let dir = tmp("partial-saved");
    let mut cfg = micro(MethodKind::Dgl);
    cfg.train.epochs = 1;
    cfg.model.fusion = FusionKind::Sum;
    train(&cfg, &dir, &RunOptions::default()).unwrap();
    let saved = TrainConfig::from_toml_file(&dir.join(RunDir::CONFIG)).unwrap();
    assert_eq!(saved, Checkpoint::load(&dir.join(RunDir::CHECKPOINT)).unwrap().meta.config().unwrap());
    cfg.model.num_classes = saved.model.num_classes; // set from the dataset
    assert_eq!(saved, cfg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Clone, Copy)]
enum Damage {
    NanWeight,
    NegativeVar,
}

/// Rewrites the run's checkpoint with one model value made invalid.
fn damage_checkpoint(dir: &Path, damage: Damage) {
    let path = dir.join(RunDir::CHECKPOINT);
    let mut c = Checkpoint::load(&path).unwrap();
    let suffix = match damage {
        Damage::NanWeight => "conv1.weight",
        Damage::NegativeVar => "running_var",
    };
    let name = c.model_tensors().into_keys().filter(|k| k.ends_with(suffix)).min().expect(suffix);
    let t = &c.tensors[&name];
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = match damage {
        Damage::NanWeight => f32::NAN,
        Damage::NegativeVar => -0.5,
    };
    let shape = t.shape().clone();
    c.tensors.insert(name, Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap());
    c.save(&path).unwrap();
}

#[test]
fn eval_refuses_a_checkpoint_with_a_damaged_model() {
    let dir = tmp("eval-damaged");
    let mut cfg = micro(MethodKind::Vanilla);
    cfg.train.epochs = 1;
    train(&cfg, &dir, &RunOptions::default()).unwrap();
    let good = std::fs::read(dir.join(RunDir::CHECKPOINT)).unwrap();
    for (damage, needle) in
        [(Damage::NanWeight, "non-finite values"), (Damage::NegativeVar, "negative BatchNorm running variance")]
    {
        damage_checkpoint(&dir, damage);
        let e = eval_run(&dir, &EvalOptions::default()).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("tensor `") && e.contains(RunDir::CHECKPOINT), "{e}");
        assert!(!dir.join(RunDir::EVAL_JSON).exists(), "a report was written for a damaged model");
        std::fs::write(dir.join(RunDir::CHECKPOINT), &good).unwrap();
    }
    eval_run(&dir, &EvalOptions::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A generic dataset of `m` modalities, each a 2-vector per sample (class-dependent mean).
fn many_modalities(root: &Path, m: usize) {
    std::fs::create_dir_all(root.join("features")).unwrap();
    let mut manifest = String::from("id,label,split\n");
    let mut rng = dgl_core::rng::Rng::new(5);
    for s in 0..36 {
        let (label, split) = (s % 3, if s < 24 { "train" } else { "test" });
        manifest += &format!("s{s},{label},{split}\n");
        let tensors: std::collections::HashMap<String, Tensor> = (0..m)
            .map(|i| {
                let v = vec![label as f32 + 0.5 * rng.normal() as f32, (i % 3) as f32 * rng.normal() as f32];
                (format!("m{i:02}"), Tensor::from_vec(v, 2, &candle_core::Device::Cpu).unwrap())
            })
            .collect();
        candle_core::safetensors::save(&tensors, root.join(format!("features/s{s}.safetensors"))).unwrap();
    }
    std::fs::write(root.join("manifest.csv"), manifest).unwrap();
}

#[test]
fn eval_of_many_modalities_stays_bounded_and_efficient() {
    let m = dgl_cli::eval::SHAPLEY_EXACT_MAX + 2;
    let root = tmp("many-modalities-data");
    many_modalities(&root, m);
    let mut cfg = micro(MethodKind::Vanilla);
    cfg.data.dataset = DatasetSpec::from_kind("generic", Some(root.clone())).unwrap();
    cfg.data.validation_fraction = 0.0;
    cfg.train.epochs = 1;
    cfg.model.modalities = (0..m)
        .map(|i| dgl_models::ModalityConfig::new(format!("m{i:02}"), dgl_models::EncoderKind::Mlp { hidden: vec![] }))
        .collect();
    let dir = tmp("many-modalities");
    train(&cfg, &dir, &RunOptions::default()).unwrap();
    let r = eval_run(&dir, &EvalOptions { noise: vec![1.0], ..EvalOptions::default() }).unwrap();
    assert_eq!(r.shapley_method, format!("sampled ({} random orders)", dgl_cli::eval::SHAPLEY_PERMUTATIONS));
    assert_eq!(r.contributions.len(), m);
    // ∅, each single modality and all of them are listed; the estimates add up to v(all) − v(∅).
    assert_eq!(r.subsets.len(), m + 2);
    let (empty, all) = (r.subsets[0].accuracy, r.subsets[m + 1].accuracy);
    assert!(r.subsets[0].modalities.is_empty() && r.subsets[m + 1].modalities.len() == m);
    let total: f64 = r.contributions.iter().map(|c| c.shapley).sum();
    assert!((total - (all - empty)).abs() < 1e-9, "{total} vs {}", all - empty);
    assert!(r.contributions.iter().all(|c| c.shapley_stderr.is_finite() && c.shapley_stderr >= 0.0));
    assert!(std::fs::read_to_string(dir.join("eval.md")).unwrap().contains("standard error"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&root);
}

/// A run written by an earlier version (its configuration in the former format) is still a run
/// directory `dgl` wrote: `--overwrite` may replace it, and resuming it is refused saying what
/// changed.
#[test]
fn a_run_of_an_earlier_version_can_be_replaced_and_is_not_resumed() {
    let dir = tmp("earlier-version");
    one_epoch_run(&dir, MethodKind::Dgl);
    let config = dir.join(RunDir::CONFIG);
    let text = std::fs::read_to_string(&config).unwrap();
    let old = text.replace("unimodal_weight = 4.0", "alpha = 4.0");
    assert_ne!(old, text, "{text}");
    std::fs::write(&config, &old).unwrap();
    let path = dir.join(RunDir::CHECKPOINT);
    let mut ckpt = Checkpoint::load(&path).unwrap();
    ckpt.meta.config_toml = old;
    ckpt.save(&path).unwrap();
    let e = resume(&dir, None, &RunOptions::default(), &RunControl::default()).unwrap_err().to_string();
    assert!(e.contains("unimodal_weight = 4") && e.contains("earlier version"), "{e}");
    let mut cfg = micro(MethodKind::Vanilla);
    cfg.train.epochs = 1;
    train(&cfg, &dir, &OVERWRITE).unwrap();
    assert_eq!(TrainConfig::from_toml_file(&config).unwrap().method.kind(), MethodKind::Vanilla);
    let _ = std::fs::remove_dir_all(&dir);
}
