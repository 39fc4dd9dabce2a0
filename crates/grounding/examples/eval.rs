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
//! `--models DIR` (holding `minilm-static-256` and `all-MiniLM-L6-v2`), `--no-write`.
//!
//! Protocol: rows are grouped by `meta.group` (one HaluEval question's right and hallucinated
//! answers, one FaithBench source passage's summaries), and per source the groups ordered by
//! `switchyard_textclass::id_hash` of the group; the first 70% are the tune split, the rest
//! held out. Heads are trained on tune sentences only (each sentence inherits its answer's
//! label, then one multiple-instance step keeps only the weakest sentence of a hallucinated
//! answer), thresholds chosen for best F1 on tune answers, the artifact written, loaded back,
//! and the held-out split scored through the loaded artifact. The shipped artifact is
//! trained on HaluEval QA only (MIT); FaithBench (CC-BY-NC-SA) trains comparison heads that
//! are reported, never shipped. Prints the Markdown of `eval/hallucination.md`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

#[expect(dead_code, reason = "this example uses a subset of the shared helpers")]
#[path = "../../textclass/examples/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use common::{auc, best_f1_threshold, f3, percentile, Counts};
use serde::Deserialize;
use switchyard_embed::{MiniLm, StaticEmbedder};
use switchyard_grounding::{
    Context, Grounding, GroundingArtifact, Head, SentenceFeatures, EMBEDDING_FEATURES,
    FEATURE_NAMES, FORMAT, FORMAT_VERSION, LEXICAL, MINILM, N_FEATURES, STATIC,
};
use switchyard_textclass::{id_hash, train_logistic, Features, TrainConfig, TrainingData};

#[derive(Debug, Clone, Deserialize)]
struct Row {
    source: String,
    context: Option<String>,
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

/// One answer's sentences, measured under each embedding variant.
struct Measured {
    row: usize,
    /// Per variant: the sentences' features (sentences with nothing to check dropped).
    feats: BTreeMap<&'static str, Vec<SentenceFeatures>>,
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
    let mut tune_groups = std::collections::HashSet::new();
    for g in groups.values_mut() {
        g.sort_by_key(|g| (id_hash(g), g.to_string()));
        g.dedup();
        let cut = (g.len() as f64 * TUNE_SHARE).round() as usize;
        tune_groups.extend(g[..cut].iter().map(|s| s.to_string()));
    }

    let stat = StaticEmbedder::load(models.join("minilm-static-256")).expect("static model");
    let static_embed = |s: &str| stat.embed(s).unwrap_or_default();
    let minilm =
        with_minilm.then(|| MiniLm::load(models.join("all-MiniLM-L6-v2")).expect("MiniLM"));
    let minilm_embed = |s: &str| {
        minilm
            .as_ref()
            .and_then(|m| m.embed_one(s).ok())
            .unwrap_or_default()
    };

    // Measure every answer.
    let t0 = Instant::now();
    let mut measured = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(ctx) = &r.context else { continue };
        let mut feats = BTreeMap::new();
        let cx = Context::new(ctx, Some(&static_embed));
        let mut lex = Vec::new();
        let mut sta = Vec::new();
        for s in switchyard_grounding::sentences(&r.answer) {
            if s.kind != switchyard_grounding::Kind::Text {
                continue;
            }
            let sent = &r.answer[s.range];
            let e = static_embed(sent);
            let f = cx.features(sent, Some(&e));
            if f.content_words == 0 {
                continue;
            }
            let mut l = f.clone();
            for k in EMBEDDING_FEATURES {
                l.values[k] = 0.0;
            }
            lex.push(l);
            sta.push(f);
        }
        feats.insert(LEXICAL, lex);
        feats.insert(STATIC, sta);
        if with_minilm {
            let cxm = Context::new(ctx, Some(&minilm_embed));
            let mut mini = Vec::new();
            for s in switchyard_grounding::sentences(&r.answer) {
                if s.kind != switchyard_grounding::Kind::Text {
                    continue;
                }
                let sent = &r.answer[s.range];
                let e = minilm_embed(sent);
                let f = cxm.features(sent, Some(&e));
                if f.content_words > 0 {
                    mini.push(f);
                }
            }
            feats.insert(MINILM, mini);
        }
        measured.push(Measured { row: i, feats });
    }
    let measure_secs = t0.elapsed().as_secs_f64();

