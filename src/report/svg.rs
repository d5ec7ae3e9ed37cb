//! Plots drawn as SVG: axes (a log axis takes the data's own values as ticks), the dense
//! network's band, each series' mean line over its spread, and the legend to the right.

use std::fmt::Write;

use super::format::{shown, Shown};
use super::plot::{Plot, ALONG_LINE};

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
        "interpolation_train_errors" => "Train error (%)".into(),
        ALONG_LINE => "Interpolation α".into(),
        f => f.replace('_', " "),
    }
}

/// The factor a field's values are drawn at (percent for fractions).
fn scale(field: &str) -> f64 {
    if field.ends_with("_errors") || shown(field) == Shown::Percent {
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
const BOTTOM: f64 = 384.0;
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

/// The plot's axes: data range to pixels, and the factor each axis draws its values at.
struct Frame {
    ax: Axis,
    ay: Axis,
    sx: f64,
    sy: f64,
}

/// The smallest and largest value (a unit around a single value; 0..1 for none).
fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match (lo.is_finite(), hi > lo) {
        (true, true) => (lo, hi),
        (true, false) => (lo - 1.0, hi + 1.0),
        _ => (0.0, 1.0),
    }
}

fn frame(p: &Plot) -> Frame {
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
    let (x_lo, x_hi) = range(&xs);
    let (y_lo, y_hi) = range(&ys);
    let ax = if p.log_x {
        let pad = (x_hi.max(1e-9) / x_lo.max(1e-9)).ln() * 0.04;
        // Density reads from 100% on the left, as in the paper.
        let (from, to) = if p.x == "density" {
            (PLOT_RIGHT, LEFT)
        } else {
            (LEFT, PLOT_RIGHT)
        };
        Axis {
            lo: x_lo.max(1e-9) / pad.exp(),
            hi: x_hi * pad.exp(),
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
    let y_pad = (y_hi - y_lo) * 0.06;
    let ay = Axis {
        lo: y_lo - y_pad,
        hi: y_hi + y_pad,
        from: BOTTOM,
        to: TOP,
        log: false,
    };
    Frame { ax, ay, sx, sy }
}

/// The plot as a standalone SVG document.
pub fn render(p: &Plot, title: &str) -> String {
    let (w, h) = (WIDTH as f64, height(p) as f64);
    let f = frame(p);
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
    axes(&mut s, p, &f);
    bands(&mut s, p, &f);
    series(&mut s, p, &f);
    legend(&mut s, p);
    if p.series.is_empty() && p.bands.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" text-anchor="middle" fill="#777">no results yet</text>"##,
            (LEFT + PLOT_RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0
        );
    }
    s += "</svg>\n";
    s
}

/// Grid, ticks with their labels, the frame and the axis titles.
fn axes(s: &mut String, p: &Plot, f: &Frame) {
    for (t, label) in linear_ticks(f.ay.lo, f.ay.hi, 6) {
        let y = f.ay.at(t);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            label
        );
    }
    for (t, label) in x_ticks(p, f.ax.lo, f.ax.hi) {
        let x = f.ax.at(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 16.0,
            label
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        PLOT_RIGHT - LEFT,
        BOTTOM - TOP
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
        (LEFT + PLOT_RIGHT) / 2.0,
        BOTTOM + 40.0,
        escape(&axis_title(&p.x))
    );
    let _ = write!(
        s,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" font-size="13" text-anchor="middle">{}</text>"#,
        (TOP + BOTTOM) / 2.0,
        escape(&axis_title(&p.y))
    );
}

/// The dense network: a grey band (mean ± sd) and a dashed line at its mean.
fn bands(s: &mut String, p: &Plot, f: &Frame) {
    for b in &p.bands {
        let top = f.ay.at((b.y.mean + b.y.sd) * f.sy);
        let low = f.ay.at((b.y.mean - b.y.sd) * f.sy);
        let mid = f.ay.at(b.y.mean * f.sy);
        let _ = write!(
            s,
            "<rect x=\"{LEFT}\" y=\"{top:.1}\" width=\"{}\" height=\"{:.1}\" fill=\"#888\" fill-opacity=\"0.2\"/>\
             <line x1=\"{LEFT}\" y1=\"{mid:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{mid:.1}\" stroke=\"#555\" stroke-dasharray=\"6 4\"/>",
            PLOT_RIGHT - LEFT,
            (low - top).max(0.0)
        );
    }
}

/// Each series: its spread over seeds as a band, its means as a line with markers.
fn series(s: &mut String, p: &Plot, f: &Frame) {
    let at = |x: f64, y: f64| (f.ax.at(x * f.sx), f.ay.at(y * f.sy));
    for (i, series) in p.series.iter().enumerate() {
        let (c, dash) = style(i);
        let pts = &series.points;
        if pts.iter().any(|pt| pt.y.n > 1) {
            let upper = pts.iter().map(|pt| at(pt.x, pt.y.mean + pt.y.sd));
            let lower = pts.iter().rev().map(|pt| at(pt.x, pt.y.mean - pt.y.sd));
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
        let line: Vec<(f64, f64)> = pts.iter().map(|pt| at(pt.x, pt.y.mean)).collect();
        let points: Vec<String> = line.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(&series.label)
        );
        for (x, y) in line {
            let _ = write!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"/>"#);
        }
    }
}

/// The legend, right of the plot: the series, then the dense bands.
fn legend(s: &mut String, p: &Plot) {
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
