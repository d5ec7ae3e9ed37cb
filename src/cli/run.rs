//! `lthc run`, `lthc results`, `lthc data fetch`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::commands::{checked, emit};
use super::work;
use super::Format;
use crate::diag::{code, render_report, Diag};
use crate::exec::{results, Executor};
use crate::plan::{self, Plan};
use crate::train::{Progress, TrainBackend};

/// The cache: `--cache`, else `$LTHC_CACHE`, else `.lthc/` next to the first file.
pub fn cache_dir(explicit: Option<PathBuf>, files: &[PathBuf]) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("LTHC_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| {
            files
                .first()
                .and_then(|f| f.parent())
                .unwrap_or(Path::new("."))
                .join(".lthc")
        })
}

fn fail(d: Diag, color: bool) -> i32 {
    eprint!("{}", render_report(&[d], &Default::default(), color));
    1
}

/// `lthc run`'s options.
pub struct RunOptions {
    pub cache: Option<PathBuf>,
    pub data: Option<PathBuf>,
    /// `None`: the executor's, else `cpu`.
    pub device: Option<String>,
    pub jobs: Option<usize>,
    pub quiet: bool,
    pub strict: bool,
    /// Reports' output directory.
    pub out: Option<PathBuf>,
    pub html: bool,
    /// `local` (the default), `slurm`, or the name of an `executor` definition.
    pub executor: Option<String>,
    pub slurm: super::slurm::SlurmFlags,
}

pub fn run(files: &[PathBuf], o: RunOptions, color: bool) -> i32 {
    let (prog, c) = match checked(files, Format::Text, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let p = plan::build(&c.experiments);
    let cache = cache_dir(o.cache, files);
    // Decided before anything starts rayon's global pool, whose size RAYON_NUM_THREADS fixes.
    if let Some(j) = o.jobs {
        std::env::set_var("LTHC_JOBS", j.max(1).to_string());
    } else if std::env::var_os("LTHC_JOBS").is_none() {
        let done = |key: &str| cache.join("steps").join(key).join("done").is_file();
        let side_by_side = crate::exec::trainings_side_by_side(&p, done).max(1);
        std::env::set_var("LTHC_JOBS", self::jobs().min(side_by_side).to_string());
    }
    if self::jobs() > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let out = super::report::out_dir(o.out, files);
    on_interrupt();
    let data = o.data.unwrap_or_else(crate::data::data_dir);
    let progress = if o.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Progress::Quiet
    } else {
        Progress::Bar
    };
    let setup = Setup {
        cache: cache.clone(),
        data: data.clone(),
        progress,
        quiet: o.quiet,
        strict: o.strict,
        color,
    };
    let outcome = match o.executor.as_deref() {
        None | Some("local") => o
            .slurm
            .refuse_locally()
            .and_then(|()| run_here(&p, setup, o.device.as_deref().unwrap_or("cpu"), files)),
        Some(name) => {
            match super::slurm::run(files, &c, &p, setup, name, o.device.as_deref(), &o.slurm) {
                Ok(Some(summary)) => Ok(summary),
                Ok(None) => return 0,
                Err(d) => Err(d),
            }
        }
    };
    match outcome {
        Ok(summary) => {
            let (records, _) = results::collect(&p, &cache);
            emit(&summary_text(&p, &summary));
            let inputs = crate::report::Inputs {
                plan: &p,
                cache: &cache,
                data_dir: &data,
                records: &records,
            };
            match super::report::render(&prog, &c, &inputs, &out, o.html) {
                Ok(text) => emit(&text),
                Err(d) => return fail(*d, color),
            }
            i32::from(!summary.failed.is_empty())
        }
        Err(d) if d.code == code::EXEC_INTERRUPTED => {
            fail(*d, color);
            130
        }
        Err(d) => fail(*d, color),
    }
}

/// Runs the plan on this machine's `device`.
fn run_here(
    p: &Plan,
    setup: Setup,
    device: &str,
    files: &[PathBuf],
) -> Result<crate::exec::Summary, Box<Diag>> {
    // Worker processes on the CPU; threads elsewhere (a process per GPU context is untested).
    let processes = (device == "cpu").then_some(files);
    super::device::dispatch(
        device,
        Execute {
            plan: p,
            setup,
            processes,
        },
    )
}

/// [`execute`] on whichever backend the device names.
struct Execute<'a> {
    plan: &'a Plan,
    setup: Setup,
    /// The files, where the extra workers are to be processes (`lthc work`) rather than threads.
    processes: Option<&'a [PathBuf]>,
}

