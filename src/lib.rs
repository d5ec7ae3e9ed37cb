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
pub mod nn;
pub mod plan;
pub mod rng;
pub mod stdlib;
pub mod store;
pub mod train;

/// mimalloc keeps freed blocks of every size for reuse. A training step frees and allocates
/// tensors of the same sizes every step; glibc's allocator returns large ones to the kernel and
/// pays page faults and zeroing to get them back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
