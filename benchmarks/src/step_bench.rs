//! The DGL step against the plain step, same model, same batches, interleaved in one run.
//!
//! `cargo run --release -p dgl-benchmarks --bin step-bench -- [--preset tiny|paper] [--steps N]
//! [--batch B] [--base-width W] [--audio FxT] [--device cpu|cuda] [--kernels ours|candle|both]`
//!
//! Prints ms/step for each routing and the ratio DGL / plain. Steps are interleaved (plain, DGL,
//! plain, DGL, …) so that machine noise hits both equally; the first `warmup` steps are not timed.

use std::time::Instant;

use candle_core::{Device, Tensor};
use dgl_core::loss::CrossEntropy;
use dgl_core::{routed_step, Routing, Sgd, SgdConfig};
use dgl_data::{load_batch, Dataset, Mode, SyntheticAv, SyntheticConfig};
use dgl_models::{build_model, ModelConfig};

/// mimalloc instead of glibc malloc: the per-item buffers (spectrograms, activations) are large
/// enough that glibc returns them to the OS after every item and page-faults them back in.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let preset = arg(&args, "--preset").unwrap_or_else(|| "tiny".into());
    let steps: usize = arg(&args, "--steps").map(|s| s.parse()).transpose()?.unwrap_or(20);
    let warmup = 3;
    let device = match arg(&args, "--device").as_deref() {
        Some("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let (data_cfg, base_width, default_batch) = match preset.as_str() {
        "paper" => (SyntheticConfig { n_train: 128, n_test: 8, ..SyntheticConfig::paper() }, 64, 64),
        _ => (SyntheticConfig { n_train: 256, n_test: 8, ..SyntheticConfig::tiny() }, 8, 32),
    };
    let base_width: usize = arg(&args, "--base-width").map(|s| s.parse()).transpose()?.unwrap_or(base_width);
    let batch: usize = arg(&args, "--batch").map(|s| s.parse()).transpose()?.unwrap_or(default_batch);
    let ds = SyntheticAv::new(data_cfg, dgl_data::Split::Train)?;
    let model_cfg = ModelConfig { base_width, num_classes: ds.num_classes(), ..ModelConfig::default() };
    let model = build_model(&model_cfg, &ds.modality_shapes(), &device, 0)?;
    let idx: Vec<usize> = (0..batch.min(ds.len())).collect();
    let mut b = load_batch(&ds, &idx, Mode::Eval, &device)?;
    // `--audio FxT`: random audio input of that shape instead of the dataset's (e.g. 257x299, the
    // shape the paper's text states).
    if let Some(shape) = arg(&args, "--audio") {
        let (f, t) = shape.split_once('x').ok_or("--audio expects FxT, e.g. 257x299")?;
        b.inputs[0] =
            Tensor::randn(0f32, 1.0, (b.inputs[0].dim(0)?, 1, f.parse::<usize>()?, t.parse::<usize>()?), &device)?;
    }
    let mut opt = Sgd::new(SgdConfig::default())?;
    // `--kernels ours|candle|both`: the project's CPU convolution / batch-norm kernels, candle's
    // generic ops, or both interleaved in the same run (the A/B reported in docs/performance.md).
    let kernels = arg(&args, "--kernels").unwrap_or_else(|| "ours".into());
    let variants: Vec<bool> = match kernels.as_str() {
        "ours" => vec![true],
        "candle" => vec![false],
        "both" => vec![true, false],
        k => return Err(format!("--kernels expects ours, candle or both, got {k}").into()),
    };
    let mut routings = Vec::new();
    for &ours in &variants {
        for (name, routing) in [("plain", Routing::plain()), ("dgl", Routing::dgl(4.0))] {
            let tag = if variants.len() > 1 {
                format!("{name}/{}", if ours { "ours" } else { "candle" })
            } else {
                name.into()
            };
            routings.push((tag, routing, ours));
        }
    }
    let mut totals = vec![0f64; routings.len()];
    for s in 0..warmup + steps {
        for (r, (_, routing, ours)) in routings.iter().enumerate() {
            dgl_models::cpu::set_enabled(*ours);
            let t = Instant::now();
            let mut out = routed_step(&model, &b.inputs, &b.labels, routing, &CrossEntropy)?;
            out.grads.clip_global_norm(40.0)?;
            opt.step(&out.grads)?;
            let _ = out.loss_mm.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?; // sync
            if s >= warmup {
                totals[r] += t.elapsed().as_secs_f64();
            }
        }
    }
    let shapes: Vec<String> = b.inputs.iter().map(|t: &Tensor| format!("{:?}", t.dims())).collect();
    println!(
        "preset {preset}, device {device:?}, batch {batch}, inputs {}, {steps} timed steps each (interleaved)",
        shapes.join(" + ")
    );
    for (r, (name, _, _)) in routings.iter().enumerate() {
        let ms = 1e3 * totals[r] / steps as f64;
        println!("{name:>12}: {ms:8.1} ms/step  {:8.1} samples/s", batch as f64 / (ms / 1e3));
    }
    println!("ratio dgl/plain: {:.3}", totals[1] / totals[0]);
    if variants.len() > 1 {
        println!(
            "speed-up of our CPU kernels over candle's ops: plain {:.2}x, dgl {:.2}x",
            totals[2] / totals[0],
            totals[3] / totals[1]
        );
    }
    Ok(())
}
