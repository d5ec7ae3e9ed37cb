//! Convolutions on GPU backends as matrix products: the input unfolded (im2col) into
//! `[n, c·kh·kw, ho·wo]`, then one batched product per pass, in burn's tensor operations.
//!
//! burn-cubecl 0.21 without its `autotune` feature convolves with a direct kernel and computes
//! the weight gradient as another direct convolution whose kernel is the output gradient (a
//! 32x32 one over the batch for ResNet-20's first stage): ResNet-20 trained at 0.08x PyTorch's
//! rate on an H200. Its autotuned kernels compile dozens of candidates per shape first (over
//! 170 s for ResNet-20). Products go to burn's matmul, which uses tensor cores where the device
//! has them, with no tuning.
//!
//! - forward: `y[b] = w · cols(x)[b]` (w as `[o, c·kh·kw]`);
//! - weight gradient: `dw = Σ_b dy[b] · cols(x)[b]ᵀ`;
//! - input gradient: the stride-1 convolution of the output gradient, spread out by the stride
//!   ([`generic_conv::spread`]), with the kernel flipped and its in and out channels swapped.
//!
//! Grouped convolutions and padding wider than the kernel take burn's own operations.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{s, Tensor, TensorMetadata};

use super::float;
use super::{conv, generic_conv};

/// The most bytes an unfolded input may take: larger batches are unfolded and multiplied in
/// parts. Under wgpu's largest storage buffer binding (128 MiB by default: a 144 MiB unfolded
/// input failed to allocate on lavapipe); ResNet-20's largest at batch 128 is 72 MiB, an
/// ImageNet 3x3 convolution at 56x56 ~7 MiB per example. Small in unit tests, so that they
/// take the parts' path.
const MOST_UNFOLDED_BYTES: usize = if cfg!(test) { 64 << 10 } else { 120 << 20 };

/// Whether these products apply: one group, and padding no wider than the (dilated) kernel
/// reaches, which the input gradient's convolution needs.
fn applies(weight_shape: &[usize], options: &ConvOptions<2>) -> bool {
    options.groups == 1
        && (0..2).all(|i| options.padding[i] <= options.dilation[i] * (weight_shape[2 + i] - 1))
}

/// `conv2d(x, weight) + bias`.
pub fn conv2d_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !applies(&weight.shape(), &options) {
        return B::conv2d(x, weight, bias, options);
    }
    let y = forward(float(x), float(weight), &options);
    let y = match bias {
        Some(b) => y + float::<B, 1>(b).reshape([1, -1, 1, 1]),
        None => y,
    };
    y.into_primitive().tensor()
}

/// `dw` of `y = conv2d(x, weight)`, given `dy`.
pub fn conv2d_weight_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !applies(&weight.shape(), &options) {
        return B::conv2d_weight_backward(x, weight, output_grad, options);
    }
    let [o, c, kh, kw] = shape4(&weight.shape());
    let (x, dy) = (float::<B, 4>(x), float::<B, 4>(output_grad));
    let [n, _, ho, wo] = dy.dims();
    let unfolded = c * kh * kw;
    let mut dw: Option<Tensor<B, 2>> = None;
    for (start, len) in parts(n, unfolded * ho * wo) {
        let cols = unfold(x.clone().narrow(0, start, len), [kh, kw], &options);
        let dy = dy.clone().narrow(0, start, len).reshape([len, o, ho * wo]);
        // Products of `groups` examples each, summed: one per example keeps the operands as
        // they are; fewer, larger ones keep the partial sums (`o × c·kh·kw` a product) small
        // where the maps are small and the channels many (Inception's last blocks: 6 MB per
        // example).
        let groups = product_groups(len, o * unfolded);
        let part = if groups == len {
            dy.matmul(cols.swap_dims(1, 2))
        } else {
            let per = len / groups;
            let dy = dy
                .reshape([groups, per, o, ho * wo])
                .swap_dims(1, 2)
                .reshape([groups, o, per * ho * wo]);
            let cols = cols
                .reshape([groups, per, unfolded, ho * wo])
                .swap_dims(2, 3)
                .reshape([groups, per * ho * wo, unfolded]);
            dy.matmul(cols)
        };
        let part = part.sum_dim(0).reshape([o, unfolded]);
        dw = Some(match dw {
            Some(sum) => sum + part,
            None => part,
        });
    }
    let dw = dw.expect("a batch of at least one example");
    dw.reshape([o, c, kh, kw]).into_primitive().tensor()
}

