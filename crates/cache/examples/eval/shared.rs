//! What the cache evaluation's modes share: the pair file, requests and answers as the
//! gateway makes them, precision and recall tallies, the polarity probes and the vector
//! cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, Role};
use switchyard_cache::Prepared;

#[derive(Deserialize)]
pub(crate) struct Pair {
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) text_a: String,
    pub(crate) text_b: String,
    pub(crate) label: u8,
    #[serde(default)]
    pub(crate) meta: Meta,
}

#[derive(Deserialize, Default)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) component: String,
}

impl Pair {
    /// The connected component of the question graph the pair belongs to (the data's
    /// `meta.component`), or its id when the file has none.
    pub(crate) fn component(&self) -> String {
        if self.meta.component.is_empty() {
            self.id.clone()
        } else {
            self.meta.component.clone()
        }
    }
}

pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

pub(crate) fn req(text: &str) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: "m".into(),
        messages: vec![ChatMessage::new(Role::User, text)],
        stream: None,
        stream_options: None,
        tools: None,
        tool_choice: None,
        response_format: None,
        stop: None,
        max_tokens: None,
        max_completion_tokens: None,
        temperature: Some(0.0),
        top_p: None,
        seed: None,
        user: None,
        n: None,
        extra: Default::default(),
    }
}

