//! `executor` definitions: where a run's steps go and what each job asks for.
//!
//! ```lth
//! executor cluster {
//!   partition = "gpu"
//!   gpus      = 1
//!   time      = "4:00:00"
//! }
//! ```

use super::spec::ExecutorSpec;
use super::{At, Checker, DefId};
use crate::diag::code;
use crate::exec::slurm::resources::{check_memory, check_time};
use crate::exec::slurm::Resources;

pub(crate) const FIELDS: &[&str] = &[
    "scheduler",
    "partition",
    "account",
    "gpus",
    "cpus",
    "memory",
    "time",
    "flags",
    "device",
];

impl<'p> Checker<'p> {
    pub fn executor(&mut self, id: DefId) -> Option<ExecutorSpec> {
        let name = self.defs[id.0].def.name.name.clone();
        let mut rec = self.def_record(id)?;
        let mut ok = true;
        if let Some(at) = rec.get("scheduler") {
            ok &= self.symbol(at, &["slurm"], "scheduler").is_some();
        }
        let mut text = |cx: &mut Self, field: &str, check: fn(&str) -> Result<(), String>| {
            let at = rec.get(field)?;
            let s = cx.string(at);
            match s.as_deref().map(check) {
                Some(Ok(())) => s,
                Some(Err(why)) => {
                    cx.bad_setting(at, field, why);
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            }
        };
        let any = |_: &str| Ok(());
        let partition = text(self, "partition", any);
        let account = text(self, "account", any);
        let memory = text(self, "memory", check_memory);
        let time = text(self, "time", check_time);
        let device = text(self, "device", |d| {
            if d == "cpu"
                || d == "wgpu"
                || d == "cuda"
                || d.strip_prefix("cuda:")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            {
                Ok(())
            } else {
                Err(format!(
                    "`{d}` is not a device: write \"cpu\", \"cuda\", \"cuda:N\" or \"wgpu\""
                ))
            }
        });
        let mut count = |cx: &mut Self, field: &str, min: i64| match rec.get(field) {
            Some(at) => match cx.int_at_least(at, min, field) {
                Some(n) => Some(n as u32),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        let gpus = count(self, "gpus", 0);
        let cpus = count(self, "cpus", 1);
        let flags = match rec.get("flags") {
            Some(at) => self.flag_list(at),
            None => Some(Vec::new()),
        };
        rec.finish(self, FIELDS);
        let flags = flags?;
        if !ok {
            return None;
        }
        let device = device.or_else(|| gpus.filter(|&g| g > 0).map(|_| "cuda".to_string()));
        Some(ExecutorSpec {
            name,
            resources: Resources {
                partition,
                account,
                gpus,
                cpus,
                memory,
                time,
                flags,
            },
            device,
        })
    }

    fn bad_setting(&mut self, at: At<'p>, field: &str, why: String) {
        self.error(code::RANGE_VALUE, at.file, at.span(), why)
            .label(format!("not a valid {field}"))
            .help(format!(
                "the executor's `{field}` is passed to sbatch as it is written"
            ))
            .emit();
    }

    /// `flags = ["--qos=high", ...]`: extra sbatch options, each one starting with `-`.
    fn flag_list(&mut self, at: At<'p>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for item in self.items(at)? {
            let flag = self.string(item)?;
            if !flag.starts_with('-') {
                self.error(
                    code::RANGE_VALUE,
                    item.file,
                    item.span(),
                    format!("`{flag}` is not an sbatch option"),
                )
                .label("not an option")
                .help("write each option as on sbatch's command line, e.g. \"--qos=high\"")
                .emit();
                return None;
            }
            out.push(flag);
        }
        Some(out)
    }
}
