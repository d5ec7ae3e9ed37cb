//! Diagnostics as data: every user error is a [`Diag`] with a stable code, a span, a label and a
//! help line. Rendering (miette's fancy output or JSON) happens only at the edge, in the CLI.

pub mod code;
mod render;

pub use render::{render_json, render_report, Rendered};

use crate::lang::{FileId, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A secondary place that helps explain a diagnostic (the earlier definition of a duplicate, the
/// `require` that failed inside a network, ...).
#[derive(Clone, Debug)]
pub struct Related {
    pub file: FileId,
    pub span: Span,
    pub label: String,
}

#[derive(Clone, Debug)]
pub struct Diag {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// `None` for problems that belong to no file (a command-line file that cannot be read).
    pub file: Option<FileId>,
    pub span: Span,
    pub label: String,
    pub help: Option<String>,
    pub related: Vec<Related>,
}

impl Diag {
    pub fn error(code: &'static str, file: FileId, span: Span, message: impl Into<String>) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            file: Some(file),
            span,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    /// A problem with no place in any source file.
    pub fn global(code: &'static str, message: impl Into<String>) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            file: None,
            span: Span::default(),
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Diag {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, file: FileId, span: Span, label: impl Into<String>) -> Diag {
        self.related.push(Related {
            file,
            span,
            label: label.into(),
        });
        self
    }

    pub fn warning(mut self) -> Diag {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// "did you mean `x`?" for a misspelt name, if one of `candidates` is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= limit || c.eq_ignore_ascii_case(name))
        .min_by_key(|(d, c)| (*d, c.to_string()))
        .map(|(_, c)| c.to_string())
}

/// The help line for an unknown name: a suggestion if there is one, else the list of choices.
pub fn unknown_name_help(name: &str, what: &str, candidates: &[&str]) -> String {
    if let Some(s) = did_you_mean(name, candidates.iter().copied()) {
        return format!("did you mean `{s}`?");
    }
    if candidates.is_empty() {
        return format!("no {what} is defined; define one or import the file that does");
    }
    let mut sorted: Vec<&str> = candidates.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let shown: Vec<String> = sorted.iter().take(12).map(|c| format!("`{c}`")).collect();
    let more = if sorted.len() > 12 { ", ..." } else { "" };
    format!("known {what}s: {}{more}", shown.join(", "))
}
