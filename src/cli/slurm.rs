//! `lthc run --executor slurm|NAME`, `lthc status`, and `lthc step` (what each Slurm job runs).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::commands::{checked, emit};
use super::run::{cache_dir, preflight, Setup};
use super::{Format, RunJob};
use crate::check::Checked;
use crate::diag::{code, render_report, Diag};
use crate::exec::slurm::{self, resources, Outcome, Resources};
use crate::exec::{ExecError, Executor, OneStep, Summary};
use crate::plan::{self, Plan};
use crate::train::TrainBackend;

/// `lthc run`'s Slurm settings; they take precedence over the `executor` definition's.
#[derive(clap::Args, Default)]
pub struct SlurmFlags {
    /// Slurm partition for every job.
    #[arg(long)]
    partition: Option<String>,
    /// Slurm account to charge.
    #[arg(long)]
    account: Option<String>,
    /// GPUs per job (the jobs then run on `cuda` unless --device says otherwise).
    #[arg(long)]
    gpus: Option<u32>,
    /// CPUs per job (each job trains with as many threads).
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory per job, as Slurm writes it (`16G`).
    #[arg(long)]
    mem: Option<String>,
    /// Time limit per job, as Slurm writes it (`4:00:00`).
    #[arg(long)]
    time: Option<String>,
    /// Another sbatch option, passed as it is (repeatable): `--sbatch-flag=--qos=high`.
    #[arg(long = "sbatch-flag", allow_hyphen_values = true)]
    sbatch_flags: Vec<String>,
    /// Submit and return at once; `lthc status` shows the sweep, `lthc run` again waits for it.
    #[arg(long)]
    pub detach: bool,
}

fn executor_error(message: String, help: &str) -> Box<Diag> {
    Box::new(Diag::global(code::EXEC_EXECUTOR, message).help(help))
}

impl SlurmFlags {
    /// Refuses Slurm settings on a local run, where they would be silently ignored.
    pub(super) fn refuse_locally(&self) -> Result<(), Box<Diag>> {
        let given = self.partition.is_some()
            || self.account.is_some()
            || self.gpus.is_some()
            || self.cpus.is_some()
            || self.mem.is_some()
            || self.time.is_some()
            || !self.sbatch_flags.is_empty()
            || self.detach;
        if given {
            return Err(executor_error(
                "Slurm settings (--partition, --gpus, --detach, ...) were given for a local run".into(),
                "add `--executor slurm` (or the name of an `executor` definition) to run on the cluster",
            ));
        }
        Ok(())
    }

    fn resources(&self) -> Result<Resources, Box<Diag>> {
        let help = "write it as sbatch does: --mem 16G, --time 4:00:00";
        if let Some(m) = &self.mem {
            resources::check_memory(m).map_err(|e| executor_error(format!("--mem: {e}"), help))?;
        }
        if let Some(t) = &self.time {
            resources::check_time(t).map_err(|e| executor_error(format!("--time: {e}"), help))?;
        }
        Ok(Resources {
            partition: self.partition.clone(),
            account: self.account.clone(),
            gpus: self.gpus,
            cpus: self.cpus,
            memory: self.mem.clone(),
            time: self.time.clone(),
            flags: self.sbatch_flags.clone(),
        })
    }
}

