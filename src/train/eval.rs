//! Evaluation: loss and top-1 / top-5 accuracy on the test set (or on training data).

use crate::nn::Kernels;
use burn::tensor::{Tensor, TensorData};

use super::state::{DeviceState, State};
use crate::check::NetSpec;
use crate::data::{DataError, Dataset};
use crate::nn::{forward, Layout};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    Test,
    /// The first n training examples (in file order, unaugmented).
    Train(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    /// Top-5 accuracy (only meaningful with more than 10 classes).
    pub top5: f64,
    pub examples: usize,
}

pub fn evaluate<B: Kernels>(
    net: &NetSpec,
    state: &State,
    data: &Dataset,
    split: Split,
    device: &B::Device,
) -> Result<Evaluation, DataError> {
    let s: DeviceState<B> = DeviceState::upload(state, &Layout::of(net), device);
    let n = match split {
        Split::Test => data.test.len(),
        Split::Train(k) => k.min(data.spec.train_examples() as usize),
    };
    let example: usize = data.spec.shape.iter().product::<u64>() as usize;
    let chunk = (4_000_000 / example.max(1)).clamp(1, 1000);
    let classes = data.spec.classes as usize;
    let (mut loss, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let batch = match split {
            Split::Test => data.test_batch(start, end)?,
            Split::Train(_) => data.train_eval_batch(start, end)?,
        };
        let dims = match data.spec.shape.as_slice() {
            [c, h, w] => [batch.size, *c as usize, *h as usize, *w as usize],
            _ => [batch.size, example, 1, 1],
        };
        let x: Tensor<B, 4> = Tensor::from_data(TensorData::new(batch.images, dims), device);
        let out = forward(net, &s.params, &s.buffers, x, None);
        let logits = out
            .logits
            .to_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 logits");
        for (row, &label) in logits.chunks_exact(classes).zip(&batch.labels) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            loss += lse - row[label as usize] as f64;
            let target = row[label as usize];
            let above = row
                .iter()
                .enumerate()
                .filter(|(j, &v)| v > target || (v == target && *j < label as usize))
                .count();
            top1 += usize::from(above == 0);
            top5 += usize::from(above < 5);
        }
        start = end;
    }
    let count = n.max(1) as f64;
    Ok(Evaluation {
        loss: loss / count,
        accuracy: top1 as f64 / count,
        top5: top5 as f64 / count,
        examples: n,
    })
}
