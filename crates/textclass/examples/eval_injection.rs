//! Train and evaluate the prompt-injection detector on the development split of
//! `../shared/data/prompt_injection/`.
//!
//! ```text
//! cargo run --release -p switchyard-textclass --example eval_injection            # evaluate the shipped artifact
//! cargo run --release -p switchyard-textclass --example eval_injection -- --train # retrain, write it, evaluate
//! ```
//!
//! Options: `--data FILE` (the JSONL), `--artifact FILE` (default
//! `eval/artifacts/injection.v1.json`). Prints the Markdown tables of `eval/injection.md`.
//!
//! How the numbers are kept honest:
//! 1. Rows are split 70/30 within each source by the FNV-1a hash of `id` (no seed, stable
//!    under reordering). The 30% is only ever scored.
//! 2. The L2 strength and all three thresholds (patterns alone, classifier alone, combined)
//!    are chosen on 5-fold out-of-fold scores inside the 70%, by best F1.
//! 3. The reported classifier is the artifact as saved (pruned) and loaded back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "an evaluation tool: a bad file should stop it loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use switchyard_textclass::injection::{
    Channel, Detector, PatternTier, COMBINED_THRESHOLD, PATTERN_THRESHOLD,
};
use switchyard_textclass::{
    fnv1a_str, train_logistic, BinaryArtifact, Features, NgramConfig, NgramFeaturizer, TrainConfig,
    TrainingData,
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
        if self.source.starts_with("bipia") {
            Channel::Indirect
        } else {
            Channel::User
        }
    }
}

const TRAIN_SHARE: f64 = 0.7;
const FOLDS: u64 = 5;
const L2_GRID: [f32; 3] = [1e-5, 1e-4, 1e-3];
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
    let mut data =
        manifest.join("../../../shared/data/prompt_injection/prompt_injection.dev.jsonl");
    let mut artifact = manifest.join("../../eval/artifacts/injection.v1.json");
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
    let rows: Vec<Row> = std::fs::read_to_string(&data)
        .unwrap_or_else(|e| panic!("reading {}: {e}", data.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSONL row"))
        .collect();
    let (train, test) = split(rows);
    eprintln!("{} train rows, {} held-out rows", train.len(), test.len());

    let mut md = String::new();
    if train_mode {
        let a = train_artifact(&train, &mut md);
        a.save(&artifact).expect("writing the artifact");
        eprintln!("wrote {}", artifact.display());
    }
    let detector = Detector::load(&artifact).expect("loading the artifact");
    let loaded = BinaryArtifact::load(&artifact).expect("loading the artifact");
    let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
    evaluate(&detector, &loaded, size, &train, &test, &mut md);
    print!("{md}");
}

/// Per source, rows ordered by the hash of their id; the first 70% train.
fn split(rows: Vec<Row>) -> (Vec<Row>, Vec<Row>) {
    let mut by_source: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_source.entry(r.source.clone()).or_default().push(r);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut group) in by_source {
        group.sort_by_key(|r| (fnv1a_str(&r.id), r.id.clone()));
        let cut = (group.len() as f64 * TRAIN_SHARE).round() as usize;
        let rest = group.split_off(cut.min(group.len()));
        train.extend(group);
        test.extend(rest);
    }
    (train, test)
}

fn fold_of(id: &str) -> usize {
    // A different mixing of the hash than the split, so folds are not aligned with it.
    (fnv1a_str(id).rotate_left(17) % FOLDS) as usize
}

fn targets(rows: &[&Row]) -> Vec<f32> {
    rows.iter().map(|r| f32::from(r.label)).collect()
}

fn out_of_fold(rows: &[&Row], xs: &[Features], dim: usize, cfg: &TrainConfig) -> Vec<f32> {
    let ys = targets(rows);
    let mut out = vec![0.0; rows.len()];
    for k in 0..FOLDS as usize {
        let fit: Vec<usize> = (0..rows.len())
            .filter(|&i| fold_of(&rows[i].id) != k)
            .collect();
        let fx: Vec<Features> = fit.iter().map(|&i| xs[i].clone()).collect();
        let fy: Vec<f32> = fit.iter().map(|&i| ys[i]).collect();
        let m = train_logistic(&fx, &fy, dim, cfg);
        for i in (0..rows.len()).filter(|&i| fold_of(&rows[i].id) == k) {
            out[i] = m.predict(&xs[i]);
        }
    }
    out
}

