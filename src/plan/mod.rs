//! The planner: checked experiments → a DAG of content-addressed steps (initialise, train a
//! segment, prune, rewind, evaluate, measure). Identical work gets an identical key and so
//! appears once: the dense run that several experiments and rewind points share is one step,
//! whose checkpoints at every requested rewind point are its outputs.

mod build;
pub mod key;
mod render;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use crate::check::{DatasetSpec, NetSpec, PruneSpec, RecipeSpec, Scope};

pub use build::build;
pub use render::{render_json, render_summary, render_tree, thousands};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Draw initial weights.
    Init,
    /// Train from a starting state to an iteration, under the starting state's mask.
    Train,
    /// Compute the next mask from trained weights (and the previous mask).
    Prune,
    /// Take weights at an iteration of a training run (or an init), apply a mask.
    Rewind,
    /// Test loss and accuracy of a trained state.
    Evaluate,
    /// Stability (L2, angle) or linear interpolation between trained states.
    Measure,
}

impl StepKind {
    pub fn word(self) -> &'static str {
        match self {
            StepKind::Init => "init",
            StepKind::Train => "train",
            StepKind::Prune => "prune",
            StepKind::Rewind => "rewind",
            StepKind::Evaluate => "evaluate",
            StepKind::Measure => "measure",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Hex digest of the step's canonical spec and its inputs' keys.
    pub key: String,
    pub kind: StepKind,
    /// A one-line description for people.
    pub label: String,
    /// The canonical spec the key is computed from.
    pub spec: Json,
    /// Keys of the steps whose outputs this one reads.
    pub inputs: Vec<String>,
    /// Training iterations this step costs (0 for all but `train`).
    pub iterations: u64,
    /// Experiment instances that need this step.
    pub experiments: BTreeSet<String>,
    /// Train steps: iterations whose state is kept (rewind points and the end).
    pub checkpoints: BTreeSet<u64>,
    /// What the executor needs to carry the step out.
    #[serde(skip)]
    pub payload: Payload,
}

/// The typed description of a step, for the executor (the key hashes its canonical JSON).
#[derive(Clone, Debug, Default)]
pub enum Payload {
    #[default]
    None,
    Init {
        network: Arc<NetSpec>,
        recipe: Arc<RecipeSpec>,
        seed: u64,
        reinit: bool,
    },
    Train {
        network: Arc<NetSpec>,
        dataset: Arc<DatasetSpec>,
        recipe: Arc<RecipeSpec>,
        seed: u64,
        copy: u64,
        start: u64,
        end: u64,
    },
    Prune {
        network: Arc<NetSpec>,
        prune: Arc<PruneSpec>,
        level: u32,
    },
    RandomPrune {
        scope: Scope,
        seed: u64,
        /// Layers the pruning never prunes: a global random mask leaves them whole. Any other
        /// layer is in the pool, even one that IMP happened to leave whole.
        exclude: Vec<String>,
    },
    Rewind {
        iteration: u64,
    },
    Evaluate {
        network: Arc<NetSpec>,
        dataset: Arc<DatasetSpec>,
    },
    Measure {
        measure: MeasureKind,
        network: Arc<NetSpec>,
        dataset: Arc<DatasetSpec>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureKind {
    StabilityPruning,
    StabilityDataOrder,
    Interpolation { points: u32, train: bool },
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// What all experiments would train if each (experiment, seed, rewind point) ran alone,
    /// as OpenLTH does: the dense run once per rewind point, nothing shared.
    pub requested_iterations: u64,
    /// What this plan trains: each distinct step once.
    pub planned_iterations: u64,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// In dependency order: every step comes after its inputs.
    pub steps: Vec<Step>,
    pub index: HashMap<String, usize>,
    pub totals: Totals,
    pub experiments: Vec<String>,
    /// One per (experiment, seed, rewind point, level, arm): where its results come from.
    pub records: Vec<Record>,
}

/// A row of results and the steps that produce it (docs/results.md).
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub experiment: String,
    pub network: String,
    pub dataset: String,
    pub parameters: u64,
    pub rewind_iteration: u64,
    /// `dense`, `imp`, `random_reinit`, `random_prune`, `random_prune_global`, `snip`.
    pub arm: String,
    pub seed: u64,
    pub level: u32,
    /// The trained run and its evaluation.
    pub train: String,
    pub evaluate: String,
    pub stability_pruning: Option<String>,
    pub stability_data_order: Option<String>,
    pub interpolation: Option<String>,
}

impl Plan {
    pub fn get(&self, key: &str) -> Option<&Step> {
        self.index.get(key).map(|&i| &self.steps[i])
    }
}
