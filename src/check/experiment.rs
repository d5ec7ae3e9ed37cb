//! `experiment` definitions: what to train, how to prune, where to rewind, what to measure.

use super::netspec::NetSpec;
use super::record::Record;
use super::spec::{Control, ExperimentSpec, Measures};
use super::{At, Checker, DefId};
use crate::diag::code;

pub(crate) const FIELDS: &[&str] = &[
    "network", "data", "train", "prune", "rewind", "seeds", "controls", "measure",
];
const CONTROLS: &[&str] = &["random_reinit", "random_prune"];
const MEASURES: &[&str] = &["accuracy", "stability", "interpolation"];

impl<'p> Checker<'p> {
    /// Every instance of an experiment (one per sweep combination).
    pub fn experiment(&mut self, id: DefId) -> Vec<ExperimentSpec> {
        let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        let Some(rec) = self.def_record(id) else {
            return Vec::new();
        };
        let dims = self.collect_sweeps(rec.fields());
        let Some(combos) = self.combinations(&dims, (file, def.name.span)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (choice, labels) in combos {
            self.sweep_choice = choice;
            let Some(rec) = self.def_record(id) else {
                continue;
            };
            if let Some(mut spec) = self.experiment_instance(rec, &def.name.name) {
                spec.instance = if labels.is_empty() {
                    spec.name.clone()
                } else {
                    let parts: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{}[{}]", spec.name, parts.join(","))
                };
                spec.sweep = labels;
                spec.file = self.prog.sources.get(file).name.clone();
                out.push(spec);
            }
        }
        self.sweep_choice.clear();
        out
    }

    fn experiment_instance(&mut self, mut rec: Record<'p>, name: &str) -> Option<ExperimentSpec> {
        let dataset = match rec.get("data") {
            Some(at) => self.dataset_ref(at),
            None => {
                rec.missing(self, "data", "mnist");
                None
            }
        };
        let network = match (rec.get("network"), &dataset) {
            (Some(at), Some(d)) => self.network_ref(at, &d.shape, None),
            (None, _) => {
                rec.missing(self, "network", "lenet");
                None
            }
            _ => None,
        };
        let recipe = match rec.get("train") {
            Some(at) => self.recipe_ref(at, dataset.as_ref().map(|d| d.train_examples())),
            None => {
                rec.missing(self, "train", "lenet_mnist");
                None
            }
        };
        let end = recipe.as_ref().map(|r| r.iterations);
        let ipe = recipe.as_ref().map(|r| r.iterations_per_epoch);
        let prune = match (rec.get("prune"), &network) {
            (Some(at), Some(net)) => self.pruning(at, Some(net)).map(Some),
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        let rewind = match rec.get("rewind") {
            Some(at) => self.rewind_points(at, ipe, end),
            None => Some(vec![0]),
        };
        let seeds = match rec.get("seeds") {
            Some(at) => self.seeds(at),
            None => Some(vec![1]),
        };
        let pruned = matches!(prune, Some(Some(_)));
        let controls = match rec.get("controls") {
            Some(at) => self.controls(at, pruned),
            None => Some(Vec::new()),
        };
        let measures = match rec.get("measure") {
            Some(at) => self.measures(at, pruned),
            None => Some(Measures::default()),
        };
        rec.finish(self, FIELDS);
        let network: NetSpec = network?;
        Some(ExperimentSpec {
            name: name.to_string(),
            instance: name.to_string(),
            sweep: Vec::new(),
            file: String::new(),
            network,
            dataset: dataset?,
            recipe: recipe?,
            prune: prune?,
            rewind: rewind?,
            seeds: seeds?,
            controls: controls?,
            measures: measures?,
        })
    }

    fn rewind_points(
        &mut self,
        at: At<'p>,
        ipe: Option<u64>,
        end: Option<u64>,
    ) -> Option<Vec<u64>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in self.items(at)? {
            match self.duration_within(item, "the rewind point", ipe, end) {
                Some(k) if end == Some(k) => {
                    self.error(
                        code::RANGE_REWIND,
                        item.file,
                        item.span(),
                        "rewinding to the end of training leaves nothing to retrain",
                    )
                    .label("the last iteration")
                    .help("choose a rewind point before the end of training")
                    .emit();
                    ok = false;
                }
                Some(k) => out.push(k),
                None => ok = false,
            }
        }
        out.sort_unstable();
        out.dedup();
        (ok && !out.is_empty()).then_some(out)
    }

    fn seeds(&mut self, at: At<'p>) -> Option<Vec<u64>> {
        let values = match self.eval(at, &Default::default())? {
            super::eval::Value::List(items) => items,
            v => vec![v],
        };
        let mut out = Vec::new();
        for v in values {
            match v {
                super::eval::Value::Int(i) if i >= 0 => out.push(i as u64),
                other => {
                    return self.mismatch(
                        at,
                        "non-negative integer seeds (`1..3` or `[1, 2]`)",
                        &other,
                    )
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.is_empty() {
            self.error(code::RANGE_VALUE, at.file, at.span(), "no seeds")
                .label("empty")
                .help("give at least one seed, e.g. `seeds = 1..3`")
                .emit();
            return None;
        }
        Some(out)
    }

    fn controls(&mut self, at: At<'p>, pruned: bool) -> Option<Vec<Control>> {
        let mut out = Vec::new();
        for item in self.items(at)? {
            let c = self.call_form(item, "a control")?;
            let kind = self.symbol_name(&c, CONTROLS, "control")?;
            if !pruned {
                self.error(code::NAME_MISSING_FIELD, c.file, c.span, format!("`{kind}` is a control for pruned networks, but this experiment does not prune"))
                    .label("nothing to compare with")
                    .help("add a `prune = ...` field")
                    .emit();
                return None;
            }
            let control = if kind == "random_reinit" {
                self.bind(&c, "`random_reinit`", &[], 0)?;
                Control::RandomReinit
            } else {
                let b = self.bind(&c, "`random_prune`", &["scope"], 0)?;
                match b.get("scope") {
                    Some(s)
                        if self.symbol(s, &["global", "layerwise"], "pruning scope")?
                            == "global" =>
                    {
                        Control::RandomPruneGlobal
                    }
                    Some(_) | None => Control::RandomPrune,
                }
            };
            if !out.contains(&control) {
                out.push(control);
            }
        }
        Some(out)
    }

    fn measures(&mut self, at: At<'p>, pruned: bool) -> Option<Measures> {
        let mut m = Measures::default();
        for item in self.items(at)? {
            let c = self.call_form(item, "a measurement")?;
            let kind = self.symbol_name(&c, MEASURES, "measurement")?;
            match kind {
                "accuracy" => {
                    self.bind(&c, "`accuracy`", &[], 0)?;
                }
                "stability" => {
                    if c.args.is_empty() {
                        m.stability_pruning = pruned;
                        m.stability_data_order = true;
                    }
                    for a in c.args {
                        let a = At::new(c.file, &a.value);
                        match self.symbol(a, &["pruning", "data_order"], "kind of stability")? {
                            "pruning" if !pruned => {
                                self.error(code::NAME_MISSING_FIELD, a.file, a.span(), "stability to pruning compares a pruned network with the full one, but this experiment does not prune")
                                    .label("nothing is pruned")
                                    .help("add a `prune = ...` field, or measure `stability(data_order)`")
                                    .emit();
                                return None;
                            }
                            "pruning" => m.stability_pruning = true,
                            _ => m.stability_data_order = true,
                        }
                    }
                }
                _ => {
                    let b = self.bind(&c, "`interpolation`", &["points", "on"], 0)?;
                    let points = match b.get("points") {
                        Some(p) => self.int_at_least(p, 3, "the number of points")?,
                        None => 30,
                    };
                    if points > 1000 {
                        self.error(
                            code::RANGE_VALUE,
                            c.file,
                            c.span,
                            format!("{points} interpolation points is more than 1000"),
                        )
                        .label("too many points")
                        .help("30 points, as in the linear mode connectivity paper, is plenty")
                        .emit();
                        return None;
                    }
                    m.interpolation_points = Some(points as u32);
                    if let Some(on) = b.get("on") {
                        for x in self.items(on)? {
                            if self.symbol(x, &["test", "train"], "data split")? == "train" {
                                m.interpolation_on_train = true;
                            }
                        }
                    }
                }
            }
        }
        Some(m)
    }
}
