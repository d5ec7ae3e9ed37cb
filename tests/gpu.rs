//! The GPU backends against the CPU backend: the same checks on CUDA (`--features cuda`,
//! ignored unless asked for: `bench/gpu.sh` runs them on a GPU machine) and on wgpu
//! (`--features wgpu`: any Vulkan, Metal or DX12 device; CI runs them on Mesa's lavapipe, a
//! Vulkan device on the CPU). Both run burn's cubecl kernels through lthc's generic path (the
//! dense layer as `x.matmul(w)`, burn's convolution and batch norm, the reference optimizer
//! update), which is all that differs from the CPU backend.
#![cfg(any(feature = "cuda", feature = "wgpu"))]

mod common;

use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use lthc::check::{check_files, ExperimentSpec, Memory};
use lthc::data::batch::Order;
use lthc::data::{Dataset, Examples, Source};
use lthc::rng::Rng;
use lthc::train::{
    evaluate, fresh_state, gradients, train, Job, Progress, Split, State, TrainBackend,
};

/// Largest relative error allowed in a parameter's gradient, `‖g_gpu − g_cpu‖ / ‖g_cpu‖`. The
/// GPU sums in other orders and with other convolution algorithms (lavapipe also approximates
/// reciprocals; CUDA's matmuls may round inputs to TF32), and at initialisation ResNet-20's
/// gradients amplify rounding through its 19 batch norms: on lavapipe the errors were up to
/// 4.2e-3 there and 4.7e-3 on the Inception blocks (the CPU's own two paths, its kernels and
/// burn's operations, differ by up to 3.5e-3 on ResNet-20), 1e-6 on LeNet. A wrong gradient is
/// off by 0.1 or more: the burn-cubecl bugs worked around in `nn::kernels` put ResNet-20's stem
/// at 0.77 (the generic convolution) and Inception's auxiliary head at 0.1–70 (the generic
/// batch norm).
const TOLERANCE: f64 = 5e-2;

/// A gradient whose largest value on the CPU is below this is zero in exact arithmetic (a
/// convolution's bias before batch norm): the GPU's need only be as small as [`ZERO_ON_GPU`].
const ZERO: f32 = 1e-6;
const ZERO_ON_GPU: f32 = 1e-4;

/// `‖a − b‖ / ‖a‖`.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let square = |v: f32| f64::from(v) * f64::from(v);
    let diff: f64 = a.iter().zip(b).map(|(x, y)| square(x - y)).sum();
    let norm: f64 = a.iter().map(|&x| square(x)).sum();
    (diff / norm).sqrt()
}

/// VGG-19's first stage, and the building blocks of ResNet-50, SqueezeNet and Inception-v3 at
/// CIFAR-10 size: the stem and bottlenecks (1x1 and strided shortcuts), fire modules (max
/// pooling rounded up, concatenation, dropout), Inception's five blocks and its auxiliary head
/// (a 5x5 stride-3 average pool of a 7x7 map, then batch norm of 1x1 maps, as in the full
/// network's head), and batch norm of a dense layer's outputs. The last two found a
/// burn-cubecl bug (a transposed view with a size-1 axis reshaped as if not transposed) that
/// put those batch norms' outputs in the wrong order on lavapipe: gradients off by 0.1–70x.
const NETWORKS: &str = "
network vgg_stage1 on [3, 32, 32] { vgg_stage(64, 2), maxpool(2), global_avgpool, dense(10) }
network resnet50_blocks on [3, 32, 32] {
  conv(16, 7, stride: 2, padding: 3, bias: false), batchnorm, relu
  maxpool(3, stride: 2, padding: 1)
  bottleneck(4, 1)
  bottleneck(8, 2)
  global_avgpool
  dense(10)
}
network squeezenet_blocks on [3, 32, 32] {
  conv(32, 7, stride: 2), relu
  maxpool(3, stride: 2, ceil: true)
  fire(8, 16)
  fire(8, 16)
  dropout(0.5)
  conv(10, 1), relu
  global_avgpool
}
network inception_blocks on [3, 32, 32] {
  basic_conv(16, 3, stride: 2)
  maxpool(3, stride: 2)
  inception_a(8)
  aux(weight: 0.4) {
    avgpool(5, stride: 3)
    basic_conv(16, 1)
    global_avgpool
    dense(10)
  }
  inception_b
  inception_c(16)
  inception_d
  inception_e
  global_avgpool
  dense(10)
}
network dense_batchnorm on [1, 28, 28] { flatten, dense(64), batchnorm, relu, dense(10) }
";

