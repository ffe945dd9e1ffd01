//! One process-wide switch for the project's own kernels: the CPU convolution and batch norm
//! ([`crate::cpu`]) and, in a `cudnn` build, the cuDNN convolution with cuDNN backward
//! (`crate::cudnn`). Off, the layers run candle's generic ops on every device — for A/B
//! benchmarks (`step-bench --kernels both`) and to rule the kernels out when debugging.

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the project's kernels on (the default) or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the project's kernels are on ([`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
