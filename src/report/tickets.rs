//! The paper's criterion: the winning-ticket density — the smallest density at which a
//! subnetwork's mean test accuracy is at least the dense network's (less a tolerance) — and the
//! early-stopping iteration there, where the recipe evaluates during training (`eval_every`).

use serde_json::Value;

use super::aggregate::{group, numbers, once_per_seed, Stat};

/// One (experiment, rewind point, arm) of a pruned experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub experiment: String,
    pub network: String,
    pub parameters: u64,
    pub rewind_iteration: u64,
    pub arm: String,
    /// The dense network's test accuracy over seeds.
    pub dense: Option<Stat>,
    /// The smallest density that meets the criterion, if any level does.
    pub density: Option<f64>,
    /// The test accuracy at that density.
    pub accuracy: Option<Stat>,
    /// The iteration of the best evaluation at that density (only with `eval_every`).
    pub early_stop: Option<Stat>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// One ticket per pruned (experiment, rewind point, arm), in the order they first appear.
pub fn tickets(records: &[Value], tolerance: f64) -> Vec<Ticket> {
    let pruned: Vec<Value> = records
        .iter()
        .filter(|r| r["level"].as_u64().unwrap_or(0) > 0)
        .cloned()
        .collect();
    let keys = ["experiment", "rewind_iteration", "arm"].map(String::from);
    group(&pruned, &keys)
        .into_iter()
        .map(|(key, members)| {
            let experiment = text(&key[0]);
            let rewind = key[1].as_u64().unwrap_or(0);
            let dense = dense_accuracy(records, &experiment, rewind);
            let mut winner: Option<(f64, Stat, Option<Stat>)> = None;
            for (_, level) in group(
                &members.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
                &["level".to_string()],
            ) {
                let (Some(acc), Some(d), Some(density)) = (
                    Stat::of(&numbers(&level, "test_accuracy")),
                    dense,
                    Stat::of(&numbers(&level, "density")),
                ) else {
                    continue;
                };
                let wins = acc.mean >= d.mean - tolerance;
                if wins && winner.as_ref().is_none_or(|(w, _, _)| density.mean < *w) {
                    let early = Stat::of(&numbers(&level, "best_iteration"))
                        .filter(|_| level.iter().any(|r| evaluated_during(r)));
                    winner = Some((density.mean, acc, early));
                }
            }
            Ticket {
                experiment,
                network: text(&members[0]["network"]),
                parameters: members[0]["parameters"].as_u64().unwrap_or(0),
                rewind_iteration: rewind,
                arm: text(&key[2]),
                dense,
                density: winner.as_ref().map(|w| w.0),
                accuracy: winner.as_ref().map(|w| w.1),
                early_stop: winner.and_then(|w| w.2),
            }
        })
        .collect()
}

/// Whether the run was evaluated before its end (the recipe has `eval_every`).
fn evaluated_during(r: &Value) -> bool {
    r["evaluations"].as_array().is_some_and(|e| e.len() > 1)
}

/// The level-0 accuracy of `experiment`: from the same rewind point where the records have one,
/// else from any (the dense network is the same run).
fn dense_accuracy(records: &[Value], experiment: &str, rewind: u64) -> Option<Stat> {
    let dense: Vec<&Value> = records
        .iter()
        .filter(|r| r["experiment"] == experiment && r["level"].as_u64() == Some(0))
        .collect();
    let same: Vec<&Value> = dense
        .iter()
        .copied()
        .filter(|r| r["rewind_iteration"].as_u64() == Some(rewind))
        .collect();
    let from = if same.is_empty() { dense } else { same };
    let values = numbers(&once_per_seed(&from), "test_accuracy");
    Stat::of(&values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(level: u64, density: f64, acc: f64, seed: u64) -> Value {
        json!({"experiment": "e", "network": "lenet", "parameters": 10, "rewind_iteration": 0,
               "arm": if level == 0 { "dense" } else { "imp" }, "seed": seed, "level": level,
               "density": density, "test_accuracy": acc})
    }

    #[test]
    fn smallest_density_at_or_above_the_dense_accuracy() {
        let records = vec![
            rec(0, 1.0, 0.90, 1),
            rec(1, 0.5, 0.91, 1),
            rec(2, 0.25, 0.90, 1),
            rec(3, 0.125, 0.85, 1),
        ];
        let t = &tickets(&records, 0.0)[0];
        assert_eq!(t.density, Some(0.25));
        assert_eq!(t.arm, "imp");
        // With a tolerance of 5 points the sparsest level counts too.
        assert_eq!(tickets(&records, 0.05)[0].density, Some(0.125));
        // No level reaches the dense accuracy: no winning ticket.
        let losing = vec![rec(0, 1.0, 0.95, 1), rec(1, 0.5, 0.90, 1)];
        assert_eq!(tickets(&losing, 0.0)[0].density, None);
    }
}
