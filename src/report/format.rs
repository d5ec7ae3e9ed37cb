//! A report's tables as text: aligned for the terminal, Markdown, CSV (tidy: one row per group,
//! raw numbers, ready for pandas) and JSON.

use serde_json::{json, Map, Value};

use super::aggregate::{Cell, Stat, Table};
use super::tickets::Ticket;

/// How a result field's numbers are shown.
#[derive(Clone, Copy, PartialEq)]
pub enum Shown {
    /// A fraction shown in percent, two decimals.
    Percent,
    /// A count: thousands separators, no decimals.
    Count,
    Decimals(usize),
}

pub fn shown(field: &str) -> Shown {
    match field {
        "density" | "test_accuracy" | "best_accuracy" | "test_top5" => Shown::Percent,
        "interpolation_barrier" | "interpolation_barrier_train" => Shown::Percent,
        "parameters" | "rewind_iteration" | "level" | "seed" | "best_iteration" => Shown::Count,
        "test_loss" => Shown::Decimals(4),
        f if f.ends_with("_angle") => Shown::Decimals(1),
        _ => Shown::Decimals(2),
    }
}

/// A field's name as a column heading, with its unit.
pub fn heading(field: &str) -> String {
    match shown(field) {
        Shown::Percent => format!("{field} (%)"),
        _ if field.ends_with("_angle") => format!("{field} (°)"),
        _ => field.to_string(),
    }
}

pub fn number(field: &str, x: f64) -> String {
    match shown(field) {
        Shown::Percent => format!("{:.2}", x * 100.0),
        Shown::Count => crate::plan::thousands(x.round().max(0.0) as u64),
        Shown::Decimals(d) => format!("{x:.d$}"),
    }
}

fn stat(field: &str, s: &Stat, group_n: usize) -> String {
    let mut out = number(field, s.mean);
    if s.n > 1 {
        let sd = match shown(field) {
            Shown::Count => format!("{:.0}", s.sd),
            _ => number(field, s.sd),
        };
        out += &format!(" ± {sd}");
    }
    if s.n < group_n {
        out += &format!(" (n={})", s.n);
    }
    out
}

fn key_text(field: &str, v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v
            .as_f64()
            .map_or_else(|| v.to_string(), |x| number(field, x)),
    }
}

/// The table as strings: headings, then one line per group.
pub(super) fn cells(t: &Table) -> (Vec<String>, Vec<Vec<String>>) {
    let diverged = t.rows.iter().any(|r| r.diverged > 0);
    let mut head: Vec<String> = t.keys.iter().map(|k| heading(k)).collect();
    head.push("n".into());
    if diverged {
        head.push("diverged".into());
    }
    head.extend(t.columns.iter().map(|c| heading(c)));
    let body = t
        .rows
        .iter()
        .map(|r| {
            let mut line: Vec<String> = t
                .keys
                .iter()
                .zip(&r.key)
                .map(|(k, v)| key_text(k, v))
                .collect();
            line.push(r.n.to_string());
            if diverged {
                line.push(r.diverged.to_string());
            }
            for (c, cell) in t.columns.iter().zip(&r.cells) {
                line.push(match cell {
                    Cell::Num(s) => stat(c, s, r.n),
                    Cell::Text(s) => s.clone(),
                    Cell::Empty => "-".into(),
                });
            }
            line
        })
        .collect();
    (head, body)
}

pub(super) fn ticket_cells(tickets: &[Ticket]) -> (Vec<String>, Vec<Vec<String>>) {
    let early = tickets.iter().any(|t| t.early_stop.is_some());
    let mut head: Vec<String> = [
        "experiment",
        "network",
        "parameters",
        "rewind_iteration",
        "arm",
        "dense accuracy (%)",
        "winning-ticket density (%)",
        "accuracy there (%)",
    ]
    .map(String::from)
    .to_vec();
    if early {
        head.push("early-stopping iteration".into());
    }
    let body = tickets
        .iter()
        .map(|t| {
            let mut line = vec![
                t.experiment.clone(),
                t.network.clone(),
                crate::plan::thousands(t.parameters),
                crate::plan::thousands(t.rewind_iteration),
                t.arm.clone(),
                t.dense
                    .map_or("-".into(), |s| stat("test_accuracy", &s, s.n)),
                t.density.map_or("none".into(), |d| number("density", d)),
                t.accuracy
                    .map_or("-".into(), |s| stat("test_accuracy", &s, s.n)),
            ];
            if early {
                line.push(
                    t.early_stop
                        .map_or("-".into(), |s| stat("best_iteration", &s, s.n)),
                );
            }
            line
        })
        .collect();
    (head, body)
}

fn numeric(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || c == '-') && s != "-"
}

