//! The checker: names, types, units, ranges and network shapes, with spans. It turns a loaded
//! [`Program`] into specs (networks elaborated to concrete layers, durations in iterations) that
//! the planner consumes, and reports every problem it finds rather than stopping at the first.

mod args;
mod dataset;
mod eval;
mod executor;
mod experiment;
mod layer_args;
mod layers;
pub mod loader;
pub mod netspec;
mod network;
mod pruning;
mod recipe;
mod record;
mod report;
pub mod spec;
mod sweep;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::diag::{code, unknown_name_help, Diag};
use crate::lang::ast::{Def, DefKind, Expr, ExprKind, Item};
use crate::lang::{FileId, Span};
pub use loader::{load, Disk, Memory, Program, SourceProvider};
pub use netspec::NetSpec;
pub use spec::*;

/// Index of a definition in [`Checker::defs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefId(pub usize);

/// The checked program: what the planner and `lthc show` need.
#[derive(Debug, Default)]
pub struct Checked {
    /// Experiments defined in the files the user named, one per sweep instance.
    pub experiments: Vec<ExperimentSpec>,
    /// Networks to list in `lthc show`: every network that can be built on its own (`on` shape,
    /// all parameters defaulted) and every instance an experiment uses.
    pub networks: Vec<NetSpec>,
    pub reports: Vec<ReportSpec>,
    /// Executor definitions, from the named files and the files they import.
    pub executors: Vec<ExecutorSpec>,
}

/// Loads and checks `paths`; returns the program (for rendering), the checked result and every
/// diagnostic, sorted by file and position.
pub fn check_files(
    paths: &[PathBuf],
    provider: &dyn SourceProvider,
) -> (Program, Checked, Vec<Diag>) {
    let prog = load(paths, provider);
    let (checked, diags) = check(&prog);
    (prog, checked, diags)
}

pub fn check(prog: &Program) -> (Checked, Vec<Diag>) {
    let mut cx = Checker::new(prog);
    let checked = cx.run();
    let mut diags = prog.diags.clone();
    diags.extend(cx.diags);
    // A network body error is found once per instantiation: report each distinct one once.
    let mut seen = HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.file, d.span.start, d.span.end, d.message.clone())));
    diags.sort_by_key(|d| (d.file.is_some(), d.file, d.span.start));
    (checked, diags)
}

pub(crate) struct DefEntry<'p> {
    pub file: FileId,
    pub def: &'p Def,
}

/// Shared state of one check: the definitions, the diagnostics so far, caches.
pub(crate) struct Checker<'p> {
    pub prog: &'p Program,
    pub defs: Vec<DefEntry<'p>>,
    pub by_name: HashMap<&'p str, DefId>,
    /// Files each file can see (itself and its transitive imports).
    visible: Vec<HashSet<FileId>>,
    pub diags: Vec<Diag>,
    pub net_cache: network::Cache,
    /// The value chosen for each `sweep` while one experiment instance is checked.
    pub sweep_choice: sweep::Choice<'p>,
}

impl<'p> Checker<'p> {
    fn new(prog: &'p Program) -> Checker<'p> {
        let mut cx = Checker {
            prog,
            defs: Vec::new(),
            by_name: HashMap::new(),
            visible: (0..prog.modules.len())
                .map(|f| prog.reachable(FileId(f)).into_iter().collect())
                .collect(),
            diags: Vec::new(),
            net_cache: Default::default(),
            sweep_choice: Default::default(),
        };
        // Imported files first, so that a clash is reported in the importing file.
        for f in import_order(prog) {
            for item in &prog.modules[f.0].items {
                if let Item::Def(def) = item {
                    cx.add_def(f, def);
                }
            }
        }
        cx
    }

    fn add_def(&mut self, file: FileId, def: &'p Def) {
        let id = DefId(self.defs.len());
        self.defs.push(DefEntry { file, def });
        if let Some(&prev) = self.by_name.get(def.name.name.as_str()) {
            let p = &self.defs[prev.0];
            let d = Diag::error(
                code::NAME_DUPLICATE,
                file,
                def.name.span,
                format!("`{}` is defined twice", def.name.name),
            )
            .label(format!("second definition of `{}`", def.name.name))
            .related(p.file, p.def.name.span, "first defined here")
            .help(
                "every network, dataset, recipe, pruning, experiment and report needs its own name",
            );
            self.diags.push(d);
            return;
        }
        self.by_name.insert(&def.name.name, id);
    }

    pub fn error(
        &mut self,
        code: &'static str,
        file: FileId,
        span: Span,
        message: impl Into<String>,
    ) -> DiagBuilder<'_, 'p> {
        DiagBuilder {
            cx: self,
            diag: Some(Diag::error(code, file, span, message)),
        }
    }

    /// Resolves `name` (used in `file` at `span`) to a definition of kind `kind`.
    pub fn lookup(&mut self, file: FileId, name: &str, span: Span, kind: DefKind) -> Option<DefId> {
        let Some(&id) = self.by_name.get(name) else {
            let candidates: Vec<&str> = self
                .defs
                .iter()
                .filter(|d| d.def.kind == kind && self.visible[file.0].contains(&d.file))
                .map(|d| d.def.name.name.as_str())
                .collect();
            let help = unknown_name_help(name, kind.word(), &candidates);
            self.error(
                code::NAME_UNKNOWN,
                file,
                span,
                format!("unknown {} `{name}`", kind.word()),
            )
            .label(format!("no {} is called `{name}`", kind.word()))
            .help(help)
            .emit();
            return None;
        };
        let entry = &self.defs[id.0];
        if entry.def.kind != kind {
            let (ef, es, found) = (
                entry.file,
                entry.def.name.span,
                entry.def.kind.with_article(),
            );
            self.error(
                code::NAME_WRONG_KIND,
                file,
                span,
                format!(
                    "`{name}` is {found}, but {} is expected here",
                    kind.with_article()
                ),
            )
            .label(format!("expected {}", kind.with_article()))
            .related(ef, es, format!("`{name}` is defined here as {found}"))
            .help(format!("use the name of {}", kind.with_article()))
            .emit();
            return None;
        }
        if !self.visible[file.0].contains(&entry.file) {
            let target = self.prog.sources.get(entry.file).name.clone();
            self.error(
                code::NAME_NOT_IMPORTED,
                file,
                span,
                format!("`{name}` is defined in `{target}`, which this file does not import"),
            )
            .label("not imported")
            .help(format!("add `import \"{target}\"` at the top of this file"))
            .emit();
            return None;
        }
        Some(id)
    }

    /// Names of defined things of `kind` visible from `file`, for suggestions.
    pub fn names_of(&self, file: FileId, kind: DefKind) -> Vec<&'p str> {
        self.defs
            .iter()
            .filter(|d| d.def.kind == kind && self.visible[file.0].contains(&d.file))
            .map(|d| d.def.name.name.as_str())
            .collect()
    }

