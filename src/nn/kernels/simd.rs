//! Code compiled for AVX2 where the CPU has it, chosen at run time: the release build targets
//! the x86-64 baseline (SSE2, 4 lanes), and loops over `f32` written to vectorize get 8 lanes
//! this way.

/// `f()`, run inside a function compiled with AVX2 when the CPU supports it, otherwise as
/// compiled for the baseline. Give `f` as an `#[inline(always)]` closure that calls
/// `#[inline(always)]` functions: only code inlined into that function is compiled for AVX2
/// (a plain closure stays a call, compiled for the baseline). Callers keep to operations whose results
/// do not depend on the instruction set (no FMA contraction happens in Rust), so the bits are
/// the same either way.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { with_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
