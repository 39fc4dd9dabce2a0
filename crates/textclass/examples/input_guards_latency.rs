//! Latency of the default input guards together on 1,000-token prompts, for issue 4's goal
//! "all default input guards together under 1 ms p99 for a 1,000-token prompt when no
//! embedding is needed".
//!
//! ```text
//! cargo run --release -p switchyard-textclass --example input_guards_latency
//! ```
//!
//! What runs per prompt, in the gateway's order: the PII guard with the default config
//! (`switchyard_pii` scanner limited to the default kinds: EMAIL, PHONE, CREDIT_CARD, IBAN,
//! US_SSN, IP_ADDRESS, SECRET; action `pseudonymize`; a fresh mask session per request), then
//! the injection detector with the default artifact (`eval/artifacts/injection-permissive.v1.json`,
//! patterns + classifier) on the masked text as a user message. The output guards and the
//! embedding-based ones are not part of the goal and not run.
//!
//! Prompts: rows of `../shared/data/topic/topic.dev.jsonl` (benign CLINC150 requests and
//! AG News paragraphs) in a fixed hash order, joined with newlines and cut at exactly 1,000
//! WordPiece tokens of the all-MiniLM-L6-v2 tokenizer (only used to count: no embedding runs).
//! A second set has five structured PII values (e-mail, phone, card, IBAN, IP) inserted, so
//! the masker also replaces something.
//!
//! Options: `--data FILE` (topic JSONL), `--artifact FILE`, `--prompts N` (default 300),
//! `--rounds N` (default 5), `--tokens N` (default 1000), `--model-dir DIR` (the tokenizer).
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a measuring tool: a bad file should stop it loudly"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use switchyard_embed::MiniLm;
use switchyard_pii::{Action, EntityKind, MaskPolicy, Masker, Scanner, ScannerConfig};
use switchyard_textclass::id_hash;
use switchyard_textclass::injection::{Channel, Detector};

/// The gateway's default `[guards.pii].kinds` (`switchyard-control`, `DEFAULT_PII_KINDS`).
const DEFAULT_KINDS: [EntityKind; 7] = [
    EntityKind::Email,
    EntityKind::Phone,
    EntityKind::CreditCard,
    EntityKind::Iban,
    EntityKind::UsSsn,
    EntityKind::IpAddress,
    EntityKind::Secret,
];

/// Values in formats the scanner's evaluation covers (a Luhn-valid test card, a valid GB IBAN).
const PII: [&str; 5] = [
    "Please write to maria.lopez@example.org about it.",
    "My number is +44 20 7946 0958 if you need me.",
    "Charge card 4111 1111 1111 1111 for the deposit.",
    "Refund to IBAN GB82 WEST 1234 5698 7654 32 please.",
    "The server at 192.168.14.27 went down again.",
];

#[derive(Deserialize)]
struct Row {
    id: String,
    text: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let mut data = switchyard_testkit::data::path("topic/topic.dev.jsonl");
    let mut artifact = root.join("eval/artifacts/injection-permissive.v1.json");
    let mut model_dir = root.join(switchyard_embed::MINILM_DIR);
    let (mut prompts, mut rounds, mut tokens) = (300usize, 5usize, 1000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize { args.next().and_then(|s| s.parse().ok()).expect("a number") };
        match a.as_str() {
            "--prompts" => prompts = num(),
            "--rounds" => rounds = num(),
            "--tokens" => tokens = num(),
            "--data" => data = args.next().expect("--data FILE").into(),
            "--artifact" => artifact = args.next().expect("--artifact FILE").into(),
            "--model-dir" => model_dir = args.next().expect("--model-dir DIR").into(),
            other => panic!("unknown argument {other:?}"),
        }
    }

