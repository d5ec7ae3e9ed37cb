//! A network as concrete layers with known sizes: what a `.lth` network definition elaborates to
//! for one set of arguments and one input shape. The engine builds its modules from this; the
//! planner hashes its canonical form; `lthc show` counts from it.

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Layer {
    /// Path name, unique in the network: `stage2.basic_block1.conv1`.
    pub name: String,
    /// Names users may refer to it by in pruning (`output`, labels given with `as`).
    pub labels: Vec<String>,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub kernel: [u64; 2],
    pub stride: [u64; 2],
    pub padding: [u64; 2],
    pub ceil: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Dense {
        inputs: u64,
        outputs: u64,
        bias: bool,
    },
    Conv {
        in_channels: u64,
        out_channels: u64,
        kernel: [u64; 2],
        stride: [u64; 2],
        padding: [u64; 2],
        groups: u64,
        bias: bool,
        /// Output height and width, for FLOP counts.
        out_size: [u64; 2],
    },
    BatchNorm {
        channels: u64,
        eps: f64,
        momentum: f64,
    },
    Relu,
    Dropout {
        p: f64,
    },
    Flatten,
    MaxPool(Pool),
    AvgPool(Pool),
    GlobalAvgPool,
    /// `main(x) + shortcut(x)`; an empty shortcut is the identity.
    Residual {
        main: Vec<Layer>,
        shortcut: Vec<Layer>,
    },
    /// Branches applied to the same input, concatenated along channels.
    Concat {
        branches: Vec<Vec<Layer>>,
    },
    /// An auxiliary classifier: its logits join the training loss with `weight`; the main path
    /// continues from its input unchanged.
    Aux {
        weight: f64,
        body: Vec<Layer>,
    },
}

/// Counts for `lthc show` and the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Trainable parameters (weights, biases, batch-norm scale and shift).
    pub parameters: u64,
    /// Non-trainable state (batch-norm running mean and variance).
    pub buffers: u64,
    /// Weights of dense and conv layers: what pruning may remove.
    pub prunable: u64,
    /// Multiply-accumulates of dense and conv layers for one example's inference forward pass
    /// (auxiliary heads excluded).
    pub flops: u64,
}

/// A prunable weight tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prunable {
    pub name: String,
    pub labels: Vec<String>,
    pub weights: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetSpec {
    /// How it was asked for: `resnet_cifar(depth: 56)`.
    pub display: String,
    /// The definition's name.
    pub definition: String,
    pub input: Vec<u64>,
    pub output: Vec<u64>,
    pub layers: Vec<Layer>,
}

impl NetSpec {
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        add_stats(&self.layers, &mut s, true);
        s
    }

    /// Prunable tensors in forward order.
    pub fn prunable(&self) -> Vec<Prunable> {
        let mut out = Vec::new();
        collect_prunable(&self.layers, &mut out);
        out
    }

    /// The canonical form: structure and sizes only, attributes at their default left out, so
    /// that naming a layer or adding an option later never changes a cache key.
    pub fn canonical(&self) -> Json {
        json!({ "input": self.input, "layers": canon_layers(&self.layers) })
    }

    /// A short key for deduplication (not a cache key: see plan::key).
    pub fn key(&self) -> String {
        self.canonical().to_string()
    }
}

fn add_stats(layers: &[Layer], s: &mut Stats, count_flops: bool) {
    for l in layers {
        match &l.op {
            Op::Dense {
                inputs,
                outputs,
                bias,
            } => {
                s.parameters += inputs * outputs + if *bias { *outputs } else { 0 };
                s.prunable += inputs * outputs;
                if count_flops {
                    s.flops += inputs * outputs;
                }
            }
            Op::Conv {
                in_channels,
                out_channels,
                kernel,
                groups,
                bias,
                out_size,
                ..
            } => {
                let w = out_channels * (in_channels / groups) * kernel[0] * kernel[1];
                s.parameters += w + if *bias { *out_channels } else { 0 };
                s.prunable += w;
                if count_flops {
                    s.flops += w * out_size[0] * out_size[1];
                }
            }
            Op::BatchNorm { channels, .. } => {
                s.parameters += 2 * channels;
                s.buffers += 2 * channels;
            }
            Op::Residual { main, shortcut } => {
                add_stats(main, s, count_flops);
                add_stats(shortcut, s, count_flops);
            }
            Op::Concat { branches } => branches.iter().for_each(|b| add_stats(b, s, count_flops)),
            Op::Aux { body, .. } => add_stats(body, s, false),
            _ => {}
        }
    }
}

