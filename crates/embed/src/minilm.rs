//! all-MiniLM-L6-v2 with candle: BERT forward, mean pooling over the attention mask, L2
//! normalisation, the same recipe as sentence-transformers' `all-MiniLM-L6-v2` pipeline
//! (Transformer → Pooling(mean) → Normalize).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::{l2_normalize, EmbedError};

/// The files [`MiniLm::load`] needs, named in the missing-file error.
const FILES: &str = "model.safetensors, tokenizer.json and config.json";
/// sentence-transformers' `max_seq_length` for this model (`sentence_bert_config.json`); the
/// position table has 512 rows but the model was trained on at most 256 tokens.
pub(crate) const MAX_TOKENS: usize = 256;
/// Texts per forward pass: bounds the activation memory of one call (a 256-token batch of 32
/// is about 50 MB of attention scores) without costing speed.
const CHUNK: usize = 32;

/// One text's contextual token vectors ([`MiniLm::tokens`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenVectors {
    /// WordPiece ids of the text's tokens, in order, without `[CLS]` and `[SEP]`.
    pub ids: Vec<u32>,
    /// One unit-length vector per id.
    pub tokens: Vec<Vec<f32>>,
    /// The text's unit-length sentence vector, as [`MiniLm::embed`] gives it.
    pub pooled: Vec<f32>,
}

/// all-MiniLM-L6-v2 on the CPU. Loading takes ~0.2 s and ~100 MB; share one instance.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").field("dim", &self.dim).finish()
    }
}

pub(crate) fn require(dir: &Path, name: &str, wanted: &'static str) -> Result<PathBuf, EmbedError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmbedError::ModelMissing { path, wanted })
    }
}

impl MiniLm {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    ///
    /// The shipped tokenizer pads and truncates every input to 128 tokens; this replaces that
    /// with padding to the longest input of a batch and truncation at [`MAX_TOKENS`], so a
    /// 10-token input costs 10 tokens and long inputs are not cut at 128.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let dir = dir.as_ref();
        let weights = require(dir, "model.safetensors", FILES)?;
        let tokenizer_path = require(dir, "tokenizer.json", FILES)?;
        let config_path = require(dir, "config.json", FILES)?;

        let config_text =
            std::fs::read_to_string(&config_path).map_err(|source| EmbedError::Io {
                path: config_path.clone(),
                source,
            })?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|source| EmbedError::Json {
                path: config_path,
                source,
            })?;
        let dim = config.hidden_size;

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(EmbedError::tokenizer)?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token: "[PAD]".to_owned(),
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(EmbedError::tokenizer)?;

        let device = Device::Cpu;
        // Read into memory rather than mmap: mmap needs `unsafe`, which the workspace forbids,
        // and the file is 90 MB, read once at start-up.
        let bytes = std::fs::read(&weights).map_err(|source| EmbedError::Io {
            path: weights.clone(),
            source,
        })?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Self {
            model,
            tokenizer,
            device,
            dim,
        })
    }

    /// Width of the vectors (384).
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The tokenizer, with the padding and truncation this type sets.
    #[must_use]
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Unit-length embeddings of `texts`, in order. Results do not depend on how texts are
    /// batched (padding is masked out of attention and of the pooling).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            let (ids, mask) = self.encode(chunk)?;
            for mut v in self.pooled(&ids, &mask)? {
                l2_normalize(&mut v);
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One text; see [`MiniLm::embed`].
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut v = self.embed(&[text])?;
        v.pop()
            .ok_or_else(|| EmbedError::Inconsistent("no vector for one input".to_owned()))
    }

    /// Each text's contextual token vectors, before pooling: what a token-alignment check
    /// (BERTScore-style) compares, where the pooled vector has averaged the one differing
    /// entity away. `[CLS]` and `[SEP]` are left out of `tokens`; `pooled` is the text's
    /// vector exactly as [`MiniLm::embed`] gives it. Costs one forward pass, like `embed`.
    pub fn tokens(&self, texts: &[&str]) -> Result<Vec<TokenVectors>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(CHUNK) {
            let (ids, mask) = self.encode(chunk)?;
            let hidden = self.hidden(&ids, &mask)?;
            for ((row, ids), mask) in hidden.iter().zip(&ids).zip(&mask) {
                let real = mask.iter().filter(|m| **m == 1).count();
                let mut pooled = vec![0f32; self.dim];
                for v in &row[..real] {
                    for (p, x) in pooled.iter_mut().zip(v) {
                        *p += x;
                    }
                }
                l2_normalize(&mut pooled);
                // Positions 1..real-1: the text's own tokens, between [CLS] and [SEP].
                let inner = 1..real.saturating_sub(1).max(1);
                let tokens = row[inner.clone()]
                    .iter()
                    .map(|v| {
                        let mut v = v.clone();
                        l2_normalize(&mut v);
                        v
                    })
                    .collect();
                out.push(TokenVectors {
                    ids: ids[inner].to_vec(),
                    tokens,
                    pooled,
                });
            }
        }
        Ok(out)
    }

    /// Token ids and attention masks of `texts`, padded to the longest.
    #[expect(clippy::type_complexity, reason = "two parallel rows per text")]
    fn encode(&self, texts: &[&str]) -> Result<(Vec<Vec<u32>>, Vec<Vec<u32>>), EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(EmbedError::tokenizer)?;
        let ids = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
        let mask = encodings
            .iter()
            .map(|e| e.get_attention_mask().to_vec())
            .collect();
        Ok((ids, mask))
    }

    /// The last layer's outputs, one row per position of each sequence (padding included).
    fn hidden(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>, EmbedError> {
        match self.forward(ids, mask)? {
            Some((hidden, _)) => Ok(hidden.to_vec3::<f32>()?),
            None => Ok(Vec::new()),
        }
    }

    /// The forward pass over sequences the caller built: the last layer's outputs and the
    /// attention mask as tensors; `None` for no sequences.
    fn forward(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<u32>],
    ) -> Result<Option<(Tensor, Tensor)>, EmbedError> {
        let n = ids.len();
        if n == 0 {
            return Ok(None);
        }
        let len = ids[0].len();
        if ids.iter().chain(mask).any(|s| s.len() != len) || mask.len() != n {
            return Err(EmbedError::Inconsistent(
                "token id rows and mask rows must all have the same length".to_owned(),
            ));
        }
        let flat_ids: Vec<u32> = ids.iter().flatten().copied().collect();
        let flat_mask: Vec<u32> = mask.iter().flatten().copied().collect();
        let input_ids = Tensor::from_vec(flat_ids, (n, len), &self.device)?;
        let attention = Tensor::from_vec(flat_mask, (n, len), &self.device)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = self
            .model
            .forward(&input_ids, &token_types, Some(&attention))?;
        Ok(Some((hidden, attention)))
    }

    /// Mean-pooled, *unnormalised* outputs for sequences of token ids that the caller built
    /// (with any special tokens it wants). All sequences must have the same length; `mask`
    /// marks real tokens with 1. Distillation uses it to embed vocabulary tokens one by one.
    pub fn pooled(&self, ids: &[Vec<u32>], mask: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let Some((hidden, attention)) = self.forward(ids, mask)? else {
            return Ok(Vec::new());
        };
        // Mean over real tokens only: padded positions get weight 0, so a text's vector is the
        // same whatever else shares its batch.
        let weights = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        let counts = weights.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        Ok(mean.to_vec2::<f32>()?)
    }
}
