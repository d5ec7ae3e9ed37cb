//! The optimizer update on the CPU backend as one in-place pass per parameter: mask, weight
//! decay, the rule and the mask again, element by element, in the same f32 operations in the
//! same order as the tensor chain ([`super::optim::masked_update`]), so the results are
//! bit-identical to it — without a dozen full-size temporaries per parameter and step.

use burn::backend::Flex;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;

use super::optim::{Step, Update};
use crate::check::Optimizer;
use crate::nn::kernels::{contiguous, flex_tensor, float, values};

/// A tensor's storage, owned and exactly as long as the tensor: in place when the tensor is
/// the only user of a contiguous buffer, copied otherwise.
fn owned(t: Tensor<Flex, 1>) -> FlexTensor {
    let t = t.into_primitive().tensor();
    let whole = t.is_unique()
        && t.layout().contiguous_offsets() == Some((0, t.layout().num_elements()))
        && t.bytes().len() == t.layout().num_elements() * 4;
    if whole {
        t
    } else {
        let copy = values(&contiguous(t)).to_vec();
        let n = copy.len();
        flex_tensor(copy, vec![n])
    }
}

/// A tensor's storage to read, contiguous.
fn read(t: &Tensor<Flex, 1>) -> FlexTensor {
    contiguous(t.clone().into_primitive().tensor())
}

impl Update for Flex {
    fn masked_update(
        step: &Step,
        p: Tensor<Flex, 1>,
        g: Tensor<Flex, 1>,
        slots: &mut [Tensor<Flex, 1>],
        mask: Option<&Tensor<Flex, 1>>,
    ) -> Tensor<Flex, 1> {
        let f32_only = std::iter::once(&p)
            .chain([&g])
            .chain(slots.iter())
            .chain(mask)
            .all(|t| t.dtype() == burn::tensor::DType::F32);
        if !f32_only {
            return super::optim::masked_update(step, p, g, slots, mask);
        }
        let mut p = owned(p);
        let g = read(&g);
        let mask = mask.map(read);
        let placeholder = || Tensor::<Flex, 1>::empty([0], &Default::default());
        let mut state: Vec<FlexTensor> = slots
            .iter_mut()
            .map(|s| owned(std::mem::replace(s, placeholder())))
            .collect();
        {
            let (params, grads) = (p.storage_mut::<f32>(), values(&g));
            let mask = mask.as_ref().map(values);
            let mut state: Vec<&mut [f32]> =
                state.iter_mut().map(|s| s.storage_mut::<f32>()).collect();
            apply(step, params, grads, &mut state, mask);
        }
        for (slot, s) in slots.iter_mut().zip(state) {
            *slot = float(s);
        }
        float(p)
    }
}

/// The gradient before the rule: masked, then decayed (`g · m + p · wd`), as in the chain.
/// `mask`/`decay` are loop-invariant, so the loops below vectorize with both branches.
#[derive(Clone, Copy)]
struct Prologue {
    mask: bool,
    decay: bool,
    wd: f32,
}

impl Prologue {
    #[inline(always)]
    fn grad(self, p: f32, g: f32, m: f32) -> f32 {
        let g = if self.mask { g * m } else { g };
        if self.decay {
            g + p * self.wd
        } else {
            g
        }
    }
    #[inline(always)]
    fn keep(self, new: f32, m: f32) -> f32 {
        if self.mask {
            new * m
        } else {
            new
        }
    }
}