fn train_artifact(train: &[Row], md: &mut String) -> BinaryArtifact {
    let cfg = features();
    let f = NgramFeaturizer::new(cfg.clone());
    let rows: Vec<&Row> = train.iter().collect();
    let xs: Vec<Features> = rows.iter().map(|r| f.featurize(&r.text)).collect();
    let ys = targets(&rows);
    let labels: Vec<bool> = rows.iter().map(|r| r.malicious()).collect();
    let dim = cfg.buckets();

    let mut best: Option<(f64, TrainConfig, Vec<f32>)> = None;
    let _ = writeln!(
        md,
        "### Training choices (5-fold out-of-fold on the 70% train part)\n"
    );
    let _ = writeln!(md, "| L2 | OOF ROC-AUC | OOF best F1 |\n|---|---|---|");
    for l2 in L2_GRID {
        let tc = TrainConfig {
            l2,
            ..TrainConfig::default()
        };
        let oof = out_of_fold(&rows, &xs, dim, &tc);
        let a = auc(&oof, &labels);
        let (_, f1) = best_f1_threshold(&oof, &labels);
        let _ = writeln!(md, "| {l2:e} | {a:.4} | {f1:.4} |");
        if best.as_ref().is_none_or(|b| a > b.0) {
            best = Some((a, tc, oof));
        }
    }
    let (_, tc, oof) = best.expect("a grid point");

    let tier = PatternTier::new().expect("built-in rules compile");
    let pat: Vec<f32> = rows
        .iter()
        .map(|r| tier.scan(&r.text, r.channel()).score)
        .collect();
    let comb: Vec<f32> = pat
        .iter()
        .zip(&oof)
        .map(|(p, c)| 1.0 - (1.0 - p) * (1.0 - c))
        .collect();
    let (t_clf, f_clf) = best_f1_threshold(&oof, &labels);
    let (t_pat, f_pat) = best_f1_threshold(&pat, &labels);
    let (t_comb, f_comb) = best_f1_threshold(&comb, &labels);
    let _ = writeln!(
        md,
        "\nChosen: L2 {:e}; thresholds by best out-of-fold F1: patterns {t_pat:.3} (F1 {f_pat:.3}), \
         classifier {t_clf:.3} (F1 {f_clf:.3}), combined {t_comb:.3} (F1 {f_comb:.3}).\n",
        tc.l2
    );

    let model = train_logistic(&xs, &ys, dim, &tc);
    let mut sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    sources.dedup();
    let trained_on = TrainingData {
        description: format!(
            "prompt_injection.dev.jsonl (Switchyard's development split), the 70% train part of a \
             split by FNV-1a hash of id within each source; sources: {}. Label 1 = injection or \
             jailbreak. Includes Tensor Trust attacks (no licence, research only) and \
             safe-guard-prompt-injection (licence unstated): an evaluation artifact, not for release.",
            sources.join(", ")
        ),
        rows: rows.len(),
        licence: "evaluation only: derived from Apache-2.0, MIT and research-only sources".to_owned(),
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
            return a;
        }
    }
    panic!("no pruning level fits the artifact budget");
}

/// The threshold (one of the scores) with the best F1, ties to the higher threshold.
fn best_f1_threshold(scores: &[f32], labels: &[bool]) -> (f32, f64) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut best = (1.0f32, 0.0f64);
    for (n, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        // Only cut between distinct scores.
        if n + 1 < idx.len() && scores[idx[n + 1]] == scores[i] {
            continue;
        }
        let f1 = 2.0 * tp / (tp + fp + pos);
        if f1 > best.1 {
            best = (scores[i], f1);
        }
    }
    best
}

