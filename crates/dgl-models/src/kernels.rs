//! One process-wide switch for the project's own kernels: the CPU convolution and batch norm
//! ([`crate::cpu`]) and, in a `cudnn` build, the cuDNN convolution with cuDNN backward
//! (`crate::cudnn`). Off, the layers run candle's generic ops on every device — for A/B
//! benchmarks (`step-bench --kernels both`) and to rule the kernels out when debugging.
//!
//! The initial state comes from the environment: `DGL_KERNELS=candle` starts with them off (any
//! other value, or none, on), so a binary can be switched without a flag
//! (`DGL_KERNELS=candle dgl train …`); [`set_enabled`] overrides it.

use std::sync::atomic::{AtomicU8, Ordering};

// Links mimalloc, whose option table `keep_freed_memory` sets.
#[cfg(feature = "mimalloc")]
use mimalloc as _;

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

/// Before any other thread exists and before any tensor op: candle's own CPU ops on the calling
/// thread ([`configure_cpu_threads`]) and freed memory kept by the allocator
/// ([`keep_freed_memory`]). For binaries whose global allocator is mimalloc (feature `mimalloc`);
/// the `dgl` and `xtask` binaries call it first in `main`.
#[cfg(feature = "mimalloc")]
pub fn configure_cpu_training() {
    configure_cpu_threads();
    keep_freed_memory();
}

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v2 and v3: option 15) set to -1: freed
/// memory is kept for reuse instead of being returned to the OS after 10 ms. A training step frees
/// and re-allocates the same large activation buffers every step; returned, they come back as fresh
/// pages the kernel must zero (~11 % of a paper-model CPU step in `perf`, docs/performance.md).
/// Peak RSS is unchanged; RSS stays at that peak. Without mimalloc as the global allocator the
/// setting exists but changes nothing.
#[cfg(feature = "mimalloc")]
pub fn keep_freed_memory() {
    extern "C" {
        fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
    }
    const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;
    // SAFETY: a plain setter of the allocator's option table, valid at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
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
