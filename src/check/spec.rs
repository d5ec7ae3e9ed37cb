//! What the checker hands on: fully resolved, typed descriptions of datasets, recipes, pruning
//! and experiments (every duration in iterations). Each has a canonical JSON form for cache keys
//! in which values left at their default are omitted, so that adding an option with a default
//! later never changes an existing key.

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use super::netspec::NetSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// MNIST-style IDX files, raw or gzipped.
    Idx,
    /// CIFAR-10 binary batches (`data_batch_1.bin` ... `test_batch.bin`).
    Cifar10Binary,
    /// An ImageNet-style tree: `train/<class>/*.jpeg`, `val/<class>/*.jpeg`.
    ImageFolder,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Augment {
    /// Pad by `padding` on every side, then crop back to the input size at a random place.
    RandomCrop {
        padding: u64,
    },
    HorizontalFlip,
    /// Inception-style crop of a random area share in [min_scale, 1] resized to `size`.
    RandomResizedCrop {
        size: u64,
        min_scale: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetSpec {
    pub name: String,
    pub format: DataFormat,
    /// Directory of the files, relative to the data cache unless absolute.
    pub source: String,
    /// Name of the built-in fetcher (`mnist`, `fashion_mnist`), if lthc can download it.
    pub fetch: Option<String>,
    /// Shape of one example as the network sees it.
    pub shape: Vec<u64>,
    pub classes: u64,
    pub train_size: u64,
    pub test_size: u64,
    /// Training examples held out (the last ones) for validation; not trained on.
    pub holdout: u64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub augment: Vec<Augment>,
    /// Short side to resize to before cropping (image folders).
    pub resize: Option<u64>,
}

impl DatasetSpec {
    pub fn train_examples(&self) -> u64 {
        self.train_size - self.holdout
    }

    /// Everything that changes what a training batch contains.
    pub fn canonical(&self) -> Json {
        let mut m = Map::new();
        m.insert("format".into(), json!(self.format));
        m.insert("source".into(), json!(self.source));
        m.insert("shape".into(), json!(self.shape));
        m.insert("classes".into(), json!(self.classes));
        m.insert("train_size".into(), json!(self.train_size));
        m.insert("test_size".into(), json!(self.test_size));
        if self.holdout != 0 {
            m.insert("holdout".into(), json!(self.holdout));
        }
        if !self.mean.is_empty() {
            m.insert("mean".into(), json!(self.mean));
            m.insert("std".into(), json!(self.std));
        }
        if !self.augment.is_empty() {
            m.insert("augment".into(), json!(self.augment));
        }
        if let Some(r) = self.resize {
            m.insert("resize".into(), json!(r));
        }
        Json::Object(m)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Rmsprop {
        lr: f64,
        alpha: f64,
        momentum: f64,
        eps: f64,
    },
}

impl Optimizer {
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Rmsprop { lr, .. } => *lr,
        }
    }

    fn canonical(&self) -> Json {
        let mut m = Map::new();
        let mut put = |k: &str, v: f64, default: f64| {
            if v != default {
                m.insert(k.into(), json!(v));
            }
        };
        let kind = match self {
            Optimizer::Sgd {
                lr,
                momentum,
                nesterov,
            } => {
                put("lr", *lr, f64::NAN);
                put("momentum", *momentum, 0.0);
                if *nesterov {
                    m.insert("nesterov".into(), json!(true));
                }
                "sgd"
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                put("lr", *lr, f64::NAN);
                put("beta1", *beta1, 0.9);
                put("beta2", *beta2, 0.999);
                put("eps", *eps, 1e-8);
                "adam"
            }
            Optimizer::Rmsprop {
                lr,
                alpha,
                momentum,
                eps,
            } => {
                put("lr", *lr, f64::NAN);
                put("alpha", *alpha, 0.9);
                put("momentum", *momentum, 0.0);
                put("eps", *eps, 1e-8);
                "rmsprop"
            }
        };
        m.insert("kind".into(), json!(kind));
        Json::Object(m)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    Constant,
    /// Multiply the rate by `gamma` at each milestone iteration.
    Step {
        gamma: f64,
        milestones: Vec<u64>,
    },
    /// Linear from the base rate to `to` at the end of training.
    Linear {
        to: f64,
    },
    /// Exponential from the base rate to `to` at the end of training.
    Exponential {
        to: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    KaimingNormal,
    KaimingUniform,
    GlorotNormal,
    GlorotUniform,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipeSpec {
    pub name: String,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Linear warmup from 0 to the base rate over this many iterations.
    pub warmup: u64,
    pub weight_decay: f64,
    pub batch: u64,
    /// T: the length of a full training run, in iterations.
    pub iterations: u64,
    pub iterations_per_epoch: u64,
    pub init: Init,
    pub label_smoothing: f64,
    /// Evaluate the test set every this many iterations (besides the end); None: at the end only.
    pub eval_every: Option<u64>,
}

impl RecipeSpec {
    /// What determines the trajectory of training (not when it is evaluated, not its name).
    pub fn canonical(&self) -> Json {
        let mut m = Map::new();
        m.insert("optimizer".into(), self.optimizer.canonical());
        if self.schedule != Schedule::Constant {
            m.insert("schedule".into(), json!(self.schedule));
        }
        if self.warmup != 0 {
            m.insert("warmup".into(), json!(self.warmup));
        }
        if self.weight_decay != 0.0 {
            m.insert("weight_decay".into(), json!(self.weight_decay));
        }
        if self.label_smoothing != 0.0 {
            m.insert("label_smoothing".into(), json!(self.label_smoothing));
        }
        m.insert("batch".into(), json!(self.batch));
        m.insert("iterations".into(), json!(self.iterations));
        Json::Object(m)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Magnitude,
    Random,
    Snip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    Layerwise,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruneSpec {
    pub strategy: Strategy,
    pub scope: Scope,
    /// Fraction of the surviving weights removed per level.
    pub rate: f64,
    /// Per-layer rates (full layer names), overriding `rate` (layerwise scope).
    pub layer_rates: Vec<(String, f64)>,
    /// Layers never pruned (full layer names).
    pub exclude: Vec<String>,
    pub levels: u32,
    /// Expected density of the prunable weights after each level; `[0]` is 1.0. Removal per
    /// level is ceil(rate x surviving), as in OpenLTH.
    pub densities: Vec<f64>,
}

impl PruneSpec {
    /// Layers this pruning never prunes: excluded, or given a rate of 0.
    pub fn never_pruned(&self) -> Vec<String> {
        let mut out = self.exclude.clone();
        for (layer, rate) in &self.layer_rates {
            if *rate == 0.0 && !out.contains(layer) {
                out.push(layer.clone());
            }
        }
        out
    }

    /// What determines one level's mask from the previous one.
    pub fn canonical(&self) -> Json {
        let mut m = Map::new();
        m.insert("strategy".into(), json!(self.strategy));
        m.insert("scope".into(), json!(self.scope));
        m.insert("rate".into(), json!(self.rate));
        if !self.layer_rates.is_empty() {
            m.insert("layer_rates".into(), json!(self.layer_rates));
        }
        if !self.exclude.is_empty() {
            m.insert("exclude".into(), json!(self.exclude));
        }
        Json::Object(m)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// The IMP mask with a fresh random initialisation, trained from iteration 0.
    RandomReinit,
    /// A random mask with the IMP mask's per-layer proportions, trained from the rewind point.
    RandomPrune,
    /// A random mask with the IMP mask's overall density, trained from the rewind point.
    RandomPruneGlobal,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Measures {
    pub stability_pruning: bool,
    pub stability_data_order: bool,
    /// Points on the line between two data-order copies; None: not measured.
    pub interpolation_points: Option<u32>,
    /// Also evaluate the interpolation on training data.
    pub interpolation_on_train: bool,
}

impl Measures {
    /// Whether a second copy with another data order must be trained.
    pub fn needs_second_copy(&self) -> bool {
        self.stability_data_order || self.interpolation_points.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentSpec {
    /// The experiment's name as defined.
    pub name: String,
    /// `name` plus the sweep values of this instance: `fig1[train.optimizer.lr=0.01]`.
    pub instance: String,
    pub sweep: Vec<(String, String)>,
    /// The file that defines it.
    pub file: String,
    pub network: NetSpec,
    pub dataset: DatasetSpec,
    pub recipe: RecipeSpec,
    pub prune: Option<PruneSpec>,
    /// Rewind points k, in iterations, ascending.
    pub rewind: Vec<u64>,
    pub seeds: Vec<u64>,
    pub controls: Vec<Control>,
    pub measures: Measures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlotSpec {
    pub x: String,
    pub y: String,
    pub by: Vec<String>,
    pub log_x: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportSpec {
    pub name: String,
    pub title: String,
    pub experiments: Vec<String>,
    /// Result fields that group rows.
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub plots: Vec<PlotSpec>,
    /// How far (in accuracy, a fraction) below the dense network a subnetwork may be and still
    /// count as a winning ticket.
    pub tolerance: f64,
}

/// Result fields a report may name (docs/results.md describes each).
pub const RESULT_FIELDS: &[&str] = &[
    "experiment",
    "network",
    "dataset",
    "parameters",
    "rewind_iteration",
    "arm",
    "seed",
    "level",
    "density",
    "test_accuracy",
    "test_loss",
    "test_top5",
    "best_iteration",
    "best_accuracy",
    "stability_pruning_l2",
    "stability_pruning_angle",
    "stability_data_order_l2",
    "stability_data_order_angle",
    "interpolation_barrier",
    "interpolation_barrier_train",
];

/// An `executor` definition: a Slurm cluster's settings for every job of a run
/// (`lthc run --executor NAME`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorSpec {
    pub name: String,
    pub resources: crate::exec::slurm::Resources,
    /// `--device` for the jobs (`cuda` when GPUs are asked for, unless given).
    pub device: Option<String>,
}
