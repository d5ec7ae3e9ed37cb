//! The forward pass: interprets a [`NetSpec`]'s layers over flat parameter tensors. Generic over
//! the backend, so the same code trains (under autodiff) and evaluates.

use burn::tensor::backend::Backend;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{activation, Tensor, TensorData};

use super::kernels::{self, Kernels};
use crate::check::netspec::{Layer, NetSpec, Op};
use crate::rng::{stream, Rng};

/// What a forward pass produces.
pub struct Output<B: Backend> {
    pub logits: Tensor<B, 2>,
    /// Auxiliary classifiers' logits and loss weights (training only).
    pub aux: Vec<(f64, Tensor<B, 2>)>,
    /// Batch-norm running statistics after this pass (updated in training, unchanged otherwise).
    pub buffers: Vec<Tensor<B, 1>>,
}

/// An activation: flat `[n, features]` or an image batch `[n, c, h, w]`.
enum Act<B: Backend> {
    Flat(Tensor<B, 2>),
    Image(Tensor<B, 4>),
}

impl<B: Backend> Act<B> {
    fn image(self) -> Tensor<B, 4> {
        match self {
            Act::Image(t) => t,
            Act::Flat(t) => {
                let [n, f] = t.dims();
                t.reshape([n, f, 1, 1])
            }
        }
    }
    fn flat(self) -> Tensor<B, 2> {
        match self {
            Act::Flat(t) => t,
            Act::Image(t) => {
                let [n, c, h, w] = t.dims();
                t.reshape([n, c * h * w])
            }
        }
    }
}

struct Runner<'a, B: Kernels> {
    params: &'a [Tensor<B, 1>],
    buffers: &'a [Tensor<B, 1>],
    next_param: usize,
    next_buffer: usize,
    new_buffers: Vec<Tensor<B, 1>>,
    aux: Vec<(f64, Tensor<B, 2>)>,
    /// Training mode, with the dropout stream's seed.
    train: Option<u64>,
    dropout_layer: u64,
}

/// Runs the network on `x` (`[n, c, h, w]`, or `[n, features]` for flat inputs). In training
/// mode (`train = Some(seed)`) batch norm uses batch statistics and updates its running ones,
/// dropout draws from a stream of `seed`, and auxiliary heads run.
pub fn forward<B: Kernels>(
    spec: &NetSpec,
    params: &[Tensor<B, 1>],
    buffers: &[Tensor<B, 1>],
    x: Tensor<B, 4>,
    train: Option<u64>,
) -> Output<B> {
    let mut r = Runner {
        params,
        buffers,
        next_param: 0,
        next_buffer: 0,
        new_buffers: Vec::with_capacity(buffers.len()),
        aux: Vec::new(),
        train,
        dropout_layer: 0,
    };
    let input = if spec.input.len() == 1 {
        Act::Flat(x.flatten(1, 3))
    } else {
        Act::Image(x)
    };
    let out = r.seq(&spec.layers, input);
    Output {
        logits: out.flat(),
        aux: r.aux,
        buffers: r.new_buffers,
    }
}

