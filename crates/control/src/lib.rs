//! Configuration: parse one TOML file, validate all of it, and hand out an immutable
//! [`Config`] the data plane builds its pipeline from.
//!
//! Two steps, as the config compilers we admire do it: `shape` reads the file into the `raw`
//! types (unknown fields, wrong types, out-of-range numbers and unknown names all found in one
//! run, each mistake replaced by a neutral value so reading goes on), then `validate` checks
//! references, ranges and secrets and builds the typed [`Config`]. Every problem of both steps
//! is reported at once, ordered by place, each with the file, line, column and field path.
//! Start-up, `switchyard config check` and the admin API's config versions all go through
//! [`parse`].
//!
//! This crate does no network I/O and starts nothing; reading the file is its only I/O.

pub mod builtin;
mod cloud;
mod diag;
mod locate;
mod name;
pub mod prompt;
pub mod raw;
mod secret;
mod shape;
mod spec;
mod validate;

pub use cloud::*;
pub use diag::{ConfigError, Diagnostic};
pub use prompt::{
    BodyError, MessageTemplate, PromptCall, PromptCallError, PromptParams, PromptRef,
    PromptRefError, PromptTemplate, RenderError, Rendered, Selector, VariableSpec,
};
pub use secret::{hash_key, Secret, SecretUrl};
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
    let (raw, shape) = shape::read::<raw::RawConfig>(text);
    // A file with shape mistakes is still validated (with neutral stand-ins), so one run
    // reports both kinds.
    let issues = match raw.map(validate::validate) {
        Some(Ok((mut config, warnings))) if shape.is_empty() => {
            config.located_warnings = diag::located(text, origin, warnings);
            return Ok(config);
        }
        Some(Ok(_)) | None => Vec::new(),
        Some(Err(issues)) => issues,
    };
    Err(ConfigError::Invalid(diag::report(
        text, origin, shape, issues,
    )))
}
