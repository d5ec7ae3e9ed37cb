//! Learning-rate schedules: the rate for the step taken at iteration t (counting from 0).

use crate::check::{RecipeSpec, Schedule};

/// The learning rate of the step at iteration `t` of a run of `recipe.iterations`.
/// Warmup (OpenLTH's rule) scales the scheduled rate by min(1, t / warmup).
pub fn learning_rate(recipe: &RecipeSpec, t: u64) -> f64 {
    let base = recipe.optimizer.lr();
    let total = recipe.iterations.max(1) as f64;
    let scheduled = match &recipe.schedule {
        Schedule::Constant => base,
        Schedule::Step { gamma, milestones } => {
            base * gamma.powi(milestones.iter().filter(|&&m| m <= t).count() as i32)
        }
        Schedule::Linear { to } => base + (to - base) * (t as f64 / total),
        Schedule::Exponential { to } => base * (to / base).powf(t as f64 / total),
    };
    if recipe.warmup > 0 && t < recipe.warmup {
        scheduled * t as f64 / recipe.warmup as f64
    } else {
        scheduled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Init, Optimizer};

    fn recipe(schedule: Schedule, warmup: u64) -> RecipeSpec {
        RecipeSpec {
            name: "r".into(),
            optimizer: Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
            },
            schedule,
            warmup,
            weight_decay: 0.0,
            batch: 128,
            iterations: 30_000,
            iterations_per_epoch: 352,
            init: Init::KaimingNormal,
            label_smoothing: 0.0,
            eval_every: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn constant() {
        let r = recipe(Schedule::Constant, 0);
        assert_eq!(learning_rate(&r, 0), 0.1);
        assert_eq!(learning_rate(&r, 29_999), 0.1);
    }

    #[test]
    fn step_drops_at_milestones() {
        let r = recipe(
            Schedule::Step {
                gamma: 0.1,
                milestones: vec![20_000, 25_000],
            },
            0,
        );
        assert_eq!(learning_rate(&r, 19_999), 0.1);
        assert!(close(learning_rate(&r, 20_000), 0.01));
        assert!(close(learning_rate(&r, 24_999), 0.01));
        assert!(close(learning_rate(&r, 25_000), 0.001));
    }

    #[test]
    fn linear_warmup_from_zero() {
        let r = recipe(Schedule::Constant, 20_000);
        assert_eq!(learning_rate(&r, 0), 0.0);
        assert!(close(learning_rate(&r, 5_000), 0.025));
        assert!(close(learning_rate(&r, 10_000), 0.05));
        assert_eq!(learning_rate(&r, 20_000), 0.1);
    }

    #[test]
    fn linear_and_exponential_decay_reach_their_targets() {
        let lin = recipe(Schedule::Linear { to: 0.005 }, 0);
        assert!(close(learning_rate(&lin, 15_000), 0.0525));
        assert!(close(learning_rate(&lin, 30_000), 0.005));
        let exp = recipe(Schedule::Exponential { to: 0.001 }, 0);
        assert!(close(learning_rate(&exp, 15_000), 0.01));
        assert!(close(learning_rate(&exp, 30_000), 0.001));
    }
}
