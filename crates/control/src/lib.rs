//! Configuration: parse one TOML file, validate all of it, and hand out an immutable
//! [`Config`] the data plane builds its pipeline from.
//!
//! Two steps, as the config compilers we admire do it: serde parses the file into `raw` types
//! (unknown fields refused), then `validate` checks references, ranges and secrets and builds
//! the typed [`Config`], collecting every problem it finds, each with the file, line and field
//! path. Startup and `switchyard config check` go through the same `load` path.
//!
//! This crate does no network I/O and starts nothing; reading the file is its only I/O.

pub mod builtin;
mod diag;
mod locate;
pub mod prompt;
pub mod raw;
mod secret;
mod spec;
mod validate;

pub use diag::{ConfigError, Diagnostic};
pub use prompt::{
    BodyError, MessageTemplate, PromptCall, PromptCallError, PromptParams, PromptRef,
    PromptRefError, PromptTemplate, RenderError, RenderLimits, Rendered, Selector, VariableSpec,
};
pub use secret::{hash_key, Secret};
pub use spec::*;

use std::path::Path;

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates config text; `origin` names it in diagnostics (a file path).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| diag::syntax_error(text, origin, &e))?;
    let (mut config, warnings) = validate::validate(raw)
        .map_err(|issues| ConfigError::Invalid(diag::located(text, origin, issues)))?;
    config.located_warnings = diag::located(text, origin, warnings);
    Ok(config)
}
