//! Tables over seeds: records grouped by the report's `rows` fields, each column summarised as
//! mean, standard deviation and count over the seeds (and replicates) of a group.

use serde_json::Value;

/// Fields that tell one record from another besides the seed. A table only ever averages over
/// seeds: any of these that varies within the report and is not among `rows` joins the rows.
pub const IDENTITY: &[&str] = &["experiment", "rewind_iteration", "arm", "level"];

/// Mean, sample standard deviation (0 for a single value) and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Stat {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, sd, n })
    }
}

/// One column of one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Num(Stat),
    /// A text field (network, dataset, arm): its distinct values.
    Text(String),
    /// No record of the group has the field (not measured, or every run diverged).
    Empty,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The values of the table's key fields, in order.
    pub key: Vec<Value>,
    /// Records in the group.
    pub n: usize,
    /// Records in the group whose training diverged (not in the accuracy means).
    pub diverged: usize,
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub keys: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

/// The fields that group a table: the asked-for `rows`, then each identity field that varies.
pub fn key_fields(records: &[Value], rows: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = rows.to_vec();
    for f in IDENTITY {
        if !keys.iter().any(|k| k == f) && varies(records, f) {
            keys.push(f.to_string());
        }
    }
    keys
}

/// Whether `field` takes more than one value among the records.
pub fn varies(records: &[Value], field: &str) -> bool {
    records.iter().any(|r| r[field] != records[0][field])
}

/// Groups records by `keys`, in the order groups first appear (the plan's order).
pub fn group<'r>(records: &'r [Value], keys: &[String]) -> Vec<(Vec<Value>, Vec<&'r Value>)> {
    let mut groups: Vec<(Vec<Value>, Vec<&Value>)> = Vec::new();
    for r in records {
        let key: Vec<Value> = keys.iter().map(|k| r[k.as_str()].clone()).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
}

/// The first record of each seed: a dense run shared by several rewind points or arms appears
/// in several records but is one run.
pub fn once_per_seed<'r>(records: &[&'r Value]) -> Vec<&'r Value> {
    let mut seen: Vec<&Value> = Vec::new();
    let mut out = Vec::new();
    for r in records {
        if !seen.contains(&&r["seed"]) {
            seen.push(&r["seed"]);
            out.push(*r);
        }
    }
    out
}

/// The numbers a group's records hold for `field` (nulls and absent fields left out).
pub fn numbers(members: &[&Value], field: &str) -> Vec<f64> {
    members.iter().filter_map(|r| r[field].as_f64()).collect()
}

fn cell(members: &[&Value], field: &str) -> Cell {
    let values: Vec<&Value> = members
        .iter()
        .map(|r| &r[field])
        .filter(|v| !v.is_null())
        .collect();
    if values.is_empty() {
        return Cell::Empty;
    }
    if values.iter().all(|v| v.is_number()) {
        return Stat::of(&numbers(members, field)).map_or(Cell::Empty, Cell::Num);
    }
    let mut texts: Vec<String> = Vec::new();
    for v in values {
        let t = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        if !texts.contains(&t) {
            texts.push(t);
        }
    }
    Cell::Text(texts.join(", "))
}

/// The table of `records` grouped by `rows` (plus varying identity fields), one cell per column.
pub fn table(records: &[Value], rows: &[String], columns: &[String]) -> Table {
    let keys = key_fields(records, rows);
    let columns: Vec<String> = columns
        .iter()
        .filter(|c| !keys.contains(c))
        .cloned()
        .collect();
    let rows = group(records, &keys)
        .into_iter()
        .map(|(key, members)| Row {
            key,
            n: members.len(),
            diverged: members
                .iter()
                .filter(|r| r.get("diverged_at").is_some())
                .count(),
            cells: columns.iter().map(|c| cell(&members, c)).collect(),
        })
        .collect();
    Table {
        keys,
        columns,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn means_and_sample_deviations() {
        let s = Stat::of(&[0.9, 0.92, 0.94]).unwrap();
        assert!((s.mean - 0.92).abs() < 1e-12);
        assert!((s.sd - 0.02).abs() < 1e-12);
        assert_eq!(s.n, 3);
        assert_eq!(Stat::of(&[0.5]).unwrap().sd, 0.0);
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn groups_average_over_seeds_only() {
        let r = |seed: u64, arm: &str, acc: f64| {
            json!({"experiment": "e", "rewind_iteration": 0, "arm": arm, "level": 1,
                   "seed": seed, "test_accuracy": acc})
        };
        let records = vec![
            r(1, "imp", 0.9),
            r(1, "random_reinit", 0.5),
            r(2, "imp", 0.8),
        ];
        // `arm` is not among the rows but varies: it joins them rather than being averaged.
        let t = table(&records, &["experiment".into()], &["test_accuracy".into()]);
        assert_eq!(t.keys, ["experiment", "arm"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].n, 2);
        let Cell::Num(s) = &t.rows[0].cells[0] else {
            panic!()
        };
        assert!((s.mean - 0.85).abs() < 1e-12);
    }
}
