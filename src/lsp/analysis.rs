//! What the language server knows about one open file: the checker's view of it (with the
//! editor's unsaved text for every open file), and the answers to hover, definition and
//! completion at a position.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lsp_types::{
    CompletionItem, CompletionItemKind, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Location, NumberOrString, Position, Range, Url,
};

use crate::check::{check_files, Checked, Disk, Program, SourceProvider};
use crate::diag::{Diag, Severity};
use crate::lang::ast::{DefKind, Item};
use crate::lang::{FileId, Span};

/// Files as the editor has them: open ones from memory, the rest from disk.
pub struct Overlay<'a>(pub &'a HashMap<PathBuf, String>);

impl SourceProvider for Overlay<'_> {
    fn read(&self, path: &Path) -> Result<String, String> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        match self.0.get(path).or_else(|| self.0.get(&canonical)) {
            Some(text) => Ok(text.clone()),
            None => Disk.read(path),
        }
    }
}

/// One file checked as the root of a program.
pub struct Analysis {
    pub prog: Program,
    pub checked: Checked,
    pub diags: Vec<Diag>,
    pub root: FileId,
}

pub fn analyse(path: &Path, open: &HashMap<PathBuf, String>) -> Analysis {
    let (prog, checked, diags) = check_files(&[path.to_path_buf()], &Overlay(open));
    let root = prog.roots.first().copied().unwrap_or(FileId(0));
    Analysis {
        prog,
        checked,
        diags,
        root,
    }
}

/// The LSP position (line, UTF-16 column) of a byte offset.
pub fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.encode_utf16().count());
    Position::new(line as u32, column as u32)
}

/// The byte offset of an LSP position (clamped to the text).
pub fn offset(text: &str, pos: Position) -> usize {
    let mut start = 0;
    for _ in 0..pos.line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line = text[start..].split('\n').next().unwrap_or("");
    let mut units = 0;
    for (i, c) in line.char_indices() {
        if units >= pos.character as usize {
            return start + i;
        }
        units += c.len_utf16();
    }
    start + line.len()
}

fn range(text: &str, span: Span) -> Range {
    Range::new(position(text, span.start), position(text, span.end))
}

fn url_of(prog: &Program, file: FileId) -> Option<Url> {
    let f = prog.sources.get(file);
    match &f.path {
        Some(p) => Url::from_file_path(std::fs::canonicalize(p).unwrap_or(p.clone())).ok(),
        None => stdlib_copy(&f.name, &f.text).and_then(|p| Url::from_file_path(p).ok()),
    }
}

/// The embedded standard library has no file of its own: go-to-definition opens a read-only
/// copy written to the temporary directory.
fn stdlib_copy(name: &str, text: &str) -> Option<PathBuf> {
    let path = std::env::temp_dir().join("lthc-stdlib").join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(path.parent()?).ok()?;
        crate::store::atomic_write(&path, text.as_bytes()).ok()?;
        let mut perms = std::fs::metadata(&path).ok()?.permissions();
        perms.set_readonly(true);
        let _ = std::fs::set_permissions(&path, perms);
    }
    Some(path)
}

impl Analysis {
    fn text(&self, file: FileId) -> &str {
        &self.prog.sources.get(file).text
    }

