//! [`Kernels`] for the CPU backend (flex): f32 tensors go to our kernels, anything else (other
//! dtypes, shapes the kernels do not cover) to flex's own operations.

use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, ModuleOps};
use burn::tensor::{DType, TensorData, TensorMetadata};
use burn_flex::FlexTensor;

use super::{batchnorm, conv, dense, generic, sparse_input, Kernels};

/// The kernels' view of a convolution, when they handle it.
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<conv::Geometry> {
    let (xs, ws) = (x.shape(), weight.shape());
    if x.dtype() != DType::F32
        || weight.dtype() != DType::F32
        || xs.num_dims() != 4
        || ws.num_dims() != 4
    {
        return None;
    }
    let g = conv::Geometry {
        batch: xs[0],
        in_channels: xs[1],
        height: xs[2],
        width: xs[3],
        out_channels: ws[0],
        kernel: [ws[2], ws[3]],
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
        groups: options.groups,
    };
    let fits = g.groups > 0
        && g.out_channels % g.groups == 0
        && ws[1] * g.groups == g.in_channels
        && g.stride.iter().chain(&g.dilation).all(|&v| v > 0)
        && g.kernel.iter().all(|&k| k > 0)
        && g.height + 2 * g.padding[0] > g.dilation[0] * (g.kernel[0] - 1)
        && g.width + 2 * g.padding[1] > g.dilation[1] * (g.kernel[1] - 1);
    fits.then_some(g)
}

/// The tensor, contiguous (copied only when it is a strided view).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

pub(crate) fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn is_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

/// `[n, c, h·w]` of a 4-D tensor.
fn norm_shape(x: &FlexTensor) -> Option<batchnorm::Shape> {
    let s = x.shape();
    (s.num_dims() == 4).then(|| batchnorm::Shape {
        batch: s[0],
        channels: s[1],
        pixels: s[2] * s[3],
    })
}

/// `[n, inputs] · [inputs, outputs]` when both are f32 matrices that fit.
fn dense_shape(x: &FlexTensor, weight: &FlexTensor) -> Option<dense::Shape> {
    let (xs, ws) = (x.shape(), weight.shape());
    let fits = is_f32(&[x, weight]) && xs.num_dims() == 2 && ws.num_dims() == 2 && xs[1] == ws[0];
    fits.then(|| dense::Shape {
        batch: xs[0],
        inputs: xs[1],
        outputs: ws[1],
    })
}

impl Kernels for Flex {
    const SPLITS_ON_CPU: bool = true;

    fn linear_forward(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
        let shape = dense_shape(&x, &weight).filter(|_| bias.iter().all(|b| is_f32(&[b])));
        let Some(s) = shape else {
            return generic::linear_forward::<Flex>(x, weight, bias);
        };
        let (x, weight, bias) = (contiguous(x), contiguous(weight), bias.map(contiguous));
        let (x, weight, bias) = (values(&x), values(&weight), bias.as_ref().map(values));
        let y = sparse_input::forward(&s, x, weight, bias)
            .unwrap_or_else(|| dense::forward(&s, x, weight, bias));
        tensor(y, vec![s.batch, s.outputs])
    }

    fn linear_input_grad(weight: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if !is_f32(&[&weight, &output_grad]) {
            return generic::linear_input_grad::<Flex>(weight, output_grad);
        }
        let (w, dy) = (contiguous(weight), contiguous(output_grad));
        let s = dense::Shape {
            batch: dy.shape()[0],
            inputs: w.shape()[0],
            outputs: w.shape()[1],
        };
        tensor(
            dense::backward_input(&s, values(&w), values(&dy)),
            vec![s.batch, s.inputs],
        )
    }

    fn linear_weight_grad(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        if !is_f32(&[&x, &output_grad]) {
            return generic::linear_weight_grad::<Flex>(x, output_grad);
        }
        let (x, dy) = (contiguous(x), contiguous(output_grad));
        let s = dense::Shape {
            batch: x.shape()[0],
            inputs: x.shape()[1],
            outputs: dy.shape()[1],
        };
        let (x, dy) = (values(&x), values(&dy));
        let dw = sparse_input::backward_weight(&s, x, dy)
            .unwrap_or_else(|| dense::backward_weight(&s, x, dy));
        tensor(dw, vec![s.inputs, s.outputs])
    }

