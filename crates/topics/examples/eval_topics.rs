//! Evaluate the topic filter on `../shared/data/topic/topic.dev.jsonl` (CLINC150 with its
//! out-of-scope queries, AG News) with the static embedder.
//!
//! ```text
//! cargo run --release -p switchyard-topics --example eval_topics
//! cargo run --release -p switchyard-topics --example eval_topics -- --data FILE --model DIR
//! ```
//!
//! Protocol (prints the Markdown of `eval/topics.md`):
//! 1. Split per (source, label, intent) by the mixed hash of the row id
//!    (`switchyard_textclass::id_hash`): the first 30% are the tune part, the rest held out.
//! 2. Each setup declares topics with a few example phrases taken from the tune part only
//!    (the first `k` rows of the topic by the same hash, round-robin across intents for a
//!    domain) and a description written by hand.
//! 3. The similarity bar is chosen on the tune part (rows used as examples excluded) by the
//!    best balanced accuracy (mean of in-scope acceptance and out-of-scope rejection), then
//!    every figure is measured on the held-out part at that bar. The sweep tables show the
//!    held-out trade-off at other bars; they do not choose anything.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use switchyard_embed::StaticEmbedder;
use switchyard_textclass::id_hash;
use switchyard_topics::{Scoring, Thresholds, TopicFilter, TopicKind, TopicSpec};

#[derive(Debug, Clone, Deserialize)]
struct Row {
    id: String,
    source: String,
    text: String,
    label: String,
    intent: Option<String>,
}

const TUNE_SHARE: f64 = 0.3;

struct Data {
    rows: Vec<Row>,
    vecs: Vec<Vec<f32>>,
    tune: Vec<bool>,
}

fn load(data: &PathBuf, model: &StaticEmbedder) -> Data {
    let text = std::fs::read_to_string(data).unwrap();
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut groups: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups
            .entry((
                r.source.clone(),
                r.label.clone(),
                r.intent.clone().unwrap_or_default(),
            ))
            .or_default()
            .push(i);
    }
    let mut tune = vec![false; rows.len()];
    for (_, mut g) in groups {
        g.sort_by_key(|&i| (id_hash(&rows[i].id), rows[i].id.clone()));
        let cut = (g.len() as f64 * TUNE_SHARE).round() as usize;
        for &i in &g[..cut] {
            tune[i] = true;
        }
    }
    let vecs = rows.iter().map(|r| model.embed(&r.text).unwrap()).collect();
    Data { rows, vecs, tune }
}

/// Where a row stands in a setup: in scope (accept), a named negative group (refuse), or
/// not part of the setup.
type Role = fn(&Row) -> Option<Result<(), &'static str>>;

struct Setup {
    name: &'static str,
    topics: Vec<TopicSpec>,
    /// Example row ids, excluded from every count.
    used: Vec<String>,
    role: Role,
    /// Allowed topics: the bar is `allow`; denied-only: the bar is `deny`.
    denied_only: bool,
}

