//! Experiment for issue 16: how well do nearest neighbours over static embeddings estimate
//! "the weak model is enough", against per-category and prompt-length baselines, on the same
//! 70/30 split as the router's report. Prints APGR per benchmark; writes nothing.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use switchyard_embed::StaticEmbedder;
use switchyard_route::metrics;

use crate::data::{self, Row};
use crate::router::{curve_inputs, score, STRONG, WEAK};

fn weak_ok(r: &Row) -> f32 {
    f32::from(u8::from(score(r, WEAK) >= score(r, STRONG)))
}

fn apgr_per_source(rows: &[&Row], p: &[f32]) -> Vec<(String, f64)> {
    let mut sources: Vec<String> = rows.iter().map(|r| r.source.clone()).collect();
    sources.sort();
    sources.dedup();
    sources
        .into_iter()
        .map(|s| {
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].source == s).collect();
            let (w, st, need) = curve_inputs(&idx, rows, p);
            (s, metrics::apgr(&metrics::routing_curve(&w, &st, &need)))
        })
        .collect()
}

fn show(name: &str, rows: &[&Row], p: &[f32]) {
    let parts: Vec<String> = apgr_per_source(rows, p)
        .into_iter()
        .map(|(s, a)| format!("{s} {a:.3}"))
        .collect();
    println!("{name:<40} {}", parts.join("  "));
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn run(data_dir: &Path, model: &Path) -> Result<()> {
    let rows = data::load(&data_dir.join("routellm.dev.jsonl"))?;
    let (train, eval) = data::split(rows);
    let embedder = StaticEmbedder::load(model)?;
    // SWITCHYARD_KNN_MINILM=1: the full MiniLM instead (about 15-20 ms a prompt on this CPU).
    let minilm = match std::env::var("SWITCHYARD_KNN_MINILM") {
        Ok(v) if v == "1" => Some(switchyard_embed::MiniLm::load("models/all-MiniLM-L6-v2")?),
        _ => None,
    };
    let embed = |rows: &[Row]| -> Result<Vec<Vec<f32>>> {
        if let Some(m) = &minilm {
            let mut out = Vec::new();
            for chunk in rows.chunks(32) {
                let texts: Vec<&str> = chunk.iter().map(|r| r.prompt.as_str()).collect();
                for mut v in m.embed(&texts)? {
                    normalise(&mut v);
                    out.push(v);
                }
            }
            return Ok(out);
        }
        rows.iter()
            .map(|r| {
                let mut v = embedder.embed(&r.prompt)?;
                normalise(&mut v);
                Ok(v)
            })
            .collect()
    };
    let (te, ee) = (embed(&train)?, embed(&eval)?);
    let y: Vec<f32> = train.iter().map(weak_ok).collect();
    let base_rate: f32 = y.iter().sum::<f32>() / y.len() as f32;
    let eval_refs: Vec<&Row> = eval.iter().collect();

    // Baseline: the category's rate in train (known category: an upper reference).
    let mut by_cat: HashMap<String, (f32, f32)> = HashMap::new();
    for (r, &l) in train.iter().zip(&y) {
        let e = by_cat
            .entry(r.category.clone().unwrap_or_default())
            .or_default();
        e.0 += l;
        e.1 += 1.0;
    }
    let prior = 5.0;
    let cat_p: Vec<f32> = eval
        .iter()
        .map(|r| {
            let (s, n) = by_cat
                .get(&r.category.clone().unwrap_or_default())
                .copied()
                .unwrap_or_default();
            (s + prior * base_rate) / (n + prior)
        })
        .collect();
    show("per-category table (category given)", &eval_refs, &cat_p);
    // Baseline: shorter prompts are easier.
    let len_p: Vec<f32> = eval.iter().map(|r| -(r.prompt.len() as f32)).collect();
    show("prompt length (shorter -> weak)", &eval_refs, &len_p);

    // Similarities of each eval row to every train row.
    let sims: Vec<Vec<f32>> = ee
        .iter()
        .map(|q| {
            te.iter()
                .map(|t| q.iter().zip(t).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    for k in [10usize, 25, 50, 100, 200] {
        for temp in [0.0f32, 0.05, 0.1] {
            let p: Vec<f32> = sims
                .iter()
                .map(|s| {
                    let mut idx: Vec<usize> = (0..s.len()).collect();
                    idx.select_nth_unstable_by(k.min(s.len() - 1), |&a, &b| s[b].total_cmp(&s[a]));
                    let top = &idx[..k.min(s.len())];
                    let (mut num, mut den) = (prior * base_rate, prior);
                    for &i in top {
                        let w = if temp == 0.0 {
                            1.0
                        } else {
                            (s[i] / temp).exp()
                        };
                        num += w * y[i];
                        den += w;
                    }
                    num / den
                })
                .collect();
            show(&format!("kNN k={k} temp={temp}"), &eval_refs, &p);
        }
    }
    // kNN (k=50, temp 0.05) combined with prompt length, each standardised.
    let knn50: Vec<f32> = sims
        .iter()
        .map(|s| {
            let mut idx: Vec<usize> = (0..s.len()).collect();
            idx.select_nth_unstable_by(50, |&a, &b| s[b].total_cmp(&s[a]));
            let (mut num, mut den) = (prior * base_rate, prior);
            for &i in &idx[..50] {
                let w = (s[i] / 0.05).exp();
                num += w * y[i];
                den += w;
            }
            num / den
        })
        .collect();
    let z = |v: &[f32]| -> Vec<f32> {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
        v.iter().map(|x| (x - m) / sd.max(1e-6)).collect()
    };
    let log_len: Vec<f32> = eval
        .iter()
        .map(|r| -((r.prompt.len() as f32).ln()))
        .collect();
    let (zk, zl) = (z(&knn50), z(&log_len));
    for alpha in [0.25f32, 0.5, 1.0, 2.0] {
        let p: Vec<f32> = zk.iter().zip(&zl).map(|(a, b)| a + alpha * b).collect();
        show(&format!("kNN50 + {alpha} x log length"), &eval_refs, &p);
    }
    // Length weighted by how GSM8K-like the neighbourhood is (the share of the 50 nearest
    // train rows from each source), with no source given at run time.
    let gsm_share: Vec<f32> = sims
        .iter()
        .map(|s| {
            let mut idx: Vec<usize> = (0..s.len()).collect();
            idx.select_nth_unstable_by(50, |&a, &b| s[b].total_cmp(&s[a]));
            idx[..50]
                .iter()
                .filter(|&&i| train[i].source == "routellm_gsm8k")
                .count() as f32
                / 50.0
        })
        .collect();
    for alpha in [1.0f32, 2.0, 4.0] {
        let p: Vec<f32> = zk
            .iter()
            .zip(&zl)
            .zip(&gsm_share)
            .map(|((a, b), g)| a + alpha * g * b)
            .collect();
        show(
            &format!("kNN50 + {alpha} x gsm-share x log length"),
            &eval_refs,
            &p,
        );
    }
    // Neighbours' categories as a prior: the category rate of the nearest train rows.
    for k in [10usize, 50] {
        let p: Vec<f32> = sims
            .iter()
            .map(|s| {
                let mut idx: Vec<usize> = (0..s.len()).collect();
                idx.select_nth_unstable_by(k, |&a, &b| s[b].total_cmp(&s[a]));
                let top = &idx[..k];
                let rates: f32 = top
                    .iter()
                    .map(|&i| {
                        let (sum, n) = by_cat
                            .get(&train[i].category.clone().unwrap_or_default())
                            .copied()
                            .unwrap_or_default();
                        (sum + prior * base_rate) / (n + prior)
                    })
                    .sum();
                rates / k as f32
            })
            .collect();
        show(&format!("neighbours' category rates k={k}"), &eval_refs, &p);
    }
    Ok(())
}

/// The kNN + neighbourhood-weighted length score of each query against a base of labelled
/// rows: `sims[q][b]` similarities, `y[b]` labels, `gsm[b]` whether a base row is GSM8K.
pub fn stacked(
    sims: &[Vec<f32>],
    y: &[f32],
    gsm: &[bool],
    log_len: &[f32],
    (k, temp, alpha): (usize, f32, f32),
    base_rate: f32,
) -> Vec<f32> {
    let prior = 5.0;
    let mut knn = Vec::with_capacity(sims.len());
    let mut share = Vec::with_capacity(sims.len());
    for s in sims {
        let mut idx: Vec<usize> = (0..s.len()).collect();
        let k = k.min(s.len() - 1);
        idx.select_nth_unstable_by(k, |&a, &b| s[b].total_cmp(&s[a]));
        let (mut num, mut den) = (prior * base_rate, prior);
        for &i in &idx[..k] {
            let w = (s[i] / temp).exp();
            num += w * y[i];
            den += w;
        }
        knn.push(num / den);
        share.push(idx[..k].iter().filter(|&&i| gsm[i]).count() as f32 / k as f32);
    }
    let z = |v: &[f32]| -> Vec<f32> {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        let sd = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
        v.iter().map(|x| (x - m) / sd.max(1e-6)).collect()
    };
    let (zk, zl) = (z(&knn), z(log_len));
    (0..sims.len())
        .map(|i| zk[i] + alpha * share[i] * zl[i])
        .collect()
}

/// Chooses (k, temp, alpha) by 5-fold out-of-fold mean APGR (GSM8K and MMLU) inside the
/// train part, then scores the evaluation part once with the whole train part as the base.
pub fn out_of_fold(data_dir: &Path, model: &Path) -> Result<()> {
    let rows = data::load(&data_dir.join("routellm.dev.jsonl"))?;
    let (train, eval) = data::split(rows);
    let embedder = StaticEmbedder::load(model)?;
    let embed = |rows: &[Row]| -> Result<Vec<Vec<f32>>> {
        rows.iter()
            .map(|r| {
                let mut v = embedder.embed(&r.prompt)?;
                normalise(&mut v);
                Ok(v)
            })
            .collect()
    };
    let (te, ee) = (embed(&train)?, embed(&eval)?);
    let y: Vec<f32> = train.iter().map(weak_ok).collect();
    let gsm: Vec<bool> = train.iter().map(|r| r.source == "routellm_gsm8k").collect();
    let base_rate = y.iter().sum::<f32>() / y.len() as f32;
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let fold = |i: usize| i % 5;
    let grid: Vec<(usize, f32, f32)> = [10usize, 25, 50, 100]
        .into_iter()
        .flat_map(|k| [0.05f32, 0.1].into_iter().map(move |t| (k, t)))
        .flat_map(|(k, t)| {
            [0.0f32, 1.0, 2.0, 4.0, 8.0]
                .into_iter()
                .map(move |a| (k, t, a))
        })
        .collect();
    let train_refs: Vec<&Row> = train.iter().collect();
    let mut best: Option<(f64, (usize, f32, f32))> = None;
    for &params in &grid {
        let mut oof = vec![0.0f32; train.len()];
        for f in 0..5 {
            let base: Vec<usize> = (0..train.len()).filter(|&i| fold(i) != f).collect();
            let held: Vec<usize> = (0..train.len()).filter(|&i| fold(i) == f).collect();
            let sims: Vec<Vec<f32>> = held
                .iter()
                .map(|&q| base.iter().map(|&b| dot(&te[q], &te[b])).collect())
                .collect();
            let yb: Vec<f32> = base.iter().map(|&b| y[b]).collect();
            let gb: Vec<bool> = base.iter().map(|&b| gsm[b]).collect();
            let ll: Vec<f32> = held
                .iter()
                .map(|&q| -((train[q].prompt.len() as f32).ln()))
                .collect();
            let p = stacked(&sims, &yb, &gb, &ll, params, base_rate);
            for (j, &q) in held.iter().enumerate() {
                oof[q] = p[j];
            }
        }
        let scores = apgr_per_source(&train_refs, &oof);
        let mean = scores
            .iter()
            .filter(|(s, _)| s != "routellm_mtbench")
            .map(|(_, a)| a)
            .sum::<f64>()
            / 2.0;
        println!("oof {params:?}: {scores:?} mean {mean:.3}");
        if best.as_ref().is_none_or(|b| mean > b.0) {
            best = Some((mean, params));
        }
    }
    let Some((oof_mean, params)) = best else {
        anyhow::bail!("empty grid");
    };
    let sims: Vec<Vec<f32>> = ee
        .iter()
        .map(|q| te.iter().map(|t| dot(q, t)).collect())
        .collect();
    let ll: Vec<f32> = eval
        .iter()
        .map(|r| -((r.prompt.len() as f32).ln()))
        .collect();
    let p = stacked(&sims, &y, &gsm, &ll, params, base_rate);
    let eval_refs: Vec<&Row> = eval.iter().collect();
    println!("chosen {params:?} (oof mean {oof_mean:.3})");
    show("stacked, chosen out of fold", &eval_refs, &p);
    Ok(())
}
