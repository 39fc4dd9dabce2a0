//! The cache's keys. A request is split into its *words* (the text of the conversation's user
//! and assistant turns) and its *shape* (everything else), so that only the words are ever
//! compared by embedding.
//!
//! 1. The shape ([`Shape`]) is a SHA-256 over everything in a request that can change the
//!    answer: sampling and output parameters, tools and their schemas, `tool_choice`,
//!    `response_format`, stop sequences, caps, and every field this crate does not know
//!    (`extra`: `functions`, `logit_bias`, `modalities`, a parameter invented next year),
//!    because the request is serialised whole and only [`NOT_SHAPING`] and `model` (the
//!    scope names the route) are taken out.
//! 2. Of the conversation, the shape keeps the structure and the data: each message's role,
//!    name and extra fields, tool calls with their arguments (as JSON), non-text parts
//!    (images, audio) whole, the system and developer messages' text, and the text of tool
//!    and function results (data, which must match exactly and never by paraphrase). Tool
//!    call ids are replaced by their order of first appearance: they are handles a provider
//!    made up, and only which result answers which call matters.
//! 3. The exact key ([`ExactKey`]) is the model, the shape and every message's words.
//! 4. The semantic tier searches only among entries of the same shape (it is part of the
//!    `Scope`), so a semantic hit is always an answer to a request of the same kind: never
//!    plain text for a forced tool call, a call to a tool the request did not offer, or
//!    free text where a JSON schema was asked for.
//!
//! Canonical means: text with whitespace runs collapsed and ends trimmed (a trailing newline
//! from a client's template must not split the cache), JSON objects hashed with sorted keys,
//! and every field length-prefixed and type-tagged so that no two different requests encode
//! to the same bytes.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent};

/// The request fields that never change the answer, left out of every key: how the answer is
/// framed (`stream`, `stream_options`), who asks (`user`, `safety_identifier`), what the
/// provider keeps or how fast it serves (`store`, `metadata`, `prompt_cache_key`,
/// `service_tier`). Every other field shapes the answer, known or not.
pub const NOT_SHAPING: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "store",
    "metadata",
    "prompt_cache_key",
    "service_tier",
];

/// A 32-byte digest of a request's shape: everything but its words (module comment, 1. and
/// 2.).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape(pub [u8; 32]);

impl Shape {
    /// The shape of `req`. Pure, and stable across processes and versions of this crate that
    /// keep its version tag.
    pub fn of(req: &ChatCompletionRequest) -> Shape {
        let mut h = Enc(Sha256::new());
        // A version tag, so a change of encoding never serves entries written by the old one.
        h.str("switchyard-cache/shape/v1");
        h.json(&shape_value(req));
        Shape(h.finish())
    }
}

/// The request as JSON without its words, without `model` and without [`NOT_SHAPING`].
fn shape_value(req: &ChatCompletionRequest) -> Value {
    let mut fields = match serde_json::to_value(req) {
        Ok(Value::Object(fields)) => fields,
        // Not reachable with these types; should it ever be, the debug form still holds every
        // field, so two different requests never share a shape.
        _ => return Value::String(format!("{req:?}")),
    };
    fields.remove("model");
    for name in NOT_SHAPING {
        fields.remove(*name);
    }
    let mut ids = Vec::new();
    let messages = match fields.remove("messages") {
        Some(Value::Array(messages)) => messages
            .into_iter()
            .map(|m| message_shape(m, &mut ids))
            .collect(),
        _ => Vec::new(),
    };
    fields.insert("messages".to_owned(), Value::Array(messages));
    Value::Object(fields)
}

/// Where the words of a user or assistant turn were: `content` and a text part's `text` are
/// strings (or null) in any request, so a boolean cannot be confused with them.
const WORDS: Value = Value::Bool(true);

