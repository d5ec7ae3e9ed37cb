//! lthc's own dense, convolution and batch-norm kernels against burn's plain operations: outputs and
//! every gradient agree within a stated tolerance, on shapes that reach every branch (padding
//! wider than the kernel's reach, strides, pointwise, groups, dilation, bias); results do not
//! depend on the thread count; and a whole network's gradients agree with the reference path.

mod common;

use std::sync::Arc;

use burn::backend::{Autodiff, Flex};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use lthc::data::batch::Order;
use lthc::nn::kernels;
use lthc::nn::kernels::simd::Lanes;
use lthc::rng::Rng;

type A = Autodiff<Flex>;

/// Largest difference allowed, relative to the largest magnitude of the reference (and at
/// least 1): the kernels sum in another order (and in f64 for batch norm), so they differ from
/// burn's f32 sums by rounding only.
const TOLERANCE: f32 = 2e-5;

fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<A, D> {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn host<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().into_vec::<f32>().unwrap()
}

/// `[y, dx, dw, db?]` for the loss `sum(y * r)`, `r` random from `seed`: every output and
/// gradient of a layer `y = f(x, w, b)`.
fn weighted_sum_gradients<const D: usize, const X: usize, const W: usize>(
    y: Tensor<A, D>,
    seed: u64,
    x: &Tensor<A, X>,
    w: &Tensor<A, W>,
    b: Option<&Tensor<A, 1>>,
) -> Vec<Vec<f32>> {
    let r = random(y.dims(), seed);
    let grads = (y.clone() * r).sum().backward();
    let mut out = vec![
        host(y.inner()),
        host(x.grad(&grads).unwrap()),
        host(w.grad(&grads).unwrap()),
    ];
    if let Some(b) = b {
        out.push(host(b.grad(&grads).unwrap()));
    }
    out
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= TOLERANCE * scale,
        "{what}: differs by {worst} (scale {scale})"
    );
}

/// Every output of a kernel's run (`[y, dx, dw, db?]`) against the reference run's.
fn assert_runs_agree(what: &str, fast: &[Vec<f32>], plain: &[Vec<f32>]) {
    let names = [
        "output",
        "input gradient",
        "weight gradient",
        "bias gradient",
    ];
    assert_eq!(fast.len(), plain.len(), "{what}: outputs");
    for (name, (f, p)) in names.iter().zip(fast.iter().zip(plain)) {
        assert_close(&format!("{name} of {what}"), f, p);
    }
}

/// Output and gradients of `sum(conv(x, w, b) * r)` for fixed random x, w, b, r.
fn conv_run(
    x: [usize; 4],
    w: [usize; 4],
    bias: bool,
    opts: &ConvOptions<2>,
    fast: bool,
) -> Vec<Vec<f32>> {
    let xt = random(x, 1).require_grad();
    let wt = random(w, 2).require_grad();
    let bt = bias.then(|| random([w[0]], 3).require_grad());
    let y = if fast {
        kernels::conv2d(xt.clone(), wt.clone(), bt.clone(), opts.clone())
    } else {
        conv2d(xt.clone(), wt.clone(), bt.clone(), opts.clone())
    };
    weighted_sum_gradients(y, 4, &xt, &wt, bt.as_ref())
}

fn check_conv(x: [usize; 4], w: [usize; 4], bias: bool, opts: ConvOptions<2>) {
    let fast = conv_run(x, w, bias, &opts, true);
    let plain = conv_run(x, w, bias, &opts, false);
    assert_runs_agree(&format!("{x:?} * {w:?} {opts:?}"), &fast, &plain);
}

