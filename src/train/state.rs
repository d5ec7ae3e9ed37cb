//! The complete state of a training run at one iteration — weights, batch-norm statistics,
//! masks, optimizer state — on the host (for checkpoints, pruning and rewinding) and on a
//! device (while training). Random streams are pure functions of (seeds, iteration), so the
//! iteration is all the RNG position there is.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

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

/// A [`State`] on a device.
pub struct DeviceState<B: Backend> {
    pub iteration: u64,
    pub params: Vec<Tensor<B, 1>>,
    pub buffers: Vec<Tensor<B, 1>>,
    pub masks: Vec<Option<Tensor<B, 1>>>,
    pub steps: u64,
    pub slots: Vec<Vec<Tensor<B, 1>>>,
}

fn upload<B: Backend>(v: &[f32], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

pub fn download<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")
}

impl<B: Backend> DeviceState<B> {
    pub fn upload(s: &State, device: &B::Device) -> DeviceState<B> {
        DeviceState {
            iteration: s.iteration,
            params: s.params.iter().map(|v| upload(v, device)).collect(),
            buffers: s.buffers.iter().map(|v| upload(v, device)).collect(),
            masks: s
                .masks
                .iter()
                .map(|m| m.as_ref().map(|v| upload(v, device)))
                .collect(),
            steps: s.steps,
            slots: s
                .slots
                .iter()
                .map(|ss| ss.iter().map(|v| upload(v, device)).collect())
                .collect(),
        }
    }

    pub fn download(&self) -> State {
        State {
            iteration: self.iteration,
            params: self.params.iter().map(download).collect(),
            buffers: self.buffers.iter().map(download).collect(),
            masks: self
                .masks
                .iter()
                .map(|m| m.as_ref().map(download))
                .collect(),
            steps: self.steps,
            slots: self
                .slots
                .iter()
                .map(|ss| ss.iter().map(download).collect())
                .collect(),
        }
    }
}
