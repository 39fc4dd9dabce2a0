//! Train and evaluate the prompt-injection detector on the development split of
//! `../shared/data/prompt_injection/`.
//!
//! ```text
//! cargo run --release -p switchyard-textclass --example eval_injection            # evaluate the shipped artifact
//! cargo run --release -p switchyard-textclass --example eval_injection -- --train # retrain, write it, evaluate
//! ```
//!
//! Options: `--data FILE` (the JSONL), `--artifact FILE` (default
//! `eval/artifacts/injection.v1.json`), `--exclude SOURCE` (repeatable: the source trains
//! nothing but is still scored), `--extra-benign` (add benign prompts from other permissively
//! licensed sets under `shared/data`, scored apart), `--class-weights` (also search 1-3 copies
//! of each malicious row), `--documents` (retrieved documents: HaluEval QA contexts as benign
//! tool results, with the BIPIA train payloads placed inside them as malicious ones; scored
//! apart), `--dense DIR` (append a static embedding model's vector to the n-grams; the
//! artifact then needs that model to load), `--permissive` (the shipped artifact: its path,
//! the restricted sources excluded, `--extra-benign`, `--documents`, `--class-weights`; give
//! `--artifact` after it to write elsewhere), `--quick` (skip leave-one-source-out and
//! latency), `--dump FILE` (with `--train`: out-of-fold scores of the train rows, for error
//! analysis). Prints the Markdown tables of `eval/injection.md`.
//!
//! ```text
//! cargo run --release -p switchyard-textclass --example eval_injection -- --train --permissive
//! ```
//!
//! How the numbers are kept honest:
//! 1. Rows are split 70/30 within each source and label by a mixed hash of `id`
//!    (`switchyard_textclass::id_hash`: no seed, stable under reordering). The 30% is only ever scored.
//! 2. The L2 strength, the class weight and the three thresholds are chosen on 5-fold
//!    out-of-fold scores inside the 70% of the injection file's rows: the classifier's and
//!    the combined threshold are the lowest that flag at most `OOF_FPR_CAP` of its benign
//!    train rows (the goal bounds false positives), the pattern tier's by best F1.
//! 3. The reported classifier is the artifact as saved (pruned) and loaded back.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

mod common;

use common::{
    auc, best_f1_threshold, f3, four_kb, latency, lowest_threshold_within, out_of_fold_weighted,
    ratio, read_jsonl, repeated, split, Counts,
};
use serde::Deserialize;
use switchyard_textclass::injection::{
    Channel, Detector, PatternTier, COMBINED_THRESHOLD, PATTERN_THRESHOLD,
};
use switchyard_textclass::{
    train_logistic, BinaryArtifact, BinaryClassifier, DenseFeatures, DenseSpec, Features,
    LinearModel, NgramConfig, TrainConfig, TrainingData,
};

#[derive(Debug, Clone, Deserialize)]
struct Row {
    id: String,
    source: String,
    text: String,
    label: u8,
    #[serde(default)]
    hard_negative: bool,
}

impl Row {
    fn malicious(&self) -> bool {
        self.label == 1
    }

    /// BIPIA payloads only mean harm inside retrieved content, so they arrive as data.
    fn channel(&self) -> Channel {
        if self.source.starts_with("bipia") || self.source.starts_with("doc_") {
            Channel::Indirect
        } else {
            Channel::User
        }
    }
}

/// The artifact's `params` entry recording the class weight (copies of each malicious row).
const MALICIOUS_COPIES: &str = "malicious_copies";

/// Whether training also searches a class weight (1, 2 or 3 copies of each malicious row).
static CLASS_WEIGHTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The static embedding appended to the n-grams (`--dense DIR`), set once in `main`.
static DENSE: std::sync::OnceLock<(String, usize, DenseFeatures)> = std::sync::OnceLock::new();

/// The featuriser training and the leave-one-out runs use: the n-grams, then the static
/// embedding when `--dense` gave one, exactly as the loaded detector featurises.
fn featurizer() -> BinaryClassifier {
    let clf = BinaryClassifier::new(features(), LinearModel::default(), 0.5);
    match DENSE.get() {
        Some((_, _, d)) => clf.with_dense(d.clone()),
        None => clf,
    }
}

/// The weight vector's length: buckets, then the dense values.
fn layout_dim() -> usize {
    features().buckets() + DENSE.get().map_or(0, |(_, dim, _)| *dim)
}

/// Loads a static embedding model as dense features.
fn load_dense(dir: &std::path::Path) -> (String, usize, DenseFeatures) {
    let model = switchyard_embed::StaticEmbedder::load(dir)
        .unwrap_or_else(|e| panic!("loading the static model {}: {e}", dir.display()));
    let dim = model.dim();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("static")
        .to_owned();
    let f: DenseFeatures = std::sync::Arc::new(move |t: &str| model.embed(t).unwrap_or_default());
    (name, dim, f)
}

const L2_GRID: [f32; 3] = [1e-5, 1e-4, 1e-3];
/// The share of the injection file's benign train rows the shipped thresholds may flag out
/// of fold: the goal is 5% on held-out rows, and sources the model never trained on
/// (safe-guard's task prompts) are flagged more often than the out-of-fold rows.
const OOF_FPR_CAP: f64 = 0.02;

