//! The Language Server Protocol's framing over a byte stream: `Content-Length` headers, then a
//! JSON body. Anything malformed is reported to the caller, never fatal: an editor (or a
//! broken client) must not be able to end the server by sending garbage.

use std::io::{BufRead, Write};

use serde_json::Value;

pub enum Incoming {
    Message(Value),
    /// A frame whose body is not a JSON message (answered with a parse error).
    Malformed(String),
    /// The client closed the stream.
    End,
}

/// Reads one frame. Headers other than `Content-Length` are ignored; a frame without one is
/// skipped up to the next blank line.
pub fn read(input: &mut impl BufRead) -> Incoming {
    loop {
        let mut length: Option<usize> = None;
        let mut saw_header = false;
        loop {
            let mut line = String::new();
            match input.read_line(&mut line) {
                Ok(0) => return Incoming::End,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    // Not UTF-8: skip it like any other header line.
                    saw_header = true;
                    continue;
                }
                Err(_) => return Incoming::End,
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if saw_header {
                    break;
                }
                continue;
            }
            saw_header = true;
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok();
                }
            }
        }
        let Some(length) = length.filter(|&n| n <= 64 << 20) else {
            continue;
        };
        let mut body = vec![0; length];
        if input.read_exact(&mut body).is_err() {
            return Incoming::End;
        }
        return match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => Incoming::Message(v),
            Ok(_) => Incoming::Malformed("a message must be a JSON object".into()),
            Err(e) => Incoming::Malformed(e.to_string()),
        };
    }
}

pub fn write(output: &mut impl Write, message: &Value) -> std::io::Result<()> {
    let body = message.to_string();
    write!(output, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    output.flush()
}
