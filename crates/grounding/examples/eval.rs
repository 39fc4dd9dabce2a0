//! Train and evaluate the grounding scorer on `../shared/data/hallucination/`.
//!
//! ```text
//! cargo run --release -p switchyard-grounding --example eval                # train, write, evaluate
//! cargo run --release -p switchyard-grounding --example eval -- --minilm    # also the MiniLM head
//! ```
//!
//! Options: `--data FILE` (default: `hallucination/hallucination.dev.jsonl` of the shared
//! data folder, `SWITCHYARD_DATA_DIR` or `../shared/data`; `switchyard_testkit::data`),
//! `--artifact FILE` (default `eval/artifacts/grounding.v1.json`),
//! `--models DIR` (holding `minilm-static-256` and `all-MiniLM-L6-v2`), `--no-write`,
//! `--show NAME` (to stderr: the scores and features of evaluation answers framed by the
//! template NAME, or with `missed` the hallucinated HaluEval answers the shipped head passes).
//!
//! Protocol: rows are grouped by `meta.group` (one HaluEval question's right and hallucinated
//! answers, one FaithBench source passage's summaries), and per source the groups ordered by
//! `switchyard_textclass::id_hash` of the group; the first 70% are the tune split, the rest
//! the evaluation split. HaluEval's right answers are mostly short spans copied from the
//! context; each is also written as full sentences with templates: `TRAIN_FRAMINGS` on the
//! tune split only, `EVAL_FRAMINGS` (other wording) on the evaluation split only. Heads are
//! trained on tune sentences only (each sentence inherits its answer's label, then one
//! multiple-instance step keeps only the weakest sentence of a hallucinated answer), the
//! threshold is chosen on tune answers (best accuracy with at most `MAX_TUNE_FPR` of the
//! supported ones flagged), the artifact written, loaded back, and the evaluation split
//! scored through the loaded artifact. The question of each row is passed with the context
//! (its words count as support). The shipped artifact is trained on HaluEval QA only (MIT);
//! FaithBench (CC-BY-NC-SA) trains comparison heads that are reported, never shipped. Prints
//! the Markdown of `eval/hallucination.md`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

#[expect(dead_code, reason = "this example uses a subset of the shared helpers")]
#[path = "../../textclass/examples/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use common::{auc, f3, percentile, Counts};
use serde::Deserialize;
use switchyard_embed::{MiniLm, StaticEmbedder};
use switchyard_grounding::{
    Context, Grounding, GroundingArtifact, Head, SentenceFeatures, EMBEDDING_FEATURES,
    FEATURE_NAMES, FORMAT, FORMAT_VERSION, LENGTH_FEATURE, LEXICAL, MINILM, N_FEATURES, STATIC,
};
use switchyard_textclass::{id_hash, train_logistic, Features, TrainConfig, TrainingData};

#[derive(Debug, Clone, Deserialize)]
struct Row {
    source: String,
    context: Option<String>,
    #[serde(default)]
    question: String,
    answer: String,
    label: u8,
    meta: Meta,
}

#[derive(Debug, Clone, Deserialize)]
struct Meta {
    group: String,
}

const TUNE_SHARE: f64 = 0.7;
const SOURCES: [&str; 2] = ["halueval_qa", "faithbench"];
/// The threshold is the one with the best tune accuracy among those flagging at most this
/// share of tune answers that are supported (short spans and training framings together).
const MAX_TUNE_FPR: f64 = 0.10;

/// Ways of writing a short right answer `{x}` as a sentence, used on the tune split only.
/// `{X}`: the answer with a capital; `{q}`: the question; `{rest}`: the question without its
/// leading question word and question mark (restating the question around the answer).
const TRAIN_FRAMINGS: &[(&str, &str)] = &[
    ("the answer is", "The answer is {x}."),
    ("it is", "It is {x}."),
    ("correct answer", "{X} is the correct answer."),
    ("passage says", "From what the passage says, {x}."),
    ("question restated", "{Rest}: {x}."),
    ("I think", "I think it is {x}."),
    ("probably", "That would probably be {x}."),
    ("I believe", "{X}, I believe."),
];