/// The first `k` tune rows matching `pick`, round-robin across intents (hash order inside).
fn examples(d: &Data, k: usize, pick: impl Fn(&Row) -> bool) -> Vec<(String, String)> {
    let mut by_intent: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in d.rows.iter().enumerate() {
        if d.tune[i] && pick(r) {
            by_intent
                .entry(r.intent.clone().unwrap_or_default())
                .or_default()
                .push(i);
        }
    }
    for v in by_intent.values_mut() {
        v.sort_by_key(|&i| (id_hash(&d.rows[i].id), d.rows[i].id.clone()));
    }
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < k {
        let mut any = false;
        for v in by_intent.values() {
            if let Some(&i) = v.get(round) {
                any = true;
                if out.len() < k {
                    out.push((d.rows[i].id.clone(), d.rows[i].text.clone()));
                }
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

fn topic(
    name: &str,
    ex: &[(String, String)],
    description: Option<&str>,
    keywords: &[&str],
    kind: TopicKind,
) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        examples: ex.iter().map(|e| e.1.clone()).collect(),
        description: description.map(str::to_owned),
        keywords: keywords.iter().map(|s| (*s).to_owned()).collect(),
        kind,
    }
}

const INTENTS: [&str; 8] = [
    "balance",
    "transfer",
    "transactions",
    "freeze_account",
    "pin_change",
    "credit_limit",
    "card_declined",
    "report_lost_card",
];

fn intents_role(r: &Row) -> Option<Result<(), &'static str>> {
    Some(match (r.source.as_str(), r.label.as_str()) {
        ("clinc150", _) if INTENTS.contains(&r.intent.as_deref().unwrap_or("")) => Ok(()),
        ("clinc150", "out_of_scope") => Err("clinc out_of_scope"),
        ("clinc150", "banking" | "credit_cards") => Err("clinc sibling intents (same domains)"),
        ("clinc150", _) => Err("clinc other domains"),
        _ => Err("ag_news (all)"),
    })
}

const DOMAINS: [(&str, &str); 5] = [
    ("banking", "Questions about bank accounts: balances, transfers, transactions, bills, fraud, routing numbers, interest."),
    ("credit_cards", "Questions about credit cards: limits, rewards, declined or lost cards, APR, fees, credit scores."),
    ("travel", "Travel questions: flights, hotels, luggage, visas, vaccines, exchange rates, translations."),
    ("auto_and_commute", "Car and commute questions: gas, tires, oil changes, maintenance, traffic, directions."),
    ("work", "Workplace questions: payroll, direct deposit, paid time off, 401k, taxes, insurance, meetings."),
];

fn domains_role(r: &Row) -> Option<Result<(), &'static str>> {
    Some(match (r.source.as_str(), r.label.as_str()) {
        ("clinc150", l) if DOMAINS.iter().any(|d| d.0 == l) => Ok(()),
        ("clinc150", "out_of_scope") => Err("clinc out_of_scope"),
        ("clinc150", _) => Err("clinc other domains"),
        _ => Err("ag_news (all)"),
    })
}

fn denied_role(r: &Row) -> Option<Result<(), &'static str>> {
    // Here "in scope" means "should be refused"; the sign is flipped in `measure`.
    Some(match (r.source.as_str(), r.label.as_str()) {
        ("ag_news", "World" | "Sports") => Ok(()),
        ("ag_news", _) => Err("ag_news Business + Sci/Tech"),
        ("clinc150", "out_of_scope") => Err("clinc out_of_scope"),
        _ => Err("clinc in-scope intents"),
    })
}

struct Measure {
    pos: usize,
    pos_ok: usize,
    /// Negative group → (rows, handled right).
    neg: BTreeMap<&'static str, (usize, usize)>,
    top1: (usize, usize),
}