/// The lowest threshold flagging at most `cap` of the benign rows, and the recall there.
fn capped_fpr_threshold(scores: &[f32], labels: &[bool], cap: f64) -> (f32, f64) {
    let benign: Vec<bool> = labels.iter().map(|l| !l).collect();
    let t = lowest_threshold_within(scores, &benign, cap);
    let pred: Vec<bool> = scores.iter().map(|&s| s >= t).collect();
    (t, Counts::of(&pred, labels).recall())
}

/// The artifact's size budget; pruning grows until the file fits.
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
    let mut data = switchyard_testkit::data::path("prompt_injection/prompt_injection.dev.jsonl");
    let mut artifact = manifest.join("../../eval/artifacts/injection.v1.json");
    let mut train_mode = false;
    let mut quick = false;
    let mut extra = false;
    let mut documents = false;
    let mut dump: Option<PathBuf> = None;
    let mut excluded: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--train" => train_mode = true,
            "--quick" => quick = true,
            "--class-weights" => CLASS_WEIGHTS.store(true, std::sync::atomic::Ordering::Relaxed),
            "--dump" => dump = Some(args.next().expect("--dump FILE").into()),
            "--permissive" => {
                artifact = manifest.join("../../eval/artifacts/injection-permissive.v1.json");
                excluded.extend(RESTRICTED.iter().map(|s| (*s).to_owned()));
                extra = true;
                documents = true;
                CLASS_WEIGHTS.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            "--extra-benign" => extra = true,
            "--dense" => {
                let dir: PathBuf = args.next().expect("--dense DIR").into();
                let _ = DENSE.set(load_dense(&dir));
            }
            "--documents" => documents = true,

            "--exclude" => excluded.push(args.next().expect("--exclude SOURCE")),
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
    // Excluded sources train nothing (their licence forbids shipping weights derived from
    // them, or the run measures generalisation to them) but are still scored.
    let (unseen, mut train): (Vec<Row>, Vec<Row>) = train
        .into_iter()
        .partition(|r| excluded.contains(&r.source));
    // Extra benign prompts from other permissively licensed sets: their own 70% train part
    // (capped) trains, their 30% is scored apart.
    let mut extra_test = Vec::new();
    if extra {
        let root = data.parent().and_then(|p| p.parent()).expect("shared/data");
        let (tr, te) = extra_benign(root);
        train.extend(tr);
        extra_test = te;
    }
    // Retrieved documents (HaluEval QA contexts, MIT): benign as tool results, and hosts for
    // the BIPIA payloads of the train part; their held-out 30% hosts the held-out payloads.
    let mut doc_test = Vec::new();
    if documents {
        let root = data.parent().and_then(|p| p.parent()).expect("shared/data");
        let (tr, te) = host_documents(root);
        let payloads: Vec<Row> = train
            .iter()
            .filter(|r| r.source.starts_with("bipia") && r.malicious())
            .cloned()
            .collect();
        train.extend(documents_with_payloads(&tr, &payloads));
        doc_test = te;
    }
    eprintln!("{} train rows, {} held-out rows", train.len(), test.len());

    let mut md = String::new();
    let mut oof = Vec::new();
    if train_mode {
        let (a, o) = train_artifact(&train, &mut md);
        oof = o;
        a.save(&artifact).expect("writing the artifact");
        eprintln!("wrote {}", artifact.display());
    }
    let loaded = BinaryArtifact::load(&artifact).expect("loading the artifact");
    let detector = Detector::from_artifact_with(&loaded, DENSE.get().map(|d| d.2.clone()))
        .expect("loading the artifact (an artifact with dense features needs --dense)");
    let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
    evaluate(&detector, &loaded, size, &train, &test, quick, &mut md);
    if !extra_test.is_empty() {
        extra_table(&detector, &extra_test, &mut md);
    }
    if !doc_test.is_empty() {
        documents_table(&detector, &doc_test, &test, &mut md);
    }
    if let Some(path) = dump {
        dump_scores(&detector, &train, &oof, &unseen, &path);
    }
    print!("{md}");
}

/// Sources whose licence forbids shipping weights derived from them (data README):
/// Tensor Trust (no licence, research only) and safe-guard-prompt-injection (licence unstated).
const RESTRICTED: [&str; 3] = [
    "tensortrust_extraction",
    "tensortrust_hijacking",
    "safeguard_test",
];

/// Whether weights derived from a source may be redistributed (data README licences).
fn permissive(source: &str) -> bool {
    !RESTRICTED.contains(&source)
}

/// Extra benign rows per source at most (the first by id hash), so that no one set of
/// ordinary prompts outweighs the injection data.
const EXTRA_CAP: usize = 300;

