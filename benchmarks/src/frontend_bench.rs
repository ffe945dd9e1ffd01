//! Audio front-end throughput: decode → resample → tile/crop/clip → STFT → log, per clip, with the
//! `librosa-cremad` recipe (22050 Hz, 3 s, n_fft 512, hop 353, `log(|S| + 1e-7)`).
//!
//! `cargo run --release -p dgl-benchmarks --bin frontend-bench -- [--dir DIR] [--clips N] [--reps R]`
//!
//! Takes the first N files (sorted by name) of DIR, runs the pipeline once untimed (warm the page
//! cache), prints the per-stage time per clip (best of R passes per stage), then runs R timed passes
//! single-threaded and R with all rayon threads (the real loader parallelises across clips with
//! rayon), and prints clips/s (best pass) and total seconds. `--only STAGE` (decode, resample, fit,
//! stft) times one stage alone, for profiling.
//! Compare with `benchmarks/frontend_librosa.py`; `benchmarks/frontend.sh` runs both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dgl_data::{audio, SpectrogramRecipe};
use rayon::prelude::*;

/// mimalloc instead of glibc malloc: the per-item buffers (spectrograms, activations) are large
/// enough that glibc returns them to the OS after every item and page-faults them back in.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn one(path: &Path, recipe: &SpectrogramRecipe) -> f64 {
    let (x, _) = audio::load(path, Some(recipe.sample_rate)).expect("decode");
    let clip = audio::fit_clip(&x, recipe.n_samples, 0, None).expect("fit");
    let s = recipe.compute(&clip).expect("stft");
    s[0] as f64 // keep the result alive
}

/// `--only STAGE`: runs one stage over all clips `reps` times (inputs prepared beforehand) and prints
/// the best pass per clip; for profiling (`perf stat`) one stage at a time.
fn only(
    stage: &str,
    files: &[PathBuf],
    recipe: &SpectrogramRecipe,
    reps: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let decoded: Vec<_> = files.iter().map(|p| audio::decode_file(p).expect("decode")).collect();
    let resampled: Vec<Vec<f32>> =
        decoded.iter().map(|d| audio::resample(&d.samples, d.sample_rate, recipe.sample_rate).expect("rs")).collect();
    let clips: Vec<Vec<f32>> =
        resampled.iter().map(|x| audio::fit_clip(x, recipe.n_samples, 0, None).expect("fit")).collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        for i in 0..files.len() {
            match stage {
                "decode" => drop(std::hint::black_box(audio::decode_file(&files[i]).expect("decode"))),
                "resample" => drop(std::hint::black_box(
                    audio::resample(&decoded[i].samples, decoded[i].sample_rate, recipe.sample_rate).expect("rs"),
                )),
                "fit" => drop(std::hint::black_box(audio::fit_clip(&resampled[i], recipe.n_samples, 0, None))),
                "stft" => drop(std::hint::black_box(recipe.compute(&clips[i]).expect("stft"))),
                other => return Err(format!("unknown stage {other} (decode, resample, fit, stft)").into()),
            }
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!("{stage}: {:.4} ms per clip (best of {reps} passes)", 1e3 * best / files.len() as f64);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = arg(&args, "--dir").unwrap_or_else(|| "/work/shared/data/fsdd/recordings".into());
    let n: usize = arg(&args, "--clips").map(|s| s.parse()).transpose()?.unwrap_or(200);
    let reps: usize = arg(&args, "--reps").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    files.truncate(n);
    let recipe = SpectrogramRecipe::librosa_cremad();
    let (f, t) = recipe.shape();
    println!("frontend-bench: {} clips from {dir}, recipe {} ({f}x{t})", files.len(), recipe.name);
    if let Some(stage) = arg(&args, "--only") {
        return only(&stage, &files, &recipe, reps);
    }

    // Untimed warm-up pass (page cache, allocator).
    let _: f64 = files.iter().map(|p| one(p, &recipe)).sum();

    // Per-stage breakdown (single-threaded; best of `reps` passes per stage).
    let mut best_stage = [f64::INFINITY; 4];
    for _ in 0..reps.max(1) {
        let mut t_stage = [0.0f64; 4];
        for p in &files {
            let t0 = Instant::now();
            let d = audio::decode_file(p).expect("decode");
            let t1 = Instant::now();
            let x = if d.sample_rate != recipe.sample_rate {
                audio::resample(&d.samples, d.sample_rate, recipe.sample_rate).expect("resample")
            } else {
                d.samples
            };
            let t2 = Instant::now();
            let clip = audio::fit_clip(&x, recipe.n_samples, 0, None).expect("fit");
            let t3 = Instant::now();
            let s = recipe.compute(&clip).expect("stft");
            let t4 = Instant::now();
            std::hint::black_box(s);
            for (acc, (a, b)) in t_stage.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)]) {
                *acc += (b - a).as_secs_f64();
            }
        }
        for (best, t) in best_stage.iter_mut().zip(t_stage) {
            *best = best.min(t);
        }
    }
    let ms = |t: f64| 1e3 * t / files.len() as f64;
    let [t_dec, t_res, t_fit, t_spec] = best_stage;
    println!(
        "per clip (1 thread, best of {reps} passes per stage): decode {:.3} ms, resample {:.3} ms, \
         tile/crop/clip {:.3} ms, STFT+log {:.3} ms",
        ms(t_dec),
        ms(t_res),
        ms(t_fit),
        ms(t_spec)
    );

    // Building the filter table (done once per rate pair and process by `audio::resample`).
    let d0 = audio::decode_file(&files[0]).expect("decode");
    let t0 = Instant::now();
    let rs = audio::Resampler::new(d0.sample_rate, recipe.sample_rate).expect("resampler");
    let t_new = t0.elapsed().as_secs_f64();
    std::hint::black_box(rs.process(&d0.samples));
    println!(
        "Resampler::new ({} -> {} Hz): {:.3} ms, once per process (cached per rate pair)",
        d0.sample_rate,
        recipe.sample_rate,
        1e3 * t_new
    );

    let threads = rayon::current_num_threads();
    let mut best_1 = f64::INFINITY;
    let mut best_n = f64::INFINITY;
    let (mut total_1, mut total_n) = (0.0, 0.0);
    for _ in 0..reps {
        let t0 = Instant::now();
        let a: f64 = files.iter().map(|p| one(p, &recipe)).sum();
        let s1 = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let b: f64 = files.par_iter().map(|p| one(p, &recipe)).sum();
        let sn = t0.elapsed().as_secs_f64();
        assert!((a - b).abs() < 1e-3 * a.abs().max(1.0), "single/multi results differ");
        best_1 = best_1.min(s1);
        best_n = best_n.min(sn);
        total_1 += s1;
        total_n += sn;
    }
    let c = files.len() as f64;
    println!("single-thread: {:.1} clips/s (best of {reps}: {:.3} s; total {:.3} s)", c / best_1, best_1, total_1);
    println!(
        "all threads ({threads}): {:.1} clips/s (best of {reps}: {:.3} s; total {:.3} s)",
        c / best_n,
        best_n,
        total_n
    );
    println!("RESULT ours_single={:.3} ours_multi={:.3} threads={threads}", c / best_1, c / best_n);
    Ok(())
}
