//! The planner: content keys, sharing of the dense run across rewind points and experiments,
//! totals, and the stdlib networks' sizes.

mod common;

use common::*;
use lthc::check::Checked;
use lthc::plan::{self, Plan, StepKind};

fn checked(files: &[(&str, &str)], roots: &[&str]) -> Checked {
    let (prog, checked, diags) = check_many(files, roots);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {} at {:?}", d.code, d.message, span_text(&prog, d)))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    checked
}

fn plan_of(text: &str) -> Plan {
    plan::build(&checked(&[("main.lth", text)], &["main.lth"]).experiments)
}

fn steps(plan: &Plan, kind: StepKind) -> Vec<&lthc::plan::Step> {
    plan.steps.iter().filter(|s| s.kind == kind).collect()
}

/// Dense train steps: train steps that start from an init (no mask).
fn dense_runs(plan: &Plan) -> Vec<&lthc::plan::Step> {
    steps(plan, StepKind::Train)
        .into_iter()
        .filter(|s| {
            s.inputs
                .iter()
                .all(|i| plan.get(i).is_some_and(|p| p.kind == StepKind::Init))
        })
        .collect()
}

const SMALL: &str =
    "  train = lenet_adam with { duration = 1000 it }\n  prune = lenet_layerwise for 3 levels\n";

#[test]
fn the_dense_run_is_trained_once_for_all_rewind_points() {
    let text = lenet_experiment(&format!("{SMALL}  rewind = [0 it, 100 it, 500 it]"))
        .replace("  train   = lenet_adam\n", "");
    let plan = plan_of(&text);
    let dense = dense_runs(&plan);
    assert_eq!(dense.len(), 1);
    assert_eq!(dense[0].iterations, 1000);
    assert_eq!(
        dense[0].checkpoints.iter().copied().collect::<Vec<_>>(),
        vec![0, 100, 500, 1000]
    );
    // Level-1 masks come from the dense run's end, whatever the rewind point: one step.
    let level1: Vec<_> = steps(&plan, StepKind::Prune)
        .into_iter()
        .filter(|s| s.spec["level"] == 1)
        .collect();
    assert_eq!(level1.len(), 1);
    // Each rewind point retrains each level for T - k iterations.
    let t = 1000u64;
    let levels = 3u64;
    let retrain: u64 = [0u64, 100, 500].iter().map(|k| levels * (t - k)).sum();
    assert_eq!(plan.totals.planned_iterations, t + retrain);
    assert_eq!(plan.totals.requested_iterations, 3 * t + retrain);
}

#[test]
fn experiments_in_different_files_share_their_dense_run() {
    let a = lenet_experiment(&format!("{SMALL}  rewind = [0 it]"))
        .replace("  train   = lenet_adam\n", "")
        .replace("experiment e", "experiment a");
    let b = lenet_experiment(&format!("{SMALL}  rewind = [200 it]"))
        .replace("  train   = lenet_adam\n", "")
        .replace("experiment e", "experiment b");
    let checked = checked(&[("a.lth", &a), ("b.lth", &b)], &["a.lth", "b.lth"]);
    let plan = plan::build(&checked.experiments);
    let dense = dense_runs(&plan);
    assert_eq!(dense.len(), 1, "one dense run for both files");
    assert_eq!(
        dense[0].experiments.iter().cloned().collect::<Vec<_>>(),
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(
        dense[0].checkpoints.iter().copied().collect::<Vec<_>>(),
        vec![0, 200, 1000]
    );
    // Planning them separately gives the same key for that run.
    let alone = plan_of(&a);
    assert_eq!(dense_runs(&alone)[0].key, dense[0].key);
}

#[test]
fn values_left_at_their_default_do_not_change_keys() {
    let plain = plan_of(
        &lenet_experiment("  train = lenet_adam with { duration = 100 it }")
            .replace("  train   = lenet_adam\n", ""),
    );
    let spelled = plan_of(
        &lenet_experiment("  train = lenet_adam with { duration = 100 it, optimizer = adam(lr: 1.2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8), warmup = 0 it, weight_decay = 0 }")
            .replace("  train   = lenet_adam\n", "")
            .replace("network = lenet", "network = mlp(784, 300, 100, 10)"),
    );
    let keys = |p: &Plan| p.steps.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&plain), keys(&spelled));
}