/// The rules of [`super::optim::update`] on every element: with AVX2 where the CPU has it (8
/// lanes instead of SSE2's 4; the divisions and square roots of Adam and RMSProp are the cost),
/// otherwise as compiled for the baseline. Same operations either way, and no FMA: the bits
/// do not depend on which one runs.
///
/// Large parameters are updated in pieces of [`PIECE`] elements, on several threads where
/// there are: each element's update is the same whichever piece and thread it falls to.
fn apply(
    step: &Step,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [&mut [f32]],
    mask: Option<&[f32]>,
) {
    use crate::nn::kernels::parallel;
    use rayon::prelude::*;
    if !parallel::worth(params.len(), 2 * PIECE) {
        return apply_piece(step, params, grads, state, mask);
    }
    let mut slots: Vec<_> = state.iter_mut().map(|s| s.chunks_mut(PIECE)).collect();
    let mut masks = mask.map(|m| m.chunks(PIECE));
    let pieces: Vec<_> = params
        .chunks_mut(PIECE)
        .zip(grads.chunks(PIECE))
        .map(|(p, g)| {
            let state: Vec<&mut [f32]> = slots.iter_mut().filter_map(Iterator::next).collect();
            (p, g, state, masks.as_mut().and_then(Iterator::next))
        })
        .collect();
    pieces
        .into_par_iter()
        .for_each(|(p, g, mut state, mask)| apply_piece(step, p, g, &mut state, mask));
}

/// Elements per piece of a split update: 128 KiB of each buffer.
const PIECE: usize = 1 << 15;

fn apply_piece(
    step: &Step,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [&mut [f32]],
    mask: Option<&[f32]>,
) {
    crate::nn::kernels::simd::vectorized(
        #[inline(always)]
        || apply_rules(step, params, grads, state, mask),
    );
}

