//! The `lthc` binary as users run it: exit codes, text and JSON output.

use std::path::Path;
use std::process::{Command, Output};

fn lthc(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lthc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run lthc")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_experiment_file_checks() {
    let files: Vec<String> = std::fs::read_dir(repo().join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "lth"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(files.len() >= 9);
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let out = lthc(&args, repo());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok:"));
}

#[test]
fn errors_exit_1_with_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.lth"), "import \"stdlib/mnist.lth\"\nrecipe r {\n  optimizer = sgd(lr: 3 ep)\n  batch = 1\n  duration = 1 it\n}\n").unwrap();
    let out = lthc(&["check", "bad.lth"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("lth::unit::wrong"), "{err}");
    assert!(err.contains("bad.lth:3:23"), "{err}");
    assert!(err.contains("1 error"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = lthc(&["check", "--format", "json", "bad.lth"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["diagnostics"][0]["code"], "lth::unit::wrong");
    assert_eq!(v["diagnostics"][0]["span"]["line"], 3);
}

#[test]
fn a_missing_file_is_a_diagnostic() {
    let out = lthc(&["check", "no-such-file.lth"], repo());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("lth::io::read"));
}

#[test]
fn the_stdlib_is_embedded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("q.lth"),
        include_str!("../experiments/quickstart.lth"),
    )
    .unwrap();
    let out = lthc(&["check", "q.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn plan_prints_the_tree_and_totals() {
    let out = lthc(&["plan", "experiments/table1.lth"], repo());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("train dense lenet on mnist 0 → 50000 it"), "{s}");
    assert!(s.contains("checkpoints at 0, 100, 50000"));
    assert!(s.contains("iterations requested by all experiments:"));
    assert!(s.contains("iterations this plan trains:"));
}

#[test]
fn plan_summary_is_a_line_per_experiment() {
    let out = lthc(&["plan", "--summary", "experiments/table1.lth"], repo());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let tree = text(&lthc(&["plan", "experiments/table1.lth"], repo()).stdout);
    // The tree is thousands of lines; the summary a header, one line per instance, totals.
    assert!(s.lines().count() < 30 && tree.lines().count() > 1000, "{s}");
    let lenet = s.lines().find(|l| l.starts_with("lenet_mnist ")).unwrap();
    let counts: Vec<&str> = lenet.split_whitespace().collect();
    // init train prune rewind evaluate measure steps iterations
    assert_eq!(counts.len(), 9, "{lenet}");
    assert!(s.contains("all (shared once)"));
    assert!(s.contains("iterations this plan trains:"));
}

#[test]
fn plan_json_is_valid() {
    let out = lthc(
        &["plan", "--format", "json", "experiments/quickstart.lth"],
        repo(),
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["steps"].as_array().unwrap().len() > 10);
    assert!(v["totals"]["planned_iterations"].as_u64().unwrap() > 0);
}

#[test]
fn show_lists_networks_with_their_sizes() {
    let out = lthc(&["show", "--format", "json", "stdlib/paper.lth"], repo());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nets = v["networks"].as_array().unwrap();
    let lenet = nets.iter().find(|n| n["name"] == "lenet").unwrap();
    assert_eq!(lenet["parameters"], 266_610);
    assert_eq!(lenet["prunable_parameters"], 266_200);
    assert_eq!(lenet["flops"], 266_200);
    let out = lthc(&["show", "experiments/table1.lth"], repo());
    let s = text(&out.stdout);
    assert!(
        s.contains("20.0M") && s.contains("27.1M") && s.contains("266K"),
        "{s}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = lthc(&["plan"], repo());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_or_unavailable_device_is_a_diagnostic() {
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_string_lossy().into_owned();
    let file = "experiments/quickstart.lth";
    let run = |device: &str| {
        lthc(
            &["run", "--cache", &cache, "--device", device, file],
            repo(),
        )
    };
    let step = |device: &str| {
        let args = [
            "step", "--cache", &cache, "--data", &cache, "--device", device,
        ];
        let mut args = args.to_vec();
        args.extend(["--run", "r", "--key", "k", file]);
        lthc(&args, repo())
    };
    for out in [run("tpu"), step("tpu")] {
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains("lth::exec::device"), "{err}");
        assert!(err.contains("unknown device `tpu`"), "{err}");
        assert!(err.contains("--device cpu"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    #[cfg(not(feature = "cuda"))]
    for out in [run("cuda:1"), step("cuda")] {
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains("built without CUDA"), "{err}");
        assert!(err.contains("--features cuda"), "{err}");
    }
    #[cfg(not(feature = "wgpu"))]
    for out in [run("wgpu"), step("wgpu")] {
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(err.contains("built without wgpu"), "{err}");
        assert!(err.contains("--features wgpu"), "{err}");
    }
}
