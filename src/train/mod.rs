//! Training: masked optimisation of a network on a dataset, deterministic and resumable at any
//! iteration, and evaluation.

mod eval;
mod fused;
mod optim;
mod run;
pub mod schedule;
pub mod state;
pub mod stop;
mod threads;

pub use eval::{evaluate, Evaluation, Split};
pub use optim::{masked_update, slots, update, Step, Update};
pub use run::{fresh_state, gradients, train, Job, Progress, TrainError};
pub use state::{DeviceState, State};

use burn::tensor::backend::AutodiffBackend;

use crate::nn::Kernels;

/// A backend lthc trains on: autodiff over an inner backend, both with our kernels, the inner
/// one with our optimizer update.
pub trait TrainBackend: AutodiffBackend<InnerBackend: Kernels + Update> + Kernels {}

impl<B: AutodiffBackend<InnerBackend: Kernels + Update> + Kernels> TrainBackend for B {}
