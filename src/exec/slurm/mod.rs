//! The Slurm executor: hands the plan to the cluster's scheduler instead of running it here.
//! Every step the cache lacks becomes a job (siblings become job arrays) that runs
//! `lthc step KEY` against the shared cache, with `afterok` dependencies from the plan's DAG.
//! The cache stays the source of truth: a job's result is its step's `done` marker, a failure
//! its `failed.json` (as in a local run), and `slurm.json` says which job runs a step, so that
//! nothing queued or running is submitted twice.
//!
//! The waiting loop: look at the queue, then at the cache; cancel what can never start (a job
//! whose dependency failed stays pending forever otherwise); submit what is missing; show
//! progress. A failed step stops only what depends on it, as in a local run.

pub mod groups;
pub mod queue;
mod records;
pub mod resources;
mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use resources::Resources;
use view::State;

use super::{failure, lock, Summary};
use crate::diag::{code, Diag};
use crate::plan::{Plan, Step};

/// What a Slurm run needs besides the plan.
pub struct Setup {
    pub cache: PathBuf,
    pub data: PathBuf,
    /// `--device` for every job (`cpu`, `cuda`).
    pub device: String,
    /// The `.lth` files, absolute: every job plans them again to find its step.
    pub files: Vec<PathBuf>,
    pub run_id: String,
    pub resources: Resources,
    /// The lthc binary the jobs run (on a path the nodes see).
    pub lthc: PathBuf,
    /// Submit and return instead of waiting.
    pub detach: bool,
    /// No progress lines (failures are still said).
    pub quiet: bool,
    /// How often the queue is looked at.
    pub poll: Duration,
}

/// How a Slurm run ended.
pub enum Outcome {
    /// Every step is done, failed, or skipped because it needs a failed one.
    Finished(Summary),
    /// `--detach`: submitted, not waited for.
    Detached { steps: usize, jobs: usize },
}

/// Runs the plan on Slurm. `unavailable` says which steps read a dataset that the preflight
/// could not load (they fail at once, as in a local run).
pub fn run(
    plan: &Plan,
    setup: &Setup,
    unavailable: impl Fn(&Step) -> Option<Diag>,
) -> Result<Outcome, Box<Diag>> {
    queue::check_available()?;
    let mut sweep = Sweep::new(plan, setup);
    for step in &plan.steps {
        if sweep.is_done(step) {
            continue;
        }
        if let Some(diag) = unavailable(step) {
            sweep.record_failure(step, &diag)?;
        }
    }
    let mut submitted = (0, 0);
    loop {
        if crate::train::stop::requested() {
            return Err(Box::new(stopped_waiting()));
        }
        let jobs = queue::jobs()?;
        let _guard = sweep.submit_lock()?;
        let states = sweep.view(&jobs);
        if sweep.cancel_stuck(&states, &jobs) {
            // Their steps are submitted again on the next look, waiting on the right jobs.
            continue;
        }
        sweep.report_failures(&states)?;
        let states = sweep.view(&jobs);
        let (steps, arrays) = sweep.submit(&states)?;
        submitted = (submitted.0 + steps, submitted.1 + arrays);
        drop(_guard);
        let states = if steps > 0 {
            sweep.view(&queue::jobs()?)
        } else {
            states
        };
        sweep.show_progress(&states);
        if setup.detach {
            return Ok(Outcome::Detached {
                steps: submitted.0,
                jobs: submitted.1,
            });
        }
        if !states
            .iter()
            .any(|s| matches!(s, State::Queued(_) | State::Running(_) | State::Unsubmitted))
        {
            return Ok(Outcome::Finished(sweep.summary(&states)));
        }
        std::thread::sleep(setup.poll);
    }
}

fn stopped_waiting() -> Diag {
    Diag::global(
        code::EXEC_INTERRUPTED,
        "stopped waiting: the submitted jobs keep running in Slurm",
    )
    .help("`lthc status FILE` shows them; `lthc run --executor slurm FILE` again waits for them and submits nothing twice; `scancel` stops them")
}

