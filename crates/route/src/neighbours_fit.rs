//! Training the neighbour estimate: every setting is chosen on out-of-fold estimates (each row
//! scored only by rows of other folds, with category rates that leave its fold out), one
//! setting at a time over a small grid, by an objective the caller gives (the evaluation's
//! APGR per benchmark). The calibration is fitted on the same out-of-fold scores.

use crate::neighbours::{
    encode_f32, encode_i8, encode_u16, encode_u8, quantise, shortness, unit, EmbedderFingerprint,
    Nearest, NeighbourError, NeighbourHead, NeighbourSettings, Neighbours, SourceInfo, Standardise,
    StoredNeighbours,
};

/// One labelled prompt of the base.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    /// Its embedding by the fingerprinted static model (normalised here).
    pub vector: Vec<f32>,
    pub chars: usize,
    pub source: u8,
    pub category: u16,
    /// One label per head, in `[0, 1]`.
    pub labels: Vec<f32>,
    /// Its cross-validation fold.
    pub fold: u8,
}

pub struct FitInput {
    pub embedder: EmbedderFingerprint,
    pub sources: Vec<SourceInfo>,
    pub categories: Vec<String>,
    pub heads: Vec<String>,
    pub rows: Vec<LabelledRow>,
}

/// The fitted estimator and each head's out-of-fold probabilities (row order).
pub struct Fitted {
    pub neighbours: Neighbours,
    pub out_of_fold: Vec<Vec<f32>>,
}

const PRIOR: f32 = 5.0;

fn smoothed_rates(
    rows: &[LabelledRow],
    categories: usize,
    h: usize,
    base_rate: f32,
    leave_out: Option<u8>,
) -> Vec<f32> {
    let mut sum = vec![0.0f32; categories];
    let mut n = vec![0.0f32; categories];
    for r in rows.iter().filter(|r| Some(r.fold) != leave_out) {
        sum[usize::from(r.category)] += r.labels[h];
        n[usize::from(r.category)] += 1.0;
    }
    sum.iter()
        .zip(&n)
        .map(|(s, c)| (s + PRIOR * base_rate) / (c + PRIOR))
        .collect()
}

/// The grids searched, one setting at a time, starting from the first value of each.
struct Grid {
    k: Vec<usize>,
    temperature: Vec<f32>,
    category_k: Vec<usize>,
    category_weight: Vec<f32>,
    length_weight: Vec<f32>,
    source_length_weight: Vec<f32>,
}

impl Default for Grid {
    fn default() -> Self {
        Self {
            k: vec![100, 50, 150, 200],
            temperature: vec![0.05, 0.03, 0.04, 0.07, 0.1],
            category_k: vec![10, 5, 25],
            category_weight: vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.5],
            length_weight: vec![0.0, 0.1, 0.25, 0.5],
            source_length_weight: vec![0.0, 2.0, 4.0, 8.0],
        }
    }
}

/// Out-of-fold scores of every head (row order), and every row's neighbour shares.
type Scored = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// What training needs over and over: the stored estimator being fitted, each row's nearest
/// rows from other folds, and each head's category rates without each fold.
struct Fitting {
    stored: StoredNeighbours,
    rows: Vec<LabelledRow>,
    nearest: Vec<Nearest>,
    folds: Vec<u8>,
    fold_rates: Vec<Vec<Vec<f32>>>,
}

