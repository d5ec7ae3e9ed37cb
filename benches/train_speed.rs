//! Training throughput of lthc on the CPU backend: LeNet-300-100 (batch 60) on random MNIST-
//! shaped data, and the CIFAR ResNet-20 and VGG-19's first stage (`vgg_stage1`, batch 128) on
//! random 32x32x3 data. Prints one JSON line per network; `bench/train_speed.sh` compares it
//! with PyTorch in the same run.
//!
//! `lenet_sgd` is LeNet-300-100 with bench/sweep.sh's recipe (SGD 0.1, batch 128).
//! `lenet_mnist` and `lenet_sgd_mnist` are the same on the real MNIST training set (from
//! `$LTHC_DATA`: `lthc data fetch mnist`), where the first layer's input is 81% blank pixels
//! and takes the sparse path (`nn::kernels::sparse_input`); on random data it never does.
//!
//! `cargo bench --bench train_speed -- [lenet|lenet_sgd|lenet_mnist|lenet_sgd_mnist|resnet20|vgg_stage1] [iterations]`
//!
//! `LTHC_BENCH_DEVICE=cuda` (built with `--features cuda`) or `wgpu` (`--features wgpu`)
//! trains on that device instead (`bench/gpu.sh`).

use std::sync::Arc;
use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use lthc::check::{check_files, DatasetSpec, Memory};
use lthc::data::batch::Order;
use lthc::data::{Dataset, Examples, Source};
use lthc::rng::Rng;
use lthc::train::{fresh_state, train, Job, Progress};

fn experiment(network: &str) -> lthc::check::ExperimentSpec {
    // `lenet_sgd`: the per-step rate of bench/sweep.sh's runs (SGD 0.1, batch 128).
    let (data, recipe, network) = match network {
        "lenet" => ("mnist", "lenet_adam", network),
        "lenet_sgd" => (
            "mnist",
            "lenet_adam with { optimizer = sgd(lr: 0.1), batch = 128 }",
            "lenet",
        ),
        _ => ("cifar10", "resnet20_standard", network),
    };
    // LTHC_BENCH_NETWORK: another network on the same data (`vgg_stage(16, 2)`, ...).
    let network = std::env::var("LTHC_BENCH_NETWORK").unwrap_or_else(|_| network.to_string());
    let mut extra = std::env::var("LTHC_BENCH_DEFS").unwrap_or_default();
    // VGG-19's first stage at CIFAR-10 size (two 3x3 convolutions of 64 filters with batch
    // norm), pooled into a classifier: the layers that dominate VGG-19's training time.
    extra.push_str("\nnetwork vgg_stage1 on [3, 32, 32] {\n  vgg_stage(64, 2)\n  maxpool(2)\n  global_avgpool\n  dense(10)\n}\n");
    let src = format!("import \"stdlib/paper.lth\"\n{extra}\nexperiment bench {{\n  network = {network}\n  data = {data}\n  train = {recipe}\n}}\n");
    let mut mem = Memory::default();
    mem.0.insert("bench.lth".into(), src);
    let (_, checked, diags) = check_files(&["bench.lth".into()], &mem);
    assert!(diags.is_empty());
    checked
        .experiments
        .into_iter()
        .next()
        .expect("one experiment")
}