/// Benign prompts from other permissively licensed sets under `shared/data` (none of them
/// contains an injection): AlpacaEval instructions (Apache-2.0), RouteLLM's MMLU, GSM8K and
/// MT-Bench prompts (Apache-2.0), CLINC150 assistant queries (CC-BY-3.0) and XSTest's safe
/// prompts with scary words (CC-BY-4.0, hard negatives). Split like the main file; returns
/// (train part capped at [`EXTRA_CAP`] per source, held-out part capped likewise).
fn extra_benign(root: &std::path::Path) -> (Vec<Row>, Vec<Row>) {
    let read = |rel: &str| read_jsonl(&root.join(rel));
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let benign = |v: &serde_json::Value, source: String, field: &str, hard: bool| Row {
        id: s(v, "id"),
        source,
        text: s(v, field),
        label: 0,
        hard_negative: hard,
    };
    let mut rows = Vec::new();
    for v in read("routing/alpacaeval.dev.jsonl")
        .into_iter()
        .chain(read("routing/routellm.dev.jsonl"))
    {
        rows.push(benign(
            &v,
            format!("extra_{}", s(&v, "source")),
            "prompt",
            false,
        ));
    }
    for v in read("topic/topic.dev.jsonl") {
        if v["source"] == "clinc150" {
            rows.push(benign(&v, "extra_clinc150".to_owned(), "text", false));
        }
    }
    // HaluEval's general questions (MIT): user requests to ChatGPT from Alpaca-style sets.
    for v in read("hallucination/hallucination.dev.jsonl") {
        if v["source"] == "halueval_general" {
            rows.push(benign(
                &v,
                "extra_halueval_general".to_owned(),
                "question",
                false,
            ));
        }
    }
    for v in read("harmful_requests/harmful_requests.dev.jsonl") {
        if v["source"] == "xstest" && v["label"] == 0 {
            rows.push(benign(&v, "extra_xstest_safe".to_owned(), "text", true));
        }
    }
    rows.retain(|r| !r.text.trim().is_empty());
    let (train, test) = split(rows, |r| &r.source, |r| r.label, |r| &r.id);
    let cap = |rows: Vec<Row>| -> Vec<Row> {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        rows.into_iter()
            .filter(|r| {
                let k = n.entry(r.source.clone()).or_default();
                *k += 1;
                *k <= EXTRA_CAP
            })
            .collect()
    };
    (cap(train), cap(test))
}

/// Retrieved documents: the distinct contexts of HaluEval QA (MIT; Wikipedia paragraphs),
/// split 70/30 by id hash like every other set. Benign as tool results.
fn host_documents(root: &std::path::Path) -> (Vec<Row>, Vec<Row>) {
    let mut seen = std::collections::BTreeSet::new();
    let rows: Vec<Row> = read_jsonl(&root.join("hallucination/hallucination.dev.jsonl"))
        .into_iter()
        .filter(|v| v["source"] == "halueval_qa")
        .filter_map(|v| {
            let text = v["context"].as_str()?.trim().to_owned();
            (!text.is_empty() && seen.insert(text.clone())).then(|| Row {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                source: "doc_halueval".to_owned(),
                text,
                label: 0,
                hard_negative: false,
            })
        })
        .collect();
    split(rows, |r| &r.source, |r| r.label, |r| &r.id)
}

/// Where a payload goes inside a host document.
#[derive(Clone, Copy)]
enum Place {
    Start,
    Middle,
    End,
}

/// `payload` inside `host` at `place`, on a sentence boundary when there is one near it.
fn embed_payload(host: &str, payload: &str, place: Place) -> String {
    let cut = match place {
        Place::Start => 0,
        Place::End => host.len(),
        Place::Middle => {
            let mid = host.len() / 2;
            host[mid..]
                .find(". ")
                .map(|k| mid + k + 2)
                .or_else(|| (mid..host.len()).find(|&k| host.is_char_boundary(k)))
                .unwrap_or(host.len())
        }
    };
    format!("{} {} {}", &host[..cut], payload.trim(), &host[cut..])
        .trim()
        .to_owned()
}

/// Each BIPIA payload of the train part inside three train host documents (start, middle,
/// end; hosts picked by hash), as malicious tool results. The copies keep the payload's id,
/// so they share its out-of-fold fold and cannot leak it across folds. Returns the hosts as
/// benign rows too.
fn documents_with_payloads(hosts: &[Row], payloads: &[Row]) -> Vec<Row> {
    let mut out: Vec<Row> = hosts.to_vec();
    if hosts.is_empty() {
        return out;
    }
    for p in payloads {
        for (j, place) in [Place::Start, Place::Middle, Place::End]
            .into_iter()
            .enumerate()
        {
            let h = (switchyard_textclass::id_hash(&format!("{}#{j}", p.id)) % hosts.len() as u64)
                as usize;
            out.push(Row {
                id: p.id.clone(),
                source: "doc_bipia".to_owned(),
                text: embed_payload(&hosts[h].text, &p.text, place),
                label: 1,
                hard_negative: false,
            });
        }
    }
    out
}

