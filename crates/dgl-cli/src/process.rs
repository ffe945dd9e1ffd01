//! Process-wide set-up for CPU training, shared by the `dgl` and `xtask` binaries: call
//! [`configure_cpu_training`] first in `main`, then run the work through
//! [`dgl_models::kernels::on_cpu_pool`].

/// Before any other thread exists and before any tensor op: candle's own CPU ops on the calling
/// thread ([`dgl_models::kernels::configure_cpu_threads`]) and freed memory kept by the allocator
/// ([`keep_freed_memory`]). Binaries that use mimalloc as their global allocator only.
pub fn configure_cpu_training() {
    dgl_models::kernels::configure_cpu_threads();
    keep_freed_memory();
}

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, v2 and v3: option 15) set to -1: freed
/// memory is kept for reuse instead of being returned to the OS after 10 ms. A training step frees
/// and re-allocates the same large activation buffers every step; returned, they come back as fresh
/// pages the kernel must zero (~11 % of a paper-model CPU step in `perf`, docs/performance.md).
/// Peak RSS is unchanged; RSS stays at that peak. Without mimalloc as the global allocator the
/// setting exists but changes nothing.
pub fn keep_freed_memory() {
    extern "C" {
        fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
    }
    const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;
    // SAFETY: a plain setter of the allocator's option table, valid at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
