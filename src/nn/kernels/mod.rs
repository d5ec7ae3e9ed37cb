//! The operations lthc implements itself, through burn's extension points: dense layers, 2-D
//! convolution and training-mode batch norm (with a following ReLU fused in), each with its
//! gradients. [`Kernels`] is
//! implemented by the CPU backend (flex) with our own kernels ([`dense`]: strided GEMM, no
//! transposed copies; [`sparse_input`]: dense layers whose input is mostly one value, such as
//! MNIST's blank pixels, visiting only the other entries; [`conv`]: im2col, shifted products
//! or Winograd; [`batchnorm`]: no transposes),
//! by other backends with burn's operations (the defaults; [`generic_conv`] works around a
//! burn-cubecl bug in strided convolutions' input gradient), except that the GPU backends
//! convolve as matrix products of the unfolded input ([`unfold_conv`]), and by the autodiff
//! decorator with an operation whose backward calls the inner backend's gradients
//! ([`autodiff`]).
//!
//! `forward` goes through them unless [`reference`] asks for burn's plain operations, which
//! tests use to check that both paths agree.

mod autodiff;
pub mod batchnorm;
pub mod conv;
pub mod dense;
mod flex;
mod gemm;
mod generic_conv;
pub(crate) mod parallel;
pub mod simd;
pub mod sparse_input;
mod transpose;
// Used by the GPU backends unless burn's autotuned convolutions were asked for.
#[cfg_attr(
    any(feature = "autotune", not(any(feature = "cuda", feature = "wgpu"))),
    allow(dead_code)
)]
mod unfold_conv;

/// A row-major `[rows, cols]` matrix as `[cols, rows]` (8x8 blocks in AVX2 registers).
pub fn transposed(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0.0; src.len()];
    transpose::transpose(gemm::Mat::new(src, rows, cols), &mut dst, rows);
    dst
}

/// Host access to the CPU backend's tensors, for CPU code outside the kernels (the fused
/// optimizer update).
pub(crate) use flex::{contiguous, tensor as flex_tensor, values};

use std::cell::Cell;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor, ModuleOps};
use burn::tensor::{Tensor, TensorPrimitive};

/// A backend's dense layer, convolution and batch norm, with their gradients.
pub trait Kernels: Backend {
    /// Whether the kernels split their work between CPU threads (rayon's): the training loop
    /// then keeps its other threads spinning, ready for the pieces.
    const SPLITS_ON_CPU: bool = false;

    /// `y = x · w + b`: x `[n, inputs]`, w `[inputs, outputs]` (dense weights are stored
    /// transposed on devices: `ParamInfo::transposed_on_device`). The weight gradient is
    /// `[inputs, outputs]` too.
    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        generic::linear_forward::<Self>(x, weight, bias)
    }

    fn linear_input_grad(
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        generic::linear_input_grad::<Self>(weight, output_grad)
    }

    fn linear_weight_grad(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        generic::linear_weight_grad::<Self>(x, output_grad)
    }

    fn linear_bias_grad(output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        generic::linear_bias_grad::<Self>(output_grad)
    }

    fn conv2d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d(x, weight, bias, options)
    }

    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        generic_conv::conv2d_input_grad::<Self>(x, weight, output_grad, options)
    }

    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d_weight_backward(x, weight, output_grad, options)
    }

    fn conv2d_bias_grad(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv2d_bias_backward(x, bias, output_grad)
    }

    /// Training-mode batch norm of `x` (`[n, c, h, w]`), followed by a ReLU if `relu`:
    /// `(y, batch mean, biased variance)`.
    fn batchnorm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        relu: bool,
    ) -> [FloatTensor<Self>; 3] {
        let (y, mean, var) =
            generic::batchnorm_forward::<Self>(float(x), float(gamma), float(beta), eps, relu);
        [
            y.into_primitive().tensor(),
            mean.into_primitive().tensor(),
            var.into_primitive().tensor(),
        ]
    }

    /// `(dx, dgamma, dbeta)` of [`Kernels::batchnorm_forward`]; `relu_output` is its output
    /// when it included the ReLU (the CPU kernel recomputes its sign from `x` and `beta`).
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        relu_output: Option<FloatTensor<Self>>,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        let (dx, dgamma, dbeta) = generic::batchnorm_backward::<Self>(
            float(x),
            float(gamma),
            float(mean),
            float(var),
            eps,
            relu_output.map(float),
            float(output_grad),
        );
        [
            dx.into_primitive().tensor(),
            dgamma.into_primitive().tensor(),
            dbeta.into_primitive().tensor(),
        ]
    }
}

/// GPU backends convolve through [`unfold_conv`]'s products, unless burn's autotuned kernels
/// were asked for (the `autotune` feature).
#[cfg(all(any(feature = "cuda", feature = "wgpu"), not(feature = "autotune")))]
macro_rules! unfolded_convolutions {
    () => {
        fn conv2d_forward(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: Option<FloatTensor<Self>>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            unfold_conv::conv2d_forward::<Self>(x, weight, bias, options)
        }

        fn conv2d_input_grad(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            output_grad: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            unfold_conv::conv2d_input_grad::<Self>(x, weight, output_grad, options)
        }

        fn conv2d_weight_grad(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            output_grad: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            unfold_conv::conv2d_weight_grad::<Self>(x, weight, output_grad, options)
        }
    };
}

#[cfg(feature = "cuda")]
impl Kernels for burn::backend::Cuda {
    #[cfg(not(feature = "autotune"))]
    unfolded_convolutions!();
}

