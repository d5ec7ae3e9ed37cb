//! `dataset` definitions.

use super::record::Record;
use super::spec::{Augment, DataFormat, DatasetSpec};
use super::{At, Checker, DefId};
use crate::diag::code;
use crate::lang::ast::DefKind;
use crate::lang::FileId;

pub(crate) const FIELDS: &[&str] = &[
    "format",
    "source",
    "fetch",
    "shape",
    "classes",
    "train_size",
    "test_size",
    "holdout",
    "mean",
    "std",
    "augment",
    "resize",
];
const FORMATS: &[&str] = &["idx", "cifar10_binary", "image_folder"];
const AUGMENTS: &[&str] = &["random_crop", "horizontal_flip", "random_resized_crop"];
const FETCHERS: &[&str] = &["mnist", "fashion_mnist"];

impl<'p> Checker<'p> {
    pub fn dataset(&mut self, _file: FileId, id: DefId) -> Option<DatasetSpec> {
        let name = self.defs[id.0].def.name.name.clone();
        let rec = self.def_record(id)?;
        self.dataset_record(rec, name)
    }

    /// The dataset an experiment's `data = ...` names.
    pub fn dataset_ref(&mut self, at: At<'p>) -> Option<DatasetSpec> {
        let name = self.record_name(at);
        let rec = self.expr_record(at, DefKind::Dataset)?;
        self.dataset_record(rec, name)
    }

    fn dataset_record(&mut self, mut rec: Record<'p>, name: String) -> Option<DatasetSpec> {
        let mut ok = true;
        let format = match rec.get("format") {
            Some(at) => self.symbol(at, FORMATS, "dataset format"),
            None => {
                rec.missing(self, "format", "idx");
                None
            }
        };
        let source = match rec.get("source") {
            Some(at) => self.string(at),
            None => Some(name.clone()),
        };
        let fetch = match rec.get("fetch") {
            Some(at) => self
                .symbol(at, FETCHERS, "fetcher")
                .map(|s| Some(s.to_string())),
            None => Some(None),
        };
        let shape = match rec.get("shape") {
            Some(at) => self.shape(at),
            None => {
                rec.missing(self, "shape", "[1, 28, 28]");
                None
            }
        };
        let count =
            |cx: &mut Self, rec: &mut Record<'p>, field: &str, example: &str, min: i64| match rec
                .get(field)
            {
                Some(at) => cx.int_at_least(at, min, field),
                None => {
                    rec.missing(cx, field, example);
                    None
                }
            };
        let classes = count(self, &mut rec, "classes", "10", 2);
        let train_size = count(self, &mut rec, "train_size", "60000", 1);
        let test_size = count(self, &mut rec, "test_size", "10000", 1);
        let holdout = match rec.get("holdout") {
            Some(at) => {
                let h = self.int_at_least(at, 0, "holdout");
                if let (Some(h), Some(t)) = (h, train_size) {
                    if h >= t {
                        self.error(
                            code::RANGE_VALUE,
                            at.file,
                            at.span(),
                            format!("holdout ({h}) must be smaller than train_size ({t})"),
                        )
                        .label("leaves nothing to train on")
                        .help("hold out fewer examples")
                        .emit();
                        ok = false;
                    }
                }
                h
            }
            None => Some(0),
        };
        let floats = |cx: &mut Self, rec: &mut Record<'p>, field: &str| -> Option<Vec<f64>> {
            let Some(at) = rec.get(field) else {
                return Some(Vec::new());
            };
            let mut out = Vec::new();
            for item in cx.items(at)? {
                out.push(cx.number(item)?);
            }
            Some(out)
        };
        let mean = floats(self, &mut rec, "mean");
        let std = floats(self, &mut rec, "std");
        if let (Some(m), Some(s), Some(sh)) = (&mean, &std, &shape) {
            let channels = sh[0] as usize;
            let bad = |v: &Vec<f64>| !v.is_empty() && v.len() != channels && v.len() != 1;
            if m.len() != s.len() || bad(m) || bad(s) {
                let at = rec.get("mean").or(rec.get("std"));
                if let Some(at) = at {
                    self.error(code::TYPE_MISMATCH, at.file, at.span(), format!("`mean` and `std` need one value per channel ({channels}) or one for all"))
                        .label("wrong number of values")
                        .help("give `mean` and `std` the same number of values")
                        .emit();
                }
                ok = false;
            }
            if s.iter().any(|x| *x <= 0.0) {
                if let Some(at) = rec.get("std") {
                    self.error(
                        code::RANGE_VALUE,
                        at.file,
                        at.span(),
                        "`std` values must be positive",
                    )
                    .label("not positive")
                    .help("a standard deviation is above 0")
                    .emit();
                }
                ok = false;
            }
        }
        let augment = match rec.get("augment") {
            Some(at) => self.augmentations(at),
            None => Some(Vec::new()),
        };
        let resize = match rec.get("resize") {
            Some(at) => self.int_at_least(at, 1, "resize").map(Some),
            None => Some(None),
        };
        rec.finish(self, FIELDS);
        let format = match format? {
            "idx" => DataFormat::Idx,
            "cifar10_binary" => DataFormat::Cifar10Binary,
            _ => DataFormat::ImageFolder,
        };
        let spec = DatasetSpec {
            name,
            format,
            source: source?,
            fetch: fetch?,
            shape: shape?,
            classes: classes?,
            train_size: train_size?,
            test_size: test_size?,
            holdout: holdout?,
            mean: mean?,
            std: std?,
            augment: augment?,
            resize: resize?,
        };
        ok.then_some(spec)
    }

    fn augmentations(&mut self, at: At<'p>) -> Option<Vec<Augment>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in self.items(at)? {
            let Some(c) = self.call_form(item, "an augmentation") else {
                ok = false;
                continue;
            };
            let Some(kind) = self.symbol_name(&c, AUGMENTS, "augmentation") else {
                ok = false;
                continue;
            };
            let what = format!("`{kind}`");
            let a = match kind {
                "random_crop" => self.bind(&c, &what, &["padding"], 0).and_then(|b| {
                    let padding = match b.get("padding") {
                        Some(p) => self.int_at_least(p, 0, "padding")?,
                        None => 4,
                    };
                    Some(Augment::RandomCrop { padding })
                }),
                "horizontal_flip" => self
                    .bind(&c, &what, &[], 0)
                    .map(|_| Augment::HorizontalFlip),
                _ => self
                    .bind(&c, &what, &["size", "min_scale"], 1)
                    .and_then(|b| {
                        let size = self.int_at_least(b.get("size")?, 1, "size")?;
                        let min_scale = match b.get("min_scale") {
                            Some(m) => self.fraction(m, "min_scale")?,
                            None => 0.08,
                        };
                        Some(Augment::RandomResizedCrop { size, min_scale })
                    }),
            };
            match a {
                Some(a) => out.push(a),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The name of a call form, checked against `choices`.
    pub fn symbol_name(
        &mut self,
        c: &super::record::CallForm<'p>,
        choices: &[&'static str],
        what: &str,
    ) -> Option<&'static str> {
        if let Some(found) = choices.iter().find(|x| **x == c.name) {
            return Some(found);
        }
        self.error(
            code::NAME_UNKNOWN,
            c.file,
            c.name_span,
            format!("unknown {what} `{}`", c.name),
        )
        .label(format!("not a known {what}"))
        .help(crate::diag::unknown_name_help(c.name, what, choices))
        .emit();
        None
    }
}