fn collect_prunable(layers: &[Layer], out: &mut Vec<Prunable>) {
    for l in layers {
        match &l.op {
            Op::Dense {
                inputs, outputs, ..
            } => out.push(Prunable {
                name: l.name.clone(),
                labels: l.labels.clone(),
                weights: inputs * outputs,
            }),
            Op::Conv {
                in_channels,
                out_channels,
                kernel,
                groups,
                ..
            } => out.push(Prunable {
                name: l.name.clone(),
                labels: l.labels.clone(),
                weights: out_channels * (in_channels / groups) * kernel[0] * kernel[1],
            }),
            Op::Residual { main, shortcut } => {
                collect_prunable(main, out);
                collect_prunable(shortcut, out);
            }
            Op::Concat { branches } => branches.iter().for_each(|b| collect_prunable(b, out)),
            Op::Aux { body, .. } => collect_prunable(body, out),
            _ => {}
        }
    }
}

fn canon_layers(layers: &[Layer]) -> Json {
    Json::Array(layers.iter().map(|l| canon_op(&l.op)).collect())
}

fn canon_pool(kind: &str, p: &Pool) -> Json {
    let mut m = Map::new();
    m.insert("op".into(), kind.into());
    m.insert("kernel".into(), json!(p.kernel));
    if p.stride != p.kernel {
        m.insert("stride".into(), json!(p.stride));
    }
    if p.padding != [0, 0] {
        m.insert("padding".into(), json!(p.padding));
    }
    if p.ceil {
        m.insert("ceil".into(), true.into());
    }
    Json::Object(m)
}

fn canon_op(op: &Op) -> Json {
    match op {
        Op::Dense {
            inputs,
            outputs,
            bias,
        } => {
            let mut m = Map::new();
            m.insert("op".into(), "dense".into());
            m.insert("in".into(), (*inputs).into());
            m.insert("out".into(), (*outputs).into());
            if !bias {
                m.insert("bias".into(), false.into());
            }
            Json::Object(m)
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
            let mut m = Map::new();
            m.insert("op".into(), "conv".into());
            m.insert("in".into(), (*in_channels).into());
            m.insert("out".into(), (*out_channels).into());
            m.insert("kernel".into(), json!(kernel));
            if *stride != [1, 1] {
                m.insert("stride".into(), json!(stride));
            }
            if *padding != [0, 0] {
                m.insert("padding".into(), json!(padding));
            }
            if *groups != 1 {
                m.insert("groups".into(), (*groups).into());
            }
            if !bias {
                m.insert("bias".into(), false.into());
            }
            Json::Object(m)
        }
        Op::BatchNorm {
            channels,
            eps,
            momentum,
        } => {
            let mut m = Map::new();
            m.insert("op".into(), "batchnorm".into());
            m.insert("channels".into(), (*channels).into());
            if *eps != 1e-5 {
                m.insert("eps".into(), (*eps).into());
            }
            if *momentum != 0.1 {
                m.insert("momentum".into(), (*momentum).into());
            }
            Json::Object(m)
        }
        Op::Relu => json!({"op": "relu"}),
        Op::Dropout { p } => json!({"op": "dropout", "p": p}),
        Op::Flatten => json!({"op": "flatten"}),
        Op::MaxPool(p) => canon_pool("maxpool", p),
        Op::AvgPool(p) => canon_pool("avgpool", p),
        Op::GlobalAvgPool => json!({"op": "global_avgpool"}),
        Op::Residual { main, shortcut } => {
            json!({"op": "residual", "main": canon_layers(main), "shortcut": canon_layers(shortcut)})
        }
        Op::Concat { branches } => {
            json!({"op": "concat", "branches": branches.iter().map(|b| canon_layers(b)).collect::<Vec<_>>()})
        }
        Op::Aux { weight, body } => {
            json!({"op": "aux", "weight": weight, "body": canon_layers(body)})
        }
    }
}
