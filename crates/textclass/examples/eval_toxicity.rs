//! Train and evaluate the toxicity detector on the development split of
//! `../shared/data/toxicity/`.
//!
//! ```text
//! cargo run --release -p switchyard-textclass --example eval_toxicity            # evaluate the shipped artifact
//! cargo run --release -p switchyard-textclass --example eval_toxicity -- --train # retrain, write it, evaluate
//! ```
//!
//! Options: `--data FILE`, `--artifact FILE` (default `eval/artifacts/toxicity.v1.json`).
//! Prints the Markdown tables of `eval/toxicity.md`. The protocol is the injection
//! example's: 70/30 split per source and label by the mixed hash of `id`; L2, the Surge weight
//! and the thresholds chosen on 5-fold out-of-fold scores inside the 70%; the artifact scored
//! as saved and loaded back. Benign assistant text from other sets (see `assistant_texts`)
//! is split the same way: the permissively licensed sets' 70% trains as benign and bounds the
//! classifier's and the combined threshold (the lowest that flags at most
//! `ASSISTANT_FPR_CAP` of it out of fold), every set's 30% is scored apart.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::{
    auc, best_f1_threshold, f3, four_kb, latency, lowest_threshold_within, out_of_fold,
    out_of_fold_weighted, ratio, read_jsonl, repeated, split, Counts,
};
use serde::Deserialize;
use switchyard_textclass::toxicity::{
    Lexicon, ToxicityDetector, COMBINED_THRESHOLD, LEXICON_THRESHOLD,
};
use switchyard_textclass::{
    train_logistic, BinaryArtifact, Features, NgramConfig, NgramFeaturizer, TrainConfig,
    TrainingData,
};

#[derive(Debug, Clone, Deserialize)]
struct Row {
    id: String,
    source: String,
    text: String,
    label: u8,
    #[serde(default)]
    fine_label: Option<String>,
}

impl Row {
    fn toxic(&self) -> bool {
        self.label == 1
    }
}

const L2_GRID: [f32; 3] = [1e-5, 1e-4, 1e-3];
/// Copies of each Surge train row searched (a source weight): Surge has a tenth of
/// Davidson's rows, and its toxicity rarely uses the words Davidson's labels follow.
const SURGE_COPIES: [usize; 3] = [1, 3, 5];
/// The most benign assistant text the shipped threshold may flag (out-of-fold, train part):
/// the goal's 1%, less a quarter for the difference between out-of-fold and held-out rows.
const ASSISTANT_FPR_CAP: f64 = 0.0075;
/// Benign assistant-text sets whose 70% trains (permissive licences); the rest are only scored.
const TRAINS: [&str; 2] = ["assistant_halueval", "assistant_clinc150"];

/// Benign assistant-style text that is in no toxicity training file (label 0, fine label
/// `assistant`): HaluEval general answers (MIT; ChatGPT answers to user requests), CLINC150
/// requests (CC-BY-3.0) and AG News paragraphs (non-commercial: scored, never trained)
/// turned into lower-case assistant sentences by a few fixed templates, and HaluEval QA's
/// short answers with a PII placeholder in them (`<PERSON_1>`, `[EMAIL]`, ...), the shape
/// an answer has after the PII guard pseudonymised the conversation.
fn assistant_texts(root: &std::path::Path) -> Vec<Row> {
    let read = |rel: &str| read_jsonl(&root.join(rel));
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().trim().to_owned();
    let row = |id: String, source: &str, text: String| Row {
        id,
        source: source.to_owned(),
        text,
        label: 0,
        fine_label: Some("assistant".to_owned()),
    };
    // Which template a row gets is a hash of its id: fixed, and spread evenly.
    let pick = |id: &str, n: usize| (switchyard_textclass::id_hash(id) % n as u64) as usize;
    const TOPIC: [&str; 5] = [
        "{}",
        "sure, here is what i found: {}",
        "i understand. {}",
        "happy to help with that. {}",
        "here's a short answer: {}",
    ];
    const PLACEHOLDER: [&str; 5] = [
        "{} according to <PERSON_1>.",
        "<PERSON_1> asked about this: {}",
        "the answer is {}. i have sent it to [EMAIL].",
        "{}, as <PERSON_2> wrote from <LOCATION_1>.",
        "call <PHONE_1> for more. {}",
    ];
    let fill = |t: &str, x: &str| t.replacen("{}", x, 1);
    let mut out = Vec::new();
    for v in read("hallucination/hallucination.dev.jsonl") {
        let id = s(&v, "id");
        match v["source"].as_str() {
            Some("halueval_general") if !s(&v, "answer").is_empty() => {
                out.push(row(id, "assistant_halueval", s(&v, "answer")));
            }
            Some("halueval_qa") if !s(&v, "answer").is_empty() => {
                let t = PLACEHOLDER[pick(&id, PLACEHOLDER.len())];
                out.push(row(id, "assistant_placeholder", fill(t, &s(&v, "answer"))));
            }
            _ => {}
        }
    }
    for v in read("topic/topic.dev.jsonl") {
        let id = s(&v, "id");
        let source = match v["source"].as_str() {
            Some("clinc150") => "assistant_clinc150",
            Some("ag_news") => "assistant_agnews",
            _ => continue,
        };
        let t = TOPIC[pick(&id, TOPIC.len())];
        out.push(row(id, source, fill(t, &s(&v, "text").to_lowercase())));
    }
    out.retain(|r| !r.text.is_empty());
    out
}