impl Measure {
    fn pos_rate(&self) -> f64 {
        ratio(self.pos_ok, self.pos)
    }
    fn neg_rate(&self) -> f64 {
        let (n, ok) = self
            .neg
            .values()
            .fold((0, 0), |(a, b), (n, ok)| (a + n, b + ok));
        ratio(ok, n)
    }
    fn balanced(&self) -> f64 {
        (self.pos_rate() + self.neg_rate()) / 2.0
    }
    /// Allowed setups: of the refused, the share that were out of scope.
    /// Denied setups: of the refused, the share that were denied-topic rows.
    fn refusal_precision(&self, denied_only: bool) -> f64 {
        let neg_ok: usize = self.neg.values().map(|v| v.1).sum();
        let neg_n: usize = self.neg.values().map(|v| v.0).sum();
        if denied_only {
            // refused = pos_ok (denied rows refused) + (neg_n - neg_ok) (false refusals)
            ratio(self.pos_ok, self.pos_ok + neg_n - neg_ok)
        } else {
            ratio(neg_ok, neg_ok + self.pos - self.pos_ok)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn measure<E: switchyard_topics::Embedder>(
    d: &Data,
    s: &Setup,
    f: &TopicFilter<E>,
    tune: bool,
) -> Measure {
    let mut m = Measure {
        pos: 0,
        pos_ok: 0,
        neg: BTreeMap::new(),
        top1: (0, 0),
    };
    let allowed_names: Vec<&str> = f
        .topics()
        .filter(|t| t.1 == TopicKind::Allowed)
        .map(|t| t.0)
        .collect();
    for (i, r) in d.rows.iter().enumerate() {
        if d.tune[i] != tune || s.used.contains(&r.id) {
            continue;
        }
        let Some(role) = (s.role)(r) else { continue };
        let v = f.classify_embedded(&r.text, &d.vecs[i]);
        // For allowed setups "right" = accepted in scope / refused out of scope; for denied
        // setups = refused denied rows / accepted the rest.
        let refused = !v.allowed;
        match role {
            Ok(()) => {
                m.pos += 1;
                if refused == s.denied_only {
                    m.pos_ok += 1;
                }
                if !s.denied_only {
                    let want = topic_name_of(r);
                    m.top1.0 += 1;
                    if v.best.as_ref().map(|b| b.0.as_str()) == Some(want)
                        && allowed_names.contains(&want)
                    {
                        m.top1.1 += 1;
                    }
                }
            }
            Err(g) => {
                let e = m.neg.entry(g).or_default();
                e.0 += 1;
                if refused != s.denied_only {
                    e.1 += 1;
                }
            }
        }
    }
    m
}

fn topic_name_of(r: &Row) -> &str {
    match r.intent.as_deref() {
        Some(i) if INTENTS.contains(&i) => i,
        _ => r.label.as_str(),
    }
}

fn bars(s: &Setup, bar: f32, scoring: Scoring) -> Thresholds {
    if s.denied_only {
        Thresholds {
            allow: 0.0,
            deny: bar,
            scoring,
        }
    } else {
        Thresholds {
            allow: bar,
            deny: 1.0,
            scoring,
        }
    }
}

const GRID: std::ops::RangeInclusive<i32> = 20..=90;

/// The bar (0.20 … 0.90 step 0.01) with the best balanced accuracy on the tune part.
fn choose<E: switchyard_topics::Embedder>(
    d: &Data,
    s: &Setup,
    mut f: TopicFilter<E>,
    scoring: Scoring,
) -> (f32, TopicFilter<E>) {
    let mut best = (0.5f32, -1.0f64);
    for b in GRID {
        let bar = b as f32 / 100.0;
        f = f.with_thresholds(bars(s, bar, scoring));
        let bal = measure(d, s, &f, true).balanced();
        if bal > best.1 {
            best = (bar, bal);
        }
    }
    (best.0, f.with_thresholds(bars(s, best.0, scoring)))
}

fn f3(x: f64) -> String {
    if x.is_nan() {
        "–".to_owned()
    } else {
        format!("{x:.3}")
    }
}

fn report_row(label: &str, bar: f32, m: &Measure, denied_only: bool) -> String {
    let groups: Vec<String> = m
        .neg
        .iter()
        .map(|(g, (n, ok))| format!("{g}: {} (n={n})", f3(ratio(*ok, *n))))
        .collect();
    let top1 = if denied_only {
        String::new()
    } else {
        format!(" | {}", f3(ratio(m.top1.1, m.top1.0)))
    };
    format!(
        "| {label} | {bar:.2} | {} (n={}) | {} | {} | {}{top1} | {} |",
        f3(m.pos_rate()),
        m.pos,
        f3(m.neg_rate()),
        f3(m.refusal_precision(denied_only)),
        f3(m.balanced()),
        groups.join("; ")
    )
}

fn header(denied_only: bool) -> &'static str {
    if denied_only {
        "| variant | deny bar | denied rows refused (recall) | other rows accepted | precision of refusals | balanced acc. | accepted per source |\n|---|---|---|---|---|---|---|"
    } else {
        "| variant | allow bar | in-scope accepted | out-of-scope refused (pooled) | precision of refusals | balanced acc. | top-1 topic | refused per source |\n|---|---|---|---|---|---|---|---|"
    }
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut data = switchyard_testkit::data::path("topic/topic.dev.jsonl");
    let mut model_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().unwrap().into(),
            "--model" => model_dir = Some(args.next().unwrap().into()),
            other => panic!("unknown argument {other}"),
        }
    }
    let model_dir = model_dir.unwrap_or_else(|| {
        [
            "../../models/minilm-static-256",
            "../../models/models/minilm-static-256",
        ]
        .into_iter()
        .map(|p| manifest.join(p))
        .find(|p| p.exists())
        .expect("no static model: pass --model DIR (scripts/fetch-models.sh, then `switchyard models distill`)")
    });
    let data = switchyard_testkit::data::require_or_exit(data);
    let model = StaticEmbedder::load(&model_dir).unwrap();
    let t0 = Instant::now();
    let d = load(&data, &model);
    let embed_all = t0.elapsed();
    let embed = |t: &str| model.embed(t).unwrap_or_default();