    /// The root file's diagnostics (and those with no place, shown at its start).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let text = self.text(self.root);
        self.diags
            .iter()
            .filter(|d| d.file.is_none_or(|f| f == self.root))
            .map(|d| {
                let mut message = d.message.clone();
                if !d.label.is_empty() {
                    message += &format!(" ({})", d.label);
                }
                if let Some(h) = &d.help {
                    message += &format!("\nhelp: {h}");
                }
                let related: Vec<DiagnosticRelatedInformation> = d
                    .related
                    .iter()
                    .filter_map(|r| {
                        Some(DiagnosticRelatedInformation {
                            location: Location::new(
                                url_of(&self.prog, r.file)?,
                                range(self.text(r.file), r.span),
                            ),
                            message: r.label.clone(),
                        })
                    })
                    .collect();
                Diagnostic {
                    range: range(
                        text,
                        if d.file.is_some() {
                            d.span
                        } else {
                            Span::default()
                        },
                    ),
                    severity: Some(match d.severity {
                        Severity::Error => DiagnosticSeverity::ERROR,
                        Severity::Warning => DiagnosticSeverity::WARNING,
                    }),
                    code: Some(NumberOrString::String(d.code.to_string())),
                    source: Some("lthc".into()),
                    message,
                    related_information: (!related.is_empty()).then_some(related),
                    ..Default::default()
                }
            })
            .collect()
    }

    /// The word (name, keyword or unit) at `pos` in the root file.
    fn word_at(&self, pos: Position) -> Option<(String, Span)> {
        let text = self.text(self.root);
        let at = offset(text, pos);
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_word(c))
            .last()
            .map_or(at, |(i, _)| i);
        let end = at
            + text[at..]
                .find(|c: char| !is_word(c))
                .unwrap_or(text.len() - at);
        (end > start).then(|| (text[start..end].to_string(), Span::new(start, end)))
    }

    /// The definition named `name` that the root file can see (itself and its imports).
    fn definition_of(&self, name: &str) -> Option<(FileId, DefKind, Span, Span)> {
        for file in self.prog.reachable(self.root) {
            for item in &self.prog.modules.get(file.0)?.items {
                if let Item::Def(d) = item {
                    if d.name.name == name {
                        return Some((file, d.kind, d.name.span, d.span));
                    }
                }
            }
        }
        None
    }

    pub fn definition(&self, pos: Position) -> Option<Location> {
        let (word, _) = self.word_at(pos)?;
        let (file, _, name_span, _) = self.definition_of(&word)?;
        Some(Location::new(
            url_of(&self.prog, file)?,
            range(self.text(file), name_span),
        ))
    }

    pub fn hover(&self, pos: Position) -> Option<(String, Range)> {
        let (word, span) = self.word_at(pos)?;
        let here = range(self.text(self.root), span);
        if let Some(meaning) = unit_meaning(&word, self.text(self.root), span) {
            return Some((meaning.to_string(), here));
        }
        let (file, kind, _, def_span) = self.definition_of(&word)?;
        let mut out = format!("**{}** `{word}`", kind.word());
        if kind == DefKind::Network {
            if let Some(n) = self.checked.networks.iter().find(|n| n.definition == word) {
                let s = n.stats();
                out += &format!(
                    "\n\n| | |\n|---|---:|\n| input | {:?} |\n| parameters | {} |\n| prunable weights | {} |\n| batch-norm statistics | {} |\n| forward MACs | {} |",
                    n.input,
                    crate::plan::thousands(s.parameters),
                    crate::plan::thousands(s.prunable),
                    crate::plan::thousands(s.buffers),
                    crate::plan::thousands(s.flops),
                );
                // Its prunable layers (what masks are made of), the first 24 of them.
                let layers = n.prunable();
                out += "\n\n| prunable layer | weights |\n|---|---:|";
                for l in layers.iter().take(24) {
                    let labels = if l.labels.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", l.labels.join(", "))
                    };
                    out += &format!(
                        "\n| `{}`{labels} | {} |",
                        l.name,
                        crate::plan::thousands(l.weights)
                    );
                }
                if layers.len() > 24 {
                    out += &format!("\n| … {} more | |", layers.len() - 24);
                }
            }
        }
        out += &self.in_use(&word, kind);
        let source = self.prog.sources.snippet(file, def_span);
        let shown: String = source.lines().take(30).collect::<Vec<_>>().join("\n");
        out += &format!("\n\n```lth\n{shown}\n```");
        Some((out, here))
    }

    /// The experiments of the root file whose definition names `name` (as a whole word).
    fn experiments_using(&self, name: &str) -> Vec<&crate::check::ExperimentSpec> {
        let mut users = Vec::new();
        for item in &self.prog.modules[self.root.0].items {
            let Item::Def(d) = item else { continue };
            if d.kind != DefKind::Experiment {
                continue;
            }
            let text = self.prog.sources.snippet(self.root, d.span);
            let whole_word = text.match_indices(name).any(|(i, _)| {
                let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
                !text[..i].ends_with(word) && !text[i + name.len()..].starts_with(word)
            });
            if whole_word {
                users.extend(
                    self.checked
                        .experiments
                        .iter()
                        .filter(|e| e.name == d.name.name),
                );
            }
        }
        users
    }

    /// A recipe's schedule in numbers, a pruning's density per level, an experiment's shape:
    /// as the experiments of this file that use it have them.
    fn in_use(&self, name: &str, kind: DefKind) -> String {
        let users = if kind == DefKind::Experiment {
            self.checked
                .experiments
                .iter()
                .filter(|e| e.name == name)
                .collect()
        } else {
            self.experiments_using(name)
        };
        let mut lines: Vec<String> = Vec::new();
        for e in users {
            let r = &e.recipe;
            let line = match kind {
                DefKind::Recipe => {
                    let mut l = format!(
                        "on `{}`: {} iterations per epoch; {} iterations = {:.1} epochs",
                        e.dataset.name,
                        crate::plan::thousands(r.iterations_per_epoch),
                        crate::plan::thousands(r.iterations),
                        r.iterations as f64 / r.iterations_per_epoch.max(1) as f64
                    );
                    if r.warmup > 0 {
                        l += &format!("; warmup {} it", crate::plan::thousands(r.warmup));
                    }
                    if let crate::check::Schedule::Step { gamma, milestones } = &r.schedule {
                        let at: Vec<String> = milestones
                            .iter()
                            .map(|m| crate::plan::thousands(*m))
                            .collect();
                        l += &format!("; rate × {gamma} at {} it", at.join(", "));
                    }
                    l
                }
                DefKind::Pruning => {
                    let Some(p) = &e.prune else { continue };
                    let levels: Vec<String> = p
                        .densities
                        .iter()
                        .enumerate()
                        .skip(1)
                        .map(|(l, d)| format!("{l}: {:.1}%", d * 100.0))
                        .collect();
                    format!(
                        "on `{}`, density after level {}",
                        e.network.display,
                        levels.join(", ")
                    )
                }
                DefKind::Experiment => format!(
                    "`{}`: `{}` on `{}`, {} iterations, {} levels, rewind to {:?} it, {} seed(s)",
                    e.instance,
                    e.network.display,
                    e.dataset.name,
                    crate::plan::thousands(r.iterations),
                    e.prune.as_ref().map_or(0, |p| p.levels),
                    e.rewind,
                    e.seeds.len()
                ),
                _ => return String::new(),
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            return match kind {
                DefKind::Recipe | DefKind::Pruning => {
                    "\n\nNo experiment in this file uses it: its numbers depend on the dataset and network it meets.".into()
                }
                _ => String::new(),
            };
        }
        let shown = lines.len().min(12);
        let mut out = String::from("\n");
        for l in &lines[..shown] {
            out += &format!("\n- {l}");
        }
        if lines.len() > shown {
            out += &format!("\n- … and {} more", lines.len() - shown);
        }
        out
    }

    pub fn completion(&self, pos: Position) -> Vec<CompletionItem> {
        let text = self.text(self.root);
        let at = offset(text, pos);
        let mut items = Vec::new();
        let mut add = |label: &str, kind: CompletionItemKind, detail: &str| {
            items.push(CompletionItem {
                label: label.to_string(),
                kind: Some(kind),
                detail: Some(detail.to_string()),
                ..Default::default()
            });
        };
        if let Some(kind) = enclosing_record(text, at) {
            for f in crate::check::record_fields(kind) {
                add(
                    f,
                    CompletionItemKind::FIELD,
                    &format!("{} field", kind.word()),
                );
            }
        }
        for k in KEYWORDS {
            add(k, CompletionItemKind::KEYWORD, "keyword");
        }
        for (u, meaning) in UNITS {
            add(u, CompletionItemKind::UNIT, meaning);
        }
        for file in self.prog.reachable(self.root) {
            for item in &self.prog.modules[file.0].items {
                if let Item::Def(d) = item {
                    add(&d.name.name, CompletionItemKind::REFERENCE, d.kind.word());
                }
            }
        }
        for (name, what) in BUILTINS {
            add(name, CompletionItemKind::FUNCTION, what);
        }
        items
    }
}

