//! Evaluate the bias detector on `../shared/data/bias/bias.dev.jsonl` (CrowS-Pairs minimal
//! pairs; `text_a` is the more stereotyping sentence) and its false flags on benign text
//! (`../shared/data/topic/`).
//!
//! ```text
//! cargo run --release -p switchyard-topics --example eval_bias            # evaluate the shipped artifact
//! cargo run --release -p switchyard-topics --example eval_bias -- --train # retrain, write it, evaluate
//! ```
//!
//! Protocol (prints the Markdown of `eval/bias.md`):
//! 1. Pairs (the unit: both sentences of a pair stay together) split 70/30 per bias type by
//!    the mixed hash of the id (`switchyard_textclass::id_hash`).
//! 2. The classifier is logistic regression over hashed word and character n-grams trained on
//!    the 70% with `text_a` → 1 and `text_b` → 0; the combined threshold is chosen on 5-fold
//!    out-of-fold scores inside the 70% (largest flag-rate gap between `text_a` and `text_b`).
//! 3. Every figure is on the 30% held-out pairs; the pattern tier was written by hand and not
//!    tuned on this data.
//! 4. A "group words only" baseline trains the same classifier on just the words that differ
//!    between the two sentences: it shows how much of the pairwise accuracy is a prior over
//!    which group is named rather than any reading of the sentence.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use switchyard_textclass::{
    id_hash, train_logistic, BinaryArtifact, BinaryClassifier, Features, NgramConfig,
    NgramFeaturizer, TrainConfig, TrainingData,
};
use switchyard_topics::bias::{BiasDetector, COMBINED_THRESHOLD, PATTERN_THRESHOLD};
use switchyard_topics::scan_patterns;

#[derive(Debug, Clone, Deserialize)]
struct Pair {
    id: String,
    text_a: String,
    text_b: String,
    label: String,
    direction: String,
}

#[derive(Debug, Clone, Deserialize)]
struct TopicRow {
    source: String,
    text: String,
}

const TRAIN_SHARE: f64 = 0.7;
const FOLDS: u64 = 5;

fn features() -> NgramConfig {
    NgramConfig {
        buckets_log2: 16,
        char_ngram_min: 3,
        char_ngram_max: 5,
        max_bytes: 4096,
    }
}

fn train_cfg() -> TrainConfig {
    TrainConfig {
        epochs: 8,
        learning_rate: 0.1,
        l2: 1e-4,
        seed: 0x5157_1c4a,
    }
}

fn split(pairs: Vec<Pair>) -> (Vec<Pair>, Vec<Pair>) {
    let mut by: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    for p in pairs {
        by.entry(p.label.clone()).or_default().push(p);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut g) in by {
        g.sort_by_key(|p| (id_hash(&p.id), p.id.clone()));
        let cut = (g.len() as f64 * TRAIN_SHARE).round() as usize;
        let rest = g.split_off(cut.min(g.len()));
        train.extend(g);
        test.extend(rest);
    }
    (train, test)
}

fn fold_of(id: &str) -> u64 {
    id_hash(id).rotate_left(17) % FOLDS
}