impl<B: Kernels> Runner<'_, B> {
    fn param(&mut self) -> Tensor<B, 1> {
        let p = self.params[self.next_param].clone();
        self.next_param += 1;
        p
    }

    fn seq(&mut self, layers: &[Layer], mut x: Act<B>) -> Act<B> {
        let mut i = 0;
        while i < layers.len() {
            // Batch norm followed by a ReLU, in training: one kernel for both.
            let fuse = self.train.is_some() && !kernels::use_reference();
            if let (
                true,
                Op::BatchNorm {
                    channels,
                    eps,
                    momentum,
                },
                Some(Op::Relu),
            ) = (fuse, &layers[i].op, layers.get(i + 1).map(|l| &l.op))
            {
                x = self.batchnorm(x, *channels as usize, *eps, *momentum, true);
                i += 2;
                continue;
            }
            x = self.layer(&layers[i], x);
            i += 1;
        }
        x
    }

    fn layer(&mut self, l: &Layer, x: Act<B>) -> Act<B> {
        match &l.op {
            Op::Dense {
                inputs,
                outputs,
                bias,
            } => {
                // `[inputs, outputs]` on the device (`ParamInfo::transposed_on_device`).
                let w = self.param().reshape([*inputs as usize, *outputs as usize]);
                let b = bias.then(|| self.param());
                if !kernels::use_reference() {
                    return Act::Flat(kernels::linear(x.flat(), w, b));
                }
                let y = x.flat().matmul(w);
                Act::Flat(match b {
                    Some(b) => y + b.unsqueeze_dim(0),
                    None => y,
                })
            }
            Op::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                bias,
                ..
            } => {
                let (g, oc) = (*groups as usize, *out_channels as usize);
                let w = self.param().reshape([
                    oc,
                    *in_channels as usize / g,
                    kernel[0] as usize,
                    kernel[1] as usize,
                ]);
                let b = bias.then(|| self.param());
                let opts = ConvOptions::new(
                    [stride[0] as usize, stride[1] as usize],
                    [padding[0] as usize, padding[1] as usize],
                    [1, 1],
                    g,
                );
                Act::Image(if kernels::use_reference() {
                    conv2d(x.image(), w, b, opts)
                } else {
                    kernels::conv2d(x.image(), w, b, opts)
                })
            }
            Op::BatchNorm {
                channels,
                eps,
                momentum,
            } => self.batchnorm(x, *channels as usize, *eps, *momentum, false),
            Op::Relu => match x {
                Act::Flat(t) => Act::Flat(activation::relu(t)),
                Act::Image(t) => Act::Image(activation::relu(t)),
            },
            Op::Dropout { p } => {
                let Some(seed) = self.train else { return x };
                self.dropout_layer += 1;
                let mut rng = Rng::derive(&[seed, stream::DROPOUT, self.dropout_layer]);
                match x {
                    Act::Flat(t) => {
                        let dims = t.dims();
                        let mask = dropout_mask::<B, 2>(&mut rng, dims, *p, &t.device());
                        Act::Flat(t * mask)
                    }
                    Act::Image(t) => {
                        let dims = t.dims();
                        let mask = dropout_mask::<B, 4>(&mut rng, dims, *p, &t.device());
                        Act::Image(t * mask)
                    }
                }
            }
            Op::Flatten => Act::Flat(x.flat()),
            Op::MaxPool(p) => Act::Image(max_pool2d(
                x.image(),
                us(p.kernel),
                us(p.stride),
                us(p.padding),
                [1, 1],
                p.ceil,
            )),
            Op::AvgPool(p) => Act::Image(avg_pool2d(
                x.image(),
                us(p.kernel),
                us(p.stride),
                us(p.padding),
                true,
                p.ceil,
            )),
            Op::GlobalAvgPool => {
                let t = x.image();
                let [n, c, _, _] = t.dims();
                Act::Flat(t.mean_dim(3).mean_dim(2).reshape([n, c]))
            }
            Op::Residual { main, shortcut } => {
                let input = match &x {
                    Act::Flat(t) => Act::Flat(t.clone()),
                    Act::Image(t) => Act::Image(t.clone()),
                };
                let m = self.seq(main, x);
                let s = if shortcut.is_empty() {
                    input
                } else {
                    self.seq(shortcut, input)
                };
                match (m, s) {
                    (Act::Flat(a), Act::Flat(b)) => Act::Flat(a + b),
                    (a, b) => Act::Image(a.image() + b.image()),
                }
            }
            Op::Concat { branches } => {
                let t = x.image();
                let outs: Vec<Tensor<B, 4>> = branches
                    .iter()
                    .map(|b| self.seq(b, Act::Image(t.clone())).image())
                    .collect();
                Act::Image(Tensor::cat(outs, 1))
            }
            Op::Aux { weight, body } => {
                if self.train.is_some() {
                    let copy = match &x {
                        Act::Flat(t) => Act::Flat(t.clone()),
                        Act::Image(t) => Act::Image(t.clone()),
                    };
                    let logits = self.seq(body, copy).flat();
                    self.aux.push((*weight, logits));
                } else {
                    self.skip(body);
                }
                x
            }
        }
    }

    /// Advances past a subtree's parameters and buffers without running it.
    fn skip(&mut self, layers: &[Layer]) {
        let layout = crate::nn::Layout::of_layers(layers);
        self.next_param += layout.params.len();
        for _ in &layout.buffers {
            self.new_buffers
                .push(self.buffers[self.next_buffer].clone());
            self.next_buffer += 1;
        }
    }

    /// Batch norm, followed by a ReLU if `relu` (fused into the kernel in training).
    fn batchnorm(&mut self, x: Act<B>, c: usize, eps: f64, momentum: f64, relu: bool) -> Act<B> {
        let scale = self.param();
        let shift = self.param();
        let buf = self.buffers[self.next_buffer].clone();
        self.next_buffer += 1;
        let running_mean = buf.clone().narrow(0, 0, c);
        let running_var = buf.narrow(0, c, c);
        let flat = matches!(x, Act::Flat(_));
        let x = x.image();
        let [n, _, h, w] = x.dims();
        let y = if self.train.is_some() {
            let (y, mean, var) = if kernels::use_reference() {
                kernels::generic::batchnorm_forward(x, scale, shift, eps, relu)
            } else {
                kernels::batchnorm(x, scale, shift, eps, relu)
            };
            let count = (n * h * w) as f64;
            let unbiased = var.detach() * (count / (count - 1.0).max(1.0));
            let new_mean = running_mean * (1.0 - momentum) + mean.detach() * momentum;
            let new_var = running_var * (1.0 - momentum) + unbiased * momentum;
            self.new_buffers
                .push(Tensor::cat(vec![new_mean, new_var], 0));
            y
        } else {
            self.new_buffers.push(Tensor::cat(
                vec![running_mean.clone(), running_var.clone()],
                0,
            ));
            // An affine map per channel: broadcasting, no reductions.
            let factor = (running_var + eps).sqrt().recip() * scale;
            let channel = |t: Tensor<B, 1>| t.reshape([1, c, 1, 1]);
            let y = (x - channel(running_mean)) * channel(factor) + channel(shift);
            if relu {
                activation::relu(y)
            } else {
                y
            }
        };
        if flat {
            Act::Flat(y.reshape([n, c]))
        } else {
            Act::Image(y)
        }
    }
}

fn us(a: [u64; 2]) -> [usize; 2] {
    [a[0] as usize, a[1] as usize]
}

fn dropout_mask<B: Backend, const D: usize>(
    rng: &mut Rng,
    dims: [usize; D],
    p: f64,
    device: &B::Device,
) -> Tensor<B, D> {
    let n: usize = dims.iter().product();
    let keep = (1.0 / (1.0 - p)) as f32;
    let values: Vec<f32> = (0..n)
        .map(|_| if rng.next_f64() < p { 0.0 } else { keep })
        .collect();
    Tensor::from_data(TensorData::new(values, dims), device)
}
