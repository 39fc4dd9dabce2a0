//! The `verify` and `vectors` modes (`verify_main`): the serving pipeline with the verifier,
//! as the module comment of `main.rs` describes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;
use switchyard_cache::{
    check_texts, Cache, CacheConfig, CacheControl, HitKind, Lookup, Prepared, RoutePolicy,
};

use crate::shared::*;
use crate::verify::{
    pair_features, signs, veto_texts, FitOptions, Logistic, Variant, Verifier, FEATURE_NAMES,
    N_FEATURES,
};

/// Vectors of both models for `texts`, from the cache under `/tmp` or computed now.
pub(crate) fn both_vectors(
    models: &std::path::Path,
    texts: &[String],
) -> (HashMap<String, Vec<f32>>, HashMap<String, Vec<f32>>) {
    let stat = switchyard_embed::StaticEmbedder::load(models.join("minilm-static-256"))
        .expect("static model (switchyard models distill)");
    let s = cached_vectors("static", texts, &|b| stat.embed_batch(b).unwrap());
    let mini: std::cell::OnceCell<switchyard_embed::MiniLm> = std::cell::OnceCell::new();
    let m = cached_vectors("minilm", texts, &|b| {
        mini.get_or_init(|| {
            switchyard_embed::MiniLm::load(models.join("all-MiniLM-L6-v2")).expect("MiniLM files")
        })
        .embed(b)
        .unwrap()
    });
    (s, m)
}

/// One pair as the serving pipeline sees it: the cached question is text_a, the query text_b.
pub(crate) struct VRow<'a> {
    pair: &'a Pair,
    held: bool,
    fold: u64,
    dup: bool,
    static_cos: f32,
    minilm_cos: f32,
    /// The old guard (all four rules), for the baselines.
    guard_ok: bool,
    /// The verifier's hard veto (negation, polarity, changed number).
    vetoed: bool,
    x_static: [f32; N_FEATURES],
    x_minilm: [f32; N_FEATURES],
    /// Out-of-fold probability on the tune split; the final model's on the held-out split.
    p_static: f32,
    p_minilm: f32,
}

/// Served by the pipeline at candidate threshold `tc` and verifier threshold `tp`.
pub(crate) fn v_served(r: &VRow, tc: f32, tp: f32, minilm: bool) -> bool {
    let p = if minilm { r.p_minilm } else { r.p_static };
    r.static_cos >= tc && !r.vetoed && p >= tp
}

pub(crate) fn v_tally<'a>(
    rows: impl Iterator<Item = &'a VRow<'a>>,
    served: impl Fn(&VRow) -> bool,
) -> Tally {
    let mut x = Tally::default();
    for r in rows {
        x.dups += usize::from(r.dup);
        if served(r) {
            x.served += 1;
            x.served_dup += usize::from(r.dup);
        }
    }
    x
}

/// The lowest threshold of `grid` whose tally reaches `goal` precision (with at least 20
/// served, so one lucky pair cannot set it), else the one with the best precision.
pub(crate) fn choose(grid: &[f32], tally_at: impl Fn(f32) -> Tally, goal: f64) -> (f32, bool) {
    for &t in grid {
        let x = tally_at(t);
        if x.served >= 20 && x.precision() >= goal {
            return (t, true);
        }
    }
    let best = grid
        .iter()
        .copied()
        .filter(|t| tally_at(*t).served >= 20)
        .max_by(|a, b| {
            tally_at(*a)
                .precision()
                .total_cmp(&tally_at(*b).precision())
        })
        .unwrap_or(grid[grid.len() - 1]);
    (best, false)
}

pub(crate) const GOAL: f64 = 0.97;

