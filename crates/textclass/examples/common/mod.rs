//! What the evaluation examples share: the reproducible split, out-of-fold training,
//! threshold choice, and the metrics. One copy, so every report is computed the same way.

use std::collections::BTreeMap;

use switchyard_textclass::{id_hash, train_logistic, Features, TrainConfig};

pub const TRAIN_SHARE: f64 = 0.7;
pub const FOLDS: u64 = 5;

/// Every row of a JSONL file; stops the evaluation loudly on a missing file or a bad row.
pub fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a row of {}: {e}", path.display()))
        })
        .collect()
}

/// Per source and label, rows ordered by the mixed hash of their id ([`id_hash`]); the first
/// 70% train. No seed, stable when the file is reordered, and each source keeps its label mix
/// in both parts.
pub fn split<R>(
    rows: Vec<R>,
    source: impl Fn(&R) -> &str,
    label: impl Fn(&R) -> u8,
    id: impl Fn(&R) -> &str,
) -> (Vec<R>, Vec<R>) {
    let mut by_source: BTreeMap<(String, u8), Vec<R>> = BTreeMap::new();
    for r in rows {
        by_source
            .entry((source(&r).to_owned(), label(&r)))
            .or_default()
            .push(r);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut group) in by_source {
        group.sort_by_key(|r| (id_hash(id(r)), id(r).to_owned()));
        let cut = (group.len() as f64 * TRAIN_SHARE).round() as usize;
        let rest = group.split_off(cut.min(group.len()));
        train.extend(group);
        test.extend(rest);
    }
    (train, test)
}

/// The fold of a row inside the train part. A different mixing of the hash than the split,
/// so folds are not aligned with it.
pub fn fold_of(id: &str) -> usize {
    (id_hash(id).rotate_left(17) % FOLDS) as usize
}

/// Out-of-fold probabilities: each row scored by a model trained on the other folds.
pub fn out_of_fold(
    ids: &[&str],
    xs: &[Features],
    ys: &[f32],
    dim: usize,
    cfg: &TrainConfig,
) -> Vec<f32> {
    let mut out = vec![0.0; ids.len()];
    for k in 0..FOLDS as usize {
        let fit: Vec<usize> = (0..ids.len()).filter(|&i| fold_of(ids[i]) != k).collect();
        let fx: Vec<Features> = fit.iter().map(|&i| xs[i].clone()).collect();
        let fy: Vec<f32> = fit.iter().map(|&i| ys[i]).collect();
        let m = train_logistic(&fx, &fy, dim, cfg);
        for i in (0..ids.len()).filter(|&i| fold_of(ids[i]) == k) {
            out[i] = m.predict(&xs[i]);
        }
    }
    out
}

/// Row indices with row `i` repeated `copies[i]` times: a class or source weight by copies.
pub fn repeated(copies: &[usize]) -> Vec<usize> {
    copies
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| std::iter::repeat_n(i, c))
        .collect()
}

/// [`out_of_fold`] with row `i` counted `copies[i]` times in training. The copies share the
/// row's id, hence its fold, so each distinct row gets one score.
pub fn out_of_fold_weighted(
    ids: &[&str],
    xs: &[Features],
    ys: &[f32],
    copies: &[usize],
    dim: usize,
    cfg: &TrainConfig,
) -> Vec<f32> {
    let idx = repeated(copies);
    let rx: Vec<Features> = idx.iter().map(|&i| xs[i].clone()).collect();
    let ry: Vec<f32> = idx.iter().map(|&i| ys[i]).collect();
    let rid: Vec<&str> = idx.iter().map(|&i| ids[i]).collect();
    let scores = out_of_fold(&rid, &rx, &ry, dim, cfg);
    let mut out = vec![0.0f32; ids.len()];
    for (k, &i) in idx.iter().enumerate() {
        out[i] = scores[k];
    }
    out
}

/// The threshold (one of the scores) with the best F1, ties to the higher threshold.
pub fn best_f1_threshold(scores: &[f32], labels: &[bool]) -> (f32, f64) {
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

/// The lowest threshold (one of the scores: the most recall) at which at most `cap` of the
/// rows marked `capped` score at or above it (the benign rows whose false positives a goal
/// bounds); 1.0 when even the highest score breaks the cap.
pub fn lowest_threshold_within(scores: &[f32], capped: &[bool], cap: f64) -> f32 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n = capped.iter().filter(|c| **c).count().max(1) as f64;
    let (mut flagged, mut best, mut k) = (0.0, 1.0f32, 0);
    while k < idx.len() {
        let t = scores[idx[k]];
        // Every row with this score is flagged together.
        while k < idx.len() && scores[idx[k]] == t {
            flagged += f64::from(u8::from(capped[idx[k]]));
            k += 1;
        }
        if flagged / n > cap {
            break;
        }
        best = t;
    }
    best
}

/// ROC-AUC by ranks (Mann-Whitney U, ties counted half). NaN with one class only.
pub fn auc(scores: &[f32], labels: &[bool]) -> f64 {
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
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl Counts {
    pub fn of(pred: &[bool], labels: &[bool]) -> Self {
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
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

pub fn f3(x: f64) -> String {
    if x.is_nan() {
        "–".to_owned()
    } else {
        format!("{x:.3}")
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

/// Latency of `f` over `texts`: every text run 5 times; returns (p50, p99) over all runs and
/// (p50, p99) over each text's fastest run (an estimate of the cost without scheduler noise).
pub fn latency(texts: &[String], mut f: impl FnMut(&str)) -> [f64; 4] {
    let mut all = Vec::new();
    let mut best = Vec::new();
    for t in texts {
        let mut fastest = f64::INFINITY;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            f(t);
            let us = start.elapsed().as_secs_f64() * 1e6;
            all.push(us);
            fastest = fastest.min(us);
        }
        best.push(fastest);
    }
    all.sort_by(f64::total_cmp);
    best.sort_by(f64::total_cmp);
    [
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&best, 0.5),
        percentile(&best, 0.99),
    ]
}

/// Texts of about 4 KB: the given texts concatenated and cut at 4,096 bytes.
pub fn four_kb(texts: &[&str], limit: usize) -> Vec<String> {
    let mut long = Vec::new();
    let mut buf = String::new();
    for t in texts.iter().cycle().take(texts.len() * 4) {
        buf.push_str(t);
        buf.push('\n');
        if buf.len() >= 4096 {
            long.push(switchyard_textclass::truncate(&buf, 4096).to_owned());
            buf.clear();
            if long.len() >= limit {
                break;
            }
        }
    }
    long
}
