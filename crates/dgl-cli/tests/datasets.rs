//! `dgl prepare` + `dgl train` on the real AV-digits data (FSDD + MNIST in ../shared/data) through
//! the library entry points; skipped with a message when the data is absent.

use std::path::PathBuf;

use dgl_baselines::{MethodConfig, MethodKind};
use dgl_cli::config::{Preset, TrainConfig};
use dgl_cli::{train, RunOptions};
use dgl_data::datasets::prepare;
use dgl_data::DatasetSpec;
use dgl_data::Split;

fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    (p.join("fsdd").is_dir() && p.join("mnist").is_dir()).then_some(p)
}

#[test]
fn av_digits_prepare_then_train_from_the_cache() {
    let Some(root) = shared_data() else {
        eprintln!("SKIPPED: ../shared/data (FSDD + MNIST) is not present");
        return;
    };
    let cache = std::env::temp_dir().join(format!("dgl-cli-avd-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    for split in [Split::Train, Split::Test] {
        let (ds, _) = DatasetSpec::from_kind("av-digits", Some(root.clone())).unwrap().open(split).unwrap();
        let report = prepare(ds.as_ref(), split, &cache, false, &|_, _| {}).unwrap();
        assert!(report.to_string().contains("0 missing, 0 corrupt"), "{report}");
    }
    let mut cfg = TrainConfig::preset(Preset::Tiny);
    cfg.method = MethodConfig::new(MethodKind::Dgl);
    cfg.data.dataset = DatasetSpec::from_kind("cached", Some(cache.clone())).unwrap();
    cfg.model.base_width = 2;
    cfg.train.epochs = 1;
    cfg.train.batch_size = 128;
    cfg.train.diagnostics_every = 0;
    let out = cache.with_extension("run");
    let o = train(&cfg, &out, &RunOptions { overwrite: true, ..RunOptions::default() }).unwrap();
    let last = o.last();
    for k in ["test_acc", "test_acc_audio", "test_acc_visual"] {
        let v = last.get(k).unwrap_or_else(|| panic!("no {k}"));
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    // 10 classes, from the cache's own metadata: the model and the saved configuration have them
    // (the tiny preset says 6, the embedded dataset's count).
    let saved = TrainConfig::from_toml_file(&out.join(dgl_cli::run_dir::RunDir::CONFIG)).unwrap();
    assert_eq!(saved.model.num_classes, 10);
    assert_eq!(cfg.model.num_classes, 6);
    // Resuming with the preset's configuration is not refused over the data-derived class count.
    let mut more = cfg.clone();
    more.train.epochs = 2;
    dgl_cli::resume(&out, Some(&more), &RunOptions::default(), &dgl_cli::RunControl::default()).unwrap();
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn on_disk_datasets_need_a_root() {
    let e = DatasetSpec::from_kind("cremad", None).unwrap_err().to_string();
    assert!(e.contains("--root") && e.contains("cremad"), "{e}");
    // A configuration without one (a file's [data.dataset] with only the kind) is refused too.
    let mut cfg = TrainConfig::preset(Preset::Tiny);
    cfg.data.dataset = TrainConfig::from_toml_str("[data.dataset]\nkind = \"cremad\"").unwrap().data.dataset;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("root") && e.contains("cremad"), "{e}");
    // Aliases name the same layout; the synthetic set takes no root.
    for (alias, kind) in
        [("crema-d", "cremad"), ("Kinetics_Sounds", "ks"), ("avdigits", "av-digits"), ("cache", "cached")]
    {
        assert_eq!(DatasetSpec::from_kind(alias, Some("/r".into())).unwrap().kind_name(), kind);
    }
    assert!(DatasetSpec::from_kind("synthetic", Some("/r".into())).is_err());
    assert_eq!(DatasetSpec::from_kind("synthetic", None).unwrap().root(), None);
}
