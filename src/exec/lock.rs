//! Per-step locks, so that several `lthc run` processes (or `--jobs` workers) on one cache never
//! compute the same step at the same time. A lock is a file created exclusively, holding the
//! owner's process id; a lock whose process is gone is stale and is taken over.

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

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Linux: a live process has /proc/<pid>. Elsewhere, assume alive (never steal).
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    true
}

/// Tries to lock `dir`'s step. `Ok(None)`: another live process holds it.
pub fn try_lock(dir: &Path, worker: &str) -> std::io::Result<Option<StepLock>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("lock");
    for _ in 0..2 {
        // Write the owner first, then link it into place: a lock file never exists half-written.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        writeln!(tmp, "{} {worker}", std::process::id())?;
        match std::fs::hard_link(tmp.path(), &path) {
            Ok(()) => return Ok(Some(StepLock { path })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                match owner
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    // Held by a live process (this one's other workers included).
                    Some(pid) if alive(pid) => return Ok(None),
                    // Its process died: the lock is stale; take it over.
                    Some(_) => {
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
