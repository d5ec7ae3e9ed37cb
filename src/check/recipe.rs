//! `recipe` definitions: optimizer, schedule, batch size, duration, initialisation.

use super::record::{Dur, Record};
use super::spec::{Init, Optimizer, RecipeSpec, Schedule};
use super::{At, Checker, DefId};
use crate::diag::code;
use crate::lang::ast::DefKind;

pub(crate) const FIELDS: &[&str] = &[
    "optimizer",
    "schedule",
    "warmup",
    "weight_decay",
    "batch",
    "duration",
    "init",
    "label_smoothing",
    "eval_every",
];
const OPTIMIZERS: &[&str] = &["sgd", "adam", "rmsprop"];
const SCHEDULES: &[&str] = &["constant", "step", "linear", "exponential"];
const INITS: &[&str] = &[
    "kaiming_normal",
    "kaiming_uniform",
    "glorot_normal",
    "glorot_uniform",
];

impl<'p> Checker<'p> {
    /// Checks a recipe definition on its own (epochs stay unconverted).
    pub fn recipe_def(&mut self, id: DefId) -> Option<RecipeSpec> {
        let name = self.defs[id.0].def.name.name.clone();
        let rec = self.def_record(id)?;
        self.recipe_record(rec, name, None)
    }

    /// The recipe an experiment's `train = ...` gives, for a training set of `train_examples`.
    pub fn recipe_ref(&mut self, at: At<'p>, train_examples: Option<u64>) -> Option<RecipeSpec> {
        let name = self.record_name(at);
        let rec = self.expr_record(at, DefKind::Recipe)?;
        self.recipe_record(rec, name, train_examples)
    }

    fn recipe_record(
        &mut self,
        mut rec: Record<'p>,
        name: String,
        train_examples: Option<u64>,
    ) -> Option<RecipeSpec> {
        let batch = match rec.get("batch") {
            Some(at) => self.int_at_least(at, 1, "batch size"),
            None => {
                rec.missing(self, "batch", "128");
                None
            }
        };
        let ipe = match (batch, train_examples) {
            (Some(b), Some(n)) => Some(n.div_ceil(b)),
            _ => None,
        };
        let iterations = match rec.get("duration") {
            Some(at) => {
                let d = self.duration(at, "duration");
                d.and_then(|d| self.positive_iterations(at, d, ipe))
            }
            None => {
                rec.missing(self, "duration", "30k it");
                None
            }
        };
        let optimizer = match rec.get("optimizer") {
            Some(at) => self.optimizer(at),
            None => {
                rec.missing(self, "optimizer", "sgd(lr: 0.1, momentum: 0.9)");
                None
            }
        };
        let schedule = match rec.get("schedule") {
            Some(at) => self.schedule(at, ipe, iterations),
            None => Some(Schedule::Constant),
        };
        let warmup = match rec.get("warmup") {
            Some(at) => self.duration_within(at, "warmup", ipe, iterations),
            None => Some(0),
        };
        let weight_decay = match rec.get("weight_decay") {
            Some(at) => self.non_negative(at, "weight decay"),
            None => Some(0.0),
        };
        let label_smoothing = match rec.get("label_smoothing") {
            Some(at) => self.fraction(at, "label smoothing"),
            None => Some(0.0),
        };
        let init = match rec.get("init") {
            Some(at) => self.symbol(at, INITS, "initialiser").map(|s| match s {
                "kaiming_normal" => Init::KaimingNormal,
                "kaiming_uniform" => Init::KaimingUniform,
                "glorot_normal" => Init::GlorotNormal,
                _ => Init::GlorotUniform,
            }),
            None => Some(Init::KaimingNormal),
        };
        let eval_every = match rec.get("eval_every") {
            Some(at) => self
                .duration(at, "eval_every")
                .and_then(|d| self.positive_iterations(at, d, ipe))
                .map(Some),
            None => Some(None),
        };
        rec.finish(self, FIELDS);
        Some(RecipeSpec {
            name,
            optimizer: optimizer?,
            schedule: schedule?,
            warmup: warmup?,
            weight_decay: weight_decay?,
            batch: batch?,
            iterations: iterations?,
            iterations_per_epoch: ipe.unwrap_or(0),
            init: init?,
            label_smoothing: label_smoothing?,
            eval_every: eval_every?,
        })
    }

    /// A duration in iterations; 1 when epochs cannot be converted yet (standalone recipes).
    fn positive_iterations(&mut self, at: At<'p>, d: Dur, ipe: Option<u64>) -> Option<u64> {
        let its = d.iterations(ipe).unwrap_or(1);
        if its == 0 {
            self.error(
                code::RANGE_VALUE,
                at.file,
                at.span(),
                "this duration is zero iterations",
            )
            .label("zero")
            .help("give a duration of at least `1 it`")
            .emit();
            return None;
        }
        Some(its)
    }