impl Fitting {
    fn new(input: FitInput, grid: &Grid) -> Result<Self, NeighbourError> {
        let FitInput {
            embedder,
            sources,
            categories,
            heads,
            rows,
        } = input;
        let cap = rows.len().saturating_sub(1).max(1);
        let widest = grid.k.iter().copied().max().unwrap_or(100).min(cap);
        let vectors: Vec<i8> = rows
            .iter()
            .flat_map(|r| quantise(&unit(&r.vector)))
            .collect();
        let base_rates: Vec<f32> = (0..heads.len())
            .map(|h| rows.iter().map(|r| r.labels[h]).sum::<f32>() / rows.len().max(1) as f32)
            .collect();
        let identity = Standardise { mean: 0.0, sd: 1.0 };
        let sources_len = sources.len();
        let stored = StoredNeighbours {
            embedder,
            settings: NeighbourSettings {
                k: widest,
                temperature: grid.temperature[0],
                category_k: grid.category_k[0].min(widest),
                category_weight: grid.category_weight[0],
                length_weight: grid.length_weight[0],
                source_length_weights: vec![grid.source_length_weight[0]; sources.len()],
                familiarity: [0.0, 0.0],
            },
            shortness: Standardise::of(rows.iter().map(|r| shortness(r.chars))),
            sources,
            vectors: encode_i8(&vectors),
            row_sources: encode_u8(&rows.iter().map(|r| r.source).collect::<Vec<_>>()),
            row_categories: encode_u16(&rows.iter().map(|r| r.category).collect::<Vec<_>>()),
            heads: heads
                .iter()
                .enumerate()
                .map(|(h, model)| NeighbourHead {
                    model: model.clone(),
                    labels: encode_f32(&rows.iter().map(|r| r.labels[h]).collect::<Vec<_>>()),
                    category_rates: smoothed_rates(&rows, categories.len(), h, base_rates[h], None),
                    base_rate: base_rates[h],
                    knn: identity,
                    category: identity,
                    calibration: std::iter::once(1.0)
                        .chain(std::iter::repeat_n(0.0, sources_len))
                        .collect(),
                })
                .collect(),
            categories,
        };
        // Each row's neighbours among the other folds, at the widest k (a smaller k is a
        // prefix of the same list).
        let wide = Neighbours::new(stored.clone())?;
        let nearest: Vec<Nearest> = rows
            .iter()
            .map(|q| wide.nearest(&unit(&q.vector), |i| rows[i].fold == q.fold))
            .collect();
        let mut folds: Vec<u8> = rows.iter().map(|r| r.fold).collect();
        folds.sort_unstable();
        folds.dedup();
        let fold_rates = base_rates
            .iter()
            .enumerate()
            .map(|(h, &base)| {
                folds
                    .iter()
                    .map(|&f| smoothed_rates(&rows, stored.categories.len(), h, base, Some(f)))
                    .collect()
            })
            .collect();
        Ok(Self {
            stored,
            rows,
            nearest,
            folds,
            fold_rates,
        })
    }

    /// The training rows' own closest out-of-fold similarities, 1st and 10th percentiles: a
    /// prompt whose closest labelled prompt is less similar than almost any training row's is
    /// unlike the labelled data.
    fn familiarity(&self) -> [f32; 2] {
        let mut closest: Vec<f32> = self
            .nearest
            .iter()
            .map(|n| n.rows.first().map_or(0.0, |x| x.1))
            .collect();
        closest.sort_by(f32::total_cmp);
        let at = |q: f64| {
            let i = (closest.len().saturating_sub(1) as f64 * q) as usize;
            closest.get(i).copied().unwrap_or(0.0)
        };
        [at(0.01), at(0.10)]
    }

    /// Keeps `k` within the rows there are and `category_k` within `k`.
    fn feasible(&self, mut settings: NeighbourSettings) -> NeighbourSettings {
        settings.k = settings.k.min(self.rows.len().saturating_sub(1).max(1));
        settings.category_k = settings.category_k.min(settings.k);
        settings
    }

    /// The stored estimator under `settings`, with the z statistics of its out-of-fold parts,
    /// and its out-of-fold scores.
    fn evaluate(
        &self,
        settings: &NeighbourSettings,
    ) -> Result<(StoredNeighbours, Scored), NeighbourError> {
        let mut s = self.stored.clone();
        s.settings = settings.clone();
        let raw = Neighbours::new(s.clone())?;
        let mut parts_by_head = Vec::with_capacity(s.heads.len());
        for (h, rates) in self.fold_rates.iter().enumerate() {
            let parts: Vec<(f32, f32, Vec<f32>)> = self
                .rows
                .iter()
                .zip(&self.nearest)
                .map(|(r, near)| {
                    let near = Nearest {
                        rows: near.rows[..settings.k.min(near.rows.len())].to_vec(),
                    };
                    let fold = self.folds.iter().position(|&f| f == r.fold).unwrap_or(0);
                    raw.parts(h, &near, Some(&rates[fold]))
                })
                .collect();
            s.heads[h].knn = Standardise::of(parts.iter().map(|p| logit(p.0)));
            s.heads[h].category = Standardise::of(parts.iter().map(|p| logit(p.1)));
            parts_by_head.push(parts);
        }
        let standardised = Neighbours::new(s.clone())?;
        let scores = parts_by_head
            .iter()
            .enumerate()
            .map(|(h, parts)| {
                parts
                    .iter()
                    .zip(&self.rows)
                    .zip(&self.nearest)
                    .map(|((p, r), near)| {
                        let closest = near.rows.first().map_or(0.0, |x| x.1);
                        standardised.score(h, (p.0, p.1, &p.2), r.chars, closest).0
                    })
                    .collect()
            })
            .collect();
        let shares = parts_by_head
            .first()
            .map(|parts| parts.iter().map(|p| p.2.clone()).collect())
            .unwrap_or_default();
        Ok((s, (scores, shares)))
    }
}

