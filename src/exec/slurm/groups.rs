//! Which steps go into one submission. Steps of one kind that wait on the same submissions are
//! siblings (the dense runs of every seed, the evaluations of one level, ...): they become one
//! job array. A task still waits only on the jobs its own members' inputs run in; an array's
//! dependency is the union over its members (task ids, so that one failed task does not hold
//! back unrelated work once the array is resubmitted).

use std::collections::{BTreeSet, HashMap};

/// Slurm's default `MaxArraySize` is 1001 (indices 0..=1000).
pub const MAX_ARRAY: usize = 1000;

/// What a step waits on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dep {
    /// A job already in the queue (`123` or `123_4`).
    Queued(String),
    /// Another step of this submission.
    Step(String),
}

/// A step to submit: its key, kind, and the inputs it must wait for.
pub struct Pending {
    pub key: String,
    pub kind: &'static str,
    pub deps: Vec<Dep>,
}

/// One submission: a single job or an array, in an order where every group comes after the
/// groups it depends on.
#[derive(Debug)]
pub struct Group {
    pub kind: &'static str,
    pub keys: Vec<String>,
}

/// Groups `steps` (inputs before the steps that need them).
pub fn group(steps: &[Pending]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    // (kind, what its members wait on) -> the open group with room left.
    let mut open: HashMap<(&str, BTreeSet<String>), usize> = HashMap::new();
    for step in steps {
        let waits: BTreeSet<String> = step
            .deps
            .iter()
            .map(|d| match d {
                // A task waits with its array's siblings.
                Dep::Queued(id) => format!("job {}", id.split('_').next().unwrap_or(id)),
                Dep::Step(key) => format!("group {}", group_of[key.as_str()]),
            })
            .collect();
        let slot = (step.kind, waits);
        let g = match open.get(&slot) {
            Some(&g) if groups[g].keys.len() < MAX_ARRAY => g,
            _ => {
                groups.push(Group {
                    kind: step.kind,
                    keys: Vec::new(),
                });
                open.insert(slot, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[g].keys.push(step.key.clone());
        group_of.insert(&step.key, g);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str, kind: &'static str, deps: &[Dep]) -> Pending {
        Pending {
            key: key.into(),
            kind,
            deps: deps.to_vec(),
        }
    }

    fn s(k: &str) -> Dep {
        Dep::Step(k.into())
    }

    #[test]
    fn siblings_share_an_array_and_dependents_follow() {
        // Three seeds: init -> train -> evaluate each.
        let steps = vec![
            step("i0", "init", &[]),
            step("i1", "init", &[]),
            step("i2", "init", &[]),
            step("t0", "train", &[s("i0")]),
            step("t1", "train", &[s("i1")]),
            step("t2", "train", &[s("i2")]),
            step("e0", "evaluate", &[s("t0")]),
            step("e1", "evaluate", &[s("t1")]),
            step("e2", "evaluate", &[s("t2")]),
        ];
        let g = group(&steps);
        let keys: Vec<Vec<&str>> = g
            .iter()
            .map(|g| g.keys.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            keys,
            vec![
                vec!["i0", "i1", "i2"],
                vec!["t0", "t1", "t2"],
                vec!["e0", "e1", "e2"]
            ]
        );
    }

    #[test]
    fn different_waits_or_kinds_are_not_merged() {
        let steps = vec![
            step("a", "train", &[Dep::Queued("10_0".into())]),
            step("b", "train", &[Dep::Queued("10_1".into())]),
            step("c", "train", &[Dep::Queued("11".into())]),
            step("d", "evaluate", &[Dep::Queued("11".into())]),
            step("e", "train", &[]),
        ];
        let g = group(&steps);
        assert_eq!(g.len(), 4);
        assert_eq!(g[0].keys, ["a", "b"]);
    }

    #[test]
    fn arrays_are_split_at_slurms_limit() {
        let steps: Vec<Pending> = (0..MAX_ARRAY + 5)
            .map(|i| step(&format!("k{i}"), "init", &[]))
            .collect();
        let g = group(&steps);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].keys.len(), MAX_ARRAY);
        assert_eq!(g[1].keys.len(), 5);
    }
}
