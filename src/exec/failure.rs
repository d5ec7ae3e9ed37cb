//! Failed steps. A step that fails writes `failed.json` in its directory: the diagnostic and the
//! run that hit it. Within that run the steps that need it are skipped (every worker, in any
//! process of the run, reads the marker); the next run tries the step again.

use std::path::Path;

use serde_json::json;

use crate::diag::Diag;

const FILE: &str = "failed.json";

/// A step that failed in this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub label: String,
    pub code: String,
    pub message: String,
    pub help: String,
}

/// Records that the step in `dir` failed in run `run` with `diag`.
pub fn record(dir: &Path, run: &str, label: &str, diag: &Diag) -> std::io::Result<Failure> {
    let failure = Failure {
        label: label.to_string(),
        code: diag.code.to_string(),
        message: diag.message.clone(),
        help: diag.help.clone().unwrap_or_default(),
    };
    let value = json!({
        "run": run,
        "label": failure.label,
        "code": failure.code,
        "message": failure.message,
        "help": failure.help,
    });
    std::fs::create_dir_all(dir)?;
    // Checksummed like every other artifact, so that `lthc cache verify` accepts it.
    crate::store::write_checked(&dir.join(FILE), value.to_string().as_bytes())?;
    Ok(failure)
}

/// Whether the step in `dir` failed in run `run` (a marker from an earlier run does not count).
pub fn failed_in(dir: &Path, run: &str) -> bool {
    crate::store::read_checked(&dir.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["run"] == run)
}

/// Forgets an earlier run's failure before the step is tried again.
pub fn clear(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}

/// The failure recorded for the step in `dir`, from whichever run hit it.
pub fn read(dir: &Path) -> Option<Failure> {
    let bytes = crate::store::read_checked(&dir.join(FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Some(Failure {
        label: text("label"),
        code: text("code"),
        message: text("message"),
        help: text("help"),
    })
}
