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
