//! Records (`{ name = value }` bodies, merged through `with` derivations) and the typed getters
//! that read a value of the expected kind out of an expression, with unit and range checks.

use std::collections::HashSet;

use super::{At, Checker, DefId};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{Arg, DefBody, DefKind, ExprKind, Field, Ident, Unit};
use crate::lang::{FileId, Span};

/// A duration as written: `500 it` or `1.4 ep`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur {
    pub amount: f64,
    pub unit: Unit,
}

impl Dur {
    /// In iterations; epochs need the iterations per epoch (None: not known here).
    pub fn iterations(&self, per_epoch: Option<u64>) -> Option<u64> {
        match self.unit {
            Unit::Epochs => per_epoch.map(|ipe| (self.amount * ipe as f64).round() as u64),
            _ => Some(self.amount.round() as u64),
        }
    }
}

#[derive(Clone, Copy)]
pub struct FieldRef<'p> {
    pub name: &'p Ident,
    pub file: FileId,
    pub value: &'p crate::lang::ast::Expr,
}

/// The fields of one record after derivations are merged (later fields override earlier ones).
pub struct Record<'p> {
    /// "recipe `lenet_adam`", for messages.
    pub what: String,
    pub file: FileId,
    pub span: Span,
    fields: Vec<FieldRef<'p>>,
    used: Vec<bool>,
}

impl<'p> Record<'p> {
    pub fn get(&mut self, name: &str) -> Option<At<'p>> {
        let i = self.fields.iter().position(|f| f.name.name == name)?;
        self.used[i] = true;
        Some(At::new(self.fields[i].file, self.fields[i].value))
    }

    /// All fields, in order, for records whose field names are data (per-layer rates).
    pub fn fields(&self) -> &[FieldRef<'p>] {
        &self.fields
    }

    /// Reports every field that is not in `known`.
    pub fn finish(self, cx: &mut Checker<'p>, known: &[&str]) {
        for (f, used) in self.fields.iter().zip(&self.used) {
            if !used && !known.contains(&f.name.name.as_str()) {
                cx.error(
                    code::NAME_UNKNOWN_FIELD,
                    f.file,
                    f.name.span,
                    format!("{} has no field `{}`", self.what, f.name.name),
                )
                .label("unknown field")
                .help(unknown_name_help(&f.name.name, "field", known))
                .emit();
            }
        }
    }

    /// Reports a missing required field.
    pub fn missing(&self, cx: &mut Checker<'p>, name: &str, example: &str) {
        cx.error(
            code::NAME_MISSING_FIELD,
            self.file,
            self.span,
            format!("{} needs a `{name}` field", self.what),
        )
        .label(format!("`{name}` is missing"))
        .help(format!("add `{name} = {example}`"))
        .emit();
    }
}

impl<'p> Checker<'p> {
    /// Replaces a `sweep` by the value chosen for the experiment instance being checked.
    pub fn resolve(&mut self, at: At<'p>) -> Option<At<'p>> {
        match at.kind() {
            ExprKind::Sweep(_) => match self.sweep_choice.get(&(at.file, at.span().start)) {
                Some(&chosen) => Some(At::new(at.file, chosen)),
                None => {
                    self.error(code::TYPE_SWEEP_PLACE, at.file, at.span(), "`sweep` is only allowed in an experiment")
                        .label("not inside an experiment")
                        .help("sweep in the experiment that uses this definition, e.g. `train = base with { lr = sweep [...] }`")
                        .emit();
                    None
                }
            },
            _ => Some(at),
        }
    }

    /// The name results show for a record given as a value: the definition it names (through
    /// sweeps and `with`), or `inline` for `{ ... }`.
    pub fn record_name(&self, at: At<'p>) -> String {
        let mut e = at;
        loop {
            match e.kind() {
                ExprKind::Sweep(_) => match self.sweep_choice.get(&(e.file, e.span().start)) {
                    Some(&chosen) => e = At::new(e.file, chosen),
                    None => return String::new(),
                },
                ExprKind::With { base, .. } => e = At::new(e.file, base),
                ExprKind::Ident(n) => return n.clone(),
                _ => return "inline".into(),
            }
        }
    }

    /// The record a definition of `kind` describes, following `= base with { ... }`.
    pub fn def_record(&mut self, id: DefId) -> Option<Record<'p>> {
        let mut seen = HashSet::new();
        self.def_record_inner(id, &mut seen)
    }

