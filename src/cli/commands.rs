//! `lthc check`, `lthc plan`, `lthc show`.

use std::path::PathBuf;

use serde_json::json;

use super::Format;
use crate::check::{check_files, Checked, Disk, Program};
use crate::diag::{render_json, render_report, Diag};
use crate::plan;

/// Loads and checks; prints diagnostics. Returns the result when there were no errors.
fn checked(files: &[PathBuf], format: Format, color: bool, json_on_success: bool) -> Result<(Program, Checked), i32> {
    let (prog, checked, diags) = check_files(files, &Disk);
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if format == Format::Json && (errors > 0 || json_on_success) {
        println!("{}", render_json(&diags, &prog.sources));
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
        s += &format!(", {warnings} warning{}", if warnings == 1 { "" } else { "s" });
    }
    s
}

pub fn check(files: &[PathBuf], format: Format, color: bool) -> i32 {
    match checked(files, format, color, true) {
        Ok((prog, c)) => {
            if format == Format::Text {
                let names: std::collections::BTreeSet<&str> = c.experiments.iter().map(|e| e.name.as_str()).collect();
                println!(
                    "ok: {} file{} ({} with imports), {} experiment{} ({} instance{}), {} network{}",
                    prog.roots.len(),
                    plural(prog.roots.len()),
                    prog.sources.len(),
                    names.len(),
                    plural(names.len()),
                    c.experiments.len(),
                    plural(c.experiments.len()),
                    c.networks.len(),
                    plural(c.networks.len()),
                );
            }
            0
        }
        Err(code) => code,
    }
}

pub fn plan(files: &[PathBuf], format: Format, color: bool) -> i32 {
    match checked(files, format, color, false) {
        Ok((_, c)) => {
            let p = plan::build(&c.experiments);
            match format {
                Format::Text => print!("{}", plan::render_tree(&p)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&plan::render_json(&p)).unwrap_or_default()),
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
                    println!("{}", serde_json::to_string_pretty(&json!({ "networks": list })).unwrap_or_default());
                }
                Format::Text => {
                    let width = rows.iter().map(|(n, _)| n.display.len()).max().unwrap_or(7).max(7);
                    println!("{:<width$}  {:>14}  {:>14}  {:>16}  {:>8}  input", "network", "parameters", "prunable", "FLOPs (MACs)", "≈");
                    for (n, s) in &rows {
                        println!(
                            "{:<width$}  {:>14}  {:>14}  {:>16}  {:>8}  {:?}",
                            n.display,
                            plan::thousands(s.parameters),
                            plan::thousands(s.prunable),
                            plan::thousands(s.flops),
                            short(s.parameters),
                            n.input
                        );
                    }
                }
            }
            0
        }
        Err(code) => code,
    }
}

/// 266,610 → 266K; 20,035,018 → 20.0M (truncated, as the paper writes counts).
pub fn short(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", (n / 100_000) as f64 / 10.0)
    } else if n >= 1_000 {
        format!("{}K", n / 1000)
    } else {
        n.to_string()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
