//! pest parse tree → [`ast`](super::ast). Syntax errors become diagnostics; nothing here panics
//! on user input (the grammar guarantees the shape of every pair we unwrap).

use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

use super::ast::*;
use super::source::{FileId, Span};
use super::syntax_error::syntax_error;
use crate::diag::{code, Diag};

#[derive(Parser)]
#[grammar = "../grammar/lth.pest"]
pub(super) struct LthParser;

/// Parses one file. On a syntax error returns the diagnostic for the first one.
pub fn parse(file: FileId, text: &str) -> Result<Module, Box<Diag>> {
    let mut pairs =
        LthParser::parse(Rule::file, text).map_err(|e| Box::new(syntax_error(file, text, e)))?;
    let root = pairs.next().expect("grammar: file");
    let mut b = Builder {
        file,
        errors: Vec::new(),
        text,
        comments: comment_ranges(text),
    };
    let mut items = Vec::new();
    for p in root.into_inner() {
        match p.as_rule() {
            Rule::import => items.push(Item::Import(b.import(p))),
            Rule::network_def => items.push(Item::Def(Box::new(b.network_def(p)))),
            Rule::record_def => items.push(Item::Def(Box::new(b.record_def(p)))),
            _ => {}
        }
    }
    match b.errors.into_iter().next() {
        Some(e) => Err(Box::new(e)),
        None => Ok(Module { items }),
    }
}

struct Builder<'t> {
    file: FileId,
    errors: Vec<Diag>,
    text: &'t str,
    /// Byte ranges of comments, sorted, for trimming spans.
    comments: Vec<(usize, usize)>,
}

/// Where comments are, found by a small scan that knows about strings.
fn comment_ranges(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' | b'/' if b[i] == b'#' || b.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                out.push((start, i));
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                out.push((start, i));
            }
            _ => i += 1,
        }
    }
    out
}

