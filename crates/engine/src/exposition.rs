//! The Prometheus text exposition format, as engines serve it on `/metrics`: enough of it to
//! read gauges, from bytes the gateway does not trust.
//!
//! 1. The body is read line by line; blank lines and `#` lines (HELP, TYPE, OpenMetrics'
//!    `# EOF`) are skipped.
//! 2. A sample line is `name{label="value",...} value [timestamp]`; the label block is
//!    optional, label values may hold `\\`, `\"` and `\n` escapes and any other character.
//! 3. A line that does not parse is skipped, not fatal: one odd series (or a future format
//!    change) must not hide the gauges that do parse. The caller decides what is missing.
//!
//! Nothing here allocates per byte of input beyond the label values asked for, and no input
//! panics (fuzzed by `fuzz/fuzz_targets/engine_metrics.rs`).

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// The text between the braces, unparsed (empty without labels).
    labels: &'a str,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The value of label `name`, unescaped.
    pub fn label(&self, name: &str) -> Option<String> {
        labels(self.labels)?
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Every sample line of `text` that parses, in order.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// One line as a sample, if it is one.
fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim_start();
    if !line.starts_with(is_name_start) {
        return None;
    }
    let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            let end = label_block_end(inner)?;
            (&inner[..end], &inner[end + 1..])
        }
        None => ("", rest),
    };
    // The value, then an optional timestamp; nothing else.
    let mut fields = rest.split_ascii_whitespace();
    let value = number(fields.next()?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    labels_ok(labels).then_some(Sample {
        name,
        labels,
        value,
    })
}

/// Where the label block that starts at `inner` ends (the index of its `}`), honouring quotes
/// and escapes.
fn label_block_end(inner: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

fn labels_ok(block: &str) -> bool {
    labels(block).is_some()
}

/// `a="x",b="y"` (a trailing comma allowed) as pairs, or `None` when malformed.
fn labels(block: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    let mut rest = block.trim_start();
    while !rest.is_empty() {
        if !rest.starts_with(is_name_start) {
            return None;
        }
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let (key, after) = rest.split_at(end);
        let after = after.trim_start().strip_prefix('=')?.trim_start();
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.push((key, value));
        rest = after[close + 2..].trim_start();
        if let Some(more) = rest.strip_prefix(',') {
            rest = more.trim_start();
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A sample as (name, labels, value).
    type Owned = (String, Vec<(String, String)>, f64);

    fn parsed(text: &str) -> Vec<Owned> {
        samples(text)
            .map(|s| {
                let labels = labels(s.labels)
                    .unwrap()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                (s.name.to_owned(), labels, s.value)
            })
            .collect()
    }

    #[test]
    fn reads_what_vllm_serves() {
        let text = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 12.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.875
http_requests_total{handler="/v1/chat/completions",method="POST"} 1.2e+03 1700000000000

# EOF
"#;
        let s = parsed(text);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].0, "vllm:num_requests_running");
        assert_eq!(
            s[0].1,
            [
                ("engine".to_owned(), "0".to_owned()),
                (
                    "model_name".to_owned(),
                    "meta-llama/Llama-3.1-8B".to_owned()
                )
            ]
        );
        assert_eq!(s[1].2, 12.0);
        assert_eq!(s[2].2, 0.875);
        assert_eq!(s[3].2, 1200.0);
    }

    #[test]
    fn escapes_special_values_and_bad_lines() {
        let text = "a{l=\"x\\\"}y\\\\z\\n\",} 1\nb +Inf\nc NaN\nd{} -2\n\
                    bad line here\ne{l=\"open} 1\nf 1 2 3\n9g 1\nh{l=x} 1\ni 0x10\n";
        let s = parsed(text);
        let names: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(s[0].1[0].1, "x\"}y\\z\n");
        assert!(s[1].2.is_infinite() && s[2].2.is_nan());
        assert_eq!(s[3].2, -2.0);
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}"
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        /// Any sample written in the format reads back as written.
        #[test]
        fn what_is_written_reads_back(
            n in name(),
            ls in proptest::collection::vec((name(), any::<String>()), 0..4),
            value in -1e12f64..1e12,
        ) {
            let block: Vec<String> = ls.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let line = if ls.is_empty() {
                format!("{n} {value}")
            } else {
                format!("{n}{{{}}} {value}", block.join(","))
            };
            let text = format!("# HELP {n} x\n{line}\n");
            let got = parsed(&text);
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(&got[0].0, &n);
            prop_assert_eq!(&got[0].1, &ls);
            prop_assert_eq!(got[0].2, value);
        }

        /// Arbitrary bytes never panic, and every sample found has a valid name.
        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            for s in samples(&text) {
                prop_assert!(s.name.starts_with(is_name_start));
                let _ = s.label("model_name");
            }
        }
    }
}
