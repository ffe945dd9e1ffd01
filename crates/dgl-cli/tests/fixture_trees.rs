//! `dgl prepare` + `dgl train` on generated fixture trees in the real CREMA-D, Kinetics-Sounds
//! and VGGSound layouts ([`dgl_data::fixtures`]): each layout is prepared into a cache for both
//! splits (as `dgl prepare` does), then trained for one epoch straight from the tree and once
//! from the cache.

use std::path::{Path, PathBuf};

use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{Preset, TrainConfig};
use dgl_cli::{train, RunOptions};
use dgl_data::datasets::prepare;
use dgl_data::fixtures::{write_cremad_tree, write_ks_tree, write_vggsound_tree, FixtureTree, KS_CLASSES};
use dgl_data::{DatasetSpec, Split};

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dgl-cli-fixture-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tree's spec with small frames and `frames` frames per clip.
fn small(tree: &FixtureTree, frames: usize) -> DatasetSpec {
    let mut spec = tree.spec.clone();
    let clip = spec.clip_options_mut().expect("a clip layout");
    clip.image_size = Some(16);
    clip.frames = Some(frames);
    spec
}

fn config(dataset: DatasetSpec, frames: usize) -> TrainConfig {
    let mut cfg = TrainConfig::preset(Preset::Tiny);
    cfg.method = MethodConfig::new(MethodKind::Dgl);
    cfg.data.dataset = dataset;
    cfg.model.base_width = 2;
    cfg.model.frames = frames;
    cfg.train.epochs = 1;
    cfg.train.batch_size = 4;
    cfg.train.diagnostics_every = 0;
    cfg
}

fn check_metrics(cfg: &TrainConfig, out: &Path, what: &str) {
    let o = train(cfg, out, &RunOptions { overwrite: true, ..RunOptions::default() })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(o.epochs.len(), 1, "{what}");
    let last = o.last();
    for k in ["test_acc", "test_acc_audio", "test_acc_visual"] {
        let v = last.get(k).unwrap_or_else(|| panic!("{what}: no {k} in {:?}", last.header()));
        assert!((0.0..=1.0).contains(&v), "{what}: {k} = {v}");
    }
}

/// Prepares both splits of the tree at `t/tree` into `t/cache` (as `dgl prepare` does), then
/// trains from the tree and from the cache.
fn prepare_and_train(t: &TempDir, tree: &FixtureTree, frames: usize) {
    let cache = t.0.join("cache");
    let spec = small(tree, frames);
    let what = spec.kind_name();
    assert_eq!(spec.root(), Some(t.0.join("tree").as_path()));
    for (split, ids) in [(Split::Train, &tree.train_ids), (Split::Test, &tree.test_ids)] {
        let (ds, open_report) = spec.open(split).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(ds.len(), ids.len(), "{what} {split:?}: {open_report}");
        let report = prepare(ds.as_ref(), split, &cache, false, &|_, _| {}).unwrap();
        assert!(report.to_string().contains("0 missing, 0 corrupt"), "{report}");
    }
    check_metrics(&config(spec.clone(), frames), &t.0.join("run-direct"), what);
    let cached = config(DatasetSpec::from_kind("cached", Some(cache)).unwrap(), frames);
    check_metrics(&cached, &t.0.join("run-cached"), &format!("{what} (cached)"));
}

#[test]
fn cremad_fixture_tree_prepares_and_trains() {
    let t = TempDir::new("cremad");
    // 12 train clips (2 per emotion), 6 test clips (1 per emotion).
    let tree = write_cremad_tree(&t.0.join("tree"), 12, 6).unwrap();
    prepare_and_train(&t, &tree, 1);
}

#[test]
fn ks_fixture_tree_prepares_and_trains() {
    let t = TempDir::new("ks");
    let tree = write_ks_tree(&t.0.join("tree"), &KS_CLASSES, 4).unwrap();
    prepare_and_train(&t, &tree, 2);
}

#[test]
fn vggsound_fixture_tree_prepares_and_trains() {
    let t = TempDir::new("vggsound");
    let tree = write_vggsound_tree(&t.0.join("tree"), &["siren", "dog, barking", "rain"], 4, 2).unwrap();
    prepare_and_train(&t, &tree, 2);
}
