//! AGM instrumentation (issue #13 item 12): per-step traces of the modulation coefficients
//! k_m = exp(α·min(r*_m − r_m, 10)), of the gradient norm before and after AGM's conditional clip,
//! and per-epoch accuracies of the evaluation-mode prediction against the same forward with batch
//! statistics — on a short run of the tiny preset (AV-digits when `--root` is given, else the
//! embedded synthetic set).
//!
//! ```bash
//! cargo run --release -p dgl-cli --example agm_trace -- --root ../shared/data --epochs 4 --alpha 1.5
//! cargo run --release -p dgl-cli --example agm_trace -- --root ../shared/data --epochs 4 --alpha 0
//! # options: --seed S (default 0), --lr LR (default the tiny preset's 1e-2)
//! ```
//!
//! α = 0 gives k = 1 at every step: the same forwards (Shapley responses, evaluation-mode
//! zero-input passes with gradient, the conditional clip) without any modulation, which separates
//! the coefficient from the rest of the method. Writes `agm-trace-a<α>-s<seed>-lr<lr>.csv` (one line
//! per step) in the working directory and prints a per-epoch summary. As the tables, a validation
//! split is carved from the training set (the same training samples as a table run of that seed).

use std::io::Write;

use candle_core::{DType, Device, Tensor};
use dgl_baselines::agm::{Agm, AgmConfig};
use dgl_cli::config::{Preset, TrainConfig};
use dgl_cli::data::RunData;
use dgl_core::loss::CrossEntropy;
use dgl_core::method::{restore, snapshot};
use dgl_core::{Method, MultimodalModel, StepContext};
use dgl_data::{epoch_batches, Mode};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn hits(logits: &Tensor, y: &Tensor) -> dgl_cli::Result<usize> {
    let p = logits.argmax(1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let y = y.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    Ok(p.iter().zip(&y).filter(|(a, b)| a == b).count())
}

/// (median, max) of a sample.
fn med_max(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() - 1])
}