fn random_data(spec: &DatasetSpec) -> Dataset {
    let shape = [
        spec.shape[0] as usize,
        spec.shape[1] as usize,
        spec.shape[2] as usize,
    ];
    let mut rng = Rng::new(1);
    let make = |n: usize, rng: &mut Rng| Examples {
        shape,
        pixels: (0..n * shape.iter().product::<usize>())
            .map(|_| rng.below(256) as u8)
            .collect(),
        labels: (0..n).map(|_| rng.below(spec.classes) as u16).collect(),
    };
    let mut spec = spec.clone();
    spec.train_size = 10_000;
    spec.holdout = 0;
    spec.test_size = 100;
    Dataset {
        train: Source::Memory(make(10_000, &mut rng)),
        test: Source::Memory(make(100, &mut rng)),
        spec,
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used so far, all threads, user and system: on a virtual
/// machine the time the hypervisor takes away ("steal") lengthens wall times, not this.
fn cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, t: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2; // Linux
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: writes one `struct timespec` (two 64-bit fields on 64-bit Linux) into `t`.
    if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return f64::NAN;
    }
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// Wall and CPU seconds for `its` iterations of `jobs` runs at once (threads sharing the
/// device, as `lthc run --jobs` does), each after 5 to warm up (allocations, first-call costs,
/// kernels' compilation on a GPU); the final download waits for the device.
fn time<'a, B: lthc::train::TrainBackend>(
    job: &(dyn Fn(u64) -> Job<'a> + Sync),
    its: u64,
    state: lthc::train::State,
    device: &B::Device,
    jobs: usize,
) -> (f64, f64) {
    let warm = train::<B>(&job(5), state, device, |_| Ok(())).expect("train");
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let run = |warm| train::<B>(&job(5 + its), warm, device, |_| Ok(())).expect("train");
    if jobs == 1 {
        // On the warmed-up thread, as before `jobs` existed: its thread-local buffers are warm.
        run(warm);
    } else {
        std::thread::scope(|s| {
            for _ in 0..jobs {
                let warm = warm.clone();
                s.spawn(move || run(warm));
            }
        });
    }
    B::sync(device).expect("sync");
    let timed = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    // CUBECL_DEBUG_OPTION=profile: cubecl times each kernel and prints a summary at the sync
    // above, from a logger thread that needs a moment before the process ends.
    if std::env::var_os("CUBECL_DEBUG_OPTION").is_some() {
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    timed
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let networks: Vec<String> = match args.first() {
        Some(n) => vec![n.clone()],
        None => vec!["lenet".into(), "resnet20".into(), "vgg_stage1".into()],
    };
    let iterations: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    for network in networks {
        let (base, real) = match network.strip_suffix("_mnist") {
            Some(base) => (base, true),
            None => (network.as_str(), false),
        };
        let e = experiment(base);
        let its = if iterations > 0 {
            iterations
        } else if base.starts_with("lenet") {
            3000
        } else {
            30
        };
        let data = Arc::new(if real {
            lthc::data::load(&e.dataset, &lthc::data::data_dir(), false)
                .unwrap_or_else(|err| panic!("{err:?}: run `lthc data fetch mnist` first"))
        } else {
            random_data(&e.dataset)
        });
        let job = |end: u64| Job {
            net: &e.network,
            recipe: &e.recipe,
            data: data.clone(),
            order: Order {
                seed: 1,
                copy: 0,
                batch: e.recipe.batch as usize,
            },
            end,
            checkpoints: Default::default(),
            progress: Progress::Quiet,
            label: network.clone(),
        };
        let state = fresh_state(&e.network, &e.recipe, 1, 0);
        // LTHC_BENCH_JOBS: that many runs at once; examples/s counts them all.
        let jobs: usize = std::env::var("LTHC_BENCH_JOBS")
            .ok()
            .and_then(|j| j.parse().ok())
            .unwrap_or(1);
        let (secs, cpu) = match std::env::var("LTHC_BENCH_DEVICE").as_deref() {
            #[cfg(feature = "cuda")]
            Ok("cuda") => time::<burn::backend::Autodiff<burn::backend::Cuda>>(
                &job,
                its,
                state,
                &Default::default(),
                jobs,
            ),
            #[cfg(feature = "wgpu")]
            Ok("wgpu") => time::<burn::backend::Autodiff<burn::backend::Wgpu>>(
                &job,
                its,
                state,
                &Default::default(),
                jobs,
            ),
            _ => time::<Autodiff<Flex>>(&job, its, state, &Default::default(), jobs),
        };
        println!(
            "{{\"framework\": \"lthc\", \"network\": \"{network}\", \"batch\": {}, \"iterations\": {its}, \"jobs\": {jobs}, \"seconds\": {secs:.3}, \"cpu_seconds\": {cpu:.3}, \"examples_per_second\": {:.1}, \"peak_rss_mib\": {:.1}, \"threads\": {}}}",
            e.recipe.batch,
            (jobs as u64 * its * e.recipe.batch) as f64 / secs,
            peak_rss_kib() as f64 / 1024.0,
            rayon::current_num_threads()
        );
    }
}