/// ROC-AUC by ranks (Mann-Whitney U, ties counted half). NaN with one class only.
fn auc(scores: &[f32], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Counts {
    fn of(pred: &[bool], labels: &[bool]) -> Self {
        let mut c = Self::default();
        for (&p, &l) in pred.iter().zip(labels) {
            match (p, l) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn f3(x: f64) -> String {
    if x.is_nan() {
        "–".to_owned()
    } else {
        format!("{x:.3}")
    }
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
        "Artifact `injection.v1.json`: {} KB, {} non-zero weights of {}, trained on {} rows; \
         thresholds patterns {t_pat:.3}, classifier {t_clf:.3}, combined {t_comb:.3}.\n",
        size / 1024,
        a.classifier().map(|c| c.model().non_zero()).unwrap_or(0),
        a.features.buckets(),
        a.trained_on.rows
    );

    // 1. Tiers compared on the whole held-out part.
    let hard: Vec<bool> = rows.iter().map(|r| r.hard_negative).collect();
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
        let easy: Vec<usize> = (0..rows.len())
            .filter(|&i| !labels[i] && !hard[i])
            .collect();
        let hn: Vec<usize> = (0..rows.len()).filter(|&i| hard[i]).collect();
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

    // 5. Source-style leakage: drop one single-label source from training entirely.
    leave_one_source_out(a, train, test, md);

    // 6. Latency.
    latency(d, &rows, md);
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
    let f = NgramFeaturizer::new(a.features.clone());
    let full = a.classifier().expect("a valid artifact");
    let mut by_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in train {
        let e = by_source.entry(r.source.as_str()).or_default();
        if r.malicious() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    for (src, (m, b)) in by_source {
        if m > 0 && b > 0 {
            continue;
        }
        let keep: Vec<&Row> = train.iter().filter(|r| r.source != src).collect();
        let xs: Vec<Features> = keep.iter().map(|r| f.featurize(&r.text)).collect();
        let model = train_logistic(&xs, &targets(&keep), a.features.buckets(), &a.train);
        let held: Vec<&Row> = test.iter().filter(|r| r.source == src).collect();
        let with = held
            .iter()
            .filter(|r| full.is_positive(full.score(&r.text)))
            .count();
        let without = held
            .iter()
            .filter(|r| model.predict(&f.featurize(&r.text)) >= a.threshold)
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn latency(d: &Detector, rows: &[&Row], md: &mut String) {
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.text.len() <= 256)
        .map(|r| r.text.clone())
        .collect();
    // 4 KB inputs: held-out texts concatenated, cut at 4,096 bytes.
    let mut long = Vec::new();
    let mut buf = String::new();
    for r in rows.iter().cycle().take(rows.len() * 4) {
        buf.push_str(&r.text);
        buf.push('\n');
        if buf.len() >= 4096 {
            long.push(switchyard_textclass::truncate(&buf, 4096).to_owned());
            buf.clear();
            if long.len() >= 300 {
                break;
            }
        }
    }
    let _ = writeln!(
        md,
        "\n### Latency per text (release build, one thread, 2-core machine shared with other builds)\n"
    );
    let _ = writeln!(
        md,
        "Each text is scanned 5 times. \"all runs\" counts every run (scheduler noise included: \
         the machine ran other builds, load average about 6 on 2 cores); \"best of 5\" takes each \
         text's fastest run, an estimate of the uncontended cost.\n"
    );
    let _ = writeln!(
        md,
        "| input | texts | scorer | p50 µs (all runs) | p99 µs (all runs) | p50 µs (best of 5) | p99 µs (best of 5) |\n|---|---|---|---|---|---|---|"
    );
    for (name, texts) in [("short (≤ 256 B)", &short), ("4 KB", &long)] {
        for scorer in ["patterns", "classifier", "combined"] {
            let mut all = Vec::new();
            let mut best = Vec::new();
            for t in texts.iter() {
                let mut fastest = f64::INFINITY;
                for _ in 0..5 {
                    let start = Instant::now();
                    match scorer {
                        "patterns" => {
                            std::hint::black_box(d.scan_patterns(t, Channel::User));
                        }
                        "classifier" => {
                            std::hint::black_box(d.classifier_score(t, Channel::User));
                        }
                        _ => {
                            std::hint::black_box(d.scan(t, Channel::User));
                        }
                    }
                    let us = start.elapsed().as_secs_f64() * 1e6;
                    all.push(us);
                    fastest = fastest.min(us);
                }
                best.push(fastest);
            }
            all.sort_by(f64::total_cmp);
            best.sort_by(f64::total_cmp);
            let _ = writeln!(
                md,
                "| {name} | {} | {scorer} | {:.1} | {:.1} | {:.1} | {:.1} |",
                texts.len(),
                percentile(&all, 0.5),
                percentile(&all, 0.99),
                percentile(&best, 0.5),
                percentile(&best, 0.99)
            );
        }
    }
}