    let is_tune = |m: &Measured| tune_groups.contains(&rows[m.row].meta.group);
    let label = |m: &Measured| rows[m.row].label == 1;
    let variants: Vec<&'static str> = if with_minilm {
        vec![LEXICAL, STATIC, MINILM]
    } else {
        vec![LEXICAL, STATIC]
    };

    // Heads: shipped (HaluEval QA tune), and comparisons.
    let train_sets: [(&str, &[&str]); 3] = [
        ("halueval_qa", &["halueval_qa"]),
        ("halueval_qa+faithbench", &["halueval_qa", "faithbench"]),
        ("faithbench", &["faithbench"]),
    ];
    let mut heads: BTreeMap<(&str, &str), Head> = BTreeMap::new();
    for (set_name, sources) in train_sets {
        for &v in &variants {
            let tune: Vec<&Measured> = measured
                .iter()
                .filter(|m| is_tune(m) && sources.contains(&rows[m.row].source.as_str()))
                .collect();
            let head = train_head(&tune, v, &label);
            heads.insert((set_name, v), head);
        }
    }

    let tune_rows = |sources: &[&str]| {
        measured
            .iter()
            .filter(|m| is_tune(m) && sources.contains(&rows[m.row].source.as_str()))
            .count()
    };
    let shipped_rows = tune_rows(&["halueval_qa"]);
    let mut artifact = GroundingArtifact {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        training: TrainingData {
            description: "HaluEval QA (halueval_qa) rows of the tune split (70% of question \
                          groups by id_hash of meta.group) of hallucination.dev.jsonl; \
                          FaithBench not used"
                .to_owned(),
            rows: shipped_rows,
            licence: "MIT (HaluEval)".to_owned(),
        },
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        heads: BTreeMap::new(),
        notes: "Per-sentence logistic heads (P(unsupported)), trained by switchyard-textclass \
                train_logistic on sentences labelled by their answer, then one multiple-instance \
                step (a hallucinated answer's weakest sentence only); answer score = least \
                sentence support; threshold = best F1 on tune answers. lexical: no embedding; \
                static: minilm-static-256 cosines; minilm: all-MiniLM-L6-v2 cosines. \
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

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Data: `{}` ({} rows; {} halueval_general rows, {} of them with a context: the general \
         set has no context to ground against, so it is not scored). Split: per source, \
         question/passage groups by `id_hash(meta.group)`, 70% tune / 30% held out. \
         Measuring all answers took {measure_secs:.1} s.\n",
        switchyard_testkit::data::shown(&data),
        rows.len(),
        general,
        general_ctx
    );
    let _ = writeln!(
        out,
        "| source | split | answers | hallucinated | sentences |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for src in SOURCES {
        for (name, tune) in [("tune", true), ("held-out", false)] {
            let ms: Vec<&Measured> = measured
                .iter()
                .filter(|m| rows[m.row].source == src && is_tune(m) == tune)
                .collect();
            let pos = ms.iter().filter(|m| label(m)).count();
            let sents: usize = ms.iter().map(|m| m.feats[LEXICAL].len()).sum();
            let _ = writeln!(out, "| {src} | {name} | {} | {pos} | {sents} |", ms.len());
        }
    }

    // Held-out results: positive class = hallucinated (not supported).
    let _ = writeln!(
        out,
        "\n### Held-out, positive = hallucinated (answer flagged when score < threshold)\n"
    );
    let _ = writeln!(
        out,
        "| source | trained on | head | threshold | precision | recall | F1 | ROC-AUC | accuracy | balanced acc. |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for src in SOURCES {
        let held: Vec<&Measured> = measured
            .iter()
            .filter(|m| rows[m.row].source == src && !is_tune(m))
            .collect();
        let labels: Vec<bool> = held.iter().map(|m| label(m)).collect();
        for (set_name, _) in train_sets {
            for &v in &variants {
                let head = &heads[&(set_name, v)];
                let (scores, threshold) = if set_name == "halueval_qa" {
                    // The shipped heads: through the loaded artifact.
                    let g = if v == LEXICAL {
                        loaded.clone()
                    } else {
                        loaded.clone().with_embedding_head(v).unwrap()
                    };
                    let s: Vec<f32> = held
                        .iter()
                        .map(|m| answer_score(&m.feats[v], |f| g.support(f, v != LEXICAL)))
                        .collect();
                    let t = if v == LEXICAL {
                        g.lexical_threshold()
                    } else {
                        g.threshold()
                    };
                    (s, t)
                } else {
                    let s: Vec<f32> = held
                        .iter()
                        .map(|m| answer_score(&m.feats[v], |f| head_support(head, f)))
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
                    f3(balanced(&c)),
                );
            }
        }
    }

    // Baselines that expose the data's artefacts.
    let _ = writeln!(
        out,
        "\n### Single-signal baselines (held-out ROC-AUC, positive = hallucinated)\n"
    );
    let _ = writeln!(out, "| source | answer words | 1 − content recall (worst sentence) | any unsupported number or name | 1 − static cosine (worst sentence) |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for src in SOURCES {
        let held: Vec<&Measured> = measured
            .iter()
            .filter(|m| rows[m.row].source == src && !is_tune(m))
            .collect();
        let labels: Vec<bool> = held.iter().map(|m| label(m)).collect();
        let words: Vec<f32> = held
            .iter()
            .map(|m| rows[m.row].answer.split_whitespace().count() as f32)
            .collect();
        let worst = |k: usize, m: &Measured, flip: bool| {
            m.feats[STATIC]
                .iter()
                .map(|f| if flip { 1.0 - f.values[k] } else { f.values[k] })
                .fold(0.0f32, f32::max)
        };
        let recall: Vec<f32> = held.iter().map(|m| worst(0, m, true)).collect();
        let terms: Vec<f32> = held
            .iter()
            .map(|m| worst(4, m, false).max(worst(6, m, false)))
            .collect();
        let cos: Vec<f32> = held.iter().map(|m| worst(10, m, true)).collect();
        let _ = writeln!(
            out,
            "| {src} | {} | {} | {} | {} |",
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

    // Latency: a ~300-word answer against a ~2,000-word context, built from FaithBench rows.
    let fb: Vec<&Row> = rows.iter().filter(|r| r.source == "faithbench").collect();
    let mut cases = Vec::new();
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
        cases.push((cut_words(&ctx, 2000), cut_words(&ans, 300)));
    }
    let lat = |f: &dyn Fn(&str, &str)| {
        let mut us = Vec::new();
        for (c, a) in &cases {
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
        std::hint::black_box(loaded.check_lexical(c, a));
    });
    let static_lat = lat(&|c, a| {
        std::hint::black_box(loaded.check(c, a, &static_embed));
    });
    let cx0 = Context::new(&cases[0].0, Some(&static_embed));
    let prepared_lat = lat(&|_c, a| {
        std::hint::black_box(loaded.check_prepared(&cx0, a, Some(&static_embed)));
    });
    let _ = writeln!(
        out,
        "\n### Latency (this machine, release, one thread; {} cases × 5 runs; 300-word answer, 2,000-word context)\n",
        cases.len()
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
        let (c, a) = &cases[0];
        let n = switchyard_grounding::sentences(c).len() + switchyard_grounding::sentences(a).len();
        let t = Instant::now();
        let _ = loaded
            .clone()
            .with_embedding_head(MINILM)
            .unwrap()
            .check(c, a, &|s: &str| m.embed_one(s).unwrap_or_default());
        let _ = writeln!(
            out,
            "| `check` with MiniLM (one case, {n} sentences embedded one by one) | {:.0} | – |",
            t.elapsed().as_secs_f64() * 1e6
        );
    }
    println!("{out}");
    if write {
        eprintln!("wrote {}", artifact_path.display());
    }
}

