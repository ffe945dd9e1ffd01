//! Every start and every resume of a run records what produced it in `environment.jsonl`.

mod common;

use common::{micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::run_dir::RunDir;
use dgl_cli::{resume, train, RunControl, RunOptions};

#[test]
fn environment_is_recorded_at_start_and_resume() {
    let cfg = micro(MethodKind::Dgl);
    let out = tmp("environment");
    train(&cfg, &out, &RunOptions { overwrite: true, ..RunOptions::default() }).unwrap();
    let mut more = cfg.clone();
    more.train.epochs += 1;
    resume(&out, Some(&more), &RunOptions::default(), &RunControl::default()).unwrap();
    let text = std::fs::read_to_string(out.join(RunDir::ENVIRONMENT)).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["event"], "start");
    assert_eq!(lines[1]["event"], "resume");
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let candle = lines[0]["candle_version"].as_str().unwrap();
    assert!(lock.contains(&format!("name = \"candle-core\"\nversion = \"{candle}\"")), "candle {candle}");
    assert_eq!(lines[0]["dgl_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(lines[0]["device"], "cpu");
    assert!(lines[0]["rustc"].as_str().unwrap().starts_with("rustc "));
    assert!(lines[0]["rayon_threads"].as_u64().unwrap() >= 1);
    assert!(!lines[0]["git_commit"].as_str().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&out);
}
