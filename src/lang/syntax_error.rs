//! pest's parse errors → diagnostics that name what was expected in the user's words.

use super::parser::Rule;
use super::source::{FileId, Span};
use crate::diag::{code, Diag};

/// What users call each grammar rule in "expected ..." messages.
fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of file",
        Rule::import | Rule::kw_import => "`import`",
        Rule::network_def | Rule::kw_network => "`network`",
        Rule::record_def | Rule::record_kind => {
            "a definition (`dataset`, `recipe`, `pruning`, `experiment`, `report`)"
        }
        Rule::ident | Rule::field_name => "a name",
        Rule::record => "`{`",
        Rule::layer_block => "`{` and a list of layers",
        Rule::layer | Rule::call_layer => "a layer",
        Rule::alias | Rule::assign => "`=`",
        Rule::params => "`(`",
        Rule::input_shape | Rule::kw_on => "`on`",
        Rule::field => "a field `name = value`",
        Rule::expr
        | Rule::with_expr
        | Rule::logic
        | Rule::compare
        | Rule::range
        | Rule::sum
        | Rule::product
        | Rule::unary
        | Rule::postfix => "a value",
        Rule::quantity | Rule::number => "a number",
        Rule::unit => "a unit (`it` or `ep`)",
        Rule::string => "a string",
        Rule::args => "`(`",
        Rule::arg | Rule::named_arg => "an argument",
        Rule::index => "`[`",
        Rule::clause | Rule::kw_for | Rule::kw_until => "`for` or `until`",
        Rule::kw_with => "`with`",
        Rule::kw_as => "`as`",
        Rule::cmp_op => "a comparison",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::kw_in => "`in`",
        Rule::kw_then => "`then`",
        Rule::kw_else => "`else`",
        Rule::kw_by => "`by`",
        Rule::percent => "`%`",
        _ => return None,
    })
}

pub(super) fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diag {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let pos = pos.min(text.len());
    // Point at the offending token (or the end of file), not just one byte of it.
    let rest = &text[pos..];
    let token_len = if rest.is_empty() {
        0
    } else {
        let first_char = rest.chars().next().map_or(1, char::len_utf8);
        let word: usize = rest
            .char_indices()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .map(|(_, c)| c.len_utf8())
            .sum();
        word.max(first_char)
    };
    let found = if rest.is_empty() {
        "end of file".to_string()
    } else {
        format!("`{}`", &rest[..token_len])
    };
    let expected = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(rule_name).collect();
            names.sort_unstable();
            names.dedup();
            names
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    const RESERVED: &[&str] = &[
        "import", "with", "for", "until", "in", "on", "as", "require", "sweep", "true", "false",
        "it", "ep", "mod", "and", "or", "by", "if", "then", "else",
    ];
    let word = &rest[..token_len];
    let reserved = format!("`{word}` is a reserved word: choose another name");
    let help = if expected.contains(&"a name") && RESERVED.contains(&word) {
        reserved.as_str()
    } else if found == "`}`" || found == "`)`" || found == "`]`" {
        "check that every bracket is closed by its own kind and in order"
    } else if rest.starts_with('=') {
        "a field is written `name = value`; arguments are written `name: value`"
    } else if rest.starts_with(':') {
        "fields are written `name = value`; `name: value` is for arguments inside `( )`"
    } else {
        "see docs/language.md for the syntax of definitions, fields and values"
    };
    Diag::error(
        code::PARSE_SYNTAX,
        file,
        Span::new(pos, pos + token_len),
        message,
    )
    .label("unexpected here")
    .help(help)
}

fn join_or(items: &[&str]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].to_string(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}
