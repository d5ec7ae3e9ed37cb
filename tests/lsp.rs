//! `lthc lsp` driven over stdio with JSON-RPC messages, as an editor does.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
}

fn frame(body: &str) -> Vec<u8> {
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lthc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, incoming) = channel();
        std::thread::spawn(move || loop {
            let mut length = 0;
            loop {
                let mut line = String::new();
                if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim();
                if line.is_empty() {
                    break;
                }
                if let Some(n) = line.strip_prefix("Content-Length: ") {
                    length = n.parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            stdout.read_exact(&mut body).unwrap();
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        });
        Client {
            child,
            stdin,
            incoming,
            next_id: 1,
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        let m = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.raw(&frame(&m.to_string()));
    }

    fn next(&self) -> Value {
        self.incoming
            .recv_timeout(Duration::from_secs(60))
            .expect("no message from the server")
    }

    /// Sends a request; returns its response (skipping notifications in between).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let m = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.raw(&frame(&m.to_string()));
        loop {
            let reply = self.next();
            if reply["id"] == id {
                return reply;
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&self, uri: &str) -> Vec<Value> {
        loop {
            let m = self.next();
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                return m["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn doc(uri: &str, text: &str) -> Value {
    json!({"textDocument": {"uri": uri, "languageId": "lth", "version": 1, "text": text}})
}

fn at(uri: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
}

const PROGRAM: &str = "import \"stdlib/mnist.lth\"\n\nexperiment e {\n  network = lenett\n  data    = mnist\n  train   = lenet_adam\n  prune   = lenet_layerwise for 2 levels\n  \n}\n";

#[test]
fn an_editor_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap().join("main.lth");
    std::fs::write(&path, PROGRAM).unwrap();
    let u = uri(&path);
    let mut c = Client::start();

    let init = c.request("initialize", json!({"capabilities": {}}));
    let caps = &init["result"]["capabilities"];
    for cap in [
        "hoverProvider",
        "definitionProvider",
        "documentFormattingProvider",
    ] {
        assert_eq!(caps[cap], true, "{init}");
    }
    c.notify("initialized", json!({}));

    // Opening a file with an error: the checker's diagnostic, code, place and help.
    c.notify("textDocument/didOpen", doc(&u, PROGRAM));
    let diags = c.diagnostics(&u);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d["code"], "lth::name::unknown");
    assert_eq!(d["range"]["start"], json!({"line": 3, "character": 12}));
    assert_eq!(d["range"]["end"], json!({"line": 3, "character": 18}));
    assert!(d["message"].as_str().unwrap().contains("help:"), "{d}");
    assert!(d["message"].as_str().unwrap().contains("lenet"), "{d}");

    // Fixing it clears them.
    let fixed = PROGRAM.replace("lenett", "lenet");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": u, "version": 2}, "contentChanges": [{"text": fixed}]}),
    );
    assert!(c.diagnostics(&u).is_empty());

    // Hover on a network: its size.
    let hover = c.request("textDocument/hover", at(&u, 3, 14));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("network") && text.contains("266,610"),
        "{text}"
    );
    // With its prunable layers: LeNet-300-100's output layer is 100 × 10.
    assert!(text.contains("| 1,000 |"), "{text}");

    // A recipe in numbers on the experiment's dataset; a pruning's density per level.
    let hover = c.request("textDocument/hover", at(&u, 5, 14));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("on `mnist`: 917 iterations per epoch; 50,000 iterations = 54.5 epochs"),
        "{text}"
    );
    let hover = c.request("textDocument/hover", at(&u, 6, 14));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("density after level 1: "), "{text}");
    assert!(text.contains(", 2: "), "{text}");

    // Go to definition: into the embedded standard library, as a file that exists.
    let def = c.request("textDocument/definition", at(&u, 5, 14));
    let target = def["result"]["uri"].as_str().unwrap().to_string();
    let file = target.strip_prefix("file://").unwrap();
    let line = def["result"]["range"]["start"]["line"].as_u64().unwrap() as usize;
    let stdlib = std::fs::read_to_string(file).unwrap();
    assert!(
        stdlib
            .lines()
            .nth(line)
            .unwrap()
            .contains("recipe lenet_adam"),
        "{def}"
    );

    // Completion inside the experiment: its fields, and names it can use.
    let items = c.request("textDocument/completion", at(&u, 7, 2));
    let labels: Vec<&str> = items["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    for want in [
        "rewind",
        "prune",
        "seeds",
        "lenet_adam",
        "mnist",
        "it",
        "magnitude",
    ] {
        assert!(labels.contains(&want), "{want} not in {labels:?}");
    }

    // Formatting: one edit that gives the canonical layout.
    let messy = "import \"stdlib/mnist.lth\"\nexperiment e {\nnetwork=lenet\n   data = mnist\n  train = lenet_adam\n}\n";
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": u, "version": 3}, "contentChanges": [{"text": messy}]}),
    );
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": u}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    let edits = edits["result"].as_array().unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0]["newText"],
        lthc::lang::format::format(messy),
        "{edits:?}"
    );

    let bye = c.request("shutdown", Value::Null);
    assert!(
        bye["result"].is_null() && bye.get("error").is_none(),
        "{bye}"
    );
    c.notify("exit", Value::Null);
    assert_eq!(c.child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_change_in_an_imported_file_reaches_the_files_that_import_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let (a, b) = (d.join("recipes.lth"), d.join("main.lth"));
    let recipes =
        "recipe mine {\n  optimizer = sgd(lr: 0.1)\n  batch     = 60\n  duration  = 100 it\n}\n";
    let main = "import \"stdlib/mnist.lth\"\nimport \"recipes.lth\"\n\nexperiment e {\n  network = lenet\n  data    = mnist\n  train   = mine\n}\n";
    std::fs::write(&a, recipes).unwrap();
    std::fs::write(&b, main).unwrap();
    let (ua, ub) = (uri(&a), uri(&b));
    let mut c = Client::start();
    c.request("initialize", json!({"capabilities": {}}));
    c.notify("textDocument/didOpen", doc(&ub, main));
    assert!(c.diagnostics(&ub).is_empty());
    c.notify("textDocument/didOpen", doc(&ua, recipes));
    // Renaming the recipe, unsaved: the importing file now names something that is not there.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": ua, "version": 2}, "contentChanges": [{"text": recipes.replace("mine", "yours")}]}),
    );
    let diags = loop {
        let diags = c.diagnostics(&ub);
        if !diags.is_empty() {
            break diags;
        }
    };
    assert_eq!(diags[0]["code"], "lth::name::unknown", "{diags:?}");
    // Hover on a unit says what it means.
    let hover = c.request("textDocument/hover", at(&ua, 3, 19));
    let text = hover["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("iterations"), "{hover}");
    // Go to definition across the import.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": ua, "version": 3}, "contentChanges": [{"text": recipes}]}),
    );
    let def = c.request("textDocument/definition", at(&ub, 6, 13));
    assert_eq!(def["result"]["uri"], ua, "{def}");
    assert_eq!(
        def["result"]["range"]["start"],
        json!({"line": 0, "character": 7})
    );
}