const KEYWORDS: &[&str] = &[
    "import",
    "network",
    "dataset",
    "recipe",
    "pruning",
    "experiment",
    "report",
    "executor",
    "with",
    "for",
    "until",
    "levels",
    "density",
    "in",
    "on",
    "as",
    "require",
    "sweep",
    "if",
    "then",
    "else",
    "true",
    "false",
    "and",
    "or",
    "mod",
    "by",
];

const UNITS: &[(&str, &str)] = &[
    ("it", "iterations: optimizer steps"),
    (
        "ep",
        "epochs: passes over the training set (iterations = epochs × train size / batch)",
    ),
];

/// Built-ins with their arguments, as the checker accepts them.
const BUILTINS: &[(&str, &str)] = &[
    ("sgd", "sgd(lr, momentum:, nesterov:)"),
    ("adam", "adam(lr, beta1:, beta2:, eps:)"),
    ("rmsprop", "rmsprop(lr, alpha:, momentum:, eps:)"),
    ("constant", "schedule: constant"),
    ("step", "schedule: step(factor, at: [milestones])"),
    ("linear", "schedule: linear(to: lr)"),
    ("exponential", "schedule: exponential(to: lr)"),
    (
        "magnitude",
        "pruning: magnitude(global|layerwise, rate, exclude: [layers])",
    ),
    ("random", "pruning: random(global|layerwise, rate)"),
    ("snip", "pruning: snip(global|layerwise, rate)"),
    (
        "random_reinit",
        "control: the same mask with a fresh initialisation",
    ),
    (
        "random_prune",
        "control: a random mask with the same per-layer proportions",
    ),
    ("accuracy", "measure: test accuracy"),
    ("stability", "measure: stability(pruning, data_order)"),
    (
        "interpolation",
        "measure: error along the line between two trained copies",
    ),
    ("plot", "report: plot(x:, y:, by: [fields], log_x:)"),
    ("dense", "layer: dense(out, bias:)"),
    (
        "conv",
        "layer: conv(out, kernel, stride:, padding:, bias:, groups:)",
    ),
    ("batchnorm", "layer: batchnorm"),
    ("relu", "layer: relu"),
    ("flatten", "layer: flatten"),
    ("global_avgpool", "layer: global_avgpool"),
    ("dropout", "layer: dropout(rate)"),
    (
        "maxpool",
        "layer: maxpool(kernel, stride:, padding:, ceil:)",
    ),
    (
        "avgpool",
        "layer: avgpool(kernel, stride:, padding:, ceil:)",
    ),
    ("repeat", "layer: repeat(n) { layers }"),
    (
        "residual",
        "layer: residual { layers } with an optional shortcut { layers }",
    ),
    ("concat", "layer: concat { branch { layers } ... }"),
    ("aux", "layer: aux { layers }, an auxiliary head"),
];

