//! IMP with rewinding, controls and measurements, end to end on small generated data.

mod common;

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use lthc::exec::{results, Executor};
use lthc::plan::{self, Payload, Plan, StepKind};
use lthc::train::{Progress, State};

fn program(dir: &Path) -> String {
    let dataset = common::tiny_idx(&dir.join("tiny"), 240, 100);
    format!(
        "import \"stdlib/networks.lth\"\n{dataset}\n\
experiment lt {{\n  network = mlp(36, 32, 16, 2)\n  data = tiny\n  train = {{ optimizer = sgd(lr: 0.05, momentum: 0.9), batch = 16, duration = 45 it }}\n  \
prune = magnitude(layerwise, 20%) for 3 levels\n  rewind = [0 it, 5 it]\n  controls = [random_reinit, random_prune]\n  \
measure = [stability(pruning, data_order), interpolation(points: 5, on: [test, train])]\n}}\n"
    )
}

fn plan_of(src: &str) -> (Plan, lthc::check::ExperimentSpec) {
    let (prog, checked, diags) = common::check_one(src);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags
            .iter()
            .map(|d| (&d.message, common::span_text(&prog, d)))
            .collect::<Vec<_>>()
    );
    (
        plan::build(&checked.experiments),
        checked.experiments[0].clone(),
    )
}

fn run(plan: &Plan, cache: &Path, data: &Path) -> lthc::exec::Summary {
    let mut ex = Executor::<Autodiff<Flex>>::new(
        cache.to_path_buf(),
        data.to_path_buf(),
        Default::default(),
        Progress::Quiet,
    );
    ex.run(plan)
        .unwrap_or_else(|e| panic!("{}", e.to_diag().message))
}

