//! `--train`: fits the context model (`eval/artifacts/pii-context.v1.json`).
//!
//! 1. Candidates come from the scanner without a model (the rules plus every capitalised run,
//!    every number and name before a number, and every line of a multi-line address).
//! 2. Positives: candidates on the tune half of `pii.dev.jsonl` that match a gold span of
//!    their kind (overlap, IoU >= 0.5). Negatives: the other candidates there, and every
//!    candidate on the TRAIN part (split by SHA-256 of `id`) of the permissively licensed
//!    benign sets and of HaluEval's texts (`PERMISSIVE_SOURCES`, `halueval_texts`).
//! 3. Five folds (by row) give out-of-fold probabilities; the per-kind thresholds are chosen
//!    on them: the highest overall F2 on the tune half (all targeted kinds, micro, after
//!    overlap resolution as the scanner does it with a model: by confidence alone) with at
//!    most `BENIGN_BUDGET` of the TRAIN rows of each benign set (topic, prompt injection)
//!    getting anything masked.
//! 4. The final model is fitted on all of it. The held-out half and the benign EVAL part are
//!    never read here.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use switchyard_pii::{
    resolve_overlaps_by_confidence, sigmoid, ContextModel, EntityKind, Scanner, ScannerConfig,
    Span, FEATURE_BITS,
};

use crate::{benign_rows, iou, is_benign_train, is_tune, map_label, Counts, PiiRow};

/// Share of each benign set's TRAIN rows allowed to get anything masked, below the issue's
/// 2% so the unseen part has room.
const BENIGN_BUDGET: f64 = 0.012;
/// And of each benign set's TRAIN rows alone (the prompt-injection set's benign rows, full of
/// role-play characters and public figures, are the harder one).
const SET_BUDGET: f64 = 0.018;
const FOLDS: usize = 5;
/// AdaGrad settings, chosen by out-of-fold F2 among a handful (rates 0.02-0.2, 6-40 epochs,
/// L2 1e-6-1e-4: all within 0.80-0.82).
const EPOCHS: usize = 25;
const RATE: f32 = 0.05;
const L2: f32 = 1e-5;
/// The benign sources that may train the shipped model (their licences: CLINC150 CC-BY-3.0;
/// deepset and jackhhao Apache-2.0; NotInject, PINT and WildGuard-benign MIT).
const PERMISSIVE_SOURCES: [&str; 8] = [
    "clinc150",
    "deepset_test",
    "jackhhao_jailbreak_test",
    "notinject_one",
    "notinject_two",
    "notinject_three",
    "pint_sample",
    "wildguard_benign",
];
const HALUEVAL_SET: &str = "hallucination (HaluEval, MIT)";
/// Share of HaluEval's TRAIN texts (paragraphs full of public names) allowed to get anything
/// masked: looser than the sets, whose 2% it would hold F2 to 0.67 under.
const HALUEVAL_BUDGET: f64 = 0.05;
/// The set index of HaluEval's negatives, held to `HALUEVAL_BUDGET`.
const NO_BUDGET: usize = usize::MAX;

/// HaluEval's texts (`halueval_qa` knowledge and answers, `halueval_general` questions and
/// answers) from `hallucination.dev.jsonl`, one row per text; FaithBench (CC-BY-NC-SA) is left
/// out.
fn halueval_texts(data: &std::path::Path) -> Vec<crate::TextRow> {
    let path = data.join("hallucination/hallucination.dev.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("{} not found: HaluEval negatives skipped", path.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let source = row["source"].as_str().unwrap_or_default();
        if !source.starts_with("halueval") {
            continue;
        }
        let id = row["id"].as_str().unwrap_or_default();
        for field in ["context", "question", "answer"] {
            if let Some(t) = row[field].as_str().filter(|t| t.len() > 20) {
                out.push(crate::TextRow {
                    id: format!("{id}/{field}"),
                    source: source.to_string(),
                    text: t.to_string(),
                    label: serde_json::json!(0),
                });
            }
        }
    }
    out
}

