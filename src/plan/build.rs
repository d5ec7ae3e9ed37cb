//! Building the step DAG from experiment specs.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use super::key::step_key;
use super::{Plan, Step, StepKind};
use crate::check::{Control, ExperimentSpec, PruneSpec, Scope, Strategy};

struct Builder {
    plan: Plan,
    /// Steps needed by the (experiment, seed, rewind point) being built, for the totals.
    pipeline: BTreeSet<String>,
    experiment: String,
}

impl Builder {
    fn add(
        &mut self,
        kind: StepKind,
        spec: Json,
        inputs: Vec<String>,
        iterations: u64,
        label: String,
    ) -> String {
        let key = step_key(kind.word(), &spec, &inputs);
        let i = match self.plan.index.get(&key) {
            Some(&i) => i,
            None => {
                self.plan.steps.push(Step {
                    key: key.clone(),
                    kind,
                    label,
                    spec,
                    inputs,
                    iterations,
                    experiments: BTreeSet::new(),
                    checkpoints: BTreeSet::new(),
                });
                self.plan
                    .index
                    .insert(key.clone(), self.plan.steps.len() - 1);
                self.plan.steps.len() - 1
            }
        };
        self.plan.steps[i]
            .experiments
            .insert(self.experiment.clone());
        self.pipeline.insert(key.clone());
        key
    }

    fn checkpoint(&mut self, train: &str, iteration: u64) {
        if let Some(&i) = self.plan.index.get(train) {
            self.plan.steps[i].checkpoints.insert(iteration);
        }
    }

    fn finish_pipeline(&mut self) {
        let cost: u64 = self
            .pipeline
            .iter()
            .filter_map(|k| self.plan.get(k))
            .map(|s| s.iterations)
            .sum();
        self.plan.totals.requested_iterations += cost;
        self.pipeline.clear();
    }
}

/// What a training segment needs to know besides where it starts.
struct Segment<'a> {
    e: &'a ExperimentSpec,
    seed: u64,
}

impl Segment<'_> {
    /// A train step's spec: data, recipe, data order, and the iterations it covers.
    fn spec(&self, copy: u32, start: u64) -> Json {
        let mut order = json!({ "seed": self.seed });
        if copy != 0 {
            order["copy"] = json!(copy);
        }
        json!({
            "data": self.e.dataset.canonical(),
            "recipe": self.e.recipe.canonical(),
            "data_order": order,
            "start": start,
            "end": self.e.recipe.iterations,
        })
    }
}

/// The arms of one pruning level that are trained from a mask.
struct Arm {
    name: &'static str,
    mask: String,
    /// Where training starts: the rewind point, or 0 for reinitialisation.
    start: u64,
    /// The state whose weights are taken at `start`.
    source: String,
    compare_with_dense: bool,
}

pub fn build(experiments: &[ExperimentSpec]) -> Plan {
    let mut b = Builder {
        plan: Plan::default(),
        pipeline: BTreeSet::new(),
        experiment: String::new(),
    };
    for e in experiments {
        b.experiment = e.instance.clone();
        b.plan.experiments.push(e.instance.clone());
        for &seed in &e.seeds {
            for &k in &e.rewind {
                experiment_pipeline(&mut b, e, seed, k);
                b.finish_pipeline();
            }
        }
    }
    b.plan.totals.planned_iterations = b.plan.steps.iter().map(|s| s.iterations).sum();
    b.plan
}

