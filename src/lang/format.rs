//! `lthc fmt`: one canonical layout for `.lth` text. It only moves whitespace, so it cannot
//! change what a file means, and it keeps every comment:
//!
//! - indentation is two spaces per line whose `{`, `[` or `(` are still open (however many
//!   one line opens); a line that starts by closing them sits at the outer level; lines inside
//!   a `/* */` comment are kept as they are;
//! - within a record, consecutive `field = value` lines align their `=` (as the standard
//!   library does); a blank line, a line of another kind, or a value that spans lines ends the
//!   group; comment lines inside a group do not;
//! - trailing whitespace goes, runs of blank lines become one, the file ends with one newline.
//!
//! Formatting formatted text changes nothing.

/// One line as the formatter sees it.
struct Line<'a> {
    /// The line without its indentation and trailing whitespace.
    text: &'a str,
    /// Inside a block comment from its start: kept verbatim.
    verbatim: bool,
    /// Indentation level.
    depth: usize,
    /// Whether the line leaves brackets open or closes ones from earlier lines.
    spans: bool,
    /// `name = ...`: the length of `name`.
    field: Option<usize>,
    /// Only a comment.
    comment: bool,
}

/// The brackets of `line`'s code (outside strings and comments), in order: +1 opens, -1
/// closes. Returns them, how many close before any other code, and whether the line ends
/// inside a block comment.
fn scan(line: &str, mut in_block: bool) -> (Vec<i8>, usize, bool) {
    let bytes = line.as_bytes();
    let (mut i, mut leading, mut seen_code) = (0, 0usize, false);
    let mut brackets = Vec::new();
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_block {
            if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
                in_block = false;
                i += 1;
            }
        } else if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => {
                    in_string = true;
                    seen_code = true;
                }
                b'#' => break,
                b'/' if bytes.get(i + 1) == Some(&b'/') => break,
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    in_block = true;
                    i += 1;
                }
                b'{' | b'[' | b'(' => {
                    brackets.push(1);
                    seen_code = true;
                }
                b'}' | b']' | b')' => {
                    brackets.push(-1);
                    if !seen_code {
                        leading += 1;
                    }
                }
                b' ' | b'\t' => {}
                _ => seen_code = true,
            }
        }
        i += 1;
    }
    (brackets, leading, in_block)
}

/// `name =` (not `==`) at the start of `text`: the name's length.
fn field_name(text: &str) -> Option<usize> {
    let name_len = text
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let first = text.bytes().next()?;
    if name_len == 0 || !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let rest = text[name_len..].trim_start();
    (rest.starts_with('=') && !rest.starts_with("==")).then_some(name_len)
}

fn lines(source: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    // Per line with brackets still open, how many.
    let mut open: Vec<usize> = Vec::new();
    let mut in_block = false;
    for raw in source.lines() {
        let verbatim = in_block;
        let text = if verbatim { raw.trim_end() } else { raw.trim() };
        let (brackets, leading, still_in_block) = scan(raw, in_block);
        let before = open.len();
        let mut opened_here = false;
        let mut depth = before;
        for (n, &b) in brackets.iter().enumerate() {
            if b > 0 {
                match open.last_mut() {
                    Some(top) if opened_here => *top += 1,
                    _ => open.push(1),
                }
                opened_here = true;
            } else if let Some(top) = open.last_mut() {
                *top -= 1;
                if *top == 0 {
                    open.pop();
                    opened_here = false;
                }
            }
            if n + 1 == leading {
                depth = open.len();
            }
        }
        let spans = opened_here || open.len() < before;
        let comment = !verbatim
            && (text.starts_with("//") || text.starts_with('#') || text.starts_with("/*"));
        let field = if verbatim || comment {
            None
        } else {
            field_name(text)
        };
        out.push(Line {
            text,
            verbatim,
            depth,
            spans,
            field,
            comment,
        });
        in_block = still_in_block;
    }
    out
}

/// The `=` column of each field line: groups of consecutive fields at one depth.
fn alignments(lines: &[Line]) -> Vec<Option<usize>> {
    let mut width = vec![None; lines.len()];
    let mut group: Vec<usize> = Vec::new();
    let flush = |group: &mut Vec<usize>, width: &mut Vec<Option<usize>>| {
        let w = group.iter().filter_map(|&i| lines[i].field).max();
        for &i in group.iter() {
            width[i] = w;
        }
        group.clear();
    };
    for (i, line) in lines.iter().enumerate() {
        if line.comment {
            continue;
        }
        match line.field {
            Some(_) if group.first().is_none_or(|&g| lines[g].depth == line.depth) => {
                group.push(i);
                if line.spans {
                    flush(&mut group, &mut width);
                }
            }
            Some(_) => {
                flush(&mut group, &mut width);
                group.push(i);
                if line.spans {
                    flush(&mut group, &mut width);
                }
            }
            None => flush(&mut group, &mut width),
        }
    }
    flush(&mut group, &mut width);
    width
}

/// `source` in the canonical layout.
pub fn format(source: &str) -> String {
    let lines = lines(source);
    let widths = alignments(&lines);
    let mut out = String::with_capacity(source.len());
    let mut blank_run = 0;
    for (line, width) in lines.iter().zip(widths) {
        if line.text.is_empty() {
            blank_run += 1;
            continue;
        }
        // At most one blank line, and none at the start of the file.
        if blank_run > 0 && !out.is_empty() {
            out.push('\n');
        }
        blank_run = 0;
        if line.verbatim {
            out += line.text;
            out.push('\n');
            continue;
        }
        out += &"  ".repeat(line.depth);
        match (line.field, width) {
            (Some(len), Some(w)) => {
                let (name, rest) = line.text.split_at(len);
                let value = rest.trim_start()[1..].trim_start();
                out += name;
                out += &" ".repeat(w - len);
                out += " =";
                if !value.is_empty() {
                    out.push(' ');
                    out += value;
                }
            }
            _ => out += line.text,
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn records_are_indented_and_aligned_and_comments_kept() {
        let messy = "\n\n// a recipe\nrecipe r {\n optimizer=sgd(lr: 0.1)   \n\t\tbatch = 60 // per step\n      duration =   2 ep\n\n\n  schedule = step(0.1, at: [\n1 ep,\n      2 ep])\n  init = glorot_normal\n}\n/* kept\n     as is */\nnetwork n on [4] { dense(2) }";
        let want = "// a recipe\nrecipe r {\n  optimizer = sgd(lr: 0.1)\n  batch     = 60 // per step\n  duration  = 2 ep\n\n  schedule = step(0.1, at: [\n    1 ep,\n    2 ep])\n  init = glorot_normal\n}\n/* kept\n     as is */\nnetwork n on [4] { dense(2) }\n";
        assert_eq!(format(messy), want);
        assert_eq!(format(want), want);
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = "dataset d {\n  source = \"a{b[(\" // ) ] }\n  format = idx # {\n}\n";
        let want = "dataset d {\n  source = \"a{b[(\" // ) ] }\n  format = idx # {\n}\n";
        assert_eq!(format(text), want);
    }

    #[test]
    fn comparisons_are_not_fields() {
        let text = "network n(k) on [4] {\n  require k == 2, \"two\"\n  dense(k)\n}\n";
        assert_eq!(format(text), text);
    }
}