const NAME_KINDS: [EntityKind; 3] = [
    EntityKind::Person,
    EntityKind::StreetAddress,
    EntityKind::Location,
];

/// A span's (start, end) in bytes.
type Range = (usize, usize);

struct Row {
    fold: usize,
    /// Which benign set (index) a benign row is from.
    set: usize,
    /// None for benign rows.
    gold: Option<Vec<(EntityKind, usize, usize)>>,
    /// Findings of the structured kinds (not scored), as the scanner keeps them.
    fixed: Vec<Span>,
    /// Name, address and place candidates: (span with the rule's confidence, features, label).
    scored: Vec<(Span, Vec<u32>, bool)>,
}

pub fn train(data: &std::path::Path, rows: &[PiiRow], out: &std::path::Path) {
    let config = ScannerConfig {
        context_model: false,
        ..ScannerConfig::default()
    };
    let scanner = Scanner::new(config.clone()).unwrap();
    let fold_of = |id: &str| Sha256::digest(id.as_bytes())[2] as usize % FOLDS;
    let mut data_rows = Vec::new();
    for row in rows.iter().filter(|r| is_tune(&r.id)) {
        let gold: Vec<(EntityKind, usize, usize)> = row
            .spans
            .iter()
            .filter_map(|s| {
                map_label(&s.label).map(|k| {
                    (
                        k,
                        crate::char_to_byte(&row.text, s.start),
                        crate::char_to_byte(&row.text, s.end),
                    )
                })
            })
            .collect();
        data_rows.push(make_row(
            &scanner,
            &config,
            &row.text,
            fold_of(&row.id),
            Some(gold),
        ));
    }
    // Only permissively licensed text trains a model that ships in the binary; AG News
    // (non-commercial) and safe-guard (licence unstated) are scored, never trained on.
    // HaluEval's knowledge paragraphs and answers (MIT) stand in for news: text full of
    // public names and places that is nobody's personal data.
    let mut benign: Vec<(String, crate::TextRow)> = benign_rows(data)
        .into_iter()
        .filter(|(_, row)| PERMISSIVE_SOURCES.contains(&row.source.as_str()))
        .collect();
    benign.extend(
        halueval_texts(data)
            .into_iter()
            .map(|row| (HALUEVAL_SET.to_string(), row)),
    );
    let mut benign_train = 0;
    let mut sets: Vec<&str> = benign.iter().map(|(set, _)| set.as_str()).collect();
    sets.dedup();
    for (set, row) in benign.iter().filter(|(_, r)| is_benign_train(&r.id)) {
        benign_train += 1;
        let mut made = make_row(&scanner, &config, &row.text, fold_of(&row.id), None);
        // HaluEval's paragraphs are held to their own budget (`HALUEVAL_BUDGET`).
        made.set = if *set == HALUEVAL_SET {
            NO_BUDGET
        } else {
            sets.iter().position(|s| s == set).unwrap_or(0)
        };
        data_rows.push(made);
    }
    let positives: usize = data_rows
        .iter()
        .flat_map(|r| &r.scored)
        .filter(|c| c.2)
        .count();
    let candidates: usize = data_rows.iter().map(|r| r.scored.len()).sum();
    eprintln!(
        "training: {} tune rows, {benign_train} benign train rows, {candidates} candidates, {positives} positive",
        data_rows.len() - benign_train
    );

    // What the candidates allow at best: gold spans of each kind with a candidate matching.
    let mut ceiling: BTreeMap<EntityKind, (usize, usize)> = BTreeMap::new();
    for row in &data_rows {
        for (k, s, e) in row.gold.iter().flatten() {
            let entry = ceiling.entry(*k).or_default();
            entry.0 += 1;
            let found = row
                .scored
                .iter()
                .map(|c| &c.0)
                .chain(&row.fixed)
                .any(|c| c.kind == *k && iou((*s, *e), (c.start, c.end)) >= 0.5);
            if found {
                entry.1 += 1;
            }
        }
    }
    for (kind, (gold, found)) in &ceiling {
        eprintln!("candidate ceiling {kind}: {found}/{gold}");
    }
    // Out-of-fold probabilities.
    let mut oof: Vec<Vec<f32>> = data_rows
        .iter()
        .map(|r| vec![0.0; r.scored.len()])
        .collect();
    for fold in 0..FOLDS {
        let weights = fit(data_rows.iter().filter(|r| r.fold != fold));
        for (row, probs) in data_rows.iter().zip(oof.iter_mut()) {
            if row.fold == fold {
                for ((_, features, _), p) in row.scored.iter().zip(probs.iter_mut()) {
                    *p = sigmoid(dot(&weights, features));
                }
            }
        }
    }
    // Thresholds: coordinate search on the out-of-fold probabilities.
    let grid: Vec<f32> = (1..40).map(|i| i as f32 * 0.025).collect();
    let mut thresholds = [0.5f32; 3];
    let mut best = operating_point(&data_rows, &oof, &thresholds);
    for _round in 0..3 {
        for k in 0..3 {
            for &t in &grid {
                let mut trial = thresholds;
                trial[k] = t;
                let point = operating_point(&data_rows, &oof, &trial);
                if better(&point, &best) {
                    best = point;
                    thresholds = trial;
                }
            }
        }
    }
    eprintln!(
        "out-of-fold: overall F2 {:.3} (P {:.3} R {:.3}), benign train rows masked {:.2}% (worst set {:.2}%), thresholds P {} A {} L {}",
        best.0.f_beta(2.0),
        best.0.precision(),
        best.0.recall(),
        100.0 * best.1,
        100.0 * best.2,
        thresholds[0],
        thresholds[1],
        thresholds[2]
    );
    let weights = fit(data_rows.iter());
    let model = ContextModel {
        trained_on: format!(
            "switchyard eval: pii.dev.jsonl tune half (SHA-256(id)[0] even, {} rows) for positives and negatives, and the TRAIN part (SHA-256(id)[1] even) of the permissively licensed benign rows (CLINC150 in topic.dev.jsonl; deepset, jackhhao, NotInject, PINT and WildGuard-benign in prompt_injection.dev.jsonl) and of HaluEval's texts in hallucination.dev.jsonl ({benign_train} rows) for negatives (AG News and safe-guard only scored); {FOLDS}-fold out-of-fold F2 {:.3}, {:.2}% of benign train rows masked (at most {:.2}% of a set's) at these thresholds",
            data_rows.len() - benign_train,
            best.0.f_beta(2.0),
            100.0 * best.1,
            100.0 * best.2
        ),
        feature_bits: FEATURE_BITS,
        weights: weights.iter().map(|w| (w * 1e4).round() / 1e4).collect(),
        thresholds: NAME_KINDS.into_iter().zip(thresholds).collect(),
    };
    std::fs::write(out, serde_json::to_string(&model).unwrap()).unwrap();
    eprintln!("wrote {}", out.display());
}