/// Held-out retrieved documents: false positives as tool results, and the held-out BIPIA
/// payloads placed inside held-out hosts.
fn documents_table(d: &Detector, hosts: &[Row], test: &[Row], md: &mut String) {
    let flagged = hosts
        .iter()
        .filter(|r| d.scan(&r.text, Channel::Indirect).injection)
        .count();
    let _ = writeln!(
        md,
        "\n### Retrieved documents (held-out 30% of HaluEval QA's distinct contexts, as tool results)\n\n\
         {} documents: {} flagged (FPR {}).\n",
        hosts.len(),
        flagged,
        f3(ratio(flagged, hosts.len()))
    );
    let _ = writeln!(
        md,
        "| set | payloads | placed in documents | recall at start | recall in the middle | recall at end | recall, all placements |\n|---|---|---|---|---|---|---|"
    );
    for src in ["bipia_code", "bipia_text"] {
        let b: Vec<&Row> = test.iter().filter(|r| r.source == src).collect();
        if b.is_empty() || hosts.is_empty() {
            continue;
        }
        let mut hits = [0usize; 3];
        for (k, r) in b.iter().enumerate() {
            for (j, place) in [Place::Start, Place::Middle, Place::End]
                .into_iter()
                .enumerate()
            {
                let host = &hosts[(k * 3 + j) % hosts.len()].text;
                hits[j] += usize::from(
                    d.scan(&embed_payload(host, &r.text, place), Channel::Indirect)
                        .injection,
                );
            }
        }
        let n = b.len();
        let _ = writeln!(
            md,
            "| {src} | {n} | {} | {} | {} | {} | {} |",
            3 * n,
            f3(ratio(hits[0], n)),
            f3(ratio(hits[1], n)),
            f3(ratio(hits[2], n)),
            f3(ratio(hits.iter().sum(), 3 * n))
        );
    }
}

/// False positives on the held-out part of the extra benign sets.
fn extra_table(d: &Detector, rows: &[Row], md: &mut String) {
    let _ = writeln!(
        md,
        "\n### Extra benign prompts (held-out 30% of each set, at most {EXTRA_CAP})\n"
    );
    let _ = writeln!(
        md,
        "| set | rows | FPR combined | FPR patterns | FPR classifier |\n|---|---|---|---|---|"
    );
    let mut by: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by.entry(r.source.as_str()).or_default().push(r);
    }
    let t_clf = d.classifier().map(|c| c.threshold()).unwrap_or(0.5);
    for (src, rs) in by {
        let n = rs.len();
        let (mut c, mut p, mut k) = (0, 0, 0);
        for r in &rs {
            let v = d.scan(&r.text, Channel::User);
            c += usize::from(v.injection);
            p += usize::from(!v.rules.is_empty() && v.pattern_score >= d.threshold());
            k += usize::from(v.classifier_score.unwrap_or(0.0) >= t_clf);
        }
        let _ = writeln!(
            md,
            "| {src} | {n} | {} | {} | {} |",
            f3(ratio(c, n)),
            f3(ratio(p, n)),
            f3(ratio(k, n))
        );
    }
}

/// Error analysis on the train part only (with `--train`): each train row's out-of-fold
/// combined score, and the detector's score of the train rows of excluded sources (never
/// trained on), one JSON object a line. Held-out rows are never written.
fn dump_scores(d: &Detector, train: &[Row], oof: &[f32], unseen: &[Row], path: &std::path::Path) {
    let mut out = String::new();
    for (i, r) in train.iter().chain(unseen).enumerate() {
        let v = d.scan(&r.text, r.channel());
        let score = oof.get(i).copied().unwrap_or(v.score);
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"id": r.id, "source": r.source, "label": r.label,
                "oof": i < oof.len(), "score": score, "pattern": v.pattern_score,
                "rules": v.rules, "text": r.text.chars().take(300).collect::<String>()})
        );
    }
    std::fs::write(path, out).expect("writing the dump");
}

fn targets(rows: &[&Row]) -> Vec<f32> {
    rows.iter().map(|r| f32::from(r.label)).collect()
}