/// One message without its words (module comment, 2.).
fn message_shape(mut m: Value, ids: &mut Vec<String>) -> Value {
    let Value::Object(o) = &mut m else {
        return m;
    };
    let words = matches!(
        o.get("role").and_then(Value::as_str),
        Some("user" | "assistant")
    );
    let text = |t: &mut Value| match t {
        Value::String(_) if words => *t = WORDS,
        Value::String(s) => *s = normalise_ws(s),
        _ => {}
    };
    match o.get_mut("content") {
        Some(Value::Array(parts)) => {
            for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                if part.get("type").and_then(Value::as_str) == Some("text") {
                    if let Some(t) = part.get_mut("text") {
                        text(t);
                    }
                }
            }
        }
        Some(content) => text(content),
        None => {}
    }
    if let Some(Value::Array(calls)) = o.get_mut("tool_calls") {
        for call in calls.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(Value::String(id)) = call.get_mut("id") {
                *id = ordinal(ids, id);
            }
            if let Some(Value::Object(f)) = call.get_mut("function") {
                arguments_as_json(f);
            }
        }
    }
    if let Some(Value::Object(f)) = o.get_mut("function_call") {
        arguments_as_json(f);
    }
    if let Some(Value::String(id)) = o.get_mut("tool_call_id") {
        *id = ordinal(ids, id);
    }
    m
}

/// Tool-call arguments are JSON text: the same object in another key order or spacing is the
/// same call. Text that is not JSON is kept as it is, tagged apart.
fn arguments_as_json(function: &mut Map<String, Value>) {
    if let Some(Value::String(args)) = function.get("arguments") {
        let tagged = match serde_json::from_str::<Value>(args) {
            Ok(v) => serde_json::json!({ "json": v }),
            Err(_) => serde_json::json!({ "raw": args }),
        };
        function.insert("arguments".to_owned(), tagged);
    }
}

/// `#n`, the order of `id`'s first appearance in the conversation.
fn ordinal(ids: &mut Vec<String>, id: &str) -> String {
    let n = match ids.iter().position(|x| x == id) {
        Some(n) => n,
        None => {
            ids.push(id.to_owned());
            ids.len() - 1
        }
    };
    format!("#{n}")
}

/// A 32-byte digest of the output-relevant part of a request: its model, shape and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey(pub [u8; 32]);

impl ExactKey {
    /// The key of `req`. Pure: the same request always gives the same key, across processes
    /// and versions of this crate that keep its version tag.
    pub fn of(req: &ChatCompletionRequest) -> ExactKey {
        Self::with_shape(req, &Shape::of(req))
    }

    /// The key of `req`, whose shape is already known (`shape` must be `Shape::of(req)`).
    pub(crate) fn with_shape(req: &ChatCompletionRequest, shape: &Shape) -> ExactKey {
        let mut h = Enc(Sha256::new());
        h.str("switchyard-cache/exact/v2");
        h.str(&req.model);
        h.0.update(shape.0);
        h.u64(req.messages.len() as u64);
        for m in &req.messages {
            message_words(&mut h, m);
        }
        ExactKey(h.finish())
    }

    /// Lower-case hex, for logs and the shared (Redis) store later.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Every text of a message, whitespace-normalised, in order (the shape holds the rest).
fn message_words(h: &mut Enc, m: &ChatMessage) {
    match &m.content {
        None => h.u64(0),
        Some(MessageContent::Text(t)) => {
            h.u64(1);
            h.str(&normalise_ws(t));
        }
        Some(MessageContent::Parts(parts)) => {
            h.u64(2);
            h.u64(parts.len() as u64);
            for p in parts {
                h.opt_str(p.text.as_deref().map(normalise_ws).as_deref());
            }
        }
    }
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
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.update(s.as_bytes());
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
    /// Canonical JSON: object keys sorted, whatever order the map kept them in.
    fn json(&mut self, v: &Value) {
        match v {
            Value::Null => self.0.update([b'n']),
            Value::Bool(b) => self.0.update([b'b', u8::from(*b)]),
            Value::Number(n) => {
                self.0.update([b'#']);
                // `0.0` and `-0.0` are the same temperature.
                if n.as_f64() == Some(0.0) {
                    self.str("0");
                } else {
                    self.str(&n.to_string());
                }
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