    fn run(&mut self) -> Checked {
        let mut checked = Checked::default();
        // Every definition is checked on its own, so that errors in unused ones are found too.
        for i in 0..self.defs.len() {
            let (file, def) = (self.defs[i].file, self.defs[i].def);
            match def.kind {
                DefKind::Network => {
                    if let Some(net) = self.check_network_def(DefId(i)) {
                        checked.networks.push(net);
                    }
                }
                DefKind::Dataset => {
                    self.dataset(file, DefId(i));
                }
                DefKind::Recipe => {
                    self.recipe_def(DefId(i));
                }
                DefKind::Pruning => {
                    self.pruning_def(DefId(i));
                }
                DefKind::Experiment => {
                    let specs = self.experiment(DefId(i));
                    if self.prog.roots.contains(&file) {
                        checked.experiments.extend(specs);
                    }
                }
                DefKind::Executor => {
                    if let Some(e) = self.executor(DefId(i)) {
                        checked.executors.push(e);
                    }
                }
                DefKind::Report => {
                    if let Some(r) = self.report(DefId(i)) {
                        if self.prog.roots.contains(&file) {
                            checked.reports.push(r);
                        }
                    }
                }
            }
        }
        for e in &checked.experiments {
            if !checked
                .networks
                .iter()
                .any(|n| n.key() == e.network.key() && n.display == e.network.display)
            {
                checked.networks.push(e.network.clone());
            }
        }
        checked
    }
}

/// Every file after the files it imports (depth-first post-order from the roots).
fn import_order(prog: &Program) -> Vec<FileId> {
    fn visit(prog: &Program, f: FileId, seen: &mut Vec<bool>, out: &mut Vec<FileId>) {
        if std::mem::replace(&mut seen[f.0], true) {
            return;
        }
        for &d in &prog.imports[f.0] {
            visit(prog, d, seen, out);
        }
        out.push(f);
    }
    let mut seen = vec![false; prog.modules.len()];
    let mut out = Vec::new();
    for f in prog
        .roots
        .iter()
        .copied()
        .chain((0..prog.modules.len()).map(FileId))
    {
        visit(prog, f, &mut seen, &mut out);
    }
    out
}

/// Builds a diagnostic fluently and pushes it on `emit`.
pub(crate) struct DiagBuilder<'c, 'p> {
    cx: &'c mut Checker<'p>,
    diag: Option<Diag>,
}

impl DiagBuilder<'_, '_> {
    pub fn label(mut self, l: impl Into<String>) -> Self {
        self.diag = self.diag.take().map(|d| d.label(l));
        self
    }
    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.diag = self.diag.take().map(|d| d.help(h));
        self
    }
    pub fn related(mut self, file: FileId, span: Span, l: impl Into<String>) -> Self {
        self.diag = self.diag.take().map(|d| d.related(file, span, l));
        self
    }
    pub fn emit(mut self) {
        if let Some(d) = self.diag.take() {
            self.cx.diags.push(d);
        }
    }
}

impl Drop for DiagBuilder<'_, '_> {
    fn drop(&mut self) {
        if let Some(d) = self.diag.take() {
            self.cx.diags.push(d);
        }
    }
}

/// An expression and the file it is written in.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub file: FileId,
    pub expr: &'a Expr,
}

impl<'a> At<'a> {
    pub fn new(file: FileId, expr: &'a Expr) -> At<'a> {
        At { file, expr }
    }
    pub fn span(&self) -> Span {
        self.expr.span
    }
    pub fn kind(&self) -> &'a ExprKind {
        &self.expr.kind
    }
}

/// The fields a record of `kind` may have (what an editor completes inside one).
pub fn record_fields(kind: DefKind) -> &'static [&'static str] {
    match kind {
        DefKind::Experiment => experiment::FIELDS,
        DefKind::Recipe => recipe::FIELDS,
        DefKind::Dataset => dataset::FIELDS,
        DefKind::Report => report::FIELDS,
        DefKind::Executor => executor::FIELDS,
        DefKind::Network | DefKind::Pruning => &[],
    }
}
