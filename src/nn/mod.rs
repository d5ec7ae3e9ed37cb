//! Networks on burn: any checked network description ([`NetSpec`]) becomes trainable tensors
//! and a forward pass, with no per-network Rust code. Parameters live as flat tensors in a
//! fixed order (the depth-first order of the layers), so that masks, optimizer state and
//! checkpoints are plain lists that line up.

mod forward;
mod init;
pub mod kernels;

use crate::check::netspec::{Layer, NetSpec, Op};

pub use forward::{forward, Output};
pub use init::initial_values;
pub use kernels::{reference, Kernels};

/// What a parameter is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Weight,
    Bias,
    /// Batch-norm scale (gamma).
    Scale,
    /// Batch-norm shift (beta).
    Shift,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// The layer's path name (`stage2.basic_block1.residual1.conv2`).
    pub layer: String,
    pub role: Role,
    pub shape: Vec<usize>,
    /// Dense and conv weights: what pruning may remove.
    pub prunable: bool,
    pub fan_in: usize,
    pub fan_out: usize,
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn name(&self) -> String {
        let role = match self.role {
            Role::Weight => "weight",
            Role::Bias => "bias",
            Role::Scale => "scale",
            Role::Shift => "shift",
        };
        format!("{}.{role}", self.layer)
    }

    /// Dense weights are `[outputs, inputs]` on the host (checkpoints, pruning, init: the
    /// order everyone else uses) and `[inputs, outputs]` on a device, where the products read
    /// them as they need them: no transposed copy of the weights per step (a CPU step of
    /// LeNet-300-100 made one of its first layer's 235K weights in the forward pass and
    /// another of their gradient). Returns the host shape of such a parameter.
    pub fn transposed_on_device(&self) -> Option<(usize, usize)> {
        match self.shape.as_slice() {
            &[outputs, inputs] if self.role == Role::Weight => Some((outputs, inputs)),
            _ => None,
        }
    }
}

/// Batch-norm running statistics: `[mean, var]` per batch-norm layer.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferInfo {
    pub layer: String,
    pub channels: usize,
}

/// The parameters and buffers of a network, in forward order.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub params: Vec<ParamInfo>,
    pub buffers: Vec<BufferInfo>,
}

impl Layout {
    pub fn of(spec: &NetSpec) -> Layout {
        Layout::of_layers(&spec.layers)
    }

    /// The layout of a sequence of layers (a whole network, or a part of one).
    pub fn of_layers(layers: &[Layer]) -> Layout {
        let mut l = Layout {
            params: Vec::new(),
            buffers: Vec::new(),
        };
        l.visit(layers);
        l
    }

    /// Index of each prunable parameter, in order.
    pub fn prunable(&self) -> Vec<usize> {
        (0..self.params.len())
            .filter(|&i| self.params[i].prunable)
            .collect()
    }

    fn visit(&mut self, layers: &[Layer]) {
        for l in layers {
            match &l.op {
                Op::Dense {
                    inputs,
                    outputs,
                    bias,
                } => {
                    let (i, o) = (*inputs as usize, *outputs as usize);
                    self.param(&l.name, Role::Weight, vec![o, i], true, i, o);
                    if *bias {
                        self.param(&l.name, Role::Bias, vec![o], false, i, o);
                    }
                }
                Op::Conv {
                    in_channels,
                    out_channels,
                    kernel,
                    groups,
                    bias,
                    ..
                } => {
                    let (ic, oc, g) = (
                        *in_channels as usize,
                        *out_channels as usize,
                        *groups as usize,
                    );
                    let (kh, kw) = (kernel[0] as usize, kernel[1] as usize);
                    let fan_in = ic / g * kh * kw;
                    let fan_out = oc / g * kh * kw;
                    self.param(
                        &l.name,
                        Role::Weight,
                        vec![oc, ic / g, kh, kw],
                        true,
                        fan_in,
                        fan_out,
                    );
                    if *bias {
                        self.param(&l.name, Role::Bias, vec![oc], false, fan_in, fan_out);
                    }
                }
                Op::BatchNorm { channels, .. } => {
                    let c = *channels as usize;
                    self.param(&l.name, Role::Scale, vec![c], false, c, c);
                    self.param(&l.name, Role::Shift, vec![c], false, c, c);
                    self.buffers.push(BufferInfo {
                        layer: l.name.clone(),
                        channels: c,
                    });
                }
                Op::Residual { main, shortcut } => {
                    self.visit(main);
                    self.visit(shortcut);
                }
                Op::Concat { branches } => branches.iter().for_each(|b| self.visit(b)),
                Op::Aux { body, .. } => self.visit(body),
                _ => {}
            }
        }
    }

    fn param(
        &mut self,
        layer: &str,
        role: Role,
        shape: Vec<usize>,
        prunable: bool,
        fan_in: usize,
        fan_out: usize,
    ) {
        self.params.push(ParamInfo {
            layer: layer.to_string(),
            role,
            shape,
            prunable,
            fan_in,
            fan_out,
        });
    }
}
