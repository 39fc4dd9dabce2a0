//! A Model2Vec-style static embedding model: tokenize, look each token's vector up in a table,
//! mean-pool, L2-normalise. No neural network at inference, so a call costs microseconds.
//!
//! On disk (a folder, written by [`StaticEmbedder::save`] and by `switchyard models distill`):
//! `model.safetensors` with one f32 tensor `embeddings` of shape `[vocabulary, dim]`,
//! `tokenizer.json`, and `config.json` saying how it was made.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use crate::minilm::require;
use crate::wordpiece::FastWordPiece;
use crate::{l2_normalize, EmbedError};

const FILES: &str = "model.safetensors and tokenizer.json (made by `switchyard models distill`)";
/// Tokens looked at per input; Model2Vec's default. Pooling is linear, so this only bounds the
/// work a pathological input can cause.
const MAX_TOKENS: usize = 512;
/// Bytes of text the reference tokenizer reads at most: room for `MAX_TOKENS` of the longest
/// tokens and the spaces between them.
const REFERENCE_MAX_BYTES: usize = MAX_TOKENS * 128;

/// Name of the table inside `model.safetensors` (Model2Vec's name, so its tools can read it).
const TENSOR: &str = "embeddings";

/// Static token-table embeddings. Cheap to clone the output, immutable, `Send + Sync`.
pub struct StaticEmbedder {
    tokenizer: Tokenizer,
    /// Row-major `[vocabulary, dim]`.
    table: Vec<f32>,
    dim: usize,
    /// Unknown-word pieces carry no meaning; Model2Vec drops them before pooling.
    unk_id: Option<u32>,
    /// The ASCII fast path, when the tokenizer is BERT's uncased WordPiece.
    fast: Option<FastWordPiece>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("rows", &self.rows())
            .field("dim", &self.dim)
            .finish()
    }
}

impl StaticEmbedder {
    /// Builds a model from a tokenizer and a row-major table `dim` wide. Padding and truncation
    /// are switched off on the tokenizer: pooling does not need them and they only cost time.
    pub fn from_parts(
        mut tokenizer: Tokenizer,
        table: Vec<f32>,
        dim: usize,
    ) -> Result<Self, EmbedError> {
        if dim == 0 || !table.len().is_multiple_of(dim) {
            return Err(EmbedError::Inconsistent(format!(
                "table of {} values is not a whole number of {dim}-wide rows",
                table.len()
            )));
        }
        let rows = table.len() / dim;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > rows {
            return Err(EmbedError::Inconsistent(format!(
                "tokenizer has {vocab} tokens but the table only {rows} rows"
            )));
        }
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(EmbedError::tokenizer)?;
        let unk_id = ["[UNK]", "<unk>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t));
        let fast = FastWordPiece::from_tokenizer(&tokenizer);
        Ok(Self {
            tokenizer,
            table,
            dim,
            unk_id,
            fast,
        })
    }

    /// Loads `model.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let dir = dir.as_ref();
        let weights = require(dir, "model.safetensors", FILES)?;
        let tokenizer_path = require(dir, "tokenizer.json", FILES)?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(EmbedError::tokenizer)?;
        let (table, dim) = read_table(&weights)?;
        Self::from_parts(tokenizer, table, dim)
    }