/// One Slurm run's bookkeeping.
struct Sweep<'a> {
    plan: &'a Plan,
    setup: &'a Setup,
    /// Jobs this run has seen queued or running (or submitted): if one ends without its
    /// step's result, the step failed.
    watched: HashSet<String>,
    /// Steps that failed in this run (also recorded in their `failed.json`).
    failed: HashMap<String, failure::Failure>,
    /// Steps done when the run started.
    done_at_start: HashSet<String>,
    started: Instant,
    last_progress: String,
    groups_submitted: usize,
    /// Jobs that completed while their step's `done` was not visible yet, since when.
    completed: HashMap<String, Instant>,
}

/// A submission lock older than this was left behind (submitting takes seconds to minutes).
const STALE_SUBMIT_LOCK: Duration = Duration::from_secs(30 * 60);

/// How long a completed job's result may take to appear through a shared filesystem's caches.
const COMPLETED_GRACE: Duration = Duration::from_secs(120);

impl<'a> Sweep<'a> {
    fn new(plan: &'a Plan, setup: &'a Setup) -> Self {
        let mut s = Sweep {
            plan,
            setup,
            watched: HashSet::new(),
            failed: HashMap::new(),
            done_at_start: HashSet::new(),
            started: Instant::now(),
            last_progress: String::new(),
            groups_submitted: 0,
            completed: HashMap::new(),
        };
        s.done_at_start = plan
            .steps
            .iter()
            .filter(|st| s.is_done(st))
            .map(|st| st.key.clone())
            .collect();
        s
    }

    fn dir(&self, key: &str) -> PathBuf {
        self.setup.cache.join("steps").join(key)
    }

    fn is_done(&self, step: &Step) -> bool {
        self.dir(&step.key).join("done").is_file()
    }

    /// Only one process submits at a time, so that two `lthc run`s never submit a step twice.
    fn submit_lock(&self) -> Result<lock::StepLock, Box<Diag>> {
        let dir = self.setup.cache.join("slurm");
        loop {
            match lock::try_lock(&dir, "submit") {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => {
                    // Held only while submitting: one this old was left by a run that died on
                    // another machine (a login node), whose process cannot be seen from here.
                    let age = std::fs::metadata(dir.join("lock"))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > STALE_SUBMIT_LOCK) {
                        let _ = std::fs::remove_file(dir.join("lock"));
                    }
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(io_diag(&dir, e)),
            }
        }
    }

    fn view(&mut self, jobs: &HashMap<String, queue::Job>) -> Vec<State> {
        let ctx = view::Context {
            cache: &self.setup.cache,
            jobs,
            run: Some((&self.setup.run_id, &self.watched, &self.failed)),
        };
        let mut states = view::classify(self.plan, &ctx);
        for s in &states {
            if let State::Queued(j) | State::Running(j) = s {
                self.watched.insert(j.clone());
            }
        }
        for (n, step) in self.plan.steps.iter().enumerate() {
            let State::Running(j) = &states[n] else {
                continue;
            };
            if !jobs
                .get(j)
                .is_some_and(|job| job.phase == queue::Phase::Ended("COMPLETED".into()))
            {
                continue;
            }
            let since = *self.completed.entry(j.clone()).or_insert_with(Instant::now);
            if since.elapsed() < COMPLETED_GRACE {
                continue;
            }
            let diag = Diag::global(
                code::SLURM_JOB,
                format!(
                    "step {}: Slurm job {j} completed, but its result is not in {}",
                    step.label,
                    self.dir(&step.key).display()
                ),
            )
            .help("the cache must be on a filesystem that every node and this machine share (not a node's local disk): pass --cache on a shared path");
            eprint!(
                "{}",
                crate::diag::render_report(std::slice::from_ref(&diag), &Default::default(), false)
            );
            if self.record_failure(step, &diag).is_ok() {
                states[n] = State::Failed(self.failed[&step.key].clone());
            }
        }
        states
    }

