//! Golden tests for diagnostics: each bad input must produce a diagnostic with the expected
//! stable code, pointing at the expected text, with the expected message, a label and a help.

mod common;

use common::*;

struct Case {
    name: &'static str,
    src: String,
    code: &'static str,
    span: &'static str,
    message: &'static str,
}

fn case(
    name: &'static str,
    src: impl Into<String>,
    code: &'static str,
    span: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        src: src.into(),
        code,
        span,
        message,
    }
}

fn recipe(body: &str) -> String {
    format!("recipe r {{\n{body}\n}}\n")
}

fn cases() -> Vec<Case> {
    vec![
        case("syntax: missing value", "experiment e {\n  network =\n}\n", "lth::parse::syntax", "}", "expected a value, found `}`"),
        case("syntax: colon instead of equals", "recipe r {\n  batch: 60\n}\n", "lth::parse::syntax", ":", "expected"),
        case("syntax: unclosed block", "network n on [4] {\n  dense(3)\n", "lth::parse::syntax", "", "found end of file"),
        case("reserved word as a name", "experiment sweep {\n}\n", "lth::parse::syntax", "sweep", "expected a name, found `sweep`"),
        case("number out of range", recipe("  optimizer = sgd(lr: 1e999)\n  batch = 1\n  duration = 1 it"), "lth::parse::number", "1e999", "is not a number"),
        case(
            "unknown network with suggestion",
            lenet_experiment("").replace("network = lenet", "network = lenett"),
            "lth::name::unknown",
            "lenett",
            "unknown network `lenett`",
        ),
        case(
            "duplicate definition",
            format!("{}{}", recipe("  optimizer = sgd(lr: 0.1)\n  batch = 1\n  duration = 1 it"), recipe("  optimizer = sgd(lr: 0.1)\n  batch = 2\n  duration = 1 it")),
            "lth::name::duplicate",
            "r",
            "`r` is defined twice",
        ),
        case("import not found", "import \"nope.lth\"\n", "lth::import::not_found", "\"nope.lth\"", "cannot find imported file `nope.lth`"),
        case(
            "learning rate with a duration unit",
            recipe("  optimizer = sgd(lr: 3 ep)\n  batch = 1\n  duration = 1 it"),
            "lth::unit::wrong",
            "3 ep",
            "expected a plain number, found a duration",
        ),
        case("duration without unit", recipe("  optimizer = sgd(lr: 0.1)\n  batch = 1\n  duration = 500"), "lth::unit::missing", "500", "duration needs a unit"),
        case("warmup as a percentage", recipe("  optimizer = sgd(lr: 0.1)\n  batch = 1\n  duration = 5 it\n  warmup = 5%"), "lth::unit::wrong", "5%", "is a duration, not a percentage"),
        case(
            "pruning fraction above one",
            "pruning p = magnitude(global, 1.2) for 2 levels\n",
            "lth::range::fraction",
            "1.2",
            "must be between 0 and 1",
        ),
        case("pruning percentage above 100", "pruning p = magnitude(global, 120%)\n", "lth::range::fraction", "120%", "found 120%"),
        case("pruning everything", "pruning p = magnitude(global, 100%)\n", "lth::range::fraction", "100%", "would remove every weight"),
        case(
            "rewind point after the end of training",
            lenet_experiment("  rewind = [0 it, 60k it]"),
            "lth::range::rewind_after_end",
            "60k it",
            "after the end of training (iteration 50000)",
        ),
        case(
            "rewind point in epochs after the end",
            lenet_experiment("  rewind = [100 ep]"),
            "lth::range::rewind_after_end",
            "100 ep",
            "is after the end of training",
        ),
        case(
            "resnet depth that does not fit",
            "import \"stdlib/cifar.lth\"\nexperiment e {\n  network = resnet_cifar(depth: 57)\n  data = cifar10\n  train = resnet20_standard\n}\n",
            "lth::range::require",
            "resnet_cifar(depth: 57)",
            "a CIFAR ResNet's depth is 6n + 2",
        ),
        case("unknown field", lenet_experiment("  seed = 1"), "lth::name::unknown_field", "seed", "experiment `e` has no field `seed`"),
        case(
            "missing field",
            "import \"stdlib/mnist.lth\"\nexperiment e {\n  network = lenet\n  train = lenet_adam\n}\n",
            "lth::name::missing_field",
            "e",
            "needs a `data` field",
        ),
        case(
            "a network where a dataset belongs",
            lenet_experiment("").replace("data    = mnist", "data    = lenet"),
            "lth::name::wrong_kind",
            "lenet",
            "`lenet` is a network, but a dataset is expected here",
        ),
        case("unknown layer", "network n on [4] {\n  dens(10)\n}\n", "lth::name::unknown", "dens", "unknown layer or network `dens`"),
        case("dense on an image", "network n on [1, 28, 28] {\n  dense(10)\n}\n", "lth::shape::mismatch", "dense(10)", "`dense` needs a flat input"),
        case("kernel larger than the input", "network n on [1, 4, 4] {\n  conv(8, 7), flatten, dense(2)\n}\n", "lth::shape::mismatch", "conv(8, 7)", "does not fit an input of size 4"),
        case(
            "misspelt optimizer argument",
            recipe("  optimizer = sgd(lr: 0.1, momentun: 0.9)\n  batch = 1\n  duration = 1 it"),
            "lth::name::unknown_argument",
            "momentun",
            "`sgd` has no argument `momentun`",
        ),
        case("missing layer argument", "network n on [1, 8, 8] {\n  conv(8), flatten, dense(2)\n}\n", "lth::type::arity", "conv(8)", "`conv` needs the argument `kernel`"),
        case("string where a number belongs", recipe("  optimizer = sgd(lr: 0.1)\n  batch = \"big\"\n  duration = 1 it"), "lth::type::mismatch", "\"big\"", "expected an integer, found a string"),
        case("unknown optimizer", recipe("  optimizer = adamw(lr: 1e-3)\n  batch = 1\n  duration = 1 it"), "lth::name::unknown", "adamw", "unknown optimizer `adamw`"),
        case(
            "unknown layer in per-layer rates",
            lenet_experiment("  prune = magnitude(layerwise, 20%, layers: { outptu = 10% }) for 2 levels"),
            "lth::name::unknown_layer",
            "outptu",
            "has no prunable layer `outptu`",
        ),
        case(
            "sweep outside an experiment",
            recipe("  optimizer = sgd(lr: 0.1)\n  batch = sweep [1, 2]\n  duration = 1 it"),
            "lth::type::sweep_place",
            "sweep [1, 2]",
            "`sweep` is only allowed in an experiment",
        ),
        case("recursive network", "network a on [4] {\n  dense(2)\n  a\n}\n", "lth::net::recursion", "a", "contains itself"),
        case(
            "derivation cycle",
            "recipe a = b with { batch = 1 }\nrecipe b = a with { batch = 2 }\n",
            "lth::name::derive_cycle",
            "a",
            "is derived from itself",
        ),
        case("division by zero", "network n(k = 0) on [4] {\n  dense(4 / k)\n}\n", "lth::range::arithmetic", "4 / k", "division by zero"),
        case(
            "control without pruning",
            lenet_experiment("  controls = [random_reinit]"),
            "lth::name::missing_field",
            "random_reinit",
            "is a control for pruned networks",
        ),
        case("field given twice", recipe("  optimizer = sgd(lr: 0.1)\n  batch = 1\n  batch = 2\n  duration = 1 it"), "lth::name::duplicate_field", "batch", "field `batch` is given twice"),
        case("negative learning rate", recipe("  optimizer = sgd(lr: -0.1)\n  batch = 1\n  duration = 1 it"), "lth::range::value", "-0.1", "must be positive"),
        case(
            "milestones out of order",
            lenet_experiment("").replace("train   = lenet_adam", "train   = lenet_adam with { schedule = step(0.1, at: [25k it, 20k it]) }"),
            "lth::range::value",
            "20k it",
            "milestones must be in increasing order",
        ),
        case(
            "unreachable target density",
            lenet_experiment("  prune = magnitude(global, 20%, exclude: [output]) until 0.1% density"),
            "lth::range::value",
            "0.1%",
            "density is not reached",
        ),
        case("misspelt clause word", lenet_experiment("  prune = magnitude(global, 20%) for 3 levls"), "lth::name::unknown", "levls", "expected `levels` after the value"),
        case("unknown measurement", lenet_experiment("  measure = [acuracy]"), "lth::name::unknown", "acuracy", "unknown measurement `acuracy`"),
        case(
            "residual shortcut of the wrong shape",
            "network n on [4, 8, 8] {\n  residual {\n    conv(8, 3, padding: 1)\n    shortcut { conv(4, 1) }\n  }\n  flatten, dense(2)\n}\n",
            "lth::shape::mismatch",
            "shortcut { conv(4, 1) }",
            "the shortcut gives [4, 8, 8] but the main path gives [8, 8, 8]",
        ),
        case("holdout too large", "dataset d {\n  format = idx\n  shape = [4]\n  classes = 2\n  train_size = 10\n  test_size = 5\n  holdout = 10\n}\n", "lth::range::value", "10", "holdout (10) must be smaller than train_size (10)"),
        case("unknown dataset format", "dataset d {\n  format = csv\n  shape = [4]\n  classes = 2\n  train_size = 10\n  test_size = 5\n}\n", "lth::name::unknown", "csv", "unknown dataset format `csv`"),
        case("executor memory not in sbatch's notation", "executor c {\n  memory = \"16GB\"\n}\n", "lth::range::value", "\"16GB\"", "`16GB` is not a memory size"),
        case("executor time limit with a unit", "executor c {\n  time = \"4h\"\n}\n", "lth::range::value", "\"4h\"", "`4h` is not a Slurm time limit"),
        case("executor field misspelt", "executor c {\n  partiton = \"gpu\"\n}\n", "lth::name::unknown_field", "partiton", "partiton"),
        case("executor flag that is not an option", "executor c {\n  flags = [\"qos=high\"]\n}\n", "lth::range::value", "\"qos=high\"", "is not an sbatch option"),
        case("executor with no CPUs", "executor c {\n  cpus = 0\n}\n", "lth::range::value", "0", "cpus must be at least 1"),
        case("unknown result field in a report", lenet_experiment("") + "report r {\n  experiments = [e]\n  columns = [acc]\n}\n", "lth::name::unknown", "acc", "unknown result field `acc`"),
    ]
}

