//! Code compiled for AVX-512 or AVX2 where the CPU has it, chosen at run time: the release
//! build targets the x86-64 baseline (SSE2, 4 lanes), and loops over `f32` written to
//! vectorize get 16 or 8 lanes this way.

use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets [`vectorized`] chooses from, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lanes {
    /// As compiled: SSE2 on x86-64.
    Baseline,
    Avx2,
    /// x86-64-v4's AVX-512 extensions (F, VL, BW, DQ).
    Avx512,
}

/// The widest lanes [`vectorized`] may use; tests lower it to compare every width's bits.
static WIDEST: AtomicU8 = AtomicU8::new(Lanes::Avx512 as u8);

/// Lets [`vectorized`] use at most `lanes` from now on, in every thread (a test's switch:
/// every width gives the same bits, only the speed differs).
pub fn set_widest(lanes: Lanes) {
    WIDEST.store(lanes as u8, Ordering::Relaxed);
}

/// `f()`, run inside a function compiled with AVX-512 or AVX2 when the CPU supports it,
/// otherwise as compiled for the baseline. Give `f` as an `#[inline(always)]` closure that
/// calls `#[inline(always)]` functions: only code inlined into that function is compiled for
/// the wider lanes (a plain closure stays a call, compiled for the baseline). Callers keep to
/// operations whose results do not depend on the instruction set (Rust never contracts a
/// multiply and an add into an FMA, and never reorders a sum; an explicit `mul_add` rounds once
/// at every width: an FMA instruction with AVX2 or AVX-512, libm's `fmaf` on the baseline), so
/// the bits are the same at every width.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        let widest = WIDEST.load(Ordering::Relaxed);
        if widest >= Lanes::Avx512 as u8 && has_avx512() {
            // SAFETY: the CPU supports these AVX-512 extensions, checked just above.
            return unsafe { with_avx512(f) };
        }
        if widest >= Lanes::Avx2 as u8 && has_avx2() {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

/// Whether the CPU has AVX2 (and FMA, as every AVX2 CPU does) and [`set_widest`] allows it:
/// the kernels written with AVX2 intrinsics ask this before they run (their portable versions
/// otherwise).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn avx2() -> bool {
    WIDEST.load(Ordering::Relaxed) >= Lanes::Avx2 as u8 && has_avx2()
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether the CPU has the AVX-512 extensions [`with_avx512`] is compiled for.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
