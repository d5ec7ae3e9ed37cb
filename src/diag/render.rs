//! Turning [`Diag`]s into what users see: miette reports for terminals, JSON for editors.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

use super::{Diag, Severity};
use crate::lang::SourceMap;

/// A [`Diag`] with its file's text attached, ready for miette.
#[derive(Debug)]
pub struct Rendered {
    diag: Diag,
    /// A secondary place shown after the main report.
    advice: bool,
    source: Option<NamedSource<String>>,
    related: Vec<Rendered>,
}

impl Rendered {
    pub fn new(diag: &Diag, sources: &SourceMap) -> Rendered {
        let source = diag.file.map(|f| {
            let file = sources.get(f);
            NamedSource::new(file.name.clone(), file.text.clone())
        });
        // Secondary places in other files become related diagnostics, with their own source.
        let related = diag
            .related
            .iter()
            .filter(|r| Some(r.file) != diag.file)
            .map(|r| Rendered {
                diag: Diag {
                    code: diag.code,
                    severity: Severity::Warning,
                    message: r.label.clone(),
                    file: Some(r.file),
                    span: r.span,
                    label: r.label.clone(),
                    help: None,
                    related: Vec::new(),
                },
                advice: true,
                source: Some(NamedSource::new(
                    sources.get(r.file).name.clone(),
                    sources.get(r.file).text.clone(),
                )),
                related: Vec::new(),
            })
            .collect();
        Rendered {
            diag: diag.clone(),
            advice: false,
            source,
            related,
        }
    }
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered {}

impl Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            _ if self.advice => miette::Severity::Advice,
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let d = &self.diag;
        let primary = LabeledSpan::new_primary_with_span(
            (!d.label.is_empty()).then(|| d.label.clone()),
            (d.span.start, d.span.len()),
        );
        let secondary = d
            .related
            .iter()
            .filter(|r| Some(r.file) == d.file)
            .map(|r| {
                LabeledSpan::new_with_span(Some(r.label.clone()), (r.span.start, r.span.len()))
            });
        Some(Box::new(std::iter::once(primary).chain(secondary)))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
    }
}

/// Every diagnostic as miette's graphical report, one after another.
pub fn render_report(diags: &[Diag], sources: &SourceMap, color: bool) -> String {
    let handler = if color {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
    } else {
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
    };
    let mut out = String::new();
    for d in diags {
        let r = Rendered::new(d, sources);
        let _ = handler.render_report(&mut out, &r);
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonSpan {
    offset: usize,
    length: usize,
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct JsonRelated {
    file: String,
    span: JsonSpan,
    label: String,
}

#[derive(Serialize)]
struct JsonDiag {
    code: &'static str,
    severity: Severity,
    message: String,
    file: Option<String>,
    span: Option<JsonSpan>,
    label: String,
    help: Option<String>,
    related: Vec<JsonRelated>,
}

fn json_span(sources: &SourceMap, file: crate::lang::FileId, span: crate::lang::Span) -> JsonSpan {
    let (line, column) = sources.line_col(file, span.start);
    JsonSpan {
        offset: span.start,
        length: span.len(),
        line,
        column,
    }
}

/// `{"diagnostics": [...]}` for editors (documented in docs/diagnostics.md).
pub fn render_json(diags: &[Diag], sources: &SourceMap) -> serde_json::Value {
    let list: Vec<JsonDiag> = diags
        .iter()
        .map(|d| JsonDiag {
            code: d.code,
            severity: d.severity,
            message: d.message.clone(),
            file: d.file.map(|f| sources.get(f).name.clone()),
            span: d.file.map(|f| json_span(sources, f, d.span)),
            label: d.label.clone(),
            help: d.help.clone(),
            related: d
                .related
                .iter()
                .map(|r| JsonRelated {
                    file: sources.get(r.file).name.clone(),
                    span: json_span(sources, r.file, r.span),
                    label: r.label.clone(),
                })
                .collect(),
        })
        .collect();
    serde_json::json!({ "diagnostics": list })
}
