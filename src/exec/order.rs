//! The order in which a worker looks for a step to run: the most work still ahead of a step
//! first (its own training iterations and the longest chain of steps that need it), then plan
//! order. With several workers, the step on the longest remaining chain starts first, so the
//! chains of a sweep (one per rewind point and seed, of different lengths) end close together
//! instead of leaving a short chain's last step running alone on one core.
//!
//! A step that trains nothing (init, prune, rewind, evaluate, measure: milliseconds) ranks
//! just below its lowest-ranked input instead, so it runs as soon as that is done: results
//! appear as a sweep goes (ranked by the work ahead alone, every evaluation waited for the
//! end), and a chain's next training is not held up behind other chains' trainings. Either
//! way a step always ranks below the steps it needs.

use std::collections::HashMap;

use crate::plan::Plan;

/// Indices of `plan.steps` in the order above, plan order between equals. Relies on the plan
/// listing every step after its inputs.
pub fn longest_chain_first(plan: &Plan) -> Vec<usize> {
    let index = positions(plan);
    let inputs = |n: usize| {
        plan.steps[n]
            .inputs
            .iter()
            .filter_map(|i| index.get(i.as_str()).copied())
    };
    // ahead[n]: step n's cost (its iterations, at least one) plus the most that any step
    // needing it has ahead of it.
    let mut ahead: Vec<u64> = vec![0; plan.steps.len()];
    for (n, step) in plan.steps.iter().enumerate().rev() {
        ahead[n] += step.iterations + 1;
        for i in inputs(n) {
            ahead[i] = ahead[i].max(ahead[n]);
        }
    }
    // Ranks in half units. A training step ranks at twice its work ahead; whatever it needs
    // ranks higher, even a step that trains nothing a few steps up: each step between adds a
    // unit of work ahead (two half units) and one that trains nothing takes off only one.
    let mut rank: Vec<u64> = vec![0; plan.steps.len()];
    for (n, step) in plan.steps.iter().enumerate() {
        rank[n] = match inputs(n).map(|i| rank[i]).min() {
            Some(lowest) if step.iterations == 0 => lowest - 1,
            _ => 2 * ahead[n],
        };
    }
    let mut order: Vec<usize> = (0..plan.steps.len()).collect();
    order.sort_by_key(|&n| (std::cmp::Reverse(rank[n]), n));
    order
}

/// How many training steps of `plan` not `done` yet can run side by side, at least: the most
/// that have the same number of training steps before them (two such steps never need one
/// another). A sweep's chains give one per chain; a single chain (one seed, one rewind point,
/// or the last one left of a resumed sweep) gives one, and then one worker on all cores beats
/// several single-threaded workers taking turns.
pub fn trainings_side_by_side(plan: &Plan, done: impl Fn(&str) -> bool) -> usize {
    let index = positions(plan);
    // before[n]: training steps on the longest path to step n, n included.
    let mut before: Vec<usize> = vec![0; plan.steps.len()];
    let mut at_depth: HashMap<usize, usize> = HashMap::new();
    for (n, step) in plan.steps.iter().enumerate() {
        let inputs = step.inputs.iter().filter_map(|i| index.get(i.as_str()));
        let depth = inputs.map(|&i| before[i]).max().unwrap_or(0);
        before[n] = depth + usize::from(step.iterations > 0);
        if step.iterations > 0 && !done(&step.key) {
            *at_depth.entry(depth).or_default() += 1;
        }
    }
    at_depth.into_values().max().unwrap_or(0)
}

/// Each step's index in `plan.steps`, by key.
fn positions(plan: &Plan) -> HashMap<&str, usize> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(n, s)| (s.key.as_str(), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_files, Memory};

    #[test]
    fn the_longest_chain_goes_first_with_inputs_before_the_steps_that_need_them() {
        // Chains of 3 x 100, 3 x 60 and 3 x 10 iterations after the dense run.
        let src = r#"import "stdlib/mnist.lth"
experiment e {
  network = lenet
  data = mnist
  train = lenet_adam with { duration = 100 it }
  prune = magnitude(global, 20%) for 3 levels
  rewind = [0 it, 40 it, 90 it]
}
"#;
        let mut mem = Memory::default();
        mem.0.insert("e.lth".into(), src.into());
        let (_, checked, diags) = check_files(&["e.lth".into()], &mem);
        assert!(diags.is_empty(), "{diags:?}");
        let plan = crate::plan::build(&checked.experiments);
        let order = longest_chain_first(&plan);
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(at, &i)| (plan.steps[i].key.as_str(), at))
            .collect();
        for s in &plan.steps {
            for input in &s.inputs {
                assert!(
                    position[input.as_str()] < position[s.key.as_str()],
                    "{}",
                    s.label
                );
            }
        }
        // Retraining steps by iterations: each by the iterations ahead of it (300, 200, 180,
        // 120, 100, 60, 30, 20, 10), not level by level; a breadth-first order would start
        // all three chains before any second level, and end on a short chain's last step.
        let trains: Vec<u64> = order
            .iter()
            .map(|&i| &plan.steps[i])
            .filter(|s| s.label.starts_with("train imp"))
            .map(|s| s.iterations)
            .collect();
        assert_eq!(
            trains,
            [100, 100, 60, 60, 100, 60, 10, 10, 10],
            "{trains:?}"
        );
        // Each evaluation, prune and rewind comes right after what it needs, before any other
        // training: results appear as the sweep goes.
        for s in plan.steps.iter().filter(|s| s.iterations == 0) {
            let Some(last_input) = s.inputs.iter().map(|i| position[i.as_str()]).max() else {
                continue;
            };
            let between = &order[last_input + 1..position[s.key.as_str()]];
            assert!(
                between.iter().all(|&n| plan.steps[n].iterations == 0),
                "{} waits behind a training",
                s.label
            );
        }
    }

    #[test]
    fn a_sweep_trains_one_step_per_chain_side_by_side_and_a_single_chain_one() {
        let plan = |rewind: &str, seeds: &str| {
            let src = format!(
                r#"import "stdlib/mnist.lth"
experiment e {{
  network = lenet
  data = mnist
  train = lenet_adam with {{ duration = 100 it }}
  prune = magnitude(global, 20%) for 3 levels
  rewind = {rewind}
  seeds = {seeds}
}}
"#
            );
            let mut mem = Memory::default();
            mem.0.insert("e.lth".into(), src);
            let (_, checked, diags) = check_files(&["e.lth".into()], &mem);
            assert!(diags.is_empty(), "{diags:?}");
            crate::plan::build(&checked.experiments)
        };
        let none = |_: &str| false;
        let sweep = plan("[0 it, 40 it, 90 it]", "1");
        assert_eq!(trainings_side_by_side(&sweep, none), 3);
        assert_eq!(trainings_side_by_side(&plan("[0 it]", "1"), none), 1);
        assert_eq!(trainings_side_by_side(&plan("[0 it]", "[1, 2]"), none), 2);
        assert_eq!(trainings_side_by_side(&plan("[10 it]", "1"), none), 1);
        // Resumed with all but the 100-iteration chain's last level done: one left.
        let last: Vec<String> = sweep
            .steps
            .iter()
            .filter(|s| s.iterations == 100 && s.label.contains("level 3"))
            .map(|s| s.key.clone())
            .collect();
        assert_eq!(last.len(), 1, "{last:?}");
        let done = |key: &str| !last.iter().any(|k| k == key);
        assert_eq!(trainings_side_by_side(&sweep, done), 1);
    }
}