    /// A duration that must not pass the end of training.
    pub fn duration_within(
        &mut self,
        at: At<'p>,
        what: &str,
        ipe: Option<u64>,
        end: Option<u64>,
    ) -> Option<u64> {
        let d = self.duration(at, what)?;
        let Some(its) = d.iterations(ipe) else {
            return Some(0);
        };
        if let Some(t) = end {
            if its > t && (ipe.is_some() || d.unit != crate::lang::ast::Unit::Epochs) {
                self.error(
                    code::RANGE_REWIND,
                    at.file,
                    at.span(),
                    format!(
                        "{what} at iteration {its} is after the end of training (iteration {t})"
                    ),
                )
                .label("past the end")
                .help(format!(
                    "training lasts {t} iterations; choose a point within it"
                ))
                .emit();
                return None;
            }
        }
        Some(its)
    }

    fn non_negative(&mut self, at: At<'p>, what: &str) -> Option<f64> {
        let v = self.number(at)?;
        if v < 0.0 {
            self.error(
                code::RANGE_VALUE,
                at.file,
                at.span(),
                format!("{what} cannot be negative, found {v}"),
            )
            .label("negative")
            .help("use 0 or a positive value")
            .emit();
            return None;
        }
        Some(v)
    }

    fn optimizer(&mut self, at: At<'p>) -> Option<Optimizer> {
        let c = self.call_form(at, "an optimizer")?;
        let kind = self.symbol_name(&c, OPTIMIZERS, "optimizer")?;
        let what = format!("`{kind}`");
        let opt = |cx: &mut Self, b: &super::args::Bound<'p>, name: &str, default: f64| match b
            .get(name)
        {
            Some(a) => cx.non_negative(a, name),
            None => Some(default),
        };
        match kind {
            "sgd" => {
                let b = self.bind(&c, &what, &["lr", "momentum", "nesterov"], 1)?;
                let lr = self.positive(b.get("lr")?, "the learning rate")?;
                let momentum = opt(self, &b, "momentum", 0.0)?;
                let nesterov = match b.get("nesterov") {
                    Some(a) => self.boolean(a)?,
                    None => false,
                };
                Some(Optimizer::Sgd {
                    lr,
                    momentum,
                    nesterov,
                })
            }
            "adam" => {
                let b = self.bind(&c, &what, &["lr", "beta1", "beta2", "eps"], 1)?;
                let lr = self.positive(b.get("lr")?, "the learning rate")?;
                Some(Optimizer::Adam {
                    lr,
                    beta1: opt(self, &b, "beta1", 0.9)?,
                    beta2: opt(self, &b, "beta2", 0.999)?,
                    eps: opt(self, &b, "eps", 1e-8)?,
                })
            }
            _ => {
                let b = self.bind(&c, &what, &["lr", "alpha", "momentum", "eps"], 1)?;
                let lr = self.positive(b.get("lr")?, "the learning rate")?;
                Some(Optimizer::Rmsprop {
                    lr,
                    alpha: opt(self, &b, "alpha", 0.9)?,
                    momentum: opt(self, &b, "momentum", 0.0)?,
                    eps: opt(self, &b, "eps", 1e-8)?,
                })
            }
        }
    }

    fn schedule(&mut self, at: At<'p>, ipe: Option<u64>, end: Option<u64>) -> Option<Schedule> {
        let c = self.call_form(at, "a learning-rate schedule")?;
        let kind = self.symbol_name(&c, SCHEDULES, "schedule")?;
        let what = format!("`{kind}`");
        match kind {
            "constant" => self.bind(&c, &what, &[], 0).map(|_| Schedule::Constant),
            "step" => {
                let b = self.bind(&c, &what, &["gamma", "at"], 2)?;
                let gamma = self.positive(b.get("gamma")?, "gamma")?;
                let mut milestones = Vec::new();
                for m in self.items(b.get("at")?)? {
                    let its = self.duration_within(m, "a milestone", ipe, end)?;
                    if milestones.last().is_some_and(|p| *p >= its) && ipe.is_some() {
                        self.error(
                            code::RANGE_VALUE,
                            m.file,
                            m.span(),
                            "milestones must be in increasing order",
                        )
                        .label("not after the previous milestone")
                        .help("list the milestones from earliest to latest")
                        .emit();
                        return None;
                    }
                    milestones.push(its);
                }
                Some(Schedule::Step { gamma, milestones })
            }
            kind => {
                let b = self.bind(&c, &what, &["to"], 1)?;
                let to = self.positive(b.get("to")?, "the final learning rate")?;
                Some(if kind == "linear" {
                    Schedule::Linear { to }
                } else {
                    Schedule::Exponential { to }
                })
            }
        }
    }
}
