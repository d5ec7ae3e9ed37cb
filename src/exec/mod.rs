//! The executor: runs a plan's steps in order against a cache directory. A step whose outputs
//! are complete (`done` written last) is not run again; an interrupted training step resumes
//! from its last saved state.
//!
//! Layout of the cache: `<cache>/steps/<key>/` holds a step's outputs — `state.ckpt` (init,
//! rewind, or a train step's final state), `it_<N>.ckpt` (train checkpoints), `resume.ckpt`
//! (train progress), `mask.ckpt` (prune), `result.json` (evaluate, measure) — and `done`;
//! `diverged.json` for a training run whose loss stopped being finite (a result, kept), and
//! `failed.json` for a step that failed (retried by the next run).
//!
//! A failing step stops only what depends on it: it is recorded, the steps that need it are
//! skipped, and every other step still runs.

pub mod explain;
pub mod failure;
pub(crate) mod lock;
mod order;
mod panic;
pub mod preflight;
pub mod results;
pub mod slurm;
mod steps;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check::DatasetSpec;
use crate::data::{self, DataError, Dataset};
use crate::diag::{code, Diag};
use crate::plan::{Plan, Step};
use crate::train::{Progress, State, TrainBackend, TrainError};
use order::longest_chain_first;
pub use order::trainings_side_by_side;

/// Why a run stopped.
#[derive(Debug)]
pub enum ExecError {
    Data(DataError),
    Train {
        step: String,
        error: TrainError,
    },
    /// A cached artifact is damaged (it is removed so that the next run recomputes it).
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    Io {
        path: PathBuf,
        error: String,
    },
    /// A dataset the preflight found unavailable (and reported).
    Unavailable(DataError),
    /// A step panicked (a bug in lthc), caught at the step boundary.
    Panic {
        step: String,
        message: String,
    },
    /// A step that needs a trained network got one whose training diverged.
    Diverged {
        step: String,
        iteration: u64,
    },
    /// Stopped on request (Ctrl-C) with everything saved: not a failure.
    Interrupted,
}

impl ExecError {
    pub fn to_diag(&self) -> Diag {
        match self {
            ExecError::Data(e) | ExecError::Unavailable(e) => e.to_diag(),
            ExecError::Interrupted => Diag::global(
                code::EXEC_INTERRUPTED,
                "interrupted: finished steps and each training run's last state are saved",
            )
            .help("run the same command again to resume where it stopped"),
            ExecError::Panic { step, message } => Diag::global(
                code::EXEC_PANIC,
                format!("step {step} stopped on an internal error: {message}"),
            )
            .help("this is a bug in lthc: please report it with the .lth file; other steps ran"),
            ExecError::Diverged { step, iteration } => Diag::global(
                code::EXEC_DIVERGED,
                format!("step {step}: the network it needs diverged at iteration {iteration}"),
            )
            .help("lower the learning rate or add warmup; the diverged run is recorded in the results"),
            ExecError::Train { step, error } => {
                Diag::global(code::EXEC_TRAIN, format!("step {step}: {error}")).help(match error {
                    TrainError::Diverged { .. } => "lower the learning rate or add warmup",
                    TrainError::Data(_) => "check the dataset's files",
                    TrainError::Save(_) => {
                        "check that the cache directory is writable and has space"
                    }
                    TrainError::Loader => {
                        "a dataset file may be damaged: fetch it again or check the files"
                    }
                    TrainError::Interrupted => "run the same command again to resume",
                })
            }
            ExecError::Corrupt { path, reason } => {
                Diag::global(code::EXEC_CORRUPT, format!("{}: {reason}", path.display()))
                    .help("the damaged file was removed; run again to recompute it")
            }
            ExecError::Io { path, error } => {
                Diag::global(code::EXEC_IO, format!("{}: {error}", path.display()))
                    .help("check the cache directory's permissions and free space")
            }
        }
    }
}

pub fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ExecError + '_ {
    move |e| ExecError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}

/// What happened to the one step a cluster job runs.
#[derive(Debug)]
pub enum OneStep {
    Ran,
    /// Already done (by another job or run).
    Cached,
    Failed(failure::Failure),
    /// The plan the files give now has no such step (they changed since it was submitted).
    NotInPlan,
    /// An input it needs is not done.
    InputMissing(String),
}

/// What happened to each step.
#[derive(Debug, Default)]
pub struct Summary {
    pub ran: usize,
    pub cached: usize,
    pub trained_iterations: u64,
    pub cached_iterations: u64,
    /// Steps this executor tried that failed.
    pub failed: Vec<failure::Failure>,
}