#[test]
fn every_bad_input_gets_its_diagnostic() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let (prog, _, diags) = check_one(&c.src);
        let found = diags.iter().any(|d| {
            d.code == c.code
                && span_text(&prog, d) == c.span
                && d.message.contains(c.message)
                && d.help.is_some()
                && !d.label.is_empty()
        });
        if !found {
            let got: Vec<String> = diags
                .iter()
                .map(|d| {
                    format!(
                        "{} at {:?}: {} (help: {:?})",
                        d.code,
                        span_text(&prog, d),
                        d.message,
                        d.help
                    )
                })
                .collect();
            failures.push(format!(
                "{}:\n  want {} at {:?}: {}\n  got {:#?}",
                c.name, c.code, c.span, c.message, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reserved_words_are_explained() {
    let (_, _, diags) = check_one("experiment sweep {\n}\n");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("`sweep` is a reserved word: choose another name")
    );
}

#[test]
fn suggestions_name_the_closest_definition() {
    let (_, _, diags) =
        check_one(&lenet_experiment("").replace("network = lenet", "network = lenett"));
    let d = diags
        .iter()
        .find(|d| d.code == "lth::name::unknown")
        .expect("a diagnostic");
    assert_eq!(d.help.as_deref(), Some("did you mean `lenet`?"));
    let (_, _, diags) = check_one(&lenet_experiment("  seed = 1"));
    let d = diags
        .iter()
        .find(|d| d.code == "lth::name::unknown_field")
        .expect("a diagnostic");
    assert_eq!(d.help.as_deref(), Some("did you mean `seeds`?"));
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let src = lenet_experiment("  rewind = [60k it]\n  seeds = -1\n  measure = [acuracy]");
    let (_, _, diags) = check_one(&src);
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"lth::range::rewind_after_end"), "{codes:?}");
    assert!(codes.contains(&"lth::type::mismatch"), "{codes:?}");
    assert!(codes.contains(&"lth::name::unknown"), "{codes:?}");
}