fn train_artifact(train: &[Row], md: &mut String) -> (BinaryArtifact, Vec<f32>) {
    let cfg = features();
    let f = featurizer();
    let rows: Vec<&Row> = train.iter().collect();
    let xs0: Vec<Features> = rows.iter().map(|r| f.features(&r.text)).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.malicious()).collect();
    let dim = layout_dim();
    let tier = PatternTier::new().expect("built-in rules compile");
    let pat: Vec<f32> = rows
        .iter()
        .map(|r| tier.scan(&r.text, r.channel()).score)
        .collect();
    // Thresholds and the grid are judged on the injection file's train rows: not the documents
    // built around payloads (easier, they would move the thresholds) and not the extra benign
    // prompts (easy too: with them the false-positive cap would be loose for the benign
    // sources that look like attacks).
    let orig: Vec<usize> = (0..rows.len())
        .filter(|&i| !rows[i].source.starts_with("doc_") && !rows[i].source.starts_with("extra_"))
        .collect();
    let sub = |v: &[f32]| -> Vec<f32> { orig.iter().map(|&i| v[i]).collect() };
    let lab_o: Vec<bool> = orig.iter().map(|&i| labels[i]).collect();
    let noisy = |oof: &[f32]| -> Vec<f32> {
        pat.iter()
            .zip(oof)
            .map(|(p, c)| 1.0 - (1.0 - p) * (1.0 - c))
            .collect()
    };

    // Grid: copies of each malicious row (a class weight) x L2. Each point is judged by the
    // combined scorer's best out-of-fold F1 over the distinct train rows (copies share a
    // fold, so they share a score), the scorer that ships.
    let dups: &[usize] = if CLASS_WEIGHTS.load(std::sync::atomic::Ordering::Relaxed) {
        &[1, 2, 3]
    } else {
        &[1]
    };
    let mut best: Option<(f64, usize, TrainConfig, Vec<f32>)> = None;
    let _ = writeln!(
        md,
        "### Training choices (5-fold out-of-fold on the 70% train part)\n"
    );
    let _ = writeln!(
        md,
        "| malicious copies | L2 | OOF ROC-AUC classifier | OOF best F1 classifier | OOF recall combined at ≤ {:.0}% benign flagged |\n|---|---|---|---|---|",
        OOF_FPR_CAP * 100.0
    );
    let ys0: Vec<f32> = rows.iter().map(|r| f32::from(r.label)).collect();
    let ids0: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let copies =
        |dup: usize| -> Vec<usize> { labels.iter().map(|&l| if l { dup } else { 1 }).collect() };
    for &dup in dups {
        for l2 in L2_GRID {
            let tc = TrainConfig {
                l2,
                ..TrainConfig::default()
            };
            let oof = out_of_fold_weighted(&ids0, &xs0, &ys0, &copies(dup), dim, &tc);
            // Judged on the rows of the data sets (the documents built around payloads
            // are easier and would move the thresholds).
            let a = auc(&sub(&oof), &lab_o);
            let (_, f1) = best_f1_threshold(&sub(&oof), &lab_o);
            let (_, fc) = capped_fpr_threshold(&sub(&noisy(&oof)), &lab_o, OOF_FPR_CAP);
            let _ = writeln!(md, "| {dup} | {l2:e} | {a:.4} | {f1:.4} | {fc:.4} |");
            if best.as_ref().is_none_or(|b| fc > b.0) {
                best = Some((fc, dup, tc, oof));
            }
        }
    }
    let (_, dup, tc, oof) = best.expect("a grid point");
    let comb = noisy(&oof);
    let (t_clf, f_clf) = capped_fpr_threshold(&sub(&oof), &lab_o, OOF_FPR_CAP);
    let (t_pat, f_pat) = best_f1_threshold(&sub(&pat), &lab_o);
    let (t_comb, f_comb) = capped_fpr_threshold(&sub(&comb), &lab_o, OOF_FPR_CAP);
    let _ = writeln!(
        md,
        "\nChosen: {dup} cop{} of each malicious row, L2 {:e}; thresholds on the data sets' train rows (not the \
         documents built around payloads): patterns by best out-of-fold F1 {t_pat:.3} (F1 {f_pat:.3}); classifier \
         {t_clf:.3} and combined {t_comb:.3}, each the lowest whose out-of-fold scores flag at most {:.0}% of the \
         injection file's benign train rows (out-of-fold recall {f_clf:.3} and {f_comb:.3}).\n",
        if dup == 1 { "y" } else { "ies" },
        tc.l2,
        OOF_FPR_CAP * 100.0
    );
    let idx = repeated(&copies(dup));
    let xs: Vec<Features> = idx.iter().map(|&i| xs0[i].clone()).collect();
    let ys: Vec<f32> = idx.iter().map(|&i| ys0[i]).collect();
    let model = train_logistic(&xs, &ys, dim, &tc);
    let mut sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let restricted: Vec<&str> = sources.iter().copied().filter(|s| !permissive(s)).collect();
    let cc_by = sources.iter().any(|s| s.starts_with("extra_"));
    let (note, licence) = if restricted.is_empty() && cc_by {
        (
            "All sources are Apache-2.0, MIT or CC-BY (extra benign prompts: AlpacaEval and \
             RouteLLM Apache-2.0, HaluEval general questions MIT, CLINC150 CC-BY-3.0, XSTest \
             CC-BY-4.0; retrieved documents: HaluEval QA contexts, MIT, alone as benign tool \
             results and with each BIPIA train payload placed inside three of them)."
                .to_owned(),
            "permissive sources only: Apache-2.0, MIT, CC-BY-3.0, CC-BY-4.0".to_owned(),
        )
    } else if restricted.is_empty() {
        (
            "All sources are Apache-2.0 or MIT.".to_owned(),
            "Apache-2.0 and MIT sources only".to_owned(),
        )
    } else {
        (
            format!(
                "Includes {}, which are not permissively licensed (Tensor Trust: no licence, \
                 research only; safe-guard-prompt-injection: licence unstated): an evaluation \
                 artifact, not for release.",
                restricted.join(" and ")
            ),
            "evaluation only: derived in part from research-only or unlicensed sources".to_owned(),
        )
    };
    let trained_on = TrainingData {
        description: format!(
            "prompt_injection.dev.jsonl (Switchyard's development split), the 70% train part of a \
             split by a mixed hash of id (FNV-1a + murmur3 finaliser) within each source and \
             label; sources: {}. Label 1 = injection or jailbreak. {note}",
            sources.join(", ")
        ),
        rows: rows.len(),
        licence,
    };
    for prune in [0.0f32, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2] {
        let mut a = BinaryArtifact::new(
            "prompt_injection",
            trained_on.clone(),
            cfg.clone(),
            tc.clone(),
            &model,
            t_clf,
            prune,
        );
        a.params.insert(COMBINED_THRESHOLD.to_owned(), t_comb);
        a.params.insert(PATTERN_THRESHOLD.to_owned(), t_pat);

        a.dense = DENSE.get().map(|(name, dim, _)| DenseSpec {
            embedder: name.clone(),
            dim: *dim,
        });
        if dup > 1 {
            // Informational: the class weight used (the detector does not read it).
            a.params.insert(MALICIOUS_COPIES.to_owned(), dup as f32);
        }
        let bytes = serde_json::to_string(&a)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if bytes <= MAX_ARTIFACT_BYTES {
            let _ = writeln!(
                md,
                "Artifact: weights with |w| < {prune} pruned to fit {MAX_ARTIFACT_BYTES} bytes; \
                 {} of {} trained weights non-zero before pruning.\n",
                model.non_zero(),
                dim
            );
            return (a, comb);
        }
    }
    panic!("no pruning level fits the artifact budget");
}