fn experiment(network: &str, data: &str, recipe: &str) -> ExperimentSpec {
    let src = format!(
        "import \"stdlib/paper.lth\"\n{NETWORKS}\nexperiment e {{\n  network = {network}\n  data = {data}\n  train = {recipe}\n}}\n"
    );
    let mut mem = Memory::default();
    mem.0.insert("gpu.lth".into(), src);
    let (_, checked, diags) = check_files(&["gpu.lth".into()], &mem);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    checked.experiments.into_iter().next().unwrap()
}

/// `e`'s training on `data` to iteration `end`, data order seed 1, quietly.
fn quiet_job<'a>(e: &'a ExperimentSpec, data: Arc<Dataset>, end: u64, label: &str) -> Job<'a> {
    Job {
        net: &e.network,
        recipe: &e.recipe,
        data,
        order: Order {
            seed: 1,
            copy: 0,
            batch: e.recipe.batch as usize,
        },
        end,
        checkpoints: Default::default(),
        progress: Progress::Quiet,
        label: label.into(),
    }
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

/// One gradient step of LeNet, ResNet-20 and the [`NETWORKS`] on `device` against the CPU
/// backend's.
fn one_step_gradients_agree_with_the_cpu<G: TrainBackend>(name: &str, device: &G::Device) {
    for (network, data, recipe) in [
        ("lenet", "mnist", "lenet_adam"),
        ("resnet20", "cifar10", "resnet20_standard"),
        ("vgg_stage1", "cifar10", "resnet20_standard"),
        ("resnet50_blocks", "cifar10", "resnet20_standard"),
        ("squeezenet_blocks", "cifar10", "resnet20_standard"),
        ("inception_blocks", "cifar10", "resnet20_standard"),
        ("dense_batchnorm", "mnist", "lenet_adam"),
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
        let gpu = gradients::<G>(&e.network, &e.recipe, &d, order, &state, device).unwrap();
        let mut worst = 0.0f64;
        for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let largest = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            if largest(c) < ZERO {
                assert!(
                    largest(g) < ZERO_ON_GPU,
                    "{network} parameter {i}: zero on the CPU, up to {} on {name}",
                    largest(g)
                );
                continue;
            }
            let error = relative_error(c, g);
            assert!(
                error <= TOLERANCE,
                "{network} parameter {i}: relative error {error:.2e} on {name}"
            );
            worst = worst.max(error);
        }
        println!(
            "{network}: {name} gradients agree with the CPU's, relative error at most {worst:.2e}"
        );
    }
}

/// A LeNet run of 300 iterations on `device` with 70% of its large layers pruned: every pruned
/// weight is still exactly 0 at the end.
fn masked_lenet_keeps_pruned_weights_at_zero<G: TrainBackend>(name: &str, device: &G::Device) {
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
    let job = quiet_job(&e, d, 300, name);
    let end = train::<G>(&job, state, device, |_| Ok(())).unwrap();
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
    println!(
        "masked LeNet on {name}: {pruned} pruned weights still exactly 0 after 300 iterations"
    );
}

/// `‖a − b‖ / ‖b − start‖` over all of a state's vectors: how far two steps from `start` ended
/// apart, against how far the CPU's step moved.
fn relative_drift(a: &[Vec<f32>], b: &[Vec<f32>], start: &[Vec<f32>]) -> f64 {
    let square = |v: f32| f64::from(v) * f64::from(v);
    let (mut diff, mut moved) = (0.0, 0.0);
    for ((a, b), s) in a.iter().zip(b).zip(start) {
        diff += a.iter().zip(b).map(|(x, y)| square(x - y)).sum::<f64>();
        moved += b.iter().zip(s).map(|(x, y)| square(x - y)).sum::<f64>();
    }
    (diff / moved).sqrt()
}

