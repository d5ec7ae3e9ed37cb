//! Evaluation of the small arithmetic language used in network definitions (parameters,
//! `require`, `repeat`, `for`) and for plain values anywhere.

use std::collections::HashMap;
use std::fmt;

use super::{At, Checker};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{BinOp, ExprKind, Unit};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Value>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Variables in scope: network parameters and loop variables.
pub type Env = HashMap<String, Value>;

const BUILTIN_FUNCTIONS: &[&str] = &["len", "first", "last", "init", "tail", "min", "max"];
/// Ranges longer than this are almost certainly mistakes, and would eat memory.
const MAX_RANGE: i64 = 100_000;

impl<'p> Checker<'p> {
    /// Evaluates `at` in `env`. Reports a diagnostic and returns `None` on any error.
    pub fn eval(&mut self, at: At<'p>, env: &Env) -> Option<Value> {
        let at = self.resolve(at)?;
        let (file, span) = (at.file, at.span());
        match at.kind() {
            ExprKind::Number {
                value,
                is_int,
                unit,
            } => match unit {
                None if *is_int => Some(Value::Int(*value as i64)),
                None => Some(Value::Float(*value)),
                Some(u) => {
                    let what = if *u == Unit::Percent {
                        "a percentage"
                    } else {
                        "a duration"
                    };
                    self.error(
                        code::UNIT_WRONG,
                        file,
                        span,
                        format!("expected a plain number, found {what}"),
                    )
                    .label(format!("`{}` has no meaning here", u.word()))
                    .help("remove the unit: this value is a count or a size")
                    .emit();
                    None
                }
            },
            ExprKind::Str(s) => Some(Value::Str(s.clone())),
            ExprKind::Bool(b) => Some(Value::Bool(*b)),
            ExprKind::Ident(name) => match env.get(name) {
                Some(v) => Some(v.clone()),
                None => {
                    let names: Vec<&str> = env.keys().map(String::as_str).collect();
                    let help = if names.is_empty() {
                        "only parameters and loop variables can be used in arithmetic".to_string()
                    } else {
                        unknown_name_help(name, "parameter", &names)
                    };
                    self.error(
                        code::NAME_UNKNOWN,
                        file,
                        span,
                        format!("unknown name `{name}`"),
                    )
                    .label("not a parameter or loop variable in scope")
                    .help(help)
                    .emit();
                    None
                }
            },
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    out.push(self.eval(At::new(file, e), env)?);
                }
                Some(Value::List(out))
            }
            ExprKind::Neg(inner) => match self.eval(At::new(file, inner), env)? {
                Value::Int(i) => i
                    .checked_neg()
                    .map(Value::Int)
                    .or_else(|| self.overflow(at)),
                Value::Float(f) => Some(Value::Float(-f)),
                v => self.mismatch(at, "a number", &v),
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.eval(At::new(file, lhs), env)?;
                let r = self.eval(At::new(file, rhs), env)?;
                self.binary(at, *op, l, r)
            }
            ExprKind::Range { start, end, step } => {
                let s = self.eval_int(At::new(file, start), env)?;
                let e = self.eval_int(At::new(file, end), env)?;
                let st = match step {
                    Some(x) => self.eval_int(At::new(file, x), env)?,
                    None => 1,
                };
                if st <= 0 {
                    self.error(
                        code::RANGE_VALUE,
                        file,
                        span,
                        "a range's step must be positive",
                    )
                    .label("step here")
                    .help("write `a..b by n` with n >= 1")
                    .emit();
                    return None;
                }
                if e.saturating_sub(s) / st > MAX_RANGE {
                    self.error(
                        code::RANGE_VALUE,
                        file,
                        span,
                        format!("this range has more than {MAX_RANGE} values"),
                    )
                    .label("too long")
                    .help("ranges are inclusive: `1..3` is 1, 2, 3")
                    .emit();
                    return None;
                }
                let mut out = Vec::new();
                let mut i = s;
                while i <= e {
                    out.push(Value::Int(i));
                    i += st;
                }
                Some(Value::List(out))
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => match self.eval(At::new(file, cond), env)? {
                Value::Bool(true) => self.eval(At::new(file, then), env),
                Value::Bool(false) => self.eval(At::new(file, otherwise), env),
                v => self.mismatch(At::new(file, cond), "a condition (true or false)", &v),
            },
            ExprKind::Index { base, index } => {
                let b = self.eval(At::new(file, base), env)?;
                let i = self.eval_int(At::new(file, index), env)?;
                match b {
                    Value::List(items) => {
                        let n = items.len();
                        match usize::try_from(i)
                            .ok()
                            .and_then(|i| items.into_iter().nth(i))
                        {
                            Some(v) => Some(v),
                            None => {
                                self.error(
                                    code::RANGE_VALUE,
                                    file,
                                    index.span,
                                    format!("index {i} is out of range"),
                                )
                                .label(format!("the list has {n} elements"))
                                .help("indices start at 0")
                                .emit();
                                None
                            }
                        }
                    }
                    v => self.mismatch(At::new(file, base), "a list", &v),
                }
            }
            ExprKind::Call { callee, args } => {
                if !BUILTIN_FUNCTIONS.contains(&callee.name.as_str()) {
                    self.error(
                        code::NAME_UNKNOWN,
                        file,
                        callee.span,
                        format!("unknown function `{}`", callee.name),
                    )
                    .label("not a function")
                    .help(unknown_name_help(
                        &callee.name,
                        "function",
                        BUILTIN_FUNCTIONS,
                    ))
                    .emit();
                    return None;
                }
                if args.len() != 1 || args[0].name.is_some() {
                    self.error(
                        code::TYPE_ARITY,
                        file,
                        span,
                        format!("`{}` takes one list", callee.name),
                    )
                    .label("wrong arguments")
                    .help(format!("write `{}(xs)`", callee.name))
                    .emit();
                    return None;
                }
                let arg = At::new(file, &args[0].value);
                let items = match self.eval(arg, env)? {
                    Value::List(items) => items,
                    v => return self.mismatch(arg, "a list", &v),
                };
                let n = items.len();
                let empty = |cx: &mut Self| {
                    cx.error(
                        code::RANGE_VALUE,
                        file,
                        span,
                        format!("`{}` of an empty list", callee.name),
                    )
                    .label("the list is empty")
                    .help("check the list's length with `require len(xs) > 0`")
                    .emit();
                    None
                };
                match callee.name.as_str() {
                    "len" => Some(Value::Int(n as i64)),
                    _ if n == 0 => empty(self),
                    "first" => items.into_iter().next(),
                    "last" => items.into_iter().last(),
                    "init" => Some(Value::List(items[..n - 1].to_vec())),
                    "tail" => Some(Value::List(items[1..].to_vec())),
                    f => {
                        let mut nums = Vec::new();
                        for v in &items {
                            match v.as_f64() {
                                Some(x) => nums.push(x),
                                None => return self.mismatch(arg, "a list of numbers", v),
                            }
                        }
                        let pick = if f == "min" { f64::min } else { f64::max };
                        let best = nums.iter().copied().fold(nums[0], pick);
                        items.into_iter().find(|v| v.as_f64() == Some(best))
                    }
                }
            }
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    file,
                    span,
                    format!("{} cannot be used as a value here", at.expr.describe()),
                )
                .label("not a plain value")
                .help("use a number, a string, a boolean or a list here")
                .emit();
                None
            }
        }
    }

    pub fn eval_int(&mut self, at: At<'p>, env: &Env) -> Option<i64> {
        match self.eval(at, env)? {
            Value::Int(i) => Some(i),
            v => self.mismatch(at, "an integer", &v),
        }
    }

    pub fn mismatch<T>(&mut self, at: At<'p>, expected: &str, found: &Value) -> Option<T> {
        self.error(
            code::TYPE_MISMATCH,
            at.file,
            at.span(),
            format!("expected {expected}, found {}", found.type_name()),
        )
        .label(format!("this is {} ({found})", found.type_name()))
        .help(format!("write {expected} here"))
        .emit();
        None
    }

    fn overflow<T>(&mut self, at: At<'p>) -> Option<T> {
        self.error(
            code::RANGE_ARITHMETIC,
            at.file,
            at.span(),
            "integer overflow",
        )
        .label("this overflows a 64-bit integer")
        .help("use smaller numbers")
        .emit();
        None
    }

    fn binary(&mut self, at: At<'p>, op: BinOp, l: Value, r: Value) -> Option<Value> {
        use BinOp::*;
        use Value::*;
        match (op, l, r) {
            (And, Bool(a), Bool(b)) => Some(Bool(a && b)),
            (Or, Bool(a), Bool(b)) => Some(Bool(a || b)),
            (And | Or, a, b) => {
                let bad = if matches!(a, Bool(_)) { b } else { a };
                self.mismatch(at, "a condition (true or false)", &bad)
            }
            (Eq, a, b) => Some(Bool(
                a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64()),
            )),
            (Ne, a, b) => Some(Bool(
                !(a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64())),
            )),
            (op, Int(a), Int(b)) => {
                let v = match op {
                    Add => a.checked_add(b),
                    Sub => a.checked_sub(b),
                    Mul => a.checked_mul(b),
                    Div | Mod if b == 0 => {
                        self.error(
                            code::RANGE_ARITHMETIC,
                            at.file,
                            at.span(),
                            "division by zero",
                        )
                        .label("the divisor is 0")
                        .help("check the parameters this expression uses")
                        .emit();
                        return None;
                    }
                    Div => a.checked_div(b),
                    Mod => a.checked_rem(b),
                    Lt => return Some(Bool(a < b)),
                    Le => return Some(Bool(a <= b)),
                    Gt => return Some(Bool(a > b)),
                    _ => return Some(Bool(a >= b)),
                };
                v.map(Int).or_else(|| self.overflow(at))
            }
            (op, a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => Some(match op {
                    Add => Float(x + y),
                    Sub => Float(x - y),
                    Mul => Float(x * y),
                    Div => Float(x / y),
                    Mod => Float(x % y),
                    Lt => Bool(x < y),
                    Le => Bool(x <= y),
                    Gt => Bool(x > y),
                    _ => Bool(x >= y),
                }),
                (None, _) => self.mismatch(
                    at,
                    &format!("a number on the left of `{}`", op.symbol()),
                    &a,
                ),
                _ => self.mismatch(
                    at,
                    &format!("a number on the right of `{}`", op.symbol()),
                    &b,
                ),
            },
        }
    }
}
