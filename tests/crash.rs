//! Nothing lost: a run killed (SIGKILL) at any moment and run again gives results identical to
//! an uninterrupted run; damaged artifacts are detected and recomputed, never used.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lthc;

fn program(dir: &Path) -> String {
    let dataset = common::tiny_idx(&dir.join("tiny"), 480, 100);
    format!(
        "import \"stdlib/networks.lth\"\n{dataset}\n\
experiment crash {{\n  network = mlp(36, 64, 32, 2)\n  data = tiny\n  train = {{ optimizer = adam(lr: 0.005), batch = 16, duration = 90 it }}\n  \
prune = magnitude(global, 30%) for 2 levels\n  rewind = [0 it, 10 it]\n  controls = [random_prune]\n  measure = [stability(data_order)]\n}}\n"
    )
}

fn results(dir: &Path, cache: &str) -> serde_json::Value {
    let out = lthc(
        &["results", "--format", "json", "--cache", cache, "crash.lth"],
        dir,
    );
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `lthc args` started in `dir`, its output thrown away: a run to kill.
fn start(args: &[&str], dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lthc"))
        .args(args)
        .current_dir(dir)
        .env_remove("LTHC_CACHE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_runs_resume_to_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    let started = Instant::now();
    let out = lthc(
        &["run", "-q", "--cache", "reference", "crash.lth"],
        dir.path(),
    );
    let whole = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = results(dir.path(), "reference");
    assert_eq!(reference.as_array().unwrap().len(), 2 * (1 + 2 * 2));

    // Kill at several points, spread out as fractions of the uninterrupted run's time (fixed
    // delays were too long on a fast machine: the run finished before three kills); each
    // attempt resumes the last, so together they cover the run more than once.
    let mut kills = 0;
    for percent in [4u32, 8, 12, 16, 22, 30, 40, 50, 65, 80, 100] {
        let delay = (whole * percent / 100).max(Duration::from_millis(20));
        let mut child = start(
            &["run", "-q", "--cache", "crashed", "crash.lth"],
            dir.path(),
        );
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(
        kills >= 3,
        "the run finished too fast to be interrupted ({kills} kills)"
    );
    let out = lthc(
        &["run", "-q", "--cache", "crashed", "crash.lth"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(results(dir.path(), "crashed"), reference);
}

#[test]
fn damaged_artifacts_are_detected_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    assert!(
        lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path())
            .status
            .success()
    );
    let reference = results(dir.path(), "c");

    // Truncate the dense run's final checkpoint and flip a byte of an evaluation.
    let out = lthc(&["plan", "--format", "json", "crash.lth"], dir.path());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let dense = steps.iter().find(|s| s["kind"] == "train").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let eval = steps.iter().find(|s| s["kind"] == "evaluate").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let steps_dir = dir.path().join("c").join("steps");
    let ckpt = steps_dir.join(&dense).join("it_90.ckpt");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let result = steps_dir.join(&eval).join("result.json");
    let mut bytes = std::fs::read(&result).unwrap();
    bytes[20] ^= 0x20;
    std::fs::write(&result, bytes).unwrap();

    let out = lthc(&["cache", "verify", "--cache", "c"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("it_90.ckpt")
            && err.contains("result.json")
            && err.contains("lth::exec::corrupt"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 damaged"));

    // The next run recomputes exactly those, and the results are as before.
    let out = lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("2 steps run"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(results(dir.path(), "c"), reference);
    assert_eq!(
        lthc(&["cache", "verify", "--cache", "c"], dir.path())
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn a_damaged_input_found_while_running_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    let one_level = program(dir.path()).replace("for 2 levels", "for 1 level");
    std::fs::write(dir.path().join("one.lth"), one_level).unwrap();
    assert!(lthc(&["run", "-q", "--cache", "c", "one.lth"], dir.path())
        .status
        .success());
    // Damage the level-1 IMP run's final state, which level 2 (not run yet) will read.
    let out = lthc(&["plan", "--format", "json", "one.lth"], dir.path());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let imp = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["label"]
                .as_str()
                .unwrap()
                .starts_with("train imp level 1 0 ")
        })
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let ckpt = dir
        .path()
        .join("c")
        .join("steps")
        .join(imp)
        .join("it_90.ckpt");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..100]).unwrap();
    let out = lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("recomputing"));
    assert!(
        lthc(&["run", "-q", "--cache", "ref", "crash.lth"], dir.path())
            .status
            .success()
    );
    assert_eq!(results(dir.path(), "c"), results(dir.path(), "ref"));
}

#[test]
fn two_processes_on_one_cache_never_train_a_step_twice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    // The second file overlaps the first: same dense runs and levels, one more rewind point.
    std::fs::write(
        dir.path().join("more.lth"),
        program(dir.path())
            .replace("rewind = [0 it, 10 it]", "rewind = [0 it, 10 it, 20 it]")
            .replace("experiment crash", "experiment more"),
    )
    .unwrap();
    let spawn = |file: &str, jobs: &str| {
        Command::new(env!("CARGO_BIN_EXE_lthc"))
            .args(["run", "-q", "--jobs", jobs, "--cache", "shared", file])
            .current_dir(dir.path())
            .env_remove("LTHC_CACHE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("crash.lth", "2");
    let b = spawn("more.lth", "1");
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let ran = |o: &std::process::Output| -> usize {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Every distinct step of both plans ran exactly once between the two processes.
    let steps = |file: &str| -> std::collections::HashSet<String> {
        let out = lthc(&["plan", "--format", "json", file], dir.path());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect()
    };
    let union: std::collections::HashSet<String> = steps("crash.lth")
        .union(&steps("more.lth"))
        .cloned()
        .collect();
    assert_eq!(ran(&a) + ran(&b), union.len());
    assert!(!dir
        .path()
        .join("shared/steps")
        .read_dir()
        .unwrap()
        .any(|d| d.unwrap().path().join("lock").exists()));
    // And the results are those of a cache filled by one process alone.
    assert!(lthc(
        &["run", "-q", "--jobs", "1", "--cache", "alone", "crash.lth"],
        dir.path()
    )
    .status
    .success());
    assert_eq!(results(dir.path(), "shared"), results(dir.path(), "alone"));
}

/// What `lthc plan --explain` says of crash.lth against the cache `c`.
fn explain(dir: &Path) -> String {
    let out = lthc(&["plan", "--explain", "--cache", "c", "crash.lth"], dir);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn explain_says_what_is_cached_and_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    assert!(
        lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path())
            .status
            .success()
    );
    let text = explain(dir.path());
    assert!(text.contains("0 to run"), "{text}");
    std::fs::write(
        dir.path().join("crash.lth"),
        program(dir.path()).replace("adam(lr: 0.005)", "adam(lr: 0.01)"),
    )
    .unwrap();
    let text = explain(dir.path());
    assert!(
        text.contains("to re-run: recipe.optimizer.lr: 0.005 → 0.01"),
        "{text}"
    );
    assert!(text.contains("to run: its input"), "{text}");
    assert!(
        text.lines().next().unwrap().ends_with("cached"),
        "the init does not depend on the rate: {text}"
    );

    // Evaluating during training is part of the run: asking for it re-runs training (and says
    // so) rather than serving cached runs without the evaluations.
    std::fs::write(
        dir.path().join("crash.lth"),
        program(dir.path()).replace(
            "duration = 90 it }",
            "duration = 90 it, eval_every = 30 it }",
        ),
    )
    .unwrap();
    let text = explain(dir.path());
    assert!(
        text.contains("to re-run: recipe.eval_every: (default) → 30"),
        "{text}"
    );
    assert!(
        lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path())
            .status
            .success()
    );
    for r in results(dir.path(), "c").as_array().unwrap() {
        let evaluations = r["evaluations"].as_array().unwrap();
        assert!(evaluations.len() >= 3, "{r}");
        assert!(r["best_iteration"].as_u64().unwrap() % 30 == 0, "{r}");
    }
}

#[test]
fn gc_removes_only_what_no_given_file_needs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crash.lth"), program(dir.path())).unwrap();
    std::fs::write(
        dir.path().join("one.lth"),
        program(dir.path()).replace("for 2 levels", "for 1 level"),
    )
    .unwrap();
    assert!(
        lthc(&["run", "-q", "--cache", "c", "crash.lth"], dir.path())
            .status
            .success()
    );
    let count = || {
        std::fs::read_dir(dir.path().join("c/steps"))
            .unwrap()
            .count()
    };
    let before = count();
    let out = lthc(
        &["cache", "gc", "--dry-run", "--cache", "c", "one.lth"],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("would remove"));
    assert_eq!(count(), before);
    let out = lthc(&["cache", "gc", "--cache", "c", "one.lth"], dir.path());
    assert!(out.status.success());
    assert!(count() < before);
    // What one.lth needs is all still there.
    let out = lthc(&["run", "-q", "--cache", "c", "one.lth"], dir.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("0 steps run"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ls = lthc(&["cache", "ls", "--cache", "c", "one.lth"], dir.path());
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("not used"));
}

/// `lthc run --jobs 2` trains in a second process (`lthc work`). Killed, the run takes it
/// down too: the worker saves where it is and exits instead of training on unseen.
#[test]
fn a_killed_runs_worker_process_saves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    // Two seeds, so that two dense runs train at once; each long enough that a worker left
    // alone would train for minutes.
    let long = program(dir.path())
        .replace("duration = 90 it", "duration = 200000 it")
        .replace(
            "  rewind = [0 it, 10 it]",
            "  rewind = [0 it, 10 it]\n  seeds = 1..2",
        );
    std::fs::write(dir.path().join("long.lth"), long).unwrap();
    let mut run = start(
        &["run", "-q", "--jobs", "2", "--cache", "c", "long.lth"],
        dir.path(),
    );
    // The step another process than the run's holds (`pid worker host job`): the worker's.
    let steps = dir.path().join("c/steps");
    let workers_step = || -> Option<(std::path::PathBuf, u32)> {
        std::fs::read_dir(&steps).ok()?.flatten().find_map(|d| {
            let owner = std::fs::read_to_string(d.path().join("lock")).ok()?;
            let pid: u32 = owner.split_whitespace().next()?.parse().ok()?;
            (pid != run.id()).then(|| (d.path(), pid))
        })
    };
    // Held for a while: a training run, not an init.
    let mut training = None;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(100));
        let now = workers_step();
        if now.is_some() && now == training {
            break;
        }
        training = now;
    }
    let (step, pid) = training.expect("no worker process trained within 30 s");
    run.kill().unwrap(); // SIGKILL: the run cannot tell its worker anything
    let _ = run.wait();
    // Gone, or a zombie nobody has reaped yet.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    for _ in 0..200 {
        if !running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !running(),
        "the worker still trains 10 s after its run was killed"
    );
    assert!(
        !step.join("lock").exists(),
        "the worker left its lock behind"
    );
    assert!(
        !step.join("done").exists(),
        "the worker finished instead of stopping"
    );
    assert!(
        step.join("resume.ckpt").exists(),
        "the worker's training run was not saved"
    );
}