fn make_row(
    scanner: &Scanner,
    config: &ScannerConfig,
    text: &str,
    fold: usize,
    gold: Option<Vec<(EntityKind, usize, usize)>>,
) -> Row {
    let mut fixed = Vec::new();
    let mut scored = Vec::new();
    for candidate in scanner.candidates(text) {
        if NAME_KINDS.contains(&candidate.span.kind) {
            let label = gold.as_ref().is_some_and(|gold| {
                gold.iter().any(|(k, s, e)| {
                    *k == candidate.span.kind
                        && iou((*s, *e), (candidate.span.start, candidate.span.end)) >= 0.5
                })
            });
            scored.push((candidate.span, candidate.features, label));
        } else if candidate.span.confidence >= config.threshold(candidate.span.kind)
            && !candidate.span.is_empty()
        {
            fixed.push(candidate.span);
        }
    }
    Row {
        fold,
        set: 0,
        gold,
        fixed,
        scored,
    }
}

fn dot(weights: &[f32], features: &[u32]) -> f32 {
    features.iter().map(|f| weights[*f as usize]).sum()
}

/// Logistic regression by AdaGrad over binary hashed features, a fixed seed for the order.
fn fit<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<f32> {
    let examples: Vec<(&[u32], bool)> = rows
        .flat_map(|r| r.scored.iter().map(|(_, f, y)| (f.as_slice(), *y)))
        .collect();
    let dim = 1usize << FEATURE_BITS;
    let mut weights = vec![0.0f32; dim];
    let mut squares = vec![1e-6f32; dim];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut state: u64 = 0x5eed;
    for _epoch in 0..EPOCHS {
        for i in (1..order.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        for &index in &order {
            let (features, label) = examples[index];
            let p = sigmoid(dot(&weights, features));
            let gradient = p - f32::from(u8::from(label));
            for f in features {
                let f = *f as usize;
                let g = gradient + L2 * weights[f];
                squares[f] += g * g;
                weights[f] -= RATE * g / squares[f].sqrt();
            }
        }
    }
    weights
}

/// (overall counts on the tune rows, share of benign rows with any finding, the highest such
/// share among the benign sets) when the scored candidates at or above their kind's threshold join the
/// structured findings and overlaps are resolved as the scanner does.
fn operating_point(rows: &[Row], oof: &[Vec<f32>], thresholds: &[f32; 3]) -> (Counts, f64, f64) {
    let mut counts = Counts::default();
    // (rows, rows with any finding) per benign set.
    let mut benign: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut halueval = (0usize, 0usize);
    for (row, probs) in rows.iter().zip(oof) {
        let mut spans = row.fixed.clone();
        for ((span, _, _), p) in row.scored.iter().zip(probs) {
            let k = NAME_KINDS.iter().position(|k| *k == span.kind).unwrap_or(0);
            if *p >= thresholds[k] {
                let mut span = span.clone();
                span.confidence = shifted(*p, thresholds[k]);
                spans.push(span);
            }
        }
        let found = resolve_overlaps_by_confidence(spans);
        match &row.gold {
            None if row.set == NO_BUDGET => {
                halueval.0 += 1;
                halueval.1 += usize::from(!found.is_empty());
            }
            None => {
                let entry = benign.entry(row.set).or_default();
                entry.0 += 1;
                entry.1 += usize::from(!found.is_empty());
            }
            Some(gold) => {
                let mut by_kind: BTreeMap<EntityKind, (Vec<Range>, Vec<Range>)> = BTreeMap::new();
                for (k, s, e) in gold {
                    by_kind.entry(*k).or_default().0.push((*s, *e));
                }
                for span in &found {
                    if span.kind != EntityKind::DateOfBirth && span.kind != EntityKind::Secret {
                        by_kind
                            .entry(span.kind)
                            .or_default()
                            .1
                            .push((span.start, span.end));
                    }
                }
                for (gold, predicted) in by_kind.values() {
                    counts.add(crate::match_spans(gold, predicted, false).0);
                }
            }
        }
    }
    let worst = benign
        .values()
        .map(|(rows, flagged)| crate::ratio(*flagged, *rows))
        .fold(0.0, f64::max)
        // HaluEval counts against the worst set at its own, looser budget.
        .max(crate::ratio(halueval.1, halueval.0) * SET_BUDGET / HALUEVAL_BUDGET);
    let (rows, flagged) = benign
        .values()
        .fold((0, 0), |(r, f), (rows, flagged)| (r + rows, f + flagged));
    (counts, crate::ratio(flagged, rows), worst)
}

fn shifted(p: f32, threshold: f32) -> f32 {
    let logit = |x: f32| (x / (1.0 - x)).ln();
    sigmoid(logit(p.clamp(1e-6, 1.0 - 1e-6)) - logit(threshold))
}

/// Within the benign budgets, higher F2 wins; outside them, fewer benign rows masked.
fn better(a: &(Counts, f64, f64), b: &(Counts, f64, f64)) -> bool {
    let within = |p: &(Counts, f64, f64)| p.1 <= BENIGN_BUDGET && p.2 <= SET_BUDGET;
    match (within(a), within(b)) {
        (true, true) => a.0.f_beta(2.0) > b.0.f_beta(2.0),
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.1 < b.1,
    }
}