/// What a unit written in a quantity means (`500 it`, `2 ep`, `20%`).
fn unit_meaning(word: &str, text: &str, span: Span) -> Option<&'static str> {
    let follows_number = text[..span.start]
        .trim_end()
        .chars()
        .last()
        .is_some_and(|c| c.is_ascii_digit());
    match word {
        "it" if follows_number => Some("**it**: iterations, optimizer steps of one batch each"),
        "ep" if follows_number => Some(
            "**ep**: epochs, passes over the training set; iterations = epochs × train size / batch",
        ),
        w if w.ends_with('k') && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit()) => {
            Some("**k**: thousands (`30k it` = 30,000 iterations)")
        }
        _ => None,
    }
}

/// The kind of the record whose `{` encloses `at`: `recipe r {`, `experiment e {`, or `with {`
/// inside one of them.
fn enclosing_record(text: &str, at: usize) -> Option<DefKind> {
    let before = &text[..at.min(text.len())];
    let mut depth = 0i32;
    for (i, c) in before.char_indices().rev() {
        match c {
            '}' | ']' | ')' => depth += 1,
            '{' | '[' | '(' if depth > 0 => depth -= 1,
            '{' => {
                // The definition word that starts this statement.
                let line_start = before[..i].rfind('\n').map_or(0, |n| n + 1);
                let head = before[line_start..i].trim_start();
                let word = head.split_whitespace().next().unwrap_or("");
                // `train = r with {`, `data = d with {`: the field says what is derived.
                let field = head.split('=').next().unwrap_or("").trim();
                return match (word, field) {
                    (_, "train") if head.contains("with") => Some(DefKind::Recipe),
                    (_, "data") if head.contains("with") => Some(DefKind::Dataset),
                    (word, _) => match word {
                        "dataset" => Some(DefKind::Dataset),
                        "recipe" => Some(DefKind::Recipe),
                        "experiment" => Some(DefKind::Experiment),
                        "report" => Some(DefKind::Report),
                        "executor" => Some(DefKind::Executor),
                        _ => enclosing_record(text, line_start),
                    },
                };
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "a\n// é😀x\nb";
        let x = text.find('x').unwrap();
        let p = position(text, x);
        assert_eq!((p.line, p.character), (1, 6));
        assert_eq!(offset(text, p), x);
        assert_eq!(offset(text, Position::new(9, 0)), text.len());
    }

    #[test]
    fn the_enclosing_record_gives_the_fields() {
        let text =
            "recipe r {\n  batch = 1\n  \n}\nexperiment e {\n  train = r with {\n    \n  }\n}\n";
        assert_eq!(
            enclosing_record(text, text.find("  \n}").unwrap() + 2),
            Some(DefKind::Recipe)
        );
        assert_eq!(
            enclosing_record(text, text.find("    \n").unwrap() + 4),
            Some(DefKind::Recipe)
        );
        assert_eq!(enclosing_record(text, 0), None);
    }
}
