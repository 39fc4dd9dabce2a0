//! Evaluates the PII scanner on the shared development data and prints a Markdown report.
//!
//! ```text
//! cargo run --release -p switchyard-pii --example eval              # the shared data folder
//! cargo run --release -p switchyard-pii --example eval -- --data DIR  # another folder
//! cargo run --release -p switchyard-pii --example eval -- --errors PERSON   # tune half only
//! cargo run --release -p switchyard-pii --example eval -- --train eval/artifacts/pii-context.v1.json
//! ```
//!
//! 1. `pii/pii.dev.jsonl` is split by SHA-256 of each row's `id` into a tune half and a
//!    held-out half; rules and word lists are tuned on the tune half only (`--errors` prints
//!    misses and false alarms from the tune half and never from the held-out half).
//! 2. Gold labels are mapped to the scanner's kinds; labels the scanner does not target are
//!    listed and left out of recall (predictions on them still count as false positives).
//! 3. Spans match exactly, or by overlap (intersection over union >= 0.5), one to one.
//! 4. Benign text (`topic/*.jsonl`, benign rows of `prompt_injection/`) is split by SHA-256 of
//!    `id` into a TRAIN part (negatives for the context model, `--train`) and an EVAL part,
//!    which gives the share of rows flagged per kind.
//! 5. Latency of scan + mask for ~100-char and ~4 KB texts, p50, p90 and p99 over 20 rounds.

#![expect(clippy::unwrap_used, reason = "an offline evaluation tool")]

mod train;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchyard_pii::{EntityKind, MaskPolicy, Masker, Scanner, ScannerConfig, Span};

#[derive(Deserialize)]
struct PiiRow {
    id: String,
    source: String,
    text: String,
    spans: Vec<GoldSpan>,
}

#[derive(Deserialize)]
struct GoldSpan {
    start: usize,
    end: usize,
    label: String,
}

#[derive(Deserialize)]
struct TextRow {
    #[serde(default)]
    id: String,
    source: String,
    text: String,
    #[serde(default)]
    label: serde_json::Value,
}

/// Gold label -> the scanner's kind. Labels absent here are not targeted.
fn map_label(label: &str) -> Option<EntityKind> {
    Some(match label {
        "EMAIL_ADDRESS" => EntityKind::Email,
        "PHONE_NUMBER" => EntityKind::Phone,
        "CREDIT_CARD" => EntityKind::CreditCard,
        "IBAN_CODE" => EntityKind::Iban,
        "US_SSN" => EntityKind::UsSsn,
        "IP_ADDRESS" => EntityKind::IpAddress,
        "PERSON" => EntityKind::Person,
        "LOCATION" => EntityKind::Location,
        "ADDRESS" | "STREET_ADDRESS" => EntityKind::StreetAddress,
        _ => return None,
    })
}

const STRUCTURED: [EntityKind; 6] = [
    EntityKind::Email,
    EntityKind::Phone,
    EntityKind::CreditCard,
    EntityKind::Iban,
    EntityKind::UsSsn,
    EntityKind::IpAddress,
];

struct Args {
    data: PathBuf,
    errors: Option<String>,
    train: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut data = None;
    let mut errors = None;
    let mut train = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--errors" => errors = args.next(),
            "--train" => train = args.next().map(PathBuf::from),
            other => {
                eprintln!("unknown argument {other}; usage: eval [--data DIR] [--errors KIND] [--train OUT.json]");
                std::process::exit(2);
            }
        }
    }
    // The folder given, else `SWITCHYARD_DATA_DIR`, else `../shared/data` beside the
    // repository root.
    let data = switchyard_testkit::data::dir(data.as_deref());
    switchyard_testkit::data::require_or_exit(data.join("pii/pii.dev.jsonl"));
    Args {
        data,
        errors,
        train,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| fail(&format!("{}: {err}", path.display())));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Character offsets (as the data gives them) to byte offsets.
fn char_to_byte(text: &str, char_index: usize) -> usize {
    text.char_indices()
        .nth(char_index)
        .map_or(text.len(), |(byte, _)| byte)
}

fn is_tune(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[0] % 2 == 0
}

