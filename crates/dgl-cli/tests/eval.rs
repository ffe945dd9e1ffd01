//! `dgl eval`: the report of a trained run agrees with the training loop's own evaluation and with
//! its definitions (Shapley efficiency, subsets = branches for DGL), and it is written to the run.

mod common;

use common::{micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::eval::{eval_run, EvalOptions};
use dgl_cli::{train, RunOptions};

#[test]
fn eval_report_agrees_with_training_and_its_definitions() {
    let mut cfg = micro(MethodKind::Dgl);
    cfg.data.validation_fraction = 0.0;
    cfg.data.synthetic_mut().unwrap().n_test = 30;
    let out = tmp("eval-dgl");
    let o = train(&cfg, &out, &RunOptions { overwrite: true, ..RunOptions::default() }).unwrap();
    let last = o.last();
    let r = eval_run(&out, &EvalOptions { noise: vec![1.0, 3.0], probe: true, device: None }).unwrap();
    assert_eq!(r.test_samples, 30);
    assert_eq!(r.checkpoint, "after epoch 2");
    let score = |n: &str| r.scores.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no head {n}")).clone();
    // The same accuracies as the epoch-end evaluation of the training loop.
    for (head, col) in [("multimodal", "test_acc"), ("audio", "test_acc_audio"), ("visual", "test_acc_visual")] {
        let s = score(head);
        assert!((s.accuracy - last.get(col).unwrap()).abs() < 1e-12, "{head}: {} vs {col}", s.accuracy);
        assert!((0.0..=1.0).contains(&s.macro_f1), "{head} F1 {}", s.macro_f1);
    }
    // DGL predicts with the fusion head: v(all) is the multimodal accuracy and v({m}) the branch's.
    let v = |mods: &[&str]| r.subsets.iter().find(|s| s.modalities == mods).unwrap().accuracy;
    assert_eq!(r.subsets.len(), 4);
    assert!((v(&["audio", "visual"]) - score("multimodal").accuracy).abs() < 1e-12);
    assert!((v(&["audio"]) - score("audio").accuracy).abs() < 1e-12);
    assert!((v(&["visual"]) - score("visual").accuracy).abs() < 1e-12);
    // Shapley efficiency: the contributions add up to v(all) − v(∅).
    let total: f64 = r.contributions.iter().map(|c| c.shapley).sum();
    assert!((total - (v(&["audio", "visual"]) - v(&[]))).abs() < 1e-12, "{total}");
    // Robustness: 2 modalities × (zeroed + 2 noise levels).
    assert_eq!(r.robustness.len(), 6);
    assert!(r.robustness.iter().all(|x| (0.0..=1.0).contains(&x.accuracy)));
    // Probes: audio, visual, all; width 2 → 16-dim features per encoder.
    let dims: Vec<(String, usize)> = r.probes.iter().map(|p| (p.features.clone(), p.dim)).collect();
    assert_eq!(dims, vec![("audio".into(), 16), ("visual".into(), 16), ("all".into(), 32)]);
    // Parameters: the concat head is Linear(2·16 → 6); the total adds up.
    let params: std::collections::HashMap<String, usize> = r.parameters.iter().cloned().collect();
    assert_eq!(params["head"], 32 * 6 + 6);
    assert_eq!(params["total"], params["audio"] + params["visual"] + params["head"]);
    assert!(params["audio"] > 1000 && params["visual"] > 1000, "{params:?}");
    // Written next to the run.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(json["test_samples"], 30);
    assert!(std::fs::read_to_string(out.join("eval.md")).unwrap().contains("| multimodal |"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn eval_refuses_a_directory_without_checkpoint_and_bad_noise() {
    let out = tmp("eval-empty");
    std::fs::create_dir_all(&out).unwrap();
    let e = eval_run(&out, &EvalOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    let cfg = micro(MethodKind::Vanilla);
    train(&cfg, &out, &RunOptions { overwrite: true, ..RunOptions::default() }).unwrap();
    let e = eval_run(&out, &EvalOptions { noise: vec![-1.0], ..EvalOptions::default() }).unwrap_err().to_string();
    assert!(e.contains("--noise"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}