pub(crate) fn verify_main(mode: &str, models: &std::path::Path, data: &str, args: &[String]) {
    let pairs = read_pairs(data);
    let texts = all_texts(&pairs);
    let (sv, mv) = both_vectors(models, &texts);
    eprintln!("{} static and {} MiniLM vectors ready", sv.len(), mv.len());
    if mode == "vectors" {
        return;
    }
    let write = args.iter().any(|a| a == "--write");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifact = repo.join("eval/artifacts/cache-verifier.v1.json");

    // 1. Features of every pair, both variants.
    let mut rows: Vec<VRow> = pairs
        .iter()
        .map(|p| {
            let sc = dot(&sv[&p.text_a], &sv[&p.text_b]);
            let mc = dot(&mv[&p.text_a], &mv[&p.text_b]);
            let h = fnv(&p.id);
            VRow {
                pair: p,
                held: h & 1 == 1,
                fold: (h >> 1) % 5,
                dup: p.label == 1,
                static_cos: sc,
                minilm_cos: mc,
                guard_ok: check_texts(&p.text_b, &p.text_a).is_ok(),
                vetoed: veto_texts(&p.text_b, &p.text_a).is_some(),
                x_static: pair_features(&p.text_b, &p.text_a, sc, None),
                x_minilm: pair_features(&p.text_b, &p.text_a, sc, Some(mc)),
                p_static: 0.0,
                p_minilm: 0.0,
            }
        })
        .collect();
    let n_tune = rows.iter().filter(|r| !r.held).count();
    println!("# Semantic cache with a verification stage\n");
    println!(
        "{} pairs ({} tune, {} held out by FNV-1a(id) parity, as in the other modes); cached = text_a, query = text_b.\n",
        rows.len(),
        n_tune,
        rows.len() - n_tune
    );

    // 2. The candidate threshold on the static cosine: the highest on the grid that still
    //    lets at least 90% of the tune duplicates (that pass the veto) through to the verifier.
    let cand_grid: Vec<f32> = (0..=9).map(|i| 0.50 + 0.05 * i as f32).collect();
    println!("## Candidate stage on the tune split: static-model cosine ≥ t, then the hard veto\n");
    println!("| t (static cosine) | candidates | duplicates among them | dup share reaching the verifier |");
    println!("|---|---|---|---|");
    let mut tc = cand_grid[0];
    for &t in &cand_grid {
        let x = v_tally(rows.iter().filter(|r| !r.held), |r| {
            r.static_cos >= t && !r.vetoed
        });
        println!(
            "| {t:.2} | {} | {:.3} | {:.3} |",
            x.served,
            x.precision(),
            x.recall()
        );
        if x.recall() >= 0.90 {
            tc = t;
        }
    }
    if let Some(t) = opt_f32(args, "--candidate") {
        tc = t;
    }
    // What the one-sided negated-pole veto costs: tune duplicates above the candidate
    // threshold that it refuses (the other veto rules are the old guard's).
    {
        let x = v_tally(
            rows.iter()
                .filter(|r| !r.held && r.static_cos >= tc && r.guard_ok),
            |r| r.vetoed,
        );
        eprintln!("tune pairs passing the old guard at {tc:.2} that the new veto refuses: {} ({} duplicates of {})", x.served, x.served_dup, x.dups);
    }
    // What a stricter veto (a polarity word on one side only) would cost and catch.
    {
        let i = FEATURE_NAMES
            .iter()
            .position(|n| *n == "polarity_one_side")
            .unwrap();
        let x = v_tally(
            rows.iter()
                .filter(|r| !r.held && r.static_cos >= tc && !r.vetoed),
            |r| r.x_static[i] > 0.5,
        );
        eprintln!("polarity_one_side among tune candidates at {tc:.2}: {} pairs, {} duplicates ({:.1}% of candidate duplicates)",
            x.served, x.served_dup, 100.0 * x.served_dup as f64 / x.dups as f64);
    }
    println!("\nCandidate threshold: **{tc:.2}** (highest with ≥ 90% of tune duplicates reaching the verifier).\n");

    // 3. Out-of-fold probabilities on tune (5 folds by hash), so the threshold is chosen on
    //    scores of pairs the model did not see; then the final models on all tune candidates.
    let fit_opts = FitOptions::default();
    let in_train = |r: &VRow| !r.held && r.static_cos >= tc && !r.vetoed;
    let fit = |rows: &[VRow], keep: &dyn Fn(&VRow) -> bool, minilm: bool| {
        let (x, y): (Vec<[f32; N_FEATURES]>, Vec<bool>) = rows
            .iter()
            .filter(|r| keep(r))
            .map(|r| (if minilm { r.x_minilm } else { r.x_static }, r.dup))
            .unzip();
        Logistic::fit(&x, &y, &signs(minilm), &fit_opts)
    };
    let t_fit = Instant::now();
    for fold in 0..5 {
        let ms = fit(&rows, &|r| in_train(r) && r.fold != fold, false);
        let mm = fit(&rows, &|r| in_train(r) && r.fold != fold, true);
        for r in rows.iter_mut().filter(|r| !r.held && r.fold == fold) {
            r.p_static = ms.probability(&r.x_static);
            r.p_minilm = mm.probability(&r.x_minilm);
        }
    }
    let model_s = fit(&rows, &in_train, false);
    let model_m = fit(&rows, &in_train, true);
    for r in rows.iter_mut().filter(|r| r.held) {
        r.p_static = model_s.probability(&r.x_static);
        r.p_minilm = model_m.probability(&r.x_minilm);
    }
    let n_train = rows.iter().filter(|r| in_train(r)).count();
    let n_train_dup = rows.iter().filter(|r| in_train(r) && r.dup).count();
    eprintln!("12 fits in {:.1}s", t_fit.elapsed().as_secs_f64());

    // 4. The verifier's threshold, per variant, on the out-of-fold tune scores.
    let grid: Vec<f32> = (0..50).map(|i| 0.50 + 0.01 * i as f32).collect();
    let tune = || rows.iter().filter(|r| !r.held);
    println!("## Verifier sweep on the tune split (out-of-fold probabilities, candidate threshold {tc:.2})\n");
    println!("| p ≥ | precision (static only) | dup share (static only) | precision (+ MiniLM on the pair) | dup share (+ MiniLM) |");
    println!("|---|---|---|---|---|");
    for &t in grid.iter().step_by(2) {
        let a = v_tally(tune(), |r| v_served(r, tc, t, false));
        let b = v_tally(tune(), |r| v_served(r, tc, t, true));
        println!(
            "| {t:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
            a.precision(),
            a.recall(),
            b.precision(),
            b.recall()
        );
    }
    // What the precision ceiling is made of: the tune pairs labelled "different" that the
    // MiniLM variant scores highest (out-of-fold), for a reader to judge.
    let mut fp: Vec<&VRow> = tune()
        .filter(|r| !r.dup && r.static_cos >= tc && !r.vetoed)
        .collect();
    fp.sort_by(|a, b| b.p_minilm.total_cmp(&a.p_minilm));
    println!("\n### The 25 highest-scoring tune pairs labelled \"different\" (+MiniLM variant, out-of-fold)\n");
    println!("| p | MiniLM cos | source | cached (text_a) | query (text_b) |");
    println!("|---|---|---|---|---|");
    for r in fp.iter().take(25) {
        let cell = |t: &str| t.replace('|', "/").replace('\n', " ");
        println!(
            "| {:.3} | {:.3} | {} | {} | {} |",
            r.p_minilm,
            r.minilm_cos,
            r.pair.source,
            cell(&r.pair.text_a),
            cell(&r.pair.text_b)
        );
    }
    println!();
    let (ts, met_s) = choose(
        &grid,
        |t| v_tally(tune(), |r| v_served(r, tc, t, false)),
        GOAL,
    );
    let (tm, met_m) = choose(
        &grid,
        |t| v_tally(tune(), |r| v_served(r, tc, t, true)),
        GOAL,
    );
    let say = |met: bool| {
        if met {
            "lowest with tune precision ≥ 0.97"
        } else {
            "0.97 NOT reached on tune; best precision"
        }
    };
    println!(
        "\nChosen on tune: static only **p ≥ {ts:.2}** ({}), with MiniLM **p ≥ {tm:.2}** ({}).\n",
        say(met_s),
        say(met_m)
    );

    // Baselines at their own tune-chosen thresholds: cosine + the full guard (the current
    // cache), for the static model and for MiniLM.
    let cos_grid: Vec<f32> = (0..=40).map(|i| 0.60 + 0.01 * i as f32).collect();
    let base = |minilm: bool, t: f32, r: &VRow| {
        (if minilm { r.minilm_cos } else { r.static_cos }) >= t && r.guard_ok
    };
    let (tbs, _) = choose(&cos_grid, |t| v_tally(tune(), |r| base(false, t, r)), GOAL);
    let (tbm, _) = choose(&cos_grid, |t| v_tally(tune(), |r| base(true, t, r)), GOAL);

    // 5. Held-out, per source.
    let mut sources: Vec<String> = rows.iter().map(|r| r.pair.source.clone()).collect();
    sources.sort();
    sources.dedup();
    sources.push("all".into());
    let held = |src: &str| {
        let src = src.to_owned();
        rows.iter()
            .filter(move |r| r.held && (src == "all" || r.pair.source == src))
    };
    println!("## Held-out split at the tune-chosen operating points\n");
    println!("| pipeline | source | pairs | duplicates | served | precision | dup share |");
    println!("|---|---|---|---|---|---|---|");
    type Pipe<'a> = (String, Box<dyn Fn(&VRow) -> bool + 'a>);
    let pipes: Vec<Pipe> = vec![
        (
            format!("static ≥ {tc:.2} → veto → verifier (static) p ≥ {ts:.2}"),
            Box::new(move |r: &VRow| v_served(r, tc, ts, false)),
        ),
        (
            format!("static ≥ {tc:.2} → veto → verifier (+MiniLM) p ≥ {tm:.2}"),
            Box::new(move |r: &VRow| v_served(r, tc, tm, true)),
        ),
        (
            format!("baseline: static cosine ≥ {tbs:.2} + guard"),
            Box::new(move |r: &VRow| base(false, tbs, r)),
        ),
        (
            format!("baseline: MiniLM cosine ≥ {tbm:.2} + guard"),
            Box::new(move |r: &VRow| base(true, tbm, r)),
        ),
    ];
    let mut headline: Vec<(String, String, Tally)> = Vec::new();
    for (name, f) in &pipes {
        for src in &sources {
            let x = v_tally(held(src), f);
            println!(
                "| {name} | {src} | {} | {} | {} | {:.3} | {:.3} |",
                held(src).count(),
                x.dups,
                x.served,
                x.precision(),
                x.recall()
            );
            headline.push((name.clone(), src.clone(), x));
        }
    }

    println!("\n## Held-out sweep of the verifier threshold, per source (precision / dup share)\n");
    print!("| p ≥ | variant |");
    for s in &sources {
        print!(" {s} |");
    }
    println!("\n|---|---|{}", "---|".repeat(sources.len()));
    for t in [
        0.50f32, 0.60, 0.70, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96,
    ] {
        for minilm in [false, true] {
            print!("| {t:.2} | {} |", if minilm { "+MiniLM" } else { "static" });
            for s in &sources {
                let x = v_tally(held(s), |r| v_served(r, tc, t, minilm));
                print!(" {:.3} / {:.3} |", x.precision(), x.recall());
            }
            println!();
        }
    }

    println!("\n## Held-out baseline for comparison: MiniLM cosine + the old guard (precision / dup share)\n");
    print!("| MiniLM cosine ≥ |");
    for s in &sources {
        print!(" {s} |");
    }
    println!("\n|---|{}", "---|".repeat(sources.len()));
    for t in [0.94f32, 0.95, 0.96, 0.97, 0.98, 0.99] {
        print!("| {t:.2} |");
        for s in &sources {
            let x = v_tally(held(s), |r| base(true, t, r));
            print!(" {:.3} / {:.3} |", x.precision(), x.recall());
        }
        println!();
    }

    // 6. Polarity probes at the operating points: every one must miss.
    let verifier = Verifier {
        static_only: Variant {
            model: model_s.clone(),
            threshold: ts,
        },
        with_minilm: Variant {
            model: model_m.clone(),
            threshold: tm,
        },
        candidate_threshold: tc,
    };
    let mut probe_rows: BTreeMap<&str, [usize; 6]> = BTreeMap::new();
    let mut leaks = Vec::new();
    for r in rows.iter().filter(|r| r.held && r.dup) {
        let p = r.pair;
        let a_words: Vec<String> = p
            .text_a
            .split(|c: char| !c.is_alphanumeric())
            .map(str::to_lowercase)
            .collect();
        for (kind, flipped) in probes(&p.text_b) {
            // The same filter as the `probes` table of the other modes.
            let new_word = flipped
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_lowercase)
                .find(|w| {
                    !w.is_empty()
                        && !p
                            .text_b
                            .to_lowercase()
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|x| x == w)
                });
            if new_word.is_some_and(|w| a_words.contains(&w)) {
                continue;
            }
            let sc = dot(&sv[&p.text_a], &sv[&flipped]);
            let mc = dot(&mv[&p.text_a], &mv[&flipped]);
            let cand = sc >= tc;
            let ps = verifier.probability(&flipped, &p.text_a, sc, None);
            let pm = verifier.probability(&flipped, &p.text_a, sc, Some(mc));
            let ds = verifier.verify(&flipped, &p.text_a, sc, None);
            let dm = verifier.verify(&flipped, &p.text_a, sc, Some(mc));
            let e = probe_rows.entry(kind).or_default();
            e[0] += 1;
            e[1] += usize::from(cand);
            e[2] += usize::from(cand && ps >= ts);
            e[3] += usize::from(cand && pm >= tm);
            e[4] += usize::from(cand && ds.accept());
            e[5] += usize::from(cand && dm.accept());
            if cand && (ds.accept() || dm.accept()) && leaks.len() < 8 {
                leaks.push(format!(
                    "- {kind}: cached \"{}\" / query \"{flipped}\"",
                    p.text_a
                ));
            }
        }
    }
    println!(
        "\n## Polarity probes from held-out duplicates at the operating points (must all miss)\n"
    );
    println!("| probe | probes | candidates (static ≥ {tc:.2}) | verifier alone, static | verifier alone, +MiniLM | served: veto + verifier, static | served: veto + verifier, +MiniLM |");
    println!("|---|---|---|---|---|---|---|");
    for (k, e) in &probe_rows {
        println!(
            "| {k} | {} | {} | {} | {} | **{}** | **{}** |",
            e[0], e[1], e[2], e[3], e[4], e[5]
        );
    }
    for l in &leaks {
        println!("{l}");
    }

    // 7. The real `Cache` with `Hit::question`: static embedding, guard off (the verifier
    //    vetoes polarity itself), threshold = candidate threshold, then the verifier.
    let cache = Cache::new(CacheConfig::default());
    let policy = RoutePolicy {
        threshold: tc,
        guard: false,
        ..RoutePolicy::default()
    };
    let now = Instant::now();
    let (mut agree, mut total) = (0, 0);
    for r in rows.iter().filter(|r| r.held) {
        let p = r.pair;
        let ra = req(&p.text_a);
        let pa = Prepared::new(&p.id, "r", &ra);
        cache
            .insert(
                &ra,
                &pa,
                Some(sv[&p.text_a].clone()),
                resp("a"),
                &policy,
                CacheControl::Normal,
                now,
            )
            .unwrap();
        let rb = req(&p.text_b);
        let pb = Prepared::new(&p.id, "r", &rb);
        let served = match cache.lookup_exact(&pb, now) {
            Some(_) => true,
            None => match cache.lookup_semantic(&pb, &sv[&p.text_b], &policy, now) {
                Lookup::Hit(hit) => {
                    let sim = match hit.kind {
                        HitKind::Semantic { similarity } => similarity,
                        HitKind::Exact => 1.0,
                    };
                    verifier
                        .verify(&pb.question, &hit.question, sim, None)
                        .accept()
                }
                Lookup::Miss(_) => false,
            },
        };
        total += 1;
        agree += usize::from(
            served == v_served(r, tc, ts, false)
                || (served && p.text_a.split_whitespace().eq(p.text_b.split_whitespace())),
        );
    }
    println!("\nEnd-to-end through `Cache` + `Hit::question` + `Verifier` (static variant, one scope per held-out pair): {agree}/{total} decisions agree with the table.\n");

    // 8. Added latency of verification.
    let cands: Vec<&VRow> = rows
        .iter()
        .filter(|r| r.held && r.static_cos >= tc && !r.vetoed)
        .collect();
    let mut times = Vec::new();
    let mut sink = 0usize;
    for _ in 0..5 {
        for r in &cands {
            let t0 = Instant::now();
            let d = verifier.verify(&r.pair.text_b, &r.pair.text_a, r.static_cos, None);
            times.push(t0.elapsed());
            sink += usize::from(d.accept());
        }
    }
    let (s50, s99) = (pct(&mut times, 0.5), pct(&mut times, 0.99));
    let mini = switchyard_embed::MiniLm::load(models.join("all-MiniLM-L6-v2")).unwrap();
    let mut mtimes = Vec::new();
    for r in cands.iter().step_by((cands.len() / 300).max(1)) {
        let t0 = Instant::now();
        let v = mini
            .embed(&[r.pair.text_b.as_str(), r.pair.text_a.as_str()])
            .unwrap();
        let d = verifier.verify(
            &r.pair.text_b,
            &r.pair.text_a,
            r.static_cos,
            Some(dot(&v[0], &v[1])),
        );
        mtimes.push(t0.elapsed());
        sink += usize::from(d.accept());
    }
    let n_m = mtimes.len();
    let (m50, m99) = (pct(&mut mtimes, 0.5), pct(&mut mtimes, 0.99));
    println!("## Added latency of verification (held-out candidates, this machine)\n");
    println!("| step | calls | p50 | p99 |");
    println!("|---|---|---|---|");
    println!("| verify, static features only (veto + features + logistic) | {} | {s50:.1} µs | {s99:.1} µs |", times.len());
    println!(
        "| MiniLM on the pair (2 texts, one batch) + verify | {n_m} | {:.1} ms | {:.1} ms |",
        m50 / 1e3,
        m99 / 1e3
    );
    eprintln!("({sink})");

    // 9. The artifact.
    let summary: Vec<Value> = headline
        .iter()
        .filter(|(name, _, _)| name.contains("verifier"))
        .map(|(name, src, x)| {
            serde_json::json!({"pipeline": name, "source": src, "served": x.served,
                "precision": round3(x.precision()), "dup_share": round3(x.recall())})
        })
        .collect();
    let tune_at = |t: f32, m: bool| v_tally(tune(), |r| v_served(r, tc, t, m));
    let meta = serde_json::json!({
        "trained_on": {
            "description": "semantic_cache.dev.jsonl (qqp, mrpc_test, gptcache_mock pairs; label 1 = same intent), TUNE split only: pairs whose FNV-1a(id) is even, restricted to candidates (static-model cosine >= candidate_threshold, not vetoed). The held-out (odd) half was never used for fitting or for choosing thresholds.",
            "rows": n_train,
            "positives": n_train_dup,
            "static_model": "minilm-static-256",
            "minilm": "all-MiniLM-L6-v2",
        },
        "train": {"method": "logistic regression, standardised features, full-batch gradient descent from zero", "steps": fit_opts.steps, "learning_rate": fit_opts.learning_rate, "l2": fit_opts.l2},
        "operating_points": {
            "rule": "lowest verifier probability threshold whose 5-fold out-of-fold precision on the tune split is >= 0.97 (else the best precision)",
            "static_only": {"threshold": ts, "goal_met_on_tune": met_s, "tune_precision": round3(tune_at(ts, false).precision()), "tune_dup_share": round3(tune_at(ts, false).recall())},
            "with_minilm": {"threshold": tm, "goal_met_on_tune": met_m, "tune_precision": round3(tune_at(tm, true).precision()), "tune_dup_share": round3(tune_at(tm, true).recall())},
        },
        "held_out": summary,
        "produced_by": "cargo run --release -p switchyard-cache --example eval -- verify --write",
    });
    let json = verifier.to_json(meta);
    if write {
        std::fs::write(
            &artifact,
            serde_json::to_string_pretty(&json).unwrap() + "\n",
        )
        .unwrap();
        eprintln!("wrote {}", artifact.display());
    } else {
        eprintln!("(artifact not written; pass --write)");
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn opt_f32(args: &[String], name: &str) -> Option<f32> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}
