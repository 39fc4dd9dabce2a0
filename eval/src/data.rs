//! Reading the routing data and splitting it reproducibly.
//!
//! The split is a pure function of the rows' ids: within each `source`, rows are ordered by a
//! 64-bit FNV-1a hash of `id` and the first 70% train, the rest evaluate. So the split is
//! stratified by source, needs no random seed, and never changes when rows are reordered.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: String,
    pub source: String,
    pub prompt: String,
    /// The benchmark's own category (an MMLU subject), where the file gives one.
    #[serde(default)]
    pub category: Option<String>,
    pub scores: BTreeMap<String, f64>,
    #[serde(default)]
    pub meta: serde_json::Value,
}

impl Row {
    /// Characters of a model's answer (AlpacaEval rows carry them in `meta.output_chars`).
    pub fn output_chars(&self, model: &str) -> Option<f64> {
        self.meta.get("output_chars")?.get(model)?.as_f64()
    }
}

pub fn load(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), n + 1))
        })
        .collect()
}

pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The share of each source that trains.
pub const TRAIN_SHARE: f64 = 0.7;

/// Split rows into (train, eval), stratified by source, by the hash of `id`.
pub fn split(rows: Vec<Row>) -> (Vec<Row>, Vec<Row>) {
    let mut by_source: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_source.entry(r.source.clone()).or_default().push(r);
    }
    let mut train = Vec::new();
    let mut eval = Vec::new();
    for (_, mut group) in by_source {
        group.sort_by_key(|r| (fnv1a(&r.id), r.id.clone()));
        let cut = (group.len() as f64 * TRAIN_SHARE).round() as usize;
        let rest = group.split_off(cut.min(group.len()));
        train.extend(group);
        eval.extend(rest);
    }
    (train, eval)
}

/// `k` folds of the given rows by id hash, for out-of-fold predictions inside the train split.
pub fn fold_of(id: &str, k: u64) -> usize {
    // A different mixing of the hash than the split, so folds are not aligned with it.
    (fnv1a(id).rotate_left(17) % k) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, source: &str) -> Row {
        Row {
            id: id.to_owned(),
            source: source.to_owned(),
            prompt: String::new(),
            category: None,
            scores: BTreeMap::new(),
            meta: serde_json::Value::Null,
        }
    }

    #[test]
    fn split_is_stratified_and_order_free() {
        let mut rows: Vec<Row> = (0..100).map(|i| row(&format!("a{i}"), "a")).collect();
        rows.extend((0..10).map(|i| row(&format!("b{i}"), "b")));
        let (train, eval) = split(rows.clone());
        assert_eq!(train.iter().filter(|r| r.source == "a").count(), 70);
        assert_eq!(train.iter().filter(|r| r.source == "b").count(), 7);
        assert_eq!(eval.len(), 33);
        rows.reverse();
        let (train2, _) = split(rows);
        let ids = |v: &[Row]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&train), ids(&train2));
    }
}