    println!(
        "rows: {} ({} tune, {} held out); embedded all in {:.2} s with {}\n",
        d.rows.len(),
        d.tune.iter().filter(|t| **t).count(),
        d.tune.iter().filter(|t| !**t).count(),
        embed_all.as_secs_f64(),
        switchyard_testkit::data::shown(&model_dir)
    );

    for k in [5usize, 10] {
        // Setup 1: eight intents of a bank's assistant.
        let mut used = Vec::new();
        let mut topics = Vec::new();
        for intent in INTENTS {
            let ex = examples(&d, k, |r| r.intent.as_deref() == Some(intent));
            used.extend(ex.iter().map(|e| e.0.clone()));
            topics.push(topic(intent, &ex, None, &[], TopicKind::Allowed));
        }
        let intents = Setup {
            name: "A. 8 allowed CLINC intents (bank assistant)",
            topics,
            used,
            role: intents_role,
            denied_only: false,
        };
        // Setup 2: five allowed CLINC domains, examples spread across their intents.
        let mut used = Vec::new();
        let mut topics = Vec::new();
        for (domain, description) in DOMAINS {
            let ex = examples(&d, k, |r| r.source == "clinc150" && r.label == domain);
            used.extend(ex.iter().map(|e| e.0.clone()));
            topics.push(topic(
                domain,
                &ex,
                Some(description),
                &[],
                TopicKind::Allowed,
            ));
        }
        let domains = Setup {
            name: "B. 5 allowed CLINC domains",
            topics,
            used,
            role: domains_role,
            denied_only: false,
        };
        // Setup 3: a general assistant that refuses world politics and sports news.
        let mut used = Vec::new();
        let world = examples(&d, k, |r| r.source == "ag_news" && r.label == "World");
        let sports = examples(&d, k, |r| r.source == "ag_news" && r.label == "Sports");
        used.extend(world.iter().chain(&sports).map(|e| e.0.clone()));
        let denied_topics =
            |kw: bool| {
                vec![
                topic(
                    "world_politics",
                    &world,
                    Some("News about world politics, governments, elections, wars and diplomacy."),
                    if kw {
                        &["election", "prime minister", "parliament", "ceasefire", "insurgents"]
                    } else {
                        &[]
                    },
                    TopicKind::Denied,
                ),
                topic(
                    "sports",
                    &sports,
                    Some("Sports news: games, scores, teams, players, leagues and tournaments."),
                    if kw {
                        &["touchdown", "playoffs", "quarterback", "world cup", "grand slam"]
                    } else {
                        &[]
                    },
                    TopicKind::Denied,
                ),
            ]
            };
        let denied = Setup {
            name: "C. 2 denied AG News topics (world politics, sports)",
            topics: denied_topics(false),
            used: used.clone(),
            role: denied_role,
            denied_only: true,
        };
        let denied_kw = Setup {
            name: "C+. the same with 5 keywords each",
            topics: denied_topics(true),
            used,
            role: denied_role,
            denied_only: true,
        };

        println!("## {k} examples per topic\n");
        for s in [&intents, &domains, &denied, &denied_kw] {
            println!("### {}\n", s.name);
            println!("{}", header(s.denied_only));
            let mut chosen = None;
            for scoring in [
                Scoring::MaxOrCentroid,
                Scoring::MaxExample,
                Scoring::Centroid,
            ] {
                let f = TopicFilter::new(s.topics.clone(), &embed, Thresholds::default()).unwrap();
                let (bar, f) = choose(&d, s, f, scoring);
                let m = measure(&d, s, &f, false);
                println!(
                    "{}",
                    report_row(
                        &format!("{scoring:?}, bar from tune"),
                        bar,
                        &m,
                        s.denied_only
                    )
                );
                if scoring == Scoring::MaxOrCentroid {
                    chosen = Some(bar);
                }
            }
            // The held-out sweep around the chosen bar.
            let f = TopicFilter::new(s.topics.clone(), &embed, Thresholds::default()).unwrap();
            let mut f = f;
            let centre = chosen.unwrap_or(0.5);
            for step in [-0.15f32, -0.1, -0.05, 0.05, 0.1, 0.15] {
                let bar = ((centre + step) * 100.0).round() / 100.0;
                f = f.with_thresholds(bars(s, bar, Scoring::MaxOrCentroid));
                let m = measure(&d, s, &f, false);
                println!("{}", report_row("sweep (held out)", bar, &m, s.denied_only));
            }
            println!();
        }
        if k == 5 {
            let latency_texts: Vec<String> = d
                .rows
                .iter()
                .zip(&d.tune)
                .filter(|(_, t)| !**t)
                .map(|(r, _)| r.text.clone())
                .step_by(10)
                .collect();
            // Latency on setup B (5 topics × (k + 1) vectors) and a 40-topic filter.
            let f =
                TopicFilter::new(domains.topics.clone(), &embed, Thresholds::default()).unwrap();
            let mut big = Vec::new();
            for (n, intent) in d
                .rows
                .iter()
                .filter_map(|r| r.intent.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .take(40)
                .enumerate()
            {
                let ex = examples(&d, 10, |r| r.intent.as_deref() == Some(intent.as_str()));
                big.push(topic(&format!("t{n}"), &ex, None, &[], TopicKind::Allowed));
            }
            let big = TopicFilter::new(big, &embed, Thresholds::default()).unwrap();
            println!(
                "## Latency per check ({} held-out texts, each 5 times, this machine)\n",
                latency_texts.len()
            );
            println!("| what | p50 µs | p99 µs |\n|---|---|---|");
            for (label, run) in [
                ("embed only (static 256-d)", 0),
                ("classify, 5 topics × 6 vectors (embed included)", 1),
                ("classify_embedded, 5 topics × 6 vectors", 2),
                ("classify, 40 topics × 10 vectors (embed included)", 3),
            ] {
                let mut times = Vec::new();
                for t in &latency_texts {
                    let v = embed(t);
                    for _ in 0..5 {
                        let start = Instant::now();
                        match run {
                            0 => drop(std::hint::black_box(embed(t))),
                            1 => drop(std::hint::black_box(f.classify(t))),
                            2 => drop(std::hint::black_box(f.classify_embedded(t, &v))),
                            _ => drop(std::hint::black_box(big.classify(t))),
                        }
                        times.push(start.elapsed().as_secs_f64() * 1e6);
                    }
                }
                times.sort_by(f64::total_cmp);
                let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
                println!("| {label} | {:.1} | {:.1} |", p(0.5), p(0.99));
            }
            println!();
        }
    }
}
