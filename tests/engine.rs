//! The training engine on small generated data: learning, determinism, resuming, masks.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use lthc::check::{ExperimentSpec, Init, Optimizer, RecipeSpec, Schedule};
use lthc::data::batch::Order;
use lthc::train::{evaluate, fresh_state, train, Job, Progress, Split, State};

type B = Autodiff<Flex>;

struct Setup {
    _dir: tempfile::TempDir,
    exp: ExperimentSpec,
    data: Arc<lthc::data::Dataset>,
}

fn setup(optimizer: &str, network: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let dataset = common::tiny_idx(&dir.path().join("tiny"), 240, 100);
    let src = format!(
        "import \"stdlib/networks.lth\"\n{dataset}\nexperiment e {{\n  network = {network}\n  data = tiny\n  train = {{ optimizer = {optimizer}, batch = 16, duration = 60 it }}\n}}\n"
    );
    let (prog, checked, diags) = common::check_one(&src);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags
            .iter()
            .map(|d| (d.code, &d.message, common::span_text(&prog, d)))
            .collect::<Vec<_>>()
    );
    let exp = checked.experiments[0].clone();
    let data = Arc::new(lthc::data::load(&exp.dataset, dir.path(), false).unwrap());
    Setup {
        _dir: dir,
        exp,
        data,
    }
}

fn job<'a>(s: &'a Setup, end: u64, checkpoints: &[u64]) -> Job<'a> {
    Job {
        net: &s.exp.network,
        recipe: &s.exp.recipe,
        data: s.data.clone(),
        order: Order {
            seed: 1,
            copy: 0,
            batch: s.exp.recipe.batch as usize,
        },
        end,
        checkpoints: checkpoints.iter().copied().collect::<BTreeSet<u64>>(),
        progress: Progress::Quiet,
        label: "test".into(),
    }
}

fn start(s: &Setup) -> State {
    fresh_state(&s.exp.network, &s.exp.recipe, 1, 0)
}

