//! The CUDA backend against the CPU backend. Built with `--features cuda` and ignored unless
//! asked for: `bench/gpu.sh` runs them on a GPU machine.
#![cfg(feature = "cuda")]

use std::sync::Arc;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda, Flex};
use lthc::check::{check_files, ExperimentSpec, Memory};
use lthc::data::batch::Order;
use lthc::data::{Dataset, Examples, Source};
use lthc::rng::Rng;
use lthc::train::{fresh_state, gradients, train, Job, Progress};

/// Largest difference allowed between CUDA's and the CPU's gradients, relative to the largest
/// gradient (and at least 1): the GPU sums in other orders and its convolutions may use other
/// algorithms; this is rounding, not a different computation.
const TOLERANCE: f32 = 1e-3;

fn experiment(network: &str, data: &str, recipe: &str) -> ExperimentSpec {
    let src = format!(
        "import \"stdlib/paper.lth\"\nnetwork vgg_stage1 on [3, 32, 32] {{ vgg_stage(64, 2), maxpool(2), global_avgpool, dense(10) }}\nexperiment e {{\n  network = {network}\n  data = {data}\n  train = {recipe}\n}}\n"
    );
    let mut mem = Memory::default();
    mem.0.insert("cuda.lth".into(), src);
    let (_, checked, diags) = check_files(&["cuda.lth".into()], &mem);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    checked.experiments.into_iter().next().unwrap()
}

fn random_data(e: &ExperimentSpec) -> Arc<Dataset> {
    let spec = &e.dataset;
    let shape = [
        spec.shape[0] as usize,
        spec.shape[1] as usize,
        spec.shape[2] as usize,
    ];
    let mut rng = Rng::new(3);
    let mut make = |n: usize| Examples {
        shape,
        pixels: (0..n * shape.iter().product::<usize>())
            .map(|_| rng.below(256) as u8)
            .collect(),
        labels: (0..n).map(|_| rng.below(spec.classes) as u16).collect(),
    };
    let (train, test) = (make(512), make(64));
    let mut spec = spec.clone();
    spec.train_size = 512;
    spec.holdout = 0;
    spec.test_size = 64;
    Arc::new(Dataset {
        train: Source::Memory(train),
        test: Source::Memory(test),
        spec,
    })
}

fn device() -> CudaDevice {
    CudaDevice::new(0)
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh"]
fn one_step_gradients_agree_with_the_cpu() {
    for (network, data, recipe) in [
        ("lenet", "mnist", "lenet_adam"),
        ("resnet20", "cifar10", "resnet20_standard"),
        ("vgg_stage1", "cifar10", "resnet20_standard"),
    ] {
        let e = experiment(network, data, recipe);
        let d = random_data(&e);
        let state = fresh_state(&e.network, &e.recipe, 1, 0);
        let order = Order {
            seed: 1,
            copy: 0,
            batch: e.recipe.batch as usize,
        };
        let cpu = gradients::<Autodiff<Flex>>(
            &e.network,
            &e.recipe,
            &d,
            order,
            &state,
            &Default::default(),
        )
        .unwrap();
        let gpu = gradients::<Autodiff<Cuda>>(&e.network, &e.recipe, &d, order, &state, &device())
            .unwrap();
        let scale = cpu.iter().flatten().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let worst = c
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= TOLERANCE * scale,
                "{network} parameter {i}: differs by {worst} (scale {scale})"
            );
        }
        println!("{network}: CUDA gradients agree with the CPU's within {TOLERANCE} x {scale}");
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh"]
fn masked_lenet_keeps_pruned_weights_at_zero_for_300_iterations() {
    let e = experiment("lenet", "mnist", "lenet_adam");
    let d = random_data(&e);
    let mut state = fresh_state(&e.network, &e.recipe, 1, 0);
    let mut rng = Rng::new(9);
    for (p, m) in state.params.iter_mut().zip(state.masks.iter_mut()) {
        if p.len() > 1000 {
            let mask: Vec<f32> = (0..p.len())
                .map(|_| f32::from(u8::from(rng.next_f64() < 0.3)))
                .collect();
            p.iter_mut().zip(&mask).for_each(|(w, k)| *w *= k);
            *m = Some(mask);
        }
    }
    let job = Job {
        net: &e.network,
        recipe: &e.recipe,
        data: d,
        order: Order {
            seed: 1,
            copy: 0,
            batch: e.recipe.batch as usize,
        },
        end: 300,
        checkpoints: Default::default(),
        progress: Progress::Quiet,
        label: "cuda".into(),
    };
    let end = train::<Autodiff<Cuda>>(&job, state, &device(), |_| Ok(())).unwrap();
    let mut pruned = 0;
    for (p, m) in end.params.iter().zip(&end.masks) {
        let Some(m) = m else { continue };
        for (w, k) in p.iter().zip(m) {
            if *k == 0.0 {
                assert_eq!(*w, 0.0, "a pruned weight moved");
                pruned += 1;
            }
        }
    }
    assert!(pruned > 100_000, "{pruned} pruned weights checked");
    println!("masked LeNet on CUDA: {pruned} pruned weights still exactly 0 after 300 iterations");
}