/// `dx` of `y = conv2d(x, weight)`, given `dy`.
pub fn conv2d_input_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    if !applies(&weight.shape(), &options) {
        return generic_conv::conv2d_input_grad::<B>(x, weight, output_grad, options);
    }
    let [_, _, kh, kw] = shape4(&weight.shape());
    let input = [x.shape()[2], x.shape()[3]];
    let kernel = [kh, kw];
    let d = options.dilation;
    // The stride-1 convolution below, padded by p' = d·(k − 1) − p, lengthens a map by
    // 2p' − d·(k − 1) = d·(k − 1) − 2p: the spread gradient is the input's length plus
    // 2p − d·(k − 1).
    let spread_size: [usize; 2] =
        std::array::from_fn(|i| input[i] + 2 * options.padding[i] - d[i] * (kernel[i] - 1));
    let dy = generic_conv::spread(float::<B, 4>(output_grad), options.stride, spread_size);
    let flipped = float::<B, 4>(weight).swap_dims(0, 1).flip([2, 3]);
    let transposed = ConvOptions::new(
        [1, 1],
        std::array::from_fn(|i| d[i] * (kernel[i] - 1) - options.padding[i]),
        d,
        1,
    );
    forward(dy, flipped, &transposed).into_primitive().tensor()
}

/// `conv2d(x, weight)` (one group) as products with the unfolded input, in parts of the batch.
fn forward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    options: &ConvOptions<2>,
) -> Tensor<B, 4> {
    let [o, c, kh, kw] = weight.dims();
    let n = x.dims()[0];
    let [ho, wo] = output_size(&x.dims(), [kh, kw], options);
    let w = weight.reshape([1, o, c * kh * kw]);
    let mut parts: Vec<Tensor<B, 3>> = parts(n, c * kh * kw * ho * wo)
        .map(|(start, len)| {
            let cols = unfold(x.clone().narrow(0, start, len), [kh, kw], options);
            w.clone().matmul(cols)
        })
        .collect();
    // `cat` copies even a single tensor.
    let y = match parts.len() {
        1 => parts.pop().expect("one part"),
        _ => Tensor::cat(parts, 0),
    };
    y.reshape([n, o, ho, wo])
}

/// `x` (`[n, c, h, w]`) unfolded to `[n, c·kh·kw, ho·wo]`: row `(ci, i, j)` holds the input
/// under kernel entry `(i, j)` of channel `ci` at every output position (weights flattened
/// from `[o, c, kh, kw]` line up with it).
fn unfold<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    options: &ConvOptions<2>,
) -> Tensor<B, 3> {
    let [n, c, _, _] = x.dims();
    let [ho, wo] = output_size(&x.dims(), kernel, options);
    let (p, stride, d) = (options.padding, options.stride, options.dilation);
    if kernel == [1, 1] && stride == [1, 1] && p == [0, 0] {
        return x.reshape([n, c, ho * wo]);
    }
    let x = if p == [0, 0] {
        x
    } else {
        x.pad([(p[0], p[0]), (p[1], p[1])], 0.0)
    };
    let mut shifted = Vec::with_capacity(kernel[0] * kernel[1]);
    for i in 0..kernel[0] {
        for j in 0..kernel[1] {
            let (top, left) = (i * d[0], j * d[1]);
            let rows = top..top + (ho - 1) * stride[0] + 1;
            let cols = left..left + (wo - 1) * stride[1] + 1;
            shifted.push(x.clone().slice(s![.., .., rows;stride[0], cols;stride[1]]));
        }
    }
    // Joined along the rows, `[n, c, kh·kw·ho, wo]` is `[n, c, kh·kw, ho, wo]` in memory, so
    // the reshape moves nothing. (Not `stack`: it adds an axis to each view by a reshape, and
    // burn 0.21 gives a strided view with size-1 axes the wrong strides when a reshape adds
    // axes: 3x3 convolutions of 1x1 maps came out wrong on lavapipe.)
    Tensor::cat(shifted, 2).reshape([n, c * kernel[0] * kernel[1], ho * wo])
}

/// The output map's size of a convolution of `x_dims` (`[n, c, h, w]`) with `kernel`.
fn output_size(x_dims: &[usize; 4], kernel: [usize; 2], options: &ConvOptions<2>) -> [usize; 2] {
    std::array::from_fn(|i| {
        conv::out_len(
            x_dims[2 + i],
            kernel[i],
            options.stride[i],
            options.padding[i],
            options.dilation[i],
        )
    })
}

/// The most bytes of partial weight gradients summed at the end of a part's products (small in
/// unit tests, as [`MOST_UNFOLDED_BYTES`]).
const MOST_PARTIAL_BYTES: usize = if cfg!(test) { 2 << 10 } else { 16 << 20 };

/// How many products a part of `len` examples is computed in: the largest divisor of `len`
/// whose partial sums (`per_product` values each) fit in [`MOST_PARTIAL_BYTES`], at least 1.
fn product_groups(len: usize, per_product: usize) -> usize {
    let most = MOST_PARTIAL_BYTES / (4 * per_product.max(1));
    (1..=len.min(most).max(1))
        .rev()
        .find(|g| len % g == 0)
        .unwrap_or(1)
}

/// Parts of a batch of `n` (start, length) whose unfolded inputs (`per_example` values each)
/// fit in [`MOST_UNFOLDED_BYTES`]; at least one example a part.
fn parts(n: usize, per_example: usize) -> impl Iterator<Item = (usize, usize)> {
    let most = (MOST_UNFOLDED_BYTES / (4 * per_example.max(1))).clamp(1, n.max(1));
    (0..n)
        .step_by(most)
        .map(move |start| (start, most.min(n - start)))
}