/// The rules of [`super::optim::update`], element by element over zipped slices (no indexing,
/// so that the compiler vectorizes them as the tensor operations were).
#[inline(always)]
fn apply_rules(
    step: &Step,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [&mut [f32]],
    mask: Option<&[f32]>,
) {
    let pro = Prologue {
        mask: mask.is_some(),
        decay: step.weight_decay != 0.0,
        wd: step.weight_decay as f32,
    };
    // Without a mask the mask lane is never read: any slice of the right length will do.
    let mask = mask.unwrap_or(grads);
    let lr = step.lr as f32;
    let elements = params.iter_mut().zip(grads).zip(mask);
    match (step.optimizer, state) {
        (&Optimizer::Sgd { momentum: 0.0, .. }, _) => {
            for ((p, &g), &m) in elements {
                let g = pro.grad(*p, g, m);
                *p = pro.keep(*p - g * lr, m);
            }
        }
        (
            &Optimizer::Sgd {
                momentum, nesterov, ..
            },
            [buf, ..],
        ) => {
            let mom = momentum as f32;
            for (((p, &g), &m), b) in elements.zip(buf.iter_mut()) {
                let g = pro.grad(*p, g, m);
                *b = *b * mom + g;
                let s = if nesterov { g + *b * mom } else { *b };
                *p = pro.keep(*p - s * lr, m);
            }
        }
        (
            &Optimizer::Adam {
                beta1, beta2, eps, ..
            },
            [m1, m2, ..],
        ) => {
            let c1 = (1.0 - beta1.powi(step.t as i32)) as f32;
            let c2 = (1.0 - beta2.powi(step.t as i32)) as f32;
            let (b1, one_b1) = (beta1 as f32, (1.0 - beta1) as f32);
            let (b2, one_b2) = (beta2 as f32, (1.0 - beta2) as f32);
            let eps = eps as f32;
            for ((((p, &g), &m), mi), vi) in elements.zip(m1.iter_mut()).zip(m2.iter_mut()) {
                let g = pro.grad(*p, g, m);
                *mi = *mi * b1 + g * one_b1;
                *vi = *vi * b2 + g * g * one_b2;
                let denom = (*vi / c2).sqrt() + eps;
                *p = pro.keep(*p - *mi / c1 / denom * lr, m);
            }
        }
        (
            &Optimizer::Rmsprop {
                alpha,
                momentum,
                eps,
                ..
            },
            [sq, rest @ ..],
        ) => {
            let (a, one_a, eps) = (alpha as f32, (1.0 - alpha) as f32, eps as f32);
            match rest {
                [buf, ..] if momentum != 0.0 => {
                    let mom = momentum as f32;
                    for ((((p, &g), &m), v), b) in elements.zip(sq.iter_mut()).zip(buf.iter_mut()) {
                        let g = pro.grad(*p, g, m);
                        *v = *v * a + g * g * one_a;
                        *b = *b * mom + g / (v.sqrt() + eps);
                        *p = pro.keep(*p - *b * lr, m);
                    }
                }
                _ => {
                    for (((p, &g), &m), v) in elements.zip(sq.iter_mut()) {
                        let g = pro.grad(*p, g, m);
                        *v = *v * a + g * g * one_a;
                        *p = pro.keep(*p - g / (v.sqrt() + eps) * lr, m);
                    }
                }
            }
        }
        (optimizer, state) => unreachable!("{optimizer:?} with {} state slots", state.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use burn::tensor::TensorData;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
            .collect()
    }

    fn t(v: &[f32]) -> Tensor<Flex, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
    }

    fn host(x: &Tensor<Flex, 1>) -> Vec<u32> {
        x.to_data()
            .into_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Twenty steps of the fused update and of the tensor chain from the same state: every
    /// parameter and state value has the same bits.
    fn same_bits(optimizer: Optimizer, weight_decay: f64, masked: bool, n: usize) {
        let mut rng = Rng::new(7);
        let p0 = random(n, &mut rng);
        let mask: Vec<f32> = (0..n).map(|i| f32::from(u8::from(i % 3 != 0))).collect();
        let slots = super::super::optim::slots(&optimizer);
        let (mut fp, mut rp) = (t(&p0), t(&p0));
        let mut fs: Vec<_> = (0..slots).map(|_| t(&vec![0.0; n])).collect();
        let mut rs = fs.clone();
        let m = masked.then(|| t(&mask));
        for step in 1..=20 {
            let g = random(n, &mut rng);
            let rule = Step {
                optimizer: &optimizer,
                lr: 0.05 / step as f64,
                weight_decay,
                t: step,
            };
            fp = Flex::masked_update(&rule, fp, t(&g), &mut fs, m.as_ref());
            rp = super::super::optim::masked_update(&rule, rp, t(&g), &mut rs, m.as_ref());
            assert_eq!(
                host(&fp),
                host(&rp),
                "{optimizer:?} step {step}: parameters"
            );
            for (a, b) in fs.iter().zip(&rs) {
                assert_eq!(host(a), host(b), "{optimizer:?} step {step}: state");
            }
        }
        if masked {
            let p = fp.to_data().into_vec::<f32>().unwrap();
            assert!(
                p.iter().zip(&mask).all(|(p, m)| *m != 0.0 || *p == 0.0),
                "pruned weights stay 0"
            );
        }
    }

    #[test]
    fn fused_update_has_the_bits_of_the_tensor_chain() {
        let optimizers = [
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.0,
                nesterov: false,
            },
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
            },
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
            },
            Optimizer::Adam {
                lr: 0.001,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            Optimizer::Rmsprop {
                lr: 0.01,
                alpha: 0.9,
                momentum: 0.0,
                eps: 1e-8,
            },
            Optimizer::Rmsprop {
                lr: 0.01,
                alpha: 0.9,
                momentum: 0.9,
                eps: 1e-8,
            },
        ];
        // Not a multiple of any vector width; and split into pieces on three threads, the
        // last one partial.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for o in optimizers {
            for (wd, masked) in [(0.0, false), (1e-4, false), (0.0, true), (5e-4, true)] {
                same_bits(o.clone(), wd, masked, 1003);
                pool.install(|| same_bits(o.clone(), wd, masked, 3 * PIECE + 1003));
            }
        }
    }

    #[test]
    fn shared_parameters_are_copied_not_changed() {
        let opt = Optimizer::Sgd {
            lr: 0.1,
            momentum: 0.0,
            nesterov: false,
        };
        let rule = Step {
            optimizer: &opt,
            lr: 0.5,
            weight_decay: 0.0,
            t: 1,
        };
        let p = t(&[1.0, 2.0]);
        let kept = p.clone();
        let new = Flex::masked_update(&rule, p, t(&[1.0, 1.0]), &mut [], None);
        assert_eq!(kept.to_data().into_vec::<f32>().unwrap(), vec![1.0, 2.0]);
        assert_eq!(new.to_data().into_vec::<f32>().unwrap(), vec![0.5, 1.5]);
    }
}