/// Benign rows whose id hashes even (second byte) train the context model; the others are
/// only scored.
fn is_benign_train(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[1] % 2 == 0
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn f_beta(&self, beta: f64) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            (1.0 + beta * beta) * p * r / (beta * beta * p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn iou(a: (usize, usize), b: (usize, usize)) -> f64 {
    let inter = a.1.min(b.1).saturating_sub(a.0.max(b.0));
    let union = a.1.max(b.1) - a.0.min(b.0);
    ratio(inter, union)
}

/// One-to-one matching of predicted to gold spans of one kind in one row.
fn match_spans(
    gold: &[(usize, usize)],
    predicted: &[(usize, usize)],
    exact: bool,
) -> (Counts, Vec<bool>, Vec<bool>) {
    let mut gold_used = vec![false; gold.len()];
    let mut pred_used = vec![false; predicted.len()];
    for (p, pred) in predicted.iter().enumerate() {
        let best = gold
            .iter()
            .enumerate()
            .filter(|(g, _)| !gold_used[*g])
            .map(|(g, gold)| {
                (
                    g,
                    if exact {
                        f64::from(u8::from(gold == pred))
                    } else {
                        iou(*gold, *pred)
                    },
                )
            })
            .filter(|(_, score)| if exact { *score == 1.0 } else { *score >= 0.5 })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((g, _)) = best {
            gold_used[g] = true;
            pred_used[p] = true;
        }
    }
    let tp = pred_used.iter().filter(|u| **u).count();
    let counts = Counts {
        tp,
        fp: predicted.len() - tp,
        fn_: gold.len() - tp,
    };
    (counts, gold_used, pred_used)
}

struct Evaluated {
    /// (split, kind) -> (exact, overlap)
    by_kind: BTreeMap<(&'static str, EntityKind), (Counts, Counts)>,
    /// (split, source, kind) -> overlap
    by_source: BTreeMap<(&'static str, String, EntityKind), Counts>,
    /// DOB predictions against DATE_TIME gold: (split) -> (predicted, overlapping a DATE_TIME)
    dob: BTreeMap<&'static str, (usize, usize)>,
    rows: BTreeMap<&'static str, usize>,
    /// Held-out rows per source.
    source_rows: BTreeMap<String, usize>,
    /// (split, kind) -> [gold chars, gold chars masked by any finding, predicted chars,
    /// predicted chars inside any gold span]
    coverage: BTreeMap<(&'static str, EntityKind), [usize; 4]>,
    /// (kind, rule) -> (true, false) predictions by overlap, tune half only.
    by_rule: BTreeMap<(EntityKind, &'static str), (usize, usize)>,
    untargeted: BTreeMap<String, usize>,
}

fn evaluate(scanner: &Scanner, rows: &[PiiRow], errors: Option<EntityKind>) -> Evaluated {
    let mut result = Evaluated {
        by_kind: BTreeMap::new(),
        by_source: BTreeMap::new(),
        dob: BTreeMap::new(),
        rows: BTreeMap::new(),
        source_rows: BTreeMap::new(),
        by_rule: BTreeMap::new(),
        coverage: BTreeMap::new(),
        untargeted: BTreeMap::new(),
    };
    for row in rows {
        let split = if is_tune(&row.id) { "tune" } else { "held-out" };
        *result.rows.entry(split).or_default() += 1;
        if split == "held-out" {
            *result.source_rows.entry(row.source.clone()).or_default() += 1;
        }
        let predicted = scanner.scan(&row.text);
        let gold: Vec<(String, usize, usize)> = row
            .spans
            .iter()
            .map(|s| {
                (
                    s.label.clone(),
                    char_to_byte(&row.text, s.start),
                    char_to_byte(&row.text, s.end),
                )
            })
            .collect();
        for (label, _, _) in &gold {
            if map_label(label).is_none() && split == "tune" {
                *result.untargeted.entry(label.clone()).or_default() += 1;
            }
        }
        // Masking coverage, character by character: what a masker would actually hide.
        let mut predicted_any = vec![false; row.text.len()];
        for span in &predicted {
            predicted_any[span.start..span.end]
                .iter_mut()
                .for_each(|b| *b = true);
        }
        let mut gold_any = vec![false; row.text.len()];
        for (_, start, end) in &gold {
            gold_any[*start..*end].iter_mut().for_each(|b| *b = true);
        }
        for (label, start, end) in &gold {
            if let Some(kind) = map_label(label) {
                let entry = result.coverage.entry((split, kind)).or_default();
                entry[0] += end - start;
                entry[1] += predicted_any[*start..*end].iter().filter(|b| **b).count();
            }
        }
        for span in &predicted {
            let entry = result.coverage.entry((split, span.kind)).or_default();
            entry[2] += span.len();
            entry[3] += gold_any[span.start..span.end]
                .iter()
                .filter(|b| **b)
                .count();
        }
        let date_gold: Vec<(usize, usize)> = gold
            .iter()
            .filter(|(l, _, _)| l == "DATE_TIME")
            .map(|(_, s, e)| (*s, *e))
            .collect();
        for span in predicted
            .iter()
            .filter(|s| s.kind == EntityKind::DateOfBirth)
        {
            let entry = result.dob.entry(split).or_default();
            entry.0 += 1;
            if date_gold
                .iter()
                .any(|g| iou(*g, (span.start, span.end)) >= 0.5)
            {
                entry.1 += 1;
            }
        }
        for kind in EntityKind::ALL {
            if kind == EntityKind::DateOfBirth {
                continue;
            }
            let gold_spans: Vec<(usize, usize)> = gold
                .iter()
                .filter(|(label, _, _)| map_label(label) == Some(kind))
                .map(|(_, s, e)| (*s, *e))
                .collect();
            let predicted_of_kind: Vec<&Span> =
                predicted.iter().filter(|s| s.kind == kind).collect();
            let predicted_spans: Vec<(usize, usize)> =
                predicted_of_kind.iter().map(|s| (s.start, s.end)).collect();
            let (exact, _, _) = match_spans(&gold_spans, &predicted_spans, true);
            let (overlap, gold_used, pred_used) = match_spans(&gold_spans, &predicted_spans, false);
            if split == "tune" {
                for (span, used) in predicted_of_kind.iter().zip(&pred_used) {
                    let entry = result.by_rule.entry((kind, span.rule)).or_default();
                    if *used {
                        entry.0 += 1;
                    } else {
                        entry.1 += 1;
                    }
                }
            }
            let entry = result.by_kind.entry((split, kind)).or_default();
            entry.0.add(exact);
            entry.1.add(overlap);
            result
                .by_source
                .entry((split, row.source.clone(), kind))
                .or_default()
                .add(overlap);
            if errors == Some(kind) && split == "tune" {
                for (g, used) in gold_spans.iter().zip(&gold_used) {
                    if !used {
                        println!("MISS {:?}  in {:?}", &row.text[g.0..g.1], row.text);
                    }
                }
                for (p, used) in predicted_spans.iter().zip(&pred_used) {
                    if !used {
                        let other: Vec<&str> = gold
                            .iter()
                            .filter(|(_, s, e)| iou((*s, *e), *p) > 0.0)
                            .map(|(l, _, _)| l.as_str())
                            .collect();
                        println!(
                            "FALSE {:?} (gold here: {other:?})  in {:?}",
                            &row.text[p.0..p.1],
                            row.text
                        );
                    }
                }
            }
        }
    }
    result
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let args = parse_args();
    if let Some(out) = &args.train {
        let rows: Vec<PiiRow> = read_jsonl(&args.data.join("pii/pii.dev.jsonl"));
        train::train(&args.data, &rows, out);
        return;
    }
    let scanner = Arc::new(Scanner::new(ScannerConfig::default()).unwrap());
    let errors = args.errors.as_deref().map(|label| {
        EntityKind::from_label(label).unwrap_or_else(|| fail(&format!("unknown kind {label}")))
    });
    let rows: Vec<PiiRow> = read_jsonl(&args.data.join("pii/pii.dev.jsonl"));
    let result = evaluate(&scanner, &rows, errors);
    if errors.is_some() {
        return;
    }

    println!("## Span detection on `pii/pii.dev.jsonl`\n");
    for (split, rows) in &result.rows {
        println!("- {split}: {rows} rows");
    }
    for split in ["tune", "held-out"] {
        println!("\n### {split} half\n");
        println!("| kind | gold | predicted | exact P | exact R | exact F1 | overlap P | overlap R | overlap F1 | overlap F2 |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut structured = (Counts::default(), Counts::default());
        let mut overall = (Counts::default(), Counts::default());
        for kind in EntityKind::ALL {
            let Some((exact, overlap)) = result.by_kind.get(&(split, kind)) else {
                continue;
            };
            if kind == EntityKind::DateOfBirth {
                continue;
            }
            if STRUCTURED.contains(&kind) {
                structured.0.add(*exact);
                structured.1.add(*overlap);
            }
            overall.0.add(*exact);
            overall.1.add(*overlap);
            print_row(kind.label(), exact, overlap);
        }
        print_row("structured (micro)", &structured.0, &structured.1);
        print_row("**overall (micro, every kind)**", &overall.0, &overall.1);
        let (dob_predicted, dob_on_dates) = result.dob.get(split).copied().unwrap_or_default();
        println!(
            "\nDATE_OF_BIRTH: {dob_predicted} predicted, {dob_on_dates} of them on a gold DATE_TIME span (the data has no date-of-birth label)."
        );
    }
    println!("\n### Masking coverage, by characters\n");
    println!("Gold characters of the kind hidden by any finding (of any kind), and characters of the kind's findings that lie inside any gold span (of any label, targeted or not). This is what a masker achieves regardless of how the data cuts spans (one `ADDRESS` span in one source, street, unit, city and postcode as separate spans in the other).\n");
    println!("| split | kind | gold chars | masked | char recall | predicted chars | in gold | char precision |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for ((split, kind), [gold, masked, predicted, inside]) in &result.coverage {
        if *kind == EntityKind::DateOfBirth {
            continue;
        }
        println!(
            "| {split} | {kind} | {gold} | {masked} | {:.3} | {predicted} | {inside} | {:.3} |",
            ratio(*masked, *gold),
            ratio(*inside, *predicted)
        );
    }
    println!("\n### Overlap F1 and F2 per source (held-out half)\n");
    println!("| source | rows | kind | gold | P | R | F1 | F2 |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    let mut per_source: BTreeMap<&str, Counts> = BTreeMap::new();
    let print_source = |source: &str, kind: &str, counts: &Counts| {
        println!(
            "| {source} | {} | {kind} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            result.source_rows.get(source).copied().unwrap_or(0),
            counts.tp + counts.fn_,
            counts.precision(),
            counts.recall(),
            counts.f_beta(1.0),
            counts.f_beta(2.0)
        );
    };
    for ((split, source, kind), counts) in &result.by_source {
        if *split == "held-out" && *kind != EntityKind::DateOfBirth {
            per_source.entry(source.as_str()).or_default().add(*counts);
            if counts.tp + counts.fn_ > 0 {
                print_source(source, kind.label(), counts);
            }
        }
    }
    for (source, counts) in &per_source {
        print_source(source, "**overall**", counts);
    }
    println!("\n### Precision by rule (tune half, overlap matching)\n");
    println!("| kind | rule | right | wrong | precision |");
    println!("|---|---|---:|---:|---:|");
    for ((kind, rule), (right, wrong)) in &result.by_rule {
        println!(
            "| {kind} | {rule} | {right} | {wrong} | {:.3} |",
            ratio(*right, right + wrong)
        );
    }
    println!(
        "\nNot targeted (gold spans in the tune half): {:?}",
        result.untargeted
    );

    synthetic_secrets(&scanner);
    benign(&scanner, &args.data);
    latency(&scanner, &rows);
}

fn print_row(name: &str, exact: &Counts, overlap: &Counts) {
    println!(
        "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        exact.tp + exact.fn_,
        exact.tp + exact.fp,
        exact.precision(),
        exact.recall(),
        exact.f_beta(1.0),
        overlap.precision(),
        overlap.recall(),
        overlap.f_beta(1.0),
        overlap.f_beta(2.0)
    );
}

/// The benign sets: every row of `topic/*.jsonl` and the label-0 rows of `prompt_injection/`.
fn benign_sets(data: &Path) -> Vec<(String, Vec<TextRow>)> {
    let mut sets: Vec<(String, Vec<TextRow>)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data.join("topic")) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        paths.sort();
        for path in paths {
            sets.push((
                format!("topic/{}", path.file_name().unwrap().to_string_lossy()),
                read_jsonl(&path),
            ));
        }
    }
    let injection_path = data.join("prompt_injection/prompt_injection.dev.jsonl");
    if injection_path.is_file() {
        let injection: Vec<TextRow> = read_jsonl::<TextRow>(&injection_path)
            .into_iter()
            .filter(|row| row.label == serde_json::json!(0))
            .collect();
        sets.push(("prompt_injection (label 0)".to_string(), injection));
    } else {
        eprintln!(
            "{} not found: benign prompt-injection rows skipped",
            switchyard_testkit::data::shown(&injection_path)
        );
    }
    sets
}

/// Every benign row with its set's name.
fn benign_rows(data: &Path) -> Vec<(String, TextRow)> {
    benign_sets(data)
        .into_iter()
        .flat_map(|(set, rows)| rows.into_iter().map(move |row| (set.clone(), row)))
        .collect()
}

fn benign(scanner: &Scanner, data: &Path) {
    let mut sets: Vec<(String, Vec<TextRow>)> = benign_sets(data)
        .into_iter()
        .map(|(set, rows)| {
            (
                set,
                rows.into_iter()
                    .filter(|row| !is_benign_train(&row.id))
                    .collect(),
            )
        })
        .collect();
    let all: Vec<TextRow> = sets
        .iter()
        .flat_map(|(_, rows)| rows.iter())
        .map(|row| TextRow {
            id: row.id.clone(),
            source: "(all)".to_string(),
            text: row.text.clone(),
            label: row.label.clone(),
        })
        .collect();
    sets.insert(0, ("every benign set".to_string(), all));

    println!("\n## False positives on benign text\n");
    println!("EVAL part only (SHA-256(id)[1] odd; the TRAIN part trained the context model). Share of rows with at least one finding of the kind (none of these rows should hold real PII; a few do, see caveats).\n");
    let kinds: Vec<EntityKind> = EntityKind::ALL.to_vec();
    print!("| set | source | rows | any |");
    for kind in &kinds {
        print!(" {} |", kind.label());
    }
    println!();
    print!("|---|---|---:|---:|");
    for _ in &kinds {
        print!("---:|");
    }
    println!();
    for (set, rows) in &sets {
        let mut by_source: BTreeMap<&str, Vec<&TextRow>> = BTreeMap::new();
        for row in rows {
            by_source.entry(row.source.as_str()).or_default().push(row);
        }
        by_source.insert("(all)", rows.iter().collect());
        let mut examples: BTreeMap<(String, EntityKind), Vec<String>> = BTreeMap::new();
        for (source, rows) in by_source {
            let mut flagged: BTreeMap<EntityKind, usize> = BTreeMap::new();
            let mut any = 0;
            for row in &rows {
                let spans: Vec<Span> = scanner.scan(&row.text);
                if !spans.is_empty() {
                    any += 1;
                }
                let mut seen = std::collections::BTreeSet::new();
                for span in spans {
                    if seen.insert(span.kind) {
                        *flagged.entry(span.kind).or_default() += 1;
                    }
                    if source != "(all)" {
                        let list = examples.entry((source.to_string(), span.kind)).or_default();
                        let value: String = format!(
                            "{}={}",
                            span.rule,
                            row.text[span.start..span.end]
                                .chars()
                                .take(40)
                                .collect::<String>()
                        );
                        if list.len() < 12 && !list.contains(&value) {
                            list.push(value);
                        }
                    }
                }
            }
            print!(
                "| {set} | {source} | {} | {:.2}% |",
                rows.len(),
                100.0 * ratio(any, rows.len())
            );
            for kind in &kinds {
                print!(
                    " {:.2}% |",
                    100.0 * ratio(flagged.get(kind).copied().unwrap_or(0), rows.len())
                );
            }
            println!();
        }
        for ((source, kind), list) in examples {
            eprintln!("benign {set} {source} {kind}: {list:?}");
        }
    }
}

fn latency(scanner: &Arc<Scanner>, rows: &[PiiRow]) {
    let structured_only = ScannerConfig::only([
        EntityKind::Email,
        EntityKind::CreditCard,
        EntityKind::Iban,
        EntityKind::UsSsn,
        EntityKind::IpAddress,
        EntityKind::Secret,
        EntityKind::Phone,
        EntityKind::DateOfBirth,
    ]);
    let structured = Masker::new(
        Arc::new(Scanner::new(structured_only).unwrap()),
        MaskPolicy::default(),
    );
    let masker = Masker::new(Arc::clone(scanner), MaskPolicy::default());
    let rules_only = Masker::new(
        Arc::new(
            Scanner::new(ScannerConfig {
                context_model: false,
                ..ScannerConfig::default()
            })
            .unwrap(),
        ),
        MaskPolicy::default(),
    );
    let short: Vec<&str> = rows
        .iter()
        .map(|r| r.text.as_str())
        .filter(|t| (80..=120).contains(&t.len()))
        .take(400)
        .collect();
    let mut long: Vec<String> = Vec::new();
    let mut current = String::new();
    for row in rows {
        current.push_str(&row.text);
        current.push_str("\n\n");
        if current.len() >= 4096 {
            long.push(std::mem::take(&mut current));
            if long.len() == 100 {
                break;
            }
        }
    }
    println!("\n## Latency (scan + mask, pseudonymize, one session per text, this machine)\n");
    println!("| text | texts | mean bytes | p50 µs | p90 µs | p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    let short: Vec<String> = short.iter().map(|s| s.to_string()).collect();
    let runs = [
        ("short (80-120 B), all kinds", &masker, &short),
        ("long (~4 KB), all kinds", &masker, &long),
        (
            "long (~4 KB), all kinds, rules only (no context model)",
            &rules_only,
            &long,
        ),
        (
            "short (80-120 B), structured kinds only",
            &structured,
            &short,
        ),
        ("long (~4 KB), structured kinds only", &structured, &long),
    ];
    for (name, masker, texts) in runs {
        let mut times = Vec::new();
        for _round in 0..20 {
            for text in texts.iter() {
                let started = Instant::now();
                let masked = masker.session(b"salt").mask(text);
                std::hint::black_box(masked);
                times.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        times.sort_by(f64::total_cmp);
        let mean_bytes = texts.iter().map(String::len).sum::<usize>() / texts.len().max(1);
        println!(
            "| {name} | {} | {mean_bytes} | {:.1} | {:.1} | {:.1} |",
            texts.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99)
        );
    }
}

/// The data has no secrets, so recall of the secret rules is measured on generated keys
/// (a fixed-seed generator, formats as documented by each provider) and random tokens. This
/// shows what each rule catches; it says nothing about keys in formats not listed.
fn synthetic_secrets(scanner: &Scanner) {
    const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const DIGITS: &[u8] = b"0123456789";
    let mut state: u64 = 0x5eed;
    let mut random = |alphabet: &[u8], len: usize| -> String {
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                char::from(alphabet[((state >> 33) as usize) % alphabet.len()])
            })
            .collect()
    };
    // (format, prefix, alphabet, length), then a Slack-shaped one with two parts.
    let formats: [(&str, &str, &[u8], usize); 10] = [
        ("openai sk-proj-", "sk-proj-", BASE62, 48),
        ("anthropic sk-ant-api03-", "sk-ant-api03-", BASE62, 80),
        ("aws AKIA", "AKIA", UPPER_DIGITS, 16),
        ("github ghp_", "ghp_", BASE62, 36),
        ("google AIza", "AIza", BASE62, 35),
        ("stripe sk_live_", "sk_live_", BASE62, 24),
        ("random base62, 20 chars", "", BASE62, 20),
        ("random base62, 32 chars", "", BASE62, 32),
        ("random base62, 64 chars", "", BASE62, 64),
        ("random hex, 40 chars (off by default)", "", HEX, 40),
    ];
    let mut rows: Vec<(&str, Vec<String>)> = formats
        .iter()
        .map(|(name, prefix, alphabet, len)| {
            (
                *name,
                (0..200)
                    .map(|_| format!("{prefix}{}", random(alphabet, *len)))
                    .collect(),
            )
        })
        .collect();
    let slack = (0..200)
        .map(|_| format!("xoxb-{}-{}", random(DIGITS, 12), random(BASE62, 24)))
        .collect();
    rows.insert(6, ("slack xoxb-", slack));
    println!("\n## Secrets on generated keys\n");
    println!("Each key inside \"Here is my key: KEY, please keep it safe.\"; found = a SECRET finding covering the whole key.\n");
    println!("| format | keys | found |");
    println!("|---|---:|---:|");
    for (name, keys) in rows {
        let found = keys
            .iter()
            .filter(|key| {
                let text = format!("Here is my key: {key}, please keep it safe.");
                let start = "Here is my key: ".len();
                scanner.scan(&text).iter().any(|s| {
                    s.kind == EntityKind::Secret && s.start <= start && s.end >= start + key.len()
                })
            })
            .count();
        println!(
            "| {name} | {} | {:.1}% |",
            keys.len(),
            100.0 * ratio(found, keys.len())
        );
    }
}
