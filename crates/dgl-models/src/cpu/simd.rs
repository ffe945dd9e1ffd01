//! Run-time dispatch of the kernels' element-wise loops to an AVX2 + FMA (x86-64-v3) build of
//! the same code.
//!
//! The workspace compiles for baseline x86-64 (SSE2), so that its binaries run on any x86-64 CPU;
//! only `gemm` picked wider instructions at run time. [`simd_fn!`] compiles a loop twice, once
//! as is and once with `#[target_feature(enable = "avx2,fma")]`, and calls the second where the
//! CPU has both ([`crate::kernels::simd_enabled`]). The two builds compute bit-identical results:
//! the source is the same, Rust never contracts `a * b + c` into a fused multiply-add, and LLVM
//! does not reorder floating-point additions, so wider vectors only change how many lanes run at
//! once (`simd_paths_are_bit_identical` in `tests/cpu_kernels.rs`).

/// `simd_fn! { fn name[T: Elem](args) -> R { body } }` defines `fn name<T: Elem>(args) -> R`
/// that runs `body` compiled for AVX2 + FMA when [`crate::kernels::simd_enabled`], as is
/// otherwise (see the module doc). The generics go in brackets; the body is inlined into both.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident [$($gen:tt)*] ($($a:ident: $ty:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$($gen)*>($($a: $ty),*) $(-> $r)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn portable<$($gen)*>($($a: $ty),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v3<$($gen)*>($($a: $ty),*) $(-> $r)? {
                    portable($($a),*)
                }
                if $crate::kernels::simd_enabled() {
                    // SAFETY: simd_enabled() is true only where the CPU has AVX2 and FMA.
                    return unsafe { v3($($a),*) };
                }
            }
            portable($($a),*)
        }
    };
}
pub(crate) use simd_fn;