#[cfg(feature = "wgpu")]
impl Kernels for burn::backend::Wgpu {
    #[cfg(not(feature = "autotune"))]
    unfolded_convolutions!();
}

/// A backend's float primitive as a tensor.
pub(crate) fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// Dense layers and batch norm in burn's tensor operations: the defaults for backends without
/// kernels of their own, the CPU kernels' fallback for what they do not cover, and what the
/// kernels are tested against.
pub mod generic {
    use burn::tensor::backend::Backend;
    use burn::tensor::ops::FloatTensor;
    use burn::tensor::Tensor;

    use super::float;

    pub fn linear_forward<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
    ) -> FloatTensor<B> {
        let y = float::<B, 2>(x).matmul(float::<B, 2>(weight));
        let y = match bias {
            Some(b) => y + float::<B, 1>(b).unsqueeze_dim(0),
            None => y,
        };
        y.into_primitive().tensor()
    }

    pub fn linear_input_grad<B: Backend>(
        weight: FloatTensor<B>,
        output_grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let dy = float::<B, 2>(output_grad);
        dy.matmul(float::<B, 2>(weight).transpose())
            .into_primitive()
            .tensor()
    }

    pub fn linear_weight_grad<B: Backend>(
        x: FloatTensor<B>,
        output_grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let dy = float::<B, 2>(output_grad);
        float::<B, 2>(x)
            .transpose()
            .matmul(dy)
            .into_primitive()
            .tensor()
    }

    pub fn linear_bias_grad<B: Backend>(output_grad: FloatTensor<B>) -> FloatTensor<B> {
        let dy = float::<B, 2>(output_grad);
        let outputs = dy.dims()[1];
        dy.sum_dim(0).reshape([outputs]).into_primitive().tensor()
    }

    /// Per-channel sums of `[n, c, h, w]`, as `[1, c, 1, 1]`. Reductions over the 4-d tensor,
    /// not rows of a `[c, n·h·w]` view: burn-cubecl 0.21 reshapes a transposed view with a
    /// size-1 axis (`[c, n, 1]` swapped to `[n, c, 1]`, a batch norm of 1x1 maps such as
    /// Inception's auxiliary head or of a dense layer's outputs) as if it were not
    /// transposed, which put every such batch norm's output on the GPU in the wrong order.
    fn channel_sums<B: Backend>(t: Tensor<B, 4>) -> Tensor<B, 4> {
        t.sum_dim(0).sum_dim(2).sum_dim(3)
    }

    fn channel<B: Backend>(t: Tensor<B, 1>) -> Tensor<B, 4> {
        let [c] = t.dims();
        t.reshape([1, c, 1, 1])
    }

    pub fn batchnorm_forward<B: Backend>(
        x: Tensor<B, 4>,
        gamma: Tensor<B, 1>,
        beta: Tensor<B, 1>,
        eps: f64,
        relu: bool,
    ) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
        let [n, c, h, w] = x.dims();
        let count = (n * h * w) as f64;
        let mean = channel_sums(x.clone()) / count;
        let centered = x - mean.clone();
        let var = channel_sums(centered.clone() * centered.clone()) / count;
        let factor = (var.clone() + eps).sqrt().recip() * channel(gamma);
        let y = centered * factor + channel(beta);
        let y = if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
        (y, mean.reshape([c]), var.reshape([c]))
    }

    pub fn batchnorm_backward<B: Backend>(
        x: Tensor<B, 4>,
        gamma: Tensor<B, 1>,
        mean: Tensor<B, 1>,
        var: Tensor<B, 1>,
        eps: f64,
        relu_output: Option<Tensor<B, 4>>,
        dy: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
        let dy = match relu_output {
            Some(y) => dy * y.greater_elem(0.0).float(),
            None => dy,
        };
        let [n, c, h, w] = x.dims();
        let count = (n * h * w) as f64;
        let inv_std = channel((var + eps).sqrt().recip());
        let x_hat = (x - channel(mean)) * inv_std.clone();
        let sum_dy = channel_sums(dy.clone());
        let sum_dy_xhat = channel_sums(dy.clone() * x_hat.clone());
        let dx = (dy - sum_dy.clone() / count - x_hat * (sum_dy_xhat.clone() / count))
            * (inv_std * channel(gamma));
        (dx, sum_dy_xhat.reshape([c]), sum_dy.reshape([c]))
    }
}

thread_local! {
    static REFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with burn's plain convolution and tensor-operation batch norm in `forward`, on this
/// thread: the reference path the kernels are tested against.
pub fn reference<R>(f: impl FnOnce() -> R) -> R {
    let before = REFERENCE.with(|r| r.replace(true));
    let out = f();
    REFERENCE.with(|r| r.set(before));
    out
}

pub(crate) fn use_reference() -> bool {
    REFERENCE.with(Cell::get)
}

/// A dense layer, `x · w + b` (w `[inputs, outputs]`), through the backend's [`Kernels`].
pub fn linear<B: Kernels>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let y = B::linear_forward(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.map(|b| b.into_primitive().tensor()),
    );
    float(y)
}

/// `conv2d` through the backend's [`Kernels`].
pub fn conv2d<B: Kernels>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let y = B::conv2d_forward(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.map(|b| b.into_primitive().tensor()),
        options,
    );
    float(y)
}

/// Training-mode batch norm through the backend's [`Kernels`], followed by a ReLU if `relu`:
/// `(y, batch mean, biased variance)`, the statistics detached.
pub fn batchnorm<B: Kernels>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    relu: bool,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [y, mean, var] = B::batchnorm_forward(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
        eps,
        relu,
    );
    (float(y), float(mean), float(var))
}
