//! Pruning: `magnitude(layerwise, 20%, layers: { output = 10% }) for 20 levels`,
//! `magnitude(global, 20%) until 1.5% density`, `random(...)`, `snip(...)`.

use super::netspec::NetSpec;
use super::spec::{PruneSpec, Scope, Strategy};
use super::{At, Checker, DefId};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{ClauseKind, DefBody, DefKind, ExprKind};

const STRATEGIES: &[&str] = &["magnitude", "random", "snip"];
const SCOPES: &[&str] = &["global", "layerwise"];
const MAX_LEVELS: u32 = 200;

/// How far to prune, before it can be turned into a number of levels.
enum Stop<'p> {
    Levels(u32),
    Density(f64, At<'p>),
}

impl<'p> Checker<'p> {
    pub fn pruning_def(&mut self, id: DefId) -> Option<PruneSpec> {
        let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        match &def.body {
            DefBody::Alias(e) => self.pruning(At::new(file, e), None),
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    file,
                    def.name.span,
                    "a pruning is written `pruning NAME = strategy(...) for N levels`",
                )
                .label("expected `=`")
                .help("e.g. `pruning imp = magnitude(global, 20%) for 10 levels`")
                .emit();
                None
            }
        }
    }

    /// Resolves a pruning expression; with a network, layer names are checked and the
    /// densities per level computed.
    pub fn pruning(&mut self, at: At<'p>, net: Option<&NetSpec>) -> Option<PruneSpec> {
        self.pruning_depth(at, net, None, 0)
    }

    fn pruning_depth(
        &mut self,
        at: At<'p>,
        net: Option<&NetSpec>,
        stop_over: Option<(ClauseKind, At<'p>, At<'p>)>,
        depth: usize,
    ) -> Option<PruneSpec> {
        let at = self.resolve(at)?;
        match at.kind() {
            ExprKind::Clause {
                base,
                kind,
                value,
                word,
            } => {
                let clause = (
                    *kind,
                    At::new(at.file, value.as_ref()),
                    At::new(at.file, base.as_ref()),
                );
                let expected = if *kind == ClauseKind::For {
                    ["level", "levels"]
                } else {
                    ["density", "density"]
                };
                if !expected.contains(&word.name.as_str()) {
                    let form = if *kind == ClauseKind::For {
                        "for 20 levels"
                    } else {
                        "until 5% density"
                    };
                    self.error(
                        code::NAME_UNKNOWN,
                        at.file,
                        word.span,
                        format!(
                            "expected `{}` after the value, found `{}`",
                            expected[1], word.name
                        ),
                    )
                    .label("unknown word")
                    .help(format!("write e.g. `{form}`"))
                    .emit();
                    return None;
                }
                self.pruning_depth(
                    At::new(at.file, base),
                    net,
                    Some(stop_over.unwrap_or(clause)),
                    depth,
                )
            }
            ExprKind::Ident(name) if !STRATEGIES.contains(&name.as_str()) => {
                let id = self.lookup(at.file, name, at.span(), DefKind::Pruning)?;
                let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
                if depth > self.defs.len() {
                    self.error(
                        code::DERIVE_CYCLE,
                        at.file,
                        at.span(),
                        format!("pruning `{name}` is defined in terms of itself"),
                    )
                    .label("cycle")
                    .help("a pruning must end in a strategy such as `magnitude(...)`")
                    .emit();
                    return None;
                }
                match &def.body {
                    DefBody::Alias(e) => {
                        self.pruning_depth(At::new(file, e), net, stop_over, depth + 1)
                    }
                    _ => None,
                }
            }
            _ => self.strategy(at, net, stop_over),
        }
    }

    fn strategy(
        &mut self,
        at: At<'p>,
        net: Option<&NetSpec>,
        clause: Option<(ClauseKind, At<'p>, At<'p>)>,
    ) -> Option<PruneSpec> {
        let c = self.call_form(at, "a pruning strategy")?;
        let kind = self.symbol_name(&c, STRATEGIES, "pruning strategy")?;
        let strategy = match kind {
            "magnitude" => Strategy::Magnitude,
            "random" => Strategy::Random,
            _ => Strategy::Snip,
        };
        let b = self.bind(
            &c,
            &format!("`{kind}`"),
            &["scope", "rate", "layers", "exclude"],
            0,
        )?;
        let scope = match b.get("scope") {
            Some(s) => self.symbol(s, SCOPES, "pruning scope")?,
            None => "global",
        };
        let scope = if scope == "global" {
            Scope::Global
        } else {
            Scope::Layerwise
        };
        let rate = match b.get("rate") {
            Some(r) => self.rate(r)?,
            None => {
                self.error(code::TYPE_ARITY, c.file, c.span, format!("`{kind}` needs a pruning rate"))
                    .label("rate missing")
                    .help(format!("write e.g. `{kind}(global, 20%)`: the share of surviving weights removed per level"))
                    .emit();
                return None;
            }
        };
        let mut layer_rates = Vec::new();
        if let Some(l) = b.get("layers") {
            let l = self.resolve(l)?;
            let ExprKind::Record(fields) = l.kind() else {
                self.error(
                    code::TYPE_MISMATCH,
                    l.file,
                    l.span(),
                    "per-layer rates are a record `{ layer = rate }`",
                )
                .label("not a record")
                .help("write e.g. `layers: { output = 10% }`")
                .emit();
                return None;
            };
            if scope == Scope::Global {
                self.error(
                    code::TYPE_MISMATCH,
                    l.file,
                    l.span(),
                    "per-layer rates need layerwise pruning",
                )
                .label("ignored by global pruning")
                .help("write `magnitude(layerwise, ...)`, or `exclude: [...]` to keep layers dense")
                .emit();
                return None;
            }
            for f in fields {
                let r = self.rate(At::new(l.file, &f.value))?;
                let names = self.layer_names(net, &f.name.name, l.file, f.name.span)?;
                layer_rates.extend(names.into_iter().map(|n| (n, r)));
            }
        }
        let mut exclude = Vec::new();
        if let Some(e) = b.get("exclude") {
            for item in self.items(e)? {
                let item = self.resolve(item)?;
                let ExprKind::Ident(n) = item.kind() else {
                    self.error(
                        code::TYPE_MISMATCH,
                        item.file,
                        item.span(),
                        "`exclude` lists layer names",
                    )
                    .label("not a layer name")
                    .help("write e.g. `exclude: [output]`")
                    .emit();
                    return None;
                };
                exclude.extend(self.layer_names(net, n, item.file, item.span())?);
            }
        }
        let stop = match clause {
            None => Stop::Levels(1),
            Some((ClauseKind::For, v, _)) => {
                let n = self.int_at_least(v, 1, "the number of levels")?;
                if n > MAX_LEVELS as u64 {
                    self.error(
                        code::RANGE_VALUE,
                        v.file,
                        v.span(),
                        format!("at most {MAX_LEVELS} levels, found {n}"),
                    )
                    .label("too many levels")
                    .help("0.8^200 is already below 1e-19")
                    .emit();
                    return None;
                }
                Stop::Levels(n as u32)
            }
            Some((ClauseKind::Until, v, _)) => {
                let d = self.fraction(v, "the target density")?;
                if d <= 0.0 || d >= 1.0 {
                    self.error(
                        code::RANGE_FRACTION,
                        v.file,
                        v.span(),
                        "the target density must be above 0% and below 100%",
                    )
                    .label("out of range")
                    .help("write e.g. `until 5% density`")
                    .emit();
                    return None;
                }
                Stop::Density(d, v)
            }
        };
        let mut spec = PruneSpec {
            strategy,
            scope,
            rate,
            layer_rates,
            exclude,
            levels: 0,
            densities: vec![1.0],
        };
        let Some(net) = net else {
            spec.levels = match stop {
                Stop::Levels(n) => n,
                Stop::Density(..) => 0,
            };
            return Some(spec);
        };
        let target = match stop {
            Stop::Levels(n) => {
                spec.levels = n;
                None
            }
            Stop::Density(d, at) => Some((d, at)),
        };
        let max = if target.is_some() {
            MAX_LEVELS
        } else {
            spec.levels
        };
        let mut remaining: Vec<(u64, f64)> = net
            .prunable()
            .iter()
            .map(|p| {
                let r = if spec.exclude.contains(&p.name) {
                    0.0
                } else {
                    spec.layer_rates
                        .iter()
                        .find(|(n, _)| *n == p.name)
                        .map_or(rate, |(_, r)| *r)
                };
                (p.weights, r)
            })
            .collect();
        let total: u64 = remaining.iter().map(|(w, _)| *w).sum();
        for _ in 0..max {
            match scope {
                Scope::Layerwise => {
                    for (w, r) in remaining.iter_mut() {
                        *w -= ((*r * *w as f64).ceil() as u64).min(*w);
                    }
                }
                Scope::Global => {
                    let prunable: u64 = remaining
                        .iter()
                        .filter(|(_, r)| *r > 0.0)
                        .map(|(w, _)| *w)
                        .sum();
                    let mut remove = ((rate * prunable as f64).ceil() as u64).min(prunable);
                    // Only the total matters for the density; which layers lose weights is the engine's job.
                    for (w, _) in remaining.iter_mut().filter(|(_, r)| *r > 0.0) {
                        let take = remove.min(*w);
                        *w -= take;
                        remove -= take;
                    }
                }
            }
            let kept: u64 = remaining.iter().map(|(w, _)| *w).sum();
            spec.densities.push(kept as f64 / total.max(1) as f64);
            if let Some((d, _)) = target {
                if kept as f64 / total.max(1) as f64 <= d {
                    break;
                }
            }
        }
        if let Some((d, at)) = target {
            let last = *spec.densities.last().unwrap_or(&1.0);
            if last > d {
                self.error(
                    code::RANGE_VALUE,
                    at.file,
                    at.span(),
                    format!(
                        "{:.2}% density is not reached in {MAX_LEVELS} levels (it stops at {:.2}%)",
                        d * 100.0,
                        last * 100.0
                    ),
                )
                .label("unreachable")
                .help("excluded layers keep their weights: lower the target or prune more layers")
                .emit();
                return None;
            }
            spec.levels = spec.densities.len() as u32 - 1;
        }
        Some(spec)
    }

    fn rate(&mut self, at: At<'p>) -> Option<f64> {
        let r = self.fraction(at, "the pruning rate")?;
        if r >= 1.0 {
            self.error(
                code::RANGE_FRACTION,
                at.file,
                at.span(),
                "a pruning rate of 100% would remove every weight",
            )
            .label("nothing would survive")
            .help("the rate is the share of surviving weights removed per level, e.g. `20%`")
            .emit();
            return None;
        }
        Some(r)
    }

    /// Full names of the prunable layers that `name` (a label or a full name) refers to.
    fn layer_names(
        &mut self,
        net: Option<&NetSpec>,
        name: &str,
        file: crate::lang::FileId,
        span: crate::lang::Span,
    ) -> Option<Vec<String>> {
        let Some(net) = net else {
            return Some(vec![name.to_string()]);
        };
        let prunable = net.prunable();
        let found: Vec<String> = prunable
            .iter()
            .filter(|p| p.name == name || p.labels.iter().any(|l| l == name))
            .map(|p| p.name.clone())
            .collect();
        if found.is_empty() {
            let mut candidates: Vec<&str> = prunable.iter().map(|p| p.name.as_str()).collect();
            candidates.extend(
                prunable
                    .iter()
                    .flat_map(|p| p.labels.iter().map(String::as_str)),
            );
            self.error(
                code::NAME_UNKNOWN_LAYER,
                file,
                span,
                format!("network `{}` has no prunable layer `{name}`", net.display),
            )
            .label("unknown layer")
            .help(unknown_name_help(name, "layer", &candidates))
            .emit();
            return None;
        }
        Some(found)
    }
}
