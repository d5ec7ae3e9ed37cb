//! Worker processes for `lthc run --jobs N` on the CPU: the run's own process is one worker,
//! and N − 1 more are `lthc work` processes on the same cache, files and run id. Measured on
//! the LeNet sweep, two steps trained side by side as threads of one process take 30–40%
//! longer per iteration than the same steps in two processes (they share burn's autodiff graph
//! registry, the allocator and the address space); as processes they share nothing but the
//! cache, whose per-step locks already keep any number of processes from training a step twice.
//!
//! A worker process reports on stdout, as one JSON line, what it ran (or the diagnostic that
//! stopped it); failed steps are read from the cache, where every worker records them under the
//! run id. It stops cleanly (saving, like Ctrl-C) when its stdin closes: when the run asks it
//! to, or when the run's process dies, however it dies.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::RunJob;
use crate::check::{check_files, Disk};
use crate::diag::{code, render_report, Diag};
use crate::plan::{self, Plan};
use crate::train::TrainBackend;

/// What the run's worker processes did, added up.
#[derive(Default)]
pub struct Counts {
    pub ran: usize,
    pub trained_iterations: u64,
}

/// Names a plan by its steps' keys (each already a digest of everything the step depends on).
pub fn plan_digest(p: &Plan) -> String {
    let mut h = Sha256::new();
    for s in &p.steps {
        h.update(s.key.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}

/// The worker processes of one run.
pub struct Workers {
    children: Vec<Child>,
}

impl Workers {
    /// Starts `n` worker processes for `job`, named `worker` and a number in lock files, that
    /// refuse to work if the files no longer plan to `plan` ([`plan_digest`]); one that cannot
    /// start is left out (the run's own worker does its share).
    pub fn spawn(n: usize, job: &RunJob, worker: &str, plan: &str) -> Workers {
        let Ok(exe) = std::env::current_exe() else {
            return Workers::none();
        };
        let children = (1..=n)
            .filter_map(|w| {
                Command::new(&exe)
                    .arg("work")
                    .args(["--cache".as_ref(), job.cache.as_os_str()])
                    .args(["--data".as_ref(), job.data.as_os_str()])
                    .args(["--device", &job.device, "--run", &job.run, "--plan", plan])
                    .args(["--worker", &format!("{worker}{w}")])
                    .arg("--")
                    .args(&job.files)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .ok()
            })
            .collect();
        Workers { children }
    }

    /// None: the run's other workers are threads.
    pub fn none() -> Workers {
        Workers { children: vec![] }
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Asks every worker to save and stop (closes their stdin).
    pub fn stop(&mut self) {
        for c in &mut self.children {
            drop(c.stdin.take());
        }
    }

    /// Waits for every worker; their counts, or the first diagnostic that stopped one. A worker
    /// that died without a word (killed, out of memory) only warns: its lock was stale, so the
    /// other workers took over its step.
    pub fn finish(mut self, color: bool) -> Result<Counts, Box<Diag>> {
        let mut counts = Counts::default();
        let mut first_error = None;
        for c in &mut self.children {
            let mut out = String::new();
            if let Some(mut stdout) = c.stdout.take() {
                let _ = stdout.read_to_string(&mut out);
            }
            let status = c.wait();
            let report: Option<Value> = out
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok());
            match report {
                Some(r) if r["error"].is_object() => {
                    first_error.get_or_insert_with(|| reported_error(&r["error"]));
                }
                Some(r) => {
                    counts.ran += r["ran"].as_u64().unwrap_or(0) as usize;
                    counts.trained_iterations += r["trained_iterations"].as_u64().unwrap_or(0);
                }
                None => {
                    let how = match status {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let d = Diag::global(
                        code::EXEC_WORKER,
                        format!("a worker process ended without finishing ({how}); the others took over its step"),
                    )
                    .help("if it was killed for memory, run with fewer --jobs");
                    eprint!(
                        "{}",
                        render_report(&[d.warning()], &Default::default(), color)
                    );
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(counts),
        }
    }
}

impl Drop for Workers {
    /// A run that returns early (an error in its own worker) still stops and reaps its workers.
    fn drop(&mut self) {
        self.stop();
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

/// The diagnostic a worker reported, as the run's own: its code where it is one a run can
/// stop with, else `lth::exec::worker` with the worker's code quoted.
fn reported_error(e: &Value) -> Box<Diag> {
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    let (reported, message) = (text("code"), text("message"));
    let known = [
        code::EXEC_INTERRUPTED,
        code::EXEC_IO,
        code::EXEC_CORRUPT,
        code::EXEC_TRAIN,
        code::EXEC_WORKER,
    ];
    let d = match known.into_iter().find(|k| *k == reported) {
        Some(k) => Diag::global(k, message),
        None => Diag::global(code::EXEC_WORKER, format!("{message} [{reported}]")),
    };
    Box::new(d.help(text("help")))
}

/// `lthc work`: one worker of a run started by `lthc run`. Prints its report as JSON.
pub fn work(job: RunJob, worker: String, plan: String) -> i32 {
    // The run's process says what Ctrl-C does; here it only asks this worker to stop.
    let _ = ctrlc::set_handler(crate::train::stop::request);
    std::thread::spawn(|| {
        // Blocks until the run closes the pipe or dies: then save and stop.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        crate::train::stop::request();
    });
    let report = match joined(&job, &worker, &plan) {
        Ok(counts) => json!({"ran": counts.ran, "trained_iterations": counts.trained_iterations}),
        Err(d) => json!({"error": {"code": d.code, "message": d.message, "help": d.help}}),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{report}");
    0
}

/// Checks the files (the run already reported their warnings), then works through the plan.
fn joined(job: &RunJob, worker: &str, plan: &str) -> Result<Counts, Box<Diag>> {
    let (_, checked, diags) = check_files(&job.files, &Disk);
    if let Some(d) = diags.iter().find(|d| d.is_error()) {
        return Err(Box::new(d.clone()));
    }
    let p = plan::build(&checked.experiments);
    if plan_digest(&p) != plan {
        return Err(Box::new(
            Diag::global(code::EXEC_WORKER, "the files changed after the run started")
                .help("run the same command again: it plans the files as they are now"),
        ));
    }
    super::device::dispatch(
        &job.device,
        Job {
            plan: &p,
            job,
            worker,
        },
    )
}

struct Job<'a> {
    plan: &'a Plan,
    job: &'a RunJob,
    worker: &'a str,
}

impl super::device::OnDevice for Job<'_> {
    type Output = Counts;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Counts, Box<Diag>> {
        let mut ex = self.job.executor::<B>(device, self.worker);
        // Loads the datasets; the run's process has reported the missing ones.
        ex.preflight(self.plan);
        let s = ex.run(self.plan).map_err(|e| Box::new(e.to_diag()))?;
        Ok(Counts {
            ran: s.ran,
            trained_iterations: s.trained_iterations,
        })
    }
}

/// Whether `path` is this program (a test harness calling the CLI's functions is not).
pub fn is_lthc(path: &Path) -> bool {
    path.file_stem().is_some_and(|s| s == "lthc")
}
