//! A convolution's input gradient on backends without lthc's kernels (CUDA, wgpu).
//!
//! burn-cubecl 0.21 computes it as a transposed convolution, and its direct transposed
//! convolution visits `kernel · dilation − stride + 1` input rows per output row: none when the
//! kernel is narrower than the stride, so every gradient is zero. ResNets' 1x1 stride-2
//! projection shortcuts are such convolutions, and the gradient that reaches the layers before
//! them was wrong (found by `tests/gpu.rs` on a software Vulkan device: ResNet-20's stem and
//! first two stages off by as much as their largest gradient). Autotuning may pick that kernel
//! on any GPU. For those convolutions the output gradient is spread out by the stride (zeros
//! between its values), and a stride-1 transposed convolution of it, which visits every
//! kernel row, gives the same gradient.

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{s, Tensor, TensorMetadata};

use super::float;

/// `dx` of `y = conv2d(x, weight)`, given `dy`.
pub fn conv2d_input_grad<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    let kernel = [weight.shape()[2], weight.shape()[3]];
    let skips = (0..2).any(|i| kernel[i] * options.dilation[i] < options.stride[i]);
    if !skips {
        return B::conv2d_x_backward(x, weight, output_grad, options);
    }
    let input = [x.shape()[2], x.shape()[3]];
    // The stride-1 transposed convolution of a map `m` long is `m + d·(k − 1) − 2p` long.
    let spread_size: [usize; 2] = std::array::from_fn(|i| {
        input[i] + 2 * options.padding[i] - options.dilation[i] * (kernel[i] - 1)
    });
    let dy = spread(float::<B, 4>(output_grad), options.stride, spread_size);
    B::conv_transpose2d(
        dy.into_primitive().tensor(),
        weight,
        None,
        ConvTransposeOptions::new(
            [1, 1],
            options.padding,
            [0, 0],
            options.dilation,
            options.groups,
        ),
    )
}

/// `t` (`[n, c, h, w]`) with `stride − 1` zeros after each value along h and w, cut to `size`.
/// `size` is at most `stride · [h, w]` and at least what holds the last value. Written into
/// zeros by a stepped slice, not built by reshapes: `t` may be a strided view (a gradient that
/// a concatenation's backward sliced out), and burn 0.21 gives such a view with size-1 axes the
/// wrong strides when a reshape adds axes (Inception's 3x3 stride-2 convolutions to 1x1 maps
/// came out wrong on lavapipe).
pub(super) fn spread<B: Backend>(
    t: Tensor<B, 4>,
    stride: [usize; 2],
    size: [usize; 2],
) -> Tensor<B, 4> {
    let [n, c, h, w] = t.dims();
    let [sh, sw] = stride;
    if size == [h, w] && stride == [1, 1] {
        return t; // nothing to spread (stride-1 convolutions' input gradients)
    }
    let rows = 0..(h - 1) * sh + 1;
    let cols = 0..(w - 1) * sw + 1;
    Tensor::zeros([n, c, size[0], size[1]], &t.device())
        .slice_assign(s![.., .., rows;sh, cols;sw], t)
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Distribution, Tensor};

    /// The spread formulation against burn's own input gradient on the CPU (which is right):
    /// 1x1 stride-2 shortcuts at even and odd sizes, padding, dilation, groups, strides that
    /// differ by axis, and a kernel as wide as the stride (which takes burn's path).
    #[test]
    fn spread_gradient_is_the_convolutions_input_gradient() {
        let device = Default::default();
        // (channels in, out, groups, size h w, kernel h w, stride, padding, dilation)
        let cases = [
            (16, 32, 1, [32, 32], [1, 1], [2, 2], [0, 0], [1, 1]),
            (8, 16, 1, [9, 7], [1, 1], [2, 2], [0, 0], [1, 1]),
            (4, 6, 1, [11, 10], [1, 1], [3, 2], [1, 0], [1, 1]),
            (4, 4, 2, [12, 12], [2, 1], [3, 2], [0, 0], [1, 1]),
            (3, 5, 1, [13, 13], [2, 2], [5, 5], [1, 1], [2, 2]),
            (3, 5, 1, [10, 10], [3, 3], [2, 2], [1, 1], [1, 1]),
        ];
        for (c, o, groups, size, kernel, stride, padding, dilation) in cases {
            let x =
                Tensor::<Flex, 4>::random([2, c, size[0], size[1]], Distribution::Default, &device);
            let w = Tensor::<Flex, 4>::random(
                [o, c / groups, kernel[0], kernel[1]],
                Distribution::Default,
                &device,
            );
            let options = ConvOptions::new(stride, padding, dilation, groups);
            let y = burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone());
            let dy = Tensor::<Flex, 4>::random(y.dims(), Distribution::Default, &device);
            let prim = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
            let ours = super::conv2d_input_grad::<Flex>(
                prim(x.clone()),
                prim(w.clone()),
                prim(dy.clone()),
                options.clone(),
            );
            let burns = <Flex as burn::tensor::ops::ModuleOps<Flex>>::conv2d_x_backward(
                prim(x),
                prim(w),
                prim(dy),
                options,
            );
            let (ours, burns) = (
                super::float::<Flex, 4>(ours),
                super::float::<Flex, 4>(burns),
            );
            assert_eq!(
                ours.dims(),
                burns.dims(),
                "kernel {kernel:?} stride {stride:?}"
            );
            let worst = (ours - burns).abs().max().into_scalar();
            assert!(
                worst < 1e-5,
                "kernel {kernel:?} stride {stride:?}: differs by {worst}"
            );
        }
    }
}
