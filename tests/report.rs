//! Reports: tables over seeds in every format (golden files), plots as valid SVG and PNG,
//! `lthc report` equal to what `lthc run` printed without training anything, and the HTML page
//! in a real browser.

mod common;

use std::path::{Path, PathBuf};

use common::lthc;
use serde_json::{json, Value};

use lthc::check::PlotSpec;
use lthc::report::{aggregate, format, plot, svg, tickets};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fixed set of results: one experiment, two seeds, IMP and random reinitialisation at two
/// levels, rewind points 0 and 100, one diverged control run.
fn records() -> Vec<Value> {
    let mut out = Vec::new();
    for seed in [1u64, 2] {
        for rewind in [0u64, 100] {
            let s = seed as f64 * 0.002;
            out.push(
                json!({"experiment": "e", "network": "lenet", "dataset": "mnist",
                "parameters": 266610, "rewind_iteration": rewind, "arm": "dense", "seed": seed,
                "level": 0, "density": 1.0, "test_accuracy": 0.98 - s,
                "stability_data_order_l2": 10.0 + seed as f64}),
            );
            for (level, density) in [(1u64, 0.512), (2, 0.262)] {
                let imp = 0.985 - 0.004 * level as f64 - s + rewind as f64 * 4e-5;
                out.push(
                    json!({"experiment": "e", "network": "lenet", "dataset": "mnist",
                    "parameters": 266610, "rewind_iteration": rewind, "arm": "imp", "seed": seed,
                    "level": level, "density": density, "test_accuracy": imp,
                    "stability_data_order_l2": 8.0 - level as f64 + seed as f64}),
                );
                let diverged = seed == 2 && level == 2 && rewind == 0;
                let mut control = json!({"experiment": "e", "network": "lenet", "dataset": "mnist",
                    "parameters": 266610, "rewind_iteration": rewind, "arm": "random_reinit",
                    "seed": seed, "level": level, "density": density,
                    "test_accuracy": if diverged { Value::Null } else { json!(imp - 0.03 * level as f64) }});
                if diverged {
                    control["diverged_at"] = json!(30);
                }
                out.push(control);
            }
        }
    }
    out
}

/// Compares with tests/golden/NAME; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} differs (UPDATE_GOLDEN=1 rewrites it)"
    );
}

#[test]
fn tables_over_seeds_in_every_format() {
    let records = records();
    let rows = ["experiment".to_string(), "level".into()];
    let columns = [
        "density".to_string(),
        "test_accuracy".into(),
        "stability_data_order_l2".into(),
    ];
    let table = aggregate::table(&records, &rows, &columns);
    let tickets = tickets::tickets(&records, 0.0);
    golden(
        "report.txt",
        &format::terminal("A test report", &table, &tickets),
    );
    golden(
        "report.md",
        &format::markdown_file("A test report", &table, &tickets),
    );
    golden("report.csv", &format::csv(&table));
    let json = format::json(
        "t",
        "A test report",
        &table,
        &tickets,
        &["e: 2 results missing: not run yet".into()],
    );
    golden(
        "report.json",
        &(serde_json::to_string_pretty(&json).unwrap() + "\n"),
    );
    // Over seeds only: arm and rewind point join the rows; each row holds its two seeds.
    assert_eq!(
        table.keys,
        ["experiment", "level", "rewind_iteration", "arm"]
    );
    assert!(table.rows.iter().all(|r| r.n == 2));
    // The diverged run is counted and left out of the accuracy mean.
    let diverged: Vec<_> = table.rows.iter().filter(|r| r.diverged > 0).collect();
    assert_eq!(diverged.len(), 1);
    let aggregate::Cell::Num(acc) = &diverged[0].cells[1] else {
        panic!("{:?}", diverged[0])
    };
    assert_eq!(acc.n, 1);
    // IMP at k=100 keeps the dense accuracy down to 26.2%; at k=0 only to 51.2%.
    let imp: Vec<_> = tickets.iter().filter(|t| t.arm == "imp").collect();
    assert_eq!(
        imp.iter().map(|t| t.density).collect::<Vec<_>>(),
        [Some(0.512), Some(0.262)]
    );
    let csv = format::csv(&table);
    assert!(csv.starts_with(
        "experiment,level,rewind_iteration,arm,n,diverged,density_mean,density_sd,density_n,"
    ));
}

fn accuracy_plot() -> plot::Plot {
    let spec = PlotSpec {
        x: "density".into(),
        y: "test_accuracy".into(),
        by: vec!["arm".into()],
        log_x: true,
    };
    plot::from_spec(&spec, &records())
}

