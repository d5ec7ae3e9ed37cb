//! `lthc fmt`: rewrites `.lth` files in the canonical layout (`lang::format`), or with
//! `--check` names the files it would change.

use std::path::PathBuf;

use super::commands::emit;
use crate::diag::{code, render_report, Diag};
use crate::lang::{format::format, parse, SourceMap};

pub fn fmt(files: &[PathBuf], check: bool, color: bool) -> i32 {
    let mut errors = 0;
    let mut changed = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let what = format!("cannot read `{}`: {e}", path.display());
                say_io(what, "check the path", color);
                errors += 1;
                continue;
            }
        };
        // Only text that parses is formatted: a syntax error is said, the file left alone.
        let mut sources = SourceMap::default();
        let id = sources.add(path.display().to_string(), Some(path.clone()), text.clone());
        if let Err(d) = parse(id, &text) {
            eprint!("{}", render_report(&[*d], &sources, color));
            errors += 1;
            continue;
        }
        let formatted = format(&text);
        if formatted == text {
            continue;
        }
        if !check {
            if let Err(e) = crate::store::atomic_write(path, formatted.as_bytes()) {
                let what = format!("cannot write `{}`: {e}", path.display());
                say_io(what, "check the file's permissions", color);
                errors += 1;
                continue;
            }
        }
        changed.push(path.display().to_string());
    }
    let verb = if check { "would reformat" } else { "formatted" };
    for c in &changed {
        emit(&format!("{verb} {c}\n"));
    }
    if check && !changed.is_empty() {
        eprintln!(
            "{} file(s) are not formatted: run `lthc fmt` on them",
            changed.len()
        );
        return 1;
    }
    i32::from(errors > 0)
}

fn say_io(message: String, help: &str, color: bool) {
    let d = Diag::global(code::IO_READ, message).help(help);
    eprint!("{}", render_report(&[d], &Default::default(), color));
}
