//! `lthc plan --explain`: for every step, whether it is cached, partly trained, or to run —
//! and for a step to run, what changed: the field, its old and its new value, found by
//! comparing its spec with the closest cached step of the same kind.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::plan::Plan;

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Cached,
    /// A training step interrupted at this iteration: it resumes there.
    Partial(u64),
    /// Runs because an input runs.
    InputChanged(String),
    /// Runs because these fields differ from the closest cached step: (path, old, new).
    Changed(Vec<(String, String, String)>),
    /// Nothing like it in the cache.
    New,
}

/// Cached steps' specs, by kind (read from their `done` markers).
fn cached_specs(cache: &Path) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for step in super::cached_steps(cache) {
        let kind = step.kind().to_string();
        if let Some(done) = step.done {
            out.entry(kind).or_default().push(done);
        }
    }
    out
}

/// Leaves of a JSON value with their paths.
fn leaves(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            leaves(
                x,
                if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                },
                out,
            )
        }),
        _ => out.push((path, v.to_string())),
    }
}

fn diff(old: &Value, new: &Value) -> Vec<(String, String, String)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    leaves(old, String::new(), &mut a);
    leaves(new, String::new(), &mut b);
    let a: HashMap<String, String> = a.into_iter().collect();
    let b: HashMap<String, String> = b.into_iter().collect();
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            (
                k.clone(),
                a.get(k).cloned().unwrap_or_else(|| "(default)".into()),
                b.get(k).cloned().unwrap_or_else(|| "(default)".into()),
            )
        })
        .collect()
}

/// The status of every step, in plan order.
pub fn explain(plan: &Plan, cache: &Path) -> Vec<Status> {
    let cached = cached_specs(cache);
    let mut status: HashMap<&str, Status> = HashMap::new();
    let mut out = Vec::new();
    for step in &plan.steps {
        let dir = cache.join("steps").join(&step.key);
        let s = if dir.join("done").is_file() {
            Status::Cached
        } else if let Some(i) = crate::train::State::load(&dir.join("resume.ckpt"))
            .ok()
            .map(|s| s.iteration)
        {
            Status::Partial(i)
        } else if let Some(input) = step
            .inputs
            .iter()
            .find(|i| !matches!(status.get(i.as_str()), Some(Status::Cached) | None))
        {
            Status::InputChanged(input[..10.min(input.len())].to_string())
        } else {
            let mine = super::done_record(step);
            let spec_only = |v: &Value| v.get("spec").cloned().unwrap_or(Value::Null);
            let closest = cached
                .get(step.kind.word())
                .into_iter()
                .flatten()
                .map(|v| diff(&spec_only(v), &spec_only(&mine)))
                .filter(|d| !d.is_empty())
                .min_by_key(Vec::len);
            match closest {
                Some(d) => Status::Changed(d),
                None => Status::New,
            }
        };
        status.insert(&step.key, s.clone());
        out.push(s);
    }
    out
}

pub fn render(plan: &Plan, statuses: &[Status]) -> String {
    let mut out = String::new();
    let (mut cached, mut to_run, mut its) = (0, 0, 0u64);
    for (step, s) in plan.steps.iter().zip(statuses) {
        let what = match s {
            Status::Cached => {
                cached += 1;
                "cached".to_string()
            }
            Status::Partial(i) => {
                to_run += 1;
                its += step.iterations;
                format!("to run: resumes at iteration {i}")
            }
            Status::InputChanged(k) => {
                to_run += 1;
                its += step.iterations;
                format!("to run: its input {k} runs")
            }
            Status::Changed(d) => {
                to_run += 1;
                its += step.iterations;
                let shown: Vec<String> = d
                    .iter()
                    .take(3)
                    .map(|(p, a, b)| format!("{p}: {a} → {b}"))
                    .collect();
                format!(
                    "to re-run: {}{}",
                    shown.join("; "),
                    if d.len() > 3 { "; ..." } else { "" }
                )
            }
            Status::New => {
                to_run += 1;
                its += step.iterations;
                "to run: new".to_string()
            }
        };
        out += &format!(
            "{:<8} {} {:<60} {what}\n",
            step.kind.word(),
            &step.key[..10],
            step.label
        );
    }
    out += &format!(
        "\n{cached} steps cached, {to_run} to run ({} iterations to train)\n",
        crate::plan::thousands(its)
    );
    out
}