impl super::device::OnDevice for Execute<'_> {
    type Output = crate::exec::Summary;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Self::Output, Box<Diag>> {
        execute::<B>(self.plan, self.setup, device, self.processes)
    }
}

/// The first Ctrl-C asks the training loops to save and stop (the run then says how to
/// resume); a second one exits at once — still safe, as every write is atomic.
pub(super) fn on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if crate::train::stop::requested() {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: saving; press Ctrl-C again to stop at once");
        crate::train::stop::request();
    });
}

/// The end of a run: what ran, what came from the cache, what failed and what it stopped.
pub(super) fn summary_text(p: &Plan, s: &crate::exec::Summary) -> String {
    let mut out = format!(
        "{} steps run, {} from the cache; {} iterations trained now, {} served from the cache\n",
        s.ran,
        s.cached,
        plan::thousands(s.trained_iterations),
        plan::thousands(s.cached_iterations)
    );
    out += &format!(
        "the experiments request {} iterations (each rewind point and seed on its own, nothing shared); the plan trains {}\n",
        plan::thousands(p.totals.requested_iterations),
        plan::thousands(p.totals.planned_iterations)
    );
    if !s.failed.is_empty() {
        let skipped = p
            .steps
            .len()
            .saturating_sub(s.ran + s.cached + s.failed.len());
        out += &format!(
            "{} steps failed, {skipped} skipped because they need them; run again to retry them:\n",
            s.failed.len()
        );
        for f in &s.failed {
            out += &format!("  {} [{}]: {}\n", f.label, f.code, f.message);
        }
    }
    out
}

/// What every backend's run needs besides the plan.
pub(super) struct Setup {
    pub cache: PathBuf,
    pub data: PathBuf,
    pub progress: Progress,
    /// `--quiet`: no progress lines at all (`progress` is also quiet when stderr is no terminal).
    pub quiet: bool,
    pub strict: bool,
    pub color: bool,
}

/// Checks the datasets, then runs the plan with `jobs()` workers: this process's, and either
/// threads or (given the files) `lthc work` processes for the others; per-step locks keep them
/// (and other runs) from computing a step twice.
fn execute<B: TrainBackend>(
    p: &Plan,
    setup: Setup,
    device: B::Device,
    processes: Option<&[PathBuf]>,
) -> Result<crate::exec::Summary, Box<Diag>> {
    let mut first = Executor::<B>::new(setup.cache, setup.data, device, setup.progress);
    preflight(&mut first, p, setup.strict, setup.color)?;
    let n = jobs();
    let mut workers = match processes {
        Some(files) if n > 1 && std::env::current_exe().is_ok_and(|e| work::is_lthc(&e)) => {
            let job = super::RunJob {
                files: files.to_vec(),
                cache: first.cache.clone(),
                data: first.data_dir.clone(),
                device: "cpu".into(),
                run: first.run_id.clone(),
            };
            work::Workers::spawn(n - 1, &job, "process", &work::plan_digest(p))
        }
        _ => work::Workers::none(),
    };
    let threads = n - workers.len();
    let outcomes: Vec<Result<crate::exec::Summary, crate::exec::ExecError>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let progress = if w == 0 {
                        setup.progress
                    } else {
                        Progress::Quiet
                    };
                    let mut ex = first.worker(format!("worker{w}"), progress);
                    scope.spawn(move || ex.run(p))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Ok(Default::default())))
                .collect()
        });
    let mut total = crate::exec::Summary::default();
    for o in outcomes {
        // Returning drops `workers`, which stops them (they save) and waits for them.
        let s = o.map_err(|e| Box::new(e.to_diag()))?;
        total.ran += s.ran;
        total.trained_iterations += s.trained_iterations;
        total.failed.extend(s.failed);
    }
    if crate::train::stop::requested() {
        workers.stop();
    }
    let theirs = workers.finish(setup.color)?;
    total.ran += theirs.ran;
    total.trained_iterations += theirs.trained_iterations;
    // The workers' failures are in the cache, under this run's id.
    for step in &p.steps {
        let dir = first.step_dir(&step.key);
        if crate::exec::failure::failed_in(&dir, &first.run_id) {
            if let Some(f) = crate::exec::failure::read(&dir) {
                if !total.failed.iter().any(|g| g == &f) {
                    total.failed.push(f);
                }
            }
        }
    }
    let done: Vec<_> = p.steps.iter().filter(|s| first.is_done(&s.key)).collect();
    total.cached = done.len().saturating_sub(total.ran);
    total.cached_iterations = done
        .iter()
        .map(|s| s.iterations)
        .sum::<u64>()
        .saturating_sub(total.trained_iterations);
    Ok(total)
}