#[test]
fn plots_are_valid_svg_and_png() {
    let p = accuracy_plot();
    // One line per arm and rewind point; the dense network is a band, not a line.
    let labels: Vec<&str> = p.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "imp · k=0",
            "random_reinit · k=0",
            "imp · k=100",
            "random_reinit · k=100"
        ]
    );
    assert_eq!(p.bands.len(), 1);
    assert!((p.bands[0].y.mean - 0.977).abs() < 1e-9);
    let svg = svg::render(&p, "Accuracy & density");
    let tree = resvg::usvg::Tree::from_str(&svg, &Default::default()).expect("valid SVG");
    assert_eq!(tree.size().width() as u32, svg::WIDTH);
    for needed in [
        "Percent of weights remaining",
        "Test accuracy (%)",
        "random_reinit · k=100",
        "dense · e",
        "Accuracy &amp; density",
    ] {
        assert!(svg.contains(needed), "{needed} not in the SVG");
    }
    // 100% is on the left: the first series' points run right to left as density falls.
    let png = lthc::report::png::render(&svg).unwrap();
    let image = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(image.width(), 2 * svg::WIDTH);
    assert_eq!(image.height(), 2 * svg::height(&p));
    let inked = image
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    let total = (image.width() * image.height()) as usize;
    assert!(
        inked > total / 100 && inked < total / 2,
        "{inked} of {total}"
    );
    // Text is drawn (the embedded font): the legend's column has dark pixels.
    let legend_ink = (2 * 520..2 * 740)
        .flat_map(|x| (2 * 44..2 * 60).map(move |y| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|&c| c < 120))
        .count();
    assert!(legend_ink > 50, "legend text not drawn: {legend_ink}");
}

#[test]
fn default_plots_follow_what_was_measured() {
    let mut records = records();
    // Interpolation measured for IMP: the test error at 3 points of the line per record.
    for r in records.iter_mut().filter(|r| r["arm"] == "imp") {
        r["interpolation_test_errors"] = json!([0.02, 0.05, 0.02]);
    }
    let files: Vec<String> = plot::defaults(&records)
        .iter()
        .map(|s| plot::from_spec(s, &records).file)
        .collect();
    assert_eq!(
        files,
        [
            "test_accuracy_vs_density",
            "stability_data_order_l2_vs_rewind_iteration",
            "test_accuracy_vs_rewind_iteration"
        ]
    );
    assert!(plot::along_line(&records, "interpolation_train_errors").is_none());
    let line = plot::along_line(&records, "interpolation_test_errors").unwrap();
    // One series per rewind point and level of IMP, from α = 0 to 1.
    assert_eq!(line.series.len(), 4);
    let xs: Vec<f64> = line.series[0].points.iter().map(|p| p.x).collect();
    assert_eq!(xs, [0.0, 0.5, 1.0]);
    assert!((line.series[0].points[1].y.mean - 0.05).abs() < 1e-12);
    let svg = svg::render(&line, "Along the line");
    resvg::usvg::Tree::from_str(&svg, &Default::default()).expect("valid SVG");
    assert!(svg.contains("Interpolation α") && svg.contains("Test error (%)"));
}

/// A small experiment with a report, on generated data.
fn project(dir: &Path) -> PathBuf {
    let tiny = common::tiny_idx(&dir.join("tiny"), 160, 40);
    let file = dir.join("r.lth");
    std::fs::write(
        &file,
        format!(
            "import \"stdlib/networks.lth\"\n{tiny}\
             experiment small {{\n  network = mlp(36, 16, 2)\n  data = tiny\n  train = {{ optimizer = sgd(lr: 0.1), batch = 16, duration = 40 it }}\n  prune = magnitude(global, 50%) for 2 levels\n  rewind = [0 it, 10 it]\n  seeds = 1..2\n  controls = [random_reinit]\n  measure = [accuracy, stability(data_order)]\n}}\n\
             report small_report {{\n  title = \"Small\"\n  experiments = [small]\n}}\n"
        ),
    )
    .unwrap();
    file
}

fn step_count(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("steps")).map_or(0, |d| d.count())
}

