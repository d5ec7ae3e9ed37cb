//! The built-in layers of network definitions: `dense`, `conv`, pooling, `residual`, `concat`,
//! `aux`, `repeat`, and calls of other networks, with their arguments and output shapes.

use super::eval::Env;
use super::netspec::{Layer, Op, Pool};
use super::network::{Ctx, Namer, BUILTIN_LAYERS};
use super::Checker;
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{Arg, DefKind, Layer as AstLayer, LayerKind};
use crate::lang::{FileId, Span};

impl<'p> Checker<'p> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call_layer(
        &mut self,
        ctx: &mut Ctx,
        file: FileId,
        l: &'p AstLayer,
        name: &'p str,
        name_span: Span,
        args: &'p [Arg],
        body: Option<&'p [AstLayer]>,
        label: Option<&str>,
        env: &Env,
        shape: &mut Vec<u64>,
        namer: &mut Namer,
        prefix: &str,
        out: &mut Vec<Layer>,
    ) -> Option<()> {
        let takes_body = matches!(
            name,
            "residual" | "concat" | "aux" | "repeat" | "shortcut" | "branch"
        );
        if body.is_some()
            && !takes_body
            && !BUILTIN_LAYERS.contains(&name)
            && !self.by_name.contains_key(name)
        {
            // fall through to the unknown-name error below
        } else if body.is_some() && !takes_body {
            self.error(
                code::TYPE_MISMATCH,
                file,
                name_span,
                format!("`{name}` takes no `{{ ... }}` block"),
            )
            .label("unexpected block")
            .help("only residual, concat, aux, repeat, shortcut and branch take a block of layers")
            .emit();
            return None;
        } else if body.is_none() && takes_body {
            self.error(
                code::TYPE_MISMATCH,
                file,
                name_span,
                format!("`{name}` needs a `{{ ... }}` block of layers"),
            )
            .label("block missing")
            .help(format!("write `{name} {{ ... }}`"))
            .emit();
            return None;
        }
        let name_of = |namer: &mut Namer, base: &str| match label {
            Some(lbl) => format!("{prefix}{lbl}"),
            None => namer.next(prefix, base),
        };
        let labels: Vec<String> = label.map(|s| vec![s.to_string()]).unwrap_or_default();
        let what = format!("`{name}`");
        let span = l.span;
        macro_rules! bound {
            ($params:expr, $req:expr) => {{
                let b = self.bind_args(file, span, args, &what, $params, $req)?;
                b
            }};
        }
        match name {
            "dense" => {
                let b = bound!(&["out", "bias"], 1);
                let outputs = self.size_arg(b.get("out"), env, 1)?;
                let bias = self.bool_arg(b.get("bias"), env, true)?;
                let inputs = self.flat_input(file, span, shape, name)?;
                *shape = vec![outputs];
                out.push(Layer {
                    name: name_of(namer, "dense"),
                    labels,
                    op: Op::Dense {
                        inputs,
                        outputs,
                        bias,
                    },
                });
            }
            "conv" => {
                let b = bound!(&["out", "kernel", "stride", "padding", "bias", "groups"], 2);
                let out_channels = self.size_arg(b.get("out"), env, 1)?;
                let kernel = self.pair_arg(b.get("kernel"), env, 1, [1, 1])?;
                let stride = self.pair_arg(b.get("stride"), env, 1, [1, 1])?;
                let padding = self.pair_arg(b.get("padding"), env, 0, [0, 0])?;
                let bias = self.bool_arg(b.get("bias"), env, true)?;
                let groups = match b.get("groups") {
                    Some(_) => self.size_arg(b.get("groups"), env, 1)?,
                    None => 1,
                };
                let [c, h, w] = self.image_input(file, span, shape, name)?;
                if c % groups != 0 || out_channels % groups != 0 {
                    self.error(code::SHAPE_MISMATCH, file, span, format!("{groups} groups do not divide {c} input and {out_channels} output channels"))
                        .label("groups do not fit")
                        .help("choose groups that divide both channel counts")
                        .emit();
                    return None;
                }
                let oh =
                    self.window_out(ctx, file, span, h, kernel[0], stride[0], padding[0], false)?;
                let ow =
                    self.window_out(ctx, file, span, w, kernel[1], stride[1], padding[1], false)?;
                *shape = vec![out_channels, oh, ow];
                out.push(Layer {
                    name: name_of(namer, "conv"),
                    labels,
                    op: Op::Conv {
                        in_channels: c,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        groups,
                        bias,
                        out_size: [oh, ow],
                    },
                });
            }
            "batchnorm" => {
                let b = bound!(&["eps", "momentum"], 0);
                let eps = self.float_arg(b.get("eps"), env, 1e-5)?;
                let momentum = self.float_arg(b.get("momentum"), env, 0.1)?;
                out.push(Layer {
                    name: name_of(namer, "bn"),
                    labels,
                    op: Op::BatchNorm {
                        channels: shape[0],
                        eps,
                        momentum,
                    },
                });
            }
            "relu" | "flatten" | "global_avgpool" => {
                bound!(&[], 0);
                let op = match name {
                    "relu" => Op::Relu,
                    "flatten" => {
                        *shape = vec![shape.iter().product()];
                        Op::Flatten
                    }
                    _ => {
                        let [c, _, _] = self.image_input(file, span, shape, name)?;
                        *shape = vec![c];
                        Op::GlobalAvgPool
                    }
                };
                let base = if name == "global_avgpool" {
                    "pool"
                } else {
                    name
                };
                out.push(Layer {
                    name: name_of(namer, base),
                    labels,
                    op,
                });
            }
            "dropout" => {
                let b = bound!(&["p"], 0);
                let p = self.float_arg(b.get("p"), env, 0.5)?;
                if !(0.0..1.0).contains(&p) {
                    let at = b.get("p").map_or((file, span), |a| (a.file, a.span()));
                    self.error(
                        code::RANGE_FRACTION,
                        at.0,
                        at.1,
                        format!("dropout probability must be in [0, 1), found {p}"),
                    )
                    .label("out of range")
                    .help("use e.g. `dropout(0.5)`")
                    .emit();
                    return None;
                }
                out.push(Layer {
                    name: name_of(namer, "dropout"),
                    labels,
                    op: Op::Dropout { p },
                });
            }
            "maxpool" | "avgpool" => {
                let b = bound!(&["kernel", "stride", "padding", "ceil"], 1);
                let kernel = self.pair_arg(b.get("kernel"), env, 1, [1, 1])?;
                let stride = self.pair_arg(b.get("stride"), env, 1, kernel)?;
                let padding = self.pair_arg(b.get("padding"), env, 0, [0, 0])?;
                let ceil = self.bool_arg(b.get("ceil"), env, false)?;
                let [c, h, w] = self.image_input(file, span, shape, name)?;
                let oh =
                    self.window_out(ctx, file, span, h, kernel[0], stride[0], padding[0], ceil)?;
                let ow =
                    self.window_out(ctx, file, span, w, kernel[1], stride[1], padding[1], ceil)?;
                *shape = vec![c, oh, ow];
                let pool = Pool {
                    kernel,
                    stride,
                    padding,
                    ceil,
                };
                out.push(Layer {
                    name: name_of(namer, "pool"),
                    labels,
                    op: if name == "maxpool" {
                        Op::MaxPool(pool)
                    } else {
                        Op::AvgPool(pool)
                    },
                });
            }
            "repeat" => {
                let b = bound!(&["count"], 1);
                let at = b.get("count")?;
                let n = self.eval_int(at, env)?;
                if !(0..=10_000).contains(&n) {
                    self.error(
                        code::RANGE_VALUE,
                        at.file,
                        at.span(),
                        format!("repeat count must be between 0 and 10000, found {n}"),
                    )
                    .label("out of range")
                    .help("check the arithmetic that computes the count")
                    .emit();
                    return None;
                }
                for _ in 0..n {
                    self.seq(ctx, file, body?, env, shape, namer, prefix, out)?;
                }
            }
            "residual" => {
                bound!(&[], 0);
                let body = body?;
                let my = name_of(namer, "residual");
                let inner = format!("{my}.");
                let (sc, main_layers): (Vec<&'p AstLayer>, Vec<&'p AstLayer>) =
                    body.iter().partition(|x| matches!(&x.kind, LayerKind::Call { name, .. } if name.name == "shortcut"));
                let input = shape.clone();
                let mut main = Vec::new();
                let mut sub = Namer::default();
                for x in main_layers {
                    self.layer(ctx, file, x, env, shape, &mut sub, &inner, &mut main)?;
                }
                let mut shortcut = Vec::new();
                if let Some(s) = sc.first() {
                    if sc.len() > 1 {
                        self.error(
                            code::TYPE_ARITY,
                            file,
                            sc[1].span,
                            "a residual block has one shortcut",
                        )
                        .label("second shortcut")
                        .help("remove one `shortcut { ... }`")
                        .emit();
                        return None;
                    }
                    let LayerKind::Call { body: Some(sb), .. } = &s.kind else {
                        self.error(
                            code::TYPE_MISMATCH,
                            file,
                            s.span,
                            "`shortcut` needs a `{ ... }` block of layers",
                        )
                        .label("block missing")
                        .help("write `shortcut { conv(64, 1, stride: 2), batchnorm }`")
                        .emit();
                        return None;
                    };
                    let mut sshape = input.clone();
                    let mut sn = Namer::default();
                    self.seq(
                        ctx,
                        file,
                        sb,
                        env,
                        &mut sshape,
                        &mut sn,
                        &format!("{inner}shortcut."),
                        &mut shortcut,
                    )?;
                    if sshape != *shape {
                        self.error(
                            code::SHAPE_MISMATCH,
                            file,
                            s.span,
                            format!(
                                "the shortcut gives {sshape:?} but the main path gives {shape:?}"
                            ),
                        )
                        .label("shapes differ")
                        .help("both paths of a residual block must produce the same shape")
                        .emit();
                        return None;
                    }
                } else if input != *shape {
                    shortcut = self.projection(file, span, &input, shape, &inner)?;
                }
                out.push(Layer {
                    name: my,
                    labels,
                    op: Op::Residual { main, shortcut },
                });
            }
            "concat" => {
                bound!(&[], 0);
                let my = name_of(namer, "concat");
                let input = shape.clone();
                let mut branches = Vec::new();
                let mut shapes = Vec::new();
                for (i, x) in body?.iter().enumerate() {
                    let LayerKind::Call {
                        name: bn,
                        body: Some(bb),
                        args,
                        ..
                    } = &x.kind
                    else {
                        return self.not_branch(file, x.span);
                    };
                    if bn.name != "branch" || !args.is_empty() {
                        return self.not_branch(file, x.span);
                    }
                    let mut s = input.clone();
                    let mut layers = Vec::new();
                    let mut sn = Namer::default();
                    self.seq(
                        ctx,
                        file,
                        bb,
                        env,
                        &mut s,
                        &mut sn,
                        &format!("{my}.branch{}.", i + 1),
                        &mut layers,
                    )?;
                    shapes.push((s, x.span));
                    branches.push(layers);
                }
                let Some((first, _)) = shapes.first().cloned() else {
                    return self.not_branch(file, span);
                };
                for (s, sp) in &shapes {
                    if s.len() != first.len() || s[1..] != first[1..] {
                        self.error(
                            code::SHAPE_MISMATCH,
                            file,
                            *sp,
                            format!("this branch gives {s:?}, the first gives {first:?}"),
                        )
                        .label("cannot be concatenated")
                        .help("branches must agree on everything but the channel count")
                        .emit();
                        return None;
                    }
                }
                let mut result = first.clone();
                result[0] = shapes.iter().map(|(s, _)| s[0]).sum();
                *shape = result;
                out.push(Layer {
                    name: my,
                    labels,
                    op: Op::Concat { branches },
                });
            }
            "aux" => {
                let b = bound!(&["weight"], 0);
                let weight = self.float_arg(b.get("weight"), env, 0.4)?;
                let my = name_of(namer, "aux");
                let mut s = shape.clone();
                let mut layers = Vec::new();
                let mut sn = Namer::default();
                self.seq(
                    ctx,
                    file,
                    body?,
                    env,
                    &mut s,
                    &mut sn,
                    &format!("{my}."),
                    &mut layers,
                )?;
                if s.len() != 1 {
                    self.error(
                        code::SHAPE_MISMATCH,
                        file,
                        span,
                        format!("an auxiliary head must end in class scores, but gives {s:?}"),
                    )
                    .label("not flat")
                    .help("end the head with `global_avgpool` or `flatten` and a `dense` layer")
                    .emit();
                    return None;
                }
                out.push(Layer {
                    name: my,
                    labels,
                    op: Op::Aux {
                        weight,
                        body: layers,
                    },
                });
            }
            "shortcut" | "branch" => {
                let parent = if name == "shortcut" {
                    "residual"
                } else {
                    "concat"
                };
                self.error(
                    code::TYPE_MISMATCH,
                    file,
                    name_span,
                    format!("`{name}` is only allowed directly inside `{parent} {{ ... }}`"),
                )
                .label("out of place")
                .help(format!("move it into a `{parent}` block"))
                .emit();
                return None;
            }
            _ => {
                let Some(&id) = self.by_name.get(name) else {
                    let mut candidates: Vec<&str> = BUILTIN_LAYERS.to_vec();
                    candidates.extend(self.names_of(file, DefKind::Network));
                    self.error(
                        code::NAME_UNKNOWN,
                        file,
                        name_span,
                        format!("unknown layer or network `{name}`"),
                    )
                    .label("not a layer")
                    .help(unknown_name_help(name, "layer", &candidates))
                    .emit();
                    return None;
                };
                self.lookup(file, name, name_span, DefKind::Network)?;
                let env2 = self.bind_network_args(id, file, span, args, env)?;
                let my = name_of(namer, name);
                let mut sub = Namer::default();
                let before = out.len();
                self.expand_def(ctx, id, env2, shape, &mut sub, &format!("{my}."), out)?;
                if let Some(lbl) = label {
                    for l in &mut out[before..] {
                        l.labels.push(lbl.to_string());
                    }
                }
            }
        }
        Some(())
    }

    fn not_branch<T>(&mut self, file: FileId, span: Span) -> Option<T> {
        self.error(
            code::TYPE_MISMATCH,
            file,
            span,
            "`concat` holds `branch { ... }` blocks only",
        )
        .label("not a branch")
        .help("write `concat { branch { ... } branch { ... } }`")
        .emit();
        None
    }

    /// The automatic shortcut when a residual block changes shape: 1x1 conv with stride + BN.
    fn projection(
        &mut self,
        file: FileId,
        span: Span,
        input: &[u64],
        output: &[u64],
        prefix: &str,
    ) -> Option<Vec<Layer>> {
        let fits = input.len() == 3 && output.len() == 3 && {
            let s = input[1].div_ceil(output[1].max(1)).max(1);
            (input[1] - 1) / s + 1 == output[1] && (input[2] - 1) / s + 1 == output[2]
        };
        if !fits {
            self.error(code::SHAPE_MISMATCH, file, span, format!("the residual branch turns {input:?} into {output:?}, which no 1x1 projection can match"))
                .label("shapes do not fit")
                .help("give an explicit `shortcut { ... }` inside the block")
                .emit();
            return None;
        }
        let s = input[1].div_ceil(output[1]).max(1);
        Some(vec![
            Layer {
                name: format!("{prefix}shortcut.conv1"),
                labels: vec![],
                op: Op::Conv {
                    in_channels: input[0],
                    out_channels: output[0],
                    kernel: [1, 1],
                    stride: [s, s],
                    padding: [0, 0],
                    groups: 1,
                    bias: false,
                    out_size: [output[1], output[2]],
                },
            },
            Layer {
                name: format!("{prefix}shortcut.bn1"),
                labels: vec![],
                op: Op::BatchNorm {
                    channels: output[0],
                    eps: 1e-5,
                    momentum: 0.1,
                },
            },
        ])
    }
}
