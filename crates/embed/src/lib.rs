//! In-process sentence embeddings on the CPU, for the semantic cache and the router.
//!
//! Two models, one vector space each:
//! - [`MiniLm`]: all-MiniLM-L6-v2 run with candle (BERT, mean pooling over the attention mask,
//!   L2 normalisation), 384 dimensions. Precise, milliseconds per call: use it where precision
//!   pays (checking a cache candidate) or off the critical path.
//! - [`StaticEmbedder`]: a Model2Vec-style static model (token → vector table, mean-pooled),
//!   256 dimensions, microseconds per call: the hot path. [`distill`] builds it from the MiniLM
//!   files, so nothing but MiniLM is ever downloaded.
//!
//! This crate owns model loading and the maths; it must not download anything (the files come
//! from `scripts/fetch-models.sh`), read config, or know about HTTP.

mod distill;
mod error;
mod minilm;
mod pca;
mod static_model;
mod wordpiece;

pub use distill::{distill, distill_table, sif_weights, DistillOptions, DistillReport};
pub use error::EmbedError;
pub use minilm::{MiniLm, TokenVectors};
pub use pca::{symmetric_eigen, Pca};
pub use static_model::StaticEmbedder;

/// Where `scripts/fetch-models.sh` installs MiniLM, relative to the repository root.
pub const MINILM_DIR: &str = "models/all-MiniLM-L6-v2";
/// Where `switchyard models distill` writes the static model, relative to the repository root.
pub const STATIC_DIR: &str = "models/minilm-static-256";

/// Scales `v` to unit length in place; leaves an all-zero vector as it is (an input with no
/// known tokens has no direction, and a NaN would poison every comparison).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}