/// A training step of ResNet-20's recipe (SGD with momentum 0.9 and weight decay, augmented
/// batches) on `device` from a state with momentum and batch norm statistics (one CPU step
/// in) moves the weights, the momentum and the running statistics as the CPU's step does, and
/// the GPU evaluates the result as the CPU does (batch norm with running statistics): what
/// the gradient test does not reach. One step, not a run: ResNet-20 at initialisation is
/// chaotic — a 1e-6 relative nudge of its weights moves a 5-step CPU run 0.4 away (relative
/// to its moves), as far as the GPU's rounding does.
fn a_resnet20_step_matches_the_cpu<G: TrainBackend>(name: &str, device: &G::Device) {
    let e = experiment(
        "resnet20",
        "cifar10",
        "resnet20_standard with { batch = 32 }",
    );
    let d = random_data(&e);
    let job = |end| quiet_job(&e, d.clone(), end, name);
    let cpu_step = |state: State| {
        let end = state.iteration + 1;
        train::<Autodiff<Flex>>(&job(end), state, &Default::default(), |_| Ok(()))
    };
    let start = cpu_step(fresh_state(&e.network, &e.recipe, 1, 0)).unwrap();
    let cpu = cpu_step(start.clone()).unwrap();
    let gpu = train::<G>(&job(2), start.clone(), device, |_| Ok(())).unwrap();
    let velocity = |s: &State| s.slots.iter().flatten().cloned().collect::<Vec<_>>();
    let drifts = [
        (
            "weights",
            relative_drift(&gpu.params, &cpu.params, &start.params),
        ),
        (
            "running statistics",
            relative_drift(&gpu.buffers, &cpu.buffers, &start.buffers),
        ),
        (
            "momentum",
            relative_drift(&velocity(&gpu), &velocity(&cpu), &velocity(&start)),
        ),
    ];
    let shown: Vec<String> = drifts.iter().map(|(w, d)| format!("{w} {d:.1e}")).collect();
    println!(
        "ResNet-20 step on {name} against the CPU's (relative to its moves): {}",
        shown.join(", ")
    );
    for (what, drift) in drifts {
        assert!(
            drift <= TOLERANCE,
            "{what} moved {drift:.2e} off the CPU's on {name}"
        );
    }
    let on_cpu = evaluate::<Flex>(&e.network, &gpu, &d, Split::Test, &Default::default()).unwrap();
    let on_gpu = evaluate::<G::InnerBackend>(&e.network, &gpu, &d, Split::Test, device).unwrap();
    println!(
        "evaluated on the CPU: loss {:.6}, accuracy {}; on {name}: {:.6}, {}",
        on_cpu.loss, on_cpu.accuracy, on_gpu.loss, on_gpu.accuracy
    );
    assert!(((on_gpu.loss - on_cpu.loss) / on_cpu.loss).abs() <= 1e-3);
    assert!((on_gpu.accuracy - on_cpu.accuracy).abs() <= 1.0 / 64.0);
}