#[test]
fn a_network_learns_the_task() {
    let s = setup("sgd(lr: 0.05, momentum: 0.9)", "mlp(36, 16, 2)");
    let before = evaluate::<Flex>(
        &s.exp.network,
        &start(&s),
        &s.data,
        Split::Test,
        &Default::default(),
    )
    .unwrap();
    let end = train::<B>(
        &job(&s, 60, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    let after = evaluate::<Flex>(
        &s.exp.network,
        &end,
        &s.data,
        Split::Test,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(after.examples, 100);
    assert!(after.accuracy > 0.95, "{before:?} -> {after:?}");
    assert!(after.loss < before.loss);
}

#[test]
fn convolutions_and_batch_norm_train_too() {
    let s = setup(
        "adam(lr: 0.01)",
        "resnet_cifar(depth: 8, width: 4, classes: 2)",
    );
    let end = train::<B>(
        &job(&s, 60, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    let after = evaluate::<Flex>(
        &s.exp.network,
        &end,
        &s.data,
        Split::Test,
        &Default::default(),
    )
    .unwrap();
    assert!(after.accuracy > 0.9, "{after:?}");
}

#[test]
fn training_is_bit_for_bit_deterministic() {
    let s = setup("adam(lr: 0.01)", "mlp(36, 16, 2)");
    let a = train::<B>(
        &job(&s, 25, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    let b = train::<B>(
        &job(&s, 25, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    assert_eq!(a, b);
}

/// The training loop hands pieces of its work to other threads where there are: the forward
/// product of a 1024 → 300 layer in pieces of columns, its weight gradient in blocks of rows,
/// the optimizer update of its 307K weights in pieces. None of it may change a bit.
#[test]
fn training_does_not_depend_on_the_thread_count() {
    let s = setup("adam(lr: 0.001)", "mlp(36, 1024, 300, 2)");
    let trained =
        || train::<B>(&job(&s, 6, &[]), start(&s), &Default::default(), |_| Ok(())).unwrap();
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(trained)
    };
    let one = on(1);
    assert_eq!(one, on(2), "1 vs 2 threads");
    assert_eq!(one, on(3), "1 vs 3 threads");
    // From outside rayon's threads (as the executor calls it), on all cores.
    assert_eq!(one, trained(), "1 thread vs the default");
}

#[test]
fn resuming_from_a_checkpoint_gives_identical_weights() {
    for optimizer in ["sgd(lr: 0.05, momentum: 0.9)", "adam(lr: 0.01)"] {
        let s = setup(optimizer, "resnet_cifar(depth: 8, width: 4, classes: 2)");
        let dir = tempfile::tempdir().unwrap();
        let uninterrupted =
            train::<B>(
                &job(&s, 40, &[]),
                start(&s),
                &Default::default(),
                |_| Ok(()),
            )
            .unwrap();
        // Stop at 17 (not an epoch boundary: 240 / 16 = 15 iterations per epoch), save, reload.
        let path = dir.path().join("it17.ckpt");
        train::<B>(&job(&s, 17, &[17]), start(&s), &Default::default(), |st| {
            st.save(&path).map_err(|e| e.to_string())
        })
        .unwrap();
        let loaded = State::load(&path).unwrap();
        assert_eq!(loaded.iteration, 17);
        let resumed =
            train::<B>(&job(&s, 40, &[]), loaded, &Default::default(), |_| Ok(())).unwrap();
        assert_eq!(resumed, uninterrupted, "{optimizer}");
    }
}

#[test]
fn pruned_weights_stay_exactly_zero() {
    for optimizer in [
        "sgd(lr: 0.05, momentum: 0.9)",
        "adam(lr: 0.01)",
        "rmsprop(lr: 0.001, momentum: 0.9)",
    ] {
        let s = setup(optimizer, "mlp(36, 16, 2)");
        let mut st = start(&s);
        let layout = lthc::nn::Layout::of(&s.exp.network);
        for i in layout.prunable() {
            let n = st.params[i].len();
            st.masks[i] = Some((0..n).map(|j| f32::from(j % 2 == 0)).collect());
            for (w, m) in st.params[i].iter_mut().zip(st.masks[i].as_ref().unwrap()) {
                *w *= m;
            }
        }
        let every: Vec<u64> = (1..=30).collect();
        let initial = st.clone();
        let mut checked = 0;
        let end = train::<B>(&job(&s, 30, &every), st, &Default::default(), |state| {
            for (p, m) in state.params.iter().zip(&state.masks) {
                if let Some(m) = m {
                    for (w, k) in p.iter().zip(m) {
                        if *k == 0.0 && *w != 0.0 {
                            return Err(format!(
                                "a pruned weight is {w} at iteration {}",
                                state.iteration
                            ));
                        }
                    }
                }
            }
            checked += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{optimizer}: {e}"));
        assert_eq!(checked, 30);
        // The kept weights did train.
        let i = layout.prunable()[0];
        assert!(
            end.params[i]
                .iter()
                .zip(&initial.params[i])
                .any(|(a, b)| a != b),
            "{optimizer}"
        );
        assert!((end.density() - 0.5).abs() < 0.01);
    }
}

#[test]
fn data_order_is_a_function_of_seed_and_epoch() {
    let s = setup("adam(lr: 0.01)", "mlp(36, 16, 2)");
    let order = Order {
        seed: 3,
        copy: 0,
        batch: 16,
    };
    let (n, ipe) = order.epoch_shape(&s.data);
    assert_eq!((n, ipe), (240, 15));
    let e1 = order.epoch(n, 1);
    let b1 = s.data.train_batch(&order, &e1, 17).unwrap();
    let b2 = s.data.train_batch(&order, &order.epoch(n, 1), 17).unwrap();
    assert_eq!(b1, b2);
    let other = Order { copy: 1, ..order };
    assert_ne!(
        b1,
        s.data.train_batch(&other, &other.epoch(n, 1), 17).unwrap()
    );
    assert_ne!(order.epoch(n, 0), e1);
}

#[test]
fn one_step_of_sgd_on_a_dense_layer_matches_hand_computation() {
    // A single dense layer 2 -> 2 with no bias, on one example: the gradient of the mean
    // cross-entropy is (softmax(Wx) - onehot(y)) x^T.
    let s = setup("sgd(lr: 0.5)", "mlp(36, 2)");
    let mut st = start(&s);
    let recipe = RecipeSpec {
        name: "one".into(),
        optimizer: Optimizer::Sgd {
            lr: 0.5,
            momentum: 0.0,
            nesterov: false,
        },
        schedule: Schedule::Constant,
        warmup: 0,
        weight_decay: 0.0,
        batch: 1,
        iterations: 1,
        iterations_per_epoch: 240,
        init: Init::KaimingNormal,
        label_smoothing: 0.0,
        eval_every: None,
    };
    st.params[0] = vec![0.0; 72];
    st.params[1] = vec![0.0; 2];
    let j = Job {
        recipe: &recipe,
        order: Order {
            seed: 9,
            copy: 0,
            batch: 1,
        },
        ..job(&s, 1, &[])
    };
    let order = j.order;
    let (n, _) = order.epoch_shape(&s.data);
    let batch = s.data.train_batch(&order, &order.epoch(n, 0), 0).unwrap();
    let after = train::<B>(&j, st, &Default::default(), |_| Ok(())).unwrap();
    // Zero weights: softmax is [0.5, 0.5]; the step is -lr * (p - y) * x.
    let y = batch.labels[0] as usize;
    for c in 0..2 {
        let coeff = 0.5 - if c == y { 1.0 } else { 0.0 };
        for k in 0..36 {
            let want = -0.5 * coeff * batch.images[k];
            let got = after.params[0][c * 36 + k];
            assert!(
                (got - want).abs() < 1e-6,
                "w[{c}][{k}] = {got}, want {want}"
            );
        }
        assert!((after.params[1][c] - (-0.5 * coeff)).abs() < 1e-6);
    }
}

#[test]
fn branches_pooling_dropout_and_auxiliary_heads_train() {
    let defs = "network branchy on [1, 6, 6] {\n  conv(4, 3, padding: 1), relu\n  concat {\n    branch { conv(4, 1) }\n    branch { avgpool(3, stride: 1, padding: 1), conv(2, 1, bias: false) }\n    branch { maxpool(3, stride: 1, padding: 1) }\n  }\n  batchnorm\n  aux(weight: 0.3) { global_avgpool, dense(2) }\n  maxpool(2, ceil: true)\n  flatten\n  dropout(0.25)\n  dense(2)\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let dataset = common::tiny_idx(&dir.path().join("tiny"), 240, 100);
    let src = format!("{defs}{dataset}\nexperiment e {{\n  network = branchy\n  data = tiny\n  train = {{ optimizer = adam(lr: 0.01), batch = 16, duration = 60 it }}\n}}\n");
    let (_, checked, diags) = common::check_one(&src);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    let exp = checked.experiments[0].clone();
    let s = Setup {
        data: Arc::new(lthc::data::load(&exp.dataset, dir.path(), false).unwrap()),
        exp,
        _dir: dir,
    };
    let a = train::<B>(
        &job(&s, 60, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    let b = train::<B>(
        &job(&s, 60, &[]),
        start(&s),
        &Default::default(),
        |_| Ok(()),
    )
    .unwrap();
    assert_eq!(a, b, "dropout draws from seeded streams");
    let e = evaluate::<Flex>(
        &s.exp.network,
        &a,
        &s.data,
        Split::Test,
        &Default::default(),
    )
    .unwrap();
    assert!(e.accuracy > 0.9, "{e:?}");
}
