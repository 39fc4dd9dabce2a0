//! Small, plausible instances of a JSON Schema: the arguments of simulated tool calls and the
//! body of `json_schema` replies.
//!
//! Only what a minimal conforming instance needs is generated: required properties, `minItems`
//! elements, bounds of numbers and lengths of strings. Values come from the property's name and
//! format (a `city` is a city, an `email` an address), never from randomness, so the same
//! schema and prompt always give the same arguments.

use serde_json::{Map, Number, Value};

/// `$ref` chains and nesting deeper than this end in `null`: a recursive schema must not
/// recurse forever.
const MAX_DEPTH: u32 = 16;

/// An instance of `schema`; `prompt` (the last user message) fills query-like strings.
pub(crate) fn instance(schema: &Value, prompt: &str) -> Value {
    Gen {
        root: schema,
        prompt,
    }
    .value(schema, "", 0)
}

struct Gen<'a> {
    root: &'a Value,
    prompt: &'a str,
}

impl Gen<'_> {
    fn value(&self, schema: &Value, name: &str, depth: u32) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(s) = schema.as_object() else {
            // `true` (or a non-schema) accepts anything.
            return Value::String("example".to_owned());
        };
        if let Some(target) = s.get("$ref").and_then(Value::as_str) {
            return match target
                .strip_prefix('#')
                .and_then(|ptr| self.root.pointer(ptr))
            {
                Some(resolved) => self.value(resolved, name, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(first) = s
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        if let Some(example) = s
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return example.clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                // A branch that is only `null` is the "optional" idiom: prefer the real one.
                let branch = branches
                    .iter()
                    .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                    .or_else(|| branches.first());
                if let Some(b) = branch {
                    return self.value(b, name, depth + 1);
                }
            }
        }
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            return self.all_of(parts, name, depth);
        }
        match type_of(s) {
            "object" => self.object(s, depth),
            "array" => self.array(s, name, depth),
            "integer" => integer(s),
            "number" => number(s),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => Value::String(self.string(s, name)),
        }
    }

    /// Instances of every part, merged when they are objects (the usual use of `allOf`).
    fn all_of(&self, parts: &[Value], name: &str, depth: u32) -> Value {
        let mut merged = Map::new();
        for part in parts {
            match self.value(part, name, depth + 1) {
                Value::Object(o) => merged.extend(o),
                other if merged.is_empty() => return other,
                _ => {}
            }
        }
        Value::Object(merged)
    }

    fn object(&self, s: &Map<String, Value>, depth: u32) -> Value {
        let props = s.get("properties").and_then(Value::as_object);
        let mut out = Map::new();
        for key in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let prop = props.and_then(|p| p.get(key)).unwrap_or(&Value::Bool(true));
            out.insert(key.to_owned(), self.value(prop, key, depth + 1));
        }
        Value::Object(out)
    }

    fn array(&self, s: &Map<String, Value>, name: &str, depth: u32) -> Value {
        if let Some(prefix) = s.get("prefixItems").and_then(Value::as_array) {
            return Value::Array(
                prefix
                    .iter()
                    .map(|p| self.value(p, name, depth + 1))
                    .collect(),
            );
        }
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = s
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        // One element reads as a plausible list; more than the minimum is not needed.
        let n = min.max(1).min(max).min(64);
        let item = s.get("items").unwrap_or(&Value::Bool(true));
        Value::Array((0..n).map(|_| self.value(item, name, depth + 1)).collect())
    }

    fn string(&self, s: &Map<String, Value>, name: &str) -> String {
        let format = s.get("format").and_then(Value::as_str).unwrap_or("");
        let name = name.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
        let base = match format {
            "date" => "2025-01-15".to_owned(),
            "date-time" => "2025-01-15T12:00:00Z".to_owned(),
            "time" => "12:00:00".to_owned(),
            "email" => "user@example.com".to_owned(),
            "uri" | "url" => "https://example.com".to_owned(),
            "uuid" => "00000000-0000-4000-8000-000000000000".to_owned(),
            "ipv4" => "192.0.2.1".to_owned(),
            _ if has(&["email"]) => "user@example.com".to_owned(),
            _ if has(&["url", "link"]) => "https://example.com".to_owned(),
            _ if has(&["city", "location", "place", "address"]) => "Paris".to_owned(),
            _ if has(&["country"]) => "France".to_owned(),
            _ if has(&["date", "day"]) => "2025-01-15".to_owned(),
            _ if has(&["lang"]) => "en".to_owned(),
            _ if has(&["currency"]) => "EUR".to_owned(),
            _ if has(&["unit"]) => "celsius".to_owned(),
            _ if has(&["name"]) => "Alex".to_owned(),
            _ if has(&[
                "query", "question", "prompt", "text", "message", "input", "search",
            ]) || name == "q" =>
            {
                self.prompt.chars().take(200).collect()
            }
            _ if has(&["id"]) => "id-1".to_owned(),
            _ => "example".to_owned(),
        };
        let mut out = base;
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let max = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let len = out.chars().count() as u64;
        if len > max {
            out = out.chars().take(max as usize).collect();
        }
        for _ in len..min.min(4096) {
            out.push('x');
        }
        out
    }
}

