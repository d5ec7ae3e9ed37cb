//! `sweep [a, b, c]` anywhere in an experiment: one experiment instance per combination of
//! the sweeps' values (the cartesian product).

use std::collections::HashMap;

use super::record::FieldRef;
use super::Checker;
use crate::diag::code;
use crate::lang::ast::{Expr, ExprKind};
use crate::lang::{FileId, Span};

/// One swept value's place: a readable path (`train.optimizer.lr`) and its choices.
pub struct SweepDim<'p> {
    pub path: String,
    pub file: FileId,
    pub span: Span,
    pub values: Vec<&'p Expr>,
}

/// The choice for each sweep, keyed like [`Checker::sweep_choice`].
pub type Choice<'p> = HashMap<(FileId, usize), &'p Expr>;

/// One experiment instance: its sweep choices and their labels (`path`, `value`).
pub type Instance<'p> = (Choice<'p>, Vec<(String, String)>);

/// More instances than this from one experiment is a mistake.
pub const MAX_INSTANCES: usize = 10_000;

impl<'p> Checker<'p> {
    pub fn collect_sweeps(&mut self, fields: &[FieldRef<'p>]) -> Vec<SweepDim<'p>> {
        let mut out = Vec::new();
        for f in fields {
            self.walk(f.file, f.value, f.name.name.clone(), &mut out);
        }
        out
    }

    fn walk(&mut self, file: FileId, e: &'p Expr, path: String, out: &mut Vec<SweepDim<'p>>) {
        match &e.kind {
            ExprKind::Sweep(inner) => match &inner.kind {
                ExprKind::List(items) if !items.is_empty() => out.push(SweepDim {
                    path,
                    file,
                    span: e.span,
                    values: items.iter().collect(),
                }),
                _ => {
                    self.error(
                        code::TYPE_MISMATCH,
                        file,
                        inner.span,
                        "a sweep takes a non-empty list or a range of literal numbers",
                    )
                    .label("cannot sweep this")
                    .help("write e.g. `sweep [0.1, 0.01]` or `sweep 1..5`")
                    .emit();
                }
            },
            ExprKind::Call { args, .. } => {
                for (i, a) in args.iter().enumerate() {
                    let key = a
                        .name
                        .as_ref()
                        .map_or_else(|| format!("{}", i + 1), |n| n.name.clone());
                    self.walk(file, &a.value, format!("{path}.{key}"), out);
                }
            }
            ExprKind::With { base, fields } => {
                self.walk(file, base, path.clone(), out);
                for f in fields {
                    self.walk(file, &f.value, format!("{path}.{}", f.name.name), out);
                }
            }
            ExprKind::Record(fields) => {
                for f in fields {
                    self.walk(file, &f.value, format!("{path}.{}", f.name.name), out);
                }
            }
            ExprKind::List(items) => {
                for (i, x) in items.iter().enumerate() {
                    self.walk(file, x, format!("{path}[{i}]"), out);
                }
            }
            ExprKind::Clause { base, value, .. } => {
                self.walk(file, base, path.clone(), out);
                self.walk(file, value, path, out);
            }
            ExprKind::Neg(x) => self.walk(file, x, path, out),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.walk(file, lhs, path.clone(), out);
                self.walk(file, rhs, path, out);
            }
            _ => {}
        }
    }

    /// Every combination of the sweeps' values, with its label parts (`path=value`).
    pub fn combinations(
        &mut self,
        dims: &[SweepDim<'p>],
        at: (FileId, Span),
    ) -> Option<Vec<Instance<'p>>> {
        let total = dims
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.values.len()));
        if total.is_none_or(|t| t > MAX_INSTANCES) {
            self.error(
                code::RANGE_VALUE,
                at.0,
                at.1,
                format!("the sweeps of this experiment make more than {MAX_INSTANCES} instances"),
            )
            .label("too many combinations")
            .help("split the sweep over several experiments, or sweep fewer values")
            .emit();
            return None;
        }
        let mut out = vec![(Choice::new(), Vec::new())];
        for d in dims {
            // The values of a literal range (`sweep 1..4`) all carry the range's span.
            let from_range = d.values.len() > 1 && d.values[0].span == d.values[1].span;
            let mut next = Vec::new();
            for (choice, label) in &out {
                for v in &d.values {
                    let mut c = choice.clone();
                    c.insert((d.file, d.span.start), *v);
                    let mut l = label.clone();
                    let text = match v.kind {
                        ExprKind::Number { value, unit, .. } if from_range => match unit {
                            Some(crate::lang::ast::Unit::Percent) => format!("{value}%"),
                            Some(u) => format!("{value} {}", u.word()),
                            None => format!("{value}"),
                        },
                        _ => self
                            .prog
                            .sources
                            .snippet(d.file, v.span)
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                    };
                    l.push((d.path.clone(), text));
                    next.push((c, l));
                }
            }
            out = next;
        }
        Some(out)
    }
}