/// Share of each held-out benign assistant set flagged.
fn assistant_table(d: &ToxicityDetector, rows: &[Row], md: &mut String) {
    let _ = writeln!(
        md,
        "\n### Benign assistant text (held-out 30% of each set; none of it toxic)\n\n\
         | set | rows | flagged combined | lexicon score at the combined threshold | classifier alone at its threshold | trained on its 70%? |\n|---|---|---|---|---|---|"
    );
    let t_clf = d.classifier().map_or(0.5, |c| c.threshold());
    let mut sets: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    sets.sort_unstable();
    sets.dedup();
    let (mut all, mut all_n) = (0, 0);
    for set in sets {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.source == set).collect();
        let v: Vec<_> = rs.iter().map(|r| d.scan(&r.text)).collect();
        let c = v.iter().filter(|v| v.toxic).count();
        let l = v
            .iter()
            .filter(|v| v.lexicon_score >= d.threshold())
            .count();
        let k = v
            .iter()
            .filter(|v| v.classifier_score.unwrap_or(0.0) >= t_clf)
            .count();
        all += c;
        all_n += rs.len();
        let _ = writeln!(
            md,
            "| {set} | {} | {} | {} | {} | {} |",
            rs.len(),
            f3(ratio(c, rs.len())),
            f3(ratio(l, rs.len())),
            f3(ratio(k, rs.len())),
            if TRAINS.contains(&set) { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        md,
        "| **all** | {all_n} | {} | | | |",
        f3(ratio(all, all_n))
    );
}

/// The lowest threshold (the most recall) that flags at most `cap` of the benign assistant
/// rows (`assistant[i]`), and its F1 on the other rows. The goal bounds false positives on
/// assistant text, which is what the guard reads, not on tweets labelled `neither`.
fn capped_f1_threshold(
    scores: &[f32],
    labels: &[bool],
    assistant: &[bool],
    cap: f64,
) -> (f32, f64) {
    let t = lowest_threshold_within(scores, assistant, cap);
    let rest: Vec<usize> = (0..scores.len()).filter(|&i| !assistant[i]).collect();
    let pred: Vec<bool> = rest.iter().map(|&i| scores[i] >= t).collect();
    let truth: Vec<bool> = rest.iter().map(|&i| labels[i]).collect();
    (t, Counts::of(&pred, &truth).f1())
}

const MAX_ARTIFACT_BYTES: usize = 1_800_000;

fn features() -> NgramConfig {
    NgramConfig {
        buckets_log2: 18,
        char_ngram_min: 3,
        char_ngram_max: 5,
        max_bytes: 4096,
    }
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut data = switchyard_testkit::data::path("toxicity/toxicity.dev.jsonl");
    let mut artifact = manifest.join("../../eval/artifacts/toxicity.v1.json");
    let mut train_mode = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--train" => train_mode = true,
            "--data" => data = args.next().expect("--data FILE").into(),
            "--artifact" => artifact = args.next().expect("--artifact FILE").into(),
            other => panic!("unknown argument {other:?}"),
        }
    }
    let data = switchyard_testkit::data::require_or_exit(data);
    let rows: Vec<Row> = std::fs::read_to_string(&data)
        .unwrap_or_else(|e| panic!("reading {}: {e}", data.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSONL row"))
        .collect();
    let (mut train, test) = split(rows, |r| &r.source, |r| r.label, |r| &r.id);
    // Benign assistant text from other sets, split the same way: the permissively licensed
    // sets' 70% trains as benign and bounds the threshold; every set's 30% is scored apart.
    let root = data.parent().and_then(|p| p.parent()).expect("shared/data");
    let (assistant_train, assistant_test) =
        split(assistant_texts(root), |r| &r.source, |r| r.label, |r| &r.id);
    train.extend(
        assistant_train
            .into_iter()
            .filter(|r| TRAINS.contains(&r.source.as_str())),
    );
    eprintln!("{} train rows, {} held-out rows", train.len(), test.len());

    let mut md = String::new();
    if train_mode {
        let a = train_artifact(&train, &mut md);
        a.save(&artifact).expect("writing the artifact");
        eprintln!("wrote {}", artifact.display());
    }
    let detector = ToxicityDetector::load(&artifact).expect("loading the artifact");
    let loaded = BinaryArtifact::load(&artifact).expect("loading the artifact");
    let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
    evaluate(&detector, &loaded, size, &train, &test, &mut md);
    assistant_table(&detector, &assistant_test, &mut md);
    print!("{md}");
}

fn targets(rows: &[&Row]) -> Vec<f32> {
    rows.iter().map(|r| f32::from(r.label)).collect()
}

/// L2 by out-of-fold ROC-AUC; returns the config and its out-of-fold scores.
fn choose_l2(
    rows: &[&Row],
    xs: &[Features],
    dim: usize,
    md: Option<&mut String>,
) -> (TrainConfig, Vec<f32>) {
    let ys = targets(rows);
    let labels: Vec<bool> = rows.iter().map(|r| r.toxic()).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut table = String::new();
    let mut best: Option<(f64, TrainConfig, Vec<f32>)> = None;
    for l2 in L2_GRID {
        let tc = TrainConfig {
            l2,
            ..TrainConfig::default()
        };
        let oof = out_of_fold(&ids, xs, &ys, dim, &tc);
        let a = auc(&oof, &labels);
        let (_, f1) = best_f1_threshold(&oof, &labels);
        let _ = writeln!(table, "| {l2:e} | {a:.4} | {f1:.4} |");
        if best.as_ref().is_none_or(|b| a > b.0) {
            best = Some((a, tc, oof));
        }
    }
    if let Some(md) = md {
        let _ = writeln!(
            md,
            "### Training choices (5-fold out-of-fold on the 70% train part)\n"
        );
        let _ = writeln!(
            md,
            "| L2 | OOF ROC-AUC | OOF best F1 |\n|---|---|---|\n{table}"
        );
    }
    let (_, tc, oof) = best.expect("a grid point");
    (tc, oof)
}

fn train_artifact(train: &[Row], md: &mut String) -> BinaryArtifact {
    let cfg = features();
    let f = NgramFeaturizer::new(cfg.clone());
    let rows: Vec<&Row> = train.iter().collect();
    let xs0: Vec<Features> = rows.iter().map(|r| f.featurize(&r.text)).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.toxic()).collect();
    let assistant: Vec<bool> = rows
        .iter()
        .map(|r| r.source.starts_with("assistant"))
        .collect();
    let dim = cfg.buckets();
    let lex = Lexicon::new();
    let lx: Vec<f32> = rows.iter().map(|r| lex.scan(&r.text).score).collect();
    let noisy = |oof: &[f32]| -> Vec<f32> {
        lx.iter()
            .zip(oof)
            .map(|(l, c)| switchyard_textclass::noisy_or([*l, *c]))
            .collect()
    };
    // Grid: copies of each Surge row x L2. Each point is judged on the distinct train rows
    // (copies share a fold): the combined score's threshold is the lowest that flags at most
    // ASSISTANT_FPR_CAP of the benign assistant rows, and the point with the best lowest
    // per-source recall at it wins (the goal is recall on every source).
    let _ = writeln!(
        md,
        "### Training choices (5-fold out-of-fold on the 70% train part)\n\n\
         | Surge copies | L2 | OOF ROC-AUC classifier | combined threshold (≤ 0.75% assistant) | OOF recall Davidson | OOF recall Surge | OOF FPR assistant |\n|---|---|---|---|---|---|---|"
    );
    let recall_of = |scores: &[f32], t: f32, src: &str| -> f64 {
        let ix: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].source == src && labels[i])
            .collect();
        ratio(ix.iter().filter(|&&i| scores[i] >= t).count(), ix.len())
    };
    let assist_fpr = |scores: &[f32], t: f32| -> f64 {
        let ix: Vec<usize> = (0..rows.len()).filter(|&i| assistant[i]).collect();
        ratio(ix.iter().filter(|&&i| scores[i] >= t).count(), ix.len())
    };
    let mut best: Option<(f64, usize, TrainConfig, Vec<f32>)> = None;
    let ys0 = targets(&rows);
    let ids0: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let surge_copies = |copies: usize| -> Vec<usize> {
        rows.iter()
            .map(|r| if r.source == "surge" { copies } else { 1 })
            .collect()
    };
    for copies in SURGE_COPIES {
        for l2 in L2_GRID {
            let tc = TrainConfig {
                l2,
                ..TrainConfig::default()
            };
            let oof = out_of_fold_weighted(&ids0, &xs0, &ys0, &surge_copies(copies), dim, &tc);
            let comb = noisy(&oof);
            let (t, _) = capped_f1_threshold(&comb, &labels, &assistant, ASSISTANT_FPR_CAP);
            let (rd, rs) = (
                recall_of(&comb, t, "davidson"),
                recall_of(&comb, t, "surge"),
            );
            let tox: Vec<usize> = (0..rows.len()).filter(|&i| !assistant[i]).collect();
            let a = auc(
                &tox.iter().map(|&i| oof[i]).collect::<Vec<_>>(),
                &tox.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
            );
            let _ = writeln!(
                md,
                "| {copies} | {l2:e} | {a:.4} | {t:.3} | {rd:.3} | {rs:.3} | {:.3} |",
                assist_fpr(&comb, t)
            );
            let score = rd.min(rs);
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, copies, tc, oof));
            }
        }
    }
    let (_, copies, tc, oof) = best.expect("a grid point");
    let comb = noisy(&oof);
    let (t_clf, f_clf) = capped_f1_threshold(&oof, &labels, &assistant, ASSISTANT_FPR_CAP);
    let (t_lex, f_lex) = best_f1_threshold(&lx, &labels);
    let (t_comb, f_comb) = capped_f1_threshold(&comb, &labels, &assistant, ASSISTANT_FPR_CAP);
    let _ = writeln!(
        md,
        "\nChosen: {copies} cop{} of each Surge row, L2 {:e}; thresholds: the lowest \
         whose out-of-fold scores flag at most {:.2}% of the benign assistant rows: lexicon {t_lex:.3} \
         (F1 {f_lex:.3}, uncapped), classifier {t_clf:.3} (F1 {f_clf:.3}), combined {t_comb:.3} (F1 {f_comb:.3}).\n",
        if copies == 1 { "y" } else { "ies" },
        tc.l2,
        ASSISTANT_FPR_CAP * 100.0
    );
    let idx = repeated(&surge_copies(copies));
    let xs: Vec<Features> = idx.iter().map(|&i| xs0[i].clone()).collect();
    let ys: Vec<f32> = idx.iter().map(|&i| ys0[i]).collect();
    let model = train_logistic(&xs, &ys, dim, &tc);
    let trained_on = TrainingData {
        description:
            "toxicity.dev.jsonl (Switchyard's development split), the 70% train part of a \
                      split by a mixed hash of id (FNV-1a + murmur3 finaliser) within each source and label: surge-ai toxicity (MIT) and \
                      Davidson et al. hate/offensive tweets (MIT); label 1 = toxic (Surge 'Toxic', \
                      Davidson 'hate_speech' or 'offensive_language'); benign assistant text, the same \
                      split's 70%: HaluEval general answers (MIT) and CLINC150 requests (CC-BY-3.0, \
                      Larson et al. 2019) in lower-case assistant templates."
                .to_owned(),
        rows: rows.len(),
        licence: "MIT and CC-BY-3.0 (derived from permissively licensed data)".to_owned(),
    };
    for prune in [0.0f32, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2] {
        let mut a = BinaryArtifact::new(
            "toxicity",
            trained_on.clone(),
            cfg.clone(),
            tc.clone(),
            &model,
            t_clf,
            prune,
        );
        a.params.insert(COMBINED_THRESHOLD.to_owned(), t_comb);
        a.params.insert(LEXICON_THRESHOLD.to_owned(), t_lex);
        a.params.insert("surge_copies".to_owned(), copies as f32);
        let bytes = serde_json::to_string(&a)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if bytes <= MAX_ARTIFACT_BYTES {
            let _ = writeln!(
                md,
                "Artifact: weights with |w| < {prune} pruned to fit {MAX_ARTIFACT_BYTES} bytes; \
                 {} of {dim} trained weights non-zero before pruning.\n",
                model.non_zero()
            );
            return a;
        }
    }
    panic!("no pruning level fits the artifact budget");
}

