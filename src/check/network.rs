//! Network definitions → concrete layers ([`NetSpec`]): parameters bound, `repeat`/`for`
//! unrolled, `require` checked, shapes inferred layer by layer, names given.

use std::collections::HashMap;

use super::eval::{Env, Value};
use super::netspec::{Layer, NetSpec, Op, Pool};
use super::{At, Checker, DefId};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{Arg, DefBody, DefKind, ExprKind, Layer as AstLayer, LayerKind};
use crate::lang::{FileId, Span};

/// Elaborated networks by (definition, arguments, input shape).
pub type Cache = HashMap<String, Option<NetSpec>>;

const BUILTIN_LAYERS: &[&str] = &[
    "dense",
    "conv",
    "batchnorm",
    "relu",
    "dropout",
    "flatten",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "residual",
    "concat",
    "aux",
    "repeat",
];
/// Sizes above this are mistakes (and would overflow parameter counts).
const MAX_SIZE: i64 = 1 << 31;
/// Unrolled layers above this are mistakes (`repeat(1000000)`).
const MAX_LAYERS: usize = 200_000;

/// Where the elaboration started (the user's call) and the definitions being expanded.
struct Ctx {
    origin: Option<(FileId, Span)>,
    stack: Vec<DefId>,
    layers: usize,
}

/// Per-sequence counters that give layers names like `conv3`.
#[derive(Default)]
struct Namer(HashMap<String, usize>);

impl Namer {
    fn next(&mut self, prefix: &str, base: &str) -> String {
        let n = self.0.entry(base.to_string()).or_insert(0);
        *n += 1;
        format!("{prefix}{base}{n}")
    }
}

impl<'p> Checker<'p> {
    /// Checks a network definition on its own. Returns it elaborated if it can be built alone
    /// (it has an `on` input shape and every parameter has a default).
    pub fn check_network_def(&mut self, id: DefId) -> Option<NetSpec> {
        let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        let buildable = def
            .params
            .iter()
            .all(|p| p.default.is_some() && !p.variadic);
        match (&def.body, &def.input) {
            (DefBody::Alias(e), _) => {
                let input = self.alias_input(id)?;
                self.network_ref(At::new(file, e), &input, Some(def.name.name.clone()))
            }
            (_, Some(shape)) if buildable => {
                let input = self.shape(At::new(file, shape))?;
                self.instantiate(id, file, def.name.span, &[], &input, None)
            }
            _ => {
                // Not buildable alone: still check that every layer name exists.
                if let DefBody::Layers(layers) = &def.body {
                    self.check_layer_names(file, layers, def);
                }
                None
            }
        }
    }

    /// The `on` shape an alias (`network x = lenet(100)`) inherits from its target.
    fn alias_input(&mut self, id: DefId) -> Option<Vec<u64>> {
        let mut cur = id;
        for _ in 0..self.defs.len() {
            let (file, def) = (self.defs[cur.0].file, self.defs[cur.0].def);
            if let Some(s) = &def.input {
                return self.shape(At::new(file, s));
            }
            let DefBody::Alias(e) = &def.body else {
                return None;
            };
            let callee = match &e.kind {
                ExprKind::Call { callee, .. } => callee.name.as_str(),
                ExprKind::Ident(n) => n.as_str(),
                _ => return None,
            };
            cur = *self.by_name.get(callee)?;
        }
        None
    }

    /// `[c, h, w]` or `[features]`.
    pub fn shape(&mut self, at: At<'p>) -> Option<Vec<u64>> {
        match self.eval(at, &Env::new())? {
            Value::List(items) if !items.is_empty() && items.len() != 2 && items.len() <= 3 => {
                let mut out = Vec::new();
                for v in items {
                    match v {
                        Value::Int(i) if (1..MAX_SIZE).contains(&i) => out.push(i as u64),
                        _ => return self.bad_shape(at),
                    }
                }
                Some(out)
            }
            _ => self.bad_shape(at),
        }
    }

    fn bad_shape<T>(&mut self, at: At<'p>) -> Option<T> {
        self.error(
            code::TYPE_MISMATCH,
            at.file,
            at.span(),
            "an input shape is `[channels, height, width]` or `[features]`",
        )
        .label("not a shape")
        .help("write e.g. `on [3, 32, 32]` with positive sizes")
        .emit();
        None
    }

