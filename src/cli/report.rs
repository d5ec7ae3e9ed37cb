//! `lthc report`, and the reports at the end of `lthc run`: tables and plots from the cache.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::commands::{checked, emit};
use super::run::{cache_dir, results_table};
use super::Format;
use crate::check::{Checked, Program};
use crate::diag::{render_report, Diag};
use crate::plan;

/// Where reports go: `--out`, else `reports/` next to the first file.
pub fn out_dir(explicit: Option<PathBuf>, files: &[PathBuf]) -> PathBuf {
    explicit.unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.parent())
            .unwrap_or(Path::new("."))
            .join("reports")
    })
}

/// Renders every report of the files and writes its files; returns what to print. Experiments
/// that no report covers are listed record by record, as `lthc results` does.
pub(super) fn render(
    prog: &Program,
    c: &Checked,
    inputs: &crate::report::Inputs,
    out: &Path,
    html: bool,
) -> Result<String, Box<Diag>> {
    let records = inputs.records;
    let mut text = String::new();
    let covered: Vec<&str> = c
        .reports
        .iter()
        .flat_map(|r| r.experiments.iter().map(String::as_str))
        .collect();
    let uncovered: Vec<Value> = records
        .iter()
        .filter(|r| {
            let instance = r["experiment"].as_str().unwrap_or_default();
            !c.experiments
                .iter()
                .any(|e| e.instance == instance && covered.contains(&e.name.as_str()))
        })
        .cloned()
        .collect();
    text += &results_table(&uncovered);
    for spec in &c.reports {
        let r = crate::report::build(spec, &c.experiments, &prog.sources, inputs);
        let dir = out.join(&r.name);
        let written = r.write(&dir, html)?;
        text += &r.terminal();
        // The files a reader opens: the plots and the page (the tables were just printed).
        let to_open: Vec<String> = written
            .iter()
            .filter(|w| w.extension().is_some_and(|e| e == "png" || e == "html"))
            .map(|w| format!("  {}\n", w.display()))
            .collect();
        text += &format!("  written to {}/:\n{}", dir.display(), to_open.concat());
    }
    Ok(text)
}

/// `lthc report`'s options.
pub struct ReportOptions {
    pub cache: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub html: bool,
}

pub fn report(files: &[PathBuf], o: ReportOptions, color: bool) -> i32 {
    let (prog, c) = match checked(files, Format::Text, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if c.reports.is_empty() {
        eprintln!("these files define no `report` blocks: `lthc results` lists their records");
    }
    let p = plan::build(&c.experiments);
    let cache = cache_dir(o.cache, files);
    let data_dir = o.data.unwrap_or_else(crate::data::data_dir);
    let (records, _) = crate::exec::results::collect(&p, &cache);
    let inputs = crate::report::Inputs {
        plan: &p,
        cache: &cache,
        data_dir: &data_dir,
        records: &records,
    };
    match render(&prog, &c, &inputs, &out_dir(o.out, files), o.html) {
        Ok(text) => {
            emit(&text);
            0
        }
        Err(d) => {
            eprint!("{}", render_report(&[*d], &Default::default(), color));
            1
        }
    }
}