    fn linear_bias_grad(output_grad: FlexTensor) -> FlexTensor {
        if !is_f32(&[&output_grad]) {
            return generic::linear_bias_grad::<Flex>(output_grad);
        }
        let dy = contiguous(output_grad);
        let s = dense::Shape {
            batch: dy.shape()[0],
            inputs: 0,
            outputs: dy.shape()[1],
        };
        tensor(dense::backward_bias(&s, values(&dy)), vec![s.outputs])
    }

    fn conv2d_forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, &options).filter(|_| bias.iter().all(|b| is_f32(&[b])))
        else {
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, bias, options);
        };
        let (x, weight, bias) = (contiguous(x), contiguous(weight), bias.map(contiguous));
        let y = conv::forward(&g, values(&x), values(&weight), bias.as_ref().map(values));
        tensor(
            y,
            vec![g.batch, g.out_channels, g.out_height(), g.out_width()],
        )
    }

    fn conv2d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, &options).filter(|_| is_f32(&[&output_grad])) else {
            return <Flex as ModuleOps<Flex>>::conv2d_x_backward(x, weight, output_grad, options);
        };
        let (weight, dy) = (contiguous(weight), contiguous(output_grad));
        tensor(
            conv::backward_input(&g, values(&weight), values(&dy)),
            x.shape().to_vec(),
        )
    }

    fn conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, &options).filter(|_| is_f32(&[&output_grad])) else {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x,
                weight,
                output_grad,
                options,
            );
        };
        let (x, dy) = (contiguous(x), contiguous(output_grad));
        tensor(
            conv::backward_weight(&g, values(&x), values(&dy)),
            weight.shape().to_vec(),
        )
    }

    fn conv2d_bias_grad(x: FlexTensor, bias: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        match norm_shape(&output_grad).filter(|_| is_f32(&[&output_grad])) {
            Some(s) => {
                let dy = contiguous(output_grad);
                tensor(
                    conv::backward_bias(s.batch, s.channels, values(&dy)),
                    bias.shape().to_vec(),
                )
            }
            None => <Flex as ModuleOps<Flex>>::conv2d_bias_backward(x, bias, output_grad),
        }
    }

    fn batchnorm_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
        relu: bool,
    ) -> [FlexTensor; 3] {
        let Some(s) = norm_shape(&x).filter(|_| is_f32(&[&x, &gamma, &beta])) else {
            let (y, mean, var) = generic::batchnorm_forward::<Flex>(
                super::float(x),
                super::float(gamma),
                super::float(beta),
                eps,
                relu,
            );
            return [
                y.into_primitive().tensor(),
                mean.into_primitive().tensor(),
                var.into_primitive().tensor(),
            ];
        };
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (y, mean, var) =
            batchnorm::forward(&s, values(&x), values(&gamma), values(&beta), eps, relu);
        [
            tensor(y, x.shape().to_vec()),
            tensor(mean, vec![s.channels]),
            tensor(var, vec![s.channels]),
        ]
    }

    fn batchnorm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        eps: f64,
        relu_output: Option<FlexTensor>,
        output_grad: FlexTensor,
    ) -> [FlexTensor; 3] {
        let all_f32 = is_f32(&[&x, &gamma, &beta, &mean, &var, &output_grad])
            && relu_output.iter().all(|y| is_f32(&[y]));
        let Some(s) = norm_shape(&x).filter(|_| all_f32) else {
            let (dx, dgamma, dbeta) = generic::batchnorm_backward::<Flex>(
                super::float(x),
                super::float(gamma),
                super::float(mean),
                super::float(var),
                eps,
                relu_output.map(super::float),
                super::float(output_grad),
            );
            return [
                dx.into_primitive().tensor(),
                dgamma.into_primitive().tensor(),
                dbeta.into_primitive().tensor(),
            ];
        };
        let relu = relu_output.is_some();
        let [x, gamma, beta, mean, var, dy] =
            [x, gamma, beta, mean, var, output_grad].map(contiguous);
        let saved = batchnorm::Saved {
            mean: values(&mean),
            var: values(&var),
            eps,
            relu_beta: relu.then(|| values(&beta)),
        };
        let (dx, dgamma, dbeta) =
            batchnorm::backward(&s, values(&x), values(&gamma), &saved, values(&dy));
        [
            tensor(dx, x.shape().to_vec()),
            tensor(dgamma, vec![s.channels]),
            tensor(dbeta, vec![s.channels]),
        ]
    }
}