#[test]
fn import_cycles_are_reported_at_the_closing_import() {
    let files = [
        ("a.lth", "import \"b.lth\"\n"),
        ("b.lth", "import \"a.lth\"\n"),
    ];
    let (prog, _, diags) = check_many(&files, &["a.lth"]);
    let d = diags
        .iter()
        .find(|d| d.code == "lth::import::cycle")
        .expect("a cycle diagnostic");
    assert_eq!(prog.sources.get(d.file.unwrap()).name, "b.lth");
    assert_eq!(span_text(&prog, d), "\"a.lth\"");
    assert!(d.message.contains("a.lth → b.lth → a.lth"), "{}", d.message);
}

#[test]
fn names_from_files_not_imported_are_refused() {
    let files = [
        ("data.lth", "dataset tiny {\n  format = idx\n  shape = [4]\n  classes = 2\n  train_size = 10\n  test_size = 5\n}\n"),
        ("main.lth", "import \"stdlib/networks.lth\"\nimport \"stdlib/recipes.lth\"\nexperiment e {\n  network = mlp(4, 2)\n  data = tiny\n  train = lenet_adam\n}\n"),
    ];
    let (prog, _, diags) = check_many(&files, &["data.lth", "main.lth"]);
    let d = diags
        .iter()
        .find(|d| d.code == "lth::name::not_imported")
        .expect("a diagnostic");
    assert_eq!(span_text(&prog, d), "tiny");
    assert_eq!(
        d.help.as_deref(),
        Some("add `import \"data.lth\"` at the top of this file")
    );
}