/// The schema's type: the first non-null of a type list, else guessed from its keywords.
fn type_of(s: &Map<String, Value>) -> &str {
    match s.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.contains_key("properties") || s.contains_key("required") => "object",
        _ if s.contains_key("items") || s.contains_key("prefixItems") => "array",
        _ => "string",
    }
}

/// 1, or the nearest value the bounds allow.
fn bounded(s: &Map<String, Value>, step: f64) -> f64 {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let mut v: f64 = 1.0;
    if let Some(min) = num("minimum") {
        v = v.max(min);
    }
    if let Some(min) = num("exclusiveMinimum") {
        if v <= min {
            v = min + step;
        }
    }
    if let Some(max) = num("maximum") {
        v = v.min(max);
    }
    if let Some(max) = num("exclusiveMaximum") {
        if v >= max {
            v = max - step;
        }
    }
    v
}

fn integer(s: &Map<String, Value>) -> Value {
    let v = bounded(s, 1.0);
    // Integral bounds keep the value integral; a fractional minimum rounds up into range.
    Value::Number(Number::from(v.ceil() as i64))
}

fn number(s: &Map<String, Value>) -> Value {
    let v = bounded(s, 0.5);
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A checker for the subset of JSON Schema the generator handles: types, required
    /// properties, enums, bounds. Enough to catch a generator that drifts from its schema.
    pub(crate) fn conforms(root: &Value, schema: &Value, v: &Value) -> Result<(), String> {
        let Some(s) = schema.as_object() else {
            return Ok(());
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let target = root.pointer(&r[1..]).ok_or("bad ref")?;
            return conforms(root, target, v);
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                return Err(format!("{v} not in enum"));
            }
        }
        let ok = match type_of(s) {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => v.is_string(),
        };
        if !ok {
            return Err(format!("{v} is not a {}", type_of(s)));
        }
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if v.as_f64().unwrap_or(min) < min {
                return Err(format!("{v} below minimum"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if v.as_f64().unwrap_or(max) > max {
                return Err(format!("{v} above maximum"));
            }
        }
        if let Some(o) = v.as_object() {
            for k in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let child = o.get(k).ok_or(format!("missing {k}"))?;
                if let Some(p) = s.get("properties").and_then(|p| p.get(k)) {
                    conforms(root, p, child)?;
                }
            }
        }
        if let (Some(a), Some(items)) = (v.as_array(), s.get("items")) {
            let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            if (a.len() as u64) < min {
                return Err("too few items".into());
            }
            for item in a {
                conforms(root, items, item)?;
            }
        }
        Ok(())
    }

    fn check(schema: Value) -> Value {
        let v = instance(&schema, "what is the weather in Rome");
        conforms(&schema, &schema, &v).unwrap_or_else(|e| panic!("{e}: {v}"));
        v
    }

    #[test]
    fn required_properties_get_plausible_values() {
        let v = check(json!({
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["fahrenheit", "celsius"]},
                "days": {"type": "integer", "minimum": 3, "maximum": 10},
                "ratio": {"type": "number", "exclusiveMinimum": 1},
                "verbose": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "optional": {"type": "string"}
            },
            "required": ["location", "unit", "days", "ratio", "verbose", "tags"]
        }));
        assert_eq!(
            v,
            json!({"location": "Paris", "unit": "fahrenheit", "days": 3, "ratio": 1.5,
                   "verbose": true, "tags": ["example", "example"]})
        );
    }

    #[test]
    fn nested_refs_nullable_and_formats() {
        let v = check(json!({
            "type": "object",
            "$defs": {"who": {"type": "object", "properties": {"email": {"type": "string"}},
                              "required": ["email"]}},
            "properties": {
                "owner": {"$ref": "#/$defs/who"},
                "query": {"type": ["string", "null"]},
                "when": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
                "code": {"type": "string", "minLength": 10}
            },
            "required": ["owner", "query", "when", "code"]
        }));
        assert_eq!(v["owner"]["email"], "user@example.com");
        assert_eq!(v["query"], "what is the weather in Rome");
        assert_eq!(v["when"], "2025-01-15");
        assert_eq!(v["code"].as_str().map(str::len), Some(10));
    }

    #[test]
    fn recursive_schema_terminates() {
        let schema = json!({"$ref": "#"});
        assert_eq!(instance(&schema, ""), Value::Null);
    }
}
