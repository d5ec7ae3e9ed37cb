//! Content keys: SHA-256 over the canonical JSON of a step's spec and its inputs' keys.
//! serde_json's map is ordered by key, so the text is canonical; defaults are left out of
//! specs by their `canonical()` methods, so adding an option with a default keeps old keys.

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

/// Bumped only when the meaning of a spec changes incompatibly (it invalidates every cache).
pub const KEY_VERSION: u32 = 1;

pub fn step_key(kind: &str, spec: &Json, inputs: &[String]) -> String {
    let text =
        json!({ "v": KEY_VERSION, "kind": kind, "spec": spec, "inputs": inputs }).to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