impl Builder<'_> {
    /// A pair's span without the whitespace and comments pest skips after its last token.
    fn span_of(&self, p: &Pair<Rule>) -> Span {
        let start = p.as_span().start();
        let mut end = p.as_span().end();
        let bytes = self.text.as_bytes();
        loop {
            while end > start && bytes[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            match self.comments.iter().find(|(s, e)| *e == end && *s >= start) {
                Some((s, _)) => end = *s,
                None => break,
            }
        }
        Span::new(start, end)
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span_of(&p),
        }
    }

    fn import(&mut self, p: Pair<Rule>) -> Import {
        let s = p.into_inner().nth(1).expect("grammar: import string");
        Import {
            span: self.span_of(&s),
            path: unescape(s.into_inner().next().map_or("", |i| i.as_str())),
        }
    }

    fn network_def(&mut self, p: Pair<Rule>) -> Def {
        let span = self.span_of(&p);
        let mut inner = p.into_inner();
        inner.next(); // keyword
        let name = self.ident(inner.next().expect("grammar: name"));
        let mut params = Vec::new();
        let mut input = None;
        let mut body = DefBody::Layers(Vec::new());
        for q in inner {
            match q.as_rule() {
                Rule::params => params = q.into_inner().map(|x| self.param(x)).collect(),
                Rule::input_shape => input = q.into_inner().nth(1).map(|e| self.expr(e)),
                Rule::layer_block => body = DefBody::Layers(self.layer_block(q)),
                Rule::alias => {
                    body = DefBody::Alias(self.expr(q.into_inner().nth(1).expect("grammar: alias")))
                }
                _ => {}
            }
        }
        Def {
            kind: DefKind::Network,
            name,
            params,
            input,
            body,
            span,
        }
    }

    fn record_def(&mut self, p: Pair<Rule>) -> Def {
        let span = self.span_of(&p);
        let mut inner = p.into_inner();
        let kind = match inner.next().map(|k| k.as_str().to_string()).as_deref() {
            Some("dataset") => DefKind::Dataset,
            Some("recipe") => DefKind::Recipe,
            Some("pruning") => DefKind::Pruning,
            Some("experiment") => DefKind::Experiment,
            Some("executor") => DefKind::Executor,
            _ => DefKind::Report,
        };
        let name = self.ident(inner.next().expect("grammar: name"));
        let b = inner.next().expect("grammar: body");
        let body = match b.as_rule() {
            Rule::record => DefBody::Fields(self.fields(b)),
            _ => DefBody::Alias(self.expr(b.into_inner().nth(1).expect("grammar: alias"))),
        };
        Def {
            kind,
            name,
            params: Vec::new(),
            input: None,
            body,
            span,
        }
    }

    fn param(&mut self, p: Pair<Rule>) -> Param {
        let mut inner = p.into_inner();
        let name = self.ident(inner.next().expect("grammar: param name"));
        let mut param = Param {
            name,
            default: None,
            variadic: false,
        };
        if let Some(q) = inner.next() {
            match q.as_rule() {
                Rule::variadic => param.variadic = true,
                _ => param.default = Some(self.expr(q)),
            }
        }
        param
    }

    fn fields(&mut self, p: Pair<Rule>) -> Vec<Field> {
        p.into_inner()
            .map(|f| {
                let mut inner = f.into_inner();
                let name = self.ident(inner.next().expect("grammar: field name"));
                let value = self.expr(inner.nth(1).expect("grammar: field value"));
                Field { name, value }
            })
            .collect()
    }

    fn layer_block(&mut self, p: Pair<Rule>) -> Vec<Layer> {
        p.into_inner().map(|l| self.layer(l)).collect()
    }

    fn layer(&mut self, p: Pair<Rule>) -> Layer {
        let span = self.span_of(&p);
        let q = first(p);
        let kind = match q.as_rule() {
            Rule::require => {
                let mut inner = q.into_inner();
                inner.next();
                let cond = self.expr(inner.next().expect("grammar: condition"));
                let message = inner
                    .next()
                    .map(|s| unescape(s.into_inner().next().map_or("", |i| i.as_str())));
                LayerKind::Require { cond, message }
            }
            Rule::for_layer => {
                let mut inner = q.into_inner();
                inner.next();
                let var = self.ident(inner.next().expect("grammar: loop variable"));
                inner.next();
                let iter = self.expr(inner.next().expect("grammar: loop list"));
                let body = self.layer_block(inner.next().expect("grammar: loop body"));
                LayerKind::For { var, iter, body }
            }
            _ => {
                let mut inner = q.into_inner();
                let name = self.ident(inner.next().expect("grammar: layer name"));
                let mut args = Vec::new();
                let mut body = None;
                let mut label = None;
                for r in inner {
                    match r.as_rule() {
                        Rule::args => args = self.args(r),
                        Rule::layer_block => body = Some(self.layer_block(r)),
                        Rule::ident => label = Some(self.ident(r)),
                        _ => {}
                    }
                }
                LayerKind::Call {
                    name,
                    args,
                    body,
                    label,
                }
            }
        };
        Layer { kind, span }
    }

    fn args(&mut self, p: Pair<Rule>) -> Vec<Arg> {
        p.into_inner()
            .map(|a| {
                let q = first(a);
                match q.as_rule() {
                    Rule::named_arg => {
                        let mut inner = q.into_inner();
                        let name = self.ident(inner.next().expect("grammar: arg name"));
                        let value = self.expr(inner.next().expect("grammar: arg value"));
                        Arg {
                            name: Some(name),
                            value,
                        }
                    }
                    _ => Arg {
                        name: None,
                        value: self.expr(q),
                    },
                }
            })
            .collect()
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span_of(&p);
        match p.as_rule() {
            Rule::expr => {
                let mut inner = p.into_inner();
                let mut e = self.expr(inner.next().expect("grammar: expr"));
                for clause in inner {
                    let end = self.span_of(&clause).end;
                    let mut c = clause.into_inner();
                    let kind = match c.next().map(|k| k.as_rule()) {
                        Some(Rule::kw_for) => ClauseKind::For,
                        _ => ClauseKind::Until,
                    };
                    let value = self.expr(c.next().expect("grammar: clause value"));
                    let word = self.ident(c.next().expect("grammar: clause word"));
                    let start = e.span.start;
                    e = Expr {
                        kind: ExprKind::Clause {
                            base: Box::new(e),
                            kind,
                            value: Box::new(value),
                            word,
                        },
                        span: Span::new(start, end),
                    };
                }
                e
            }
            Rule::with_expr => {
                let mut inner = p.into_inner();
                let base = self.expr(inner.next().expect("grammar: with base"));
                match inner.nth(1) {
                    Some(rec) => Expr {
                        kind: ExprKind::With {
                            base: Box::new(base),
                            fields: self.fields(rec),
                        },
                        span,
                    },
                    None => base,
                }
            }
            Rule::logic | Rule::sum | Rule::product => self.binary_chain(p),
            Rule::compare => {
                let mut inner = p.into_inner();
                let lhs = self.expr(inner.next().expect("grammar: lhs"));
                match (inner.next(), inner.next()) {
                    (Some(op), Some(rhs)) => {
                        let op = match op.as_str() {
                            "==" => BinOp::Eq,
                            "!=" => BinOp::Ne,
                            "<=" => BinOp::Le,
                            ">=" => BinOp::Ge,
                            "<" => BinOp::Lt,
                            _ => BinOp::Gt,
                        };
                        Expr {
                            kind: ExprKind::Binary {
                                op,
                                lhs: Box::new(lhs),
                                rhs: Box::new(self.expr(rhs)),
                            },
                            span,
                        }
                    }
                    _ => lhs,
                }
            }
            Rule::range => {
                let mut inner = p.into_inner();
                let start = self.expr(inner.next().expect("grammar: range start"));
                match inner.next() {
                    Some(end) => {
                        let end = self.expr(end);
                        let step = inner.nth(1).map(|s| Box::new(self.expr(s)));
                        Expr {
                            kind: ExprKind::Range {
                                start: Box::new(start),
                                end: Box::new(end),
                                step,
                            },
                            span,
                        }
                    }
                    None => start,
                }
            }
            Rule::unary => {
                let inner: Vec<Pair<Rule>> = p.into_inner().collect();
                let negs = inner.len() - 1;
                let mut e = self.expr(inner.into_iter().last().expect("grammar: operand"));
                for _ in 0..negs {
                    e = Expr {
                        kind: ExprKind::Neg(Box::new(e)),
                        span,
                    };
                }
                e
            }
            Rule::postfix => {
                let mut inner = p.into_inner();
                let mut e = self.expr(inner.next().expect("grammar: primary"));
                for idx in inner {
                    let end = idx.as_span().end();
                    let index = self.expr(first(idx));
                    let start = e.span.start;
                    e = Expr {
                        kind: ExprKind::Index {
                            base: Box::new(e),
                            index: Box::new(index),
                        },
                        span: Span::new(start, end),
                    };
                }
                e
            }
            Rule::quantity => self.quantity(p),
            Rule::string => Expr {
                kind: ExprKind::Str(unescape(p.into_inner().next().map_or("", |i| i.as_str()))),
                span,
            },
            Rule::boolean => Expr {
                kind: ExprKind::Bool(p.as_str() == "true"),
                span,
            },
            Rule::ident => Expr {
                kind: ExprKind::Ident(p.as_str().to_string()),
                span,
            },
            Rule::list => Expr {
                kind: ExprKind::List(p.into_inner().map(|e| self.expr(e)).collect()),
                span,
            },
            Rule::record => Expr {
                kind: ExprKind::Record(self.fields(p)),
                span,
            },
            Rule::call => {
                let mut inner = p.into_inner();
                let callee = self.ident(inner.next().expect("grammar: callee"));
                let args = self.args(inner.next().expect("grammar: args"));
                Expr {
                    kind: ExprKind::Call { callee, args },
                    span,
                }
            }
            Rule::sweep => {
                let inner = self.expr(p.into_inner().nth(1).expect("grammar: sweep"));
                Expr {
                    kind: ExprKind::Sweep(Box::new(literal_range(inner))),
                    span,
                }
            }
            Rule::conditional => {
                let parts: Vec<Pair<Rule>> = p
                    .into_inner()
                    .filter(|q| q.as_rule() == Rule::expr)
                    .collect();
                let mut it = parts.into_iter().map(|q| Box::new(self.expr(q)));
                let (cond, then, otherwise) = (it.next(), it.next(), it.next());
                Expr {
                    kind: ExprKind::If {
                        cond: cond.expect("grammar: if"),
                        then: then.expect("grammar: then"),
                        otherwise: otherwise.expect("grammar: else"),
                    },
                    span,
                }
            }
            _ => Expr {
                kind: ExprKind::Bool(false),
                span,
            },
        }
    }

    /// `a + b - c`, `a * b`, `a and b`: left-associative chains.
    fn binary_chain(&mut self, p: Pair<Rule>) -> Expr {
        let mut inner = p.into_inner();
        let mut e = self.expr(inner.next().expect("grammar: operand"));
        while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
            let op = match op.as_str() {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "and" => BinOp::And,
                "or" => BinOp::Or,
                _ => BinOp::Mod,
            };
            let rhs = self.expr(rhs);
            let span = Span::new(e.span.start, rhs.span.end);
            e = Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(e),
                    rhs: Box::new(rhs),
                },
                span,
            };
        }
        e
    }

    fn quantity(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span_of(&p);
        let mut inner = p.into_inner();
        let num = inner.next().expect("grammar: number");
        let unit = inner.next().map(|u| match u.as_str() {
            "%" => Unit::Percent,
            "it" => Unit::Iterations,
            _ => Unit::Epochs,
        });
        let text = num.as_str();
        let (digits, scale) = match text.as_bytes().last() {
            Some(b'k') => (&text[..text.len() - 1], 1e3),
            Some(b'M') => (&text[..text.len() - 1], 1e6),
            _ => (text, 1.0),
        };
        let is_int =
            !digits.contains(['.', 'e', 'E']) || (scale > 1.0 && !digits.contains(['e', 'E']));
        let value = match digits.parse::<f64>() {
            Ok(v) if v.is_finite() => v * scale,
            _ => {
                self.errors.push(
                    Diag::error(
                        code::PARSE_NUMBER,
                        self.file,
                        span,
                        format!("`{text}` is not a number lthc can represent"),
                    )
                    .label("this number")
                    .help("write a finite number such as `1e-3` or `30k`"),
                );
                0.0
            }
        };
        let is_int = is_int && value.fract() == 0.0 && value.abs() < 9.0e15;
        Expr {
            kind: ExprKind::Number {
                value,
                is_int,
                unit,
            },
            span,
        }
    }
}