#[test]
fn what_changes_training_changes_keys() {
    let base = lenet_experiment("  train = lenet_adam with { duration = 100 it }")
        .replace("  train   = lenet_adam\n", "");
    let key = |text: &str| dense_runs(&plan_of(text))[0].key.clone();
    let k0 = key(&base);
    assert_ne!(
        k0,
        key(&base.replace("duration = 100 it", "duration = 100 it, batch = 64"))
    );
    assert_ne!(
        k0,
        key(&base.replace(
            "duration = 100 it",
            "duration = 100 it, optimizer = adam(lr: 1e-3)"
        ))
    );
    assert_ne!(k0, key(&base.replace("}\n}", "}\n  seeds = 2\n}")));
    assert_ne!(
        k0,
        key(&base.replace("data    = mnist", "data    = mnist_full"))
    );
    assert_ne!(
        k0,
        key(&base.replace("network = lenet", "network = lenet(301)"))
    );
}

/// Keys are a promise to every cache on disk: changing one must be deliberate.
#[test]
fn pinned_keys_of_the_quickstart() {
    let plan = plan_of(include_str!("../experiments/quickstart.lth"));
    let init = &steps(&plan, StepKind::Init)[0];
    let dense = &dense_runs(&plan)[0];
    assert_eq!(init.key, "5320df782bf0ff4bb275f730087f0b35");
    assert_eq!(dense.key, PINNED_DENSE_KEY);
}

const PINNED_DENSE_KEY: &str = "50a8d069ef7ce59bf7cc2f255cab92a3";

#[test]
fn controls_and_stabilities_add_their_steps() {
    let plan = plan_of(&lenet_experiment(&format!(
        "{SMALL}  rewind = [100 it]\n  controls = [random_reinit, random_prune]\n  measure = [stability(pruning, data_order), interpolation(points: 11)]"
    ))
    .replace("  train   = lenet_adam\n", ""));
    let measures = steps(&plan, StepKind::Measure);
    let kinds = |m: &str| measures.iter().filter(|s| s.spec["measure"] == m).count();
    // Data order and interpolation: dense + IMP + random prune at each of 3 levels (dense once).
    assert_eq!(kinds("stability_data_order"), 1 + 3 * 2);
    assert_eq!(kinds("interpolation"), 1 + 3 * 2);
    // Pruning stability: IMP and random prune at each level, against the dense run.
    assert_eq!(kinds("stability_pruning"), 3 * 2);
    // Random reinitialisation trains from iteration 0; the others from the rewind point.
    let reinit: Vec<_> = steps(&plan, StepKind::Train)
        .into_iter()
        .filter(|s| s.label.contains("random_reinit"))
        .collect();
    assert_eq!(reinit.len(), 3);
    assert!(reinit.iter().all(|s| s.iterations == 1000));
}

#[test]
fn sweeps_make_one_instance_per_combination() {
    let c = checked(
        &[(
            "main.lth",
            &lenet_experiment(
                "  prune = magnitude(global, sweep [20%, 50%]) for 1 level\n  seeds = 1..2",
            )
            .replace(
                "train   = lenet_adam",
                "train   = lenet_adam with { batch = sweep [60, 120] }",
            ),
        )],
        &["main.lth"],
    );
    let names: Vec<&str> = c.experiments.iter().map(|e| e.instance.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "e[train.batch=60,prune.2=20%]",
            "e[train.batch=60,prune.2=50%]",
            "e[train.batch=120,prune.2=20%]",
            "e[train.batch=120,prune.2=50%]",
        ]
    );
    assert_eq!(c.experiments[0].seeds, vec![1, 2]);
    // Instances with the same batch share their dense runs.
    let plan = plan::build(&c.experiments);
    assert_eq!(dense_runs(&plan).len(), 2 * 2);
}

#[test]
fn durations_in_epochs_use_the_training_set_size() {
    let c = checked(
        &[("main.lth", &lenet_experiment("  rewind = [1 ep, 1.5 ep]"))],
        &["main.lth"],
    );
    let e = &c.experiments[0];
    // 55,000 training images (5,000 held out) at batch 60: 917 iterations per epoch.
    assert_eq!(e.recipe.iterations_per_epoch, 917);
    assert_eq!(e.rewind, vec![917, 1376]);
}