/// Loads the datasets the plan needs and says which are missing; with `strict`, a missing one
/// stops the run before anything starts.
pub(super) fn preflight<B: TrainBackend>(
    ex: &mut Executor<B>,
    p: &Plan,
    strict: bool,
    color: bool,
) -> Result<(), Box<Diag>> {
    let diags: Vec<Diag> = ex.preflight(p).iter().map(|u| u.to_diag()).collect();
    if diags.is_empty() {
        return Ok(());
    }
    eprint!("{}", render_report(&diags, &Default::default(), color));
    if strict {
        return Err(Box::new(
            Diag::global(
                code::EXEC_STRICT,
                format!(
                    "{} datasets are missing; nothing was run (--strict)",
                    diags.len()
                ),
            )
            .help("provide the datasets, or run without --strict to run everything else"),
        ));
    }
    Ok(())
}

/// Workers: `LTHC_JOBS` (set from `--jobs`, or by `run` to one per core but no more than the
/// plan trains side by side), else one per core. With several, each training step runs
/// single-threaded: two models side by side train about twice as fast, a second thread
/// gains LeNet-300-100 ~1.2x. Lending an idle core's spinning helper to the one step that
/// trains alone (a sweep's dense run, its last chain; git branch `exp-share`) made the dense
/// run ~20% shorter but the sweep barely: 7.12 against 7.26 s (medians of seven, worker
/// processes) for 0.9 s more CPU, and slower with workers as threads while the host took
/// 20–37% of the VM's time (9.9–10.7 against 8.5–9.2 s). Not kept. A single chain of steps
/// (one seed, one rewind point) gets one worker on all cores instead (ResNet-20: 259–300
/// against 158–185 ex/s on two threads and one, measured on the 2-core development machine).
fn jobs() -> usize {
    std::env::var("LTHC_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// Test accuracy in percent, or where the run diverged.
fn accuracy(r: &Value) -> String {
    match (r["test_accuracy"].as_f64(), r["diverged_at"].as_u64()) {
        (_, Some(at)) => format!("div@{at}"),
        (Some(a), None) => format!("{:.2}%", a * 100.0),
        (None, None) => "-".into(),
    }
}

/// One line per record: what a researcher looks at first.
pub fn results_table(records: &[Value]) -> String {
    let mut out = String::new();
    let mut current = String::new();
    for r in records {
        let exp = r["experiment"].as_str().unwrap_or("");
        if exp != current {
            current = exp.to_string();
            out += &format!(
                "\n{exp} ({} on {})\n",
                r["network"].as_str().unwrap_or(""),
                r["dataset"].as_str().unwrap_or("")
            );
            out += &format!(
                "  {:>4} {:>7} {:>5} {:<14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}\n",
                "seed",
                "rewind",
                "level",
                "arm",
                "density",
                "acc",
                "prune L2",
                "order L2",
                "order °",
                "barrier"
            );
        }
        out += &format!(
            "  {:>4} {:>7} {:>5} {:<14} {:>7.2}% {:>8} {:>9} {:>9} {:>9} {:>8}\n",
            r["seed"].as_u64().unwrap_or(0),
            r["rewind_iteration"].as_u64().unwrap_or(0),
            r["level"].as_u64().unwrap_or(0),
            r["arm"].as_str().unwrap_or(""),
            r["density"].as_f64().unwrap_or(1.0) * 100.0,
            accuracy(r),
            num(&r["stability_pruning_l2"], 2),
            num(&r["stability_data_order_l2"], 2),
            num(&r["stability_data_order_angle"], 1),
            num(&r["interpolation_barrier"], 3),
        );
    }
    out
}

pub fn results(files: &[PathBuf], cache: Option<PathBuf>, format: Format, color: bool) -> i32 {
    let (_, c) = match checked(files, format, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let p = plan::build(&c.experiments);
    let cache = cache_dir(cache, files);
    let (records, complete) = results::collect(&p, &cache);
    match format {
        Format::Json => emit(&(serde_json::to_string_pretty(&records).unwrap_or_default() + "\n")),
        Format::Text => emit(&results_table(&records)),
    }
    if !complete {
        eprintln!(
            "some results are not in {} yet: run `lthc run` first",
            cache.display()
        );
    }
    0
}

pub fn fetch(name: &str, data: Option<PathBuf>, color: bool) -> i32 {
    let data = data.unwrap_or_else(crate::data::data_dir);
    let Some(k) = crate::data::fetch::known(name) else {
        return fail(
            Diag::global(code::DATA_FETCH, format!("lthc does not know how to fetch `{name}`"))
                .help("fetchable datasets: mnist, fashion_mnist; put other datasets' files in the data directory yourself"),
            color,
        );
    };
    let dir = data.join(k.name);
    match crate::data::fetch::fetch(name, &dir, true) {
        Ok(()) => {
            emit(&format!("{name}: verified files in {}\n", dir.display()));
            0
        }
        Err(e) => fail(e.to_diag(), color),
    }
}

pub fn verify(cache: Option<PathBuf>) -> i32 {
    let cache = cache_dir(cache, &[PathBuf::from("x")]);
    let ex = Executor::<burn::backend::Autodiff<burn::backend::Flex>>::new(
        cache.clone(),
        PathBuf::new(),
        Default::default(),
        Progress::Quiet,
    );
    let (checked, damaged) = ex.verify();
    for (path, reason) in &damaged {
        eprintln!(
            "warning[{}]: {}: {reason}; removed, the next run recomputes it",
            code::EXEC_CORRUPT,
            path.display()
        );
    }
    emit(&format!(
        "{}: {checked} files checked, {} damaged\n",
        cache.display(),
        damaged.len()
    ));
    i32::from(!damaged.is_empty())
}

pub fn explain(files: &[PathBuf], cache: Option<PathBuf>, color: bool) -> i32 {
    let (_, c) = match checked(files, Format::Text, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let p = plan::build(&c.experiments);
    let cache = cache_dir(cache, files);
    emit(&crate::exec::explain::render(
        &p,
        &crate::exec::explain::explain(&p, &cache),
    ));
    0
}

fn plan_of(files: &[PathBuf], color: bool) -> Result<Option<Plan>, i32> {
    if files.is_empty() {
        return Ok(None);
    }
    let (_, c) = checked(files, Format::Text, color, false)?;
    Ok(Some(plan::build(&c.experiments)))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn cache_ls(files: &[PathBuf], cache: Option<PathBuf>, color: bool) -> i32 {
    let plan = match plan_of(files, color) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cache = cache_dir(cache, files);
    let steps = crate::exec::cached_steps(&cache);
    let mut out = String::new();
    for step in &steps {
        let (key, kind, bytes) = (&step.key, step.kind(), step.bytes);
        let used = match plan.as_ref().and_then(|p| p.get(key)) {
            Some(s) => s.experiments.iter().cloned().collect::<Vec<_>>().join(", "),
            None if plan.is_some() => "(not used by these files)".into(),
            None => String::new(),
        };
        out += &format!("{key}  {kind:<10} {:>10}  {used}\n", mib(bytes));
    }
    out += &format!(
        "{} steps, {}\n",
        steps.len(),
        mib(steps.iter().map(|s| s.bytes).sum())
    );
    emit(&out);
    0
}

pub fn cache_gc(files: &[PathBuf], cache: Option<PathBuf>, dry_run: bool, color: bool) -> i32 {
    let Some(plan) = (match plan_of(files, color) {
        Ok(p) => p,
        Err(code) => return code,
    }) else {
        return 2;
    };
    let cache = cache_dir(cache, files);
    let (mut n, mut freed) = (0, 0);
    for step in crate::exec::cached_steps(&cache) {
        let (key, kind, bytes) = (step.key.as_str(), step.kind(), step.bytes);
        if plan.get(key).is_some() {
            continue;
        }
        if !dry_run {
            if let Err(e) = std::fs::remove_dir_all(cache.join("steps").join(key)) {
                return fail(
                    Diag::global(code::EXEC_IO, format!("cannot remove step {key}: {e}"))
                        .help("check the cache directory's permissions"),
                    color,
                );
            }
        }
        emit(&format!(
            "{} {key} ({kind}, {})\n",
            if dry_run { "would remove" } else { "removed" },
            mib(bytes)
        ));
        n += 1;
        freed += bytes;
    }
    // Job scripts and logs of Slurm runs with nothing left to run.
    for (folder, bytes) in crate::exec::slurm::finished_runs(&cache) {
        if !dry_run {
            if let Err(e) = std::fs::remove_dir_all(&folder) {
                return fail(
                    Diag::global(
                        code::EXEC_IO,
                        format!("cannot remove {}: {e}", folder.display()),
                    )
                    .help("check the cache directory's permissions"),
                    color,
                );
            }
        }
        emit(&format!(
            "{} {} (Slurm job scripts and logs, {})\n",
            if dry_run { "would remove" } else { "removed" },
            folder.display(),
            mib(bytes)
        ));
        freed += bytes;
    }
    emit(&format!(
        "{} {n} steps, {}\n",
        if dry_run { "would free" } else { "freed" },
        mib(freed)
    ));
    0
}