/// Columns padded to their widest cell; numbers right-aligned, text left-aligned.
fn aligned((head, body): (Vec<String>, Vec<Vec<String>>)) -> String {
    let width = |i: usize| {
        body.iter()
            .map(|l| l[i].chars().count())
            .chain([head[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let right: Vec<bool> = (0..head.len())
        .map(|i| {
            !body.is_empty()
                && body
                    .iter()
                    .all(|l| numeric(&l[i]) || l[i] == "-" || l[i] == "none")
        })
        .collect();
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                if right[i] {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        format!("  {}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&head);
    for l in &body {
        out += &line(l);
    }
    out
}

fn markdown((head, body): (Vec<String>, Vec<Vec<String>>)) -> String {
    let row = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = row(&head);
    out += &row(&head.iter().map(|_| "---".to_string()).collect::<Vec<_>>());
    for l in &body {
        out += &row(l);
    }
    out
}

/// The terminal text: the table, then the winning tickets where the experiments prune.
pub fn terminal(title: &str, t: &Table, tickets: &[Ticket]) -> String {
    let mut out = format!("\n{title}\n");
    out += &aligned(cells(t));
    if !tickets.is_empty() {
        out += "\n  winning tickets (the smallest density at least as accurate as the dense network):\n";
        out += &aligned(ticket_cells(tickets));
    }
    out
}

pub fn markdown_file(title: &str, t: &Table, tickets: &[Ticket]) -> String {
    let mut out = format!("# {title}\n\n");
    out += &markdown(cells(t));
    if !tickets.is_empty() {
        out += "\n## Winning tickets\n\n";
        out += &markdown(ticket_cells(tickets));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => csv_field(s),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// One row per group: the key fields, n, then `<column>_mean`, `_sd`, `_n` (text columns as is).
pub fn csv(t: &Table) -> String {
    // A column is text if any group holds text there (then it is one CSV column, not three).
    let text: Vec<bool> = (0..t.columns.len())
        .map(|i| t.rows.iter().any(|r| matches!(r.cells[i], Cell::Text(_))))
        .collect();
    let mut head: Vec<String> = t.keys.clone();
    head.extend(["n".to_string(), "diverged".to_string()]);
    for (i, c) in t.columns.iter().enumerate() {
        if text[i] {
            head.push(c.clone());
        } else {
            head.extend([format!("{c}_mean"), format!("{c}_sd"), format!("{c}_n")]);
        }
    }
    let mut out = head.join(",") + "\n";
    for r in &t.rows {
        let mut line: Vec<String> = r.key.iter().map(raw).collect();
        line.extend([r.n.to_string(), r.diverged.to_string()]);
        for (i, cell) in r.cells.iter().enumerate() {
            match cell {
                Cell::Num(s) => {
                    line.extend([s.mean.to_string(), s.sd.to_string(), s.n.to_string()])
                }
                Cell::Text(s) => line.push(csv_field(s)),
                Cell::Empty if text[i] => line.push(String::new()),
                Cell::Empty => line.extend([String::new(), String::new(), "0".into()]),
            }
        }
        out += &(line.join(",") + "\n");
    }
    out
}

fn stat_json(s: &Option<Stat>) -> Value {
    s.map_or(
        Value::Null,
        |s| json!({ "mean": s.mean, "sd": s.sd, "n": s.n }),
    )
}

/// The report as data: the groups with their statistics, the winning tickets, what is missing.
pub fn json(name: &str, title: &str, t: &Table, tickets: &[Ticket], missing: &[String]) -> Value {
    let rows: Vec<Value> = t
        .rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (k, v) in t.keys.iter().zip(&r.key) {
                m.insert(k.clone(), v.clone());
            }
            m.insert("n".into(), json!(r.n));
            m.insert("diverged".into(), json!(r.diverged));
            for (c, cell) in t.columns.iter().zip(&r.cells) {
                m.insert(
                    c.clone(),
                    match cell {
                        Cell::Num(s) => stat_json(&Some(*s)),
                        Cell::Text(s) => json!(s),
                        Cell::Empty => Value::Null,
                    },
                );
            }
            Value::Object(m)
        })
        .collect();
    let tickets: Vec<Value> = tickets
        .iter()
        .map(|t| {
            json!({
                "experiment": t.experiment,
                "network": t.network,
                "parameters": t.parameters,
                "rewind_iteration": t.rewind_iteration,
                "arm": t.arm,
                "dense_accuracy": stat_json(&t.dense),
                "winning_ticket_density": t.density,
                "accuracy": stat_json(&t.accuracy),
                "early_stopping_iteration": stat_json(&t.early_stop),
            })
        })
        .collect();
    json!({
        "report": name,
        "title": title,
        "rows": rows,
        "winning_tickets": tickets,
        "missing": missing,
    })
}