    fn record_failure(&mut self, step: &Step, diag: &Diag) -> Result<(), Box<Diag>> {
        let dir = self.dir(&step.key);
        let f = failure::record(&dir, &self.setup.run_id, &step.label, diag)
            .map_err(|e| io_diag(&dir, e))?;
        self.failed.insert(step.key.clone(), f);
        Ok(())
    }

    /// Cancels the jobs that wait on a failed one (Slurm would keep them pending forever) and
    /// forgets them; returns whether there were any.
    fn cancel_stuck(&mut self, states: &[State], jobs: &HashMap<String, queue::Job>) -> bool {
        let mut ids = Vec::new();
        for (step, state) in self.plan.steps.iter().zip(states) {
            if matches!(state, State::Done) {
                continue;
            }
            let dir = self.dir(&step.key);
            let Some(r) = records::read(&dir) else {
                continue;
            };
            let Some(job) = jobs.get(&r.job) else {
                continue;
            };
            // Stuck, or waiting for a step that failed in this run: it can never do its work.
            let blocked = matches!(state, State::Blocked) && job.phase == queue::Phase::Queued;
            if job.stuck() || blocked {
                records::forget(&dir);
                self.watched.remove(&r.job);
                ids.push(r.job);
            }
        }
        if ids.is_empty() {
            return false;
        }
        queue::cancel(&ids);
        eprintln!(
            "[slurm] cancelled {} queued jobs that waited on a failed one; what they ran that does not need it is submitted again",
            ids.len()
        );
        true
    }

    /// Says each failure once, with the job and its log: a job that ended without its step's
    /// result (killed, out of time or memory, node failure) is recorded as the step's failure;
    /// a step that failed inside its job recorded its own.
    fn report_failures(&mut self, states: &[State]) -> Result<(), Box<Diag>> {
        for (step, state) in self.plan.steps.iter().zip(states) {
            let dir = self.dir(&step.key);
            let diag = match state {
                State::Lost { job, end, log } => {
                    // The job may have said why itself (a failure from another run).
                    let said = failure::read(&dir)
                        .map(|f| format!(" after [{}] {}", f.code, f.message))
                        .unwrap_or_default();
                    Diag::global(
                        code::SLURM_JOB,
                        format!(
                            "step {}: Slurm job {job} ended {end}{said} (log: {})",
                            step.label,
                            log.display()
                        ),
                    )
                    .help("read the job's log; `lthc run` again submits the step again (a training step resumes from its last saved state)")
                }
                State::Failed(f) if !self.failed.contains_key(&step.key) => {
                    let (job, log) = records::read(&dir)
                        .map(|r| (r.job, r.log.display().to_string()))
                        .unwrap_or_default();
                    self.failed.insert(step.key.clone(), f.clone());
                    Diag::global(
                        code::SLURM_JOB,
                        format!(
                            "step {} failed in Slurm job {job}: [{}] {} (log: {log})",
                            step.label, f.code, f.message
                        ),
                    )
                    .help(f.help.clone())
                }
                _ => continue,
            };
            eprint!(
                "{}",
                crate::diag::render_report(std::slice::from_ref(&diag), &Default::default(), false)
            );
            if let State::Lost { .. } = state {
                self.record_failure(step, &diag)?;
            }
        }
        Ok(())
    }