fn evaluate(
    d: &ToxicityDetector,
    a: &BinaryArtifact,
    size: u64,
    train: &[Row],
    test: &[Row],
    md: &mut String,
) {
    let t_comb = d.threshold();
    let t_clf = a.threshold;
    let t_lex = a.params.get(LEXICON_THRESHOLD).copied().unwrap_or(0.5);
    let rows: Vec<&Row> = test.iter().collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.toxic()).collect();
    let verdicts: Vec<_> = rows.iter().map(|r| d.scan(&r.text)).collect();
    let s_lex: Vec<f32> = verdicts.iter().map(|v| v.lexicon_score).collect();
    let s_clf: Vec<f32> = verdicts
        .iter()
        .map(|v| v.classifier_score.unwrap_or(0.0))
        .collect();
    let s_comb: Vec<f32> = verdicts.iter().map(|v| v.score).collect();
    let pred = |scores: &[f32], t: f32| -> Vec<bool> { scores.iter().map(|&x| x >= t).collect() };
    let p_lex = pred(&s_lex, t_lex);
    let p_clf = pred(&s_clf, t_clf);
    let p_comb = pred(&s_comb, t_comb);

    let _ = writeln!(
        md,
        "Artifact `toxicity.v1.json`: {} KB, {} non-zero weights of {}, trained on {} rows; \
         thresholds lexicon {t_lex:.3}, classifier {t_clf:.3}, combined {t_comb:.3}.\n",
        size / 1024,
        a.classifier().map(|c| c.model().non_zero()).unwrap_or(0),
        a.features.buckets(),
        a.trained_on.rows
    );

    let _ = writeln!(
        md,
        "### Held-out 30% ({} rows, {} toxic): the tiers compared\n",
        rows.len(),
        labels.iter().filter(|l| **l).count()
    );
    let _ = writeln!(
        md,
        "| scorer | precision | recall | F1 | ROC-AUC | FPR |\n|---|---|---|---|---|---|"
    );
    for (name, scores, p) in [
        ("lexicon alone", &s_lex, &p_lex),
        ("classifier alone", &s_clf, &p_clf),
        ("combined", &s_comb, &p_comb),
    ] {
        let c = Counts::of(p, &labels);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            f3(c.precision()),
            f3(c.recall()),
            f3(c.f1()),
            f3(auc(scores, &labels)),
            f3(c.fpr())
        );
    }

    let _ = writeln!(md, "\n### Per source (held-out)\n");
    let _ = writeln!(
        md,
        "| source | scorer | rows | toxic | precision | recall | F1 | ROC-AUC | FPR |\n|---|---|---|---|---|---|---|---|---|"
    );
    for src in ["davidson", "surge"] {
        let ix: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].source == src).collect();
        let l: Vec<bool> = ix.iter().map(|&i| labels[i]).collect();
        for (name, scores, p) in [
            ("lexicon", &s_lex, &p_lex),
            ("classifier", &s_clf, &p_clf),
            ("combined", &s_comb, &p_comb),
        ] {
            let c = Counts::of(&ix.iter().map(|&i| p[i]).collect::<Vec<_>>(), &l);
            let sc: Vec<f32> = ix.iter().map(|&i| scores[i]).collect();
            let _ = writeln!(
                md,
                "| {src} | {name} | {} | {} | {} | {} | {} | {} | {} |",
                ix.len(),
                l.iter().filter(|x| **x).count(),
                f3(c.precision()),
                f3(c.recall()),
                f3(c.f1()),
                f3(auc(&sc, &l)),
                f3(c.fpr())
            );
        }
    }

    let _ = writeln!(md, "\n### By fine label (held-out; share flagged)\n");
    let _ = writeln!(md, "| source | fine label | rows | lexicon | classifier | combined |\n|---|---|---|---|---|---|");
    let mut fines: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.source.as_str(), r.fine_label.as_deref().unwrap_or("-")))
        .collect();
    fines.sort_unstable();
    fines.dedup();
    for (src, fine) in fines {
        let ix: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                rows[i].source == src && rows[i].fine_label.as_deref().unwrap_or("-") == fine
            })
            .collect();
        let share = |p: &[bool]| f3(ratio(ix.iter().filter(|&&i| p[i]).count(), ix.len()));
        let _ = writeln!(
            md,
            "| {src} | {fine} | {} | {} | {} | {} |",
            ix.len(),
            share(&p_lex),
            share(&p_clf),
            share(&p_comb)
        );
    }

    cross_source(a, train, test, md);

    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.text.len() <= 256)
        .map(|r| r.text.clone())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let long = four_kb(&texts, 300);
    let _ = writeln!(
        md,
        "\n### Latency per text (release build, one thread, 2-core machine shared with other builds)\n\n\
         Each text is scanned 5 times; \"best of 5\" takes each text's fastest run.\n"
    );
    let _ = writeln!(
        md,
        "| input | texts | scorer | p50 µs (all runs) | p99 µs (all runs) | p50 µs (best of 5) | p99 µs (best of 5) |\n|---|---|---|---|---|---|---|"
    );
    let clf = d.classifier().expect("the artifact has a classifier");
    for (name, texts) in [("short (≤ 256 B)", &short), ("4 KB", &long)] {
        for scorer in ["lexicon", "classifier", "combined"] {
            let [a50, a99, b50, b99] = latency(texts, |t| match scorer {
                "lexicon" => {
                    std::hint::black_box(d.lexicon().scan(t));
                }
                "classifier" => {
                    std::hint::black_box(clf.score(t));
                }
                _ => {
                    std::hint::black_box(d.scan(t));
                }
            });
            let _ = writeln!(
                md,
                "| {name} | {} | {scorer} | {a50:.1} | {a99:.1} | {b50:.1} | {b99:.1} |",
                texts.len()
            );
        }
    }
}

