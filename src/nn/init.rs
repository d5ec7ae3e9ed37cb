//! Initial weights, drawn on the host from streams derived from (seed, parameter index), so
//! that they are the same on every backend and independent of everything else.

use super::{Layout, Role};
use crate::check::Init;
use crate::rng::{stream, Rng};

/// Initial values of every parameter and buffer: weights by `scheme`, biases and shifts 0,
/// scales 1; running means 0 and variances 1.
pub fn initial_values(
    layout: &Layout,
    scheme: Init,
    seed: u64,
    purpose: u64,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let params = layout
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| match p.role {
            Role::Weight => {
                let mut rng = Rng::derive(&[seed, stream::INIT, purpose, i as u64]);
                let (fi, fo) = (p.fan_in as f64, p.fan_out as f64);
                let n = p.len();
                match scheme {
                    Init::KaimingNormal => normal(&mut rng, n, (2.0 / fi).sqrt()),
                    Init::GlorotNormal => normal(&mut rng, n, (2.0 / (fi + fo)).sqrt()),
                    Init::KaimingUniform => uniform(&mut rng, n, (6.0 / fi).sqrt()),
                    Init::GlorotUniform => uniform(&mut rng, n, (6.0 / (fi + fo)).sqrt()),
                }
            }
            Role::Scale => vec![1.0; p.len()],
            Role::Bias | Role::Shift => vec![0.0; p.len()],
        })
        .collect();
    let buffers = layout
        .buffers
        .iter()
        .map(|b| {
            let mut v = vec![0.0; b.channels];
            v.extend(std::iter::repeat_n(1.0, b.channels));
            v
        })
        .collect();
    (params, buffers)
}

fn normal(rng: &mut Rng, n: usize, std: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * std) as f32).collect()
}

fn uniform(rng: &mut Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
        .collect()
}
