//! `lthc check`, `lthc plan`, `lthc show`.

use std::path::PathBuf;

use serde_json::json;

use super::Format;
use crate::check::{check_files, Checked, Disk, Program};
use crate::diag::{render_json, render_report, Diag};
use crate::plan;

/// Loads and checks; prints diagnostics. Returns the result when there were no errors.
pub(super) fn checked(
    files: &[PathBuf],
    format: Format,
    color: bool,
    json_on_success: bool,
) -> Result<(Program, Checked), i32> {
    let (prog, checked, diags) = check_files(files, &Disk);
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if format == Format::Json && (errors > 0 || json_on_success) {
        emit(&format!("{}\n", render_json(&diags, &prog.sources)));
    } else if !diags.is_empty() {
        eprint!("{}", render_report(&diags, &prog.sources, color));
    }
    if errors > 0 {
        if format == Format::Text {
            eprintln!("{}", summary(&diags));
        }
        return Err(1);
    }
    Ok((prog, checked))
}

fn summary(diags: &[Diag]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let mut s = format!("{errors} error{}", if errors == 1 { "" } else { "s" });
    if warnings > 0 {
        s += &format!(
            ", {warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        );
    }
    s
}

pub fn check(files: &[PathBuf], format: Format, color: bool) -> i32 {
    match checked(files, format, color, true) {
        Ok((prog, c)) => {
            if format == Format::Text {
                let names: std::collections::BTreeSet<&str> =
                    c.experiments.iter().map(|e| e.name.as_str()).collect();
                emit(&format!(
                    "ok: {} file{} ({} with imports), {} experiment{} ({} instance{}), {} network{}\n",
                    prog.roots.len(),
                    plural(prog.roots.len()),
                    prog.sources.len(),
                    names.len(),
                    plural(names.len()),
                    c.experiments.len(),
                    plural(c.experiments.len()),
                    c.networks.len(),
                    plural(c.networks.len()),
                ));
            }
            0
        }
        Err(code) => code,
    }
}

pub fn plan(files: &[PathBuf], format: Format, summary: bool, color: bool) -> i32 {
    match checked(files, format, color, false) {
        Ok((_, c)) => {
            let p = plan::build(&c.experiments);
            match format {
                Format::Text if summary => emit(&plan::render_summary(&p)),
                Format::Text => emit(&plan::render_tree(&p)),
                Format::Json => emit(
                    &(serde_json::to_string_pretty(&plan::render_json(&p)).unwrap_or_default()
                        + "\n"),
                ),
            }
            0
        }
        Err(code) => code,
    }
}

pub fn show(files: &[PathBuf], format: Format, color: bool) -> i32 {
    match checked(files, format, color, false) {
        Ok((_, c)) => {
            let rows: Vec<_> = c.networks.iter().map(|n| (n, n.stats())).collect();
            match format {
                Format::Json => {
                    let list: Vec<_> = rows
                        .iter()
                        .map(|(n, s)| {
                            json!({
                                "name": n.display,
                                "definition": n.definition,
                                "input": n.input,
                                "parameters": s.parameters,
                                "prunable_parameters": s.prunable,
                                "buffers": s.buffers,
                                "flops": s.flops,
                            })
                        })
                        .collect();
                    emit(
                        &(serde_json::to_string_pretty(&json!({ "networks": list }))
                            .unwrap_or_default()
                            + "\n"),
                    );
                }
                Format::Text => {
                    let width = rows
                        .iter()
                        .map(|(n, _)| n.display.len())
                        .max()
                        .unwrap_or(7)
                        .max(7);
                    let mut out = format!(
                        "{:<width$}  {:>14}  {:>7}  {:>14}  {:>10}  {:>16}  input\n",
                        "network", "parameters", "≈", "prunable", "BN stats", "FLOPs (MACs)"
                    );
                    for (n, s) in &rows {
                        out += &format!(
                            "{:<width$}  {:>14}  {:>7}  {:>14}  {:>10}  {:>16}  {:?}\n",
                            n.display,
                            plan::thousands(s.parameters),
                            short(s.parameters),
                            plan::thousands(s.prunable),
                            plan::thousands(s.buffers),
                            plan::thousands(s.flops),
                            n.input
                        );
                    }
                    emit(&out);
                }
            }
            0
        }
        Err(code) => code,
    }
}

/// Three significant digits, truncated as the paper writes counts: 266,610 → 266K,
/// 20,040,522 → 20.0M, 1,248,424 → 1.24M.
pub fn short(n: u64) -> String {
    let (unit, scale) = match n {
        0..=999 => return n.to_string(),
        1_000..=999_999 => ("K", 1_000u64),
        1_000_000..=999_999_999 => ("M", 1_000_000),
        _ => ("G", 1_000_000_000),
    };
    let digits = (n / scale).to_string().len();
    let decimals = 3usize.saturating_sub(digits);
    let step = scale / 10u64.pow(decimals as u32);
    let truncated = (n / step) as f64 * step as f64 / scale as f64;
    format!("{truncated:.decimals$}{unit}")
}

/// Writes to stdout; a closed pipe (`lthc plan x | head`) is not an error worth a panic.
pub(super) fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