/// The executor `name` names: `slurm` (defaults) or an `executor` definition.
fn executor<'c>(c: &'c Checked, name: &str) -> Result<(Resources, Option<&'c str>), Box<Diag>> {
    if let Some(e) = c.executors.iter().find(|e| e.name == name) {
        return Ok((e.resources.clone(), e.device.as_deref()));
    }
    if name == "slurm" {
        return Ok((Resources::default(), None));
    }
    let defined: Vec<&str> = c.executors.iter().map(|e| e.name.as_str()).collect();
    let help = if defined.is_empty() {
        "use `--executor local`, `--executor slurm`, or define one in the file: `executor cluster { partition = \"gpu\" }`".to_string()
    } else {
        format!(
            "use `--executor local`, `--executor slurm`, or one of the file's executors: {}",
            defined.join(", ")
        )
    };
    Err(executor_error(format!("unknown executor `{name}`"), &help))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Hands the plan to Slurm. `Ok(None)`: detached (submitted, not waited for).
pub(super) fn run(
    files: &[PathBuf],
    c: &Checked,
    p: &Plan,
    setup: Setup,
    name: &str,
    device: Option<&str>,
    flags: &SlurmFlags,
) -> Result<Option<Summary>, Box<Diag>> {
    let (base, file_device) = executor(c, name)?;
    let resources = base.overridden_by(&flags.resources()?);
    let device = device
        .or(file_device)
        .map(str::to_string)
        .or_else(|| flags.gpus.filter(|&g| g > 0).map(|_| "cuda".into()))
        .unwrap_or_else(|| "cpu".into());
    slurm::queue::check_available()?;
    std::fs::create_dir_all(&setup.cache).map_err(|e| {
        Box::new(
            Diag::global(code::EXEC_IO, format!("{}: {e}", setup.cache.display()))
                .help("the cache must be on a filesystem every node of the cluster sees"),
        )
    })?;
    let mut here = Executor::<burn::backend::Autodiff<burn::backend::Flex>>::new(
        absolute(&setup.cache),
        absolute(&setup.data),
        Default::default(),
        setup.progress,
    );
    preflight(&mut here, p, setup.strict, setup.color)?;
    let poll = std::env::var("LTHC_SLURM_POLL")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    let lthc = std::env::current_exe().map_err(|e| {
        executor_error(
            format!("cannot find this lthc binary for the jobs: {e}"),
            "run lthc from a path the cluster's nodes can see",
        )
    })?;
    let s = slurm::Setup {
        cache: here.cache.clone(),
        data: here.data_dir.clone(),
        device,
        files: files.iter().map(|f| absolute(f)).collect(),
        run_id: here.run_id.clone(),
        resources,
        lthc,
        detach: flags.detach,
        quiet: setup.quiet,
        poll: Duration::from_secs_f64(poll.max(0.05)),
    };
    let unavailable = |step: &crate::plan::Step| {
        here.unavailable_for(step)
            .map(|e| ExecError::Unavailable(e.clone()).to_diag())
    };
    match slurm::run(p, &s, unavailable)? {
        Outcome::Finished(summary) => Ok(Some(summary)),
        Outcome::Detached { steps, jobs } => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            emit(&format!(
                "submitted {steps} steps as {jobs} Slurm jobs (arrays count once); they run without this process\n\
                 `lthc status {0}` shows them; `lthc run --executor {name} {0}` waits for them and submits nothing twice\n",
                names.join(" ")
            ));
            Ok(None)
        }
    }
}

/// `lthc status`: each kind of step by state (done, running, queued, failed, ...).
pub fn status(files: &[PathBuf], cache: Option<PathBuf>, color: bool) -> i32 {
    let (_, c) = match checked(files, Format::Text, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let p = plan::build(&c.experiments);
    let cache = cache_dir(cache, files);
    emit(&slurm::status(&p, &cache));
    0
}

/// `lthc step`: runs the one step `key` of the files' plan (inside a Slurm job).
pub fn step(job: RunJob, key: String, color: bool) -> i32 {
    let (_, c) = match checked(&job.files, Format::Text, color, false) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let p = plan::build(&c.experiments);
    super::run::on_interrupt();
    let result = super::device::dispatch(
        &job.device,
        OneStepJob {
            plan: &p,
            job: &job,
            key: &key,
        },
    );
    match result {
        Ok(code) => code,
        Err(d) => {
            eprint!("{}", render_report(&[*d], &Default::default(), color));
            if crate::train::stop::requested() {
                130
            } else {
                1
            }
        }
    }
}

/// [`one`] on whichever backend the device names.
struct OneStepJob<'a> {
    plan: &'a Plan,
    job: &'a RunJob,
    key: &'a str,
}

impl super::device::OnDevice for OneStepJob<'_> {
    type Output = i32;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<i32, Box<Diag>> {
        one::<B>(self.plan, self.job, self.key, device)
    }
}

fn one<B: TrainBackend>(
    p: &Plan,
    job: &RunJob,
    key: &str,
    device: B::Device,
) -> Result<i32, Box<Diag>> {
    let mut ex = job.executor::<B>(device, "slurm");
    let label = p.get(key).map_or(key, |s| s.label.as_str());
    eprintln!("lthc step {label} ({key})");
    let dir = ex.step_dir(key);
    let stale = |message: String| -> Result<i32, Box<Diag>> {
        let diag = Diag::global(code::SLURM_STALE, message)
            .help("the .lth files changed since the sweep was submitted: run `lthc run` again to submit the current plan");
        let _ = crate::exec::failure::record(&dir, &job.run, label, &diag);
        Err(Box::new(diag))
    };
    match ex.run_one(p, key).map_err(|e| Box::new(e.to_diag()))? {
        OneStep::Ran => {
            eprintln!("{label}: done");
            Ok(0)
        }
        OneStep::Cached => {
            eprintln!("{label}: already in the cache");
            Ok(0)
        }
        // Recorded and said by the executor.
        OneStep::Failed(_) => Ok(1),
        OneStep::NotInPlan => stale(format!("step {key} is not in the files' plan")),
        OneStep::InputMissing(input) => stale(format!(
            "step {label} needs step {input}, which is not in the cache"
        )),
    }
}
