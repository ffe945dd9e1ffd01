//! A NaN / infinite loss or gradient stops the run with a message naming where and what, keeping
//! the last good checkpoint — or, with `train.skip_non_finite`, skips the step without touching
//! the model, the optimizer or the method, and counts it in `skipped_steps`.

mod common;

use common::{assert_same_tensors, micro, tmp};
use dgl_baselines::MethodKind;
use dgl_cli::checkpoint::Checkpoint;
use dgl_cli::run_dir::{read_metrics, RunDir};
use dgl_cli::{train, train_with, CliError, RunControl, RunOptions};

#[test]
fn every_method_stops_on_a_non_finite_step_naming_it() {
    for &kind in MethodKind::ALL {
        let mut cfg = micro(kind);
        cfg.train.epochs = 1;
        let out = tmp(&format!("nan-{kind}"));
        let control = RunControl { inject_non_finite: Some(1..2), ..RunControl::default() };
        match train_with(&cfg, &out, &RunOptions::default(), &control) {
            Err(CliError::NonFinite(m)) => {
                assert!(
                    m.contains("non-finite") && m.contains("epoch 1/1 at step 2/") && m.contains("global step 1"),
                    "{kind}: {m}"
                );
                // Names the loss term (`loss_mm = NaN`, `loss_audio = NaN`, …) or the parameter.
                assert!(m.contains("loss_") && m.contains("NaN") || m.contains("parameter `"), "{kind}: {m}");
                assert!(m.contains("no checkpoint was written yet") && m.contains("--skip-non-finite"), "{kind}: {m}");
            }
            other => panic!("{kind}: expected a non-finite error, got {other:?}"),
        }
        assert!(!out.join(RunDir::CHECKPOINT).exists(), "{kind}");
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn a_non_finite_step_keeps_the_last_good_checkpoint() {
    let cfg = micro(MethodKind::Dgl);
    let out = tmp("nan-keep");
    // Steps 0–3 are epoch 1; step 5 is the second step of epoch 2.
    let control = RunControl { inject_non_finite: Some(5..6), ..RunControl::default() };
    let e = train_with(&cfg, &out, &RunOptions::default(), &control).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, CliError::NonFinite(_)), "{m}");
    // NaN inputs give NaN losses, or (where max-pooling drops the NaNs) finite losses and a NaN
    // gradient: the message names the loss term or the parameter.
    assert!(m.contains("epoch 2/2 at step 2/4 (global step 5)"), "{m}");
    assert!(
        m.contains("loss_mm = NaN")
            || (m.contains("non-finite gradient") && m.contains("parameter `audio_net.conv1.weight`")),
        "{m}"
    );
    assert!(!m.contains("at epoch 1 step 1"), "0-based positions are not repeated: {m}");
    assert!(m.contains("last good checkpoint (after epoch 1)") && m.contains("--resume"), "{m}");
    let meta = Checkpoint::load(&out.join(RunDir::CHECKPOINT)).unwrap().meta;
    assert_eq!((meta.epoch, meta.global_step, meta.progress.is_none()), (1, 4, true));
    assert_eq!(read_metrics(&out.join(RunDir::METRICS_JSONL)).unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn skipped_steps_leave_model_optimizer_and_method_untouched() {
    // MLA applies two optimizer steps per batch: a NaN in the second must undo the first too.
    for kind in [MethodKind::Dgl, MethodKind::Mla] {
        let mut one = micro(kind);
        one.train.epochs = 1;
        one.train.skip_non_finite = true;
        let reference = tmp(&format!("skip-ref-{kind}"));
        train(&one, &reference, &RunOptions::default()).unwrap();

        // Every step of epoch 2 is non-finite and skipped: the state after epoch 2 is the state
        // after epoch 1, to the bit (weights, BatchNorm statistics, momentum, method state).
        let mut two = one.clone();
        two.train.epochs = 2;
        let out = tmp(&format!("skip-{kind}"));
        let control = RunControl { inject_non_finite: Some(4..8), ..RunControl::default() };
        let outcome =
            train_with(&two, &out, &RunOptions::default(), &control).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(outcome.epochs[0].get("skipped_steps"), Some(0.0), "{kind}");
        assert_eq!(outcome.epochs[1].get("skipped_steps"), Some(4.0), "{kind}");
        assert_eq!(outcome.epochs[1].get("train_loss_mm"), None, "{kind}: no loss of a skipped step is averaged");
        assert_same_tensors(&reference.join(RunDir::CHECKPOINT), &out.join(RunDir::CHECKPOINT), &["meta."]);
        // The test accuracy of epoch 2 is that of epoch 1's model.
        assert_eq!(outcome.epochs[1].get("test_acc"), outcome.epochs[0].get("test_acc"), "{kind}");
        let _ = std::fs::remove_dir_all(&reference);
        let _ = std::fs::remove_dir_all(&out);
    }

    // One bad step among good ones: counted, and the run goes on with finite weights.
    let mut cfg = micro(MethodKind::Vanilla);
    cfg.train.skip_non_finite = true;
    let out = tmp("skip-one");
    let control = RunControl { inject_non_finite: Some(5..6), ..RunControl::default() };
    let outcome = train_with(&cfg, &out, &RunOptions::default(), &control).unwrap();
    assert_eq!(outcome.epochs[1].get("skipped_steps"), Some(1.0));
    let ckpt = Checkpoint::load(&out.join(RunDir::CHECKPOINT)).unwrap();
    for (name, t) in ckpt.model_tensors() {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name} is not finite");
    }
    let _ = std::fs::remove_dir_all(&out);
}