/// `sweep 1..4` and `sweep 0 it..2k it by 500 it`: a range of literal numbers becomes the
/// list of its values, so that every swept value is an expression of its own.
fn literal_range(e: Expr) -> Expr {
    let ExprKind::Range { start, end, step } = &e.kind else {
        return e;
    };
    let num = |x: &Expr| match x.kind {
        ExprKind::Number {
            value,
            is_int: true,
            unit,
        } => Some((value, unit)),
        _ => None,
    };
    let (Some((a, ua)), Some((b, ub))) = (num(start), num(end)) else {
        return e;
    };
    let (s, us) = match step.as_deref().map(num) {
        Some(Some((s, us))) => (s, us),
        Some(None) => return e,
        None => (1.0, ua),
    };
    if ua != ub || ua != us || s <= 0.0 || (b - a) / s > 10_000.0 {
        return e;
    }
    let mut items = Vec::new();
    let mut v = a;
    while v <= b {
        items.push(Expr {
            kind: ExprKind::Number {
                value: v,
                is_int: true,
                unit: ua,
            },
            span: e.span,
        });
        v += s;
    }
    Expr {
        kind: ExprKind::List(items),
        span: e.span,
    }
}

fn first(p: Pair<Rule>) -> Pair<Rule> {
    p.into_inner().next().expect("grammar: non-empty rule")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
