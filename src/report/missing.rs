//! What a report lacks: records of its experiments not in the cache, and why — a step they need
//! failed (its recorded diagnostic), their dataset is not on this machine, or nothing has run
//! them yet.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::plan::Plan;

/// Missing records of one experiment instance that share a reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub experiment: String,
    pub records: usize,
    pub reason: String,
}

impl Missing {
    pub fn line(&self) -> String {
        format!(
            "{}: {} result{} missing: {}",
            self.experiment,
            self.records,
            if self.records == 1 { "" } else { "s" },
            self.reason
        )
    }
}

/// The missing records of `instances`, grouped by experiment and reason, in plan order.
/// `data_dir` is where datasets are looked for.
pub fn missing(
    plan: &Plan,
    cache: &Path,
    data_dir: &Path,
    instances: &HashSet<String>,
) -> Vec<Missing> {
    let steps = cache.join("steps");
    let done = |key: &str| steps.join(key).join("result.json").exists();
    let mut reasons: HashMap<String, String> = HashMap::new();
    let mut out: Vec<Missing> = Vec::new();
    for r in plan
        .records
        .iter()
        .filter(|r| instances.contains(&r.experiment) && !done(&r.evaluate))
    {
        let mut reason = why(plan, &steps, &r.evaluate, &mut reasons);
        if reason == NOT_RUN {
            if let Some(absent) = absent_dataset(plan, &r.train, data_dir) {
                reason = absent;
            }
        }
        match out
            .iter_mut()
            .find(|m| m.experiment == r.experiment && m.reason == reason)
        {
            Some(m) => m.records += 1,
            None => out.push(Missing {
                experiment: r.experiment.clone(),
                records: 1,
                reason,
            }),
        }
    }
    out
}

/// The first failure recorded in `key` or the steps it needs; else "not run yet".
fn why(plan: &Plan, steps: &Path, key: &str, memo: &mut HashMap<String, String>) -> String {
    if let Some(r) = memo.get(key) {
        return r.clone();
    }
    let reason = match crate::exec::failure::read(&steps.join(key)) {
        Some(f) => format!("{} failed [{}]: {}", f.label, f.code, f.message),
        None => plan
            .get(key)
            .into_iter()
            .flat_map(|s| s.inputs.iter())
            .map(|i| why(plan, steps, i, memo))
            .find(|r| r != NOT_RUN)
            .unwrap_or_else(|| NOT_RUN.to_string()),
    };
    memo.insert(key.to_string(), reason.clone());
    reason
}

/// Why a run could not start here: its dataset's directory is absent and lthc cannot fetch it.
/// (A directory that is there but damaged shows when `lthc run` tries it.)
fn absent_dataset(plan: &Plan, train: &str, data_dir: &Path) -> Option<String> {
    let spec = crate::exec::preflight::dataset_of(plan.get(train)?)?;
    let dir = crate::data::dataset_dir(spec, data_dir);
    (spec.fetch.is_none() && !dir.exists()).then(|| {
        format!(
            "dataset `{}` is not in {} [{}]",
            spec.name,
            dir.display(),
            crate::diag::code::DATA_MISSING
        )
    })
}

const NOT_RUN: &str = "not run yet (`lthc run` trains it)";
