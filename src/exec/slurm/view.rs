//! Where each step of a plan stands, from the cache and the queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::queue::{self, Phase};
use super::records;
use crate::exec::failure::{self, Failure};
use crate::plan::Plan;

#[derive(Clone, Debug)]
pub enum State {
    Done,
    /// Failed (in this run, or, for `lthc status`, in the last one that tried it).
    Failed(Failure),
    /// Needs a step that failed.
    Blocked,
    Queued(String),
    Running(String),
    /// Its job, watched by this run, ended without a result.
    Lost {
        job: String,
        end: String,
        log: PathBuf,
    },
    /// In no queue: to be submitted.
    Unsubmitted,
}

pub struct Context<'a> {
    pub cache: &'a Path,
    pub jobs: &'a HashMap<String, queue::Job>,
    /// A waiting run: its id, the jobs it has watched, the steps that failed in it.
    /// `None`: `lthc status`, which only looks.
    pub run: Option<(&'a str, &'a HashSet<String>, &'a HashMap<String, Failure>)>,
}

/// The state of every step, in plan order.
pub fn classify(plan: &Plan, ctx: &Context) -> Vec<State> {
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<State> = Vec::with_capacity(plan.steps.len());
    for (n, step) in plan.steps.iter().enumerate() {
        by_key.insert(&step.key, n);
        let dir = ctx.cache.join("steps").join(&step.key);
        let blocked = step.inputs.iter().any(|i| {
            by_key.get(i.as_str()).is_some_and(|&k| {
                matches!(
                    out[k],
                    State::Failed(_) | State::Blocked | State::Lost { .. }
                )
            })
        });
        let state = if dir.join("done").is_file() {
            State::Done
        } else if let Some(f) = failed_now(ctx, &step.key, &dir) {
            State::Failed(f)
        } else if blocked {
            State::Blocked
        } else {
            from_job(ctx, &dir)
        };
        out.push(state);
    }
    out
}

fn failed_now(ctx: &Context, key: &str, dir: &Path) -> Option<Failure> {
    let (run, _, failed) = ctx.run?;
    if let Some(f) = failed.get(key) {
        return Some(f.clone());
    }
    failure::failed_in(dir, run)
        .then(|| failure::read(dir))
        .flatten()
}

fn from_job(ctx: &Context, dir: &Path) -> State {
    let record = records::read(dir);
    let job = record.as_ref().and_then(|r| ctx.jobs.get(&r.job));
    match (&record, job.map(|j| &j.phase)) {
        (Some(r), Some(Phase::Queued)) => State::Queued(r.job.clone()),
        (Some(r), Some(Phase::Running)) => State::Running(r.job.clone()),
        // Its job wrote `done` before it exited 0; on a shared filesystem the file can take a
        // while to show here. The waiting run gives it time (and says so if it never comes).
        (Some(r), Some(Phase::Ended(s))) if s == "COMPLETED" && ctx.run.is_some() => {
            State::Running(r.job.clone())
        }
        (Some(r), ended) => match ctx.run {
            Some((_, watched, _)) if watched.contains(&r.job) => State::Lost {
                job: r.job.clone(),
                end: match ended {
                    Some(Phase::Ended(s)) => s.clone(),
                    _ => "and left the queue".into(),
                },
                log: r.log.clone(),
            },
            Some(_) => State::Unsubmitted,
            None => failure::read(dir).map_or(State::Unsubmitted, State::Failed),
        },
        (None, _) if ctx.run.is_none() => {
            failure::read(dir).map_or(State::Unsubmitted, State::Failed)
        }
        (None, _) => State::Unsubmitted,
    }
}

/// `lthc status`'s text: a table of step kinds by state, then each failure with its log.
pub fn render_status(plan: &Plan, cache: &Path, states: &[State], queue_seen: bool) -> String {
    const COLS: [&str; 6] = ["done", "running", "queued", "failed", "skipped", "not run"];
    let mut counts: BTreeMap<&str, [usize; 6]> = BTreeMap::new();
    let mut failures = String::new();
    for (step, state) in plan.steps.iter().zip(states) {
        let slot = match state {
            State::Done => 0,
            State::Running(_) => 1,
            State::Queued(_) => 2,
            State::Failed(_) | State::Lost { .. } => 3,
            State::Blocked => 4,
            State::Unsubmitted => 5,
        };
        counts.entry(step.kind.word()).or_default()[slot] += 1;
        if let State::Failed(f) = state {
            let log = records::read(&cache.join("steps").join(&step.key))
                .filter(|_| !f.message.contains("(log: "))
                .map(|r| format!(" (log: {})", r.log.display()))
                .unwrap_or_default();
            failures += &format!("  {} [{}]: {}{log}\n", f.label, f.code, f.message);
        }
    }
    let mut out = format!("{:<10}", "step");
    for c in COLS {
        out += &format!(" {c:>8}");
    }
    out += "\n";
    let mut total = [0usize; 6];
    for (kind, c) in &counts {
        out += &format!("{kind:<10}");
        for (i, n) in c.iter().enumerate() {
            out += &format!(" {n:>8}");
            total[i] += n;
        }
        out += "\n";
    }
    out += &format!("{:<10}", "all");
    for n in total {
        out += &format!(" {n:>8}");
    }
    out += "\n";
    if !failures.is_empty() {
        out +=
            &format!("failed (the last run that tried them); `lthc run` retries them:\n{failures}");
    }
    let submitted = plan
        .steps
        .iter()
        .any(|s| records::read(&cache.join("steps").join(&s.key)).is_some());
    if !queue_seen && submitted {
        out += "the Slurm queue could not be read (no `squeue`, or no controller): running and queued jobs show as not run\n";
    }
    out
}