/// Scores of the three scorers for a set of rows.
struct Scored {
    pattern: Vec<f32>,
    classifier: Vec<f32>,
    combined: Vec<f32>,
}

fn score_rows(d: &Detector, rows: &[&Row]) -> Scored {
    let mut s = Scored {
        pattern: Vec::new(),
        classifier: Vec::new(),
        combined: Vec::new(),
    };
    for r in rows {
        let v = d.scan(&r.text, r.channel());
        s.pattern.push(v.pattern_score);
        s.classifier.push(v.classifier_score.unwrap_or(0.0));
        s.combined.push(v.score);
    }
    s
}

fn evaluate(
    d: &Detector,
    a: &BinaryArtifact,
    size: u64,
    train: &[Row],
    test: &[Row],
    quick: bool,
    md: &mut String,
) {
    let t_comb = d.threshold();
    let t_clf = a.threshold;
    let t_pat = a.params.get(PATTERN_THRESHOLD).copied().unwrap_or(0.5);
    let rows: Vec<&Row> = test.iter().collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.malicious()).collect();
    let s = score_rows(d, &rows);
    let pred = |scores: &[f32], t: f32| -> Vec<bool> { scores.iter().map(|&x| x >= t).collect() };
    let p_pat = pred(&s.pattern, t_pat);
    let p_clf = pred(&s.classifier, t_clf);
    let p_comb = pred(&s.combined, t_comb);

    let _ = writeln!(
        md,
        "Artifact: {} KB, {} non-zero weights of {}, trained on {} rows; \
         thresholds patterns {t_pat:.3}, classifier {t_clf:.3}, combined {t_comb:.3}.\n",
        size / 1024,
        a.classifier().map(|c| c.model().non_zero()).unwrap_or(0),
        a.features.buckets(),
        a.trained_on.rows
    );

    // 1. Tiers compared on the whole held-out part.
    let hard: Vec<bool> = rows.iter().map(|r| r.hard_negative).collect();
    // Benign rows that are not hard negatives, and the hard negatives.
    let easy: Vec<usize> = (0..rows.len())
        .filter(|&i| !labels[i] && !hard[i])
        .collect();
    let hn: Vec<usize> = (0..rows.len()).filter(|&i| hard[i]).collect();
    let _ = writeln!(
        md,
        "### Held-out 30% ({} rows, {} malicious): the tiers compared\n",
        rows.len(),
        labels.iter().filter(|l| **l).count()
    );
    let _ = writeln!(
        md,
        "| scorer | precision | recall | F1 | ROC-AUC | FPR on benign (not hard) | FPR on hard negatives |\n|---|---|---|---|---|---|---|"
    );
    for (name, scores, p) in [
        ("patterns alone", &s.pattern, &p_pat),
        ("classifier alone", &s.classifier, &p_clf),
        ("combined", &s.combined, &p_comb),
    ] {
        let c = Counts::of(p, &labels);
        let fpr = |ix: &[usize]| ratio(ix.iter().filter(|&&i| p[i]).count(), ix.len());
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            f3(c.precision()),
            f3(c.recall()),
            f3(c.f1()),
            f3(auc(scores, &labels)),
            f3(fpr(&easy)),
            f3(fpr(&hn)),
        );
    }

    // 1b. The combined score at other thresholds (a gateway may set its own).
    let _ = writeln!(
        md,
        "\n### Operating points (held-out, combined score)\n\n\
         | threshold | recall | FPR on benign (not hard) | FPR on hard negatives |\n|---|---|---|---|"
    );
    for t in [t_comb, 0.5, 0.8, 0.9] {
        let p = pred(&s.combined, t);
        let c = Counts::of(&p, &labels);
        let fpr = |ix: &[usize]| ratio(ix.iter().filter(|&&i| p[i]).count(), ix.len());
        let _ = writeln!(
            md,
            "| {t:.3}{} | {} | {} | {} |",
            if t == t_comb { " (artifact)" } else { "" },
            f3(c.recall()),
            f3(fpr(&easy)),
            f3(fpr(&hn))
        );
    }

    // 2. Per source.
    let _ = writeln!(
        md,
        "\n### Per source (held-out; combined score unless named)\n"
    );
    let _ = writeln!(
        md,
        "| source | rows | malicious | precision | recall | F1 | ROC-AUC | FPR | recall patterns / classifier | FPR patterns / classifier |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    for src in &sources {
        let ix: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].source == *src)
            .collect();
        let l: Vec<bool> = ix.iter().map(|&i| labels[i]).collect();
        let pick = |p: &[bool]| -> Counts {
            Counts::of(&ix.iter().map(|&i| p[i]).collect::<Vec<_>>(), &l)
        };
        let c = pick(&p_comb);
        let cp = pick(&p_pat);
        let cc = pick(&p_clf);
        let sc: Vec<f32> = ix.iter().map(|&i| s.combined[i]).collect();
        let _ = writeln!(
            md,
            "| {src} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
            ix.len(),
            l.iter().filter(|x| **x).count(),
            f3(c.precision()),
            f3(c.recall()),
            f3(c.f1()),
            f3(auc(&sc, &l)),
            f3(c.fpr()),
            f3(cp.recall()),
            f3(cc.recall()),
            f3(cp.fpr()),
            f3(cc.fpr()),
        );
    }

    // 3. Hard negatives apart.
    let _ = writeln!(
        md,
        "\n### Hard negatives (benign texts full of trigger words), held-out\n"
    );
    let _ = writeln!(
        md,
        "| source | rows | FPR combined | FPR patterns | FPR classifier | accuracy (1 - FPR) combined |\n|---|---|---|---|---|---|"
    );
    let mut hn_sources: Vec<&str> = rows
        .iter()
        .filter(|r| r.hard_negative)
        .map(|r| r.source.as_str())
        .collect();
    hn_sources.sort_unstable();
    hn_sources.dedup();
    let mut all_hn = Vec::new();
    for src in hn_sources.iter().map(|s| Some(*s)).chain([None]) {
        let ix: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].hard_negative && src.is_none_or(|s| rows[i].source == s))
            .collect();
        if src.is_some() {
            all_hn.extend(ix.iter().copied());
        }
        let fpr = |p: &[bool]| ratio(ix.iter().filter(|&&i| p[i]).count(), ix.len());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            src.unwrap_or("**all hard negatives**"),
            ix.len(),
            f3(fpr(&p_comb)),
            f3(fpr(&p_pat)),
            f3(fpr(&p_clf)),
            f3(1.0 - fpr(&p_comb)),
        );
    }
    let ni: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].source.starts_with("notinject"))
        .collect();
    let ni_acc = 1.0 - ratio(ni.iter().filter(|&&i| p_comb[i]).count(), ni.len());
    let _ = writeln!(
        md,
        "\nNotInject (all three subsets, {} held-out rows): over-defense accuracy {} (InjecGuard reports 87%; goal at least 87%).",
        ni.len(),
        f3(ni_acc)
    );

    // 4. BIPIA apart: as they arrive (indirect), as if typed by a user, and buried in a document.
    let _ = writeln!(md, "\n### BIPIA indirect payloads, held-out\n");
    let _ = writeln!(
        md,
        "| set | rows | recall as tool result (indirect) | recall as user message | recall buried mid-document (indirect) | classifier alone (indirect) | patterns alone (indirect) |\n|---|---|---|---|---|---|---|"
    );
    // Host documents: the held-out benign texts of at least 1,000 bytes, not hard negatives.
    let hosts: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| !r.malicious() && !r.hard_negative && r.text.len() >= 1000)
        .collect();
    for src in ["bipia_code", "bipia_text"] {
        let b: Vec<&Row> = rows.iter().copied().filter(|r| r.source == src).collect();
        if b.is_empty() {
            continue;
        }
        let n = b.len() as f64;
        let rate =
            |ch: Channel| b.iter().filter(|r| d.scan(&r.text, ch).injection).count() as f64 / n;
        let buried = b
            .iter()
            .enumerate()
            .filter(|(k, r)| {
                let host = &hosts[k % hosts.len().max(1)].text;
                let mut mid = host.len() / 2;
                while !host.is_char_boundary(mid) {
                    mid += 1;
                }
                let doc = format!("{}\n{}\n{}", &host[..mid], r.text, &host[mid..]);
                d.scan(&doc, Channel::Indirect).injection
            })
            .count() as f64
            / n;
        let clf = b
            .iter()
            .filter(|r| {
                d.classifier_score(&r.text, Channel::Indirect)
                    .unwrap_or(0.0)
                    >= t_clf
            })
            .count() as f64
            / n;
        let pat = b
            .iter()
            .filter(|r| d.scan_patterns(&r.text, Channel::Indirect).score >= t_pat)
            .count() as f64
            / n;
        let _ = writeln!(
            md,
            "| {src} | {} | {} | {} | {} | {} | {} |",
            b.len(),
            f3(rate(Channel::Indirect)),
            f3(rate(Channel::User)),
            f3(buried),
            f3(clf),
            f3(pat)
        );
    }
    let benign: Vec<&Row> = rows.iter().copied().filter(|r| !r.malicious()).collect();
    let docs_fp = benign
        .iter()
        .filter(|r| d.scan(&r.text, Channel::Indirect).injection)
        .count();
    let hosts_fp = hosts
        .iter()
        .filter(|r| d.scan(&r.text, Channel::Indirect).injection)
        .count();
    let _ = writeln!(
        md,
        "\nThe other side of the indirect channel: every held-out benign row scanned as if it were a tool result \
         flags {} of {} ({}); the {} long benign host documents alone flag {} ({}).",
        docs_fp,
        benign.len(),
        f3(ratio(docs_fp, benign.len())),
        hosts.len(),
        hosts_fp,
        f3(ratio(hosts_fp, hosts.len()))
    );

    // 5. Which rules fire where.
    rule_table(d, train, test, md);

    if quick {
        return;
    }
    // 6. Source-style leakage: drop one single-label source from training entirely.
    leave_one_source_out(a, train, test, md);

    // 7. Latency.
    latency_table(d, &rows, md);
}

