//! The parser and checker must never panic, whatever they are fed: random text, and valid
//! programs mutated in small ways (the inputs an editor sends while someone types).

mod common;

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../experiments/table1.lth"),
    include_str!("../experiments/fig4.lth"),
    include_str!("../experiments/fig8.lth"),
    include_str!("../experiments/quickstart.lth"),
    include_str!("../stdlib/networks.lth"),
    include_str!("../stdlib/datasets.lth"),
    include_str!("../stdlib/recipes.lth"),
];

/// Tokens of the language, so random programs get past the first character.
const TOKENS: &[&str] = &[
    "network",
    "experiment",
    "recipe",
    "dataset",
    "pruning",
    "report",
    "executor",
    "import",
    "\"stdlib/mnist.lth\"",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "=",
    ":",
    ",",
    "..",
    "with",
    "for",
    "until",
    "sweep",
    "repeat",
    "residual",
    "concat",
    "branch",
    "shortcut",
    "require",
    "if",
    "then",
    "else",
    "mod",
    "and",
    "-",
    "+",
    "*",
    "/",
    "%",
    "0",
    "1",
    "3",
    "-7",
    "30k",
    "1e999",
    "0.5",
    "9999999999999999999",
    "it",
    "ep",
    "lenet",
    "mnist",
    "conv",
    "dense",
    "relu",
    "flatten",
    "x",
    "n",
    "levels",
    "density",
    "magnitude",
    "global",
    "layerwise",
    "lenet_adam",
    "resnet_cifar",
    "\n",
    " ",
    "//",
    "#",
    "\"",
    "…",
    "é",
];

/// Checks `text`; and formats it: formatting never panics, never turns text that parses into
/// text that does not, and formatting its output changes nothing.
fn check_text(text: &str) {
    let _ = common::check_one(text);
    let formatted = lthc::lang::format::format(text);
    assert_eq!(
        lthc::lang::format::format(&formatted),
        formatted,
        "{text:?}"
    );
    if lthc::lang::parse(lthc::lang::FileId(0), text).is_ok() {
        assert!(
            lthc::lang::parse(lthc::lang::FileId(0), &formatted).is_ok(),
            "{text:?} -> {formatted:?}"
        );
    }
}

fn mutate(base: &str, ops: &[(u8, usize, usize, usize)]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for &(op, a, b, t) in ops {
        if s.is_empty() {
            break;
        }
        let i = a % s.len();
        let j = (i + b % 40).min(s.len());
        match op % 4 {
            0 => {
                s.drain(i..j);
            }
            1 => {
                let tok: Vec<char> = TOKENS[t % TOKENS.len()].chars().collect();
                s.splice(i..i, tok);
            }
            2 => {
                let copy: Vec<char> = s[i..j].to_vec();
                s.splice(i..i, copy);
            }
            _ => {
                if let Some(c) = s.get_mut(i) {
                    *c = match *c {
                        '0'..='8' => ((*c as u8) + 1) as char,
                        '9' => '0',
                        '{' => '(',
                        ')' => ']',
                        '=' => ':',
                        ',' => ' ',
                        other => other,
                    };
                }
            }
        }
    }
    s.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_token_soup_never_panics(tokens in prop::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = tokens.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        check_text(&text);
    }

    #[test]
    fn random_bytes_never_panic(text in "\\PC{0,200}") {
        check_text(&text);
    }

    #[test]
    fn mutated_programs_never_panic(
        seed in 0..SEEDS.len(),
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        check_text(&mutate(SEEDS[seed], &ops));
    }
}

/// A committed corpus of inputs that once tripped checkers like this one.
#[test]
fn corpus_never_panics() {
    let corpus = [
        "",
        "network",
        "network n on [] { }",
        "network n on [0, 1, 1] { dense(1) }",
        "network n on [1] { dense(99999999999) }",
        "network n on [1] { repeat(1000000) { relu } dense(1) }",
        "network n(x...) on [1] { for i in x { dense(i) } dense(1) }",
        "network n on [3, 9, 9] { concat { } }",
        "network n on [3, 9, 9] { residual { } flatten dense(2) }",
        "network n on [3, 9, 9] { aux { relu } flatten dense(2) }",
        "network n on [2] { dense(2) } network m = n(1, 2, 3)",
        "network a = b network b = a",
        "recipe a = a",
        "experiment e = e with { }",
        "pruning p = p for 2 levels",
        "pruning p = magnitude(global, 20%) for 9999999999999999999 levels",
        "experiment e { seeds = 0..9223372036854775807 }",
        "experiment e { rewind = sweep 1..99999999 }",
        "import \"\"",
        "import \"stdlib/\"",
        "report r { experiments = [r] }",
        "network n(k = 1 / 0) on [1] { dense(k) }",
        "network n on [1] { dense(-9223372036854775807 - 1) }",
        "network n on [1] { dense([1, 2][5]) }",
        "network n on [1] { dense(first([])) }",
    ];
    for c in corpus {
        check_text(c);
    }
}