/// Other wording, used on the evaluation split only: none of these sentences was seen in
/// training. "say", "reply" and "asks" are in no framing list of the scorer.
const EVAL_FRAMINGS: &[(&str, &str)] = &[
    ("answer to that", "{X} is the answer to that."),
    ("based on the context", "Based on the context, it was {x}."),
    ("I would say", "I would say {x}."),
    (
        "quoting the question",
        "{X}. That is what \"{q}\" asks about.",
    ),
    (
        "question restated, reply",
        "As for {rest}, the reply is {x}.",
    ),
];

/// One answer to score: a row's own answer, or a right answer framed by a template.
struct Case {
    row: usize,
    answer: String,
    /// The template's name; `None` for the row's own answer.
    framing: Option<&'static str>,
    tune: bool,
    label: bool,
    /// Per variant: the sentences' features (sentences with nothing to check dropped).
    feats: BTreeMap<&'static str, Vec<SentenceFeatures>>,
}

fn frame(template: &str, question: &str, answer: &str) -> String {
    let x = answer.trim().trim_end_matches('.');
    let q = question.trim();
    let body = q.trim_end_matches('?').trim();
    let rest = match body.split_once(' ') {
        Some((first, rest))
            if [
                "who", "what", "which", "where", "when", "how", "whose", "whom",
            ]
            .contains(&first.to_lowercase().as_str()) =>
        {
            rest
        }
        _ => body,
    };
    template
        .replace("{x}", x)
        .replace("{X}", &capital(x))
        .replace("{q}", q)
        .replace("{Rest}", &capital(rest))
        .replace("{rest}", rest)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let data = opt("--data").map_or_else(
        || switchyard_testkit::data::path("hallucination/hallucination.dev.jsonl"),
        PathBuf::from,
    );
    let data = switchyard_testkit::data::require_or_exit(data);
    let artifact_path = PathBuf::from(
        opt("--artifact").unwrap_or_else(|| "eval/artifacts/grounding.v1.json".into()),
    );
    let models = opt("--models").map(PathBuf::from).unwrap_or_else(|| {
        ["models", "models/models"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("minilm-static-256").exists())
            .unwrap_or_else(|| PathBuf::from("models"))
    });
    let with_minilm = args.iter().any(|a| a == "--minilm");
    let write = !args.iter().any(|a| a == "--no-write");

    let text = std::fs::read_to_string(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let general = rows
        .iter()
        .filter(|r| r.source == "halueval_general")
        .count();
    let general_ctx = rows
        .iter()
        .filter(|r| r.source == "halueval_general" && r.context.is_some())
        .count();

    // The split: per source, groups by mixed hash, first 70% tune.
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.context.is_some()) {
        groups
            .entry(r.source.as_str())
            .or_default()
            .push(r.meta.group.as_str());
    }
    let mut tune_groups = HashSet::new();
    for g in groups.values_mut() {
        g.sort_by_key(|g| (id_hash(g), g.to_string()));
        g.dedup();
        let cut = (g.len() as f64 * TUNE_SHARE).round() as usize;
        tune_groups.extend(g[..cut].iter().map(|s| s.to_string()));
    }

    // The answers: every row's own, and the framings of HaluEval's right answers.
    let mut cases = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r.context.is_none() {
            continue;
        }
        let tune = tune_groups.contains(&r.meta.group);
        let case = |answer: String, framing| Case {
            row: i,
            answer,
            framing,
            tune,
            label: r.label == 1,
            feats: BTreeMap::new(),
        };
        cases.push(case(r.answer.clone(), None));
        if r.source == "halueval_qa" && r.label == 0 {
            // Held-out rows get the training framings too, only to show the gap to unseen
            // wording; they never train anything.
            let framings = TRAIN_FRAMINGS
                .iter()
                .chain(if tune { &[][..] } else { EVAL_FRAMINGS });
            for (name, t) in framings {
                cases.push(case(frame(t, &r.question, &r.answer), Some(*name)));
            }
        }
    }

    let stat = StaticEmbedder::load(models.join("minilm-static-256")).expect("static model");
    let static_embed = |s: &str| stat.embed(s).unwrap_or_default();
    let minilm =
        with_minilm.then(|| MiniLm::load(models.join("all-MiniLM-L6-v2")).expect("MiniLM"));

    // Measure every answer; a row's context is prepared once for all its answers.
    let t0 = Instant::now();
    let mut by_row: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, c) in cases.iter().enumerate() {
        by_row.entry(c.row).or_default().push(k);
    }
    let mut row_ids: Vec<usize> = by_row.keys().copied().collect();
    row_ids.sort_unstable();
    for &i in &row_ids {
        let r = &rows[i];
        let ctx = r.context.as_deref().unwrap_or("");
        let cx = Context::new(ctx, Some(&static_embed)).with_question(&r.question);
        for &k in &by_row[&i] {
            let (lex, sta) = measure(&cx, &cases[k].answer, &static_embed);
            cases[k].feats.insert(LEXICAL, lex);
            cases[k].feats.insert(STATIC, sta);
        }
    }
    let measure_secs = t0.elapsed().as_secs_f64();

    // MiniLM: sentence vectors for every context and answer sentence, batched, cached by text.
    let mut minilm_ms_per_answer = None;
    if let Some(m) = &minilm {
        let t = Instant::now();
        let mut texts: Vec<String> = Vec::new();
        let mut seen_ctx = HashSet::new();
        for &i in &row_ids {
            let ctx = rows[i].context.as_deref().unwrap_or("");
            if seen_ctx.insert(ctx) {
                texts.extend(text_sentences(ctx).into_iter().map(str::to_owned));
            }
            for &k in &by_row[&i] {
                texts.extend(
                    text_sentences(&cases[k].answer)
                        .into_iter()
                        .map(str::to_owned),
                );
            }
        }
        texts.sort_unstable();
        texts.dedup();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = m.embed(&refs).expect("MiniLM embedding");
        let cache: HashMap<&str, &Vec<f32>> = refs.iter().copied().zip(vectors.iter()).collect();
        let embed = |s: &str| cache.get(s).map(|v| v.to_vec()).unwrap_or_default();
        for &i in &row_ids {
            let r = &rows[i];
            let ctx = r.context.as_deref().unwrap_or("");
            let cx = Context::new(ctx, Some(&embed)).with_question(&r.question);
            for &k in &by_row[&i] {
                let (_, mini) = measure(&cx, &cases[k].answer, &embed);
                cases[k].feats.insert(MINILM, mini);
            }
        }
        let _ = t;
        // The cost per answer as the gateway would pay it: the context and the answer
        // embedded on the call, sentence by sentence batched (FaithBench summaries).
        let fb: Vec<&Row> = rows
            .iter()
            .filter(|r| r.source == "faithbench")
            .take(20)
            .collect();
        let t = Instant::now();
        for r in &fb {
            let ctx = r.context.as_deref().unwrap_or("");
            let mut s = text_sentences(ctx);
            s.extend(text_sentences(&r.answer));
            let _ = m.embed(&s).expect("MiniLM embedding");
        }
        minilm_ms_per_answer = Some(t.elapsed().as_secs_f64() * 1e3 / fb.len() as f64);
    }

    let variants: Vec<&'static str> = if with_minilm {
        vec![LEXICAL, STATIC, MINILM]
    } else {
        vec![LEXICAL, STATIC]
    };
    let source_of = |c: &Case| rows[c.row].source.as_str();

    // Heads: shipped (HaluEval QA tune, with the training framings), and comparisons.
    let train_sets: [(&str, &[&str]); 3] = [
        ("halueval_qa", &["halueval_qa"]),
        ("halueval_qa+faithbench", &["halueval_qa", "faithbench"]),
        ("faithbench", &["faithbench"]),
    ];
    let mut heads: BTreeMap<(&str, &str), Head> = BTreeMap::new();
    for (set_name, sources) in train_sets {
        for &v in &variants {
            let tune: Vec<&Case> = cases
                .iter()
                .filter(|c| c.tune && sources.contains(&source_of(c)))
                .collect();
            heads.insert((set_name, v), train_head(&tune, v));
        }
    }

    let shipped_rows = cases
        .iter()
        .filter(|c| c.tune && source_of(c) == "halueval_qa")
        .count();
    let mut artifact = GroundingArtifact {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        training: TrainingData {
            description: "HaluEval QA (halueval_qa) rows of the tune split (70% of question \
                          groups by id_hash of meta.group) of hallucination.dev.jsonl, with \
                          each right answer also written as sentences by eight training \
                          templates; FaithBench not used"
                .to_owned(),
            rows: shipped_rows,
            licence: "MIT (HaluEval)".to_owned(),
        },
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        heads: BTreeMap::new(),
        notes: "Per-sentence logistic heads (P(unsupported)), trained by switchyard-textclass \
                train_logistic on sentences labelled by their answer, then one multiple-instance \
                step (a hallucinated answer's weakest sentence only); answer score = least \
                sentence support; threshold = best tune accuracy flagging at most 10% of \
                supported tune answers. The question's words count as support. lexical: no \
                embedding; static: minilm-static-256 cosines; minilm: all-MiniLM-L6-v2 cosines. \
                crates/grounding/examples/eval.rs, eval/hallucination.md."
            .to_owned(),
    };
    for &v in &variants {
        artifact
            .heads
            .insert(v.to_owned(), heads[&("halueval_qa", v)].clone());
    }
    if write {
        switchyard_textclass::save_json(&artifact, &artifact_path, FORMAT, FORMAT_VERSION).unwrap();
    }
    // Score through the artifact as loaded back.
    let loaded = if write {
        Grounding::load(&artifact_path).unwrap()
    } else {
        Grounding::from_artifact(&artifact).unwrap()
    };
    let shipped = |v: &'static str| -> (Grounding, f32) {
        if v == LEXICAL {
            let t = loaded.lexical_threshold();
            (loaded.clone(), t)
        } else {
            let g = loaded.clone().with_embedding_head(v).unwrap();
            let t = g.threshold();
            (g, t)
        }
    };

    // `--show NAME`: the scores and features of the answers framed by one template, or of
    // the hallucinated answers the shipped lexical head passes (`missed`).
    if let Some(name) = opt("--show") {
        let (g, t) = shipped(LEXICAL);
        let missed = name == "missed";
        for c in cases
            .iter()
            .filter(|c| !c.tune && source_of(c) == "halueval_qa")
            .filter(|c| {
                if missed {
                    c.label && answer_score(&c.feats[LEXICAL], |f| g.support(f, false)) >= t
                } else {
                    c.framing == Some(name.as_str())
                }
            })
            .take(25)
        {
            let s = answer_score(&c.feats[LEXICAL], |f| g.support(f, false));
            eprintln!("{s:.3} (t {t:.3}) {:?}", c.answer);
            for f in &c.feats[LEXICAL] {
                eprintln!(
                    "    {:?} {:?}",
                    f.values.map(|x| (x * 100.0).round() / 100.0),
                    f.unsupported_terms
                );
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Data: `{}` ({} rows; {} halueval_general rows, {} of them with a context: the general \
         set has no context to ground against, so it is not scored). Split: per source, \
         question/passage groups by `id_hash(meta.group)`, 70% tune / 30% evaluation. \
         Measuring all {} answers (lexical and static features) took {measure_secs:.1} s.\n",
        switchyard_testkit::data::shown(&data),
        rows.len(),
        general,
        general_ctx,
        cases.len(),
    );
    let _ = writeln!(
        out,
        "| source | split | answers | hallucinated | supported | sentences |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for src in SOURCES {
        for (name, tune) in [("tune", true), ("evaluation", false)] {
            let cs: Vec<&Case> = cases
                .iter()
                .filter(|c| source_of(c) == src && c.tune == tune && c.framing.is_none())
                .collect();
            let pos = cs.iter().filter(|c| c.label).count();
            let sents: usize = cs.iter().map(|c| c.feats[LEXICAL].len()).sum();
            let _ = writeln!(
                out,
                "| {src} | {name} | {} | {pos} | {} | {sents} |",
                cs.len(),
                cs.len() - pos
            );
        }
    }

    // The headline: HaluEval QA with right answers written as sentences.
    let _ = writeln!(
        out,
        "\n### HaluEval QA, evaluation split, right answers written as sentences (shipped head)\n"
    );
    let _ = writeln!(
        out,
        "Each row: every right answer of the evaluation split written with one template, \
         against every hallucinated answer of the split as it is. Positive = hallucinated; \
         \"supported flagged\" is the share of the framed right answers flagged.\n"
    );
    let _ = writeln!(
        out,
        "| templates | framing | head | threshold | right | hallucinated | accuracy | supported flagged | recall | ROC-AUC |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let eval_qa = |c: &&Case| source_of(c) == "halueval_qa" && !c.tune;
    for &v in &variants {
        let (g, threshold) = shipped(v);
        let score = |c: &Case| answer_score(&c.feats[v], |f| g.support(f, v != LEXICAL));
        let hall: Vec<&Case> = cases
            .iter()
            .filter(eval_qa)
            .filter(|c| c.label && c.framing.is_none())
            .collect();
        let kinds = std::iter::once(("original", "short span (as in the data)"))
            .chain(TRAIN_FRAMINGS.iter().map(|(n, _)| ("training (seen)", *n)))
            .chain(
                EVAL_FRAMINGS
                    .iter()
                    .map(|(n, _)| ("evaluation (unseen)", *n)),
            );
        for (set, name) in kinds {
            let right: Vec<&Case> = cases
                .iter()
                .filter(eval_qa)
                .filter(|c| !c.label)
                .filter(|c| match c.framing {
                    None => set == "original",
                    Some(f) => f == name && set != "original" && in_set(set, f),
                })
                .collect();
            if right.is_empty() {
                continue;
            }
            let all: Vec<&Case> = right.iter().chain(hall.iter()).copied().collect();
            let labels: Vec<bool> = all.iter().map(|c| c.label).collect();
            let scores: Vec<f32> = all.iter().map(|c| score(c)).collect();
            let pred: Vec<bool> = scores.iter().map(|s| *s < threshold).collect();
            let c = Counts::of(&pred, &labels);
            let h: Vec<f32> = scores.iter().map(|s| 1.0 - s).collect();
            let _ = writeln!(
                out,
                "| {set} | {name} | {v} | {threshold:.3} | {} | {} | {} | {} | {} | {} |",
                right.len(),
                hall.len(),
                f3(accuracy(&c)),
                f3(c.fpr()),
                f3(c.recall()),
                f3(auc(&h, &labels)),
            );
        }
    }

    // Every head on each source's evaluation split (the rows as they are).
    let _ = writeln!(
        out,
        "\n### Evaluation split, the rows as they are, positive = hallucinated (flagged when score < threshold)\n"
    );
    let _ = writeln!(
        out,
        "| source | trained on | head | threshold | precision | recall | F1 | ROC-AUC | accuracy | supported flagged |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for src in SOURCES {
        let held: Vec<&Case> = cases
            .iter()
            .filter(|c| source_of(c) == src && !c.tune && c.framing.is_none())
            .collect();
        let labels: Vec<bool> = held.iter().map(|c| c.label).collect();
        for (set_name, _) in train_sets {
            for &v in &variants {
                let (scores, threshold) = if set_name == "halueval_qa" {
                    let (g, t) = shipped(v);
                    let s: Vec<f32> = held
                        .iter()
                        .map(|c| answer_score(&c.feats[v], |f| g.support(f, v != LEXICAL)))
                        .collect();
                    (s, t)
                } else {
                    let head = &heads[&(set_name, v)];
                    let s: Vec<f32> = held
                        .iter()
                        .map(|c| answer_score(&c.feats[v], |f| head_support(head, f)))
                        .collect();
                    (s, head.threshold)
                };
                let pred: Vec<bool> = scores.iter().map(|s| *s < threshold).collect();
                let c = Counts::of(&pred, &labels);
                let h: Vec<f32> = scores.iter().map(|s| 1.0 - s).collect();
                let shipped = if set_name == "halueval_qa" {
                    " (shipped)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "| {src} | {set_name}{shipped} | {v} | {threshold:.3} | {} | {} | {} | {} | {} | {} |",
                    f3(c.precision()),
                    f3(c.recall()),
                    f3(c.f1()),
                    f3(auc(&h, &labels)),
                    f3(accuracy(&c)),
                    f3(c.fpr()),
                );
            }
        }
    }

    // Baselines that expose the data's artefacts.
    let _ = writeln!(
        out,
        "\n### Single-signal baselines (evaluation split, ROC-AUC, positive = hallucinated)\n"
    );
    let _ = writeln!(out, "| source | answers | answer words | 1 − content recall (worst sentence) | any unsupported number or name | 1 − static cosine (worst sentence) |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let baseline_sets: [(&str, &CaseFilter); 3] = [
        ("halueval_qa", &|c: &Case| {
            source_of(c) == "halueval_qa" && c.framing.is_none()
        }),
        (
            "halueval_qa, right answers framed (unseen templates)",
            &|c: &Case| {
                source_of(c) == "halueval_qa" && (c.label || c.framing.is_some_and(is_eval_framing))
            },
        ),
        ("faithbench", &|c: &Case| source_of(c) == "faithbench"),
    ];
    for (name, keep) in baseline_sets {
        let held: Vec<&Case> = cases.iter().filter(|c| !c.tune && keep(c)).collect();
        let labels: Vec<bool> = held.iter().map(|c| c.label).collect();
        let words: Vec<f32> = held
            .iter()
            .map(|c| c.answer.split_whitespace().count() as f32)
            .collect();
        let worst = |k: usize, c: &Case, flip: bool| {
            c.feats[STATIC]
                .iter()
                .map(|f| if flip { 1.0 - f.values[k] } else { f.values[k] })
                .fold(0.0f32, f32::max)
        };
        let recall: Vec<f32> = held.iter().map(|c| worst(0, c, true)).collect();
        let terms: Vec<f32> = held
            .iter()
            .map(|c| worst(8, c, false).max(worst(10, c, false)))
            .collect();
        let cos: Vec<f32> = held.iter().map(|c| worst(15, c, true)).collect();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            held.len(),
            f3(auc(&words, &labels)),
            f3(auc(&recall, &labels)),
            f3(auc(&terms, &labels)),
            f3(auc(&cos, &labels))
        );
    }

    // Weights of the shipped heads.
    let _ = writeln!(
        out,
        "\n### Shipped weights (per sentence, logit of P(unsupported))\n"
    );
    let _ = write!(out, "| feature |");
    for &v in &variants {
        let _ = write!(out, " {v} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---|".repeat(variants.len()));
    for (k, name) in FEATURE_NAMES.iter().enumerate() {
        let _ = write!(out, "| {name} |");
        for &v in &variants {
            let _ = write!(out, " {:.3} |", heads[&("halueval_qa", v)].weights[k]);
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "| bias |");
    for &v in &variants {
        let _ = write!(out, " {:.3} |", heads[&("halueval_qa", v)].bias);
    }
    let _ = writeln!(out);
    let _ = write!(out, "| threshold |");
    for &v in &variants {
        let _ = write!(out, " {:.3} |", heads[&("halueval_qa", v)].threshold);
    }
    let _ = writeln!(out);

    // Latency: a ~300-word answer against a ~2,000-word context, built from FaithBench rows.
    let fb: Vec<&Row> = rows.iter().filter(|r| r.source == "faithbench").collect();
    let mut lat_cases = Vec::new();
    for k in 0..50 {
        let mut ctx = String::new();
        let mut j = k * 7;
        while ctx.split_whitespace().count() < 2000 {
            ctx.push_str(fb[j % fb.len()].context.as_deref().unwrap_or(""));
            ctx.push_str("\n\n");
            j += 1;
        }
        let mut ans = String::new();
        let mut j = k * 5 + 3;
        while ans.split_whitespace().count() < 300 {
            ans.push_str(&fb[j % fb.len()].answer);
            ans.push(' ');
            j += 1;
        }
        lat_cases.push((cut_words(&ctx, 2000), cut_words(&ans, 300)));
    }
    let lat = |f: &dyn Fn(&str, &str)| {
        let mut us = Vec::new();
        for (c, a) in &lat_cases {
            for _ in 0..5 {
                let t = Instant::now();
                f(c, a);
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        us.sort_by(f64::total_cmp);
        (percentile(&us, 0.5), percentile(&us, 0.99))
    };
    let lexical_lat = lat(&|c, a| {
        std::hint::black_box(loaded.check_lexical(c, "", a));
    });
    let static_lat = lat(&|c, a| {
        std::hint::black_box(loaded.check(c, "", a, &static_embed));
    });
    let cx0 = Context::new(&lat_cases[0].0, Some(&static_embed));
    let prepared_lat = lat(&|_c, a| {
        std::hint::black_box(loaded.check_prepared(&cx0, a, Some(&static_embed)));
    });
    let _ = writeln!(
        out,
        "\n### Latency (this machine, release, one thread; {} cases × 5 runs; 300-word answer, 2,000-word context)\n",
        lat_cases.len()
    );
    let _ = writeln!(out, "| call | p50 µs | p99 µs |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| `check_lexical` (no embedding) | {:.0} | {:.0} |",
        lexical_lat.0, lexical_lat.1
    );
    let _ = writeln!(
        out,
        "| `check` with the static model (embedding included) | {:.0} | {:.0} |",
        static_lat.0, static_lat.1
    );
    let _ = writeln!(
        out,
        "| `check_prepared` (context prepared once, static) | {:.0} | {:.0} |",
        prepared_lat.0, prepared_lat.1
    );
    if let Some(m) = &minilm {
        let (c, a) = &lat_cases[0];
        let n = switchyard_grounding::sentences(c).len() + switchyard_grounding::sentences(a).len();
        let t = Instant::now();
        let _ = loaded
            .clone()
            .with_embedding_head(MINILM)
            .unwrap()
            .check(c, "", a, &|s: &str| m.embed_one(s).unwrap_or_default());
        let _ = writeln!(
            out,
            "| `check` with MiniLM (one case, {n} sentences embedded one by one) | {:.0} | – |",
            t.elapsed().as_secs_f64() * 1e6
        );
    }
    if let Some(ms) = minilm_ms_per_answer {
        let _ = writeln!(
            out,
            "\nMiniLM sentence alignment: {ms:.0} ms per FaithBench answer (its context's and its \
             own sentences embedded in one batched call; 20 answers)."
        );
    }
    println!("{out}");
    if write {
        eprintln!("wrote {}", artifact_path.display());
    }
}

/// Which answers a table row covers.
type CaseFilter<'a> = dyn Fn(&Case) -> bool + 'a;

fn in_set(set: &str, framing: &str) -> bool {
    if set.starts_with("training") {
        TRAIN_FRAMINGS.iter().any(|(n, _)| *n == framing)
    } else {
        is_eval_framing(framing)
    }
}

fn is_eval_framing(framing: &str) -> bool {
    EVAL_FRAMINGS.iter().any(|(n, _)| *n == framing)
}

/// The prose sentences of a text.
fn text_sentences(text: &str) -> Vec<&str> {
    switchyard_grounding::sentences(text)
        .into_iter()
        .filter(|s| s.kind == switchyard_grounding::Kind::Text)
        .map(|s| &text[s.range])
        .collect()
}

/// An answer's sentences measured against a prepared context: without and with the
/// embedding features (sentences with nothing to check dropped).
fn measure(
    cx: &Context,
    answer: &str,
    embed: &dyn Fn(&str) -> Vec<f32>,
) -> (Vec<SentenceFeatures>, Vec<SentenceFeatures>) {
    let mut lex = Vec::new();
    let mut emb = Vec::new();
    for sent in text_sentences(answer) {
        let e = embed(sent);
        let f = cx.features(sent, Some(&e));
        if f.content_words == 0 {
            continue;
        }
        let mut l = f.clone();
        for k in EMBEDDING_FEATURES {
            l.values[k] = 0.0;
        }
        lex.push(l);
        emb.push(f);
    }
    (lex, emb)
}

fn cut_words(s: &str, n: usize) -> String {
    s.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn accuracy(c: &Counts) -> f64 {
    (c.tp + c.tn) as f64 / (c.tp + c.tn + c.fp + c.fn_).max(1) as f64
}

fn head_support(h: &Head, f: &SentenceFeatures) -> f32 {
    let z: f32 = h
        .weights
        .iter()
        .zip(&f.values)
        .map(|(w, x)| w * x)
        .sum::<f32>()
        + h.bias;
    1.0 - switchyard_textclass::sigmoid(z)
}

/// The least support over an answer's sentences (1 with none), as `check` computes it.
fn answer_score(feats: &[SentenceFeatures], support: impl Fn(&SentenceFeatures) -> f32) -> f32 {
    feats.iter().map(support).fold(1.0f32, f32::min)
}

/// The training vector. The length feature is left out (weight 0): on HaluEval it learns
/// the data's length artefact (right answers are short spans) and flags every long, faithful
/// sentence elsewhere.
fn dense(f: &SentenceFeatures) -> Features {
    let mut values = f.values.to_vec();
    values[LENGTH_FEATURE] = 0.0;
    Features {
        indices: (0..N_FEATURES as u32).collect(),
        values,
    }
}

/// Train one head on tune answers: every sentence with its answer's label, then one
/// multiple-instance step; the threshold with the best tune accuracy among those flagging at
/// most `MAX_TUNE_FPR` of the supported tune answers.
fn train_head(tune: &[&Case], variant: &str) -> Head {
    let cfg = TrainConfig {
        epochs: 40,
        learning_rate: 0.1,
        l2: 1e-4,
        seed: 0x6772_6f75,
    };
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for c in tune {
        for f in &c.feats[variant] {
            xs.push(dense(f));
            ys.push(if c.label { 1.0 } else { 0.0 });
        }
    }
    let first = train_logistic(&xs, &ys, N_FEATURES, &cfg);
    let mut xs2 = Vec::new();
    let mut ys2 = Vec::new();
    for c in tune {
        let fs = &c.feats[variant];
        if c.label {
            if let Some(worst) = fs.iter().max_by(|a, b| {
                first
                    .predict(&dense(a))
                    .total_cmp(&first.predict(&dense(b)))
            }) {
                xs2.push(dense(worst));
                ys2.push(1.0);
            }
        } else {
            for f in fs {
                xs2.push(dense(f));
                ys2.push(0.0);
            }
        }
    }
    let model = train_logistic(&xs2, &ys2, N_FEATURES, &cfg);
    let mut head = Head {
        weights: model.weights.clone(),
        bias: model.bias,
        threshold: 0.5,
    };
    let scores: Vec<f32> = tune
        .iter()
        .map(|c| answer_score(&c.feats[variant], |f| head_support(&head, f)))
        .collect();
    let labels: Vec<bool> = tune.iter().map(|c| c.label).collect();
    head.threshold = constrained_threshold(&scores, &labels, MAX_TUNE_FPR);
    head
}

/// The support threshold (an answer is supported when its score reaches it) with the best
/// accuracy among those that flag at most `max_fpr` of the supported answers.
fn constrained_threshold(scores: &[f32], labels: &[bool], max_fpr: f64) -> f32 {
    let mut cuts: Vec<f32> = scores.to_vec();
    cuts.push(0.0);
    cuts.sort_by(f32::total_cmp);
    cuts.dedup();
    let neg = labels.iter().filter(|l| !**l).count().max(1) as f64;
    let mut best = (0.0f32, -1.0f64);
    for &t in &cuts {
        // Supported when score >= t: flagged when below.
        let (mut right, mut fp) = (0usize, 0usize);
        for (s, l) in scores.iter().zip(labels) {
            let flagged = *s < t;
            if flagged == *l {
                right += 1;
            }
            if flagged && !*l {
                fp += 1;
            }
        }
        let acc = right as f64 / scores.len().max(1) as f64;
        if fp as f64 / neg <= max_fpr && acc > best.1 {
            best = (t, acc);
        }
    }
    best.0
}
