//! `lthc run --executor slurm` through a real Slurm cluster: `ci/slurm.sh up` starts a one-node
//! cluster on localhost (`.ci/run` does, and sets `LTHC_REQUIRE_SLURM=1`, so that these tests
//! fail there without one). Without a cluster they print "skipped".

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{results, text};

/// Whether a Slurm controller answers; with `LTHC_REQUIRE_SLURM=1`, it must.
fn cluster() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var("LTHC_REQUIRE_SLURM").as_deref() != Ok("1"),
            "LTHC_REQUIRE_SLURM=1 but no Slurm cluster answers: eval \"$(ci/slurm.sh up)\""
        );
        eprintln!("skipped: no Slurm cluster (eval \"$(ci/slurm.sh up)\" starts one)");
    }
    up
}

fn lthc_cmd(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lthc"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("LTHC_CACHE")
        .env("LTHC_SLURM_POLL", "0.2");
    cmd
}

fn lthc(args: &[&str], dir: &Path) -> Output {
    lthc_cmd(args, dir).output().expect("run lthc")
}

/// A small sweep on a dataset in `data`: dense, one IMP level rewound to 0 and 10 it, a
/// random-pruning control, two seeds.
fn sweep(name: &str, data: &str, iterations: u32) -> String {
    format!(
        "experiment {name} {{\n  network = mlp(36, 16, 2)\n  data = {data}\n  train = {{ optimizer = sgd(lr: 0.1), batch = 16, duration = {iterations} it }}\n  prune = magnitude(global, 50%) for 1 levels\n  rewind = [0 it, 10 it]\n  seeds = 2\n  controls = [random_prune]\n}}\n"
    )
}

/// Writes `file` with the tiny dataset(s) and the experiments; returns the file's name.
fn program(dir: &Path, file: &str, datasets: &[&str], body: &str) -> String {
    let mut text = String::from("import \"stdlib/networks.lth\"\n");
    for d in datasets {
        text += &common::tiny_idx(&dir.join(d), 160, 40)
            .replace("dataset tiny", &format!("dataset {d}"));
    }
    text += body;
    std::fs::write(dir.join(file), text).unwrap();
    file.to_string()
}

/// Every step key in the job scripts under `cache`/slurm, with repeats.
fn submitted_keys(cache: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for run in std::fs::read_dir(cache.join("slurm")).unwrap().flatten() {
        let Ok(files) = std::fs::read_dir(run.path()) else {
            continue;
        };
        for f in files
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "sh"))
        {
            let script = std::fs::read_to_string(f.path()).unwrap();
            let line = script.lines().find(|l| l.starts_with("keys=(")).unwrap();
            keys.extend(
                line.trim_start_matches("keys=(")
                    .trim_end_matches(')')
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
    }
    keys
}