#[test]
fn convolution_agrees_with_burn() {
    let o = |s: [usize; 2], p: [usize; 2], d: [usize; 2], g: usize| ConvOptions::new(s, p, d, g);
    let cases = [
        // 3x3 same-padding (ResNet, VGG) with bias.
        (
            [4, 3, 9, 9],
            [8, 3, 3, 3],
            true,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        // Strided 3x3 on a non-square input, no bias (ResNet stage entries).
        (
            [3, 8, 10, 7],
            [6, 8, 3, 3],
            false,
            o([2, 2], [1, 1], [1, 1], 1),
        ),
        // Pointwise: the input is its own column matrix.
        (
            [2, 6, 8, 8],
            [5, 6, 1, 1],
            false,
            o([1, 1], [0, 0], [1, 1], 1),
        ),
        // Strided 1x1 projection shortcut.
        (
            [2, 6, 8, 8],
            [4, 6, 1, 1],
            true,
            o([2, 2], [0, 0], [1, 1], 1),
        ),
        // Groups, unequal padding, dilation, a rectangular kernel.
        (
            [2, 4, 11, 11],
            [6, 2, 5, 3],
            true,
            o([1, 2], [2, 1], [1, 2], 2),
        ),
        // Stride 1 with groups, dilation and a rectangular kernel (the weight gradient's
        // shifted views), over more examples than one weight-gradient chunk.
        (
            [10, 4, 9, 8],
            [6, 2, 3, 2],
            false,
            o([1, 1], [2, 1], [2, 3], 2),
        ),
        // "Same" output size with dilation and unequal padding.
        (
            [3, 2, 7, 9],
            [4, 2, 3, 5],
            true,
            o([1, 1], [2, 4], [1, 2], 1),
        ),
        // ResNet-20's first stage, and a strided layer, at full size.
        (
            [2, 16, 32, 32],
            [8, 16, 3, 3],
            true,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        (
            [2, 16, 32, 32],
            [8, 16, 3, 3],
            false,
            o([2, 2], [1, 1], [1, 1], 1),
        ),
        // ResNet-20's last stage: 64 channels on 8x8.
        (
            [2, 64, 8, 8],
            [4, 64, 3, 3],
            false,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        // Padding wider than the input: rows and columns entirely outside.
        (
            [2, 3, 5, 5],
            [4, 3, 7, 7],
            false,
            o([1, 1], [3, 3], [1, 1], 1),
        ),
        // Stride larger than the kernel leaves pixels unused.
        (
            [1, 1, 7, 7],
            [2, 1, 2, 2],
            false,
            o([3, 3], [0, 0], [1, 1], 1),
        ),
        // The stem of ResNet-50 (7x7, stride 2, padding 3) on a small image.
        (
            [2, 3, 16, 16],
            [4, 3, 7, 7],
            false,
            o([2, 2], [3, 3], [1, 1], 1),
        ),
        // Winograd tiles: odd output sizes (partial tiles), rows wider than one lane group
        // with a remainder, and an example split into bands of tile rows.
        (
            [2, 8, 41, 37],
            [8, 8, 3, 3],
            true,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        // Winograd without padding and with padding 2 (the input gradient's convolution then
        // has padding 2 and 0), on pieces of several examples, the last one partial.
        (
            [7, 64, 8, 8],
            [8, 64, 3, 3],
            false,
            o([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            [3, 16, 6, 5],
            [8, 16, 3, 3],
            true,
            o([1, 1], [2, 2], [1, 1], 1),
        ),
        // The weight gradient by Winograd: bands of tile rows within
        // an example, partial tiles; then groups of examples, the last chunk of the sum partial.
        (
            [2, 32, 23, 21],
            [32, 32, 3, 3],
            true,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        (
            [10, 32, 6, 6],
            [32, 32, 3, 3],
            false,
            o([1, 1], [1, 1], [1, 1], 1),
        ),
        // The Winograd weight gradient without padding and with padding 2.
        (
            [2, 32, 7, 6],
            [32, 32, 3, 3],
            true,
            o([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            [2, 32, 5, 7],
            [32, 32, 3, 3],
            false,
            o([1, 1], [2, 2], [1, 1], 1),
        ),
    ];
    for (x, w, bias, options) in cases {
        check_conv(x, w, bias, options);
    }
}

/// Output and gradients of `sum((x · w + b) * r)`, w `[inputs, outputs]` as dense weights are
/// on a device.
fn dense_run(n: usize, inputs: usize, outputs: usize, bias: bool, fast: bool) -> Vec<Vec<f32>> {
    dense_run_on(random([n, inputs], 11), outputs, bias, fast)
}

/// [`dense_run`] for a given `x`.
fn dense_run_on(x: Tensor<A, 2>, outputs: usize, bias: bool, fast: bool) -> Vec<Vec<f32>> {
    let x = x.require_grad();
    let w = random([x.dims()[1], outputs], 12).require_grad();
    let b = bias.then(|| random([outputs], 13).require_grad());
    let y = if fast {
        kernels::linear(x.clone(), w.clone(), b.clone())
    } else {
        let y = x.clone().matmul(w.clone());
        match &b {
            Some(b) => y + b.clone().unsqueeze_dim(0),
            None => y,
        }
    };
    weighted_sum_gradients(y, 14, &x, &w, b.as_ref())
}

#[test]
fn dense_layers_agree_with_burn() {
    // Batches and outputs that are not multiples of the kernel's 32-row blocks.
    // LeNet's first layer at batch 60 and one with a narrow third piece: forward products
    // in pieces of 160 outputs.
    for (n, i, o, bias) in [
        (60, 50, 30, true),
        (70, 33, 65, false),
        (1, 7, 3, true),
        (60, 784, 300, true),
        (100, 400, 330, false),
    ] {
        let fast = dense_run(n, i, o, bias, true);
        let plain = dense_run(n, i, o, bias, false);
        assert_runs_agree(&format!("[{n}, {i}] -> {o}"), &fast, &plain);
    }
}

/// `[n, inputs]`, every entry the background `c` except a `density` share (random values).
fn mostly(n: usize, inputs: usize, c: f32, density: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * inputs)
        .map(|_| {
            let keep = rng.next_f64() < density;
            let v = (rng.next_f64() * 4.0 - 1.0) as f32;
            if keep {
                v
            } else {
                c
            }
        })
        .collect()
}

/// [`dense_run`] for an `x` (`[n, …]`) that is mostly one value.
fn sparse_dense_run(x: &[f32], n: usize, outputs: usize, bias: bool, fast: bool) -> Vec<Vec<f32>> {
    let shape = [n, x.len() / n];
    let x = Tensor::from_data(TensorData::new(x.to_vec(), shape), &Default::default());
    dense_run_on(x, outputs, bias, fast)
}

#[test]
fn layers_with_mostly_one_input_value_agree_with_burn() {
    use kernels::sparse_input;
    // MNIST-like (a non-zero background, a fifth of the pixels not blank) and ReLU-like
    // (zeros); batches that are not a multiple of the pieces, inputs with a tail past the
    // last eight, outputs below, at and past one block of 64 sums with a partial last one.
    for (n, inputs, outputs, c, bias) in [
        (37, 101, 45, -0.4242f32, true),
        (20, 784, 300, -0.4242, false),
        (9, 64, 150, 0.0, true),
        (130, 200, 64, 0.0, false),
    ] {
        let x = mostly(n, inputs, c, 0.2, 21);
        let shape = kernels::dense::Shape {
            batch: n,
            inputs,
            outputs,
        };
        let w = vec![0.5f32; outputs * inputs];
        assert!(
            sparse_input::forward(&shape, &x, &w, None).is_some(),
            "[{n}, {inputs}] -> {outputs} takes the sparse path"
        );
        let fast = sparse_dense_run(&x, n, outputs, bias, true);
        let plain = sparse_dense_run(&x, n, outputs, bias, false);
        let what = format!("[{n}, {inputs}] -> {outputs}, c = {c}");
        assert_runs_agree(&what, &fast, &plain);
    }
    // Inputs that are not mostly one value keep the dense product.
    let shape = kernels::dense::Shape {
        batch: 20,
        inputs: 784,
        outputs: 300,
    };
    let dense = mostly(20, 784, -0.4242, 0.6, 22);
    let w = vec![0.5f32; 300 * 784];
    assert!(sparse_input::forward(&shape, &dense, &w, None).is_none());
}

/// Output, statistics and gradients of `sum(bn(x) * r)`, or `sum(relu(bn(x)) * r)`.
fn batchnorm_run(x: [usize; 4], relu: bool, fast: bool) -> Vec<Vec<f32>> {
    let xt = (random(x, 5) * 3.0 + 0.5).detach().require_grad();
    let gamma = random([x[1]], 6).require_grad();
    let beta = random([x[1]], 7).require_grad();
    let (y, mean, var) = if fast {
        kernels::batchnorm(xt.clone(), gamma.clone(), beta.clone(), 1e-5, relu)
    } else {
        // burn's own ReLU after the tensor-operation batch norm.
        let (y, mean, var) = kernels::generic::batchnorm_forward(
            xt.clone(),
            gamma.clone(),
            beta.clone(),
            1e-5,
            false,
        );
        let y = if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
        (y, mean, var)
    };
    let r = random(y.dims(), 8);
    let grads = (y.clone() * r).sum().backward();
    vec![
        host(y.inner()),
        host(mean.inner()),
        host(var.inner()),
        host(xt.grad(&grads).unwrap()),
        host(gamma.grad(&grads).unwrap()),
        host(beta.grad(&grads).unwrap()),
    ]
}

#[test]
fn batch_norm_and_relu_agree_with_tensor_operations() {
    // Images, and flat features as [n, f, 1, 1].
    for (x, relu) in [
        ([8, 5, 6, 6], false),
        ([16, 7, 1, 1], false),
        ([2, 3, 4, 5], true),
        ([8, 5, 6, 6], true),
    ] {
        let fast = batchnorm_run(x, relu, true);
        let plain = batchnorm_run(x, relu, false);
        let names = [
            "output",
            "mean",
            "variance",
            "input gradient",
            "scale gradient",
            "shift gradient",
        ];
        for (what, (f, p)) in names.iter().zip(fast.iter().zip(&plain)) {
            assert_close(&format!("{what} of {x:?} (relu: {relu})"), f, p);
        }
    }
}

#[test]
fn kernels_do_not_depend_on_the_thread_count_or_the_vector_width() {
    let mostly_x = mostly(600, 500, -0.4242, 0.25, 23);
    let shape = kernels::dense::Shape {
        batch: 600,
        inputs: 500,
        outputs: 130,
    };
    let w = vec![0.5f32; 130 * 500];
    assert!(kernels::sparse_input::forward(&shape, &mostly_x, &w, None).is_some());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = conv_run(
                [20, 4, 8, 8],
                [6, 4, 3, 3],
                true,
                &ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                true,
            );
            // Winograd's pieces of several examples, the last one partial, and its weight
            // gradient summed over two chunks of examples.
            out.extend(conv_run(
                [13, 32, 8, 8],
                [32, 32, 3, 3],
                false,
                &ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                true,
            ));
            // Tile rows of whole groups of eight and four tiles and a partial group (the
            // transforms' vector paths and their lane loops), an odd output width.
            for x in [[3, 32, 18, 18], [2, 32, 13, 13]] {
                out.extend(conv_run(
                    x,
                    [32, 32, 3, 3],
                    true,
                    &ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                    true,
                ));
            }
            out.extend(batchnorm_run([20, 4, 8, 8], true, true));
            // Products large enough to split into row blocks, the last one partial: with
            // this shape, gemm's sums over all 3,000 rows at once differ in the last bit.
            out.extend(dense_run(3000, 3000, 8, true, true));
            // One block of rows: the forward product in pieces of columns.
            out.extend(dense_run(60, 784, 300, true, true));
            // Mostly-background inputs, enough entries (x outputs) to split between threads.
            out.extend(sparse_dense_run(&mostly_x, 600, 130, true, true));
            out
        })
    };
    let one = run(1);
    assert_eq!(one, run(2), "1 vs 2 threads");
    assert_eq!(one, run(3), "1 vs 3 threads");
    // The same bits from the loops compiled for narrower lanes (AVX2 on an AVX-512 CPU, the
    // SSE2 baseline everywhere): the width only changes the speed.
    for lanes in [Lanes::Avx2, Lanes::Baseline] {
        kernels::simd::set_widest(lanes);
        let narrower = run(2);
        kernels::simd::set_widest(Lanes::Avx512);
        let first_difference = one
            .iter()
            .zip(&narrower)
            .enumerate()
            .find_map(|(k, (a, b))| {
                let at = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x.to_bits() != y.to_bits())?;
                Some(format!("output {k}, value {at}: {} vs {}", a[at], b[at]))
            });
        assert_eq!(first_difference, None, "widest lanes vs {lanes:?}");
    }
}

#[test]
fn a_residual_network_has_the_reference_gradients() {
    let defs = "network tinyres on [1, 6, 6] {\n  conv(4, 3, padding: 1, bias: false), batchnorm, relu\n  residual {\n    conv(4, 3, padding: 1, bias: false), batchnorm, relu\n    conv(4, 3, padding: 1, bias: false), batchnorm\n  }\n  relu\n  residual {\n    conv(8, 3, stride: 2, padding: 1, bias: false), batchnorm, relu\n    conv(8, 3, padding: 1), batchnorm\n    shortcut { conv(8, 1, stride: 2, bias: false), batchnorm }\n  }\n  relu, global_avgpool, dense(2)\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let dataset = common::tiny_idx(&dir.path().join("tiny"), 64, 10);
    let src = format!("{defs}{dataset}\nexperiment e {{\n  network = tinyres\n  data = tiny\n  train = {{ optimizer = sgd(lr: 0.1, momentum: 0.9), batch = 32, duration = 10 it }}\n}}\n");
    let (_, checked, diags) = common::check_one(&src);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    let e = checked.experiments[0].clone();
    let data = Arc::new(lthc::data::load(&e.dataset, dir.path(), false).unwrap());
    let state = lthc::train::fresh_state(&e.network, &e.recipe, 1, 0);
    let order = Order {
        seed: 1,
        copy: 0,
        batch: 32,
    };
    let grads = || {
        lthc::train::gradients::<A>(
            &e.network,
            &e.recipe,
            &data,
            order,
            &state,
            &Default::default(),
        )
        .unwrap()
    };
    let fast = grads();
    let plain = kernels::reference(grads);
    assert_eq!(fast.len(), plain.len());
    for (i, (f, p)) in fast.iter().zip(&plain).enumerate() {
        assert_close(&format!("gradient of parameter {i}"), f, p);
    }
    assert!(
        plain.iter().flatten().any(|g| *g != 0.0),
        "the gradients are not all zero"
    );
}
