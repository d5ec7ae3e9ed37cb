//! Optimizers, with PyTorch's update rules (SGD without dampening), on flat tensors. They are
//! ours rather than burn's so that their state is plain tensors we checkpoint and mask.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::check::Optimizer;

/// How many state tensors each parameter needs.
pub fn slots(opt: &Optimizer) -> usize {
    match opt {
        Optimizer::Sgd { momentum, .. } | Optimizer::Rmsprop { momentum, .. }
            if *momentum == 0.0 =>
        {
            usize::from(matches!(opt, Optimizer::Rmsprop { .. }))
        }
        Optimizer::Sgd { .. } => 1,
        Optimizer::Adam { .. } | Optimizer::Rmsprop { .. } => 2,
    }
}

/// One update of parameter `p` with gradient `g`. `t` counts steps from 1 (Adam's bias
/// correction); `slots` is this parameter's state, updated in place.
pub fn update<B: Backend>(
    opt: &Optimizer,
    lr: f64,
    weight_decay: f64,
    p: Tensor<B, 1>,
    g: Tensor<B, 1>,
    slots: &mut [Tensor<B, 1>],
    t: u64,
) -> Tensor<B, 1> {
    let g = if weight_decay != 0.0 {
        g + p.clone() * weight_decay
    } else {
        g
    };
    match *opt {
        Optimizer::Sgd {
            momentum, nesterov, ..
        } => {
            if momentum == 0.0 {
                return p - g * lr;
            }
            // buf = momentum * buf + g (PyTorch with dampening 0; buf starts at 0).
            let buf = slots[0].clone() * momentum + g.clone();
            slots[0] = buf.clone();
            let step = if nesterov { g + buf * momentum } else { buf };
            p - step * lr
        }
        Optimizer::Adam {
            beta1, beta2, eps, ..
        } => {
            let m = slots[0].clone() * beta1 + g.clone() * (1.0 - beta1);
            let v = slots[1].clone() * beta2 + g.clone() * g * (1.0 - beta2);
            slots[0] = m.clone();
            slots[1] = v.clone();
            let c1 = 1.0 - beta1.powi(t as i32);
            let c2 = 1.0 - beta2.powi(t as i32);
            let denom = (v / c2).sqrt() + eps;
            p - (m / c1) / denom * lr
        }
        Optimizer::Rmsprop {
            alpha,
            momentum,
            eps,
            ..
        } => {
            let v = slots[0].clone() * alpha + g.clone() * g.clone() * (1.0 - alpha);
            slots[0] = v.clone();
            let step = g / (v.sqrt() + eps);
            if momentum == 0.0 {
                return p - step * lr;
            }
            let buf = slots[1].clone() * momentum + step;
            slots[1] = buf.clone();
            p - buf * lr
        }
    }
}
