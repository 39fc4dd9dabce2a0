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
//! example's: 70/30 split per source and label by the mixed hash of `id`; L2 and the three thresholds chosen
//! on 5-fold out-of-fold scores inside the 70%; the artifact scored as saved and loaded back.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::{auc, best_f1_threshold, f3, four_kb, latency, out_of_fold, ratio, split, Counts};
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
    let (train, test) = split(rows, |r| &r.source, |r| r.label, |r| &r.id);
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
    let xs: Vec<Features> = rows.iter().map(|r| f.featurize(&r.text)).collect();
    let ys = targets(&rows);
    let labels: Vec<bool> = rows.iter().map(|r| r.toxic()).collect();
    let dim = cfg.buckets();
    let (tc, oof) = choose_l2(&rows, &xs, dim, Some(md));

    let lex = Lexicon::new();
    let lx: Vec<f32> = rows.iter().map(|r| lex.scan(&r.text).score).collect();
    let comb: Vec<f32> = lx
        .iter()
        .zip(&oof)
        .map(|(l, c)| switchyard_textclass::noisy_or([*l, *c]))
        .collect();
    let (t_clf, f_clf) = best_f1_threshold(&oof, &labels);
    let (t_lex, f_lex) = best_f1_threshold(&lx, &labels);
    let (t_comb, f_comb) = best_f1_threshold(&comb, &labels);
    let _ = writeln!(
        md,
        "Chosen: L2 {:e}; thresholds by best out-of-fold F1: lexicon {t_lex:.3} (F1 {f_lex:.3}), \
         classifier {t_clf:.3} (F1 {f_clf:.3}), combined {t_comb:.3} (F1 {f_comb:.3}).\n",
        tc.l2
    );

    let model = train_logistic(&xs, &ys, dim, &tc);
    let trained_on = TrainingData {
        description:
            "toxicity.dev.jsonl (Switchyard's development split), the 70% train part of a \
                      split by a mixed hash of id (FNV-1a + murmur3 finaliser) within each source and label: surge-ai toxicity (MIT) and \
                      Davidson et al. hate/offensive tweets (MIT); label 1 = toxic (Surge 'Toxic', \
                      Davidson 'hate_speech' or 'offensive_language')."
                .to_owned(),
        rows: rows.len(),
        licence: "MIT (derived from MIT-licensed data)".to_owned(),
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
