//! `report` definitions: which results become which table columns and plots.

use super::spec::{PlotSpec, ReportSpec, RESULT_FIELDS};
use super::{At, Checker, DefId};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{DefKind, ExprKind};

pub(crate) const FIELDS: &[&str] = &[
    "title",
    "experiments",
    "rows",
    "columns",
    "plots",
    "tolerance",
];

impl<'p> Checker<'p> {
    pub fn report(&mut self, id: DefId) -> Option<ReportSpec> {
        let name = self.defs[id.0].def.name.name.clone();
        let mut rec = self.def_record(id)?;
        let title = match rec.get("title") {
            Some(at) => self.string(at),
            None => Some(name.clone()),
        };
        let experiments = match rec.get("experiments") {
            Some(at) => self.names_list(at),
            None => {
                rec.missing(self, "experiments", "[lenet_imp]");
                None
            }
        };
        let rows = match rec.get("rows") {
            Some(at) => self.result_fields(at),
            None => Some(vec!["experiment".into(), "level".into()]),
        };
        let columns = match rec.get("columns") {
            Some(at) => self.result_fields(at),
            None => Some(vec!["density".into(), "test_accuracy".into()]),
        };
        let plots = match rec.get("plots") {
            Some(at) => self.plots(at),
            None => Some(Vec::new()),
        };
        let tolerance = match rec.get("tolerance") {
            Some(at) => self.fraction(at, "the winning-ticket tolerance"),
            None => Some(0.0),
        };
        rec.finish(self, FIELDS);
        Some(ReportSpec {
            name,
            title: title?,
            experiments: experiments?,
            rows: rows?,
            columns: columns?,
            plots: plots?,
            tolerance: tolerance?,
        })
    }

    fn names_list(&mut self, at: At<'p>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for item in self.items(at)? {
            let item = self.resolve(item)?;
            let ExprKind::Ident(n) = item.kind() else {
                return self.mismatch(
                    item,
                    "an experiment name",
                    &super::eval::Value::Str(
                        self.prog.sources.snippet(item.file, item.span()).into(),
                    ),
                );
            };
            self.lookup(item.file, n, item.span(), DefKind::Experiment)?;
            out.push(n.clone());
        }
        Some(out)
    }

    fn result_field(&mut self, at: At<'p>) -> Option<String> {
        self.symbol(at, RESULT_FIELDS, "result field")
            .map(str::to_string)
    }

    fn result_fields(&mut self, at: At<'p>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for item in self.items(at)? {
            out.push(self.result_field(item)?);
        }
        Some(out)
    }

    fn plots(&mut self, at: At<'p>) -> Option<Vec<PlotSpec>> {
        let mut out = Vec::new();
        for item in self.items(at)? {
            let c = self.call_form(item, "a plot")?;
            if c.name != "plot" {
                self.error(
                    code::NAME_UNKNOWN,
                    c.file,
                    c.name_span,
                    format!("unknown plot kind `{}`", c.name),
                )
                .label("not a plot")
                .help(unknown_name_help(c.name, "plot kind", &["plot"]))
                .emit();
                return None;
            }
            let b = self.bind(&c, "`plot`", &["x", "y", "by", "log_x"], 2)?;
            let x = self.result_field(b.get("x")?)?;
            let y = self.result_field(b.get("y")?)?;
            let by = match b.get("by") {
                Some(a) => self.result_fields(a)?,
                None => Vec::new(),
            };
            let log_x = match b.get("log_x") {
                Some(a) => self.boolean(a)?,
                None => x == "density",
            };
            out.push(PlotSpec { x, y, by, log_x });
        }
        Some(out)
    }
}
