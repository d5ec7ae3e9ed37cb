//! The syntax tree. Every node keeps its span so that later passes can point at it.

use super::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Import(Import),
    Def(Box<Def>),
}

#[derive(Clone, Debug)]
pub struct Import {
    pub path: String,
    /// Span of the path string literal.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefKind {
    Network,
    Dataset,
    Recipe,
    Pruning,
    Experiment,
    Report,
    /// Where and with what resources a run's steps go (a Slurm cluster).
    Executor,
}

impl DefKind {
    pub fn word(self) -> &'static str {
        match self {
            DefKind::Network => "network",
            DefKind::Dataset => "dataset",
            DefKind::Recipe => "recipe",
            DefKind::Pruning => "pruning",
            DefKind::Experiment => "experiment",
            DefKind::Report => "report",
            DefKind::Executor => "executor",
        }
    }

    /// "a network", "an experiment".
    pub fn with_article(self) -> String {
        match self {
            DefKind::Experiment => "an experiment".into(),
            k => format!("a {}", k.word()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Def {
    pub kind: DefKind,
    pub name: Ident,
    /// Parameters (networks only).
    pub params: Vec<Param>,
    /// `on [c, h, w]`: the input a network is shown with (networks only).
    pub input: Option<Expr>,
    pub body: DefBody,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum DefBody {
    Layers(Vec<Layer>),
    Fields(Vec<Field>),
    /// `NAME = expr`: an alias or a derivation (`base with { ... }`).
    Alias(Expr),
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
    /// `sizes...` collects the remaining positional arguments into a list.
    pub variadic: bool,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub kind: LayerKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum LayerKind {
    /// `conv(64, 3, padding: 1)`, `relu`, `residual { ... }`, `block(32) as b1`.
    Call {
        name: Ident,
        args: Vec<Arg>,
        body: Option<Vec<Layer>>,
        label: Option<Ident>,
    },
    For {
        var: Ident,
        iter: Expr,
        body: Vec<Layer>,
    },
    Require {
        cond: Expr,
        message: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Iterations,
    Epochs,
    Percent,
}

impl Unit {
    pub fn word(self) -> &'static str {
        match self {
            Unit::Iterations => "it",
            Unit::Epochs => "ep",
            Unit::Percent => "%",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "mod",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClauseKind {
    /// `for 20 levels`
    For,
    /// `until 1.5% density`
    Until,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    /// A number as written; `is_int` when it has no fraction or exponent.
    Number {
        value: f64,
        is_int: bool,
        unit: Option<Unit>,
    },
    Str(String),
    Bool(bool),
    Ident(String),
    List(Vec<Expr>),
    Record(Vec<Field>),
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Range {
        start: Box<Expr>,
        end: Box<Expr>,
        step: Option<Box<Expr>>,
    },
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// `sweep [a, b]` / `sweep 1..4`: one experiment instance per value.
    Sweep(Box<Expr>),
    /// `base with { field = value }`
    With {
        base: Box<Expr>,
        fields: Vec<Field>,
    },
    /// `magnitude(global, 20%) for 20 levels`
    Clause {
        base: Box<Expr>,
        kind: ClauseKind,
        value: Box<Expr>,
        word: Ident,
    },
}

impl Expr {
    /// A short description of what kind of value this is, for error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            ExprKind::Number {
                unit: Some(Unit::Percent),
                ..
            } => "a percentage".into(),
            ExprKind::Number { unit: Some(_), .. } => "a duration".into(),
            ExprKind::Number { is_int: true, .. } => "an integer".into(),
            ExprKind::Number { .. } => "a number".into(),
            ExprKind::Str(_) => "a string".into(),
            ExprKind::Bool(_) => "a boolean".into(),
            ExprKind::Ident(n) => format!("the name `{n}`"),
            ExprKind::List(_) => "a list".into(),
            ExprKind::Record(_) => "a record `{ ... }`".into(),
            ExprKind::Call { callee, .. } => format!("a call to `{}`", callee.name),
            ExprKind::Index { .. } => "an index expression".into(),
            ExprKind::Neg(_) | ExprKind::Binary { .. } => "an arithmetic expression".into(),
            ExprKind::Range { .. } => "a range".into(),
            ExprKind::If { .. } => "a conditional".into(),
            ExprKind::Sweep(_) => "a sweep".into(),
            ExprKind::With { .. } => "a `with` derivation".into(),
            ExprKind::Clause { .. } => "a clause".into(),
        }
    }
}
