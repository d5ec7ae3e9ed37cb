//! `lthc lsp`: the Language Server Protocol over stdio. Diagnostics as the user types (the
//! checker's codes, spans, help lines and related places), hover, go to definition (into the
//! embedded standard library too), completion and formatting.
//!
//! Nothing a client sends can end the server but `exit`: a malformed frame gets a parse error,
//! an unknown request "method not found", bad parameters "invalid params", and a bug in a
//! handler an internal error for that request alone.

mod analysis;
mod transport;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use lsp_types::{Position, Range, TextEdit, Url};
use serde_json::{json, Value};

use transport::Incoming;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// The open documents, by path (what the checker reads) with their URIs (what the client
/// calls them).
#[derive(Default)]
struct Server {
    open: HashMap<PathBuf, String>,
    uris: HashMap<PathBuf, Url>,
    shutdown: bool,
}

/// What a request's handler failed on.
struct Failure(i64, String);

fn invalid(e: impl std::fmt::Display) -> Failure {
    Failure(INVALID_PARAMS, e.to_string())
}

/// Serves one client until `exit` (or the end of its input); returns the exit code.
pub fn serve(input: impl Read, mut output: impl Write) -> i32 {
    let mut input = BufReader::new(input);
    let mut server = Server::default();
    loop {
        let message = match transport::read(&mut input) {
            Incoming::End => return i32::from(!server.shutdown),
            Incoming::Malformed(why) => {
                let reply = json!({"jsonrpc": "2.0", "id": null, "error": {"code": PARSE_ERROR, "message": why}});
                if transport::write(&mut output, &reply).is_err() {
                    return 1;
                }
                continue;
            }
            Incoming::Message(m) => m,
        };
        let method = message["method"].as_str().unwrap_or_default().to_string();
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let Some(id) = message.get("id").cloned() else {
            // A notification: no reply.
            if method == "exit" {
                return i32::from(!server.shutdown);
            }
            let outgoing = guarded(|| server.notify(&method, params)).unwrap_or_default();
            for m in outgoing {
                if transport::write(&mut output, &m).is_err() {
                    return 1;
                }
            }
            continue;
        };
        let reply = if method.is_empty() {
            // A response to something we never asked, or a request without a method.
            if message.get("result").is_some() || message.get("error").is_some() {
                continue;
            }
            Err(Failure(INVALID_REQUEST, "a request needs a method".into()))
        } else {
            guarded(|| server.request(&method, params))
                .unwrap_or_else(|| Err(Failure(INTERNAL_ERROR, format!("lthc failed on {method}"))))
        };
        let reply = match reply {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(Failure(code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        };
        if transport::write(&mut output, &reply).is_err() {
            return 1;
        }
    }
}

/// Runs a handler; a panic in it (a bug) costs that message, not the server.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

fn document(params: &Value) -> Result<(Url, PathBuf), Failure> {
    let uri: Url =
        serde_json::from_value(params["textDocument"]["uri"].clone()).map_err(invalid)?;
    let path = uri
        .to_file_path()
        .unwrap_or_else(|_| PathBuf::from(uri.path()));
    Ok((uri, path))
}

fn position(params: &Value) -> Result<Position, Failure> {
    serde_json::from_value(params["position"].clone()).map_err(invalid)
}

impl Server {
    fn request(&mut self, method: &str, params: Value) -> Result<Value, Failure> {
        match method {
            "initialize" => Ok(json!({
                "capabilities": {
                    "textDocumentSync": 1,
                    "hoverProvider": true,
                    "definitionProvider": true,
                    "completionProvider": { "triggerCharacters": [] },
                    "documentFormattingProvider": true,
                },
                "serverInfo": { "name": "lthc", "version": env!("CARGO_PKG_VERSION") },
            })),
            "shutdown" => {
                self.shutdown = true;
                Ok(Value::Null)
            }
            "textDocument/hover" => {
                let a = self.analyse(&params)?;
                Ok(match a.hover(position(&params)?) {
                    Some((text, range)) => json!({
                        "contents": { "kind": "markdown", "value": text },
                        "range": range,
                    }),
                    None => Value::Null,
                })
            }
            "textDocument/definition" => {
                let a = self.analyse(&params)?;
                Ok(serde_json::to_value(a.definition(position(&params)?)).unwrap_or_default())
            }
            "textDocument/completion" => {
                let a = self.analyse(&params)?;
                Ok(serde_json::to_value(a.completion(position(&params)?)).unwrap_or_default())
            }
            "textDocument/formatting" => {
                let (_, path) = document(&params)?;
                let text = self.text(&path)?;
                if crate::lang::parse(crate::lang::FileId(0), &text).is_err() {
                    // Text that does not parse is not reformatted (its diagnostics say why).
                    return Ok(Value::Null);
                }
                let formatted = crate::lang::format::format(&text);
                let end = analysis::position(&text, text.len());
                let edits = if formatted == text {
                    Vec::new()
                } else {
                    vec![TextEdit::new(
                        Range::new(Position::new(0, 0), end),
                        formatted,
                    )]
                };
                Ok(serde_json::to_value(edits).unwrap_or_default())
            }
            other => Err(Failure(
                METHOD_NOT_FOUND,
                format!("lthc does not handle `{other}`"),
            )),
        }
    }

    /// Handles a notification; returns the messages it sends (diagnostics).
    fn notify(&mut self, method: &str, params: Value) -> Vec<Value> {
        match method {
            "textDocument/didOpen" => {
                let Ok((uri, path)) = document(&params) else {
                    return Vec::new();
                };
                let text = params["textDocument"]["text"].as_str().unwrap_or_default();
                self.open.insert(path.clone(), text.to_string());
                self.uris.insert(path, uri);
                self.publish_all()
            }
            "textDocument/didChange" => {
                let Ok((uri, path)) = document(&params) else {
                    return Vec::new();
                };
                let mut text = self.open.get(&path).cloned().unwrap_or_default();
                for change in params["contentChanges"].as_array().into_iter().flatten() {
                    let new = change["text"].as_str().unwrap_or_default();
                    match serde_json::from_value::<Range>(change["range"].clone()) {
                        // Incremental edits, from clients that send them anyway.
                        Ok(r) => {
                            let start = analysis::offset(&text, r.start);
                            let end = analysis::offset(&text, r.end).max(start);
                            text.replace_range(start..end, new);
                        }
                        Err(_) => text = new.to_string(),
                    }
                }
                self.open.insert(path.clone(), text);
                self.uris.insert(path, uri);
                self.publish_all()
            }
            "textDocument/didSave" => self.publish_all(),
            "textDocument/didClose" => {
                let Ok((uri, path)) = document(&params) else {
                    return Vec::new();
                };
                self.open.remove(&path);
                self.uris.remove(&path);
                let mut out = self.publish_all();
                out.push(publish(&uri, Value::Array(Vec::new())));
                out
            }
            _ => Vec::new(),
        }
    }

    fn text(&self, path: &PathBuf) -> Result<String, Failure> {
        match self.open.get(path) {
            Some(t) => Ok(t.clone()),
            None => std::fs::read_to_string(path).map_err(invalid),
        }
    }

    fn analyse(&self, params: &Value) -> Result<analysis::Analysis, Failure> {
        let (_, path) = document(params)?;
        let mut open = self.open.clone();
        if !open.contains_key(&path) {
            open.insert(path.clone(), self.text(&path)?);
        }
        Ok(analysis::analyse(&path, &open))
    }

    /// Every open file is checked again: an edit in one changes what the files importing it
    /// mean.
    fn publish_all(&self) -> Vec<Value> {
        let mut paths: Vec<&PathBuf> = self.open.keys().collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| {
                let diags = guarded(|| analysis::analyse(path, &self.open).diagnostics())?;
                Some(publish(&self.uris[path], serde_json::to_value(diags).ok()?))
            })
            .collect()
    }
}

fn publish(uri: &Url, diagnostics: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "textDocument/publishDiagnostics",
        "params": { "uri": uri, "diagnostics": diagnostics },
    })
}
