//! The semantic-cache evaluation behind `eval/cache.md`.
//!
//! ```text
//! cargo run --release -p switchyard-cache --example eval -- <minilm|static|ngram> [--models DIR] [--data FILE]
//! ```
//!
//! 1. Reads the pair file (text_a, text_b, label 1 = same intent, source) and splits it by a
//!    stable hash of `id`: even hashes tune, odd hashes are held out and reported.
//! 2. Embeds every text once with the chosen embedder (through `Prepared::embed`, the gateway's
//!    path), then for each pair: the cached question is text_a, the query is text_b; a pair is
//!    served at threshold t when cosine ≥ t and (with the guard) the guard passes.
//! 3. Sweeps thresholds; picks, on the tune split only, the lowest threshold whose guarded
//!    precision is at least 0.97; reports precision and the share of true duplicates served
//!    on the held-out split, per source, with and without the guard.
//! 4. Builds a polarity probe set from held-out label-1 pairs (insert a negation, swap a word
//!    for its opposite, change a number in text_b); every probe must miss.
//! 5. Checks the shortcut of step 2 against the real `Cache` at the chosen threshold, then
//!    measures the cost of a miss beyond the embedding for 1k and 10k entries in one scope.
//!
//! ```text
//! cargo run --release -p switchyard-cache --example eval -- verify [--write] [--candidate T] [--models DIR] [--data FILE]
//! cargo run --release -p switchyard-cache --example eval -- vectors [--models DIR] [--data FILE]
//! ```
//!
//! `verify` models the serving pipeline with the verifier (`verify_main`): static-model
//! candidate, hard veto, `Verifier` with and without the MiniLM cosine of the pair; it trains
//! the verifier on the tune split, chooses its thresholds there (out-of-fold), reports the
//! held-out split per source, the probes and the added latency, and with `--write` stores the
//! artifact. Both models' vectors are cached under `target/cache-eval-vectors` (`vectors`
//! only fills that cache).
//!
//! The pairs are `semantic_cache/semantic_cache.dev.jsonl` of the shared data folder
//! (`SWITCHYARD_DATA_DIR`, default `../shared/data`; `switchyard_testkit::data`), or `--data`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "evaluation harness"
)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, Role};
use switchyard_cache::{
    check_texts, Cache, CacheConfig, CacheControl, Embedder, HitKind, Lookup, Prepared, RoutePolicy,
};
use verify::{
    pair_features, signs, veto_texts, FitOptions, Logistic, Variant, Verifier, FEATURE_NAMES,
    N_FEATURES,
};

mod verify;

#[derive(Deserialize)]
struct Pair {
    id: String,
    source: String,
    text_a: String,
    text_b: String,
    label: u8,
}

/// Character 3- to 5-gram and word hashing into 512 dimensions: NOT a sentence-embedding
/// model, only the fallback when no model files are at hand.
struct NGram;

impl Embedder for NGram {
    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; 512];
        let lower = format!(" {} ", text.to_lowercase());
        let chars: Vec<char> = lower.chars().collect();
        for n in 3..=5 {
            for w in chars.windows(n) {
                let s: String = w.iter().collect();
                v[(fnv(&s) % 512) as usize] += 1.0;
            }
        }
        for w in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            v[(fnv(w) % 512) as usize] += 2.0;
        }
        v
    }
}

struct Mini(switchyard_embed::MiniLm);
impl Embedder for Mini {
    fn embed(&self, text: &str) -> Vec<f32> {
        self.0.embed_one(text).unwrap_or_default()
    }
}

