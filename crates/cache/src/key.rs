//! The exact-cache key: a SHA-256 over a canonical encoding of everything in a request that
//! can change the answer, and nothing that cannot.
//!
//! Canonical means: message text with whitespace runs collapsed and ends trimmed (a trailing
//! newline from a client's template must not split the cache), JSON values (tool schemas,
//! tool-call arguments, `response_format`) re-serialised with sorted keys, and every field
//! length-prefixed so that no two different requests can encode to the same bytes. Fields
//! that do not change the output (`stream`, `stream_options`, `user`) are left out, so a
//! streamed and a plain request share an entry.

use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent};

/// A 32-byte digest of the output-relevant part of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey(pub [u8; 32]);

impl ExactKey {
    /// The key of `req`. Pure: the same request always gives the same key, across processes
    /// and versions of this crate that keep `VERSION`.
    pub fn of(req: &ChatCompletionRequest) -> ExactKey {
        let mut h = Enc(Sha256::new());
        // A version tag, so a change of encoding never serves entries written by the old one.
        h.str("switchyard-cache/exact/v1");
        h.str(&req.model);
        h.u64(req.messages.len() as u64);
        for m in &req.messages {
            message(&mut h, m);
        }
        h.opt_f64(req.temperature);
        h.opt_f64(req.top_p);
        h.opt(req.seed.map(|s| s as u64));
        h.opt(req.output_cap().map(u64::from));
        h.opt(req.n.map(u64::from));
        let stops = req.stop_sequences();
        h.u64(stops.len() as u64);
        for s in &stops {
            h.str(s);
        }
        h.opt_json(
            req.tools
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
        );
        h.opt_json(
            req.tool_choice
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
        );
        h.opt_json(
            req.response_format
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.0.finalize());
        ExactKey(out)
    }

    /// Lower-case hex, for logs and the shared (Redis) store later.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn message(h: &mut Enc, m: &ChatMessage) {
    h.str(m.role.as_str());
    h.opt_str(m.name.as_deref());
    match &m.content {
        None => h.u64(0),
        Some(MessageContent::Text(t)) => {
            h.u64(1);
            h.str(&normalise_ws(t));
        }
        Some(MessageContent::Parts(parts)) => {
            // Non-text parts (images) are hashed whole: a different picture is a different
            // question even when the words around it match.
            h.u64(2);
            h.u64(parts.len() as u64);
            for p in parts {
                h.str(&p.kind);
                h.opt_str(p.text.as_deref().map(normalise_ws).as_deref());
                h.json(&Value::Object(p.extra.clone()));
            }
        }
    }
    let calls = m.tool_calls.as_deref().unwrap_or_default();
    h.u64(calls.len() as u64);
    for c in calls {
        // The call id is a random handle the provider made up; the name and arguments are
        // what the conversation says.
        h.str(&c.function.name);
        match serde_json::from_str::<Value>(&c.function.arguments) {
            Ok(v) => h.json(&v),
            Err(_) => h.str(&c.function.arguments),
        }
    }
    h.opt_str(m.tool_call_id.as_deref());
}

/// Trims the ends and collapses every run of whitespace to one space.
pub fn normalise_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// A length-prefixed, type-tagged encoder over the hasher.
struct Enc(Sha256);

impl Enc {
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.update(s.as_bytes());
    }
    fn opt(&mut self, v: Option<u64>) {
        match v {
            None => self.0.update([0u8]),
            Some(v) => {
                self.0.update([1u8]);
                self.u64(v);
            }
        }
    }
    fn opt_f64(&mut self, v: Option<f64>) {
        // `0.0` and `-0.0` are the same temperature.
        self.opt(v.map(|f| if f == 0.0 { 0 } else { f.to_bits() }));
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.0.update([0u8]),
            Some(s) => {
                self.0.update([1u8]);
                self.str(s);
            }
        }
    }
    fn opt_json(&mut self, v: Option<Value>) {
        match v {
            None => self.0.update([0u8]),
            Some(v) => {
                self.0.update([1u8]);
                self.json(&v);
            }
        }
    }
    /// Canonical JSON: object keys sorted, whatever order the map kept them in.
    fn json(&mut self, v: &Value) {
        match v {
            Value::Null => self.0.update([b'n']),
            Value::Bool(b) => self.0.update([b'b', u8::from(*b)]),
            Value::Number(n) => {
                self.0.update([b'#']);
                self.str(&n.to_string());
            }
            Value::String(s) => {
                self.0.update([b's']);
                self.str(s);
            }
            Value::Array(a) => {
                self.0.update([b'a']);
                self.u64(a.len() as u64);
                for x in a {
                    self.json(x);
                }
            }
            Value::Object(o) => {
                self.0.update([b'o']);
                self.u64(o.len() as u64);
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                for k in keys {
                    self.str(k);
                    if let Some(x) = o.get(k) {
                        self.json(x);
                    }
                }
            }
        }
    }
}
