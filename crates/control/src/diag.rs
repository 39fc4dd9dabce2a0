use std::fmt;

use crate::locate;
use crate::shape::Problem;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; always given for a config file (a field the file lacks points at the deepest
    /// enclosing table it has, or the file's start).
    pub line: Option<usize>,
    /// 1-based, in characters, where the line is given and the place is known exactly.
    pub column: Option<usize>,
    /// Dotted field path, e.g. `models.small.deployments[0].provider`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
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
        column: None,
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
            column: None,
            path,
            message,
        })
        .collect()
}

/// Every problem of a config file, ordered by place: the shape's (`shape::read`) and
/// validation's `(field path, message)` issues. A validation issue at or under a path whose
/// value the shape reader replaced is a consequence of that stand-in, already reported.
pub(crate) fn report(
    text: &str,
    origin: &str,
    shape: Vec<Problem>,
    issues: Vec<(String, String)>,
) -> Vec<Diagnostic> {
    let replaced: Vec<&str> = shape.iter().filter_map(|p| p.replaced.as_deref()).collect();
    let under = |path: &str, root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    let index = locate::Locator::new(text);
    let mut out: Vec<Diagnostic> = issues
        .into_iter()
        .filter(|(path, _)| !replaced.iter().any(|root| under(path, root)))
        .map(|(path, message)| {
            // The file's start, when nothing of the path is in the file.
            let (line, column) = index.position_of_path(&path).unwrap_or((1, 1));
            Diagnostic {
                file: origin.to_owned(),
                line: Some(line),
                column: Some(column),
                path,
                message,
            }
        })
        .collect();
    for p in &shape {
        let (line, column) = locate::position_of_offset(text, p.span.start);
        out.push(Diagnostic {
            file: origin.to_owned(),
            line: Some(line),
            column: Some(column),
            path: p.path.clone(),
            message: p.message.clone(),
        });
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}