pub struct Executor<B: TrainBackend> {
    pub cache: PathBuf,
    pub data_dir: PathBuf,
    pub device: B::Device,
    pub progress: Progress,
    /// Names this worker in lock files (`--jobs` runs several per process).
    pub worker: String,
    /// Names this run in failure markers: shared by its workers.
    pub run_id: String,
    datasets: HashMap<String, Arc<Dataset>>,
    /// Datasets the preflight could not load, by canonical spec.
    unavailable: HashMap<String, DataError>,
}

impl<B: TrainBackend> Executor<B> {
    pub fn new(cache: PathBuf, data_dir: PathBuf, device: B::Device, progress: Progress) -> Self {
        Executor {
            cache,
            data_dir,
            device,
            progress,
            worker: "main".into(),
            run_id: new_run_id(),
            datasets: HashMap::new(),
            unavailable: HashMap::new(),
        }
    }

    /// Another worker of the same run: the same cache, run id and loaded datasets.
    pub fn worker(&self, name: String, progress: Progress) -> Self {
        Executor {
            cache: self.cache.clone(),
            data_dir: self.data_dir.clone(),
            device: self.device.clone(),
            progress,
            worker: name,
            run_id: self.run_id.clone(),
            datasets: self.datasets.clone(),
            unavailable: self.unavailable.clone(),
        }
    }

    pub fn step_dir(&self, key: &str) -> PathBuf {
        self.cache.join("steps").join(key)
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.step_dir(key).join("done").is_file()
    }

    /// Runs every step of `plan` that is not done yet. A damaged artifact found on the way is
    /// reported, removed, and recomputed: the plan is walked again from the start.
    pub fn run(&mut self, plan: &Plan) -> Result<Summary, ExecError> {
        let mut summary = Summary::default();
        let mut repairs = 0;
        loop {
            summary.cached = 0;
            summary.cached_iterations = 0;
            match self.pass(plan, &mut summary) {
                Err(ExecError::Corrupt { path, reason }) if repairs < plan.steps.len() => {
                    repairs += 1;
                    eprintln!(
                        "warning[{}]: {}: {reason}; recomputing it",
                        code::EXEC_CORRUPT,
                        path.display()
                    );
                }
                other => return other.map(|()| summary),
            }
        }
    }

    /// The iterations of the plan's steps that are not done yet.
    fn iterations_left(&self, plan: &Plan) -> u64 {
        plan.steps
            .iter()
            .filter(|s| !self.is_done(&s.key))
            .map(|s| s.iterations)
            .sum()
    }