pub(crate) fn resp(text: &str) -> ChatCompletionResponse {
    ChatCompletionResponse {
        id: "x".into(),
        object: "chat.completion".into(),
        created: 0,
        model: "m".into(),
        choices: vec![Choice {
            index: 0,
            message: ChatMessage::new(Role::Assistant, text),
            finish_reason: Some("stop".into()),
            logprobs: None,
            stop_reason: None,
        }],
        usage: None,
        system_fingerprint: None,
        extra: Default::default(),
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[derive(Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) served: usize,
    pub(crate) served_dup: usize,
    pub(crate) dups: usize,
}

impl Tally {
    pub(crate) fn precision(&self) -> f64 {
        if self.served == 0 {
            f64::NAN
        } else {
            self.served_dup as f64 / self.served as f64
        }
    }
    pub(crate) fn recall(&self) -> f64 {
        if self.dups == 0 {
            f64::NAN
        } else {
            self.served_dup as f64 / self.dups as f64
        }
    }
}

pub(crate) const AUX: &[&str] = &[
    "is", "are", "was", "were", "can", "could", "should", "would", "will", "do", "does", "did",
    "has", "have", "must", "might",
];
pub(crate) const PRONOUNS: &[&str] = &["i", "you", "we", "they", "he", "she", "it", "one", "there"];
/// Opposites for the probe set (a subset of common ones, written out here, not read from the
/// guard, so a change to the guard's list cannot silently change the probes).
pub(crate) const FLIPS: &[(&str, &str)] = &[
    ("increase", "decrease"),
    ("enable", "disable"),
    ("best", "worst"),
    ("good", "bad"),
    ("more", "less"),
    ("before", "after"),
    ("add", "remove"),
    ("buy", "sell"),
    ("start", "stop"),
    ("win", "lose"),
    ("gain", "lose"),
    ("easy", "hard"),
    ("cheap", "expensive"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("positive", "negative"),
    ("true", "false"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("rich", "poor"),
];

/// The probe variants of `text`: (kind, flipped text).
pub(crate) fn probes(text: &str) -> Vec<(&'static str, String)> {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::new();
    let bare = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    // 1. negation: "not" after the first auxiliary, or after its subject pronoun.
    if let Some(i) = words.iter().position(|w| AUX.contains(&bare(w).as_str())) {
        let at = if words
            .get(i + 1)
            .is_some_and(|w| PRONOUNS.contains(&bare(w).as_str()))
        {
            i + 2
        } else {
            i + 1
        };
        let mut w: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
        w.insert(at.min(w.len()), "not".into());
        out.push(("negation", w.join(" ")));
    }
    // 2. polarity: the first word with an opposite, swapped.
    'flip: for (i, w) in words.iter().enumerate() {
        let b = bare(w);
        for (x, y) in FLIPS {
            let to = if b == *x {
                y
            } else if b == *y {
                x
            } else {
                continue;
            };
            let mut v: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
            v[i] = w.to_lowercase().replace(b.as_str(), to);
            out.push(("polarity", v.join(" ")));
            break 'flip;
        }
    }
    // 3. number: the first whole number, plus one.
    for (i, w) in words.iter().enumerate() {
        let b = bare(w);
        if !b.is_empty() && b.len() < 9 && b.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = b.parse::<u64>() {
                let mut v: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
                v[i] = w.replace(b.as_str(), &(n + 1).to_string());
                out.push(("number", v.join(" ")));
                break;
            }
        }
    }
    out
}

/// Where embeddings are kept between runs: MiniLM over ~19k texts takes minutes, and the
/// verification modes need both models' vectors for every text.
pub(crate) fn vector_cache() -> PathBuf {
    switchyard_testkit::data::repo_root().join("target/cache-eval-vectors")
}

/// Loads `kind`'s cached vectors (text → unit vector of the normalised question), embeds the
/// texts that are missing with `embed_batch`, saves the union, and returns it. The file is
/// keyed by the raw text, so a changed data file only costs its new texts.
pub(crate) fn cached_vectors(
    kind: &str,
    texts: &[String],
    embed_batch: &dyn Fn(&[&str]) -> Vec<Vec<f32>>,
) -> HashMap<String, Vec<f32>> {
    let path = vector_cache().join(format!("{kind}.bin"));
    let mut map: HashMap<String, Vec<f32>> = HashMap::new();
    if let Ok(bytes) = std::fs::read(&path) {
        let mut at = 0usize;
        let u32_at = |at: &mut usize| {
            let v = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
            *at += 4;
            v as usize
        };
        while at < bytes.len() {
            let n = u32_at(&mut at);
            let t = String::from_utf8(bytes[at..at + n].to_vec()).unwrap();
            at += n;
            let d = u32_at(&mut at);
            let v = (0..d)
                .map(|i| f32::from_le_bytes(bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
                .collect();
            at += 4 * d;
            map.insert(t, v);
        }
    }
    let mut missing: Vec<&String> = texts.iter().filter(|t| !map.contains_key(*t)).collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return map;
    }
    // The gateway embeds `Prepared::question` (whitespace-normalised) and scales it to unit
    // length; a single-turn conversation has no context to blend in, so this is the same vector.
    // Sorted by length so batches carry little padding (results do not depend on batching).
    missing.sort_by_key(|t| t.len());
    let t0 = Instant::now();
    let mut done = 0;
    for chunk in missing.chunks(256) {
        let qs: Vec<String> = chunk
            .iter()
            .map(|t| Prepared::new("t", "r", &req(t)).question)
            .collect();
        let refs: Vec<&str> = qs.iter().map(String::as_str).collect();
        for (t, mut v) in chunk.iter().zip(embed_batch(&refs)) {
            switchyard_cache::index::normalise(&mut v);
            map.insert((*t).clone(), v);
        }
        done += chunk.len();
        eprintln!(
            "{kind}: {done}/{} texts embedded, {:.0}s",
            missing.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    std::fs::create_dir_all(vector_cache()).unwrap();
    let mut out = Vec::new();
    for (t, v) in &map {
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    map
}

pub(crate) fn pct(d: &mut [Duration], p: f64) -> f64 {
    d.sort();
    let i = ((d.len() as f64 - 1.0) * p).round() as usize;
    d[i].as_secs_f64() * 1e6
}

pub(crate) fn read_pairs(data: &str) -> Vec<Pair> {
    std::fs::read_to_string(data)
        .expect("data file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// Every text the verification modes embed: both sides of every pair, and the probe variants
/// of held-out duplicates.
pub(crate) fn all_texts(pairs: &[Pair]) -> Vec<String> {
    let mut texts = Vec::new();
    for p in pairs {
        texts.push(p.text_a.clone());
        texts.push(p.text_b.clone());
        if fnv(&p.id) & 1 == 1 && p.label == 1 {
            texts.extend(probes(&p.text_b).into_iter().map(|(_, t)| t));
        }
    }
    texts
}
