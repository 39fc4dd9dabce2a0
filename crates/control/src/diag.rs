use std::fmt;

use crate::locate;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; `None` when the field is missing and no enclosing table was found.
    pub line: Option<usize>,
    /// Dotted field path, e.g. `models.small.deployments[0].provider`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    let mut out = format!(
        "config has {} error{}:",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
    for d in diags {
        out.push_str("\n  ");
        out.push_str(&d.to_string());
    }
    out
}

/// A file serde could not read (bad TOML, a wrong type, an unknown field), as one diagnostic.
pub(crate) fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| locate::line_of_offset(text, locate::refine_unknown_field(text, s, e.message())));
    ConfigError::Invalid(vec![Diagnostic {
        file: origin.to_owned(),
        line,
        path: String::new(),
        message: e.message().trim().to_owned(),
    }])
}

/// Validation issues `(field path, message)` with the line of each path in `text`.
pub(crate) fn located(text: &str, origin: &str, issues: Vec<(String, String)>) -> Vec<Diagnostic> {
    let index = locate::Locator::new(text);
    issues
        .into_iter()
        .map(|(path, message)| Diagnostic {
            file: origin.to_owned(),
            line: index.line_of_path(&path),
            path,
            message,
        })
        .collect()
}