    /// Runs every step that is not done, not locked by another worker, and whose inputs are
    /// done, each time the first such step in [`longest_chain_first`] order (the scan starts
    /// again after each step: finishing one can make a step with more work ahead ready); waits
    /// while others hold the only steps left.
    fn pass(&mut self, plan: &Plan, summary: &mut Summary) -> Result<(), ExecError> {
        let total = plan.steps.len();
        let mut counted = vec![false; total];
        // For the sweep-wide progress line: iterations left and the speed measured so far.
        let started = std::time::Instant::now();
        let to_train = self.iterations_left(plan);
        let order = longest_chain_first(plan);
        // Steps that failed in this run, or need one that did (inputs come first in `order`).
        let mut blocked: HashSet<&str> = HashSet::new();
        'scan: loop {
            if crate::train::stop::requested() {
                return Err(ExecError::Interrupted);
            }
            let scan_started = std::time::Instant::now();
            let mut waiting = false;
            for &n in &order {
                let step = &plan.steps[n];
                // Done stays done within a pass: only steps not seen done are looked up.
                if counted[n] {
                    continue;
                }
                if self.is_done(&step.key) {
                    counted[n] = true;
                    summary.cached += 1;
                    summary.cached_iterations += step.iterations;
                    continue;
                }
                if blocked.contains(step.key.as_str()) {
                    continue;
                }
                let dir = self.step_dir(&step.key);
                if failure::failed_in(&dir, &self.run_id)
                    || step.inputs.iter().any(|i| blocked.contains(i.as_str()))
                {
                    blocked.insert(&step.key);
                    continue;
                }
                if !step.inputs.iter().all(|i| self.is_done(i)) {
                    waiting = true;
                    continue;
                }
                let Some(_lock) = lock::try_lock(&dir, &self.worker).map_err(io_err(&dir))? else {
                    waiting = true;
                    continue;
                };
                if self.is_done(&step.key) || failure::failed_in(&dir, &self.run_id) {
                    continue;
                }
                if crate::train::stop::requested() {
                    return Err(ExecError::Interrupted);
                }
                if self.progress == Progress::Bar {
                    let done = plan.steps.iter().filter(|s| self.is_done(&s.key)).count();
                    // Counted from the cache: other workers (processes too) train their share.
                    let left = self.iterations_left(plan);
                    let trained = to_train.saturating_sub(left);
                    let eta = eta(started, trained, left)
                        .map(|e| format!(", eta {e}"))
                        .unwrap_or_default();
                    eprintln!(
                        "[{done}/{total} steps done, {} iterations left{eta}] {} {}",
                        crate::plan::thousands(left),
                        step.kind.word(),
                        step.label
                    );
                }
                if let Err(failure) = self.execute_locked(plan, step)? {
                    summary.failed.push(failure);
                    blocked.insert(&step.key);
                    continue 'scan;
                }
                counted[n] = true;
                summary.ran += 1;
                summary.trained_iterations += step.iterations;
                continue 'scan;
            }
            if !waiting {
                return Ok(());
            }
            std::thread::sleep(poll_pause(scan_started.elapsed()));
        }
    }

    /// Runs `step`, whose lock the caller holds, and marks it done; `Ok(Err(..))`: it failed,
    /// and the failure is recorded (the steps that need it are skipped in this run). A damaged
    /// input or an interruption stops the whole run instead.
    fn execute_locked(
        &mut self,
        plan: &Plan,
        step: &Step,
    ) -> Result<Result<(), failure::Failure>, ExecError> {
        let dir = self.step_dir(&step.key);
        failure::clear(&dir);
        match self.attempt(plan, step) {
            Ok(()) => {}
            Err(e @ (ExecError::Corrupt { .. } | ExecError::Interrupted)) => return Err(e),
            Err(e) => return Ok(Err(self.fail(step, &e)?)),
        }
        let done = dir.join("done");
        crate::store::atomic_write(&done, done_record(step).to_string().as_bytes())
            .map_err(io_err(&done))?;
        Ok(Ok(()))
    }

    /// Runs the one step `key` of `plan` (a cluster job): waits while another process holds
    /// it; does nothing if it is already done. Its inputs must be done.
    pub fn run_one(&mut self, plan: &Plan, key: &str) -> Result<OneStep, ExecError> {
        let Some(step) = plan.get(key) else {
            return Ok(OneStep::NotInPlan);
        };
        if let Some(missing) = step.inputs.iter().find(|i| !self.is_done(i)) {
            return Ok(OneStep::InputMissing(missing.clone()));
        }
        let dir = self.step_dir(key);
        loop {
            if self.is_done(key) {
                return Ok(OneStep::Cached);
            }
            let Some(_lock) = lock::try_lock(&dir, &self.worker).map_err(io_err(&dir))? else {
                std::thread::sleep(std::time::Duration::from_millis(500));
                continue;
            };
            if self.is_done(key) {
                return Ok(OneStep::Cached);
            }
            // A damaged input is removed and reported (an error): the next run recomputes it.
            return Ok(match self.execute_locked(plan, step)? {
                Ok(()) => OneStep::Ran,
                Err(f) => OneStep::Failed(f),
            });
        }
    }

    /// Runs one step; a panic inside it (a bug) becomes an error of that step alone.
    fn attempt(&mut self, plan: &Plan, step: &Step) -> Result<(), ExecError> {
        panic::catch(|| self.run_step(plan, step)).unwrap_or_else(|message| {
            Err(ExecError::Panic {
                step: step.label.clone(),
                message,
            })
        })
    }

    /// Records that `step` failed with `error`, and says so (a dataset the preflight reported
    /// is not reported again for every step that needs it).
    fn fail(&self, step: &Step, error: &ExecError) -> Result<failure::Failure, ExecError> {
        let diag = error.to_diag();
        if !matches!(error, ExecError::Unavailable(_)) {
            eprint!(
                "{}",
                crate::diag::render_report(std::slice::from_ref(&diag), &Default::default(), false)
            );
        }
        let dir = self.step_dir(&step.key);
        failure::record(&dir, &self.run_id, &step.label, &diag).map_err(io_err(&dir))
    }

    /// The iteration at which the training run `key` diverged, if it did.
    pub fn diverged_at(&self, key: &str) -> Option<u64> {
        let bytes = crate::store::read_checked(&self.step_dir(key).join("diverged.json")).ok()?;
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["iteration"].as_u64()
    }

    /// Checks every artifact in the cache; returns (files checked, damaged files removed).
    pub fn verify(&self) -> (usize, Vec<(PathBuf, String)>) {
        let mut checked = 0;
        let mut damaged = Vec::new();
        let Ok(steps) = std::fs::read_dir(self.cache.join("steps")) else {
            return (0, damaged);
        };
        for dir in steps.filter_map(Result::ok).map(|e| e.path()) {
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for f in files.filter_map(Result::ok).map(|e| e.path()) {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !(name.ends_with(".ckpt") || name.ends_with(".json")) {
                    continue;
                }
                checked += 1;
                if let Err(crate::store::ReadError::Corrupt(reason)) =
                    crate::store::read_checked(&f)
                {
                    let _ = std::fs::remove_file(&f);
                    if name != "resume.ckpt" {
                        let _ = std::fs::remove_file(dir.join("done"));
                    }
                    damaged.push((f, reason));
                }
            }
        }
        (checked, damaged)
    }

    pub fn dataset(&mut self, spec: &DatasetSpec) -> Result<Arc<Dataset>, ExecError> {
        let id = dataset_id(spec);
        if let Some(d) = self.datasets.get(&id) {
            return Ok(d.clone());
        }
        if let Some(e) = self.unavailable.get(&id) {
            return Err(ExecError::Unavailable(e.clone()));
        }
        let d = Arc::new(
            data::load(spec, &self.data_dir, self.progress == Progress::Bar)
                .map_err(ExecError::Data)?,
        );
        self.datasets.insert(id, d.clone());
        Ok(d)
    }

    /// Loads a state file of a finished step, removing it if it is damaged.
    pub fn load_state(&self, path: &Path) -> Result<State, ExecError> {
        State::load(path).map_err(|e| {
            if let crate::store::ReadError::Corrupt(_) = e {
                let _ = std::fs::remove_file(path);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_file(dir.join("done"));
                }
            }
            ExecError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })
    }

    /// The state a step's output represents (init, rewind: `state.ckpt`; train: its end).
    pub fn output_state(&self, plan: &Plan, key: &str) -> Result<State, ExecError> {
        self.load_state(&self.step_dir(key).join(output_file(plan.get(key))))
    }
}