    /// Submits every step that is missing and not queued; returns (steps, submissions).
    fn submit(&mut self, states: &[State]) -> Result<(usize, usize), Box<Diag>> {
        let by_key: HashMap<&str, &State> = self
            .plan
            .steps
            .iter()
            .zip(states)
            .map(|(s, st)| (s.key.as_str(), st))
            .collect();
        let mut pending = Vec::new();
        for (step, state) in self.plan.steps.iter().zip(states) {
            if !matches!(state, State::Unsubmitted) {
                continue;
            }
            let deps = step
                .inputs
                .iter()
                .filter_map(|i| match by_key.get(i.as_str()) {
                    Some(State::Queued(j) | State::Running(j)) => {
                        Some(groups::Dep::Queued(j.clone()))
                    }
                    Some(State::Unsubmitted) => Some(groups::Dep::Step(i.clone())),
                    _ => None,
                })
                .collect();
            pending.push(groups::Pending {
                key: step.key.clone(),
                kind: step.kind.word(),
                deps,
            });
        }
        if pending.is_empty() {
            return Ok((0, 0));
        }
        let deps_of: HashMap<&str, &[groups::Dep]> = pending
            .iter()
            .map(|p| (p.key.as_str(), p.deps.as_slice()))
            .collect();
        let folder = self.setup.cache.join("slurm").join(&self.setup.run_id);
        std::fs::create_dir_all(&folder).map_err(|e| io_diag(&folder, e))?;
        let mut job_of: HashMap<String, String> = HashMap::new();
        let groups = groups::group(&pending);
        for g in &groups {
            let mut after: Vec<String> = g
                .keys
                .iter()
                .flat_map(|k| deps_of[k.as_str()].iter())
                .map(|d| match d {
                    groups::Dep::Queued(j) => j.clone(),
                    groups::Dep::Step(k) => job_of[k].clone(),
                })
                .collect();
            after.sort();
            after.dedup();
            let name = format!("g{:04}-{}", self.groups_submitted, g.kind);
            self.groups_submitted += 1;
            let array = g.keys.len() > 1;
            let script = folder.join(format!("{name}.sh"));
            crate::store::atomic_write(&script, self.script(g).as_bytes())
                .map_err(|e| io_diag(&script, e))?;
            let output = folder.join(if array {
                format!("{name}_%a.log")
            } else {
                format!("{name}.log")
            });
            let id = queue::submit(
                &script,
                &queue::Submission {
                    name: &format!("lthc-{}", g.kind),
                    array: array.then_some(g.keys.len()),
                    after: &after,
                    output: &output,
                    flags: &self.setup.resources.sbatch_flags(),
                },
            )?;
            for (n, key) in g.keys.iter().enumerate() {
                let (job, log) = if array {
                    (format!("{id}_{n}"), folder.join(format!("{name}_{n}.log")))
                } else {
                    (id.clone(), output.clone())
                };
                let dir = self.dir(key);
                failure::clear(&dir);
                records::write(
                    &dir,
                    &records::Record {
                        job: job.clone(),
                        run: self.setup.run_id.clone(),
                        log,
                    },
                )
                .map_err(|e| io_diag(&dir, e))?;
                self.watched.insert(job.clone());
                job_of.insert(key.clone(), job);
            }
        }
        Ok((pending.len(), groups.len()))
    }

    /// The batch script of one submission: the array index picks the step.
    fn script(&self, g: &groups::Group) -> String {
        let s = self.setup;
        let files: Vec<String> = s
            .files
            .iter()
            .map(|f| quote(&f.to_string_lossy()))
            .collect();
        format!(
            "#!/bin/bash\n\
             # lthc: {n} {kind} step(s) of run {run}\n\
             keys=({keys})\n\
             # One thread per CPU Slurm gave the job.\n\
             export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
             exec {lthc} step --cache {cache} --data {data} --device {device} --run {run} \
             --key \"${{keys[${{SLURM_ARRAY_TASK_ID:-0}}]}}\" {files}\n",
            n = g.keys.len(),
            kind = g.kind,
            run = quote(&s.run_id),
            keys = g.keys.join(" "),
            lthc = quote(&s.lthc.to_string_lossy()),
            cache = quote(&s.cache.to_string_lossy()),
            data = quote(&s.data.to_string_lossy()),
            device = quote(&s.device),
            files = files.join(" "),
        )
    }

