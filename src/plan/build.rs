//! Building the step DAG from experiment specs.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::key::step_key;
use super::{MeasureKind, Payload, Plan, Record, Step, StepKind};
use crate::check::{
    Control, DatasetSpec, ExperimentSpec, NetSpec, PruneSpec, RecipeSpec, Scope, Strategy,
};

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
        payload: Payload,
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
                    payload,
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
    net: Arc<NetSpec>,
    data: Arc<DatasetSpec>,
    recipe: Arc<RecipeSpec>,
}

impl Segment<'_> {
    fn payload(&self, copy: u32, start: u64) -> Payload {
        Payload::Train {
            network: self.net.clone(),
            dataset: self.data.clone(),
            recipe: self.recipe.clone(),
            seed: self.seed,
            copy: u64::from(copy),
            start,
            end: self.e.recipe.iterations,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        b: &mut Builder,
        k: u64,
        arm: &str,
        level: u32,
        train: &str,
        eval: &str,
        keys: MeasureKeys,
    ) {
        b.plan.records.push(Record {
            experiment: self.e.instance.clone(),
            network: self.e.network.display.clone(),
            dataset: self.e.dataset.name.clone(),
            parameters: self.e.network.stats().parameters,
            rewind_iteration: k,
            arm: arm.to_string(),
            seed: self.seed,
            level,
            train: train.to_string(),
            evaluate: eval.to_string(),
            stability_pruning: keys.pruning,
            stability_data_order: keys.data_order,
            interpolation: keys.interpolation,
        });
    }

    fn evaluate(&self) -> Payload {
        Payload::Evaluate {
            network: self.net.clone(),
            dataset: self.data.clone(),
        }
    }

    /// A train step's spec: data, recipe, data order, and the iterations it covers.
    fn spec(&self, copy: u32, start: u64) -> Json {
        let mut order = json!({ "seed": self.seed });
        if copy != 0 {
            order["copy"] = json!(copy);
        }
        let mut recipe = self.e.recipe.canonical();
        // Evaluations during training are written by the train step (its history): asking for
        // them is a change of the run, not something a cached run could silently lack.
        if let Some(every) = self.e.recipe.eval_every {
            recipe["eval_every"] = json!(every);
        }
        json!({
            "data": self.e.dataset.canonical(),
            "recipe": recipe,
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

/// One experiment instance for one seed and rewind point k: the dense run, then per level the
/// mask, the IMP arm and the controls, each trained (and measured) from its starting state.
fn experiment_pipeline(b: &mut Builder, e: &ExperimentSpec, seed: u64, k: u64) {
    let seg = Segment {
        e,
        seed,
        net: Arc::new(e.network.clone()),
        data: Arc::new(e.dataset.clone()),
        recipe: Arc::new(e.recipe.clone()),
    };
    let (init, dense) = dense_run(b, &seg, k);
    let Some(p) = &e.prune else { return };
    let mut trained = dense.clone();
    let mut prev_mask: Option<String> = None;
    for level in 1..=p.levels {
        let mask = level_mask(b, &seg, p, level, &init, &trained, prev_mask.as_deref());
        let mut arms = vec![Arm {
            name: if p.strategy == Strategy::Snip {
                "snip"
            } else {
                "imp"
            },
            mask: mask.clone(),
            start: k,
            source: dense.clone(),
            compare_with_dense: true,
        }];
        arms.extend(control_arms(b, &seg, p, level, k, &mask, &dense));
        for arm in arms {
            let run = train_arm(b, &seg, k, level, &arm, &dense);
            if arm.name == "imp" || arm.name == "snip" {
                trained = run;
            }
        }
        prev_mask = Some(mask);
    }
}

/// The initial weights and the dense run (with its evaluation, its second-data-order copy and
/// measurements, and its record). Returns the init and the dense run's keys.
fn dense_run(b: &mut Builder, seg: &Segment, k: u64) -> (String, String) {
    let (e, seed) = (seg.e, seg.seed);
    let t = e.recipe.iterations;
    let net = &e.network.display;
    let init = b.add(
        StepKind::Init,
        json!({ "network": e.network.canonical(), "init": e.recipe.init, "seed": seed }),
        vec![],
        0,
        format!("init {net}, seed {seed}"),
        Payload::Init {
            network: seg.net.clone(),
            recipe: seg.recipe.clone(),
            seed,
            reinit: false,
        },
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
        seg.payload(0, 0),
    );
    b.checkpoint(&dense, k);
    b.checkpoint(&dense, t);
    let dense_eval = b.add(
        StepKind::Evaluate,
        json!({}),
        vec![dense.clone()],
        0,
        "evaluate dense".into(),
        seg.evaluate(),
    );
    let mut dense_keys = MeasureKeys::default();
    if e.measures.needs_second_copy() {
        let rewound = b.add(
            StepKind::Rewind,
            json!({ "iteration": k }),
            vec![dense.clone()],
            0,
            format!("take dense weights at {k} it"),
            Payload::Rewind { iteration: k },
        );
        let (copy, _) = train_from(b, seg, &rewound, k, 1, "dense, second data order");
        dense_keys = measures(b, seg, &dense, &copy, None, None);
    }
    seg.record(b, k, "dense", 0, &dense, &dense_eval, dense_keys);
    (init, dense)
}

/// The mask of one level: from the previous level's trained IMP network and mask, or (SNIP,
/// which prunes at initialisation) from the initial weights.
fn level_mask(
    b: &mut Builder,
    seg: &Segment,
    p: &PruneSpec,
    level: u32,
    init: &str,
    trained: &str,
    prev_mask: Option<&str>,
) -> String {
    let inputs = if p.strategy == Strategy::Snip {
        vec![init.to_string()]
    } else {
        std::iter::once(trained)
            .chain(prev_mask)
            .map(str::to_string)
            .collect()
    };
    let density = p.densities.get(level as usize).copied().unwrap_or(0.0);
    b.add(
        StepKind::Prune,
        json!({ "prune": p.canonical(), "level": level }),
        inputs,
        0,
        format!(
            "prune level {level}: {} → density {:.1}%",
            describe(p),
            density * 100.0
        ),
        Payload::Prune {
            network: seg.net.clone(),
            prune: Arc::new(p.clone()),
            level,
        },
    )
}

/// The controls of one level: the same mask with fresh weights, and random masks with the IMP
/// mask's per-layer or overall density.
fn control_arms(
    b: &mut Builder,
    seg: &Segment,
    p: &PruneSpec,
    level: u32,
    k: u64,
    mask: &str,
    dense: &str,
) -> Vec<Arm> {
    let (e, seed) = (seg.e, seg.seed);
    let mut arms = Vec::new();
    for c in &e.controls {
        match c {
            Control::RandomReinit => {
                let reinit = b.add(
                    StepKind::Init,
                    json!({ "network": e.network.canonical(), "init": e.recipe.init, "seed": seed, "reinit": true }),
                    vec![],
                    0,
                    format!(
                        "init {}, seed {seed}, fresh weights for random reinitialisation",
                        e.network.display
                    ),
                    Payload::Init {
                        network: seg.net.clone(),
                        recipe: seg.recipe.clone(),
                        seed,
                        reinit: true,
                    },
                );
                arms.push(Arm {
                    name: "random_reinit",
                    mask: mask.to_string(),
                    start: 0,
                    source: reinit,
                    compare_with_dense: false,
                });
            }
            Control::RandomPrune | Control::RandomPruneGlobal => {
                let (scope, name, which) = if *c == Control::RandomPrune {
                    (Scope::Layerwise, "random_prune", "per-layer")
                } else {
                    (Scope::Global, "random_prune_global", "overall")
                };
                let exclude = p.never_pruned();
                let mut spec = json!({ "prune": { "strategy": Strategy::Random, "scope": scope, "like": "input" }, "seed": seed });
                if scope == Scope::Global && !exclude.is_empty() {
                    spec["prune"]["exclude"] = json!(exclude);
                }
                let random = b.add(
                    StepKind::Prune,
                    spec,
                    vec![mask.to_string()],
                    0,
                    format!("random mask with the level-{level} mask's {which} density"),
                    Payload::RandomPrune {
                        scope,
                        seed,
                        exclude,
                    },
                );
                arms.push(Arm {
                    name,
                    mask: random,
                    start: k,
                    source: dense.to_string(),
                    compare_with_dense: true,
                });
            }
        }
    }
    arms
}

/// One arm of one level: rewound (or reinitialised) under its mask, trained, evaluated, its
/// stability measured where asked, and recorded. Returns the trained run's key.
fn train_arm(b: &mut Builder, seg: &Segment, k: u64, level: u32, arm: &Arm, dense: &str) -> String {
    let e = seg.e;
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
        Payload::Rewind {
            iteration: arm.start,
        },
    );
    if arm.source == dense {
        b.checkpoint(dense, arm.start);
    }
    let (run, eval) = train_from(
        b,
        seg,
        &rewound,
        arm.start,
        0,
        &format!("{} level {level}", arm.name),
    );
    let mut keys = MeasureKeys::default();
    if arm.name == "imp" || arm.name == "snip" || arm.compare_with_dense {
        let copy = e.measures.needs_second_copy().then(|| {
            train_from(
                b,
                seg,
                &rewound,
                arm.start,
                1,
                &format!("{} level {level}, second data order", arm.name),
            )
            .0
        });
        let dense_ref = (arm.compare_with_dense && e.measures.stability_pruning).then_some(dense);
        if let Some(copy) = &copy {
            keys = measures(b, seg, &run, copy, Some(&arm.mask), dense_ref);
        } else if let Some(d) = dense_ref {
            keys.pruning = Some(stability_pruning(b, seg, &run, d, &arm.mask));
        }
    }
    seg.record(b, k, arm.name, level, &run, &eval, keys);
    run
}

fn train_from(
    b: &mut Builder,
    seg: &Segment,
    start_state: &str,
    start: u64,
    copy: u32,
    what: &str,
) -> (String, String) {
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
        seg.payload(copy, start),
    );
    b.checkpoint(&run, t);
    let eval = b.add(
        StepKind::Evaluate,
        json!({}),
        vec![run.clone()],
        0,
        format!("evaluate {what}"),
        seg.evaluate(),
    );
    (run, eval)
}

fn stability_pruning(b: &mut Builder, seg: &Segment, run: &str, dense: &str, mask: &str) -> String {
    b.add(
        StepKind::Measure,
        json!({ "measure": "stability_pruning" }),
        vec![run.to_string(), dense.to_string(), mask.to_string()],
        0,
        "measure stability to pruning (L2, angle) against the dense run".into(),
        measure_payload(seg, MeasureKind::StabilityPruning),
    )
}

fn measure_payload(seg: &Segment, measure: MeasureKind) -> Payload {
    Payload::Measure {
        measure,
        network: seg.net.clone(),
        dataset: seg.data.clone(),
    }
}

/// Stability and interpolation between a run and its second-data-order copy.
fn measures(
    b: &mut Builder,
    seg: &Segment,
    run: &str,
    copy: &str,
    mask: Option<&String>,
    dense: Option<&str>,
) -> MeasureKeys {
    let mut keys = MeasureKeys::default();
    let e = seg.e;
    let mut inputs = vec![run.to_string(), copy.to_string()];
    inputs.extend(mask.cloned());
    if e.measures.stability_data_order {
        keys.data_order = Some(b.add(
            StepKind::Measure,
            json!({ "measure": "stability_data_order" }),
            inputs.clone(),
            0,
            "measure stability to data order (L2, angle)".into(),
            measure_payload(seg, MeasureKind::StabilityDataOrder),
        ));
    }
    if let Some(points) = e.measures.interpolation_points {
        let mut spec = json!({ "measure": "interpolation", "points": points });
        if e.measures.interpolation_on_train {
            spec["train"] = json!(true);
        }
        keys.interpolation = Some(b.add(
            StepKind::Measure,
            spec,
            inputs,
            0,
            format!("measure the error barrier on the line between the copies ({points} points)"),
            measure_payload(
                seg,
                MeasureKind::Interpolation {
                    points,
                    train: e.measures.interpolation_on_train,
                },
            ),
        ));
    }
    if let (Some(d), Some(m)) = (dense, mask) {
        keys.pruning = Some(stability_pruning(b, seg, run, d, m));
    }
    keys
}

#[derive(Default)]
struct MeasureKeys {
    pruning: Option<String>,
    data_order: Option<String>,
    interpolation: Option<String>,
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
