//! Per-step locks, so that several `lthc run` processes (or `--jobs` workers) on one cache never
//! compute the same step at the same time. A lock is a file created exclusively, holding the
//! owner's process id and host (and Slurm job, in a cluster job); a lock whose owner is gone is
//! stale and is taken over. Many nodes may share one cache directory: a process on another host
//! is judged by its Slurm job (still in the queue or not), or else assumed alive.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct StepLock {
    path: PathBuf,
}

impl Drop for StepLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's name, as locks record it.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Whether the owner recorded in a lock file (`pid worker host job`) may still hold it.
fn alive(owner: &str) -> Option<bool> {
    let mut words = owner.split_whitespace();
    let pid: u32 = words.next()?.parse().ok()?;
    let _worker = words.next();
    let owner_host = words.next().unwrap_or_default();
    let job = words.next().unwrap_or("-");
    if !owner_host.is_empty() && owner_host != host() {
        // Another node: its Slurm job tells; a plain process elsewhere cannot be seen.
        return Some(job == "-" || crate::exec::slurm::queue::job_alive(job));
    }
    if pid == std::process::id() {
        return Some(true);
    }
    // Linux: a live process has /proc/<pid>. Elsewhere, assume alive (never steal).
    if Path::new("/proc/self").exists() {
        return Some(Path::new(&format!("/proc/{pid}")).exists());
    }
    Some(true)
}

/// Tries to lock `dir`'s step. `Ok(None)`: another live process holds it.
pub fn try_lock(dir: &Path, worker: &str) -> std::io::Result<Option<StepLock>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("lock");
    for _ in 0..2 {
        // Write the owner first, then link it into place: a lock file never exists half-written.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "-".into());
        writeln!(tmp, "{} {worker} {} {job}", std::process::id(), host())?;
        match std::fs::hard_link(tmp.path(), &path) {
            Ok(()) => return Ok(Some(StepLock { path })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                match alive(&owner) {
                    // Held by a live process (this one's other workers included).
                    Some(true) => return Ok(None),
                    // Its process died: the lock is stale; take it over.
                    Some(false) => {
                        let _ = std::fs::remove_file(&path);
                    }
                    // Vanished between the link and the read: try again.
                    None => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_judged_by_host_and_job() {
        let me = std::process::id();
        let here = host();
        assert_eq!(alive(&format!("{me} w {here} -")), Some(true));
        // A process id that cannot exist on this host: stale.
        assert_eq!(alive(&format!("{} w {here} -", u32::MAX)), Some(false));
        // Old lock files carry no host: judged here.
        assert_eq!(alive(&format!("{} w", u32::MAX)), Some(false));
        // Another node without a Slurm job cannot be seen: never stolen.
        assert_eq!(
            alive(&format!("{} w other-node-{here} -", u32::MAX)),
            Some(true)
        );
        assert_eq!(alive(""), None);
    }
}
