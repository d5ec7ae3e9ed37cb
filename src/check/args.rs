//! Binding the arguments of a call (`conv(64, 3, padding: 1)`, `sgd(lr: 0.1)`) to parameter names.

use super::record::CallForm;
use super::{At, Checker};
use crate::diag::{code, unknown_name_help};
use crate::lang::ast::Arg;
use crate::lang::{FileId, Span};

/// Arguments bound to parameter names; `None` where not given.
pub struct Bound<'p> {
    params: Vec<&'p str>,
    values: Vec<Option<At<'p>>>,
}

impl<'p> Bound<'p> {
    pub fn get(&self, name: &str) -> Option<At<'p>> {
        let i = self.params.iter().position(|p| *p == name)?;
        self.values[i]
    }
}

impl<'p> Checker<'p> {
    /// Binds `call`'s arguments to `params` (positional in order, or by name); the first
    /// `required` parameters must be given. `what` names the callee in messages.
    pub fn bind(
        &mut self,
        call: &CallForm<'p>,
        what: &str,
        params: &[&'p str],
        required: usize,
    ) -> Option<Bound<'p>> {
        self.bind_args(call.file, call.span, call.args, what, params, required)
    }

    pub fn bind_args(
        &mut self,
        file: FileId,
        span: Span,
        args: &'p [Arg],
        what: &str,
        params: &[&'p str],
        required: usize,
    ) -> Option<Bound<'p>> {
        let mut values: Vec<Option<At<'p>>> = vec![None; params.len()];
        let mut ok = true;
        let mut next = 0;
        for a in args {
            let slot = match &a.name {
                Some(n) => match params.iter().position(|p| *p == n.name) {
                    Some(i) => i,
                    None => {
                        self.error(
                            code::NAME_UNKNOWN_ARGUMENT,
                            file,
                            n.span,
                            format!("{what} has no argument `{}`", n.name),
                        )
                        .label("unknown argument")
                        .help(unknown_name_help(&n.name, "argument", params))
                        .emit();
                        ok = false;
                        continue;
                    }
                },
                None => {
                    if next >= params.len() {
                        self.error(
                            code::TYPE_ARITY,
                            file,
                            a.value.span,
                            format!(
                                "{what} takes at most {} argument{}",
                                params.len(),
                                plural(params.len())
                            ),
                        )
                        .label("one argument too many")
                        .help(if params.is_empty() {
                            format!("write `{}` without parentheses", what.trim_matches('`'))
                        } else {
                            format!("its arguments are: {}", params.join(", "))
                        })
                        .emit();
                        ok = false;
                        continue;
                    }
                    next += 1;
                    next - 1
                }
            };
            if values[slot].is_some() {
                self.error(
                    code::TYPE_ARITY,
                    file,
                    a.value.span,
                    format!("argument `{}` of {what} is given twice", params[slot]),
                )
                .label("given again here")
                .help("give each argument once")
                .emit();
                ok = false;
                continue;
            }
            values[slot] = Some(At::new(file, &a.value));
        }
        for (i, p) in params.iter().enumerate().take(required) {
            if values[i].is_none() {
                self.error(
                    code::TYPE_ARITY,
                    file,
                    span,
                    format!("{what} needs the argument `{p}`"),
                )
                .label(format!("`{p}` is missing"))
                .help(format!("its arguments are: {}", params.join(", ")))
                .emit();
                ok = false;
            }
        }
        ok.then(|| Bound {
            params: params.to_vec(),
            values,
        })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