    // 1. Prompts of exactly `tokens` WordPiece tokens.
    let tokenizer = MiniLm::load(&model_dir)
        .unwrap_or_else(|e| panic!("loading the tokenizer from {}: {e}", model_dir.display()));
    let data = switchyard_testkit::data::require_or_exit(data);
    let mut rows: Vec<Row> = std::fs::read_to_string(&data)
        .unwrap_or_else(|e| panic!("reading {}: {e}", data.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSONL row"))
        .collect();
    rows.sort_by_key(|r| (id_hash(&r.id), r.id.clone()));
    // MiniLm's tokenizer truncates at 256 tokens; counting needs it off.
    let mut counter = tokenizer.tokenizer().clone();
    counter.with_truncation(None).expect("truncation off");
    let count = |t: &str| -> Vec<(usize, usize)> {
        counter
            .encode(t, false)
            .map(|e| e.get_offsets().to_vec())
            .unwrap_or_default()
    };
    let mut clean: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut buf_tokens = 0usize;
    for r in rows.iter().cycle().take(rows.len() * 2) {
        buf.push_str(&r.text);
        buf.push('\n');
        // Rough running count first (cheap), the exact cut once it is close.
        buf_tokens += r.text.len() / 5 + 1;
        if buf_tokens < tokens {
            continue;
        }
        let offsets = count(&buf);
        if offsets.len() < tokens {
            buf_tokens = offsets.len();
            continue;
        }
        let end = offsets[tokens - 1].1;
        clean.push(buf[..end].to_owned());
        buf.clear();
        buf_tokens = 0;
        if clean.len() == prompts {
            break;
        }
    }
    // The same prompts with five PII sentences spread through them (about 60 tokens more).
    let with_pii: Vec<String> = clean
        .iter()
        .map(|p| {
            let lines: Vec<&str> = p.split('\n').collect();
            let step = (lines.len() / (PII.len() + 1)).max(1);
            let mut out = String::with_capacity(p.len() + 300);
            let mut k = 0;
            for (i, line) in lines.iter().enumerate() {
                out.push_str(line);
                out.push('\n');
                if k < PII.len() && (i + 1) % step == 0 {
                    out.push_str(PII[k]);
                    out.push('\n');
                    k += 1;
                }
            }
            out
        })
        .collect();
    let mean_bytes = clean.iter().map(String::len).sum::<usize>() / clean.len().max(1);
    let pii_tokens = with_pii.first().map(|p| count(p).len()).unwrap_or(0);

    // 2. The guards, built once as the gateway builds them.
    let scanner = Scanner::new(ScannerConfig::only(DEFAULT_KINDS)).expect("scanner");
    let masker = Masker::new(Arc::new(scanner), MaskPolicy::uniform(Action::Pseudonymize));
    let detector =
        Detector::load(&artifact).unwrap_or_else(|e| panic!("{}: {e}", artifact.display()));

    println!(
        "Prompts: {} of {tokens} WordPiece tokens (mean {mean_bytes} bytes); with PII: +5 \
         values ({pii_tokens} tokens for the first). Artifact `{}`. {rounds} rounds.\n",
        clean.len(),
        artifact.file_name().unwrap_or_default().to_string_lossy()
    );
    println!("| prompts | stage | samples | p50 µs | p90 µs | p99 µs | max µs | p99 of best-of-{rounds} µs |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (name, set) in [
        ("benign, no PII", &clean),
        ("benign + 5 PII values", &with_pii),
    ] {
        // Warm-up: caches, lazy regex state.
        for p in set.iter() {
            let m = masker.session(b"salt").mask(p);
            std::hint::black_box(detector.scan(&m.text, Channel::User));
        }
        let mut t_mask = Vec::new();
        let mut t_scan = Vec::new();
        let mut t_all = Vec::new();
        let mut best = vec![[f64::INFINITY; 3]; set.len()];
        let mut found = 0usize;
        let mut flagged = 0usize;
        for round in 0..rounds {
            for (i, p) in set.iter().enumerate() {
                let t0 = Instant::now();
                let masked = masker.session(b"request salt").mask(p);
                let t1 = Instant::now();
                let v = detector.scan(&masked.text, Channel::User);
                let t2 = Instant::now();
                let times = [
                    (t1 - t0).as_secs_f64() * 1e6,
                    (t2 - t1).as_secs_f64() * 1e6,
                    (t2 - t0).as_secs_f64() * 1e6,
                ];
                t_mask.push(times[0]);
                t_scan.push(times[1]);
                t_all.push(times[2]);
                for (b, t) in best[i].iter_mut().zip(times) {
                    *b = b.min(t);
                }
                if round == 0 {
                    found += masked.findings.len();
                    flagged += usize::from(v.injection);
                }
                std::hint::black_box(v);
            }
        }
        for (k, (stage, times)) in [
            ("PII scan + pseudonymize", &mut t_mask),
            ("injection scan", &mut t_scan),
            ("**both (sequential)**", &mut t_all),
        ]
        .into_iter()
        .enumerate()
        {
            times.sort_by(f64::total_cmp);
            let mut b: Vec<f64> = best.iter().map(|x| x[k]).collect();
            b.sort_by(f64::total_cmp);
            println!(
                "| {name} | {stage} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                times.len(),
                percentile(times, 0.5),
                percentile(times, 0.9),
                percentile(times, 0.99),
                times.last().copied().unwrap_or(f64::NAN),
                percentile(&b, 0.99),
            );
        }
        println!(
            "| {name} | (findings per prompt: {:.1}; flagged as injection: {flagged} of {}) | | | | | | |",
            found as f64 / set.len() as f64,
            set.len()
        );
    }
}