#[test]
fn layerwise_densities_follow_the_rates_with_ceiling_rounding() {
    let c = checked(
        &[(
            "main.lth",
            &lenet_experiment("  prune = lenet_layerwise for 2 levels"),
        )],
        &["main.lth"],
    );
    let p = c.experiments[0].prune.as_ref().unwrap();
    let level1 = (235_200 - 47_040) + (30_000 - 6_000) + (1_000 - 100);
    let level2 = (188_160 - 37_632) + (24_000 - 4_800) + (900 - 90);
    assert_eq!(
        p.densities,
        vec![1.0, level1 as f64 / 266_200.0, level2 as f64 / 266_200.0]
    );
    assert_eq!(p.layer_rates, vec![("dense3".to_string(), 0.1)]);
}

#[test]
fn stdlib_networks_match_the_papers_sizes() {
    let c = checked(
        &[("main.lth", "import \"stdlib/paper.lth\"\n")],
        &["main.lth"],
    );
    let find = |name: &str| {
        c.networks
            .iter()
            .find(|n| n.display == name)
            .unwrap_or_else(|| panic!("{name}"))
            .stats()
    };
    // (network, exact trainable parameters, the paper's figure)
    let expected = [
        ("lenet", 266_610, 266e3),
        ("resnet20", 272_474, 274e3),
        ("vgg19", 20_040_522, 20.0e6),
        ("resnet50", 25_557_032, 25.5e6),
        ("inception_v3", 27_161_264, 27.1e6),
        ("squeezenet", 1_248_424, 1.25e6),
        ("vgg16", 14_728_266, 14.7e6),
    ];
    for (name, exact, paper) in expected {
        let s = find(name);
        assert_eq!(s.parameters, exact, "{name}");
        let off = (s.parameters as f64 - paper).abs() / paper;
        assert!(
            off < 0.01,
            "{name}: {} is {:.2}% from the paper's {paper}",
            s.parameters,
            off * 100.0
        );
    }
    // ResNet-20's 274K counts batch norm's running statistics too.
    let r = find("resnet20");
    assert_eq!(r.parameters + r.buffers, 274_042);
    // Standard FLOP counts (multiply-accumulates): ResNet-50 4.09G, Inception-v3 5.71G.
    assert_eq!(find("resnet50").flops, 4_089_184_256);
    assert_eq!(find("inception_v3").flops / 10_000_000, 571);
}

#[test]
fn json_plan_has_the_documented_shape() {
    let plan = plan_of(include_str!("../experiments/quickstart.lth"));
    let v = plan::render_json(&plan);
    let first = &v["steps"][0];
    for field in ["key", "kind", "iterations", "experiments", "inputs"] {
        assert!(!first[field].is_null(), "{field}");
    }
    assert_eq!(
        v["totals"]["planned_iterations"],
        plan.totals.planned_iterations
    );
    assert!(v["totals"]["requested_iterations"].as_u64().unwrap() > plan.totals.planned_iterations);
    // Every input of a step is an earlier step.
    let mut seen = std::collections::HashSet::new();
    for s in v["steps"].as_array().unwrap() {
        for i in s["inputs"].as_array().unwrap() {
            assert!(seen.contains(i.as_str().unwrap()));
        }
        seen.insert(s["key"].as_str().unwrap().to_string());
    }
}

#[test]
fn range_sweeps_label_each_value() {
    let c = checked(
        &[(
            "main.lth",
            &lenet_experiment("  rewind = sweep 0 it..200 it by 100 it"),
        )],
        &["main.lth"],
    );
    let names: Vec<&str> = c.experiments.iter().map(|e| e.instance.as_str()).collect();
    assert_eq!(
        names,
        vec!["e[rewind=0 it]", "e[rewind=100 it]", "e[rewind=200 it]"]
    );
}

#[test]
fn swept_datasets_and_recipes_keep_their_names() {
    let c = checked(
        &[(
            "main.lth",
            &lenet_experiment("")
                .replace("data    = mnist", "data    = sweep [mnist, mnist_full]")
                .replace(
                    "train   = lenet_adam",
                    "train   = lenet_adam with { batch = 30 }",
                ),
        )],
        &["main.lth"],
    );
    let names: Vec<(&str, &str)> = c
        .experiments
        .iter()
        .map(|e| (e.dataset.name.as_str(), e.recipe.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("mnist", "lenet_adam"), ("mnist_full", "lenet_adam")]
    );
}