fn cut_words(s: &str, n: usize) -> String {
    s.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn accuracy(c: &Counts) -> f64 {
    (c.tp + c.tn) as f64 / (c.tp + c.tn + c.fp + c.fn_).max(1) as f64
}

fn balanced(c: &Counts) -> f64 {
    (c.recall() + c.tn as f64 / (c.tn + c.fp).max(1) as f64) / 2.0
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

/// The training vector. `ln1p_content` is left out (weight 0): on HaluEval it learns the
/// data's length artefact (right answers are short spans) and flags every long, faithful
/// sentence elsewhere.
fn dense(f: &SentenceFeatures) -> Features {
    let mut values = f.values.to_vec();
    values[9] = 0.0;
    Features {
        indices: (0..N_FEATURES as u32).collect(),
        values,
    }
}

/// Train one head on tune answers: every sentence with its answer's label, then one
/// multiple-instance step; threshold for the best F1 on the tune answers.
fn train_head(tune: &[&Measured], variant: &str, label: &dyn Fn(&Measured) -> bool) -> Head {
    let cfg = TrainConfig {
        epochs: 40,
        learning_rate: 0.1,
        l2: 1e-4,
        seed: 0x6772_6f75,
    };
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    // Balance answers, not sentences: a long answer's sentences share one answer's weight.
    for m in tune {
        for f in &m.feats[variant] {
            xs.push(dense(f));
            ys.push(if label(m) { 1.0 } else { 0.0 });
        }
    }
    let first = train_logistic(&xs, &ys, N_FEATURES, &cfg);
    let mut xs2 = Vec::new();
    let mut ys2 = Vec::new();
    for m in tune {
        let fs = &m.feats[variant];
        if label(m) {
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
    let h: Vec<f32> = tune
        .iter()
        .map(|m| 1.0 - answer_score(&m.feats[variant], |f| head_support(&head, f)))
        .collect();
    let labels: Vec<bool> = tune.iter().map(|m| label(m)).collect();
    let (t, _) = best_f1_threshold(&h, &labels);
    // Flag when 1 - score >= t, i.e. score <= 1 - t: supported when score > 1 - t.
    head.threshold = next_up(1.0 - t);
    head
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}
