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

/// One optimizer step's numbers: the rule, this step's learning rate, weight decay, and the
/// step count `t` (from 1; Adam's bias correction).
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    pub optimizer: &'a Optimizer,
    pub lr: f64,
    pub weight_decay: f64,
    pub t: u64,
}

/// A backend's masked optimizer update. The default is the chain of tensor operations
/// ([`masked_update`]); the CPU backend fuses it into one in-place pass per parameter
/// (`train::fused`), with bit-identical results.
pub trait Update: Backend {
    fn masked_update(
        step: &Step,
        p: Tensor<Self, 1>,
        g: Tensor<Self, 1>,
        slots: &mut [Tensor<Self, 1>],
        mask: Option<&Tensor<Self, 1>>,
    ) -> Tensor<Self, 1> {
        masked_update(step, p, g, slots, mask)
    }
}

#[cfg(feature = "cuda")]
impl Update for burn::backend::Cuda {}

#[cfg(feature = "wgpu")]
impl Update for burn::backend::Wgpu {}

/// The reference update: the gradient masked, [`update`], the result masked again so that
/// pruned weights stay exactly zero whatever the optimizer's state says.
pub fn masked_update<B: Backend>(
    step: &Step,
    p: Tensor<B, 1>,
    g: Tensor<B, 1>,
    slots: &mut [Tensor<B, 1>],
    mask: Option<&Tensor<B, 1>>,
) -> Tensor<B, 1> {
    let g = match mask {
        Some(m) => g * m.clone(),
        None => g,
    };
    let updated = update(
        step.optimizer,
        step.lr,
        step.weight_decay,
        p,
        g,
        slots,
        step.t,
    );
    match mask {
        Some(m) => updated * m.clone(),
        None => updated,
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn t(v: &[f32]) -> Tensor<Flex, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn host(x: &Tensor<Flex, 1>) -> Vec<f32> {
        x.to_data().into_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() < 1e-6,
                "got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn sgd_momentum_with_weight_decay_two_steps() {
        let opt = Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
        };
        let mut slots = vec![t(&[0.0, 0.0])];
        let p = update(
            &opt,
            0.1,
            0.01,
            t(&[1.0, -2.0]),
            t(&[0.5, 0.25]),
            &mut slots,
            1,
        );
        assert_close(&host(&p), &[0.949, -2.023]);
        let p = update(&opt, 0.1, 0.01, p, t(&[0.5, 0.25]), &mut slots, 2);
        assert_close(&host(&p), &[0.852151, -2.066677]);
    }

    #[test]
    fn sgd_nesterov_and_plain() {
        let opt = Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
        };
        let mut slots = vec![t(&[0.0, 0.0])];
        let p = update(
            &opt,
            0.1,
            0.01,
            t(&[1.0, -2.0]),
            t(&[0.5, 0.25]),
            &mut slots,
            1,
        );
        assert_close(&host(&p), &[0.9031, -2.0437]);
        let plain = Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
        };
        assert_eq!(slots_for(&plain), 0);
        let p = update(&plain, 0.5, 0.0, t(&[1.0]), t(&[0.2]), &mut [], 1);
        assert_close(&host(&p), &[0.9]);
    }

    fn slots_for(o: &Optimizer) -> usize {
        slots(o)
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        let opt = Optimizer::Adam {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut slots = vec![t(&[0.0, 0.0]), t(&[0.0, 0.0])];
        let p = update(
            &opt,
            0.001,
            0.0,
            t(&[1.0, -2.0]),
            t(&[0.5, 0.25]),
            &mut slots,
            1,
        );
        assert_close(&host(&p), &[0.999, -2.001]);
        assert_close(&host(&slots[0]), &[0.05, 0.025]);
        assert_close(&host(&slots[1]), &[0.00025, 0.0000625]);
        // Second step, gradient halved: m = 0.9 m + 0.1 g, v likewise, bias-corrected.
        let p = update(&opt, 0.001, 0.0, p, t(&[0.25, 0.125]), &mut slots, 2);
        let m: f64 = 0.9 * 0.05 + 0.1 * 0.25;
        let v: f64 = 0.999 * 0.00025 + 0.001 * 0.0625;
        let step = 0.001 * (m / (1.0 - 0.81)) / ((v / (1.0 - 0.998001)).sqrt() + 1e-8);
        assert_close(&host(&p)[..1], &[0.999 - step]);
    }

    #[test]
    fn rmsprop_first_step() {
        let opt = Optimizer::Rmsprop {
            lr: 0.01,
            alpha: 0.9,
            momentum: 0.0,
            eps: 1e-8,
        };
        let mut slots = vec![t(&[0.0, 0.0])];
        let p = update(
            &opt,
            0.01,
            0.0,
            t(&[1.0, -2.0]),
            t(&[0.5, 0.25]),
            &mut slots,
            1,
        );
        let s = 0.01 * 10f64.sqrt();
        assert_close(&host(&p), &[1.0 - s, -2.0 - s]);
    }
}