    /// Writes `model.safetensors`, `tokenizer.json` and `config.json` (with `extra` merged
    /// into it) to `dir`, creating it.
    pub fn save(
        &self,
        dir: impl AsRef<Path>,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), EmbedError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| EmbedError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let table = Tensor::from_slice(&self.table, (self.rows(), self.dim), &Device::Cpu)?;
        let tensors = HashMap::from([(TENSOR.to_owned(), table)]);
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
        self.tokenizer
            .save(dir.join("tokenizer.json"), false)
            .map_err(EmbedError::tokenizer)?;
        let mut config = serde_json::Map::new();
        config.insert("model_type".into(), "model2vec".into());
        config.insert("hidden_dim".into(), self.dim.into());
        config.insert("normalize".into(), true.into());
        config.extend(extra);
        let path = dir.join("config.json");
        let text =
            serde_json::to_string_pretty(&serde_json::Value::Object(config)).map_err(|source| {
                EmbedError::Json {
                    path: path.clone(),
                    source,
                }
            })?;
        std::fs::write(&path, text).map_err(|source| EmbedError::Io { path, source })
    }

    /// Width of the vectors.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows in the table (at least the vocabulary size).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.table.len() / self.dim
    }

    /// The tokenizer this model pools over.
    #[must_use]
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text`, without special tokens (they are in every input, so they carry
    /// no signal), capped at 512.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        if let Some(fast) = &self.fast {
            let mut ids = Vec::with_capacity(text.len() / 3 + 1);
            if fast.encode(text, MAX_TOKENS, &mut ids).is_some() {
                return Ok(ids);
            }
        }
        self.token_ids_reference(text)
    }

    /// [`StaticEmbedder::token_ids`] through the full `tokenizers` pipeline only: the
    /// reference the ASCII fast path is tested against.
    pub fn token_ids_reference(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        // Only the first 512 tokens count, and a WordPiece token is at most 100 characters:
        // cutting the text first bounds the work a huge prompt (a caller's) costs here.
        let text = &text[..text.floor_char_boundary(REFERENCE_MAX_BYTES)];
        let enc = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(EmbedError::tokenizer)?;
        let ids = enc.get_ids();
        Ok(ids[..ids.len().min(MAX_TOKENS)].to_vec())
    }

    /// Unit-length embedding of `text` (all zeros when no token is known).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_ids(&self.token_ids(text)?))
    }

    /// [`StaticEmbedder::embed`] for each text, in order.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts.iter().map(|t| self.embed(t)).collect()
    }

    /// Mean of the table rows of `ids` (unknown and out-of-range ids skipped), L2-normalised.
    #[must_use]
    pub fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let mut sum = vec![0.0f32; self.dim];
        for &id in ids {
            if Some(id) == self.unk_id {
                continue;
            }
            let start = id as usize * self.dim;
            if let Some(row) = self.table.get(start..start + self.dim) {
                for (s, x) in sum.iter_mut().zip(row) {
                    *s += x;
                }
            }
        }
        // The mean's direction is the sum's: normalising the sum gives the mean pooling's
        // result without the division.
        l2_normalize(&mut sum);
        sum
    }
}

/// The `embeddings` table of a safetensors file (`float32`, rows x dim), read straight into
/// the vector that keeps it. Through candle the file's bytes, a tensor and the vector were
/// three copies of the table at start-up (90 MB for the 30,522 x 256 model), which the
/// allocator kept after they were freed (issue 18).
fn read_table(path: &Path) -> Result<(Vec<f32>, usize), EmbedError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |what: String| EmbedError::Inconsistent(format!("{}: {what}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES || header_len + 8 > file_len {
        return Err(bad(format!("header of {header_len} bytes")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|source| EmbedError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let info: TensorInfo = header
        .get(TENSOR)
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| {
            bad(format!(
                "no `{TENSOR}` tensor of dtype, shape and data_offsets"
            ))
        })?;
    let [rows, dim] = info.shape[..] else {
        return Err(bad(format!(
            "`{TENSOR}` has shape {:?}, not rows x dim",
            info.shape
        )));
    };
    let [start, end] = info.data_offsets;
    let floats = rows
        .checked_mul(dim)
        .filter(|n| n.checked_mul(4) == end.checked_sub(start));
    let (Some(floats), "F32") = (floats, info.dtype.as_str()) else {
        return Err(bad(format!(
            "`{TENSOR}` is {} {rows} x {dim} in bytes {start}..{end}, not float32",
            info.dtype
        )));
    };
    if 8 + header_len + end as u64 > file_len {
        return Err(bad("the table runs past the end of the file".to_owned()));
    }
    let mut table = vec![0f32; floats];
    file.seek(SeekFrom::Start(8 + header_len + start as u64))
        .map_err(io)?;
    file.read_exact(bytemuck::cast_slice_mut(&mut table))
        .map_err(io)?;
    // safetensors is little-endian: a no-op on little-endian machines.
    for v in &mut table {
        *v = f32::from_bits(u32::from_le(v.to_bits()));
    }
    Ok((table, dim))
}

/// A safetensors header above this is not one this code wrote (the format caps it at 100 MB).
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor's entry in a safetensors header.
#[derive(serde::Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_reference_tokenizer_reads_a_bounded_prefix() {
        // Two-byte characters and spaces far past the bound: the ids are those of the prefix.
        let m = tiny();
        let huge = "é cat ".repeat(50_000);
        let cut = &huge[..huge.floor_char_boundary(REFERENCE_MAX_BYTES)];
        assert_eq!(
            m.token_ids_reference(&huge).unwrap(),
            m.token_ids_reference(cut).unwrap()
        );
    }

    use super::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;

    /// A four-word vocabulary with 2-wide vectors: enough to check lookup, pooling, unknown
    /// words and normalisation by hand.
    pub(crate) fn tiny() -> StaticEmbedder {
        let vocab: std::collections::HashMap<String, u32> =
            [("[UNK]", 0), ("cat", 1), ("dog", 2), ("car", 3)]
                .into_iter()
                .map(|(w, i)| (w.to_owned(), i))
                .collect();
        let model = WordLevel::builder()
            .vocab(vocab.into_iter().collect())
            .unk_token("[UNK]".to_owned())
            .build()
            .unwrap();
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace {}));
        let table = vec![
            9.0, 9.0, // [UNK]: must never count
            1.0, 0.0, // cat
            0.0, 1.0, // dog
            3.0, 4.0, // car
        ];
        StaticEmbedder::from_parts(tok, table, 2).unwrap()
    }

    #[test]
    fn pools_and_normalises() {
        let m = tiny();
        assert_eq!(m.embed("car").unwrap(), vec![0.6, 0.8]);
        let v = m.embed("cat dog").unwrap();
        let r = 0.5f32.sqrt();
        assert!((v[0] - r).abs() < 1e-6 && (v[1] - r).abs() < 1e-6);
    }

    #[test]
    fn unknown_words_are_skipped_and_empty_input_is_zero() {
        let m = tiny();
        assert_eq!(m.embed("car zebra").unwrap(), m.embed("car").unwrap());
        assert_eq!(m.embed("zebra").unwrap(), vec![0.0, 0.0]);
        assert_eq!(m.embed("").unwrap(), vec![0.0, 0.0]);
        assert_eq!(
            m.embed_ids(&[99]),
            vec![0.0, 0.0],
            "out-of-range ids are ignored"
        );
    }

    #[test]
    fn batch_equals_one_by_one() {
        let m = tiny();
        let batch = m.embed_batch(&["cat", "dog car"]).unwrap();
        assert_eq!(batch[0], m.embed("cat").unwrap());
        assert_eq!(batch[1], m.embed("dog car").unwrap());
    }

    #[test]
    fn save_and_load_round_trip() {
        let m = tiny();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path(), serde_json::Map::new()).unwrap();
        let back = StaticEmbedder::load(dir.path()).unwrap();
        assert_eq!(back.dim(), 2);
        assert_eq!(
            back.embed("cat dog car").unwrap(),
            m.embed("cat dog car").unwrap()
        );
    }

    #[test]
    fn rejects_a_table_smaller_than_the_vocabulary() {
        let m = tiny();
        let err = StaticEmbedder::from_parts(m.tokenizer.clone(), vec![0.0; 6], 2).unwrap_err();
        assert!(err.to_string().contains("4 tokens"), "{err}");
    }

    #[test]
    fn missing_folder_says_how_to_get_the_files() {
        let err = StaticEmbedder::load("/nonexistent/static").unwrap_err();
        assert!(err.to_string().contains("scripts/fetch-models.sh"), "{err}");
    }

    #[test]
    fn what_save_writes_load_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let m = tiny();
        m.save(dir.path(), serde_json::Map::new()).unwrap();
        let (table, dim) = read_table(&dir.path().join("model.safetensors")).unwrap();
        assert_eq!((table, dim), (m.table.clone(), m.dim));
        let back = StaticEmbedder::load(dir.path()).unwrap();
        assert_eq!(back.embed("cat car").unwrap(), m.embed("cat car").unwrap());
    }

    #[test]
    fn a_file_that_is_not_such_a_table_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let header = br#"{"embeddings":{"dtype":"F16","shape":[4,2],"data_offsets":[0,16]}}"#;
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            u64::MAX.to_le_bytes().to_vec(),
            [&(header.len() as u64).to_le_bytes()[..], header, &[0u8; 16]].concat(),
            [&(header.len() as u64).to_le_bytes()[..], header].concat(),
            [&4u64.to_le_bytes()[..], b"{}  "].concat(),
        ];
        for bytes in cases {
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_table(&path).is_err(), "{bytes:?}");
        }
    }
}
