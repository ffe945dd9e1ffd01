//! The DGL step against the plain step, same model, same batches, interleaved in one run.
//!
//! `cargo run --release -p dgl-benchmarks --bin step-bench -- [--preset tiny|paper] [--steps N]
//! [--batch B] [--base-width W] [--audio FxT] [--device cpu|cuda] [--kernels ours|candle|both] [--tf32]
//! [--default-threads] [--default-alloc]`
//!
//! Prints ms/step for each routing and the ratio DGL / plain; on CUDA also the peak of the device
//! memory pool candle allocates from (cudarc's stream-ordered allocator). `--tf32` turns on candle's
//! TF32 f32 matmuls (and TF32 in the cuDNN convolution of a `cudnn` build). Steps are interleaved (plain, DGL,
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
    // `--default-threads`: candle's own thread pool as it comes (for A/B); otherwise candle's ops
    // run on the calling thread and only rayon's pool works (dgl_models::kernels::configure_cpu_threads).
    if !args.iter().any(|a| a == "--default-threads") {
        dgl_models::kernels::configure_cpu_threads();
    }
    #[cfg(feature = "mimalloc")]
    if !args.iter().any(|a| a == "--default-alloc") {
        dgl_models::kernels::keep_freed_memory();
    }
    // `--caller-thread`: the steps on the main thread (each kernel's parallel work injected into
    // rayon's pool, for A/B); otherwise on a worker of the pool (dgl_models::kernels::on_cpu_pool).
    if args.iter().any(|a| a == "--caller-thread") {
        run(&args)
    } else {
        dgl_models::kernels::on_cpu_pool(|| run(&args).map_err(|e| e.to_string())).map_err(Into::into)
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let preset = arg(args, "--preset").unwrap_or_else(|| "tiny".into());
    let steps: usize = arg(args, "--steps").map(|s| s.parse()).transpose()?.unwrap_or(20);
    let warmup = 3;
    let tf32 = args.iter().any(|a| a == "--tf32");
    candle_core::cuda::set_gemm_reduced_precision_f32(tf32);
    let device = match arg(args, "--device").as_deref() {
        Some("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let (data_cfg, base_width, default_batch) = match preset.as_str() {
        "paper" => (SyntheticConfig { n_train: 128, n_test: 8, ..SyntheticConfig::paper() }, 64, 64),
        _ => (SyntheticConfig { n_train: 256, n_test: 8, ..SyntheticConfig::tiny() }, 8, 32),
    };
    let base_width: usize = arg(args, "--base-width").map(|s| s.parse()).transpose()?.unwrap_or(base_width);
    let batch: usize = arg(args, "--batch").map(|s| s.parse()).transpose()?.unwrap_or(default_batch);
    let ds = SyntheticAv::new(data_cfg, dgl_data::Split::Train)?;
    let model_cfg = ModelConfig { base_width, num_classes: ds.num_classes(), ..ModelConfig::default() };
    let model = build_model(&model_cfg, &ds.modality_shapes(), &device, 0)?;
    let idx: Vec<usize> = (0..batch.min(ds.len())).collect();
    let mut b = load_batch(&ds, &idx, Mode::Eval, &device)?;
    // `--audio FxT`: random audio input of that shape instead of the dataset's (e.g. 257x299, the
    // shape the paper's text states).
    if let Some(shape) = arg(args, "--audio") {
        let (f, t) = shape.split_once('x').ok_or("--audio expects FxT, e.g. 257x299")?;
        b.inputs[0] =
            Tensor::randn(0f32, 1.0, (b.inputs[0].dim(0)?, 1, f.parse::<usize>()?, t.parse::<usize>()?), &device)?;
    }
    let mut opt = Sgd::new(SgdConfig::default())?;
    // `--kernels ours|candle|both`: the project's convolution / batch-norm kernels (CPU; cuDNN
    // convolution with cuDNN backward in a `cudnn` build), candle's
    // generic ops, or both interleaved in the same run (the A/B reported in docs/performance.md).
    let kernels = arg(args, "--kernels").unwrap_or_else(|| "ours".into());
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
    pool_peak::reset(&device);
    let mut totals = vec![0f64; routings.len()];
    let mut rss_warm = None;
    for s in 0..warmup + steps {
        if s == warmup {
            rss_warm = proc_status_kib("VmRSS");
        }
        for (r, (_, routing, ours)) in routings.iter().enumerate() {
            dgl_models::kernels::set_enabled(*ours);
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
    let peak = pool_peak::get(&device);
    let gib = |kib: Option<u64>| kib.map_or(f64::NAN, |k| k as f64 / (1u64 << 20) as f64);
    let peak_rss = proc_status_kib("VmHWM");
    println!(
        "peak RSS (VmHWM) {:.3} GiB, RSS after warm-up {:.3} GiB, at the end {:.3} GiB, rayon threads {}",
        gib(peak_rss),
        gib(rss_warm),
        gib(proc_status_kib("VmRSS")),
        rayon::current_num_threads()
    );
    // TF32 exists on CUDA only (a CPU build's candle reports reduced precision as always allowed).
    let precision = if tf32 && device.is_cuda() { "tf32" } else { "fp32" };
    let audio = b.inputs[0].dims()[2..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
    for (r, (name, _, ours)) in routings.iter().enumerate() {
        let ms = 1e3 * totals[r] / steps as f64;
        let per_s = batch as f64 / (ms / 1e3);
        println!("{name:>12}: {ms:8.1} ms/step  {per_s:8.1} samples/s");
        // One machine-readable line per measurement (benchmarks/gpu-report.py reads them).
        println!(
            "RESULT {{\"impl\": \"{}\", \"routing\": \"{}\", \"precision\": \"{precision}\", \"audio\": \"{audio}\", \
             \"batch\": {batch}, \"device\": \"{}\", \"ms\": {ms:.3}, \"samples_per_s\": {per_s:.2}, \"peak_gib\": {}, \"peak_rss_gib\": {}, \"preset\": \"{preset}\", \
             \"threads\": {}}}",
            if *ours { "candle-ours" } else { "candle-ops" },
            name.split('/').next().unwrap_or(name),
            if device.is_cuda() { "cuda" } else { "cpu" },
            peak.map_or("null".to_string(), |b| format!("{:.3}", b as f64 / (1u64 << 30) as f64)),
            peak_rss.map_or("null".to_string(), |k| format!("{:.3}", k as f64 / (1u64 << 20) as f64)),
            rayon::current_num_threads(),
        );
    }
    println!("ratio dgl/plain: {:.3}", totals[1] / totals[0]);
    if let Some(bytes) = peak {
        println!(
            "peak device memory (pool high-water mark, all variants): {:.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    if variants.len() > 1 {
        println!(
            "speed-up of our kernels over candle's ops: plain {:.2}x, dgl {:.2}x",
            totals[2] / totals[0],
            totals[3] / totals[1]
        );
    }
    Ok(())
}

/// `VmHWM` (peak resident set) or `VmRSS` of this process in KiB, from `/proc/self/status` (Linux);
/// `None` elsewhere. The same numbers `benchmarks/pytorch_step.py` reads on its side.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The high-water mark of the CUDA device's current memory pool (`CU_MEMPOOL_ATTR_USED_MEM_HIGH`),
/// which cudarc's stream-ordered allocations come from: the peak bytes held by tensors, comparable
/// with PyTorch's `torch.cuda.max_memory_allocated()`. `None` on the CPU or where the driver reports
/// nothing (a device without stream-ordered allocation).
mod pool_peak {
    use candle_core::Device;

    #[cfg(feature = "cuda")]
    fn attr(device: &Device, set: Option<u64>) -> Option<u64> {
        use candle_core::cuda_backend::cudarc::driver::{result, sys};
        let Device::Cuda(d) = device else { return None };
        let ctx = d.cuda_stream().context().clone();
        ctx.bind_to_thread().ok()?;
        let high = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        // SAFETY: the pool is the device's current one; the attribute is a u64 (cuuint64_t).
        unsafe {
            let pool = result::device::get_mem_pool(ctx.cu_device()).ok()?;
            let mut v: u64 = set.unwrap_or(0);
            match set {
                Some(_) => result::mem_pool::set_attribute(pool, high, &mut v as *mut u64 as *mut _).ok()?,
                None => result::mem_pool::get_attribute(pool, high, &mut v as *mut u64 as *mut _).ok()?,
            }
            (v > 0 || set.is_some()).then_some(v)
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn attr(_: &Device, _: Option<u64>) -> Option<u64> {
        None
    }

    /// Starts a new high-water mark.
    pub fn reset(device: &Device) {
        let _ = attr(device, Some(0));
    }

    pub fn get(device: &Device) -> Option<u64> {
        attr(device, None)
    }
}