/// Train the classifier on one source's train part only (L2 and threshold chosen on its own
/// out-of-fold scores), score the other source's held-out rows: how far the model carries
/// beyond the style it learned.
fn cross_source(a: &BinaryArtifact, train: &[Row], test: &[Row], md: &mut String) {
    let _ = writeln!(
        md,
        "\n### Across sources: the classifier trained on one source only, scored on the other\n"
    );
    let _ = writeln!(
        md,
        "| trained on | scored on | rows | ROC-AUC | precision | recall | F1 | FPR |\n|---|---|---|---|---|---|---|---|"
    );
    let f = NgramFeaturizer::new(a.features.clone());
    let dim = a.features.buckets();
    for (from, to) in [
        ("davidson", "surge"),
        ("surge", "davidson"),
        ("davidson", "davidson"),
        ("surge", "surge"),
    ] {
        let rows: Vec<&Row> = train.iter().filter(|r| r.source == from).collect();
        let xs: Vec<Features> = rows.iter().map(|r| f.featurize(&r.text)).collect();
        let (tc, oof) = choose_l2(&rows, &xs, dim, None);
        let labels: Vec<bool> = rows.iter().map(|r| r.toxic()).collect();
        let (t, _) = best_f1_threshold(&oof, &labels);
        let model = train_logistic(&xs, &targets(&rows), dim, &tc);
        let held: Vec<&Row> = test.iter().filter(|r| r.source == to).collect();
        let scores: Vec<f32> = held
            .iter()
            .map(|r| model.predict(&f.featurize(&r.text)))
            .collect();
        let hl: Vec<bool> = held.iter().map(|r| r.toxic()).collect();
        let c = Counts::of(&scores.iter().map(|&s| s >= t).collect::<Vec<_>>(), &hl);
        let _ = writeln!(
            md,
            "| {from} | {to} | {} | {} | {} | {} | {} | {} |",
            held.len(),
            f3(auc(&scores, &hl)),
            f3(c.precision()),
            f3(c.recall()),
            f3(c.f1()),
            f3(c.fpr())
        );
    }
}