#[test]
fn json_diagnostics_carry_code_span_and_help() {
    let (prog, _, diags) = check_one(&lenet_experiment("  rewind = [60k it]"));
    let v = lthc::diag::render_json(&diags, &prog.sources);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "lth::range::rewind_after_end");
    assert_eq!(d["file"], "main.lth");
    assert_eq!(d["span"]["line"], 7);
    assert_eq!(d["span"]["column"], 13);
    assert_eq!(d["span"]["length"], 6);
    assert!(d["help"].as_str().unwrap().contains("50000 iterations"));
}

#[test]
fn rendered_reports_show_code_label_and_help() {
    let (prog, _, diags) = check_one(&lenet_experiment("  rewind = [60k it]"));
    let text = lthc::diag::render_report(&diags, &prog.sources, false);
    assert!(text.contains("lth::range::rewind_after_end"), "{text}");
    assert!(text.contains("main.lth:7:13"), "{text}");
    assert!(text.contains("past the end"), "{text}");
    assert!(
        text.contains("help: training lasts 50000 iterations"),
        "{text}"
    );
}

#[test]
fn an_executor_definition_becomes_the_jobs_settings() {
    let (_, checked, diags) = check_one(
        "executor cluster {\n  partition = \"gpu\"\n  gpus = 2\n  cpus = 8\n  memory = \"32G\"\n  time = \"1-00:00:00\"\n  flags = [\"--qos=high\"]\n}\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let e = &checked.executors[0];
    assert_eq!(e.name, "cluster");
    // GPUs asked for: the jobs train on CUDA.
    assert_eq!(e.device.as_deref(), Some("cuda"));
    assert_eq!(
        e.resources.sbatch_flags(),
        [
            "--partition=gpu",
            "--gres=gpu:2",
            "--cpus-per-task=8",
            "--mem=32G",
            "--time=1-00:00:00",
            "--qos=high"
        ]
    );
}