/// One change to try in the coordinate search.
type Move = Box<dyn Fn(&mut NeighbourSettings)>;

fn moves(grid: &Grid, sources: usize) -> Vec<Move> {
    let mut moves: Vec<Move> = Vec::new();
    for &k in &grid.k {
        moves.push(Box::new(move |c| c.k = k));
    }
    for &t in &grid.temperature {
        moves.push(Box::new(move |c| c.temperature = t));
    }
    for &k in &grid.category_k {
        moves.push(Box::new(move |c| c.category_k = k));
    }
    for &w in &grid.category_weight {
        moves.push(Box::new(move |c| c.category_weight = w));
    }
    for &w in &grid.length_weight {
        moves.push(Box::new(move |c| c.length_weight = w));
    }
    for s in 0..sources {
        for &w in &grid.source_length_weight {
            moves.push(Box::new(move |c| c.source_length_weights[s] = w));
        }
    }
    moves
}

/// Fits the estimator. `objective(head, scores)` rates out-of-fold scores of one head over
/// all rows (higher is better); the settings maximise its sum over heads.
pub fn fit(
    input: FitInput,
    objective: impl Fn(usize, &[f32]) -> f64,
) -> Result<Fitted, NeighbourError> {
    let grid = Grid::default();
    let fitting = Fitting::new(input, &grid)?;
    let rate = |scores: &[Vec<f32>]| -> f64 {
        scores
            .iter()
            .enumerate()
            .map(|(h, s)| objective(h, s))
            .sum()
    };
    let mut settings = fitting.stored.settings.clone();
    settings.k = grid.k[0];
    settings.familiarity = fitting.familiarity();
    let mut settings = fitting.feasible(settings);
    let mut best = rate(&fitting.evaluate(&settings)?.1 .0);
    // Coordinate search: each setting over its grid with the others held, twice round.
    let moves = moves(&grid, settings.source_length_weights.len());
    for _ in 0..2 {
        for m in &moves {
            let mut candidate = settings.clone();
            m(&mut candidate);
            let candidate = fitting.feasible(candidate);
            if candidate == settings {
                continue;
            }
            let value = rate(&fitting.evaluate(&candidate)?.1 .0);
            if value > best + 1e-9 {
                best = value;
                settings = candidate;
            }
        }
    }
    let (mut chosen, (scores, shares)) = fitting.evaluate(&settings)?;
    // The settings were chosen on the scores' order within each benchmark; the calibration
    // adds an intercept per kind of prompt, so that one bar keeps a similar share of quality
    // on each kind. (One calibration for all kinds keeps the order exactly: APGR 0.01-0.04
    // higher, but `balanced` then kept 99% of GPT-4's quality on MMLU and 94% on GSM8K;
    // eval/router.md.)
    for (h, head_scores) in scores.iter().enumerate() {
        let labels: Vec<f32> = fitting.rows.iter().map(|r| r.labels[h]).collect();
        chosen.heads[h].calibration = calibrate(head_scores, &shares, &labels);
    }
    let neighbours = Neighbours::new(chosen)?;
    let out_of_fold = scores
        .iter()
        .enumerate()
        .map(|(h, head_scores)| {
            head_scores
                .iter()
                .zip(&shares)
                .map(|(s, sh)| neighbours.calibrated(h, *s, sh))
                .collect()
        })
        .collect();
    Ok(Fitted {
        neighbours,
        out_of_fold,
    })
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

/// Fits `[a, b_1, ..., b_S]` of `P = sigmoid(a x score + sum_s share_s b_s)` with the
/// project's logistic trainer (`switchyard_textclass`); a row's shares sum to 1, so the `b_s`
/// are intercepts and the trainer's own bias folds into them.
fn calibrate(scores: &[f32], shares: &[Vec<f32>], labels: &[f32]) -> Vec<f32> {
    let width = shares.first().map_or(0, Vec::len);
    let xs: Vec<switchyard_textclass::Features> = scores
        .iter()
        .zip(shares)
        .map(|(s, sh)| switchyard_textclass::Features {
            indices: (0..=width as u32).collect(),
            values: std::iter::once(*s).chain(sh.iter().copied()).collect(),
        })
        .collect();
    let cfg = switchyard_textclass::TrainConfig {
        epochs: 40,
        l2: 0.0,
        ..Default::default()
    };
    let model = switchyard_textclass::train_logistic(&xs, labels, width + 1, &cfg);
    let mut out = model.weights;
    for b in out.iter_mut().skip(1) {
        *b += model.bias;
    }
    out
}
