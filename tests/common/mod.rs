//! Helpers shared by the integration tests: check in-memory programs.

#![allow(dead_code)]

use std::path::PathBuf;

use lthc::check::{check_files, Checked, Memory, Program};
use lthc::diag::Diag;

/// Checks `files` (path, text); the first is the root named on the command line.
pub fn check_many(files: &[(&str, &str)], roots: &[&str]) -> (Program, Checked, Vec<Diag>) {
    let mut mem = Memory::default();
    for (p, t) in files {
        mem.0.insert(PathBuf::from(p), t.to_string());
    }
    let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
    check_files(&roots, &mem)
}

pub fn check_one(text: &str) -> (Program, Checked, Vec<Diag>) {
    check_many(&[("main.lth", text)], &["main.lth"])
}

/// The text a diagnostic's primary span covers.
pub fn span_text<'a>(prog: &'a Program, d: &Diag) -> &'a str {
    match d.file {
        Some(f) => prog.sources.snippet(f, d.span),
        None => "",
    }
}

/// A LeNet/MNIST experiment with `extra` lines added to its body.
pub fn lenet_experiment(extra: &str) -> String {
    format!(
        "import \"stdlib/mnist.lth\"\n\nexperiment e {{\n  network = lenet\n  data    = mnist\n  train   = lenet_adam\n{extra}\n}}\n"
    )
}