#[test]
fn report_equals_what_run_printed_and_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    // Before any run: every result is missing, and the report is still written.
    let out = lthc(&["report", "--cache", "c", "r.lth"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("missing: small: 20 results missing: not run yet"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(step_count(&dir.path().join("c")), 0);

    let run = lthc(&["run", "-q", "--cache", "c", "r.lth"], dir.path());
    assert!(run.status.success(), "{}", text(&run.stderr));
    let printed = text(&run.stdout);
    let steps = step_count(&dir.path().join("c"));
    let report = lthc(&["report", "--cache", "c", "--html", "r.lth"], dir.path());
    assert!(report.status.success(), "{}", text(&report.stderr));
    let reported = text(&report.stdout);
    assert_eq!(step_count(&dir.path().join("c")), steps);
    // What `run` printed after its summary lines is the report, written the same way.
    let table = printed.split_once("\n\n").map(|x| x.1).unwrap_or_default();
    assert_eq!(
        format!("\n{table}"),
        reported.replace("  reports/small_report/index.html\n", "")
    );
    assert!(reported.contains("winning tickets"), "{reported}");
    let out = dir.path().join("reports/small_report");
    for f in [
        "table.md",
        "table.csv",
        "report.json",
        "test_accuracy_vs_density.svg",
        "test_accuracy_vs_density.png",
        "stability_data_order_l2_vs_rewind_iteration.png",
        "index.html",
    ] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
    // Every plot's PNG decodes at twice its SVG's size and is not blank.
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "png") {
            let png = image::open(&path).unwrap();
            let svg = std::fs::read_to_string(path.with_extension("svg")).unwrap();
            let tree = resvg::usvg::Tree::from_str(&svg, &Default::default()).unwrap();
            assert_eq!(png.width(), 2 * tree.size().width() as u32);
            assert_eq!(png.height(), 2 * tree.size().height() as u32);
            let rgb = png.to_rgb8();
            let inked = rgb
                .pixels()
                .filter(|p| p.0.iter().any(|&c| c < 200))
                .count();
            assert!(
                inked > rgb.pixels().len() / 100,
                "{} is blank",
                path.display()
            );
        }
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["missing"], json!([]));
    assert_eq!(json["rows"].as_array().unwrap().len(), 10);
}

#[test]
fn missing_results_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let absent = format!(
        "dataset absent {{\n  format = cifar10_binary\n  source = \"{}\"\n  shape = [3, 32, 32]\n  classes = 10\n  train_size = 50000\n  test_size = 10000\n  mean = [0.5, 0.5, 0.5]\n  std = [0.25, 0.25, 0.25]\n}}\n",
        dir.path().join("no-such-dir").display()
    );
    std::fs::write(
        dir.path().join("a.lth"),
        format!(
            "import \"stdlib/networks.lth\"\n{absent}\
             experiment on_absent {{\n  network = mlp(3072, 8, 10)\n  data = absent\n  train = {{ optimizer = sgd(lr: 0.1), batch = 16, duration = 20 it }}\n}}\n\
             report r {{\n  experiments = [on_absent]\n}}\n"
        ),
    )
    .unwrap();
    // Before any run: the dataset is not there, and lthc cannot fetch it.
    let out = lthc(&["report", "--cache", "c", "a.lth"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("on_absent: 1 result missing: dataset `absent` is not in")
            && stdout.contains("[lth::data::missing]"),
        "{stdout}"
    );
    // After a run: the failed step and its diagnostic.
    let run = lthc(&["run", "-q", "--cache", "c", "a.lth"], dir.path());
    assert_eq!(run.status.code(), Some(1));
    let stdout = text(&lthc(&["report", "--cache", "c", "a.lth"], dir.path()).stdout);
    assert!(
        stdout.contains("on_absent: 1 result missing: train dense mlp(3072, 8, 10) on absent")
            && stdout.contains("failed [lth::data::missing]"),
        "{stdout}"
    );
}

/// Debian's Chromium, where it is installed.
fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

#[test]
fn the_html_page_opens_cleanly_in_a_browser() {
    let Some(browser) = chromium() else {
        // .ci/run installs Chromium and sets LTHC_REQUIRE_BROWSER: there, its absence fails.
        assert!(
            std::env::var_os("LTHC_REQUIRE_BROWSER").is_none(),
            "Chromium is not installed"
        );
        eprintln!("skipped: no Chromium (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let run = lthc(
        &["run", "-q", "--html", "--cache", "c", "r.lth"],
        dir.path(),
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    let page = dir.path().join("reports/small_report/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && html.contains("experiment small {"));
    let shot = dir.path().join("shot.png");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let image = image::open(&shot).unwrap().to_rgb8();
    let inked = image
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    assert!(
        inked > (image.width() * image.height()) as usize / 200,
        "the screenshot is blank"
    );
}
