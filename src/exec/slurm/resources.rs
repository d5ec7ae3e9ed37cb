//! What each job asks Slurm for: from an `executor` definition in the `.lth` files, with the
//! command line's flags taking precedence.

/// Resources and placement of every job of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// GPUs per job (`--gres=gpu:N`).
    pub gpus: Option<u32>,
    /// CPUs per job (`--cpus-per-task`; the job trains with as many threads).
    pub cpus: Option<u32>,
    /// Memory per job, in Slurm's notation (`16G`, `4000M`).
    pub memory: Option<String>,
    /// Time limit per job, in Slurm's notation (`30`, `4:00:00`, `1-12:00:00`).
    pub time: Option<String>,
    /// Further `sbatch` flags, passed as they are (`--qos=high`).
    pub flags: Vec<String>,
}

impl Resources {
    /// `over`'s settings where it has them, else `self`'s; flags from both.
    pub fn overridden_by(&self, over: &Resources) -> Resources {
        Resources {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
            gpus: over.gpus.or(self.gpus),
            cpus: over.cpus.or(self.cpus),
            memory: over.memory.clone().or_else(|| self.memory.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            flags: self.flags.iter().chain(&over.flags).cloned().collect(),
        }
    }

    pub fn sbatch_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.partition {
            out.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            out.push(format!("--account={a}"));
        }
        if let Some(g) = self.gpus.filter(|&g| g > 0) {
            out.push(format!("--gres=gpu:{g}"));
        }
        if let Some(c) = self.cpus {
            out.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = &self.memory {
            out.push(format!("--mem={m}"));
        }
        if let Some(t) = &self.time {
            out.push(format!("--time={t}"));
        }
        out.extend(self.flags.iter().cloned());
        out
    }
}

/// Checks a memory size as Slurm writes it: a whole number with an optional K, M, G or T.
pub fn check_memory(s: &str) -> Result<(), String> {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    if digits.len() + 1 < s.len()
        || digits.is_empty()
        || !digits.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!(
            "`{s}` is not a memory size: write a whole number with K, M, G or T, e.g. \"16G\""
        ));
    }
    Ok(())
}

/// Checks a time limit as Slurm writes it: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or `D-H:M:S`.
pub fn check_time(s: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{s}` is not a Slurm time limit: write minutes (\"90\"), \"H:MM:SS\" or \"D-HH:MM:SS\""
        ))
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let numbers = |xs: &[&str]| {
        xs.iter()
            .all(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit()))
    };
    let shape_ok = match days {
        Some(d) => numbers(&[d]) && (1..=3).contains(&parts.len()),
        None => (1..=3).contains(&parts.len()),
    };
    if !shape_ok || !numbers(&parts) {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_time_follow_slurm() {
        for ok in ["16G", "4000M", "512", "1T"] {
            assert!(check_memory(ok).is_ok(), "{ok}");
        }
        for bad in ["", "G", "16GB", "1.5G", "-3"] {
            assert!(check_memory(bad).is_err(), "{bad}");
        }
        for ok in ["30", "30:00", "4:00:00", "1-12", "1-12:00", "2-00:00:00"] {
            assert!(check_time(ok).is_ok(), "{ok}");
        }
        for bad in ["", "4h", "1:2:3:4", "-1", "a-1", "1-"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_wins_and_flags_add_up() {
        let file = Resources {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            flags: vec!["--qos=low".into()],
            ..Default::default()
        };
        let cli = Resources {
            time: Some("30".into()),
            flags: vec!["--nice=10".into()],
            ..Default::default()
        };
        let r = file.overridden_by(&cli);
        assert_eq!(
            r.sbatch_flags(),
            ["--partition=gpu", "--time=30", "--qos=low", "--nice=10"]
        );
    }
}