/// The words of `a` that are not in `b`, as text.
fn diff_words(a: &str, b: &str) -> String {
    let wb: BTreeSet<String> = switchyard_topics::words(b).into_iter().collect();
    switchyard_topics::words(a)
        .into_iter()
        .filter(|w| !wb.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Train on pairs: (a → 1, b → 0), texts made by `view`.
fn train(pairs: &[&Pair], view: &dyn Fn(&Pair) -> (String, String)) -> BinaryClassifier {
    let fz = NgramFeaturizer::new(features());
    let mut xs: Vec<Features> = Vec::new();
    let mut ys = Vec::new();
    for p in pairs {
        let (a, b) = view(p);
        xs.push(fz.featurize(&a));
        ys.push(1.0);
        xs.push(fz.featurize(&b));
        ys.push(0.0);
    }
    let m = train_logistic(&xs, &ys, features().buckets(), &train_cfg());
    BinaryClassifier::new(features(), m, 0.5)
}

fn full(p: &Pair) -> (String, String) {
    (p.text_a.clone(), p.text_b.clone())
}

fn diff(p: &Pair) -> (String, String) {
    (
        diff_words(&p.text_a, &p.text_b),
        diff_words(&p.text_b, &p.text_a),
    )
}

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    wins: usize,
    ties: usize,
    flag_a: usize,
    flag_b: usize,
}

impl Tally {
    fn add(&mut self, sa: f32, sb: f32, bar: f32) {
        self.n += 1;
        if sa > sb {
            self.wins += 1;
        } else if sa == sb {
            self.ties += 1;
        }
        self.flag_a += usize::from(sa >= bar);
        self.flag_b += usize::from(sb >= bar);
    }
    /// Ties count half.
    fn pairwise(&self) -> f64 {
        (self.wins as f64 + self.ties as f64 / 2.0) / self.n as f64
    }
    fn cell(&self) -> String {
        format!(
            "{:.3} ({:.0}% ties) | {:.3} / {:.3}",
            self.pairwise(),
            100.0 * self.ties as f64 / self.n as f64,
            self.flag_a as f64 / self.n as f64,
            self.flag_b as f64 / self.n as f64
        )
    }
}

/// The combined threshold with the largest gap between flag rates on `a` and `b`, from
/// out-of-fold combined scores inside the train part.
fn choose_threshold(train_pairs: &[&Pair]) -> f32 {
    let mut scores = Vec::new();
    for k in 0..FOLDS {
        let fit: Vec<&Pair> = train_pairs
            .iter()
            .copied()
            .filter(|p| fold_of(&p.id) != k)
            .collect();
        let det = BiasDetector::new(Some(train(&fit, &full)), 0.5);
        for p in train_pairs.iter().filter(|p| fold_of(&p.id) == k) {
            scores.push((det.scan(&p.text_a).score, det.scan(&p.text_b).score));
        }
    }
    let mut best = (0.5f32, -1.0f64);
    for b in 30..=95 {
        let bar = b as f32 / 100.0;
        let n = scores.len() as f64;
        let fa = scores.iter().filter(|s| s.0 >= bar).count() as f64 / n;
        let fb = scores.iter().filter(|s| s.1 >= bar).count() as f64 / n;
        if fa - fb > best.1 {
            best = (bar, fa - fb);
        }
    }
    best.0
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut data = switchyard_testkit::data::path("bias/bias.dev.jsonl");
    let mut benign = switchyard_testkit::data::path("topic/topic.dev.jsonl");
    let mut artifact = manifest.join("../../eval/artifacts/bias.v1.json");
    let mut train_mode = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--train" => train_mode = true,
            "--data" => data = args.next().unwrap().into(),
            "--benign" => benign = args.next().unwrap().into(),
            "--artifact" => artifact = args.next().unwrap().into(),
            other => panic!("unknown argument {other:?}"),
        }
    }
    let data = switchyard_testkit::data::require_or_exit(data);
    let benign = switchyard_testkit::data::require_or_exit(benign);
    let pairs: Vec<Pair> = std::fs::read_to_string(&data)
        .unwrap_or_else(|e| panic!("reading {}: {e}", data.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (train_part, test) = split(pairs);
    let train_refs: Vec<&Pair> = train_part.iter().collect();
    println!(
        "pairs: {} train, {} held out\n",
        train_part.len(),
        test.len()
    );

    if train_mode {
        let bar = choose_threshold(&train_refs);
        let c = train(&train_refs, &full);
        let trained_on = TrainingData {
            description: format!(
                "bias.dev.jsonl (Switchyard's CrowS-Pairs development split), the 70% train part \
                 ({} pairs) of a split by a mixed hash of id within each bias type; text_a (more \
                 stereotyping) = 1, text_b = 0. For evaluation only: CrowS-Pairs is CC-BY-SA-4.0 \
                 and measures relative stereotyping between minimal pairs, not absolute bias.",
                train_refs.len()
            ),
            rows: 2 * train_refs.len(),
            licence: "CC-BY-SA-4.0 (CrowS-Pairs); evaluation only, not for release".to_owned(),
        };
        let mut a = BinaryArtifact::new(
            "stereotype_relative",
            trained_on,
            features(),
            train_cfg(),
            c.model(),
            0.5,
            1e-4,
        );
        a.params.insert(COMBINED_THRESHOLD.to_owned(), bar);
        a.save(&artifact).unwrap();
        eprintln!("wrote {} (combined threshold {bar:.2})", artifact.display());
    }
    let combined = BiasDetector::load(&artifact).unwrap();
    let bar = combined.threshold();
    let patterns = BiasDetector::default();
    let classifier_only = combined.classifier().cloned().unwrap();
    let group_prior = train(&train_refs, &diff);

    // Pairwise accuracy and flag rates per bias type and direction.
    let mut rows: BTreeMap<String, [Tally; 4]> = BTreeMap::new();
    for p in &test {
        let keys = [
            format!("type: {}", p.label),
            format!("direction: {}", p.direction),
            "all held-out pairs".to_owned(),
        ];
        let pa = scan_patterns(&p.text_a).score();
        let pb = scan_patterns(&p.text_b).score();
        let ca = classifier_only.score(&p.text_a);
        let cb = classifier_only.score(&p.text_b);
        let va = combined.scan(&p.text_a).score;
        let vb = combined.scan(&p.text_b).score;
        let (da, db) = diff(p);
        let ga = group_prior.score(&da);
        let gb = group_prior.score(&db);
        for k in keys {
            let t = rows.entry(k).or_default();
            t[0].add(pa, pb, PATTERN_THRESHOLD);
            t[1].add(ca, cb, 0.5);
            t[2].add(va, vb, bar);
            t[3].add(ga, gb, 0.5);
        }
    }
    println!(
        "## Held-out CrowS-Pairs: pairwise accuracy (ties half) | flag rate text_a / text_b\n"
    );
    println!(
        "Pattern bar {PATTERN_THRESHOLD}, classifier bar 0.5, combined bar {bar:.2} (chosen out of fold on the train part).\n"
    );
    println!("| slice | n | patterns: pairwise | a / b flagged | classifier: pairwise | a / b | combined: pairwise | a / b | group words only: pairwise | a / b |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let order = |k: &String| (k.starts_with("all"), k.starts_with("direction"), k.clone());
    let mut keys: Vec<&String> = rows.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(order(k)));
    for k in keys {
        let t = rows[k];
        println!(
            "| {k} | {} | {} | {} | {} | {} |",
            t[0].n,
            t[0].cell(),
            t[1].cell(),
            t[2].cell(),
            t[3].cell()
        );
    }

    // Which patterns fire on the held-out sentences.
    let mut fired: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for p in &test {
        for (side, text) in [(0, &p.text_a), (1, &p.text_b)] {
            for pat in scan_patterns(text).patterns {
                let e = fired.entry(pat.name()).or_default();
                if side == 0 {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
    }
    println!(
        "\n## Patterns firing on held-out sentences (text_a / text_b, of {} each)\n",
        test.len()
    );
    println!("| pattern | text_a | text_b |\n|---|---|---|");
    for (k, (a, b)) in &fired {
        println!("| {k} | {a} | {b} |");
    }

    // False flags on benign text.
    let benign_rows: Vec<TopicRow> = std::fs::read_to_string(&benign)
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default();
    let mut by_source: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for r in &benign_rows {
        let e = by_source.entry(r.source.as_str()).or_default();
        e[0] += 1;
        e[1] += usize::from(patterns.scan(&r.text).biased);
        e[2] += usize::from(classifier_only.score(&r.text) >= 0.5);
        e[3] += usize::from(combined.scan(&r.text).biased);
    }
    println!("\n## Flag rate on benign text (`topic/`: CLINC150 queries, AG News headlines)\n");
    println!("| source | n | patterns | classifier | combined |\n|---|---|---|---|---|");
    for (s, [n, p, c, b]) in &by_source {
        let r = |x: &usize| format!("{:.3}", *x as f64 / *n as f64);
        println!("| {s} | {n} | {} | {} | {} |", r(p), r(c), r(b));
    }
    let examples: Vec<&str> = benign_rows
        .iter()
        .filter(|r| patterns.scan(&r.text).biased)
        .map(|r| r.text.as_str())
        .take(5)
        .collect();
    if !examples.is_empty() {
        println!("\nFirst benign texts the pattern tier flags:\n");
        for e in examples {
            println!("- {}", e.chars().take(160).collect::<String>());
        }
    }

    // Latency.
    let texts: Vec<&str> = test.iter().map(|p| p.text_a.as_str()).collect();
    let long: String = texts.iter().take(60).copied().collect::<Vec<_>>().join(" ");
    let long = switchyard_textclass::truncate(&long, 4096).to_owned();
    println!("\n## Latency per answer (each text 5 times, this machine)\n");
    println!("| what | p50 µs | p99 µs |\n|---|---|---|");
    for (label, det, set) in [
        ("patterns, one sentence", &patterns, texts.clone()),
        ("combined, one sentence", &combined, texts.clone()),
        ("patterns, 4 KB answer", &patterns, vec![long.as_str(); 50]),
        ("combined, 4 KB answer", &combined, vec![long.as_str(); 50]),
    ] {
        let mut times = Vec::new();
        for t in &set {
            for _ in 0..5 {
                let s = Instant::now();
                std::hint::black_box(det.scan(t));
                times.push(s.elapsed().as_secs_f64() * 1e6);
            }
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!("| {label} | {:.1} | {:.1} |", p(0.5), p(0.99));
    }
}