#[test]
fn malformed_messages_and_random_edits_never_end_the_server() {
    let mut c = Client::start();
    c.request("initialize", json!({"capabilities": {}}));
    // Bodies that are not JSON, or not objects; a frame with no length; unknown methods;
    // requests with the wrong parameters.
    c.raw(&frame("{not json"));
    assert_eq!(c.next()["error"]["code"], -32700);
    c.raw(&frame("[1, 2, 3]"));
    assert_eq!(c.next()["error"]["code"], -32700);
    c.raw(b"X-Nonsense: 1\r\n\r\n");
    c.raw(&frame("\u{0}\u{1}garbage"));
    assert_eq!(c.next()["error"]["code"], -32700);
    let r = c.request("no/such/method", json!({}));
    assert_eq!(r["error"]["code"], -32601);
    let r = c.request("textDocument/hover", json!({"textDocument": 5}));
    assert_eq!(r["error"]["code"], -32602);
    c.notify("textDocument/didChange", json!({"nonsense": true}));

    // Random edits, as someone types: whole texts and ranges far outside the document.
    let u = "file:///nonexistent/dir/typing.lth";
    c.notify("textDocument/didOpen", doc(u, PROGRAM));
    let mut rng = lthc::rng::Rng::new(7);
    let pieces = [
        "{",
        "}",
        "experiment",
        " = ",
        "lenet",
        "\"",
        "é",
        "😀",
        "\n",
        "[",
        "(",
        "0.1",
        "it",
        "import \"",
        "with {",
    ];
    for i in 0..200 {
        let change = if i % 3 == 0 {
            let text: String = (0..rng.below(40))
                .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                .collect();
            json!({"text": text})
        } else {
            let p = |r: &mut lthc::rng::Rng| json!({"line": r.below(12), "character": r.below(30)});
            let (s, e) = (p(&mut rng), p(&mut rng));
            json!({"range": {"start": s, "end": e}, "text": pieces[rng.below(pieces.len() as u64) as usize]})
        };
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": u, "version": i + 2}, "contentChanges": [change]}),
        );
        if i % 20 == 0 {
            let line = rng.below(10);
            let col = rng.below(20);
            for m in [
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
                "textDocument/formatting",
            ] {
                let r = c.request(m, at(u, line as u32, col as u32));
                assert!(
                    r.get("error").is_none() || r["error"]["code"] != -32603,
                    "{m}: {r}"
                );
            }
        }
    }
    // Still answering, and it ends cleanly.
    let r = c.request("textDocument/hover", at(u, 0, 0));
    assert!(r.get("error").is_none(), "{r}");
    c.request("shutdown", Value::Null);
    c.notify("exit", Value::Null);
    assert_eq!(c.child.wait().unwrap().code(), Some(0));
}