fn main() -> dgl_cli::Result<()> {
    let epochs: usize = arg("--epochs").map_or(4, |s| s.parse().expect("--epochs N"));
    let alpha: f64 = arg("--alpha").map_or(1.5, |s| s.parse().expect("--alpha A"));
    let seed: u64 = arg("--seed").map_or(0, |s| s.parse().expect("--seed S"));
    let mut cfg = TrainConfig::preset(Preset::Tiny);
    cfg.seed = seed;
    if let Some(lr) = arg("--lr") {
        cfg.train.optimizer.lr = lr.parse().expect("--lr LR");
    }
    if let Some(root) = arg("--root") {
        cfg.data.dataset = dgl_data::DatasetSpec::from_kind("av-digits", Some(root.into()))?;
    }
    let dev = Device::Cpu;
    // As the tables: a validation split is carved from the training set (same training samples).
    let data = RunData::build(&cfg, true, &dev)?;
    cfg.model.num_classes = data.train.num_classes();
    let model = dgl_models::build_model(&cfg.model, &data.modality_shapes(), &dev, cfg.seed)?;
    let mut agm = Agm::new(AgmConfig { modulation_strength: alpha, ..AgmConfig::default() });
    agm.check(&model)?;
    let mut opt = cfg.train.optimizer.build()?;
    let names = model.modality_names();
    let path = format!("agm-trace-a{alpha}-s{seed}-lr{}.csv", cfg.train.optimizer.lr);
    let mut csv = std::fs::File::create(&path).map_err(|e| dgl_cli::CliError::Run(format!("{path}: {e}")))?;
    let io = |e: std::io::Error| dgl_cli::CliError::Run(format!("{path}: {e}"));
    writeln!(csv, "step,epoch,coeff_{0},coeff_{1},score_{0},score_{1},grad_norm_raw,head_grad_max,clipped,grad_norm_applied,train_acc", names[0], names[1]).map_err(io)?;
    println!(
        "AGM α = {alpha}, seed {seed}, {}, {} train / {} test, lr {} (tiny preset), loop clip {:?}",
        cfg.data.dataset.kind_name(),
        data.train.len(),
        data.test.len(),
        cfg.train.optimizer.lr,
        cfg.train.clip_norm
    );
    println!("epoch | k_a median/max | k_v median/max | ‖g‖ raw median/max | clipped | train acc (batch stats) | test acc eval-mode BN | test acc batch-stat BN");
    let mut step = 0u64;
    for epoch in 0..epochs {
        opt.apply(cfg.train.scheduler.at(cfg.train.optimizer.lr, epoch, cfg.train.epochs));
        // The loop's shuffling and augmentation seeds.
        let epoch_seed = dgl_core::rng::Rng::derive(cfg.seed, 1_000 + epoch as u64).next_u64();
        let batches = epoch_batches(data.train.len(), data.batch_size, Some(epoch_seed), cfg.train.drop_last);
        let (mut ka, mut kv, mut gn) = (Vec::new(), Vec::new(), Vec::new());
        let (mut clipped, mut correct, mut seen) = (0usize, 0usize, 0usize);
        for (i, idx) in batches.iter().enumerate() {
            let (x, y) = data.batch(data.train.as_ref(), idx, Mode::Train { seed: epoch_seed })?;
            let mut ctx = StepContext {
                model: &model,
                optimizer: &mut opt,
                clip_norm: cfg.train.clip_norm,
                loss: &CrossEntropy,
                epoch,
                step_in_epoch: i,
                steps_per_epoch: batches.len(),
                global_step: step,
            };
            let rep = agm.train_step(&mut ctx, &x, &y)?;
            let s = |k: &str| rep.scalars.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
            let c = hits(rep.logits_mm.as_ref().expect("AGM reports logits"), &y)?;
            correct += c;
            seen += idx.len();
            let row = [
                s(&format!("coeff_{}", names[0])),
                s(&format!("coeff_{}", names[1])),
                s(&format!("score_{}", names[0])),
                s(&format!("score_{}", names[1])),
                s("grad_norm_raw"),
                s("head_grad_max"),
                s("clipped"),
                rep.grad_norm,
                c as f64 / idx.len() as f64,
            ];
            writeln!(csv, "{step},{epoch},{}", row.iter().map(|v| format!("{v:.6e}")).collect::<Vec<_>>().join(","))
                .map_err(io)?;
            ka.push(row[0]);
            kv.push(row[1]);
            gn.push(row[4]);
            clipped += (row[6] > 0.5) as usize;
            step += 1;
        }
        // Test accuracy: AGM's prediction (evaluation-mode BatchNorm), and the same f(a,v) with
        // batch statistics (the model state is restored afterwards: no running-statistics update).
        let (mut ok_eval, mut ok_batch, mut n) = (0usize, 0usize, 0usize);
        let vars = model.state_vars();
        let snap = snapshot(&vars)?;
        // Shuffled: a batch of one class would make batch statistics meaningless.
        for idx in epoch_batches(data.test.len(), data.batch_size, Some(0x7e57), false) {
            let (x, y) = data.batch(data.test.as_ref(), &idx, Mode::Eval)?;
            ok_eval += hits(&agm.predict(&model, &x)?.multimodal, &y)?;
            let z = model.encode_all(&x, true)?;
            ok_batch += hits(&model.fuse(&z, true)?, &y)?;
            n += idx.len();
        }
        restore(&vars, &snap)?;
        let (ka, kv, gn) = (med_max(&mut ka), med_max(&mut kv), med_max(&mut gn));
        println!(
            "{} | {:.3} / {:.3e} | {:.3} / {:.3e} | {:.3e} / {:.3e} | {clipped}/{} | {:.1} % | {:.1} % | {:.1} %",
            epoch + 1,
            ka.0,
            ka.1,
            kv.0,
            kv.1,
            gn.0,
            gn.1,
            batches.len(),
            100.0 * correct as f64 / seen as f64,
            100.0 * ok_eval as f64 / n as f64,
            100.0 * ok_batch as f64 / n as f64
        );
    }
    println!("per-step trace: {path}");
    Ok(())
}
