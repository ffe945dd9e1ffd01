//! One process-wide switch for the project's own kernels: the CPU convolution and batch norm
//! ([`crate::cpu`]) and, in a `cudnn` build, the cuDNN convolution with cuDNN backward
//! (`crate::cudnn`). Off, the layers run candle's generic ops on every device — for A/B
//! benchmarks (`step-bench --kernels both`) and to rule the kernels out when debugging.
//!
//! The initial state comes from the environment: `DGL_KERNELS=candle` starts with them off (any
//! other value, or none, on), so a binary can be switched without a flag
//! (`DGL_KERNELS=candle dgl train …`); [`set_enabled`] overrides it.

use std::sync::atomic::{AtomicU8, Ordering};

const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNSET);

/// Turns the project's kernels on (the default) or off for the whole process.
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether the project's kernels are on ([`set_enabled`], else `DGL_KERNELS`).
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = std::env::var("DGL_KERNELS").map_or(true, |v| v.trim() != "candle");
            // A concurrent set_enabled wins over the environment.
            let _ = STATE.compare_exchange(UNSET, if on { ON } else { OFF }, Ordering::Relaxed, Ordering::Relaxed);
            STATE.load(Ordering::Relaxed) == ON
        }
    }
}

/// Thread set-up for CPU training, to call at the start of `main` (before any tensor op): unless
/// `CANDLE_NUM_THREADS` is set, sets it to 1, so candle's own CPU ops (element-wise arithmetic, the
/// optimizer, gradient accumulation) run on the calling thread, while the project's kernels
/// ([`crate::cpu`]) run on rayon's pool (`RAYON_NUM_THREADS`). Otherwise candle keeps a second pool
/// of spinning workers beside rayon's: on a 2-core machine the two pools' threads compete for the
/// cores and candle's waits at its barriers spin (about 10 % of a paper-model step in `perf`;
/// docs/performance.md). Returns whether it changed the setting.
pub fn configure_cpu_threads() -> bool {
    if std::env::var_os("CANDLE_NUM_THREADS").is_some() {
        return false;
    }
    // Called before any other thread exists (the start of `main`), so no concurrent reader.
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    true
}

/// Runs `f` on a worker thread of rayon's global pool (the calling thread waits) and returns its
/// result. A training step calls the CPU kernels ([`crate::cpu`]) hundreds of times; each one
/// splits its work over rayon's pool. Called from a thread outside the pool (a binary's `main`),
/// every split is injected into the pool and the caller sleeps on a lock until a worker has done it
/// (a futex wake and a sleep per kernel call); called from a worker, the split is a fork-join
/// inside the pool and the caller does its own half. Results are the same either way (the splits
/// depend on the shapes only).
pub fn on_cpu_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