fn rule_table(d: &Detector, train: &[Row], test: &[Row], md: &mut String) {
    let _ = writeln!(
        md,
        "\n### Pattern rules: how often each fires (each row on its own channel)\n\n\
         Rows where the rule fired / rows. A rule that fires on benign rows costs false positives \
         on its own only when its weight reaches the combined threshold.\n"
    );
    let _ = writeln!(
        md,
        "| rule | train malicious | train benign | held-out malicious | held-out benign |\n|---|---|---|---|---|"
    );
    let fired = |rows: &[Row]| -> Vec<(bool, Vec<&'static str>)> {
        rows.iter()
            .map(|r| (r.malicious(), d.scan_patterns(&r.text, r.channel()).rules))
            .collect()
    };
    let (tr, te) = (fired(train), fired(test));
    let count = |set: &[(bool, Vec<&'static str>)], rule: &str, malicious: bool| {
        let n = set.iter().filter(|(m, _)| *m == malicious).count();
        let k = set
            .iter()
            .filter(|(m, rules)| *m == malicious && rules.contains(&rule))
            .count();
        format!("{k} / {n}")
    };
    for rule in d.patterns().rule_names() {
        let _ = writeln!(
            md,
            "| `{rule}` | {} | {} | {} | {} |",
            count(&tr, rule, true),
            count(&tr, rule, false),
            count(&te, rule, true),
            count(&te, rule, false)
        );
    }
}

fn leave_one_source_out(a: &BinaryArtifact, train: &[Row], test: &[Row], md: &mut String) {
    let _ = writeln!(
        md,
        "\n### Source-style leakage: each single-label source left out of training\n\n\
         The classifier is retrained (same settings) on the train part without the named source, \
         then scored on that source's held-out rows at the shipped classifier threshold. \
         A big drop from the in-training figure means the model had learned the source's style.\n"
    );
    let _ = writeln!(
        md,
        "| source | label | held-out rows | classifier flags, source in training | source left out |\n|---|---|---|---|---|"
    );
    let f = featurizer();
    let full = Detector::from_artifact_with(a, DENSE.get().map(|d| d.2.clone()))
        .expect("a valid artifact");
    let full = full.classifier().expect("a classifier").clone();
    let mut by_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in train {
        let e = by_source.entry(r.source.as_str()).or_default();
        if r.malicious() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let dup = a
        .params
        .get(MALICIOUS_COPIES)
        .map_or(1, |&c| c as usize)
        .max(1);
    for (src, (m, b)) in by_source {
        // Extra benign sets and documents are scored apart (their held-out part is not in `test`).
        if (m > 0 && b > 0) || src.starts_with("extra_") || src.starts_with("doc_") {
            continue;
        }
        let keep: Vec<&Row> = train
            .iter()
            .filter(|r| r.source != src)
            .flat_map(|r| std::iter::repeat_n(r, if r.malicious() { dup } else { 1 }))
            .collect();
        let xs: Vec<Features> = keep.iter().map(|r| f.features(&r.text)).collect();
        let model = train_logistic(&xs, &targets(&keep), layout_dim(), &a.train);
        let held: Vec<&Row> = test.iter().filter(|r| r.source == src).collect();
        let with = held
            .iter()
            .filter(|r| full.is_positive(full.score(&r.text)))
            .count();
        let without = held
            .iter()
            .filter(|r| model.predict(&f.features(&r.text)) >= a.threshold)
            .count();
        let _ = writeln!(
            md,
            "| {src} | {} | {} | {} | {} |",
            if m > 0 { "malicious" } else { "benign" },
            held.len(),
            f3(ratio(with, held.len())),
            f3(ratio(without, held.len()))
        );
    }
}

fn latency_table(d: &Detector, rows: &[&Row], md: &mut String) {
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.text.len() <= 256)
        .map(|r| r.text.clone())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let long = four_kb(&texts, 300);
    let _ = writeln!(
        md,
        "\n### Latency per text (release build, one thread, 2-core machine shared with other builds)\n"
    );
    let _ = writeln!(
        md,
        "Each text is scanned 5 times. \"all runs\" counts every run (scheduler noise included: \
         the machine ran other builds); \"best of 5\" takes each text's fastest run, an estimate \
         of the uncontended cost.\n"
    );
    let _ = writeln!(
        md,
        "| input | texts | scorer | p50 µs (all runs) | p99 µs (all runs) | p50 µs (best of 5) | p99 µs (best of 5) |\n|---|---|---|---|---|---|---|"
    );
    for (name, texts) in [("short (≤ 256 B)", &short), ("4 KB", &long)] {
        for scorer in ["patterns", "classifier", "combined"] {
            let [a50, a99, b50, b99] = latency(texts, |t| match scorer {
                "patterns" => {
                    std::hint::black_box(d.scan_patterns(t, Channel::User));
                }
                "classifier" => {
                    std::hint::black_box(d.classifier_score(t, Channel::User));
                }
                _ => {
                    std::hint::black_box(d.scan(t, Channel::User));
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
