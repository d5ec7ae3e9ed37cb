//! Arguments of built-in layers (sizes, `[h, w]` pairs, flags) and the shape arithmetic of
//! windows (convolutions and pooling).

use super::eval::{Env, Value};
use super::network::{Ctx, MAX_SIZE};
use super::{At, Checker};
use crate::diag::code;
use crate::lang::{FileId, Span};

impl<'p> Checker<'p> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn window_out(
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

    pub(super) fn flat_input(
        &mut self,
        file: FileId,
        span: Span,
        shape: &[u64],
        name: &str,
    ) -> Option<u64> {
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

    pub(super) fn image_input(
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

    pub(super) fn size_arg(&mut self, at: Option<At<'p>>, env: &Env, min: i64) -> Option<u64> {
        let at = at?;
        let v = self.eval_int(at, env)?;
        self.check_size(at, v, min)
    }

    pub(super) fn check_size(&mut self, at: At<'p>, v: i64, min: i64) -> Option<u64> {
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
    pub(super) fn pair_arg(
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

    pub(super) fn bool_arg(
        &mut self,
        at: Option<At<'p>>,
        env: &Env,
        default: bool,
    ) -> Option<bool> {
        let Some(at) = at else { return Some(default) };
        match self.eval(at, env)? {
            Value::Bool(b) => Some(b),
            v => self.mismatch(at, "`true` or `false`", &v),
        }
    }

    pub(super) fn float_arg(&mut self, at: Option<At<'p>>, env: &Env, default: f64) -> Option<f64> {
        let Some(at) = at else { return Some(default) };
        let v = self.eval(at, env)?;
        match v.as_f64() {
            Some(x) if x >= 0.0 => Some(x),
            _ => self.mismatch(at, "a non-negative number", &v),
        }
    }
}