    /// A network as an experiment names it (`lenet`, `resnet_cifar(depth: 56)`), on `input`.
    pub fn network_ref(
        &mut self,
        at: At<'p>,
        input: &[u64],
        display: Option<String>,
    ) -> Option<NetSpec> {
        let at = self.resolve(at)?;
        let (callee, args): (&'p str, &'p [Arg]) = match &at.expr.kind {
            ExprKind::Call { callee, args } => (&callee.name, args),
            ExprKind::Ident(n) => (n, &[]),
            _ => {
                self.error(
                    code::TYPE_MISMATCH,
                    at.file,
                    at.span(),
                    format!("expected a network, found {}", at.expr.describe()),
                )
                .label("not a network")
                .help("name a network, e.g. `lenet` or `resnet_cifar(depth: 56)`")
                .emit();
                return None;
            }
        };
        let id = self.lookup(at.file, callee, at.span(), DefKind::Network)?;
        let env = Env::new();
        let display = display.unwrap_or_else(|| {
            self.prog
                .sources
                .snippet(at.file, at.span())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
        let mut ctx = Ctx {
            origin: Some((at.file, at.span())),
            stack: Vec::new(),
            layers: 0,
        };
        let args_env = self.bind_network_args(id, at.file, at.span(), args, &env)?;
        let key = format!(
            "{}|{:?}|{:?}",
            self.defs[id.0].def.name.name,
            sorted(&args_env),
            input
        );
        if let Some(hit) = self.net_cache.get(&key) {
            return hit.clone().map(|mut n| {
                n.display = display;
                n
            });
        }
        let result = self.expand_top(&mut ctx, id, args_env, input, display);
        self.net_cache.insert(key, result.clone());
        result
    }

    fn instantiate(
        &mut self,
        id: DefId,
        file: FileId,
        span: Span,
        args: &'p [Arg],
        input: &[u64],
        origin: Option<(FileId, Span)>,
    ) -> Option<NetSpec> {
        let mut ctx = Ctx {
            origin,
            stack: Vec::new(),
            layers: 0,
        };
        let env = self.bind_network_args(id, file, span, args, &Env::new())?;
        let display = self.defs[id.0].def.name.name.clone();
        self.expand_top(&mut ctx, id, env, input, display)
    }

    fn expand_top(
        &mut self,
        ctx: &mut Ctx,
        id: DefId,
        env: Env,
        input: &[u64],
        display: String,
    ) -> Option<NetSpec> {
        let mut shape = input.to_vec();
        let mut layers = Vec::new();
        let mut namer = Namer::default();
        self.expand_def(ctx, id, env, &mut shape, &mut namer, "", &mut layers)?;
        let def = self.defs[id.0].def;
        let mut net = NetSpec {
            display,
            definition: def.name.name.clone(),
            input: input.to_vec(),
            output: shape,
            layers,
        };
        if !mark_output(&mut net.layers) {
            let (file, span) = ctx.origin.unwrap_or((self.defs[id.0].file, def.name.span));
            self.error(
                code::NET_NO_PRUNABLE,
                file,
                span,
                format!("network `{}` has no dense or conv layer", def.name.name),
            )
            .label("nothing to train or prune")
            .help("a network needs at least one `dense` or `conv` layer")
            .emit();
            return None;
        }
        Some(net)
    }

    /// Binds a call's arguments to a network definition's parameters (defaults filled in).
    fn bind_network_args(
        &mut self,
        id: DefId,
        file: FileId,
        span: Span,
        args: &'p [Arg],
        env: &Env,
    ) -> Option<Env> {
        let (def_file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        let mut out = Env::new();
        let mut variadic: Vec<Value> = Vec::new();
        let mut positional = 0;
        let mut ok = true;
        for a in args {
            let v = self.eval(At::new(file, &a.value), env);
            let Some(v) = v else {
                ok = false;
                continue;
            };
            match &a.name {
                Some(n) => match def.params.iter().find(|p| p.name.name == n.name) {
                    Some(p) if !out.contains_key(&p.name.name) => {
                        out.insert(p.name.name.clone(), v);
                    }
                    Some(_) => {
                        self.error(
                            code::TYPE_ARITY,
                            file,
                            n.span,
                            format!("argument `{}` is given twice", n.name),
                        )
                        .label("given again")
                        .help("give each argument once")
                        .emit();
                        ok = false;
                    }
                    None => {
                        let names: Vec<&str> =
                            def.params.iter().map(|p| p.name.name.as_str()).collect();
                        self.error(
                            code::NAME_UNKNOWN_ARGUMENT,
                            file,
                            n.span,
                            format!("network `{}` has no parameter `{}`", def.name.name, n.name),
                        )
                        .label("unknown parameter")
                        .related(def_file, def.name.span, "network defined here")
                        .help(unknown_name_help(&n.name, "parameter", &names))
                        .emit();
                        ok = false;
                    }
                },
                None => match def.params.get(positional) {
                    Some(p) if p.variadic => variadic.push(v),
                    Some(p) => {
                        out.insert(p.name.name.clone(), v);
                        positional += 1;
                    }
                    None => {
                        self.error(
                            code::TYPE_ARITY,
                            file,
                            a.value.span,
                            format!(
                                "network `{}` takes {} parameter{}",
                                def.name.name,
                                def.params.len(),
                                if def.params.len() == 1 { "" } else { "s" }
                            ),
                        )
                        .label("one argument too many")
                        .related(def_file, def.name.span, "network defined here")
                        .help("remove the extra argument")
                        .emit();
                        ok = false;
                    }
                },
            }
        }
        for p in &def.params {
            if p.variadic {
                let name = p.name.name.clone();
                out.entry(name)
                    .or_insert_with(|| Value::List(std::mem::take(&mut variadic)));
                continue;
            }
            if out.contains_key(&p.name.name) {
                continue;
            }
            match &p.default {
                Some(d) => {
                    let v = self.eval(At::new(def_file, d), &out)?;
                    out.insert(p.name.name.clone(), v);
                }
                None => {
                    self.error(
                        code::TYPE_ARITY,
                        file,
                        span,
                        format!(
                            "network `{}` needs the parameter `{}`",
                            def.name.name, p.name.name
                        ),
                    )
                    .label(format!("`{}` is missing", p.name.name))
                    .related(def_file, p.name.span, "parameter declared here")
                    .help(format!(
                        "pass it, e.g. `{}({}: ...)`",
                        def.name.name, p.name.name
                    ))
                    .emit();
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn expand_def(
        &mut self,
        ctx: &mut Ctx,
        id: DefId,
        env: Env,
        shape: &mut Vec<u64>,
        namer: &mut Namer,
        prefix: &str,
        out: &mut Vec<Layer>,
    ) -> Option<()> {
        let (file, def) = (self.defs[id.0].file, self.defs[id.0].def);
        if ctx.stack.contains(&id) {
            let (f, s) = ctx.origin.unwrap_or((file, def.name.span));
            self.error(
                code::NET_RECURSION,
                f,
                s,
                format!("network `{}` contains itself", def.name.name),
            )
            .label("recursive network")
            .related(file, def.name.span, "defined here")
            .help("use `repeat(n) { ... }` for repeated structure")
            .emit();
            return None;
        }
        ctx.stack.push(id);
        let r = match &def.body {
            DefBody::Layers(layers) => self.seq(ctx, file, layers, &env, shape, namer, prefix, out),
            DefBody::Alias(e) => {
                let (callee, args): (&'p str, &'p [Arg]) = match &e.kind {
                    ExprKind::Call { callee, args } => (&callee.name, args),
                    ExprKind::Ident(n) => (n, &[]),
                    _ => {
                        self.error(
                            code::TYPE_MISMATCH,
                            file,
                            e.span,
                            "a network alias names another network",
                        )
                        .label("not a network")
                        .help("write `network small = lenet(100, 30)`")
                        .emit();
                        ctx.stack.pop();
                        return None;
                    }
                };
                match self.lookup(file, callee, e.span, DefKind::Network) {
                    Some(target) => {
                        let env2 = self.bind_network_args(target, file, e.span, args, &env);
                        match env2 {
                            Some(env2) => {
                                self.expand_def(ctx, target, env2, shape, namer, prefix, out)
                            }
                            None => None,
                        }
                    }
                    None => None,
                }
            }
            DefBody::Fields(_) => None,
        };
        ctx.stack.pop();
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn seq(
        &mut self,
        ctx: &mut Ctx,
        file: FileId,
        layers: &'p [AstLayer],
        env: &Env,
        shape: &mut Vec<u64>,
        namer: &mut Namer,
        prefix: &str,
        out: &mut Vec<Layer>,
    ) -> Option<()> {
        for l in layers {
            self.layer(ctx, file, l, env, shape, namer, prefix, out)?;
        }
        Some(())
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        ctx: &mut Ctx,
        file: FileId,
        l: &'p AstLayer,
        env: &Env,
        shape: &mut Vec<u64>,
        namer: &mut Namer,
        prefix: &str,
        out: &mut Vec<Layer>,
    ) -> Option<()> {
        ctx.layers += 1;
        if ctx.layers > MAX_LAYERS {
            let (f, s) = ctx.origin.unwrap_or((file, l.span));
            self.error(
                code::RANGE_VALUE,
                f,
                s,
                format!("this network unrolls to more than {MAX_LAYERS} layers"),
            )
            .label("too large")
            .help("check `repeat` counts and loop ranges")
            .emit();
            return None;
        }
        match &l.kind {
            LayerKind::Require { cond, message } => {
                let at = At::new(file, cond);
                match self.eval(at, env)? {
                    Value::Bool(true) => Some(()),
                    Value::Bool(false) => {
                        let msg = message.clone().unwrap_or_else(|| {
                            format!(
                                "requirement `{}` does not hold",
                                self.prog.sources.snippet(file, cond.span)
                            )
                        });
                        let (f, s) = ctx.origin.unwrap_or((file, cond.span));
                        let values: Vec<String> = {
                            let mut v: Vec<String> =
                                env.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                            v.sort();
                            v
                        };
                        self.error(code::RANGE_REQUIRE, f, s, msg)
                            .label("these arguments do not fit the network")
                            .related(file, cond.span, "required here")
                            .help(format!(
                                "the network's parameters here: {}",
                                values.join(", ")
                            ))
                            .emit();
                        None
                    }
                    v => self.mismatch(at, "a condition (true or false)", &v),
                }
            }
            LayerKind::For { var, iter, body } => {
                let at = At::new(file, iter);
                let items = match self.eval(at, env)? {
                    Value::List(items) => items,
                    v => return self.mismatch(at, "a list to loop over", &v),
                };
                for v in items {
                    let mut env2 = env.clone();
                    env2.insert(var.name.clone(), v);
                    self.seq(ctx, file, body, &env2, shape, namer, prefix, out)?;
                }
                Some(())
            }
            LayerKind::Call {
                name,
                args,
                body,
                label,
            } => self.call_layer(
                ctx,
                file,
                l,
                name.name.as_str(),
                name.span,
                args,
                body.as_deref(),
                label.as_ref().map(|i| i.name.as_str()),
                env,
                shape,
                namer,
                prefix,
                out,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call_layer(
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

    #[allow(clippy::too_many_arguments)]
    fn window_out(
        &mut self,
        ctx: &Ctx,
        file: FileId,
        span: Span,
        size: u64,
        k: u64,
        s: u64,
        p: u64,
        ceil: bool,
    ) -> Option<u64> {
        let padded = size + 2 * p;
        if padded < k {
            let (f, sp) = match ctx.origin {
                Some(o) if o.0 != file => o,
                _ => (file, span),
            };
            self.error(
                code::SHAPE_MISMATCH,
                f,
                sp,
                format!("a {k}-wide window does not fit an input of size {size} (padding {p})"),
            )
            .label("the input is too small here")
            .related(file, span, "this layer")
            .help("use a larger input, less downsampling before this layer, or more padding")
            .emit();
            return None;
        }
        let mut out = if ceil {
            (padded - k).div_ceil(s) + 1
        } else {
            (padded - k) / s + 1
        };
        // PyTorch's rule: the last window must start inside the input or left padding.
        if ceil && (out - 1) * s >= size + p {
            out -= 1;
        }
        Some(out)
    }

    fn flat_input(&mut self, file: FileId, span: Span, shape: &[u64], name: &str) -> Option<u64> {
        if shape.len() == 1 {
            return Some(shape[0]);
        }
        self.error(
            code::SHAPE_MISMATCH,
            file,
            span,
            format!("`{name}` needs a flat input, but gets {shape:?}"),
        )
        .label("input is an image")
        .help("add `flatten` or `global_avgpool` before it")
        .emit();
        None
    }

    fn image_input(
        &mut self,
        file: FileId,
        span: Span,
        shape: &[u64],
        name: &str,
    ) -> Option<[u64; 3]> {
        if let [c, h, w] = shape {
            return Some([*c, *h, *w]);
        }
        self.error(
            code::SHAPE_MISMATCH,
            file,
            span,
            format!("`{name}` needs an image input [channels, height, width], but gets {shape:?}"),
        )
        .label("input is flat")
        .help("image layers must come before `flatten`")
        .emit();
        None
    }

    fn size_arg(&mut self, at: Option<At<'p>>, env: &Env, min: i64) -> Option<u64> {
        let at = at?;
        let v = self.eval_int(at, env)?;
        self.check_size(at, v, min)
    }

    fn check_size(&mut self, at: At<'p>, v: i64, min: i64) -> Option<u64> {
        if v < min || v >= MAX_SIZE {
            self.error(
                code::RANGE_VALUE,
                at.file,
                at.span(),
                format!("size must be between {min} and {MAX_SIZE}, found {v}"),
            )
            .label("out of range")
            .help("check the parameters this size is computed from")
            .emit();
            return None;
        }
        Some(v as u64)
    }

    /// `3` or `[1, 7]` for kernels, strides and padding.
    fn pair_arg(
        &mut self,
        at: Option<At<'p>>,
        env: &Env,
        min: i64,
        default: [u64; 2],
    ) -> Option<[u64; 2]> {
        let Some(at) = at else { return Some(default) };
        match self.eval(at, env)? {
            Value::Int(v) => {
                let v = self.check_size(at, v, min)?;
                Some([v, v])
            }
            Value::List(items) if items.len() == 2 => match (&items[0], &items[1]) {
                (Value::Int(a), Value::Int(b)) => {
                    Some([self.check_size(at, *a, min)?, self.check_size(at, *b, min)?])
                }
                _ => self.mismatch(
                    at,
                    "an integer or a pair `[h, w]`",
                    &Value::List(items.clone()),
                ),
            },
            v => self.mismatch(at, "an integer or a pair `[h, w]`", &v),
        }
    }

    fn bool_arg(&mut self, at: Option<At<'p>>, env: &Env, default: bool) -> Option<bool> {
        let Some(at) = at else { return Some(default) };
        match self.eval(at, env)? {
            Value::Bool(b) => Some(b),
            v => self.mismatch(at, "`true` or `false`", &v),
        }
    }

    fn float_arg(&mut self, at: Option<At<'p>>, env: &Env, default: f64) -> Option<f64> {
        let Some(at) = at else { return Some(default) };
        let v = self.eval(at, env)?;
        match v.as_f64() {
            Some(x) if x >= 0.0 => Some(x),
            _ => self.mismatch(at, "a non-negative number", &v),
        }
    }

    /// Checks that every layer named in a network body is a built-in or a known network.
    fn check_layer_names(
        &mut self,
        file: FileId,
        layers: &'p [AstLayer],
        def: &crate::lang::ast::Def,
    ) {
        for l in layers {
            match &l.kind {
                LayerKind::Call { name, body, .. } => {
                    let n = name.name.as_str();
                    if !BUILTIN_LAYERS.contains(&n) && n != "shortcut" && n != "branch" {
                        if n == def.name.name {
                            self.error(
                                code::NET_RECURSION,
                                file,
                                name.span,
                                format!("network `{n}` contains itself"),
                            )
                            .label("recursive use")
                            .help("use `repeat(n) { ... }` for repeated structure")
                            .emit();
                        } else if self.by_name.contains_key(n) {
                            self.lookup(file, n, name.span, DefKind::Network);
                        } else {
                            let mut candidates: Vec<&str> = BUILTIN_LAYERS.to_vec();
                            candidates.extend(self.names_of(file, DefKind::Network));
                            self.error(
                                code::NAME_UNKNOWN,
                                file,
                                name.span,
                                format!("unknown layer or network `{n}`"),
                            )
                            .label("not a layer")
                            .help(unknown_name_help(n, "layer", &candidates))
                            .emit();
                        }
                    }
                    if let Some(b) = body {
                        self.check_layer_names(file, b, def);
                    }
                }
                LayerKind::For { body, .. } => self.check_layer_names(file, body, def),
                LayerKind::Require { .. } => {}
            }
        }
    }
}

/// Labels the network's last dense or conv layer (outside auxiliary heads) `output`.
fn mark_output(layers: &mut [Layer]) -> bool {
    layers.iter_mut().rev().any(|l| {
        let found = match &mut l.op {
            Op::Dense { .. } | Op::Conv { .. } => true,
            Op::Residual { main, .. } => return mark_output(main),
            Op::Concat { branches } => return branches.iter_mut().rev().any(|b| mark_output(b)),
            _ => false,
        };
        if found && !l.labels.iter().any(|x| x == "output") {
            l.labels.push("output".into());
        }
        found
    })
}

fn sorted(env: &Env) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    v.sort();
    v
}
