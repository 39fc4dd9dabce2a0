//! Builds a [`StaticEmbedder`] from MiniLM by the Model2Vec method (Tulkens & van Dongen,
//! 2024), in four steps:
//! 1. embed every vocabulary token alone, as `[CLS] token [SEP]`, with MiniLM, mean-pooled
//!    over the three positions (no normalisation);
//! 2. PCA to 256 dimensions (fit on all token vectors; centres them, decorrelates the axes);
//! 3. SIF-weight each token vector with a Zipf prior on its vocabulary rank (see
//!    [`sif_weights`]): frequent tokens ("the", "##s") are shrunk so they do not dominate the
//!    mean of a sentence;
//! 4. save the table with the tokenizer (padding and truncation off).

use std::path::Path;
use std::time::Instant;

use crate::{EmbedError, MiniLm, Pca, StaticEmbedder};

/// Settings of [`distill`]; the defaults are Model2Vec's.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    /// Output width after PCA.
    pub dims: usize,
    /// Tokens per MiniLM forward pass.
    pub batch: usize,
    /// SIF's `a`; Model2Vec's default is 1e-4.
    pub sif_coefficient: f64,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            dims: 256,
            batch: 512,
            sif_coefficient: 1e-4,
        }
    }
}

/// What [`distill`] did.
#[derive(Debug, Clone)]
pub struct DistillReport {
    /// Tokens embedded (table rows).
    pub vocabulary: usize,
    /// Output width.
    pub dims: usize,
    /// Share of the token vectors' variance the kept components explain.
    pub explained_variance: f64,
    /// Seconds spent embedding tokens, and in total.
    pub embed_seconds: f64,
    pub total_seconds: f64,
}

/// SIF weights under a Zipf prior, one per vocabulary rank, as Model2Vec computes them.
///
/// The tokenizer's vocabulary is taken to be ordered by frequency, so the token at rank `r`
/// (0-based id) gets probability `p(r) = (1 / (r + 2)) / Σ_{j=0}^{V-1} 1 / (j + 2)` (Zipf's law
/// with exponent 1; the `+2` avoids the pole at the first token) and weight
/// `w(r) = a / (a + p(r))` with `a` = `coefficient` (Arora et al., 2017). Frequent tokens get
/// weights near 0, rare ones near 1.
#[must_use]
pub fn sif_weights(vocabulary: usize, coefficient: f64) -> Vec<f64> {
    let inv_rank: Vec<f64> = (0..vocabulary).map(|r| 1.0 / (r as f64 + 2.0)).collect();
    let total: f64 = inv_rank.iter().sum();
    inv_rank
        .iter()
        .map(|x| coefficient / (coefficient + x / total))
        .collect()
}

/// Steps 2 and 3 on token vectors already computed (one row per vocabulary id, `dim_in`
/// wide): returns the row-major `[rows, opts.dims]` table and the explained variance share.
#[must_use]
pub fn distill_table(
    token_vectors: &[Vec<f32>],
    dim_in: usize,
    opts: &DistillOptions,
) -> (Vec<f32>, f64) {
    let pca = Pca::fit(token_vectors, dim_in, opts.dims);
    let weights = sif_weights(token_vectors.len(), opts.sif_coefficient);
    let mut table = Vec::with_capacity(token_vectors.len() * pca.components.len());
    for (row, w) in token_vectors.iter().zip(&weights) {
        table.extend(
            pca.transform(row)
                .into_iter()
                .map(|x| (f64::from(x) * w) as f32),
        );
    }
    // Total variance = trace of the covariance = sum of per-dimension variances.
    let total: f64 = {
        let n = (token_vectors.len().saturating_sub(1)).max(1) as f64;
        (0..dim_in)
            .map(|d| {
                token_vectors
                    .iter()
                    .map(|r| (f64::from(r[d]) - pca.mean[d]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .sum()
    };
    let kept: f64 = pca.variances.iter().sum();
    (table, if total > 0.0 { kept / total } else { 0.0 })
}

/// Distils the MiniLM in `from` into a static model saved in `out`. `progress(done, total)`
/// is called after each batch of tokens. Takes a few minutes on two cores.
pub fn distill(
    from: &Path,
    out: &Path,
    opts: &DistillOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<DistillReport, EmbedError> {
    let started = Instant::now();
    let model = MiniLm::load(from)?;
    let tokenizer = model.tokenizer();
    let vocabulary = tokenizer.get_vocab_size(true);
    let cls = tokenizer
        .token_to_id("[CLS]")
        .ok_or_else(|| EmbedError::Inconsistent("tokenizer has no [CLS] token".to_owned()))?;
    let sep = tokenizer
        .token_to_id("[SEP]")
        .ok_or_else(|| EmbedError::Inconsistent("tokenizer has no [SEP] token".to_owned()))?;

    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(vocabulary);
    let ids: Vec<u32> = (0..vocabulary as u32).collect();
    for chunk in ids.chunks(opts.batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&id| vec![cls, id, sep]).collect();
        let mask = vec![vec![1u32; 3]; chunk.len()];
        vectors.extend(model.pooled(&seqs, &mask)?);
        progress(vectors.len(), vocabulary);
    }
    let embed_seconds = started.elapsed().as_secs_f64();

    let (table, explained_variance) = distill_table(&vectors, model.dim(), opts);
    let dims = opts.dims.min(model.dim());
    let static_model = StaticEmbedder::from_parts(tokenizer.clone(), table, dims)?;
    let mut extra = serde_json::Map::new();
    extra.insert(
        "base_model".into(),
        "sentence-transformers/all-MiniLM-L6-v2".into(),
    );
    extra.insert("apply_pca".into(), dims.into());
    extra.insert("sif_coefficient".into(), opts.sif_coefficient.into());
    extra.insert("explained_variance".into(), explained_variance.into());
    static_model.save(out, extra)?;
    Ok(DistillReport {
        vocabulary,
        dims,
        explained_variance,
        embed_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sif_weights_follow_the_formula() {
        let w = sif_weights(3, 0.5);
        // inv ranks 1/2, 1/3, 1/4; total 13/12; p = 6/13, 4/13, 3/13.
        let expect = [
            0.5 / (0.5 + 6.0 / 13.0),
            0.5 / (0.5 + 4.0 / 13.0),
            0.5 / (0.5 + 3.0 / 13.0),
        ];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(w.windows(2).all(|p| p[0] < p[1]), "rarer tokens weigh more");
    }

    #[test]
    fn table_is_pca_then_sif() {
        // Fake "token vectors" on a 3-d plane: PCA to 2 dims keeps all the variance; each row
        // is its PCA coordinates times its SIF weight.
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                let (a, b) = ((i % 7) as f32, (i % 5) as f32 * 2.0);
                vec![a + b, a - b, 2.0 * a]
            })
            .collect();
        let opts = DistillOptions {
            dims: 2,
            batch: 8,
            sif_coefficient: 1e-2,
        };
        let (table, explained) = distill_table(&rows, 3, &opts);
        assert_eq!(table.len(), 100);
        assert!((explained - 1.0).abs() < 1e-6, "{explained}");
        let pca = Pca::fit(&rows, 3, 2);
        let w = sif_weights(50, 1e-2);
        for (i, row) in rows.iter().enumerate() {
            let y = pca.transform(row);
            for d in 0..2 {
                assert!((table[i * 2 + d] - (f64::from(y[d]) * w[i]) as f32).abs() < 1e-5);
            }
        }
    }
}
