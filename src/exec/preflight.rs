//! Before anything trains: load every dataset the plan still needs, once, and say up front
//! which experiments cannot run and why. The rest of the plan runs; the steps that need a
//! missing dataset fail at once (recorded like any failure) without trying to load it again.

use std::collections::{BTreeSet, HashSet};

use super::{dataset_id, Executor};
use crate::check::DatasetSpec;
use crate::data::DataError;
use crate::diag::Diag;
use crate::plan::{Payload, Plan, Step};
use crate::train::TrainBackend;

/// A dataset that cannot be loaded, and what needs it.
pub struct Unavailable {
    pub dataset: String,
    pub error: DataError,
    /// Experiments with a pending step that needs it (directly or through its inputs).
    pub experiments: BTreeSet<String>,
    /// Pending steps that need it.
    pub steps: usize,
}

impl Unavailable {
    pub fn to_diag(&self) -> Diag {
        let d = self.error.to_diag();
        let names: Vec<&str> = self.experiments.iter().map(String::as_str).collect();
        let message = format!(
            "{} (dataset `{}`; {} steps of {} cannot run)",
            d.message,
            self.dataset,
            self.steps,
            names.join(", ")
        );
        let help = d.help.clone().unwrap_or_default();
        Diag { message, ..d }.help(format!("{help}; every other step still runs"))
    }
}

/// The dataset a step reads, if any.
pub fn dataset_of(step: &Step) -> Option<&DatasetSpec> {
    match &step.payload {
        Payload::Train { dataset, .. }
        | Payload::Evaluate { dataset, .. }
        | Payload::Measure { dataset, .. } => Some(dataset),
        _ => None,
    }
}

impl<B: TrainBackend> Executor<B> {
    /// Loads each dataset that a step not yet done needs; returns those that cannot be loaded.
    /// Later steps that ask for one of them fail without loading it again.
    pub fn preflight(&mut self, plan: &Plan) -> Vec<Unavailable> {
        let pending: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| !self.is_done(&s.key))
            .collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for spec in pending.iter().filter_map(|s| dataset_of(s)) {
            let id = dataset_id(spec);
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Err(super::ExecError::Data(error)) = self.dataset(spec) {
                self.unavailable.insert(id.clone(), error.clone());
                // Steps in plan order: inputs come before the steps that read them.
                let mut affected: HashSet<&str> = HashSet::new();
                for s in &pending {
                    let direct = dataset_of(s).is_some_and(|d| dataset_id(d) == id);
                    if direct || s.inputs.iter().any(|i| affected.contains(i.as_str())) {
                        affected.insert(&s.key);
                    }
                }
                let experiments = pending
                    .iter()
                    .filter(|s| affected.contains(s.key.as_str()))
                    .flat_map(|s| s.experiments.iter().cloned())
                    .collect();
                out.push(Unavailable {
                    dataset: spec.name.clone(),
                    error,
                    experiments,
                    steps: affected.len(),
                });
            }
        }
        out
    }
}

impl<B: TrainBackend> Executor<B> {
    /// Why `step` cannot run here, if it reads a dataset the preflight could not load.
    pub fn unavailable_for(&self, step: &Step) -> Option<&DataError> {
        self.unavailable.get(&dataset_id(dataset_of(step)?))
    }
}
