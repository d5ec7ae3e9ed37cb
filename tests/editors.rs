//! The VS Code extension in editors/vscode: its manifest points at files that exist, its
//! grammar knows every kind of definition the language has, its patterns are valid regular
//! expressions, and it starts `lthc lsp`.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn patterns(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("match" | "begin" | "end", Value::String(s)) => out.push(s.clone()),
                    _ => patterns(x, out),
                }
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| patterns(x, out)),
        _ => {}
    }
}

#[test]
fn the_vscode_extension_is_complete() {
    let manifest = json("editors/vscode/package.json");
    let language = &manifest["contributes"]["languages"][0];
    assert_eq!(language["extensions"][0], ".lth");
    for key in [
        &manifest["contributes"]["grammars"][0]["path"],
        &language["configuration"],
        &manifest["main"],
    ] {
        let file = root().join("editors/vscode").join(key.as_str().unwrap());
        assert!(file.is_file(), "{} is missing", file.display());
    }
    assert!(manifest["dependencies"]["vscode-languageclient"].is_string());
    let client = std::fs::read_to_string(root().join("editors/vscode/extension.js")).unwrap();
    assert!(
        client.contains("args: [\"lsp\"]"),
        "the client starts `lthc lsp`"
    );

    // Every kind of definition in the grammar is highlighted as one.
    let grammar = json("editors/vscode/syntaxes/lth.tmLanguage.json");
    let definitions = grammar["repository"]["definitions"]["match"]
        .as_str()
        .unwrap();
    let pest = std::fs::read_to_string(root().join("grammar/lth.pest")).unwrap();
    let kinds_line = pest.lines().find(|l| l.starts_with("record_kind")).unwrap();
    let mut kinds: Vec<&str> = kinds_line.split('"').skip(1).step_by(2).collect();
    kinds.push("network");
    for kind in kinds {
        assert!(
            definitions.contains(kind),
            "`{kind}` is not highlighted as a definition"
        );
    }

    // The patterns compile (JavaScript's RegExp is close to the Oniguruma VS Code uses).
    let mut all = Vec::new();
    patterns(&grammar, &mut all);
    assert!(all.len() >= 10);
    let script = format!(
        "for (const p of {}) {{ new RegExp(p); }}",
        serde_json::to_string(&all).unwrap()
    );
    match std::process::Command::new("node")
        .args(["-e", &script])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("skipped the regular-expression check: no node on the PATH"),
    }
}
