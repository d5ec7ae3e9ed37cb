//! One self-contained HTML page per report: title, tables, the plots inline (SVG), what is
//! missing, and the `.lth` source of its experiments. No scripts, no external files.

use super::format::{cells, ticket_cells};
use super::svg::escape;
use super::Report;

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}\
th{background:#f4f4f4}td.t,th.t{text-align:left}\
.missing{color:#a33}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:12px}\
figure{margin:1em 0}";

fn table(head: &[String], body: &[Vec<String>]) -> String {
    // Text columns left-aligned, numbers right-aligned.
    let text: Vec<bool> = (0..head.len())
        .map(|i| {
            body.iter()
                .any(|l| !l[i].starts_with(|c: char| c.is_ascii_digit() || c == '-'))
        })
        .collect();
    let class = |i: usize| if text[i] { " class=\"t\"" } else { "" };
    let mut out = String::from("<table><thead><tr>");
    for (i, h) in head.iter().enumerate() {
        out += &format!("<th{}>{}</th>", class(i), escape(h));
    }
    out += "</tr></thead><tbody>";
    for line in body {
        out += "<tr>";
        for (i, c) in line.iter().enumerate() {
            out += &format!("<td{}>{}</td>", class(i), escape(c));
        }
        out += "</tr>";
    }
    out + "</tbody></table>"
}

/// The page; `svgs` are the report's plots, in order.
pub fn page(r: &Report, svgs: &[String]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head><body>\n<h1>{0}</h1>\n",
        escape(&r.title)
    );
    if !r.missing.is_empty() {
        out += "<h2>Missing results</h2><ul class=\"missing\">";
        for m in &r.missing {
            out += &format!("<li>{}</li>", escape(&m.line()));
        }
        out += "</ul>\n";
    }
    out += "<h2>Results</h2>\n<p>Mean ± standard deviation over seeds; n records per row.</p>\n";
    let (head, body) = cells(&r.table);
    out += &table(&head, &body);
    if !r.tickets.is_empty() {
        out += "\n<h2>Winning tickets</h2>\n<p>The smallest density at which the subnetwork's mean test accuracy is at least the dense network's.</p>\n";
        let (head, body) = ticket_cells(&r.tickets);
        out += &table(&head, &body);
    }
    if !svgs.is_empty() {
        out += "\n<h2>Plots</h2>\n";
        for (p, svg) in r.plots.iter().zip(svgs) {
            out += &format!(
                "<figure id=\"{}\">{}</figure>\n",
                escape(&p.file),
                svg.trim_end()
            );
        }
    }
    out += "\n<h2>Experiments</h2>\n";
    for (name, text) in &r.sources {
        out += &format!(
            "<details open><summary>{}</summary><pre>{}</pre></details>\n",
            escape(name),
            escape(text)
        );
    }
    out + "</body></html>\n"
}
