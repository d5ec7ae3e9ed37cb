//! Training: masked optimisation of a network on a dataset, deterministic and resumable at any
//! iteration, and evaluation.

mod eval;
mod optim;
mod run;
pub mod schedule;
pub mod state;

pub use eval::{evaluate, Evaluation, Split};
pub use optim::{slots, update};
pub use run::{fresh_state, gradients, train, Job, Progress, TrainError};
pub use state::{DeviceState, State};