struct Static(switchyard_embed::StaticEmbedder);
impl Embedder for Static {
    fn embed(&self, text: &str) -> Vec<f32> {
        self.0.embed(text).unwrap_or_default()
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn req(text: &str) -> ChatCompletionRequest {
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

fn resp(text: &str) -> ChatCompletionResponse {
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
        }],
        usage: None,
        system_fingerprint: None,
        extra: Default::default(),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One scored pair: similarity, label, whether the guard passes.
struct Scored {
    source: String,
    sim: f32,
    dup: bool,
    guard_ok: bool,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    served: usize,
    served_dup: usize,
    dups: usize,
}

impl Tally {
    fn precision(&self) -> f64 {
        if self.served == 0 {
            f64::NAN
        } else {
            self.served_dup as f64 / self.served as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.dups == 0 {
            f64::NAN
        } else {
            self.served_dup as f64 / self.dups as f64
        }
    }
}

fn tally<'a>(rows: impl Iterator<Item = &'a Scored>, t: f32, guard: bool) -> Tally {
    let mut x = Tally::default();
    for r in rows {
        x.dups += usize::from(r.dup);
        if r.sim >= t && (!guard || r.guard_ok) {
            x.served += 1;
            x.served_dup += usize::from(r.dup);
        }
    }
    x
}

const AUX: &[&str] = &[
    "is", "are", "was", "were", "can", "could", "should", "would", "will", "do", "does", "did",
    "has", "have", "must", "might",
];
const PRONOUNS: &[&str] = &["i", "you", "we", "they", "he", "she", "it", "one", "there"];
/// Opposites for the probe set (a subset of common ones, written out here, not read from the
/// guard, so a change to the guard's list cannot silently change the probes).
const FLIPS: &[(&str, &str)] = &[
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
fn probes(text: &str) -> Vec<(&'static str, String)> {
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
fn vector_cache() -> PathBuf {
    switchyard_testkit::data::repo_root().join("target/cache-eval-vectors")
}

/// Loads `kind`'s cached vectors (text → unit vector of the normalised question), embeds the
/// texts that are missing with `embed_batch`, saves the union, and returns it. The file is
/// keyed by the raw text, so a changed data file only costs its new texts.
fn cached_vectors(
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

fn pct(d: &mut [Duration], p: f64) -> f64 {
    d.sort();
    let i = ((d.len() as f64 - 1.0) * p).round() as usize;
    d[i].as_secs_f64() * 1e6
}

/// Miss latency beyond the embedding: `n` entries of `dim` in one scope, random unit vectors.
fn miss_latency(n: usize, dim: usize) -> (f64, f64) {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let cache = Cache::new(CacheConfig {
        max_bytes: 1 << 34,
        top_k: 4,
    });
    let policy = RoutePolicy {
        threshold: 0.95,
        ..RoutePolicy::default()
    };
    let now = Instant::now();
    for i in 0..n {
        let q = format!("question number {i} about some topic or other");
        let r = req(&q);
        let p = Prepared::new("tenant", "route", &r);
        let v: Vec<f32> = (0..dim).map(|_| rnd()).collect();
        cache
            .insert(
                &r,
                &p,
                Some(v),
                resp("an answer of a typical length, a few sentences long"),
                &policy,
                CacheControl::Normal,
                now,
            )
            .unwrap();
    }
    let mut times = Vec::new();
    let query = req("How do I rotate the API key for my production account?");
    for _ in 0..2000 {
        let mut v: Vec<f32> = (0..dim).map(|_| rnd()).collect();
        let nrm = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|x| *x /= nrm);
        // Everything after the embedding: prepare (exact key, scope), exact tier, semantic tier.
        let t0 = Instant::now();
        let p = Prepared::new("tenant", "route", &query);
        let exact = cache.lookup_exact(&p, now);
        let l = cache.lookup_semantic(&p, &v, &policy, now);
        times.push(t0.elapsed());
        assert!(exact.is_none() && matches!(l, Lookup::Miss(_)));
    }
    (pct(&mut times, 0.5), pct(&mut times, 0.99))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_else(|| "ngram".into());
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models = opt("--models").map_or_else(|| repo.join("models"), PathBuf::from);
    let data = opt("--data").map_or_else(
        || switchyard_testkit::data::path("semantic_cache/semantic_cache.dev.jsonl"),
        PathBuf::from,
    );
    let data = switchyard_testkit::data::require_or_exit(data)
        .to_string_lossy()
        .into_owned();

    if mode == "vectors" || mode == "verify" {
        verify_main(&mode, &models, &data, &args);
        return;
    }

    let started = Instant::now();
    let embedder: Box<dyn Embedder> = match mode.as_str() {
        "ngram" => Box::new(NGram),
        "minilm" => Box::new(Mini(
            switchyard_embed::MiniLm::load(models.join("all-MiniLM-L6-v2"))
                .expect("MiniLM files (scripts/fetch-models.sh)"),
        )),
        "static" => {
            let dir = models.join("minilm-static-256");
            if !dir.exists() {
                eprintln!("distilling the static model into {}", dir.display());
                switchyard_embed::distill(
                    &models.join("all-MiniLM-L6-v2"),
                    &dir,
                    &switchyard_embed::DistillOptions::default(),
                    |_, _| {},
                )
                .expect("distil");
            }
            Box::new(Static(
                switchyard_embed::StaticEmbedder::load(dir).expect("static model"),
            ))
        }
        other => panic!("unknown embedding mode {other}: use minilm, static or ngram"),
    };
    eprintln!(
        "embedder {mode} loaded in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let text = std::fs::read_to_string(&data).expect("data file");
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();

    // Embed each distinct text once, through the gateway's path (`Prepared::embed`).
    let t_embed = Instant::now();
    let mut vecs: HashMap<String, Vec<f32>> = HashMap::new();
    let embed = |t: &str, vecs: &mut HashMap<String, Vec<f32>>| -> Vec<f32> {
        if let Some(v) = vecs.get(t) {
            return v.clone();
        }
        let v = Prepared::new("t", "r", &req(t)).embed(embedder.as_ref());
        vecs.insert(t.to_owned(), v.clone());
        v
    };
    let mut tune = Vec::new();
    let mut held = Vec::new();
    let mut held_dups: Vec<&Pair> = Vec::new();
    for p in &pairs {
        let a = embed(&p.text_a, &mut vecs);
        let b = embed(&p.text_b, &mut vecs);
        let s = Scored {
            source: p.source.clone(),
            sim: dot(&a, &b),
            dup: p.label == 1,
            guard_ok: check_texts(&p.text_b, &p.text_a).is_ok(),
        };
        if fnv(&p.id) & 1 == 0 {
            tune.push(s);
        } else {
            if p.label == 1 {
                held_dups.push(p);
            }
            held.push(s);
        }
    }
    let n_texts = vecs.len();
    let embed_secs = t_embed.elapsed().as_secs_f64();

    println!("# semantic cache evaluation: embedder `{mode}`\n");
    println!(
        "{} pairs ({} tune, {} held out by FNV-1a(id) parity); {} distinct texts embedded in {:.1}s ({:.2} ms/text)\n",
        pairs.len(), tune.len(), held.len(), n_texts, embed_secs, embed_secs * 1e3 / n_texts as f64
    );

    let thresholds: Vec<f32> = (0..=30).map(|i| 0.70 + 0.01 * i as f32).collect();
    let mut chosen = None;
    println!("## Sweep on the tune split (all sources)\n");
    println!("| threshold | precision (guard) | dup share (guard) | precision (no guard) | dup share (no guard) |");
    println!("|---|---|---|---|---|");
    for &t in &thresholds {
        let g = tally(tune.iter(), t, true);
        let n = tally(tune.iter(), t, false);
        println!(
            "| {t:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
            g.precision(),
            g.recall(),
            n.precision(),
            n.recall()
        );
        if chosen.is_none() && g.precision() >= 0.97 {
            chosen = Some(t);
        }
    }
    let t = chosen.unwrap_or(0.99);
    if chosen.is_some() {
        println!("\nChosen on the tune split: **threshold {t:.2}** (lowest with guarded precision ≥ 0.97).\n");
    } else {
        println!("\nNo threshold below 1.00 reaches guarded precision 0.97 on the tune split; reporting **{t:.2}**.\n");
    }

    let mut sources: Vec<String> = held.iter().map(|s| s.source.clone()).collect();
    sources.sort();
    sources.dedup();
    println!("## Held-out split at threshold {t:.2}\n");
    println!("| source | pairs | duplicates | served (guard) | precision (guard) | dup share (guard) | served (no guard) | precision (no guard) | dup share (no guard) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for src in sources
        .iter()
        .map(String::as_str)
        .chain(std::iter::once("all"))
    {
        let rows = || held.iter().filter(|s| src == "all" || s.source == src);
        let g = tally(rows(), t, true);
        let n = tally(rows(), t, false);
        println!(
            "| {src} | {} | {} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} |",
            rows().count(),
            g.dups,
            g.served,
            g.precision(),
            g.recall(),
            n.served,
            n.precision(),
            n.recall()
        );
    }
    println!("\n## Held-out sweep, per source (precision / dup share, with guard)\n");
    print!("| threshold |");
    for s in &sources {
        print!(" {s} |");
    }
    println!("\n|---|{}", "---|".repeat(sources.len()));
    for &th in thresholds.iter().step_by(2) {
        print!("| {th:.2} |");
        for s in &sources {
            let g = tally(held.iter().filter(|r| &r.source == s), th, true);
            print!(" {:.3} / {:.3} |", g.precision(), g.recall());
        }
        println!();
    }

    // Polarity probes: cached = text_a, query = a flipped text_b; all must miss.
    // Probes at fixed operating points as well as the chosen one: when the chosen threshold
    // is 1.00 (nothing served), the probes would otherwise say nothing.
    let mut by_kind: BTreeMap<(String, &str), (usize, usize, usize, f64)> = BTreeMap::new();
    let mut examples: Vec<String> = Vec::new();
    for p in &held_dups {
        let a = embed(&p.text_a, &mut vecs);
        let a_words: Vec<String> = p
            .text_a
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_lowercase)
            .collect();
        for (kind, flipped) in probes(&p.text_b) {
            // A flip that brings in a word text_a already has (a duplicate pair that said "buy"
            // and "sell") may restore the meaning rather than invert it: not a probe.
            let new_word = flipped
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_lowercase)
                .find(|w| {
                    !w.is_empty()
                        && !p
                            .text_b
                            .to_lowercase()
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|x| x == w)
                });
            if new_word.is_some_and(|w| a_words.contains(&w)) {
                continue;
            }
            let b = embed(&flipped, &mut vecs);
            let sim = dot(&a, &b);
            let guard_ok = check_texts(&flipped, &p.text_a).is_ok();
            for th in [0.85f32, 0.90, 0.95, t] {
                let e = by_kind.entry((format!("{th:.2}"), kind)).or_default();
                e.0 += 1;
                e.1 += usize::from(sim >= th);
                e.2 += usize::from(sim >= th && guard_ok);
                e.3 += f64::from(sim);
            }
            if sim >= t && guard_ok && examples.len() < 8 {
                examples.push(format!(
                    "- {kind}: cached \"{}\" / query \"{flipped}\" (sim {sim:.3})",
                    p.text_a
                ));
            }
        }
    }
    println!("\n## Polarity probes built from held-out duplicates (must all miss)\n");
    println!("| threshold | probe | probes | mean similarity | served without guard | served with guard |");
    println!("|---|---|---|---|---|---|");
    for ((th, k), (n, no_g, g, s)) in &by_kind {
        println!(
            "| {th} | {k} | {n} | {:.3} | {no_g} ({:.1}%) | {g} ({:.1}%) |",
            s / *n as f64,
            100.0 * *no_g as f64 / *n as f64,
            100.0 * *g as f64 / *n as f64
        );
    }
    if !examples.is_empty() {
        println!("\nProbes the guard still served:\n");
        for e in &examples {
            println!("{e}");
        }
    }

    // The real cache agrees with the shortcut: one scope per pair, insert a, look up b.
    let cache = Cache::new(CacheConfig::default());
    let policy = RoutePolicy {
        threshold: t,
        ..RoutePolicy::default()
    };
    let now = Instant::now();
    let (mut agree, mut total) = (0, 0);
    for (p, s) in pairs.iter().filter(|p| fnv(&p.id) & 1 == 1).zip(&held) {
        let ra = req(&p.text_a);
        let pa = Prepared::new(&p.id, "r", &ra);
        cache
            .insert(
                &ra,
                &pa,
                Some(vecs[&p.text_a].clone()),
                resp("a"),
                &policy,
                CacheControl::Normal,
                now,
            )
            .unwrap();
        let rb = req(&p.text_b);
        let pb = Prepared::new(&p.id, "r", &rb);
        let hit = match cache.lookup_exact(&pb, now) {
            Some(_) => true,
            None => matches!(
                cache.lookup_semantic(&pb, &vecs[&p.text_b], &policy, now),
                Lookup::Hit(_)
            ),
        };
        total += 1;
        agree += usize::from(
            hit == (s.sim >= t && s.guard_ok)
                || (hit && p.text_a.split_whitespace().eq(p.text_b.split_whitespace())),
        );
    }
    println!("\nEnd-to-end check through `Cache` (one scope per held-out pair): {agree}/{total} decisions agree with the table.\n");

    println!("## Cost of a miss beyond the embedding (prepare + exact + semantic, one scope)\n");
    println!("| entries | dims | p50 µs | p99 µs |");
    println!("|---|---|---|---|");
    for n in [1000, 10_000] {
        for dim in [256, 384] {
            let (p50, p99) = miss_latency(n, dim);
            println!("| {n} | {dim} | {p50:.0} | {p99:.0} |");
        }
    }
}

fn read_pairs(data: &str) -> Vec<Pair> {
    std::fs::read_to_string(data)
        .expect("data file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// Every text the verification modes embed: both sides of every pair, and the probe variants
/// of held-out duplicates.
fn all_texts(pairs: &[Pair]) -> Vec<String> {
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

/// Vectors of both models for `texts`, from the cache under `/tmp` or computed now.
fn both_vectors(
    models: &std::path::Path,
    texts: &[String],
) -> (HashMap<String, Vec<f32>>, HashMap<String, Vec<f32>>) {
    let stat = switchyard_embed::StaticEmbedder::load(models.join("minilm-static-256"))
        .expect("static model (switchyard models distill)");
    let s = cached_vectors("static", texts, &|b| stat.embed_batch(b).unwrap());
    let mini: std::cell::OnceCell<switchyard_embed::MiniLm> = std::cell::OnceCell::new();
    let m = cached_vectors("minilm", texts, &|b| {
        mini.get_or_init(|| {
            switchyard_embed::MiniLm::load(models.join("all-MiniLM-L6-v2")).expect("MiniLM files")
        })
        .embed(b)
        .unwrap()
    });
    (s, m)
}

/// One pair as the serving pipeline sees it: the cached question is text_a, the query text_b.
struct VRow<'a> {
    pair: &'a Pair,
    held: bool,
    fold: u64,
    dup: bool,
    static_cos: f32,
    minilm_cos: f32,
    /// The old guard (all four rules), for the baselines.
    guard_ok: bool,
    /// The verifier's hard veto (negation, polarity, changed number).
    vetoed: bool,
    x_static: [f32; N_FEATURES],
    x_minilm: [f32; N_FEATURES],
    /// Out-of-fold probability on the tune split; the final model's on the held-out split.
    p_static: f32,
    p_minilm: f32,
}

/// Served by the pipeline at candidate threshold `tc` and verifier threshold `tp`.
fn v_served(r: &VRow, tc: f32, tp: f32, minilm: bool) -> bool {
    let p = if minilm { r.p_minilm } else { r.p_static };
    r.static_cos >= tc && !r.vetoed && p >= tp
}

fn v_tally<'a>(rows: impl Iterator<Item = &'a VRow<'a>>, served: impl Fn(&VRow) -> bool) -> Tally {
    let mut x = Tally::default();
    for r in rows {
        x.dups += usize::from(r.dup);
        if served(r) {
            x.served += 1;
            x.served_dup += usize::from(r.dup);
        }
    }
    x
}

/// The lowest threshold of `grid` whose tally reaches `goal` precision (with at least 20
/// served, so one lucky pair cannot set it), else the one with the best precision.
fn choose(grid: &[f32], tally_at: impl Fn(f32) -> Tally, goal: f64) -> (f32, bool) {
    for &t in grid {
        let x = tally_at(t);
        if x.served >= 20 && x.precision() >= goal {
            return (t, true);
        }
    }
    let best = grid
        .iter()
        .copied()
        .filter(|t| tally_at(*t).served >= 20)
        .max_by(|a, b| {
            tally_at(*a)
                .precision()
                .total_cmp(&tally_at(*b).precision())
        })
        .unwrap_or(grid[grid.len() - 1]);
    (best, false)
}

const GOAL: f64 = 0.97;

fn verify_main(mode: &str, models: &std::path::Path, data: &str, args: &[String]) {
    let pairs = read_pairs(data);
    let texts = all_texts(&pairs);
    let (sv, mv) = both_vectors(models, &texts);
    eprintln!("{} static and {} MiniLM vectors ready", sv.len(), mv.len());
    if mode == "vectors" {
        return;
    }
    let write = args.iter().any(|a| a == "--write");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifact = repo.join("eval/artifacts/cache-verifier.v1.json");

    // 1. Features of every pair, both variants.
    let mut rows: Vec<VRow> = pairs
        .iter()
        .map(|p| {
            let sc = dot(&sv[&p.text_a], &sv[&p.text_b]);
            let mc = dot(&mv[&p.text_a], &mv[&p.text_b]);
            let h = fnv(&p.id);
            VRow {
                pair: p,
                held: h & 1 == 1,
                fold: (h >> 1) % 5,
                dup: p.label == 1,
                static_cos: sc,
                minilm_cos: mc,
                guard_ok: check_texts(&p.text_b, &p.text_a).is_ok(),
                vetoed: veto_texts(&p.text_b, &p.text_a).is_some(),
                x_static: pair_features(&p.text_b, &p.text_a, sc, None),
                x_minilm: pair_features(&p.text_b, &p.text_a, sc, Some(mc)),
                p_static: 0.0,
                p_minilm: 0.0,
            }
        })
        .collect();
    let n_tune = rows.iter().filter(|r| !r.held).count();
    println!("# Semantic cache with a verification stage\n");
    println!(
        "{} pairs ({} tune, {} held out by FNV-1a(id) parity, as in the other modes); cached = text_a, query = text_b.\n",
        rows.len(),
        n_tune,
        rows.len() - n_tune
    );

    // 2. The candidate threshold on the static cosine: the highest on the grid that still
    //    lets at least 90% of the tune duplicates (that pass the veto) through to the verifier.
    let cand_grid: Vec<f32> = (0..=9).map(|i| 0.50 + 0.05 * i as f32).collect();
    println!("## Candidate stage on the tune split: static-model cosine ≥ t, then the hard veto\n");
    println!("| t (static cosine) | candidates | duplicates among them | dup share reaching the verifier |");
    println!("|---|---|---|---|");
    let mut tc = cand_grid[0];
    for &t in &cand_grid {
        let x = v_tally(rows.iter().filter(|r| !r.held), |r| {
            r.static_cos >= t && !r.vetoed
        });
        println!(
            "| {t:.2} | {} | {:.3} | {:.3} |",
            x.served,
            x.precision(),
            x.recall()
        );
        if x.recall() >= 0.90 {
            tc = t;
        }
    }
    if let Some(t) = opt_f32(args, "--candidate") {
        tc = t;
    }
    // What the one-sided negated-pole veto costs: tune duplicates above the candidate
    // threshold that it refuses (the other veto rules are the old guard's).
    {
        let x = v_tally(
            rows.iter()
                .filter(|r| !r.held && r.static_cos >= tc && r.guard_ok),
            |r| r.vetoed,
        );
        eprintln!("tune pairs passing the old guard at {tc:.2} that the new veto refuses: {} ({} duplicates of {})", x.served, x.served_dup, x.dups);
    }
    // What a stricter veto (a polarity word on one side only) would cost and catch.
    {
        let i = FEATURE_NAMES
            .iter()
            .position(|n| *n == "polarity_one_side")
            .unwrap();
        let x = v_tally(
            rows.iter()
                .filter(|r| !r.held && r.static_cos >= tc && !r.vetoed),
            |r| r.x_static[i] > 0.5,
        );
        eprintln!("polarity_one_side among tune candidates at {tc:.2}: {} pairs, {} duplicates ({:.1}% of candidate duplicates)",
            x.served, x.served_dup, 100.0 * x.served_dup as f64 / x.dups as f64);
    }
    println!("\nCandidate threshold: **{tc:.2}** (highest with ≥ 90% of tune duplicates reaching the verifier).\n");

    // 3. Out-of-fold probabilities on tune (5 folds by hash), so the threshold is chosen on
    //    scores of pairs the model did not see; then the final models on all tune candidates.
    let fit_opts = FitOptions::default();
    let in_train = |r: &VRow| !r.held && r.static_cos >= tc && !r.vetoed;
    let fit = |rows: &[VRow], keep: &dyn Fn(&VRow) -> bool, minilm: bool| {
        let (x, y): (Vec<[f32; N_FEATURES]>, Vec<bool>) = rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| (if minilm { r.x_minilm } else { r.x_static }, r.dup))
            .unzip();
        Logistic::fit(&x, &y, &signs(minilm), &fit_opts)
    };
    let t_fit = Instant::now();
    for fold in 0..5 {
        let ms = fit(&rows, &|r| in_train(r) && r.fold != fold, false);
        let mm = fit(&rows, &|r| in_train(r) && r.fold != fold, true);
        for r in rows.iter_mut().filter(|r| !r.held && r.fold == fold) {
            r.p_static = ms.probability(&r.x_static);
            r.p_minilm = mm.probability(&r.x_minilm);
        }
    }
    let model_s = fit(&rows, &in_train, false);
    let model_m = fit(&rows, &in_train, true);
    for r in rows.iter_mut().filter(|r| r.held) {
        r.p_static = model_s.probability(&r.x_static);
        r.p_minilm = model_m.probability(&r.x_minilm);
    }
    let n_train = rows.iter().filter(|r| in_train(r)).count();
    let n_train_dup = rows.iter().filter(|r| in_train(r) && r.dup).count();
    eprintln!("12 fits in {:.1}s", t_fit.elapsed().as_secs_f64());

    // 4. The verifier's threshold, per variant, on the out-of-fold tune scores.
    let grid: Vec<f32> = (0..50).map(|i| 0.50 + 0.01 * i as f32).collect();
    let tune = || rows.iter().filter(|r| !r.held);
    println!("## Verifier sweep on the tune split (out-of-fold probabilities, candidate threshold {tc:.2})\n");
    println!("| p ≥ | precision (static only) | dup share (static only) | precision (+ MiniLM on the pair) | dup share (+ MiniLM) |");
    println!("|---|---|---|---|---|");
    for &t in grid.iter().step_by(2) {
        let a = v_tally(tune(), |r| v_served(r, tc, t, false));
        let b = v_tally(tune(), |r| v_served(r, tc, t, true));
        println!(
            "| {t:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
            a.precision(),
            a.recall(),
            b.precision(),
            b.recall()
        );
    }
    // What the precision ceiling is made of: the tune pairs labelled "different" that the
    // MiniLM variant scores highest (out-of-fold), for a reader to judge.
    let mut fp: Vec<&VRow> = tune()
        .filter(|r| !r.dup && r.static_cos >= tc && !r.vetoed)
        .collect();
    fp.sort_by(|a, b| b.p_minilm.total_cmp(&a.p_minilm));
    println!("\n### The 25 highest-scoring tune pairs labelled \"different\" (+MiniLM variant, out-of-fold)\n");
    println!("| p | MiniLM cos | source | cached (text_a) | query (text_b) |");
    println!("|---|---|---|---|---|");
    for r in fp.iter().take(25) {
        let cell = |t: &str| t.replace('|', "/").replace('\n', " ");
        println!(
            "| {:.3} | {:.3} | {} | {} | {} |",
            r.p_minilm,
            r.minilm_cos,
            r.pair.source,
            cell(&r.pair.text_a),
            cell(&r.pair.text_b)
        );
    }
    println!();
    let (ts, met_s) = choose(
        &grid,
        |t| v_tally(tune(), |r| v_served(r, tc, t, false)),
        GOAL,
    );
    let (tm, met_m) = choose(
        &grid,
        |t| v_tally(tune(), |r| v_served(r, tc, t, true)),
        GOAL,
    );
    let say = |met: bool| {
        if met {
            "lowest with tune precision ≥ 0.97"
        } else {
            "0.97 NOT reached on tune; best precision"
        }
    };
    println!(
        "\nChosen on tune: static only **p ≥ {ts:.2}** ({}), with MiniLM **p ≥ {tm:.2}** ({}).\n",
        say(met_s),
        say(met_m)
    );

    // Baselines at their own tune-chosen thresholds: cosine + the full guard (the current
    // cache), for the static model and for MiniLM.
    let cos_grid: Vec<f32> = (0..=40).map(|i| 0.60 + 0.01 * i as f32).collect();
    let base = |minilm: bool, t: f32, r: &VRow| {
        (if minilm { r.minilm_cos } else { r.static_cos }) >= t && r.guard_ok
    };
    let (tbs, _) = choose(&cos_grid, |t| v_tally(tune(), |r| base(false, t, r)), GOAL);
    let (tbm, _) = choose(&cos_grid, |t| v_tally(tune(), |r| base(true, t, r)), GOAL);

    // 5. Held-out, per source.
    let mut sources: Vec<String> = rows.iter().map(|r| r.pair.source.clone()).collect();
    sources.sort();
    sources.dedup();
    sources.push("all".into());
    let held = |src: &str| {
        let src = src.to_owned();
        rows.iter()
            .filter(move |r| r.held && (src == "all" || r.pair.source == src))
    };
    println!("## Held-out split at the tune-chosen operating points\n");
    println!("| pipeline | source | pairs | duplicates | served | precision | dup share |");
    println!("|---|---|---|---|---|---|---|");
    type Pipe<'a> = (String, Box<dyn Fn(&VRow) -> bool + 'a>);
    let pipes: Vec<Pipe> = vec![
        (
            format!("static ≥ {tc:.2} → veto → verifier (static) p ≥ {ts:.2}"),
            Box::new(move |r: &VRow| v_served(r, tc, ts, false)),
        ),
        (
            format!("static ≥ {tc:.2} → veto → verifier (+MiniLM) p ≥ {tm:.2}"),
            Box::new(move |r: &VRow| v_served(r, tc, tm, true)),
        ),
        (
            format!("baseline: static cosine ≥ {tbs:.2} + guard"),
            Box::new(move |r: &VRow| base(false, tbs, r)),
        ),
        (
            format!("baseline: MiniLM cosine ≥ {tbm:.2} + guard"),
            Box::new(move |r: &VRow| base(true, tbm, r)),
        ),
    ];
    let mut headline: Vec<(String, String, Tally)> = Vec::new();
    for (name, f) in &pipes {
        for src in &sources {
            let x = v_tally(held(src), f);
            println!(
                "| {name} | {src} | {} | {} | {} | {:.3} | {:.3} |",
                held(src).count(),
                x.dups,
                x.served,
                x.precision(),
                x.recall()
            );
            headline.push((name.clone(), src.clone(), x));
        }
    }

    println!("\n## Held-out sweep of the verifier threshold, per source (precision / dup share)\n");
    print!("| p ≥ | variant |");
    for s in &sources {
        print!(" {s} |");
    }
    println!("\n|---|---|{}", "---|".repeat(sources.len()));
    for t in [
        0.50f32, 0.60, 0.70, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96,
    ] {
        for minilm in [false, true] {
            print!("| {t:.2} | {} |", if minilm { "+MiniLM" } else { "static" });
            for s in &sources {
                let x = v_tally(held(s), |r| v_served(r, tc, t, minilm));
                print!(" {:.3} / {:.3} |", x.precision(), x.recall());
            }
            println!();
        }
    }

    println!("\n## Held-out baseline for comparison: MiniLM cosine + the old guard (precision / dup share)\n");
    print!("| MiniLM cosine ≥ |");
    for s in &sources {
        print!(" {s} |");
    }
    println!("\n|---|{}", "---|".repeat(sources.len()));
    for t in [0.94f32, 0.95, 0.96, 0.97, 0.98, 0.99] {
        print!("| {t:.2} |");
        for s in &sources {
            let x = v_tally(held(s), |r| base(true, t, r));
            print!(" {:.3} / {:.3} |", x.precision(), x.recall());
        }
        println!();
    }

    // 6. Polarity probes at the operating points: every one must miss.
    let verifier = Verifier {
        static_only: Variant {
            model: model_s.clone(),
            threshold: ts,
        },
        with_minilm: Variant {
            model: model_m.clone(),
            threshold: tm,
        },
        candidate_threshold: tc,
    };
    let mut probe_rows: BTreeMap<&str, [usize; 6]> = BTreeMap::new();
    let mut leaks = Vec::new();
    for r in rows.iter().filter(|r| r.held && r.dup) {
        let p = r.pair;
        let a_words: Vec<String> = p
            .text_a
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_lowercase)
            .collect();
        for (kind, flipped) in probes(&p.text_b) {
            // The same filter as the `probes` table of the other modes.
            let new_word = flipped
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_lowercase)
                .find(|w| {
                    !w.is_empty()
                        && !p
                            .text_b
                            .to_lowercase()
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|x| x == w)
                });
            if new_word.is_some_and(|w| a_words.contains(&w)) {
                continue;
            }
            let sc = dot(&sv[&p.text_a], &sv[&flipped]);
            let mc = dot(&mv[&p.text_a], &mv[&flipped]);
            let cand = sc >= tc;
            let ps = verifier.probability(&flipped, &p.text_a, sc, None);
            let pm = verifier.probability(&flipped, &p.text_a, sc, Some(mc));
            let ds = verifier.verify(&flipped, &p.text_a, sc, None);
            let dm = verifier.verify(&flipped, &p.text_a, sc, Some(mc));
            let e = probe_rows.entry(kind).or_default();
            e[0] += 1;
            e[1] += usize::from(cand);
            e[2] += usize::from(cand && ps >= ts);
            e[3] += usize::from(cand && pm >= tm);
            e[4] += usize::from(cand && ds.accept());
            e[5] += usize::from(cand && dm.accept());
            if cand && (ds.accept() || dm.accept()) && leaks.len() < 8 {
                leaks.push(format!(
                    "- {kind}: cached \"{}\" / query \"{flipped}\"",
                    p.text_a
                ));
            }
        }
    }
    println!(
        "\n## Polarity probes from held-out duplicates at the operating points (must all miss)\n"
    );
    println!("| probe | probes | candidates (static ≥ {tc:.2}) | verifier alone, static | verifier alone, +MiniLM | served: veto + verifier, static | served: veto + verifier, +MiniLM |");
    println!("|---|---|---|---|---|---|---|");
    for (k, e) in &probe_rows {
        println!(
            "| {k} | {} | {} | {} | {} | **{}** | **{}** |",
            e[0], e[1], e[2], e[3], e[4], e[5]
        );
    }
    for l in &leaks {
        println!("{l}");
    }

    // 7. The real `Cache` with `Hit::question`: static embedding, guard off (the verifier
    //    vetoes polarity itself), threshold = candidate threshold, then the verifier.
    let cache = Cache::new(CacheConfig::default());
    let policy = RoutePolicy {
        threshold: tc,
        guard: false,
        ..RoutePolicy::default()
    };
    let now = Instant::now();
    let (mut agree, mut total) = (0, 0);
    for r in rows.iter().filter(|r| r.held) {
        let p = r.pair;
        let ra = req(&p.text_a);
        let pa = Prepared::new(&p.id, "r", &ra);
        cache
            .insert(
                &ra,
                &pa,
                Some(sv[&p.text_a].clone()),
                resp("a"),
                &policy,
                CacheControl::Normal,
                now,
            )
            .unwrap();
        let rb = req(&p.text_b);
        let pb = Prepared::new(&p.id, "r", &rb);
        let served = match cache.lookup_exact(&pb, now) {
            Some(_) => true,
            None => match cache.lookup_semantic(&pb, &sv[&p.text_b], &policy, now) {
                Lookup::Hit(hit) => {
                    let sim = match hit.kind {
                        HitKind::Semantic { similarity } => similarity,
                        HitKind::Exact => 1.0,
                    };
                    verifier
                        .verify(&pb.question, &hit.question, sim, None)
                        .accept()
                }
                Lookup::Miss(_) => false,
            },
        };
        total += 1;
        agree += usize::from(
            served == v_served(r, tc, ts, false)
                || (served && p.text_a.split_whitespace().eq(p.text_b.split_whitespace())),
        );
    }
    println!("\nEnd-to-end through `Cache` + `Hit::question` + `Verifier` (static variant, one scope per held-out pair): {agree}/{total} decisions agree with the table.\n");

    // 8. Added latency of verification.
    let cands: Vec<&VRow> = rows
        .iter()
        .filter(|r| r.held && r.static_cos >= tc && !r.vetoed)
        .collect();
    let mut times = Vec::new();
    let mut sink = 0usize;
    for _ in 0..5 {
        for r in &cands {
            let t0 = Instant::now();
            let d = verifier.verify(&r.pair.text_b, &r.pair.text_a, r.static_cos, None);
            times.push(t0.elapsed());
            sink += usize::from(d.accept());
        }
    }
    let (s50, s99) = (pct(&mut times, 0.5), pct(&mut times, 0.99));
    let mini = switchyard_embed::MiniLm::load(models.join("all-MiniLM-L6-v2")).unwrap();
    let mut mtimes = Vec::new();
    for r in cands.iter().step_by((cands.len() / 300).max(1)) {
        let t0 = Instant::now();
        let v = mini
            .embed(&[r.pair.text_b.as_str(), r.pair.text_a.as_str()])
            .unwrap();
        let d = verifier.verify(
            &r.pair.text_b,
            &r.pair.text_a,
            r.static_cos,
            Some(dot(&v[0], &v[1])),
        );
        mtimes.push(t0.elapsed());
        sink += usize::from(d.accept());
    }
    let n_m = mtimes.len();
    let (m50, m99) = (pct(&mut mtimes, 0.5), pct(&mut mtimes, 0.99));
    println!("## Added latency of verification (held-out candidates, this machine)\n");
    println!("| step | calls | p50 | p99 |");
    println!("|---|---|---|---|");
    println!("| verify, static features only (veto + features + logistic) | {} | {s50:.1} µs | {s99:.1} µs |", times.len());
    println!(
        "| MiniLM on the pair (2 texts, one batch) + verify | {n_m} | {:.1} ms | {:.1} ms |",
        m50 / 1e3,
        m99 / 1e3
    );
    eprintln!("({sink})");

    // 9. The artifact.
    let summary: Vec<Value> = headline
        .iter()
        .filter(|(name, _, _)| name.contains("verifier"))
        .map(|(name, src, x)| {
            serde_json::json!({"pipeline": name, "source": src, "served": x.served,
                "precision": round3(x.precision()), "dup_share": round3(x.recall())})
        })
        .collect();
    let tune_at = |t: f32, m: bool| v_tally(tune(), |r| v_served(r, tc, t, m));
    let meta = serde_json::json!({
        "trained_on": {
            "description": "semantic_cache.dev.jsonl (qqp, mrpc_test, gptcache_mock pairs; label 1 = same intent), TUNE split only: pairs whose FNV-1a(id) is even, restricted to candidates (static-model cosine >= candidate_threshold, not vetoed). The held-out (odd) half was never used for fitting or for choosing thresholds.",
            "rows": n_train,
            "positives": n_train_dup,
            "static_model": "minilm-static-256",
            "minilm": "all-MiniLM-L6-v2",
        },
        "train": {"method": "logistic regression, standardised features, full-batch gradient descent from zero", "steps": fit_opts.steps, "learning_rate": fit_opts.learning_rate, "l2": fit_opts.l2},
        "operating_points": {
            "rule": "lowest verifier probability threshold whose 5-fold out-of-fold precision on the tune split is >= 0.97 (else the best precision)",
            "static_only": {"threshold": ts, "goal_met_on_tune": met_s, "tune_precision": round3(tune_at(ts, false).precision()), "tune_dup_share": round3(tune_at(ts, false).recall())},
            "with_minilm": {"threshold": tm, "goal_met_on_tune": met_m, "tune_precision": round3(tune_at(tm, true).precision()), "tune_dup_share": round3(tune_at(tm, true).recall())},
        },
        "held_out": summary,
        "produced_by": "cargo run --release -p switchyard-cache --example eval -- verify --write",
    });
    let json = verifier.to_json(meta);
    if write {
        std::fs::write(
            &artifact,
            serde_json::to_string_pretty(&json).unwrap() + "\n",
        )
        .unwrap();
        eprintln!("wrote {}", artifact.display());
    } else {
        eprintln!("(artifact not written; pass --write)");
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn opt_f32(args: &[String], name: &str) -> Option<f32> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}
