//! The complete state of a training run at one iteration — weights, batch-norm statistics,
//! masks, optimizer state — on the host (for checkpoints, pruning and rewinding) and on a
//! device (while training). Random streams are pure functions of (seeds, iteration), so the
//! iteration is all the RNG position there is.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::nn::Layout;
use crate::store::{self, ReadError};

#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Steps taken so far: the state is W_iteration.
    pub iteration: u64,
    pub params: Vec<Vec<f32>>,
    pub buffers: Vec<Vec<f32>>,
    /// Per parameter: 1.0 kept, 0.0 pruned; `None` for parameters that are not masked.
    pub masks: Vec<Option<Vec<f32>>>,
    /// Optimizer steps taken (Adam's bias correction) and per-parameter state tensors.
    pub steps: u64,
    pub slots: Vec<Vec<Vec<f32>>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    version: u32,
    iteration: u64,
    steps: u64,
    params: Vec<usize>,
    buffers: Vec<usize>,
    masks: Vec<bool>,
    slots: Vec<Vec<usize>>,
}

impl State {
    /// Serialises to a JSON header, a NUL, then every value as little-endian f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            version: 1,
            iteration: self.iteration,
            steps: self.steps,
            params: self.params.iter().map(Vec::len).collect(),
            buffers: self.buffers.iter().map(Vec::len).collect(),
            masks: self.masks.iter().map(Option::is_some).collect(),
            slots: self
                .slots
                .iter()
                .map(|s| s.iter().map(Vec::len).collect())
                .collect(),
        };
        let mut out = serde_json::to_vec(&header).expect("serialisable header");
        out.push(0);
        let all = self
            .params
            .iter()
            .chain(&self.buffers)
            .chain(self.masks.iter().flatten())
            .chain(self.slots.iter().flatten());
        for v in all {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<State, String> {
        let nul = bytes.iter().position(|&b| b == 0).ok_or("no header")?;
        let h: Header =
            serde_json::from_slice(&bytes[..nul]).map_err(|e| format!("bad header: {e}"))?;
        if h.version != 1 {
            return Err(format!("state version {} is not supported", h.version));
        }
        let mut data = bytes[nul + 1..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut take = |n: usize| -> Result<Vec<f32>, String> {
            let v: Vec<f32> = data.by_ref().take(n).collect();
            if v.len() == n {
                Ok(v)
            } else {
                Err("truncated values".into())
            }
        };
        let params = h
            .params
            .iter()
            .map(|&n| take(n))
            .collect::<Result<Vec<_>, _>>()?;
        let buffers = h
            .buffers
            .iter()
            .map(|&n| take(n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut masks = Vec::new();
        for (i, &m) in h.masks.iter().enumerate() {
            masks.push(if m {
                Some(take(params.get(i).map_or(0, Vec::len))?)
            } else {
                None
            });
        }
        let slots = h
            .slots
            .iter()
            .map(|s| s.iter().map(|&n| take(n)).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(State {
            iteration: h.iteration,
            params,
            buffers,
            masks,
            steps: h.steps,
            slots,
        })
    }

    /// Saves atomically with a checksum.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        store::write_checked(path, &self.to_bytes())
    }

    /// Loads and verifies; a damaged file is an error, never a silently wrong state.
    pub fn load(path: &Path) -> Result<State, ReadError> {
        let bytes = store::read_checked(path)?;
        State::from_bytes(&bytes).map_err(ReadError::Corrupt)
    }

    /// Kept / total over the masked (prunable) parameters.
    pub fn density(&self) -> f64 {
        let (mut kept, mut total) = (0.0, 0usize);
        for (p, m) in self.params.iter().zip(&self.masks) {
            if let Some(m) = m {
                kept += m.iter().map(|&x| f64::from(x)).sum::<f64>();
                total += p.len();
            }
        }
        if total == 0 {
            1.0
        } else {
            kept / total as f64
        }
    }
}

/// A [`State`] on a device, dense weights (and their masks and optimizer slots) transposed
/// there ([`ParamInfo::transposed_on_device`](crate::nn::ParamInfo::transposed_on_device)).
pub struct DeviceState<B: Backend> {
    pub iteration: u64,
    pub params: Vec<Tensor<B, 1>>,
    pub buffers: Vec<Tensor<B, 1>>,
    pub masks: Vec<Option<Tensor<B, 1>>>,
    pub steps: u64,
    pub slots: Vec<Vec<Tensor<B, 1>>>,
    /// Per parameter: its host shape where the device holds it transposed.
    transposed: Vec<Option<(usize, usize)>>,
}

fn upload<B: Backend>(v: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

pub fn download<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")
}

impl<B: Backend> DeviceState<B> {
    /// `s` (of a network with parameters `layout`) on `device`.
    pub fn upload(s: &State, layout: &Layout, device: &B::Device) -> DeviceState<B> {
        let transposed: Vec<_> = (0..s.params.len())
            .map(|i| layout.params.get(i).and_then(|p| p.transposed_on_device()))
            .collect();
        let put = |i: usize, v: &[f32]| match transposed[i] {
            Some((rows, cols)) => upload(crate::nn::kernels::transposed(v, rows, cols), device),
            None => upload(v.to_vec(), device),
        };
        DeviceState {
            iteration: s.iteration,
            params: s
                .params
                .iter()
                .enumerate()
                .map(|(i, v)| put(i, v))
                .collect(),
            buffers: s
                .buffers
                .iter()
                .map(|v| upload(v.clone(), device))
                .collect(),
            masks: (s.masks.iter().enumerate())
                .map(|(i, m)| m.as_ref().map(|v| put(i, v)))
                .collect(),
            steps: s.steps,
            slots: (s.slots.iter().enumerate())
                .map(|(i, ss)| ss.iter().map(|v| put(i, v)).collect())
                .collect(),
            transposed,
        }
    }

    /// The values of parameter `i`'s device tensor `t` (the parameter, its mask, a slot or
    /// its gradient) in the host's order.
    pub fn to_host(&self, i: usize, t: &Tensor<B, 1>) -> Vec<f32> {
        let v = download(t);
        match self.transposed.get(i).copied().flatten() {
            Some((rows, cols)) => crate::nn::kernels::transposed(&v, cols, rows),
            None => v,
        }
    }

    pub fn download(&self) -> State {
        State {
            iteration: self.iteration,
            params: (self.params.iter().enumerate())
                .map(|(i, t)| self.to_host(i, t))
                .collect(),
            buffers: self.buffers.iter().map(download).collect(),
            masks: (self.masks.iter().enumerate())
                .map(|(i, m)| m.as_ref().map(|t| self.to_host(i, t)))
                .collect(),
            steps: self.steps,
            slots: (self.slots.iter().enumerate())
                .map(|(i, ss)| ss.iter().map(|t| self.to_host(i, t)).collect())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;
    use crate::nn::{ParamInfo, Role};

    fn param(role: Role, shape: Vec<usize>) -> ParamInfo {
        ParamInfo {
            layer: "dense1".into(),
            role,
            shape,
            prunable: role == Role::Weight,
            fan_in: 3,
            fan_out: 2,
        }
    }

    #[test]
    fn dense_weights_are_transposed_on_the_device_and_back() {
        // A dense layer 3 → 2 (weight [2, 3] on the host), its bias, and a conv weight.
        let layout = Layout {
            params: vec![
                param(Role::Weight, vec![2, 3]),
                param(Role::Bias, vec![2]),
                param(Role::Weight, vec![1, 1, 2, 2]),
            ],
            buffers: vec![],
        };
        let w = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let state = State {
            iteration: 7,
            params: vec![w.clone(), vec![0.5, -0.5], vec![9.0, 8.0, 7.0, 6.0]],
            buffers: vec![vec![1.5]],
            masks: vec![Some(vec![1.0, 0.0, 1.0, 1.0, 1.0, 0.0]), None, None],
            steps: 3,
            slots: vec![vec![w.iter().map(|v| -v).collect()], vec![], vec![]],
        };
        let device = Default::default();
        let on_device: DeviceState<Flex> = DeviceState::upload(&state, &layout, &device);
        // [inputs, outputs]: row i holds input i's weight to each output.
        assert_eq!(
            download(&on_device.params[0]),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        let mask = on_device.masks[0].as_ref().expect("mask");
        assert_eq!(download(mask), [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(
            download(&on_device.slots[0][0]),
            [-1.0, -4.0, -2.0, -5.0, -3.0, -6.0]
        );
        // Everything else as it is.
        assert_eq!(download(&on_device.params[1]), state.params[1]);
        assert_eq!(download(&on_device.params[2]), state.params[2]);
        assert_eq!(on_device.download(), state);
    }
}
