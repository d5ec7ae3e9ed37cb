//! The order in which a worker looks for a step to run: by depth in the plan's graph (how
//! many steps lie before it), then plan order. Every chain of a sweep (one per rewind point
//! and seed) then advances a level at a time, so that when the chains differ in length the
//! short ones run beside the long ones instead of after them, with one core left idle.
//! Inputs still come before the steps that need them.

use std::collections::HashMap;

use crate::plan::Plan;

/// Indices of `plan.steps`, shallowest first, plan order within a depth.
pub fn breadth_first(plan: &Plan) -> Vec<usize> {
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let depths: Vec<usize> = plan
        .steps
        .iter()
        .map(|s| {
            let d = s
                .inputs
                .iter()
                .filter_map(|i| depth.get(i.as_str()))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(&s.key, d);
            d
        })
        .collect();
    let mut order: Vec<usize> = (0..plan.steps.len()).collect();
    order.sort_by_key(|&i| (depths[i], i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_files, Memory};

    #[test]
    fn chains_advance_level_by_level_with_inputs_first() {
        let src = r#"import "stdlib/mnist.lth"
experiment e {
  network = lenet
  data = mnist
  train = lenet_adam with { duration = 100 it }
  prune = magnitude(global, 20%) for 2 levels
  rewind = [0 it, 10 it]
}
"#;
        let mut mem = Memory::default();
        mem.0.insert("e.lth".into(), src.into());
        let (_, checked, diags) = check_files(&["e.lth".into()], &mem);
        assert!(diags.is_empty(), "{diags:?}");
        let plan = crate::plan::build(&checked.experiments);
        let order = breadth_first(&plan);
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
        // Both rewind points' level-1 retraining comes before either level-2 retraining.
        let trains: Vec<&str> = order
            .iter()
            .map(|&i| &plan.steps[i])
            .filter(|s| s.label.starts_with("train imp"))
            .map(|s| s.label.as_str())
            .collect();
        assert_eq!(trains.len(), 4, "{trains:?}");
        assert!(
            trains[..2].iter().all(|l| l.contains("level 1")),
            "{trains:?}"
        );
        assert!(
            trains[2..].iter().all(|l| l.contains("level 2")),
            "{trains:?}"
        );
    }
}
