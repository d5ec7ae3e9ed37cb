//! The paper's figures: series of means over seeds (with their spread) against a result field,
//! drawn as SVG. Each series is one combination of the `by` fields; the dense network is a
//! horizontal band in plots against density.

use std::fmt::Write;

use serde_json::Value;

use super::aggregate::{group, numbers, varies, Stat, IDENTITY};
use super::format::{shown, Shown};
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
            let mut seeds = Vec::new();
            let values: Vec<f64> = members
                .iter()
                .filter(|r| {
                    let new = !seeds.contains(&r["seed"]);
                    seeds.push(r["seed"].clone());
                    new
                })
                .filter_map(|r| r[y].as_f64())
                .collect();
            Some(Band {
                label: format!("dense · {}", key[0].as_str().unwrap_or_default()),
                y: Stat::of(&values)?,
            })
        })
        .collect()
}

/// The test error along the line between two data-order copies, one series per group.
pub fn along_line(records: &[Value]) -> Option<Plot> {
    let with: Vec<Value> = records
        .iter()
        .filter(|r| r["interpolation_test_errors"].is_array())
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
                .filter_map(|r| r["interpolation_test_errors"].as_array().map(Vec::len))
                .min()
                .unwrap_or(0);
            let points = (0..len)
                .filter_map(|i| {
                    let at: Vec<f64> = members
                        .iter()
                        .filter_map(|r| r["interpolation_test_errors"][i].as_f64())
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
    Some(Plot {
        file: "test_error_along_interpolation".into(),
        x: ALONG_LINE.into(),
        y: "interpolation_test_errors".into(),
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

/// An axis title.
pub fn axis_title(field: &str) -> String {
    match field {
        "density" => "Percent of weights remaining".into(),
        "test_accuracy" => "Test accuracy (%)".into(),
        "best_accuracy" => "Best test accuracy (%)".into(),
        "test_top5" => "Top-5 test accuracy (%)".into(),
        "test_loss" => "Test loss".into(),
        "rewind_iteration" => "Rewind iteration k".into(),
        "level" => "Pruning level".into(),
        "best_iteration" => "Early-stopping iteration".into(),
        "stability_pruning_l2" => "L2 distance, pruning".into(),
        "stability_data_order_l2" => "L2 distance, data order".into(),
        "stability_pruning_angle" => "Angle, pruning (°)".into(),
        "stability_data_order_angle" => "Angle, data order (°)".into(),
        "interpolation_barrier" => "Error barrier, test (%)".into(),
        "interpolation_barrier_train" => "Error barrier, train (%)".into(),
        "interpolation_test_errors" => "Test error (%)".into(),
        ALONG_LINE => "Interpolation α".into(),
        f => f.replace('_', " "),
    }
}

/// The factor a field's values are drawn at (percent for fractions).
fn scale(field: &str) -> f64 {
    if field == "interpolation_test_errors" || shown(field) == Shown::Percent {
        100.0
    } else {
        1.0
    }
}

/// Round ticks for [lo, hi], each with as many decimals as their spacing needs (0.25 steps: 2).
fn linear_ticks(lo: f64, hi: f64, count: usize) -> Vec<(f64, String)> {
    let ticks = nice_ticks(lo, hi, count);
    let step = match ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let decimals = (0..=6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    ticks
        .into_iter()
        .map(|t| (t, format!("{t:.decimals$}")))
        .collect()
}

/// About `count` round tick values covering [lo, hi].
fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / count as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= count as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Three significant digits at most, no trailing zeros: 100, 51.2, 6.87, 0.5 (log-axis ticks,
/// which are the data's own values).
fn tick_text(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Matplotlib's ten colours: distinct, and familiar to readers of papers.
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Past ten series the colours repeat with another dash pattern.
const DASHES: [&str; 3] = ["none", "7 3", "2 3"];

/// The colour and dash pattern of series `i`.
fn style(i: usize) -> (&'static str, &'static str) {
    (
        COLOURS[i % COLOURS.len()],
        DASHES[(i / COLOURS.len()) % DASHES.len()],
    )
}

pub const WIDTH: u32 = 900;
const LEFT: f64 = 72.0;
const TOP: f64 = 40.0;
const PLOT_RIGHT: f64 = 500.0;
const LEGEND_ROW: f64 = 18.0;

/// The SVG height: room for the plot and every legend entry.
pub fn height(p: &Plot) -> u32 {
    let entries = (p.series.len() + p.bands.len()) as f64;
    (TOP + 20.0 + entries * LEGEND_ROW).max(440.0).ceil() as u32
}

/// Maps data values to pixels along one axis.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    log: bool,
}

impl Axis {
    fn at(&self, v: f64) -> f64 {
        let t = |v: f64| if self.log { v.max(1e-12).ln() } else { v };
        let f = (t(v) - t(self.lo)) / (t(self.hi) - t(self.lo));
        self.from + f * (self.to - self.from)
    }
}

fn x_ticks(p: &Plot, lo: f64, hi: f64) -> Vec<(f64, String)> {
    if !p.log_x {
        return linear_ticks(lo, hi, 6);
    }
    // On a log axis the data's own x values are the ticks (the paper's densities), thinned.
    let mut xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.x * scale(&p.x)))
        .collect();
    xs.sort_by(|a, b| b.total_cmp(a));
    xs.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1.0));
    if p.x == "density" && xs.first().is_none_or(|&x| x < 100.0 - 1e-9) {
        xs.insert(0, 100.0);
    }
    let every = xs.len().div_ceil(9).max(1);
    xs.into_iter()
        .step_by(every)
        .map(|x| (x, tick_text(x)))
        .collect()
}

/// The plot as a standalone SVG document.
pub fn svg(p: &Plot, title: &str) -> String {
    let (w, h) = (WIDTH as f64, height(p) as f64);
    let bottom = 384.0;
    let (sx, sy) = (scale(&p.x), scale(&p.y));
    let xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.x * sx))
        .chain((p.x == "density").then_some(100.0))
        .collect();
    let ys: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|pt| pt.y))
        .chain(p.bands.iter().map(|b| b.y))
        .flat_map(|s| [(s.mean - s.sd) * sy, (s.mean + s.sd) * sy])
        .collect();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match (lo.is_finite(), hi > lo) {
            (true, true) => (lo, hi),
            (true, false) => (lo - 1.0, hi + 1.0),
            _ => (0.0, 1.0),
        }
    };
    let (x_lo, x_hi) = range(&xs);
    let (y_lo, y_hi) = range(&ys);
    let y_pad = (y_hi - y_lo) * 0.06;
    let ax = if p.log_x {
        let pad = (x_hi.max(1e-9) / x_lo.max(1e-9)).ln() * 0.04;
        let (lo, hi) = (x_lo.max(1e-9) / pad.exp(), x_hi * pad.exp());
        // Density reads from 100% on the left, as in the paper.
        let (from, to) = if p.x == "density" {
            (PLOT_RIGHT, LEFT)
        } else {
            (LEFT, PLOT_RIGHT)
        };
        Axis {
            lo,
            hi,
            from,
            to,
            log: true,
        }
    } else {
        let pad = (x_hi - x_lo) * 0.04;
        Axis {
            lo: x_lo - pad,
            hi: x_hi + pad,
            from: LEFT,
            to: PLOT_RIGHT,
            log: false,
        }
    };
    let ay = Axis {
        lo: y_lo - y_pad,
        hi: y_hi + y_pad,
        from: bottom,
        to: TOP,
        log: false,
    };

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Verdana, sans-serif">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="14" text-anchor="middle">{}</text>"#,
        (LEFT + PLOT_RIGHT) / 2.0,
        escape(title)
    );
    // Grid, ticks and tick labels.
    for (t, label) in linear_ticks(ay.lo, ay.hi, 6) {
        let y = ay.at(t);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            label
        );
    }
    for (t, label) in x_ticks(p, ax.lo, ax.hi) {
        let x = ax.at(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            bottom + 16.0,
            label
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        PLOT_RIGHT - LEFT,
        bottom - TOP
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
        (LEFT + PLOT_RIGHT) / 2.0,
        bottom + 40.0,
        escape(&axis_title(&p.x))
    );
    let _ = write!(
        s,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" font-size="13" text-anchor="middle">{}</text>"#,
        (TOP + bottom) / 2.0,
        escape(&axis_title(&p.y))
    );
    // The dense network: a grey band (mean ± sd) and a dashed line at its mean.
    for b in &p.bands {
        let (top, low) = (
            ay.at((b.y.mean + b.y.sd) * sy),
            ay.at((b.y.mean - b.y.sd) * sy),
        );
        let mid = ay.at(b.y.mean * sy);
        let _ = write!(
            s,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{}\" height=\"{:.1}\" fill=\"#888\" fill-opacity=\"0.2\"/>\
             <line x1=\"{LEFT}\" y1=\"{mid:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{mid:.1}\" stroke=\"#555\" stroke-dasharray=\"6 4\"/>",
            PLOT_RIGHT - LEFT,
            (low - top).max(0.0)
        );
    }
    for (i, series) in p.series.iter().enumerate() {
        let (c, dash) = style(i);
        let pts = &series.points;
        if pts.iter().any(|pt| pt.y.n > 1) {
            let upper = pts
                .iter()
                .map(|pt| (ax.at(pt.x * sx), ay.at((pt.y.mean + pt.y.sd) * sy)));
            let lower = pts
                .iter()
                .rev()
                .map(|pt| (ax.at(pt.x * sx), ay.at((pt.y.mean - pt.y.sd) * sy)));
            let ring: Vec<String> = upper
                .chain(lower)
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = write!(
                s,
                r#"<polygon points="{}" fill="{c}" fill-opacity="0.18" stroke="none"/>"#,
                ring.join(" ")
            );
        }
        let line: Vec<String> = pts
            .iter()
            .map(|pt| format!("{:.1},{:.1}", ax.at(pt.x * sx), ay.at(pt.y.mean * sy)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}"><title>{}</title></polyline>"#,
            line.join(" "),
            escape(&series.label)
        );
        for xy in &line {
            let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
    }
    // The legend, right of the plot.
    let lx = PLOT_RIGHT + 18.0;
    let mut ly = TOP + 8.0;
    for (i, series) in p.series.iter().enumerate() {
        let (c, dash) = style(i);
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}"/><circle cx="{}" cy="{ly}" r="3" fill="{c}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            lx + 22.0,
            lx + 11.0,
            lx + 28.0,
            ly + 4.0,
            escape(&short(&series.label, 46))
        );
        ly += LEGEND_ROW;
    }
    for b in &p.bands {
        let _ = write!(
            s,
            r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#555" stroke-dasharray="6 4"/><text x="{}" y="{}" font-size="12">{}</text>"##,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&short(&b.label, 46))
        );
        ly += LEGEND_ROW;
    }
    if p.series.is_empty() && p.bands.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" text-anchor="middle" fill="#777">no results yet</text>"##,
            (LEFT + PLOT_RIGHT) / 2.0,
            (TOP + bottom) / 2.0
        );
    }
    s += "</svg>\n";
    s
}

/// At most `n` characters, with an ellipsis if cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(nice_ticks(91.3, 98.7, 6), [92.0, 94.0, 96.0, 98.0]);
        let labels: Vec<String> = linear_ticks(99.0, 101.0, 6)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(labels, ["99.0", "99.5", "100.0", "100.5", "101.0"]);
        assert_eq!(tick_text(51.2), "51.2");
        assert_eq!(tick_text(100.0), "100");
        assert_eq!(tick_text(6.872), "6.87");
    }
}
