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

/// A small learnable problem in IDX files: 6x6 images, two classes (bright left half or bright
/// right half) with noise. Train images raw, test images gzipped. Returns a `dataset` block.
pub fn tiny_idx(dir: &std::path::Path, train: usize, test: usize) -> String {
    use std::io::Write;
    let make = |n: usize, seed: u64| {
        let mut rng = lthc::rng::Rng::new(seed);
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let label = rng.below(2) as u8;
            for _y in 0..6 {
                for x in 0..6 {
                    let bright = (x < 3) == (label == 0);
                    let base = if bright { 180.0 } else { 40.0 };
                    pixels.push((base + rng.normal() * 30.0).clamp(0.0, 255.0) as u8);
                }
            }
            labels.push(label);
        }
        (pixels, labels)
    };
    std::fs::create_dir_all(dir).unwrap();
    let (p, l) = make(train, 1);
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        lthc::data::idx::encode(&[train as u32, 6, 6], &p),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        lthc::data::idx::encode(&[train as u32], &l),
    )
    .unwrap();
    let (p, l) = make(test, 2);
    for (name, bytes) in [
        (
            "t10k-images-idx3-ubyte.gz",
            lthc::data::idx::encode(&[test as u32, 6, 6], &p),
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            lthc::data::idx::encode(&[test as u32], &l),
        ),
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        std::fs::write(dir.join(name), gz.finish().unwrap()).unwrap();
    }
    format!(
        "dataset tiny {{\n  format = idx\n  source = \"{}\"\n  shape = [1, 6, 6]\n  classes = 2\n  train_size = {train}\n  test_size = {test}\n  mean = [0.4]\n  std = [0.3]\n}}\n",
        dir.display()
    )
}

/// Runs the `lthc` binary in `dir`, ignoring the caller's `LTHC_CACHE`.
pub fn lthc(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    // `LTHC_BIN` names the binary where the tests run without cargo's build (bench/gpu.sh).
    let bin = std::env::var_os("LTHC_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_lthc").into());
    std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("LTHC_CACHE")
        .output()
        .expect("run lthc")
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `lthc results --format json` for `file` from `cache`.
pub fn results(dir: &std::path::Path, cache: &str, file: &str) -> Vec<serde_json::Value> {
    let out = lthc(
        &["results", "--format", "json", "--cache", cache, file],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}
