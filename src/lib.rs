//! lthc: a declarative language and interpreter for lottery-ticket experiments.
//!
//! The pipeline, one module per stage, each depending only on those before it:
//! [`lang`] (source → syntax tree) → [`check`] (names, types, units, shapes → specs) →
//! [`plan`] (specs → a DAG of content-addressed steps). [`diag`] holds the diagnostics every
//! stage reports; [`cli`] is a thin layer over the rest.

pub mod check;
pub mod cli;
pub mod data;
pub mod diag;
pub mod exec;
pub mod lang;
pub mod lottery;
pub mod lsp;
pub mod nn;
pub mod plan;
pub mod report;
pub mod rng;
pub mod stdlib;
pub mod store;
pub mod train;

/// mimalloc keeps freed blocks of every size for reuse. A training step frees and allocates
/// tensors of the same sizes every step; glibc's allocator returns large ones to the kernel and
/// pays page faults and zeroing to get them back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells mimalloc to keep freed memory rather than purge it back to the kernel after a delay
/// (a second, by default): purged activations came back every step through page faults and the
/// kernel's zeroing (6% of a ResNet-20 step; 45K faults in 10 steps, 500 without). The
/// process's memory stays at its peak, which it reaches every step anyway.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: reads and sets a plain integer option. Only while it holds the default: a user's
    // MIMALLOC_PURGE_DELAY wins, and so would a mimalloc whose options were renumbered.
    ONCE.call_once(|| unsafe {
        if mi_option_get(PURGE_DELAY) == DEFAULT_MS {
            mi_option_set(PURGE_DELAY, -1);
        }
    });
}

// mimalloc's `mi_option_purge_delay` (the 16th option of v3's `mi_option_t`) and its default.
const PURGE_DELAY: std::ffi::c_int = 15;
const DEFAULT_MS: std::ffi::c_long = 1000;
extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

#[cfg(test)]
mod tests {
    #[test]
    fn freed_memory_is_kept() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the user's setting wins
        }
        super::keep_freed_memory();
        // SAFETY: reads a plain integer option.
        assert_eq!(unsafe { super::mi_option_get(super::PURGE_DELAY) }, -1);
    }
}
