//! Measures the two embedders for `eval/embeddings.md`: latency (p50/p99) for 20- and
//! 200-token inputs, resident memory, and quality on the semantic-cache pairs (ROC AUC of the
//! cosine similarity; precision and recall at the best-F1 threshold, per source).
//!
//! One model per process, so resident memory is that model's alone:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p switchyard-embed --example embed_eval -- latency minilm
//! RAYON_NUM_THREADS=1 cargo run --release -p switchyard-embed --example embed_eval -- latency static
//! cargo run --release -p switchyard-embed --example embed_eval -- quality minilm
//! cargo run --release -p switchyard-embed --example embed_eval -- quality static [FILE]
//! ```
//!
//! The pairs are `semantic_cache/semantic_cache.dev.jsonl` of the shared data folder
//! (`SWITCHYARD_DATA_DIR`, default `../shared/data`; `switchyard_testkit::data`), or FILE.
#![expect(clippy::unwrap_used, reason = "a measuring tool")]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use switchyard_embed::{MiniLm, StaticEmbedder, MINILM_DIR, STATIC_DIR};
use switchyard_textclass::cosine;

/// Plain English prose to cut 20- and 200-token inputs from.
const PROSE: &str = "Our support team receives many questions about billing, accounts and \
    deliveries every day. Customers often ask how to reset a forgotten password, why a payment \
    was declined, or when an order that was shipped last week will finally arrive at their \
    door. Some want to change the address on an order that has not left the warehouse yet, \
    while others need an invoice with their company's tax number for the accounting \
    department. A few write long messages that describe a problem with the mobile application: \
    it crashes when they open the settings page, it forgets that they logged in, or it shows \
    prices in the wrong currency after a trip abroad. The gateway sees all of these requests \
    before the language model does, and a cache that recognises a question it has already \
    answered can reply in a few milliseconds instead of several seconds, at no cost. That only \
    works if the similarity between two questions is measured well: two questions that differ \
    in a single word, such as enable and disable, must not be treated as the same request, \
    while a question that is merely phrased differently should be. This paragraph exists to \
    give the benchmark a realistic mix of common words, rarer words and punctuation, and it \
    is long enough to provide two hundred tokens for the longer of the two measured inputs.";

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The longest prefix of [`PROSE`] (whole words) with at most `n` word pieces.
fn input_of(tokens: usize, count: &dyn Fn(&str) -> usize) -> (String, usize) {
    let words: Vec<&str> = PROSE.split_whitespace().collect();
    let mut best = (String::new(), 0);
    for k in 1..=words.len() {
        let s = words[..k].join(" ");
        let c = count(&s);
        if c > tokens {
            break;
        }
        best = (s, c);
    }
    best
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentiles(mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..runs.div_ceil(10) {
        f();
    }
    let mut us = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    percentiles(us)
}

fn latency(which: &str) {
    let rss_before = status_kb("VmRSS:");
    println!(
        "model {which}; candle/rayon threads: {}",
        candle_core::utils::get_num_threads()
    );
    match which {
        "minilm" => {
            let m = MiniLm::load(repo(MINILM_DIR)).unwrap();
            let rss_loaded = status_kb("VmRSS:");
            let count = |s: &str| m.tokenizer().encode(s, false).unwrap().len();
            for (n, runs) in [(20, 300), (200, 60)] {
                let (text, c) = input_of(n, &count);
                let (p50, p99) = time(runs, || {
                    m.embed_one(&text).unwrap();
                });
                println!(
                    "| MiniLM | {c} tokens (+[CLS],[SEP]) | {:.2} ms | {:.2} ms | {runs} |",
                    p50 / 1e3,
                    p99 / 1e3
                );
            }
            report_memory(rss_before, rss_loaded);
        }
        _ => {
            let m = StaticEmbedder::load(repo(STATIC_DIR)).unwrap();
            let rss_loaded = status_kb("VmRSS:");
            let count = |s: &str| m.token_ids(s).unwrap().len();
            for (n, runs) in [(20, 20_000), (200, 5_000)] {
                let (text, c) = input_of(n, &count);
                let (p50, p99) = time(runs, || {
                    std::hint::black_box(m.embed(std::hint::black_box(&text)).unwrap());
                });
                println!(
                    "| static, text → vector | {c} tokens | {p50:.1} µs | {p99:.1} µs | {runs} |"
                );
                let ids = m.token_ids(&text).unwrap();
                let (p50, p99) = time(runs, || {
                    std::hint::black_box(m.embed_ids(std::hint::black_box(&ids)));
                });
                println!("| static, ids → vector (pooling only) | {c} tokens | {p50:.2} µs | {p99:.2} µs | {runs} |");
            }
            report_memory(rss_before, rss_loaded);
        }
    }
}

fn report_memory(before: u64, loaded: u64) {
    println!(
        "resident memory: {:.1} MB before loading, {:.1} MB after loading, peak {:.1} MB",
        before as f64 / 1024.0,
        loaded as f64 / 1024.0,
        status_kb("VmHWM:") as f64 / 1024.0
    );
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half; None without both classes.
fn auc(scored: &[(f32, bool)]) -> Option<f64> {
    let mut v = scored.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0f64, 0usize);
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let neg = v.len() as f64 - pos;
    (pos > 0.0 && neg > 0.0).then(|| (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// (threshold, precision, recall, F1) at the threshold with the best F1 for "same if cos ≥ t".
fn best_threshold(scored: &[(f32, bool)]) -> (f32, f64, f64, f64) {
    let mut v = scored.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let (mut tp, mut best) = (0.0f64, (1.0f32, 0.0, 0.0, 0.0));
    for (k, &(s, y)) in v.iter().enumerate() {
        tp += f64::from(u8::from(y));
        if v.get(k + 1).is_some_and(|n| n.0 == s) {
            continue;
        }
        let (p, r) = (tp / (k + 1) as f64, tp / pos.max(1.0));
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        if f1 > best.3 {
            best = (s, p, r, f1);
        }
    }
    best
}

fn at_threshold(scored: &[(f32, bool)], t: f32) -> (f64, f64) {
    let served: Vec<_> = scored.iter().filter(|x| x.0 >= t).collect();
    let tp = served.iter().filter(|x| x.1).count() as f64;
    let pos = scored.iter().filter(|x| x.1).count() as f64;
    (tp / (served.len() as f64).max(1.0), tp / pos.max(1.0))
}

fn quality(which: &str, data: &std::path::Path) {
    let text = std::fs::read_to_string(data).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut unique: Vec<&str> = rows
        .iter()
        .flat_map(|r| [r["text_a"].as_str().unwrap(), r["text_b"].as_str().unwrap()])
        .collect();
    unique.sort_by_key(|s| (s.len(), *s));
    unique.dedup();
    let started = Instant::now();
    let vectors: Vec<Vec<f32>> = match which {
        "minilm" => {
            let m = MiniLm::load(repo(MINILM_DIR)).unwrap();
            // Sorted by length, so each batch pads little.
            unique
                .chunks(64)
                .flat_map(|c| m.embed(c).unwrap())
                .collect()
        }
        _ => StaticEmbedder::load(repo(STATIC_DIR))
            .unwrap()
            .embed_batch(&unique)
            .unwrap(),
    };
    let index: HashMap<&str, usize> = unique.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    println!(
        "{which}: {} texts embedded in {:.1} s",
        unique.len(),
        started.elapsed().as_secs_f64()
    );
    let mut by_source: BTreeMap<String, Vec<(f32, bool)>> = BTreeMap::new();
    for r in &rows {
        let a = &vectors[index[r["text_a"].as_str().unwrap()]];
        let b = &vectors[index[r["text_b"].as_str().unwrap()]];
        let s = cosine(a, b);
        let y = r["label"].as_i64() == Some(1);
        by_source
            .entry(r["source"].as_str().unwrap().to_owned())
            .or_default()
            .push((s, y));
        by_source
            .entry("(all)".to_owned())
            .or_default()
            .push((s, y));
    }
    let (t_all, ..) = best_threshold(&by_source["(all)"]);
    println!("| model | source | pairs (same) | ROC AUC | best-F1 threshold | precision | recall | F1 | precision / recall at the overall threshold {t_all:.3} |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (source, scored) in &by_source {
        let pos = scored.iter().filter(|x| x.1).count();
        let auc = auc(scored).map_or("n/a (one class)".to_owned(), |a| format!("{a:.4}"));
        let (t, p, r, f1) = best_threshold(scored);
        let (pa, ra) = at_threshold(scored, t_all);
        println!(
            "| {which} | {source} | {} ({pos}) | {auc} | {t:.3} | {p:.3} | {r:.3} | {f1:.3} | {pa:.3} / {ra:.3} |",
            scored.len()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.get(1).map_or("static", String::as_str);
    match args.first().map(String::as_str) {
        Some("latency") => latency(which),
        Some("quality") => {
            let data = args.get(2).map_or_else(
                || switchyard_testkit::data::path("semantic_cache/semantic_cache.dev.jsonl"),
                PathBuf::from,
            );
            quality(which, &switchyard_testkit::data::require_or_exit(data));
        }
        _ => eprintln!("usage: embed_eval latency|quality minilm|static [data.jsonl]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_threshold_on_a_hand_example() {
        let s = [(0.9, true), (0.8, false), (0.7, true), (0.1, false)];
        assert_eq!(auc(&s), Some(0.75));
        let (t, p, r, _) = best_threshold(&s);
        assert_eq!((t, p, r), (0.7, 2.0 / 3.0, 1.0));
    }
}
