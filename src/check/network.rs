//! Network definitions → concrete layers ([`NetSpec`]): parameters bound, `repeat`/`for`
//! unrolled, `require` checked, shapes inferred layer by layer, names given.

use std::collections::HashMap;

use super::eval::{Env, Value};
use super::netspec::{Layer, NetSpec, Op};
use super::{At, Checker, DefId};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::{Arg, DefBody, DefKind, ExprKind, Layer as AstLayer, LayerKind};
use crate::lang::{FileId, Span};

/// Elaborated networks by (definition, arguments, input shape).
pub type Cache = HashMap<String, Option<NetSpec>>;

pub(super) const BUILTIN_LAYERS: &[&str] = &[
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
pub(super) const MAX_SIZE: i64 = 1 << 31;
/// Unrolled layers above this are mistakes (`repeat(1000000)`).
const MAX_LAYERS: usize = 200_000;

/// Where the elaboration started (the user's call) and the definitions being expanded.
pub(super) struct Ctx {
    pub origin: Option<(FileId, Span)>,
    stack: Vec<DefId>,
    layers: usize,
}

/// Per-sequence counters that give layers names like `conv3`.
#[derive(Default)]
pub(super) struct Namer(HashMap<String, usize>);

impl Namer {
    pub fn next(&mut self, prefix: &str, base: &str) -> String {
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
    pub(super) fn bind_network_args(
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
    pub(super) fn expand_def(
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
    pub(super) fn seq(
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
    pub(super) fn layer(
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