fn shape4(shape: &burn::tensor::Shape) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::ops::{ConvOptions, ModuleOps};
    use burn::tensor::{Distribution, Tensor};

    use super::float;

    fn prim(t: Tensor<Flex, 4>) -> burn::tensor::ops::FloatTensor<Flex> {
        t.into_primitive().tensor()
    }

    fn worst(ours: Tensor<Flex, 4>, burns: Tensor<Flex, 4>, what: &str) {
        assert_eq!(ours.dims(), burns.dims(), "{what}");
        let scale = burns.clone().abs().max().into_scalar().max(1e-6);
        let worst = (ours - burns).abs().max().into_scalar() / scale;
        assert!(
            worst < 1e-5,
            "{what}: differs by {worst} of the largest value"
        );
    }

    /// The forward pass and both gradients against burn's own convolution on the CPU:
    /// ResNet's 3x3 stride 1 and 2 and 1x1 stride-2 shortcuts, an ImageNet stem (7x7 stride 2,
    /// padding 3), a pointwise layer, dilation, strides and sizes that differ by axis; batches
    /// that unfold in several parts, and weight gradients summed per example, per pair of
    /// examples and in one product.
    #[test]
    fn unfolded_products_are_the_convolution() {
        let device = Default::default();
        // (batch, channels in, out, size h w, kernel h w, stride, padding, dilation)
        let cases = [
            (3, 4, 6, [8, 8], [3, 3], [1, 1], [1, 1], [1, 1]),
            (3, 4, 6, [9, 9], [3, 3], [2, 2], [1, 1], [1, 1]),
            (2, 4, 8, [8, 8], [1, 1], [2, 2], [0, 0], [1, 1]),
            (2, 3, 5, [15, 13], [7, 7], [2, 2], [3, 3], [1, 1]),
            (5, 6, 3, [5, 7], [1, 1], [1, 1], [0, 0], [1, 1]),
            (2, 3, 4, [11, 10], [3, 3], [1, 1], [2, 2], [2, 2]),
            (2, 3, 4, [12, 10], [3, 2], [3, 2], [1, 0], [1, 1]),
            (2, 2, 3, [6, 6], [6, 6], [1, 1], [0, 0], [1, 1]),
            (40, 8, 4, [8, 8], [3, 3], [1, 1], [1, 1], [1, 1]),
            (6, 4, 5, [3, 3], [3, 3], [1, 1], [1, 1], [1, 1]),
        ];
        for (n, c, o, size, kernel, stride, padding, dilation) in cases {
            let what = format!(
                "kernel {kernel:?} stride {stride:?} padding {padding:?} dilation {dilation:?}"
            );
            let x =
                Tensor::<Flex, 4>::random([n, c, size[0], size[1]], Distribution::Default, &device);
            let w = Tensor::<Flex, 4>::random(
                [o, c, kernel[0], kernel[1]],
                Distribution::Default,
                &device,
            );
            let b = Tensor::<Flex, 1>::random([o], Distribution::Default, &device);
            let options = ConvOptions::new(stride, padding, dilation, 1);
            let burns = burn::tensor::module::conv2d(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                options.clone(),
            );
            let ours = super::conv2d_forward::<Flex>(
                prim(x.clone()),
                prim(w.clone()),
                Some(b.into_primitive().tensor()),
                options.clone(),
            );
            worst(float(ours), burns.clone(), &format!("forward, {what}"));

            let dy = Tensor::<Flex, 4>::random(burns.dims(), Distribution::Default, &device);
            let ours = super::conv2d_weight_grad::<Flex>(
                prim(x.clone()),
                prim(w.clone()),
                prim(dy.clone()),
                options.clone(),
            );
            let burns = Flex::conv2d_weight_backward(
                prim(x.clone()),
                prim(w.clone()),
                prim(dy.clone()),
                options.clone(),
            );
            worst(
                float(ours),
                float(burns),
                &format!("weight gradient, {what}"),
            );

            let ours = super::conv2d_input_grad::<Flex>(
                prim(x.clone()),
                prim(w.clone()),
                prim(dy.clone()),
                options.clone(),
            );
            let burns = Flex::conv2d_x_backward(prim(x), prim(w), prim(dy), options);
            worst(
                float(ours),
                float(burns),
                &format!("input gradient, {what}"),
            );
        }
    }

    /// Parts cover the batch in order, each within the budget unless one example alone is not.
    #[test]
    fn parts_cover_the_batch_within_the_budget() {
        let budget = super::MOST_UNFOLDED_BYTES / 4;
        for (n, per_example) in [
            (1, 1),
            (7, budget / 3),
            (128, budget / 5),
            (9, budget * 2),
            (0, 5),
        ] {
            let parts: Vec<_> = super::parts(n, per_example).collect();
            let mut next = 0;
            for &(start, len) in &parts {
                assert_eq!(start, next);
                assert!(
                    len >= 1 && (len == 1 || len * per_example <= budget),
                    "{n} x {per_example}: {parts:?}"
                );
                next += len;
            }
            assert_eq!(next, n, "{n} x {per_example}: {parts:?}");
        }
    }
}