    fn def_record_inner(&mut self, id: DefId, seen: &mut HashSet<DefId>) -> Option<Record<'p>> {
        let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        let what = format!("{} `{}`", def.kind.word(), def.name.name);
        if !seen.insert(id) {
            self.error(
                code::DERIVE_CYCLE,
                file,
                def.name.span,
                format!("{what} is derived from itself"),
            )
            .label("derivation cycle")
            .help("a definition's `= base with { ... }` chain must end in a `{ ... }` body")
            .emit();
            return None;
        }
        let mut rec = match &def.body {
            DefBody::Fields(fields) => self.new_record(what, file, def.name.span, fields),
            DefBody::Alias(e) => {
                let mut rec = self.expr_record_inner(At::new(file, e), def.kind, seen)?;
                rec.what = what;
                rec.span = def.name.span;
                rec.file = file;
                rec
            }
            DefBody::Layers(_) => return None,
        };
        rec.span = def.name.span;
        Some(rec)
    }

    /// The record an expression denotes: a name, `{ ... }`, or `name with { ... }`.
    pub fn expr_record(&mut self, at: At<'p>, kind: DefKind) -> Option<Record<'p>> {
        let mut seen = HashSet::new();
        self.expr_record_inner(at, kind, &mut seen)
    }

    fn expr_record_inner(
        &mut self,
        at: At<'p>,
        kind: DefKind,
        seen: &mut HashSet<DefId>,
    ) -> Option<Record<'p>> {
        let at = self.resolve(at)?;
        match at.kind() {
            ExprKind::Ident(name) => {
                let id = self.lookup(at.file, name, at.span(), kind)?;
                self.def_record_inner(id, seen)
            }
            ExprKind::Record(fields) => {
                Some(self.new_record(format!("this {}", kind.word()), at.file, at.span(), fields))
            }
            ExprKind::With { base, fields } => {
                let mut rec = self.expr_record_inner(At::new(at.file, base), kind, seen)?;
                let over = self.new_record(String::new(), at.file, at.span(), fields);
                for f in over.fields {
                    match rec.fields.iter().position(|g| g.name.name == f.name.name) {
                        Some(i) => rec.fields[i] = f,
                        None => {
                            rec.fields.push(f);
                            rec.used.push(false);
                        }
                    }
                }
                Some(rec)
            }
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    at.file,
                    at.span(),
                    format!("expected a {}, found {}", kind.word(), at.expr.describe()),
                )
                .label(format!("not a {}", kind.word()))
                .help(format!(
                    "name a {0}, write `{{ ... }}`, or derive one with `other with {{ ... }}`",
                    kind.word()
                ))
                .emit();
                None
            }
        }
    }

    fn new_record(
        &mut self,
        what: String,
        file: FileId,
        span: Span,
        fields: &'p [Field],
    ) -> Record<'p> {
        let mut out: Vec<FieldRef<'p>> = Vec::new();
        for f in fields {
            if let Some(prev) = out.iter().find(|g| g.name.name == f.name.name) {
                let prev_span = prev.name.span;
                self.error(
                    code::NAME_DUPLICATE_FIELD,
                    file,
                    f.name.span,
                    format!("field `{}` is given twice", f.name.name),
                )
                .label("second value")
                .related(file, prev_span, "first value")
                .help("remove one of them")
                .emit();
                continue;
            }
            out.push(FieldRef {
                name: &f.name,
                file,
                value: &f.value,
            });
        }
        let used = vec![false; out.len()];
        Record {
            what,
            file,
            span,
            fields: out,
            used,
        }
    }

    // ---- typed getters -------------------------------------------------------------------

    /// A plain number (integer or not), no unit.
    pub fn number(&mut self, at: At<'p>) -> Option<f64> {
        let v = self.eval(at, &Default::default())?;
        match v.as_f64() {
            Some(x) => Some(x),
            None => self.mismatch(at, "a number", &v),
        }
    }

    pub fn int(&mut self, at: At<'p>) -> Option<i64> {
        self.eval_int(at, &Default::default())
    }

    /// An integer that must be at least `min`.
    pub fn int_at_least(&mut self, at: At<'p>, min: i64, what: &str) -> Option<u64> {
        let v = self.int(at)?;
        if v < min {
            self.error(
                code::RANGE_VALUE,
                at.file,
                at.span(),
                format!("{what} must be at least {min}, found {v}"),
            )
            .label("too small")
            .help(format!("use a value of {min} or more"))
            .emit();
            return None;
        }
        Some(v as u64)
    }

    /// A positive number (learning rates and the like).
    pub fn positive(&mut self, at: At<'p>, what: &str) -> Option<f64> {
        let v = self.number(at)?;
        if v <= 0.0 {
            self.error(
                code::RANGE_VALUE,
                at.file,
                at.span(),
                format!("{what} must be positive, found {v}"),
            )
            .label("not positive")
            .help(format!("give {what} a value above 0"))
            .emit();
            return None;
        }
        Some(v)
    }

    /// A fraction in [0, 1]: `20%` or `0.2`.
    pub fn fraction(&mut self, at: At<'p>, what: &str) -> Option<f64> {
        let at = self.resolve(at)?;
        let (value, shown) = match at.kind() {
            ExprKind::Number {
                value,
                unit: Some(Unit::Percent),
                ..
            } => (value / 100.0, format!("{value}%")),
            ExprKind::Number {
                unit: Some(Unit::Iterations | Unit::Epochs),
                ..
            } => {
                self.error(
                    code::UNIT_WRONG,
                    at.file,
                    at.span(),
                    format!("{what} is a fraction, not a duration"),
                )
                .label("a duration")
                .help("write a percentage such as `20%` or a number between 0 and 1")
                .emit();
                return None;
            }
            _ => {
                let v = self.number(at)?;
                (v, format!("{v}"))
            }
        };
        if !(0.0..=1.0).contains(&value) {
            self.error(
                code::RANGE_FRACTION,
                at.file,
                at.span(),
                format!("{what} must be between 0 and 1 (0% and 100%), found {shown}"),
            )
            .label("out of range")
            .help("write a percentage such as `20%` or a number between 0 and 1 such as `0.2`")
            .emit();
            return None;
        }
        Some(value)
    }

    /// A duration: `500 it`, `2 ep`, `30k it`.
    pub fn duration(&mut self, at: At<'p>, what: &str) -> Option<Dur> {
        let at = self.resolve(at)?;
        match at.kind() {
            ExprKind::Number {
                value,
                unit: Some(unit @ (Unit::Iterations | Unit::Epochs)),
                is_int,
            } => {
                if *unit == Unit::Iterations && !is_int {
                    self.error(
                        code::RANGE_VALUE,
                        at.file,
                        at.span(),
                        format!("{what} must be a whole number of iterations"),
                    )
                    .label("not a whole number")
                    .help("iterations count whole steps; use `ep` for fractions of an epoch")
                    .emit();
                    return None;
                }
                Some(Dur {
                    amount: *value,
                    unit: *unit,
                })
            }
            ExprKind::Number {
                unit: None, value, ..
            } => {
                self.error(
                    code::UNIT_MISSING,
                    at.file,
                    at.span(),
                    format!("{what} needs a unit"),
                )
                .label("no unit")
                .help(format!(
                    "write `{value} it` for iterations or `{value} ep` for epochs"
                ))
                .emit();
                None
            }
            ExprKind::Number {
                unit: Some(Unit::Percent),
                ..
            } => {
                self.error(
                    code::UNIT_WRONG,
                    at.file,
                    at.span(),
                    format!("{what} is a duration, not a percentage"),
                )
                .label("a percentage")
                .help("write a duration such as `500 it` or `2 ep`")
                .emit();
                None
            }
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    at.file,
                    at.span(),
                    format!("{what} must be a duration, found {}", at.expr.describe()),
                )
                .label("not a duration")
                .help("write a duration such as `500 it` or `2 ep`")
                .emit();
                None
            }
        }
    }

    pub fn boolean(&mut self, at: At<'p>) -> Option<bool> {
        match self.eval(at, &Default::default())? {
            super::eval::Value::Bool(b) => Some(b),
            v => self.mismatch(at, "`true` or `false`", &v),
        }
    }

    pub fn string(&mut self, at: At<'p>) -> Option<String> {
        match self.eval(at, &Default::default())? {
            super::eval::Value::Str(s) => Some(s),
            v => self.mismatch(at, "a string", &v),
        }
    }

    /// One of a fixed set of words (`global`, `layerwise`, ...).
    pub fn symbol(
        &mut self,
        at: At<'p>,
        choices: &[&'static str],
        what: &str,
    ) -> Option<&'static str> {
        let at = self.resolve(at)?;
        if let ExprKind::Ident(name) = at.kind() {
            if let Some(c) = choices.iter().find(|c| **c == name) {
                return Some(c);
            }
            self.error(
                code::NAME_UNKNOWN,
                at.file,
                at.span(),
                format!("unknown {what} `{name}`"),
            )
            .label(format!("not a {what}"))
            .help(unknown_name_help(name, what, choices))
            .emit();
            return None;
        }
        self.error(
            code::TYPE_MISMATCH,
            at.file,
            at.span(),
            format!("expected a {what}, found {}", at.expr.describe()),
        )
        .label(format!("not a {what}"))
        .help(format!("write one of: {}", choices.join(", ")))
        .emit();
        None
    }

    /// The elements of a list; a single value counts as a list of one.
    pub fn items(&mut self, at: At<'p>) -> Option<Vec<At<'p>>> {
        let at = self.resolve(at)?;
        match at.kind() {
            ExprKind::List(items) => Some(items.iter().map(|e| At::new(at.file, e)).collect()),
            _ => Some(vec![at]),
        }
    }

    /// `name` or `name(args)`: the form of optimizers, schedules, augmentations, measures.
    pub fn call_form(&mut self, at: At<'p>, what: &str) -> Option<CallForm<'p>> {
        let at = self.resolve(at)?;
        match &at.expr.kind {
            ExprKind::Call { callee, args } => Some(CallForm {
                name: &callee.name,
                name_span: callee.span,
                args,
                file: at.file,
                span: at.span(),
            }),
            ExprKind::Ident(name) => Some(CallForm {
                name,
                name_span: at.span(),
                args: &[],
                file: at.file,
                span: at.span(),
            }),
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    at.file,
                    at.span(),
                    format!("expected {what}, found {}", at.expr.describe()),
                )
                .label(format!("not {what}"))
                .help(format!("write {what} such as `name` or `name(arg: value)`"))
                .emit();
                None
            }
        }
    }
}

/// `name` or `name(args)` as written.
#[derive(Clone, Copy)]
pub struct CallForm<'p> {
    pub name: &'p str,
    pub name_span: Span,
    pub args: &'p [Arg],
    pub file: FileId,
    pub span: Span,
}
