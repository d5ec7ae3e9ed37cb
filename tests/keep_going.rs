//! A failing step stops only what depends on it: a missing dataset is reported before anything
//! trains and the rest of the plan runs; a diverging training run is a result, not a crash.

mod common;

use std::process::Command;

use common::{lthc, results, text};

/// An experiment on the tiny dataset: dense, then one IMP level with a random-pruning control.
fn tiny_experiment(name: &str, lr: &str) -> String {
    format!(
        "experiment {name} {{\n  network = mlp(36, 16, 2)\n  data = tiny\n  train = {{ optimizer = sgd(lr: {lr}), batch = 16, duration = 40 it }}\n  prune = magnitude(global, 50%) for 1 levels\n  controls = [random_prune]\n}}\n"
    )
}

#[test]
fn a_missing_dataset_stops_only_its_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::tiny_idx(&dir.path().join("tiny"), 160, 40);
    // A CIFAR-10 whose files are not there.
    let absent = format!(
        "dataset absent {{\n  format = cifar10_binary\n  source = \"{}\"\n  shape = [3, 32, 32]\n  classes = 10\n  train_size = 50000\n  test_size = 10000\n  mean = [0.5, 0.5, 0.5]\n  std = [0.25, 0.25, 0.25]\n}}\n",
        dir.path().join("no-such-dir").display()
    );
    let on_absent = "experiment needs_cifar {\n  network = mlp(3072, 8, 10)\n  data = absent\n  train = { optimizer = sgd(lr: 0.1), batch = 16, duration = 20 it }\n}\n";
    let both = format!(
        "import \"stdlib/networks.lth\"\n{tiny}{absent}{on_absent}{}",
        tiny_experiment("runs", "0.1")
    );
    let alone = format!(
        "import \"stdlib/networks.lth\"\n{tiny}{}",
        tiny_experiment("runs", "0.1")
    );
    std::fs::write(dir.path().join("both.lth"), both).unwrap();
    std::fs::write(dir.path().join("alone.lth"), alone).unwrap();

    // --strict: nothing runs.
    let out = lthc(
        &["run", "-q", "--strict", "--cache", "strict", "both.lth"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("lth::exec::strict"),
        "{}",
        text(&out.stderr)
    );
    assert!(results(dir.path(), "strict", "alone.lth").is_empty());

    let out = lthc(&["run", "-q", "--cache", "c", "both.lth"], dir.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The preflight names the dataset, the experiment and its steps, once, before training.
    assert_eq!(stderr.matches("lth::data::missing").count(), 1, "{stderr}");
    assert!(stderr.contains("dataset `absent`"), "{stderr}");
    assert!(stderr.contains("needs_cifar"), "{stderr}");
    // needs_cifar: init (no data), train (fails), evaluate (skipped).
    assert!(stdout.contains("1 steps failed, 1 skipped"), "{stdout}");
    assert!(stdout.contains("[lth::data::missing]"), "{stdout}");

    // The other experiment ran to the end, as if it had been run alone.
    let out = lthc(&["run", "-q", "--cache", "ref", "alone.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reference = results(dir.path(), "ref", "alone.lth");
    assert_eq!(reference.len(), 3, "dense, IMP level 1, random control");
    assert_eq!(results(dir.path(), "c", "alone.lth"), reference);

    // The failure markers are artifacts like any other: the cache verifies.
    let verify = lthc(&["cache", "verify", "--cache", "c"], dir.path());
    assert!(verify.status.success(), "{}", text(&verify.stdout));

    // Running again retries only the failed step (and fails the same way).
    let out = lthc(&["run", "-q", "--cache", "c", "both.lth"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("0 steps run"), "{stdout}");
    assert!(stdout.contains("1 steps failed, 1 skipped"), "{stdout}");
}

#[test]
fn a_diverging_run_is_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::tiny_idx(&dir.path().join("tiny"), 160, 40);
    let program = |body: &str| format!("import \"stdlib/networks.lth\"\n{tiny}{body}");
    std::fs::write(
        dir.path().join("both.lth"),
        program(&(tiny_experiment("calm", "0.1") + &tiny_experiment("wild", "1e30"))),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("calm.lth"),
        program(&tiny_experiment("calm", "0.1")),
    )
    .unwrap();

    let out = lthc(&["run", "-q", "--cache", "c", "both.lth"], dir.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The dense run diverges: recorded; IMP cannot prune a diverged network, so that level
    // and its control fail and are skipped.
    assert!(stderr.contains("recorded as diverged"), "{stderr}");
    assert!(stderr.contains("lth::exec::diverged"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("div@"), "{stdout}");

    let records = results(dir.path(), "c", "both.lth");
    let wild: Vec<_> = records
        .iter()
        .filter(|r| r["experiment"] == "wild")
        .collect();
    assert_eq!(
        wild.len(),
        1,
        "only the dense run of `wild` has a record: {wild:?}"
    );
    assert!(wild[0]["diverged_at"].as_u64().is_some(), "{:?}", wild[0]);
    assert!(wild[0]["test_accuracy"].is_null());

    // The other experiment is complete and bit-identical to running it alone.
    let out = lthc(&["run", "-q", "--cache", "ref", "calm.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calm: Vec<_> = records
        .iter()
        .filter(|r| r["experiment"] == "calm")
        .cloned()
        .collect();
    assert_eq!(calm, results(dir.path(), "ref", "calm.lth"));
    assert_eq!(calm.len(), 3);
}

#[test]
fn an_interrupted_run_saves_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = common::tiny_idx(&dir.path().join("tiny"), 160, 40);
    let program = format!(
        "import \"stdlib/networks.lth\"\n{tiny}experiment long {{\n  network = mlp(36, 256, 256, 2)\n  data = tiny\n  train = {{ optimizer = sgd(lr: 0.05), batch = 16, duration = 4000 it }}\n  prune = magnitude(global, 50%) for 1 levels\n}}\n"
    );
    std::fs::write(dir.path().join("long.lth"), program).unwrap();
    let out = lthc(&["run", "-q", "--cache", "ref", "long.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));

    // SIGINT while the dense run trains (a fixed delay, then later ones if it finished first).
    let mut interrupted = None;
    for delay_ms in [400u64, 150, 50] {
        let _ = std::fs::remove_dir_all(dir.path().join("c"));
        let child = Command::new(env!("CARGO_BIN_EXE_lthc"))
            .args(["run", "-q", "--cache", "c", "long.lth"])
            .current_dir(dir.path())
            .env_remove("LTHC_CACHE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let signal = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if signal.success() && out.status.code() == Some(130) {
            interrupted = Some(out);
            break;
        }
    }
    let out = interrupted.expect("no run was interrupted while training");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("lth::exec::interrupted"), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    // No lock left behind, nothing damaged, and the dense run's progress is on disk.
    let steps = dir.path().join("c").join("steps");
    let mut resumable = 0;
    for step in std::fs::read_dir(&steps)
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        assert!(
            !step.join("lock").exists(),
            "{} still locked",
            step.display()
        );
        resumable += usize::from(step.join("resume.ckpt").exists());
    }
    assert_eq!(
        resumable, 1,
        "the interrupted training run saved where it was"
    );
    let verify = lthc(&["cache", "verify", "--cache", "c"], dir.path());
    assert!(verify.status.success(), "{}", text(&verify.stderr));

    // The same command resumes, to the same results as the uninterrupted run.
    let out = lthc(&["run", "-q", "--cache", "c", "long.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        results(dir.path(), "c", "long.lth"),
        results(dir.path(), "ref", "long.lth")
    );
}