fn experiment_pipeline(b: &mut Builder, e: &ExperimentSpec, seed: u64, k: u64) {
    let t = e.recipe.iterations;
    let net = &e.network.display;
    let seg = Segment { e, seed };
    let init = b.add(
        StepKind::Init,
        json!({ "network": e.network.canonical(), "init": e.recipe.init, "seed": seed }),
        vec![],
        0,
        format!("init {net}, seed {seed}"),
    );
    // The dense run: its key has no rewind point in it; rewind points are its checkpoints.
    let dense = b.add(
        StepKind::Train,
        seg.spec(0, 0),
        vec![init.clone()],
        t,
        format!(
            "train dense {net} on {} 0 → {t} it, data order {seed}",
            e.dataset.name
        ),
    );
    b.checkpoint(&dense, k);
    b.checkpoint(&dense, t);
    b.add(
        StepKind::Evaluate,
        json!({}),
        vec![dense.clone()],
        0,
        "evaluate dense".into(),
    );

    if e.measures.needs_second_copy() {
        let rewound = b.add(
            StepKind::Rewind,
            json!({ "iteration": k }),
            vec![dense.clone()],
            0,
            format!("take dense weights at {k} it"),
        );
        let copy = train_from(b, &seg, &rewound, k, 1, "dense, second data order");
        measures(b, e, &dense, &copy, None, None);
    }

    let Some(p) = &e.prune else { return };
    let mut trained = dense.clone();
    let mut prev_mask: Option<String> = None;
    for level in 1..=p.levels {
        let mut inputs = vec![trained.clone()];
        inputs.extend(prev_mask.clone());
        let density = p.densities.get(level as usize).copied().unwrap_or(0.0);
        let mask = b.add(
            StepKind::Prune,
            json!({ "prune": p.canonical(), "level": level }),
            inputs,
            0,
            format!(
                "prune level {level}: {} → density {:.1}%",
                describe(p),
                density * 100.0
            ),
        );
        let mut arms = vec![Arm {
            name: "imp",
            mask: mask.clone(),
            start: k,
            source: dense.clone(),
            compare_with_dense: true,
        }];
        for c in &e.controls {
            match c {
                Control::RandomReinit => {
                    let reinit = b.add(
                        StepKind::Init,
                        json!({ "network": e.network.canonical(), "init": e.recipe.init, "seed": seed, "reinit": true }),
                        vec![],
                        0,
                        format!("init {net}, seed {seed}, fresh weights for random reinitialisation"),
                    );
                    arms.push(Arm {
                        name: "random_reinit",
                        mask: mask.clone(),
                        start: 0,
                        source: reinit,
                        compare_with_dense: false,
                    });
                }
                Control::RandomPrune | Control::RandomPruneGlobal => {
                    let scope = if *c == Control::RandomPrune {
                        Scope::Layerwise
                    } else {
                        Scope::Global
                    };
                    let random = b.add(
                        StepKind::Prune,
                        json!({ "prune": { "strategy": Strategy::Random, "scope": scope, "like": "input" }, "seed": seed }),
                        vec![mask.clone()],
                        0,
                        format!("random mask with the level-{level} mask's {} density", if scope == Scope::Layerwise { "per-layer" } else { "overall" }),
                    );
                    arms.push(Arm {
                        name: if scope == Scope::Layerwise {
                            "random_prune"
                        } else {
                            "random_prune_global"
                        },
                        mask: random,
                        start: k,
                        source: dense.clone(),
                        compare_with_dense: true,
                    });
                }
            }
        }
        let mut imp_trained = None;
        for arm in arms {
            let rewound = b.add(
                StepKind::Rewind,
                json!({ "iteration": arm.start }),
                // The mask first: the tree view hangs each step under its first input.
                vec![arm.mask.clone(), arm.source.clone()],
                0,
                format!(
                    "{}: weights at {} it under the level-{level} mask",
                    arm.name, arm.start
                ),
            );
            if arm.source == dense {
                b.checkpoint(&dense, arm.start);
            }
            let run = train_from(
                b,
                &seg,
                &rewound,
                arm.start,
                0,
                &format!("{} level {level}", arm.name),
            );
            if arm.name == "imp" || arm.compare_with_dense {
                let copy = e.measures.needs_second_copy().then(|| {
                    train_from(
                        b,
                        &seg,
                        &rewound,
                        arm.start,
                        1,
                        &format!("{} level {level}, second data order", arm.name),
                    )
                });
                let dense_ref = (arm.compare_with_dense && e.measures.stability_pruning)
                    .then_some(dense.as_str());
                if let Some(copy) = &copy {
                    measures(b, e, &run, copy, Some(&arm.mask), dense_ref);
                } else if let Some(d) = dense_ref {
                    stability_pruning(b, &run, d, &arm.mask);
                }
            }
            if arm.name == "imp" {
                imp_trained = Some(run);
            }
        }
        trained = imp_trained.unwrap_or(trained);
        prev_mask = Some(mask);
    }
}

fn train_from(
    b: &mut Builder,
    seg: &Segment,
    start_state: &str,
    start: u64,
    copy: u32,
    what: &str,
) -> String {
    let t = seg.e.recipe.iterations;
    let order = if copy == 0 {
        format!("{}", seg.seed)
    } else {
        format!("{} (copy {copy})", seg.seed)
    };
    let run = b.add(
        StepKind::Train,
        seg.spec(copy, start),
        vec![start_state.to_string()],
        t - start,
        format!("train {what} {start} → {t} it, data order {order}"),
    );
    b.checkpoint(&run, t);
    b.add(
        StepKind::Evaluate,
        json!({}),
        vec![run.clone()],
        0,
        format!("evaluate {what}"),
    );
    run
}

fn stability_pruning(b: &mut Builder, run: &str, dense: &str, mask: &str) {
    b.add(
        StepKind::Measure,
        json!({ "measure": "stability_pruning" }),
        vec![run.to_string(), dense.to_string(), mask.to_string()],
        0,
        "measure stability to pruning (L2, angle) against the dense run".into(),
    );
}

/// Stability and interpolation between a run and its second-data-order copy.
fn measures(
    b: &mut Builder,
    e: &ExperimentSpec,
    run: &str,
    copy: &str,
    mask: Option<&String>,
    dense: Option<&str>,
) {
    let mut inputs = vec![run.to_string(), copy.to_string()];
    inputs.extend(mask.cloned());
    if e.measures.stability_data_order {
        b.add(
            StepKind::Measure,
            json!({ "measure": "stability_data_order" }),
            inputs.clone(),
            0,
            "measure stability to data order (L2, angle)".into(),
        );
    }
    if let Some(points) = e.measures.interpolation_points {
        let mut spec = json!({ "measure": "interpolation", "points": points });
        if e.measures.interpolation_on_train {
            spec["train"] = json!(true);
        }
        b.add(
            StepKind::Measure,
            spec,
            inputs,
            0,
            format!("measure the error barrier on the line between the copies ({points} points)"),
        );
    }
    if let (Some(d), Some(m)) = (dense, mask) {
        stability_pruning(b, run, d, m);
    }
}

fn describe(p: &PruneSpec) -> String {
    let strategy = match p.strategy {
        Strategy::Magnitude => "magnitude",
        Strategy::Random => "random",
        Strategy::Snip => "snip",
    };
    let scope = match p.scope {
        Scope::Global => "global",
        Scope::Layerwise => "layerwise",
    };
    format!("{strategy} {scope} {}%", trim(p.rate * 100.0))
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
