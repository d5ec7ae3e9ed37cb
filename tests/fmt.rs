//! `lthc fmt`: the shipped files are formatted; formatting is idempotent and changes no
//! meaning (the plan's step keys are the same before and after); `--check` names what it would
//! change; directories stand for the `.lth` files under them.

mod common;

use std::path::{Path, PathBuf};

use common::text;
use lthc::lang::format::format;

fn shipped() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["stdlib", "experiments"] {
        for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "lth") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The plan's step keys (and the diagnostics' codes) of one program.
fn meaning(name: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let (_, checked, diags) = common::check_many(&[(name, text)], &[name]);
    let plan = lthc::plan::build(&checked.experiments);
    (
        plan.steps.iter().map(|s| s.key.clone()).collect(),
        diags.iter().map(|d| d.code.to_string()).collect(),
    )
}

#[test]
fn shipped_files_are_formatted_and_formatting_keeps_their_meaning() {
    let files = shipped();
    assert!(files.len() >= 15);
    for path in files {
        let original = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            format(&original),
            original,
            "{} is not formatted",
            path.display()
        );
        // A badly laid out copy formats back to the file, with the same plan.
        let messy: String = original
            .lines()
            .map(|l| format!("\t {}   \n\n", l.trim_start().replace(" = ", "=")))
            .collect();
        let name = format!(
            "experiments/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        assert_eq!(meaning(&name, &messy), meaning(&name, &original));
        let again = format(&messy);
        assert_eq!(format(&again), again, "{}: not idempotent", path.display());
        assert_eq!(meaning(&name, &again), meaning(&name, &original));
    }
}

#[test]
fn fmt_rewrites_checks_and_takes_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("exps/nested")).unwrap();
    std::fs::create_dir_all(d.join("exps/.lthc")).unwrap();
    let messy = "import \"stdlib/mnist.lth\"\nexperiment e {\nnetwork=lenet   // the paper's\n      data = mnist\ntrain = lenet_adam\n}\n";
    // The space before a trailing comment is the writer's (comments may be aligned by hand).
    let tidy = "import \"stdlib/mnist.lth\"\nexperiment e {\n  network = lenet   // the paper's\n  data    = mnist\n  train   = lenet_adam\n}\n";
    std::fs::write(d.join("exps/a.lth"), messy).unwrap();
    std::fs::write(
        d.join("exps/nested/b.lth"),
        tidy.replace("experiment e", "experiment f"),
    )
    .unwrap();
    // Hidden folders (caches) are not walked.
    std::fs::write(d.join("exps/.lthc/junk.lth"), "not a program {").unwrap();
    std::fs::write(d.join("broken.lth"), "experiment {").unwrap();

    let out = common::lthc(&["fmt", "--check", "exps"], d);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "would reformat exps/a.lth\n");
    assert_eq!(
        std::fs::read_to_string(d.join("exps/a.lth")).unwrap(),
        messy
    );

    let out = common::lthc(&["fmt", "exps"], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(d.join("exps/a.lth")).unwrap(), tidy);
    let out = common::lthc(&["fmt", "--check", "exps"], d);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // A file that does not parse is left alone, with its diagnostic.
    let out = common::lthc(&["fmt", "broken.lth"], d);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("lth::parse::syntax"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("broken.lth")).unwrap(),
        "experiment {"
    );

    // Directories work wherever files are named: both experiments, in path order.
    let out = common::lthc(&["plan", "--summary", "exps"], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let (e, f) = (summary.find("\ne ").unwrap(), summary.find("\nf ").unwrap());
    assert!(e < f, "{summary}");
    let out = common::lthc(&["check", "exps"], d);
    assert!(
        text(&out.stdout).starts_with("ok: 2 files"),
        "{}",
        text(&out.stdout)
    );
    let out = common::lthc(&["check", "empty_dir_missing"], d);
    assert_eq!(out.status.code(), Some(1));
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let out = common::lthc(&["check", "empty"], d);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("holds no .lth files"),
        "{}",
        text(&out.stderr)
    );
}
