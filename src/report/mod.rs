//! Reports: each `report` block's tables and plots, rendered from the results in the cache —
//! nothing here trains. Results the cache lacks show as missing, with the reason; the report is
//! written anyway (docs/results.md, "Reports").
//!
//! [`aggregate`] groups records over seeds, [`tickets`] applies the paper's winning-ticket
//! criterion, [`plot`] builds the figures' series, [`svg`] draws them and [`png`] rasterises them, [`format`] and
//! [`html`] write the tables and the page, [`missing`] says what is not there yet.

pub mod aggregate;
pub mod format;
pub mod html;
pub mod missing;
pub mod plot;
pub mod png;
pub mod svg;
pub mod tickets;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::check::{ExperimentSpec, ReportSpec};
use crate::diag::{code, Diag};
use crate::lang::source::SourceMap;
use crate::plan::Plan;

/// One report, computed.
pub struct Report {
    pub name: String,
    pub title: String,
    pub table: aggregate::Table,
    pub tickets: Vec<tickets::Ticket>,
    pub plots: Vec<plot::Plot>,
    pub missing: Vec<missing::Missing>,
    /// The `.lth` files that define its experiments: (name, text).
    pub sources: Vec<(String, String)>,
}

/// Where a report's results come from: the plan, its cache, and the datasets' directory (to
/// say which missing results wait for a dataset that is not there).
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub cache: &'a Path,
    pub data_dir: &'a Path,
    /// Every record of the plan that is in the cache.
    pub records: &'a [Value],
}

/// The report `spec` over the records in the cache.
pub fn build(
    spec: &ReportSpec,
    experiments: &[ExperimentSpec],
    sources: &SourceMap,
    inputs: &Inputs,
) -> Report {
    let ours: Vec<&ExperimentSpec> = experiments
        .iter()
        .filter(|e| spec.experiments.contains(&e.name))
        .collect();
    let instances: HashSet<String> = ours.iter().map(|e| e.instance.clone()).collect();
    let records: Vec<Value> = inputs
        .records
        .iter()
        .filter(|r| {
            r["experiment"]
                .as_str()
                .is_some_and(|e| instances.contains(e))
        })
        .cloned()
        .collect();
    let specs = if spec.plots.is_empty() {
        plot::defaults(&records)
    } else {
        spec.plots.clone()
    };
    let mut plots: Vec<plot::Plot> = specs
        .iter()
        .map(|p| plot::from_spec(p, &records))
        .chain(
            ["interpolation_test_errors", "interpolation_train_errors"]
                .iter()
                .filter_map(|errors| plot::along_line(&records, errors))
                .filter(|_| spec.plots.is_empty()),
        )
        .collect();
    unique_files(&mut plots);
    let mut files: Vec<String> = Vec::new();
    for e in &ours {
        if !files.contains(&e.file) {
            files.push(e.file.clone());
        }
    }
    Report {
        name: spec.name.clone(),
        title: spec.title.clone(),
        table: aggregate::table(&records, &spec.rows, &spec.columns),
        tickets: tickets::tickets(&records, spec.tolerance),
        plots,
        missing: missing::missing(inputs.plan, inputs.cache, inputs.data_dir, &instances),
        sources: files
            .into_iter()
            .filter_map(|f| {
                let id = sources.find_name(&f)?;
                Some((f, sources.get(id).text.clone()))
            })
            .collect(),
    }
}

/// Reports are for sharing (a web server, a colleague): not the private mode of a fresh temp file.
fn readable_by_all(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    let _ = path;
    Ok(())
}

/// Two plots of the same axes (different `by`) get numbered file names.
fn unique_files(plots: &mut [plot::Plot]) {
    let mut seen: Vec<String> = Vec::new();
    for p in plots.iter_mut() {
        let base = p.file.clone();
        let mut n = 1;
        while seen.contains(&p.file) {
            n += 1;
            p.file = format!("{base}_{n}");
        }
        seen.push(p.file.clone());
    }
}

impl Report {
    /// What the terminal shows: the tables, then what is missing.
    pub fn terminal(&self) -> String {
        let mut out = format::terminal(&self.title, &self.table, &self.tickets);
        for m in &self.missing {
            out += &format!("  missing: {}\n", m.line());
        }
        out
    }

    fn missing_lines(&self) -> Vec<String> {
        self.missing.iter().map(missing::Missing::line).collect()
    }

    /// Writes the report's files under `dir` (atomically); returns their paths.
    pub fn write(&self, dir: &Path, with_html: bool) -> Result<Vec<PathBuf>, Box<Diag>> {
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "table.md".into(),
                format::markdown_file(&self.title, &self.table, &self.tickets).into_bytes(),
            ),
            ("table.csv".into(), format::csv(&self.table).into_bytes()),
            (
                "report.json".into(),
                (serde_json::to_string_pretty(&format::json(
                    &self.name,
                    &self.title,
                    &self.table,
                    &self.tickets,
                    &self.missing_lines(),
                ))
                .unwrap_or_default()
                    + "\n")
                    .into_bytes(),
            ),
        ];
        let mut svgs = Vec::new();
        for p in &self.plots {
            let svg = svg::render(p, &self.title);
            let png = png::render(&svg).map_err(|e| {
                Box::new(
                    Diag::global(code::REPORT_IO, format!("cannot draw {}.png: {e}", p.file))
                        .help("this is a bug in lthc: please report it with the .lth file"),
                )
            })?;
            files.push((format!("{}.svg", p.file), svg.clone().into_bytes()));
            files.push((format!("{}.png", p.file), png));
            svgs.push(svg);
        }
        if with_html {
            files.push(("index.html".into(), html::page(self, &svgs).into_bytes()));
        }
        let io = |path: &Path, e: std::io::Error| {
            Box::new(
                Diag::global(
                    code::REPORT_IO,
                    format!("cannot write {}: {e}", path.display()),
                )
                .help("check that the output directory (--out) is writable"),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut written = Vec::new();
        for (name, bytes) in files {
            let path = dir.join(name);
            crate::store::atomic_write(&path, &bytes).map_err(|e| io(&path, e))?;
            readable_by_all(&path).map_err(|e| io(&path, e))?;
            written.push(path);
        }
        Ok(written)
    }
}