/// How long a worker waits before it looks again for a step it can run, given how long one
/// look took (a few file lookups per step not done): ten times that, so that waiting costs
/// about a tenth of a core however large the plan, but between 5 ms (a step that becomes
/// ready is taken at once: a fixed 100 ms lost ~50 ms at each wait, at a sweep's start and
/// end) and 100 ms.
fn poll_pause(scan: std::time::Duration) -> std::time::Duration {
    use std::time::Duration;
    (scan * 10).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

/// How the executor names a dataset among those it loaded (and those it could not).
fn dataset_id(spec: &DatasetSpec) -> String {
    spec.canonical().to_string()
}

/// Distinguishes runs in failure markers: the process and the moment it started.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// A step directory found in the cache.
pub struct CachedStep {
    pub key: String,
    /// The parsed `done` marker; `None` for a step not finished.
    pub done: Option<serde_json::Value>,
    /// Size of its files.
    pub bytes: u64,
}

impl CachedStep {
    pub fn kind(&self) -> &str {
        self.done
            .as_ref()
            .and_then(|d| d["kind"].as_str())
            .unwrap_or("unfinished")
    }
}

/// Every step directory of a cache, sorted by key.
pub fn cached_steps(cache: &Path) -> Vec<CachedStep> {
    let Ok(dirs) = std::fs::read_dir(cache.join("steps")) else {
        return Vec::new();
    };
    let mut out: Vec<CachedStep> = dirs
        .filter_map(Result::ok)
        .map(|d| CachedStep {
            key: d.file_name().to_string_lossy().into_owned(),
            done: std::fs::read_to_string(d.path().join("done"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok()),
            bytes: folder_bytes(&d.path()),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The size of the files in `dir` (not below it).
pub fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|fs| {
            fs.filter_map(Result::ok)
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Time left at the rate so far: `done` iterations took since `started`, `left` remain
/// (`None` until something is done).
pub fn eta(started: std::time::Instant, done: u64, left: u64) -> Option<String> {
    if done == 0 {
        return None;
    }
    let secs = started.elapsed().as_secs_f64() / done as f64 * left as f64;
    Some(format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60))
}

/// What a `done` marker records: the step's kind and canonical spec (for `plan --explain`).
pub fn done_record(step: &Step) -> serde_json::Value {
    serde_json::json!({ "kind": step.kind.word(), "spec": step.spec, "inputs": step.inputs })
}

fn output_file(step: Option<&Step>) -> String {
    match step.map(|s| &s.payload) {
        Some(crate::plan::Payload::Train { end, .. }) => format!("it_{end}.ckpt"),
        _ => "state.ckpt".into(),
    }
}