#[test]
fn imp_with_rewinding_controls_and_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, exp) = plan_of(&program(dir.path()));
    let cache = dir.path().join("cache");
    let summary = run(&plan, &cache, dir.path());
    assert_eq!(summary.ran, plan.steps.len());
    assert_eq!(summary.trained_iterations, plan.totals.planned_iterations);

    let (records, complete) = results::collect(&plan, &cache);
    assert!(complete);
    // Per rewind point: the dense network, and 3 levels x (IMP, reinit, random pruning).
    assert_eq!(records.len(), 2 * (1 + 3 * 3));
    let densities = &exp.prune.as_ref().unwrap().densities;
    for r in &records {
        for field in [
            "experiment",
            "network",
            "dataset",
            "rewind_iteration",
            "arm",
            "seed",
            "level",
            "density",
            "test_accuracy",
            "test_loss",
        ] {
            assert!(!r[field].is_null(), "{field} in {r}");
        }
        let level = r["level"].as_u64().unwrap() as usize;
        let density = r["density"].as_f64().unwrap();
        // Each arm has exactly the density IMP reaches at that level: (1 - 20%)^level, rounded up per layer.
        assert!((density - densities[level]).abs() < 1e-12, "{r}");
        assert!((density - 0.8f64.powi(level as i32)).abs() < 0.01, "{r}");
        let arm = r["arm"].as_str().unwrap();
        if arm != "random_reinit" {
            assert!(r["stability_data_order_l2"].as_f64().unwrap() > 0.0, "{r}");
            assert!(
                r["stability_data_order_angle"].as_f64().unwrap() > 0.0,
                "{r}"
            );
            assert!(
                r["interpolation_barrier"].is_number()
                    && r["interpolation_barrier_train"].is_number(),
                "{r}"
            );
        }
        if arm == "imp" || arm == "random_prune" {
            assert!(r["stability_pruning_l2"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert!(r["test_accuracy"].as_f64().unwrap() > 0.5, "{r}");
    }

    // Rewinding restores exactly W_k on the survivors and 0 elsewhere.
    let dense = plan
        .steps
        .iter()
        .find(|s| {
            matches!(
                s.payload,
                Payload::Train {
                    start: 0,
                    copy: 0,
                    ..
                }
            ) && plan.get(&s.inputs[0]).unwrap().kind == StepKind::Init
        })
        .unwrap();
    for s in plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Rewind && s.inputs.len() == 2 && s.inputs[1] == dense.key)
    {
        let Payload::Rewind { iteration } = s.payload else {
            unreachable!()
        };
        let w_k = State::load(
            &cache
                .join("steps")
                .join(&dense.key)
                .join(format!("it_{iteration}.ckpt")),
        )
        .unwrap();
        let rewound = State::load(&cache.join("steps").join(&s.key).join("state.ckpt")).unwrap();
        assert_eq!(rewound.iteration, iteration);
        for ((w, r), m) in w_k.params.iter().zip(&rewound.params).zip(&rewound.masks) {
            match m {
                Some(m) => {
                    for ((a, b), k) in w.iter().zip(r).zip(m) {
                        assert_eq!(*b, if *k == 1.0 { *a } else { 0.0 });
                    }
                }
                None => assert_eq!(w, r),
            }
        }
    }

    // Running again trains nothing and gives the same results.
    let again = run(&plan, &cache, dir.path());
    assert_eq!((again.ran, again.trained_iterations), (0, 0));
    assert_eq!(results::collect(&plan, &cache).0, records);

    // A second cache, from scratch: bit-identical results.
    let cache2 = dir.path().join("cache2");
    run(&plan, &cache2, dir.path());
    assert_eq!(results::collect(&plan, &cache2).0, records);
}

#[test]
fn a_new_rewind_point_replays_only_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let src = program(dir.path());
    let (plan, _) = plan_of(&src.replace("rewind = [0 it, 5 it]", "rewind = [0 it]").replace("controls = [random_reinit, random_prune]", "").replace("measure = [stability(pruning, data_order), interpolation(points: 5, on: [test, train])]", ""));
    let cache = dir.path().join("cache");
    run(&plan, &cache, dir.path());
    let (later, _) = plan_of(&src.replace("rewind = [0 it, 5 it]", "rewind = [7 it]").replace("controls = [random_reinit, random_prune]", "").replace("measure = [stability(pruning, data_order), interpolation(points: 5, on: [test, train])]", ""));
    let s = run(&later, &cache, dir.path());
    // The dense run and the level-1 mask come from the cache; only the rewound levels train.
    let dense = &later.steps[1];
    assert!(s.cached >= 3, "{s:?}");
    assert!(cache
        .join("steps")
        .join(&dense.key)
        .join("it_7.ckpt")
        .is_file());
}

#[test]
fn snip_prunes_at_initialisation() {
    let dir = tempfile::tempdir().unwrap();
    let src = program(dir.path())
        .replace("prune = magnitude(layerwise, 20%) for 3 levels", "prune = snip(global, 50%) for 2 levels")
        .replace("controls = [random_reinit, random_prune]", "")
        .replace("measure = [stability(pruning, data_order), interpolation(points: 5, on: [test, train])]", "")
        .replace("rewind = [0 it, 5 it]", "rewind = 0 it");
    let (plan, _) = plan_of(&src);
    // Every SNIP mask is computed from the initial weights, not from a trained network.
    for s in plan.steps.iter().filter(|s| s.kind == StepKind::Prune) {
        assert_eq!(plan.get(&s.inputs[0]).unwrap().kind, StepKind::Init);
    }
    let cache = dir.path().join("cache");
    run(&plan, &cache, dir.path());
    let (records, complete) = results::collect(&plan, &cache);
    assert!(complete);
    let snip: Vec<_> = records.iter().filter(|r| r["arm"] == "snip").collect();
    assert_eq!(snip.len(), 2);
    assert!((snip[0]["density"].as_f64().unwrap() - 0.5).abs() < 0.01);
    assert!((snip[1]["density"].as_f64().unwrap() - 0.25).abs() < 0.01);
    assert!(
        snip.iter()
            .all(|r| r["test_accuracy"].as_f64().unwrap() > 0.6),
        "{snip:?}"
    );
}