fn steps_in_plan(dir: &Path, file: &str) -> usize {
    let out = lthc(&["plan", "--format", "json", file], dir);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["steps"].as_array().unwrap().len()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sweep_on_slurm_gives_the_results_of_a_local_run() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = program(d, "sweep.lth", &["tiny"], &sweep("small", "tiny", 40));
    let out = lthc(&["run", "-q", "--cache", "local", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = lthc(&["run", "--executor", "slurm", "--cache", "c", &file], d);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("[slurm]"), "progress is shown: {stderr}");
    assert_eq!(results(d, "c", &file), results(d, "local", &file));
    // Every step was submitted once; siblings went in as arrays (fewer submissions than steps).
    let keys = submitted_keys(&d.join("c"));
    let steps = steps_in_plan(d, &file);
    assert_eq!(keys.len(), steps);
    let scripts = std::fs::read_dir(d.join("c/slurm"))
        .unwrap()
        .flatten()
        .flat_map(|r| std::fs::read_dir(r.path()).unwrap().flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "sh"))
        .count();
    assert!(scripts < steps, "{scripts} submissions for {steps} steps");

    // `lthc status` shows it finished; running again submits nothing.
    let out = lthc(&["status", "--cache", "c", &file], d);
    let status = text(&out.stdout);
    assert!(status.contains(&format!("all{steps:>16}")), "{status}");
    let out = lthc(&["run", "--executor", "slurm", "--cache", "c", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("0 steps run"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(submitted_keys(&d.join("c")).len(), steps);

    // Once nothing is left to run, `cache gc` removes the runs' job scripts and logs.
    let out = lthc(&["cache", "gc", "--cache", "c", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Slurm job scripts and logs"),
        "{}",
        text(&out.stdout)
    );
    assert!(submitted_keys(&d.join("c")).is_empty());
    assert_eq!(results(d, "c", &file), results(d, "local", &file));
}

/// Jobs held at submission, released by the test once it has arranged what the jobs will see.
fn release_held_jobs() {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-t", "PD", "-o", "%i|%r"])
        .output()
        .unwrap();
    let held: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.ends_with("|JobHeldUser"))
        .map(|l| l.split('|').next().unwrap().to_string())
        .collect();
    if !held.is_empty() {
        let _ = Command::new("scontrol").arg("release").args(&held).output();
    }
}

#[test]
fn a_failed_job_cancels_what_needs_it_and_a_rerun_finishes_the_sweep() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body = sweep("fine", "tiny", 30) + &sweep("broken", "gone", 30);
    let file = program(d, "both.lth", &["tiny", "gone"], &body);

    // Submitted while `gone` is there; its files vanish before the jobs start (a dataset that
    // the cluster's nodes do not see), so its training jobs fail.
    let child = lthc_cmd(
        &[
            "run",
            "--executor",
            "slurm",
            "--cache",
            "c",
            "--sbatch-flag=--hold",
            &file,
        ],
        d,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let steps = steps_in_plan(d, &file);
    wait_for("the submission", Duration::from_secs(60), || {
        d.join("c/slurm").is_dir() && submitted_keys(&d.join("c")).len() == steps
    });
    std::fs::rename(d.join("gone"), d.join("gone.away")).unwrap();
    let pid = child.id();
    let releaser = std::thread::spawn(move || {
        while Path::new(&format!("/proc/{pid}")).exists() {
            release_held_jobs();
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let out = child.wait_with_output().unwrap();
    releaser.join().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The failure, with the job's own diagnostic and its log.
    assert!(stderr.contains("lth::slurm::job"), "{stderr}");
    assert!(stderr.contains("lth::data::missing"), "{stderr}");
    assert!(stderr.contains("log: "), "{stderr}");
    assert!(
        stderr.contains("cancelled"),
        "dependents are cancelled: {stderr}"
    );
    assert!(stdout.contains("steps failed"), "{stdout}");
    // Nothing is left pending forever.
    let pending = Command::new("squeue")
        .args(["-h", "-t", "PD", "-o", "%r"])
        .output()
        .unwrap();
    assert!(
        !text(&pending.stdout).contains("DependencyNeverSatisfied"),
        "{}",
        text(&pending.stdout)
    );
    // The other experiment finished as if run alone.
    let alone = program(d, "fine.lth", &["tiny"], &sweep("fine", "tiny", 30));
    let out = lthc(&["run", "-q", "--cache", "ref", &alone], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(results(d, "c", &alone), results(d, "ref", &alone));
    // `lthc status` lists the failures with their logs, which `cache gc` keeps.
    let status = text(&lthc(&["status", "--cache", "c", &file], d).stdout);
    assert!(status.contains("lth::data::missing"), "{status}");
    let log = status
        .split("(log: ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let out = lthc(&["cache", "gc", "--cache", "c", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(Path::new(log).is_file(), "{log} was removed");

    // With the dataset back, running again submits only what is missing and finishes.
    std::fs::rename(d.join("gone.away"), d.join("gone")).unwrap();
    let before = submitted_keys(&d.join("c")).len();
    let out = lthc(&["run", "--executor", "slurm", "--cache", "c", &file], d);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = lthc(&["run", "-q", "--cache", "ref_both", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(results(d, "c", &file), results(d, "ref_both", &file));
    let fine_steps = steps_in_plan(d, &alone);
    assert!(submitted_keys(&d.join("c")).len() - before <= steps - fine_steps);
}

#[test]
fn a_job_cancelled_while_training_resumes_from_its_last_checkpoint() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body = "experiment long {\n  network = mlp(36, 256, 256, 2)\n  data = tiny\n  train = { optimizer = sgd(lr: 0.05), batch = 16, duration = 6000 it }\n  prune = magnitude(global, 50%) for 1 levels\n}\n";
    let file = program(d, "long.lth", &["tiny"], body);
    let out = lthc(&["run", "-q", "--cache", "ref", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let child = lthc_cmd(&["run", "--executor", "slurm", "--cache", "c", &file], d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The dense run is training and has saved its progress: cancel its job.
    let steps = d.join("c/steps");
    let mut training = None;
    wait_for(
        "the dense run to save progress",
        Duration::from_secs(120),
        || {
            training = std::fs::read_dir(&steps).ok().and_then(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .find(|p| p.join("resume.ckpt").exists() && !p.join("done").exists())
            });
            training.is_some()
        },
    );
    let training = training.unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&lthc::store::read_checked(&training.join("slurm.json")).unwrap())
            .unwrap();
    let job = record["job"].as_str().unwrap();
    let cancel = Command::new("scancel").arg(job).status().unwrap();
    assert!(cancel.success());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CANCELLED"), "{stderr}");

    // Running again resubmits it, and it resumes where it was.
    let out = lthc(&["run", "--executor", "slurm", "--cache", "c", &file], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record: serde_json::Value =
        serde_json::from_slice(&lthc::store::read_checked(&training.join("slurm.json")).unwrap())
            .unwrap();
    let log = std::fs::read_to_string(record["log"].as_str().unwrap()).unwrap();
    let resumed_at: u64 = log
        .split("resuming from iteration ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the job did not resume: {log}"));
    assert!(resumed_at > 0 && resumed_at < 6000, "{log}");
    assert_eq!(results(d, "c", &file), results(d, "ref", &file));
}

#[test]
fn nothing_is_submitted_twice() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = program(d, "sweep.lth", &["tiny"], &sweep("twice", "tiny", 30));
    let steps = steps_in_plan(d, &file);
    let args = [
        "run",
        "--executor",
        "slurm",
        "--cache",
        "c",
        "--detach",
        &file,
    ];
    let first = lthc(&args, d);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains(&format!("submitted {steps} steps")),
        "{}",
        text(&first.stdout)
    );
    // Detached: a second submission finds every step queued, running or done.
    let second = lthc(&args, d);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("submitted 0 steps"),
        "{}",
        text(&second.stdout)
    );
    // Two waiting runs at once: they share the jobs and both end with the results.
    let spawn = || {
        lthc_cmd(&["run", "--executor", "slurm", "--cache", "c", &file], d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let mut keys = submitted_keys(&d.join("c"));
    assert_eq!(keys.len(), steps);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), steps, "a step was submitted twice");
}

#[test]
fn sbatch_refusing_a_job_is_a_diagnostic() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body = "executor wrong {\n  partition = \"no_such_partition\"\n}\n".to_string()
        + &sweep("small", "tiny", 20);
    let file = program(d, "p.lth", &["tiny"], &body);
    let out = lthc(&["run", "--executor", "wrong", "--cache", "c", &file], d);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lth::slurm::submit"), "{stderr}");
    assert!(
        stderr.contains("no_such_partition") || stderr.contains("partition"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn without_slurm_the_slurm_executor_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = program(d, "p.lth", &["tiny"], &sweep("small", "tiny", 20));
    let empty = tempfile::tempdir().unwrap();
    let out = lthc_cmd(&["run", "--executor", "slurm", "--cache", "c", &file], d)
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lth::slurm::missing"), "{stderr}");
    assert!(stderr.contains("`sbatch` is not on the PATH"), "{stderr}");
    assert!(stderr.contains("ci/slurm.sh up"), "{stderr}");
    // Nothing was trained or submitted.
    assert!(!d.join("c/slurm").exists());

    // Slurm settings on a local run are refused, not ignored.
    let out = lthc(&["run", "--partition", "gpu", "--cache", "c", &file], d);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lth::exec::executor"), "{stderr}");
    assert!(stderr.contains("--executor slurm"), "{stderr}");

    // An executor that is not defined names the ones that are.
    let body = "executor gpu_nodes {\n  gpus = 1\n}\n".to_string() + &sweep("small", "tiny", 20);
    let file = program(d, "q.lth", &["tiny"], &body);
    let out = lthc(&["run", "--executor", "gpu_node", "--cache", "c", &file], d);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lth::exec::executor"), "{stderr}");
    assert!(stderr.contains("gpu_nodes"), "{stderr}");
}