/// `lthc run --device <device>` end to end: IMP with rewinding, a random-pruning control and
/// data-order stability train, prune, rewind and evaluate on the GPU backend (with two
/// jobs: threads sharing the device), and give the rows the CPU gives, with accuracies
/// close to the CPU's (not the same bits: the GPU sums in other orders).
fn an_imp_sweep_runs_as_on_the_cpu(device: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dataset = crate::common::tiny_idx(&dir.path().join("tiny"), 480, 100);
    let program = format!(
        "import \"stdlib/networks.lth\"\n{dataset}\n\
experiment imp {{\n  network = mlp(36, 64, 32, 2)\n  data = tiny\n  train = {{ optimizer = sgd(lr: 0.05, momentum: 0.9), batch = 16, duration = 90 it }}\n  \
prune = magnitude(global, 30%) for 2 levels\n  rewind = [0 it, 10 it]\n  controls = [random_prune]\n  measure = [stability(data_order)]\n}}\n"
    );
    std::fs::write(dir.path().join("sweep.lth"), program).unwrap();
    let results = |device: &str| {
        let cache = format!("cache-{device}");
        let run = crate::common::lthc(
            &[
                "run",
                "-q",
                "--jobs",
                "2",
                "--device",
                device,
                "--cache",
                &cache,
                "sweep.lth",
            ],
            dir.path(),
        );
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{device}: {err}");
        let out = crate::common::lthc(
            &[
                "results",
                "--format",
                "json",
                "--cache",
                &cache,
                "sweep.lth",
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{device}: results");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (cpu, gpu) = (results("cpu"), results(device));
    let (cpu, gpu) = (cpu.as_array().unwrap(), gpu.as_array().unwrap());
    assert_eq!(cpu.len(), gpu.len());
    assert_eq!(
        cpu.len(),
        2 * (1 + 2 * 2),
        "dense + 2 rewinds x 2 levels, 2 copies"
    );
    for (c, g) in cpu.iter().zip(gpu) {
        let field = |row: &serde_json::Value, name: &str| row[name].clone();
        // Global pruning keeps a count: the same density. Which layer a weight near the
        // threshold is in may differ with the weights' last bits.
        for same in ["arm", "rewind_iteration", "seed", "level", "density"] {
            assert!(!c[same].is_null(), "{same} of {c}");
            assert_eq!(field(c, same), field(g, same), "{same} of {c}");
        }
        // [name, kept, total] per layer.
        let layers = |row: &serde_json::Value| row["layer_density"].as_array().unwrap().clone();
        for (a, b) in layers(c).iter().zip(&layers(g)) {
            let count = |v: &serde_json::Value, i: usize| v[i].as_f64().unwrap();
            assert_eq!(a[0], b[0]);
            let off = (count(a, 1) - count(b, 1)).abs() / count(a, 2);
            assert!(off <= 0.01, "layer densities of\ncpu {c}\n{device} {g}");
        }
        let accuracy = |row: &serde_json::Value| row["test_accuracy"].as_f64().unwrap();
        assert!(accuracy(g) > 0.9, "{device}: {g}");
        assert!(
            (accuracy(c) - accuracy(g)).abs() <= 0.05,
            "cpu {c}\n{device} {g}"
        );
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::backend::cuda::CudaDevice;
    use burn::backend::{Autodiff, Cuda};

    #[test]
    #[ignore = "needs a GPU: bench/gpu.sh"]
    fn one_step_gradients_agree_with_the_cpu() {
        super::one_step_gradients_agree_with_the_cpu::<Autodiff<Cuda>>("CUDA", &CudaDevice::new(0));
    }

    #[test]
    #[ignore = "needs a GPU: bench/gpu.sh"]
    fn masked_lenet_keeps_pruned_weights_at_zero_for_300_iterations() {
        super::masked_lenet_keeps_pruned_weights_at_zero::<Autodiff<Cuda>>(
            "CUDA",
            &CudaDevice::new(0),
        );
    }

    #[test]
    #[ignore = "needs a GPU: bench/gpu.sh"]
    fn a_resnet20_step_matches_the_cpu() {
        super::a_resnet20_step_matches_the_cpu::<Autodiff<Cuda>>("CUDA", &CudaDevice::new(0));
    }

    #[test]
    #[ignore = "needs a GPU: bench/gpu.sh"]
    fn an_imp_sweep_runs_on_cuda_as_on_the_cpu() {
        super::an_imp_sweep_runs_as_on_the_cpu("cuda");
    }
}

/// On the default wgpu device: a GPU if there is one, else a CPU device such as lavapipe.
#[cfg(feature = "wgpu")]
mod wgpu {
    use burn::backend::wgpu::WgpuDevice;
    use burn::backend::{Autodiff, Wgpu};

    #[test]
    fn one_step_gradients_agree_with_the_cpu() {
        super::one_step_gradients_agree_with_the_cpu::<Autodiff<Wgpu>>(
            "wgpu",
            &WgpuDevice::default(),
        );
    }

    #[test]
    fn masked_lenet_keeps_pruned_weights_at_zero_for_300_iterations() {
        super::masked_lenet_keeps_pruned_weights_at_zero::<Autodiff<Wgpu>>(
            "wgpu",
            &WgpuDevice::default(),
        );
    }

    #[test]
    fn a_resnet20_step_matches_the_cpu() {
        super::a_resnet20_step_matches_the_cpu::<Autodiff<Wgpu>>("wgpu", &WgpuDevice::default());
    }

    #[test]
    fn an_imp_sweep_runs_on_wgpu_as_on_the_cpu() {
        super::an_imp_sweep_runs_as_on_the_cpu("wgpu");
    }
}
