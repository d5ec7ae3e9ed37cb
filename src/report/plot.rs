//! The paper's figures as data: series of means over seeds (with their spread) against a result
//! field. Each series is one combination of the `by` fields; the dense network is a horizontal
//! band in plots against density. [`super::svg`] draws them.

use serde_json::Value;

use super::aggregate::{group, numbers, once_per_seed, varies, Stat, IDENTITY};
use crate::check::PlotSpec;

/// The x "field" of a plot along the interpolation line (not a result field: the position α).
pub const ALONG_LINE: &str = "interpolation";

#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: Stat,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<Point>,
}

/// A horizontal band: the dense network's accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    pub label: String,
    pub y: Stat,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// File name without extension.
    pub file: String,
    pub x: String,
    pub y: String,
    pub log_x: bool,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

/// How a key value reads in a legend.
fn label_part(field: &str, v: &Value) -> String {
    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
    match field {
        "experiment" | "arm" | "network" | "dataset" => text,
        "rewind_iteration" => format!("k={text}"),
        "level" => format!("level {text}"),
        _ => format!("{field}={text}"),
    }
}

fn label(fields: &[String], key: &[Value]) -> String {
    if fields.is_empty() {
        return "all".into();
    }
    fields
        .iter()
        .zip(key)
        .map(|(f, v)| label_part(f, v))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The series fields: `by`, then identity fields that vary and would otherwise be averaged
/// together (the level is the x position in a plot against density).
fn series_fields(records: &[Value], x: &str, by: &[String]) -> Vec<String> {
    let mut fields = by.to_vec();
    for f in IDENTITY {
        let is_x = *f == x || (*f == "level" && x == "density");
        if !is_x && !fields.iter().any(|b| b == f) && varies(records, f) {
            fields.push(f.to_string());
        }
    }
    fields
}

/// One plot of a report's `plots`.
pub fn from_spec(spec: &PlotSpec, records: &[Value]) -> Plot {
    let against_density = spec.x == "density";
    let (dense, rest): (Vec<Value>, Vec<Value>) = records
        .iter()
        .cloned()
        .partition(|r| against_density && r["arm"] == "dense");
    let fields = series_fields(&rest, &spec.x, &spec.by);
    let series = group(&rest, &fields)
        .into_iter()
        .filter_map(|(key, members)| {
            let by_x = if against_density { "level" } else { &spec.x };
            let mut points: Vec<Point> = group(
                &members.into_iter().cloned().collect::<Vec<_>>(),
                &[by_x.to_string()],
            )
            .into_iter()
            .filter_map(|(_, at)| {
                let x = Stat::of(&numbers(&at, &spec.x))?.mean;
                Some(Point {
                    x,
                    y: Stat::of(&numbers(&at, &spec.y))?,
                })
            })
            .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            (!points.is_empty()).then(|| Series {
                label: label(&fields, &key),
                points,
            })
        })
        .collect();
    let bands = dense_bands(&dense, &spec.y);
    Plot {
        file: format!("{}_vs_{}", spec.y, spec.x),
        x: spec.x.clone(),
        y: spec.y.clone(),
        log_x: spec.log_x,
        series,
        bands,
    }
}

/// The dense network per experiment; a run shared by several rewind points counts once.
fn dense_bands(dense: &[Value], y: &str) -> Vec<Band> {
    group(dense, &["experiment".to_string()])
        .into_iter()
        .filter_map(|(key, members)| {
            let values = numbers(&once_per_seed(&members), y);
            Some(Band {
                label: format!("dense · {}", key[0].as_str().unwrap_or_default()),
                y: Stat::of(&values)?,
            })
        })
        .collect()
}

/// The errors along the line between two data-order copies, one series per group: `errors` is
/// `interpolation_test_errors` or `interpolation_train_errors`. `None` where none were measured.
pub fn along_line(records: &[Value], errors: &str) -> Option<Plot> {
    let with: Vec<Value> = records
        .iter()
        .filter(|r| r[errors].as_array().is_some_and(|e| !e.is_empty()))
        .cloned()
        .collect();
    if with.is_empty() {
        return None;
    }
    let fields = series_fields(&with, ALONG_LINE, &[]);
    let series = group(&with, &fields)
        .into_iter()
        .map(|(key, members)| {
            let len = members
                .iter()
                .filter_map(|r| r[errors].as_array().map(Vec::len))
                .min()
                .unwrap_or(0);
            let points = (0..len)
                .filter_map(|i| {
                    let at: Vec<f64> = members
                        .iter()
                        .filter_map(|r| r[errors][i].as_f64())
                        .collect();
                    Some(Point {
                        x: if len > 1 {
                            i as f64 / (len - 1) as f64
                        } else {
                            0.0
                        },
                        y: Stat::of(&at)?,
                    })
                })
                .collect();
            Series {
                label: label(&fields, &key),
                points,
            }
        })
        .collect();
    let kind = if errors.contains("train") {
        "train"
    } else {
        "test"
    };
    Some(Plot {
        file: format!("{kind}_error_along_interpolation"),
        x: ALONG_LINE.into(),
        y: errors.into(),
        log_x: false,
        series,
        bands: Vec::new(),
    })
}

/// The default figures for a report without `plots`, by what its experiments measured.
pub fn defaults(records: &[Value]) -> Vec<PlotSpec> {
    let pruned = records.iter().any(|r| r["level"].as_u64() > Some(0));
    let rewinds = varies(records, "rewind_iteration");
    let has = |f: &str| records.iter().any(|r| r[f].is_number());
    let spec = |x: &str, y: &str| PlotSpec {
        x: x.into(),
        y: y.into(),
        by: Vec::new(),
        log_x: x == "density",
    };
    let mut out = Vec::new();
    if pruned {
        out.push(spec("density", "test_accuracy"));
    }
    if rewinds {
        for y in [
            "stability_data_order_l2",
            "stability_pruning_l2",
            "interpolation_barrier",
        ] {
            if has(y) {
                out.push(spec("rewind_iteration", y));
            }
        }
        if pruned {
            out.push(spec("rewind_iteration", "test_accuracy"));
        }
    }
    out
}
