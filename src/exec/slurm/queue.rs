//! Talking to Slurm: `sbatch` to submit, `squeue` to watch, `scancel` to cancel. Every failure
//! of these commands becomes a diagnostic.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::diag::{code, Diag};

/// Where a job is, as far as lthc cares.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Queued,
    Running,
    /// Left the queue's active states: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    Ended(String),
}

/// One job (or array task) as `squeue` shows it.
#[derive(Clone, Debug)]
pub struct Job {
    pub phase: Phase,
    /// Why it waits, e.g. `Dependency`, `Resources`, `DependencyNeverSatisfied`.
    pub reason: String,
}

impl Job {
    /// A job whose dependency failed: Slurm leaves it pending forever.
    pub fn stuck(&self) -> bool {
        self.phase == Phase::Queued && self.reason == "DependencyNeverSatisfied"
    }
}

fn phase(state: &str) -> Phase {
    match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED"
        | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => Phase::Queued,
        "RUNNING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "SIGNALING" | "RESIZING" => {
            Phase::Running
        }
        other => Phase::Ended(other.to_string()),
    }
}

fn missing(what: &str) -> Box<Diag> {
    Box::new(Diag::global(
        code::SLURM_MISSING,
        format!("`--executor slurm` needs Slurm, but {what}"),
    )
    .help("run on a machine with the Slurm client commands (sbatch, squeue, scancel) and a reachable controller (SLURM_CONF); `ci/slurm.sh up` starts a one-node cluster for trying it"))
}

/// Checks that the client commands exist and the controller answers.
pub fn check_available() -> Result<(), Box<Diag>> {
    for tool in ["sbatch", "squeue", "scancel"] {
        if which(tool).is_none() {
            return Err(missing(&format!("`{tool}` is not on the PATH")));
        }
    }
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i", "-j", "0"])
        .output()
        .map_err(|e| missing(&format!("`squeue` cannot be started: {e}")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    // `-j 0` is never a job: a live controller says so; a dead one cannot be reached.
    if !out.status.success() && !err.contains("Invalid job id") {
        return Err(missing(&format!(
            "the controller does not answer: {}",
            first_line(&err)
        )));
    }
    Ok(())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

/// What `sbatch` is asked for, besides the script.
pub struct Submission<'a> {
    pub name: &'a str,
    /// Array tasks 0..n (`None`: a single job).
    pub array: Option<usize>,
    /// Job ids (`123` or `123_4`) that must complete successfully first.
    pub after: &'a [String],
    /// Log file (`%a` is the array index).
    pub output: &'a Path,
    /// Resource flags (partition, account, GPUs, ...).
    pub flags: &'a [String],
}

/// Submits `script`; returns the job id.
pub fn submit(script: &Path, s: &Submission) -> Result<String, Box<Diag>> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--job-name={}", s.name))
        .arg(format!("--output={}", s.output.display()));
    if let Some(n) = s.array {
        cmd.arg(format!("--array=0-{}", n - 1));
    }
    if !s.after.is_empty() {
        cmd.arg(format!("--dependency=afterok:{}", s.after.join(":")));
    }
    cmd.args(s.flags).arg(script);
    let out = cmd.output().map_err(|e| {
        Diag::global(
            code::SLURM_SUBMIT,
            format!("`sbatch` cannot be started: {e}"),
        )
        .help("check that the Slurm client commands are installed")
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if !out.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Box::new(Diag::global(
            code::SLURM_SUBMIT,
            format!(
                "sbatch refused the job `{}`: {}",
                s.name,
                first_line(&String::from_utf8_lossy(&out.stderr))
            ),
        )
        .help("check the executor's partition, account, GPUs, memory and time limit against `sinfo`; the job script is kept in the cache's slurm/ folder")));
    }
    Ok(id)
}

/// Every job of this user that the controller still knows, by id (`123`, `123_4`).
pub fn jobs() -> Result<HashMap<String, Job>, Box<Diag>> {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(current_user);
    let out = Command::new("squeue")
        .args(["-h", "-r", "--states=all", "-u", &user, "-o", "%i|%T|%r"])
        .output()
        .map_err(|e| missing(&format!("`squeue` cannot be started: {e}")))?;
    if !out.status.success() {
        return Err(Box::new(Diag::global(
            code::SLURM_MISSING,
            format!(
                "squeue failed: {}",
                first_line(&String::from_utf8_lossy(&out.stderr))
            ),
        )
        .help("check that the Slurm controller is up (`sinfo`); the jobs already submitted keep running, and `lthc run` again waits for them")));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let id = f.next()?.to_string();
            let state = f.next()?;
            let reason = f.next().unwrap_or_default().to_string();
            Some((
                id,
                Job {
                    phase: phase(state),
                    reason,
                },
            ))
        })
        .collect())
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Cancels jobs (or array tasks); ones already gone are ignored.
pub fn cancel(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("scancel").args(ids).output();
}

/// Whether a job (from a lock on another node) is still queued or running.
pub fn job_alive(id: &str) -> bool {
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-o", "%T", "-j", id])
        .output()
    else {
        // No Slurm here: the owner cannot be judged; never steal its lock.
        return true;
    };
    let state = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "Invalid job id": the controller forgot it long ago.
        return !String::from_utf8_lossy(&out.stderr).contains("Invalid job id");
    }
    state
        .lines()
        .any(|s| !matches!(phase(s.trim()), Phase::Ended(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_phases() {
        assert_eq!(phase("PENDING"), Phase::Queued);
        assert_eq!(phase("RUNNING"), Phase::Running);
        assert_eq!(phase("COMPLETING"), Phase::Running);
        assert_eq!(phase("TIMEOUT"), Phase::Ended("TIMEOUT".into()));
        let stuck = Job {
            phase: Phase::Queued,
            reason: "DependencyNeverSatisfied".into(),
        };
        assert!(stuck.stuck());
    }
}
