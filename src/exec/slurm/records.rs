//! Which Slurm job runs a step: `<cache>/steps/<key>/slurm.json`, written when it is submitted
//! (checksummed like every artifact). A second `lthc run` reads it and, if the job is still in
//! the queue, waits for it instead of submitting the step again.

use std::path::{Path, PathBuf};

use serde_json::json;

const FILE: &str = "slurm.json";

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `123` or `123_4` (an array task).
    pub job: String,
    /// The run that submitted it.
    pub run: String,
    /// The job's log file.
    pub log: PathBuf,
}

pub fn write(dir: &Path, r: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let value = json!({ "job": r.job, "run": r.run, "log": r.log });
    crate::store::write_checked(&dir.join(FILE), value.to_string().as_bytes())
}

pub fn read(dir: &Path) -> Option<Record> {
    let bytes = crate::store::read_checked(&dir.join(FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(Record {
        job: v["job"].as_str()?.to_string(),
        run: v["run"].as_str().unwrap_or_default().to_string(),
        log: PathBuf::from(v["log"].as_str().unwrap_or_default()),
    })
}

/// Forgets the job of a step (cancelled by lthc: the step is submitted again).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(FILE));
}