    /// One line per kind of step, printed when it changes.
    fn show_progress(&mut self, states: &[State]) {
        let mut counts: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
        let (mut done_its, mut left_its) = (0u64, 0u64);
        for (step, state) in self.plan.steps.iter().zip(states) {
            let c = counts.entry(step.kind.word()).or_default();
            let slot = match state {
                State::Done => {
                    if !self.done_at_start.contains(&step.key) {
                        done_its += step.iterations;
                    }
                    0
                }
                State::Running(_) => {
                    left_its += step.iterations;
                    1
                }
                State::Queued(_) | State::Unsubmitted => {
                    left_its += step.iterations;
                    2
                }
                State::Failed(_) | State::Lost { .. } => 3,
                State::Blocked => 4,
            };
            c[slot] += 1;
        }
        let mut total = [0usize; 5];
        let parts: Vec<String> = counts
            .iter()
            .map(|(kind, c)| {
                for (t, n) in total.iter_mut().zip(c) {
                    *t += n;
                }
                let mut p = format!("{kind} {}/{}", c[0], c.iter().sum::<usize>());
                let busy: Vec<String> = [(c[1], "running"), (c[3], "failed"), (c[4], "skipped")]
                    .iter()
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, w)| format!("{n} {w}"))
                    .collect();
                if !busy.is_empty() {
                    p += &format!(" ({})", busy.join(", "));
                }
                p
            })
            .collect();
        let line = format!(
            "{}/{} done, {} running, {} queued, {} failed, {} skipped | {}",
            total[0],
            states.len(),
            total[1],
            total[2],
            total[3],
            total[4],
            parts.join(", ")
        );
        if line == self.last_progress || self.setup.quiet {
            return;
        }
        self.last_progress = line.clone();
        let eta = super::eta(self.started, done_its, left_its)
            .filter(|_| left_its > 0)
            .map(|e| format!(" | eta {e}"))
            .unwrap_or_default();
        eprintln!("[slurm] {line}{eta}");
    }

    fn summary(&self, states: &[State]) -> Summary {
        let mut s = Summary::default();
        for (step, state) in self.plan.steps.iter().zip(states) {
            if !matches!(state, State::Done) {
                continue;
            }
            if self.done_at_start.contains(&step.key) {
                s.cached += 1;
                s.cached_iterations += step.iterations;
            } else {
                s.ran += 1;
                s.trained_iterations += step.iterations;
            }
        }
        s.failed = self
            .plan
            .steps
            .iter()
            .filter_map(|st| self.failed.get(&st.key).cloned())
            .collect();
        s
    }
}

/// The executor's own I/O diagnostic (`lth::exec::io`).
fn io_diag(path: &Path, e: std::io::Error) -> Box<Diag> {
    Box::new(super::io_err(path)(e).to_diag())
}

/// A word for bash, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `lthc status`: where each step of the plan stands, from the cache and the queue.
pub fn status(plan: &Plan, cache: &Path) -> String {
    let jobs = queue::jobs().ok();
    let empty = HashMap::new();
    let ctx = view::Context {
        cache,
        jobs: jobs.as_ref().unwrap_or(&empty),
        run: None,
    };
    let states = view::classify(plan, &ctx);
    view::render_status(plan, cache, &states, jobs.is_some())
}

/// Folders of `<cache>/slurm/` (one per run: job scripts and logs) that no unfinished step's
/// job belongs to, with their sizes: what `lthc cache gc` may remove. A failed step keeps its
/// run's folder (its log says why).
pub fn finished_runs(cache: &Path) -> Vec<(PathBuf, u64)> {
    let live: HashSet<String> = super::cached_steps(cache)
        .iter()
        .filter(|s| s.done.is_none())
        .filter_map(|s| records::read(&cache.join("steps").join(&s.key)))
        .map(|r| r.run)
        .collect();
    let Ok(runs) = std::fs::read_dir(cache.join("slurm")) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, u64)> = runs
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter(|e| !live.contains(e.file_name().to_string_lossy().as_ref()))
        .map(|e| (e.path(), super::folder_bytes(&e.path())))
        .collect();
    out.sort();
    out
}
