//! The crate's one error type.

use std::path::PathBuf;

/// Why loading a model or embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is not where the caller said it is. The message tells the operator the
    /// exact command, because this is the error someone sees on the first run.
    #[error(
        "model file {} is missing; run `scripts/fetch-models.sh` from the repository root to \
         download all-MiniLM-L6-v2 into models/all-MiniLM-L6-v2/ and distill the static model \
         into models/minilm-static-256/ (or point the config at a folder holding {})",
        path.display(),
        wanted
    )]
    ModelMissing {
        /// The file that was looked for.
        path: PathBuf,
        /// The files that folder must hold.
        wanted: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (model config) could not be parsed.
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The tokenizer failed to load or to encode. `tokenizers` returns a boxed error that is
    /// not `std::error::Error`-compatible as a source, so its message is kept.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed (shapes, dtypes, safetensors contents).
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Model files load but disagree with each other (e.g. table rows ≠ vocabulary size).
    #[error("inconsistent model: {0}")]
    Inconsistent(String),
}

impl EmbedError {
    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        Self::Tokenizer(e.to_string())
    }
}
