//! Showing a plan: an indented tree for people, JSON for programs (docs/plan-format.md).

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{json, Value as Json};

use super::Plan;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The DAG as a tree: each step under its first input; other inputs are named by key.
pub fn render_tree(plan: &Plan) -> String {
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        match s.inputs.first() {
            Some(parent) => children.entry(parent.as_str()).or_default().push(i),
            None => roots.push(i),
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan: {} experiment instance{}, {} steps",
        plan.experiments.len(),
        if plan.experiments.len() == 1 { "" } else { "s" },
        plan.steps.len()
    );
    for (n, &r) in roots.iter().enumerate() {
        node(plan, &children, r, "", n + 1 == roots.len(), &mut out);
    }
    out + &totals(&plan.totals)
}

/// The footer of the tree and the summary: iterations requested, trained, and saved by sharing.
fn totals(t: &super::Totals) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "iterations requested by all experiments: {:>14}",
        thousands(t.requested_iterations)
    );
    let _ = writeln!(
        out,
        "iterations this plan trains:             {:>14}",
        thousands(t.planned_iterations)
    );
    if t.planned_iterations > 0 && t.requested_iterations > t.planned_iterations {
        let _ = writeln!(
            out,
            "shared steps save {} iterations ({:.1}x less training)",
            thousands(t.requested_iterations - t.planned_iterations),
            t.requested_iterations as f64 / t.planned_iterations as f64
        );
    }
    out
}

/// Per experiment instance: its steps by kind and the iterations its training steps run (a step
/// shared by several experiments counts in each), then the plan's totals. No tree.
pub fn render_summary(plan: &Plan) -> String {
    use super::StepKind::*;
    let kinds = [Init, Train, Prune, Rewind, Evaluate, Measure];
    let width = plan
        .experiments
        .iter()
        .map(|e| e.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut out = format!("{:<width$}", "experiment");
    for k in kinds {
        let _ = write!(out, " {:>8}", k.word());
    }
    let _ = writeln!(out, " {:>8} {:>14}", "steps", "iterations");
    for e in &plan.experiments {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.experiments.contains(e))
            .collect();
        let _ = write!(out, "{e:<width$}");
        for k in kinds {
            let _ = write!(out, " {:>8}", steps.iter().filter(|s| s.kind == k).count());
        }
        let iterations: u64 = steps.iter().map(|s| s.iterations).sum();
        let _ = writeln!(out, " {:>8} {:>14}", steps.len(), thousands(iterations));
    }
    let _ = write!(out, "{:<width$}", "all (shared once)");
    for k in kinds {
        let _ = write!(
            out,
            " {:>8}",
            plan.steps.iter().filter(|s| s.kind == k).count()
        );
    }
    let _ = writeln!(
        out,
        " {:>8} {:>14}",
        plan.steps.len(),
        thousands(plan.totals.planned_iterations)
    );
    out + &totals(&plan.totals)
}

fn node(
    plan: &Plan,
    children: &HashMap<&str, Vec<usize>>,
    i: usize,
    prefix: &str,
    last: bool,
    out: &mut String,
) {
    let s = &plan.steps[i];
    let branch = if last { "└─ " } else { "├─ " };
    let mut line = format!(
        "{prefix}{branch}{} {} {}",
        s.kind.word(),
        &s.key[..10],
        s.label
    );
    if s.iterations > 0 {
        let _ = write!(line, "  [{} it]", thousands(s.iterations));
    }
    if s.checkpoints.len() > 1 {
        let cps: Vec<String> = s.checkpoints.iter().map(|c| c.to_string()).collect();
        let _ = write!(line, "  checkpoints at {}", cps.join(", "));
    }
    for other in s.inputs.iter().skip(1) {
        let _ = write!(line, "  (+ {})", &other[..10]);
    }
    if s.experiments.len() > 1 {
        let _ = write!(line, "  shared by {} experiments", s.experiments.len());
    }
    let _ = writeln!(out, "{line}");
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    if let Some(kids) = children.get(s.key.as_str()) {
        for (n, &k) in kids.iter().enumerate() {
            node(plan, children, k, &child_prefix, n + 1 == kids.len(), out);
        }
    }
}

pub fn render_json(plan: &Plan) -> Json {
    let steps: Vec<Json> = plan
        .steps
        .iter()
        .map(|s| {
            let mut v = json!({
                "key": s.key,
                "kind": s.kind,
                "label": s.label,
                "iterations": s.iterations,
                "experiments": s.experiments,
                "inputs": s.inputs,
                "spec": s.spec,
            });
            if !s.checkpoints.is_empty() {
                v["checkpoints"] = json!(s.checkpoints);
            }
            v
        })
        .collect();
    json!({
        "experiments": plan.experiments,
        "steps": steps,
        "totals": plan.totals,
    })
}
