//! Where the shared evaluation data is, for every evaluation (`crates/*/examples`, the
//! `switchyard-eval` crate) and test that reads it: one rule, one message when it is absent.
//!
//! The folder is the one a command names (`--data`), else `$SWITCHYARD_DATA_DIR`, else
//! `../shared/data` beside the repository root. Reports write paths relative to the
//! repository root ([`shown`]), so no file of the project names one machine's folders.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The environment variable naming the data folder.
pub const ENV: &str = "SWITCHYARD_DATA_DIR";

/// The default folder, relative to the repository root.
pub const DEFAULT: &str = "../shared/data";

/// The repository root (of the checkout this crate was built from).
pub fn repo_root() -> PathBuf {
    normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The data folder: `given`, else `$SWITCHYARD_DATA_DIR`, else `../shared/data` beside the
/// repository root.
pub fn dir(given: Option<&Path>) -> PathBuf {
    match given {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os(ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => normalize(&repo_root().join(DEFAULT)),
        },
    }
}

/// `rel` (e.g. `topic/topic.dev.jsonl`) inside the data folder ([`dir`] of `None`).
pub fn path(rel: &str) -> PathBuf {
    dir(None).join(rel)
}

/// `file` when it exists, else an error saying where it was looked for and how to point
/// elsewhere.
pub fn require(file: PathBuf) -> Result<PathBuf, Missing> {
    if file.exists() {
        Ok(file)
    } else {
        Err(Missing { path: file })
    }
}

/// For an evaluation program: `file` when it exists, else the reason on stderr and exit
/// code 2.
pub fn require_or_exit(file: PathBuf) -> PathBuf {
    require(file).unwrap_or_else(|missing| {
        eprintln!("{missing}");
        std::process::exit(2)
    })
}

/// Evaluation data that is not where it was looked for.
#[derive(Debug)]
pub struct Missing {
    pub path: PathBuf,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no evaluation data at {}: name the data folder with {ENV}=DIR (or the command's \
             --data option); the default is {DEFAULT} beside the repository root",
            shown(&self.path)
        )
    }
}

impl std::error::Error for Missing {}

/// A path as reports and messages write it: relative to the repository root when it is
/// absolute (`../shared/data/topic/topic.dev.jsonl`, `models/minilm-static-256`), as given
/// otherwise.
pub fn shown(path: &Path) -> String {
    if !path.is_absolute() {
        return path.display().to_string();
    }
    let path = normalize(path);
    let root = repo_root();
    let common = root
        .components()
        .zip(path.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in root.components().skip(common) {
        rel.push("..");
    }
    for c in path.components().skip(common) {
        rel.push(c);
    }
    rel.display().to_string()
}

/// Removes `.` and `name/..` without touching the file system (links are not followed).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                if matches!(last, Some(Component::Normal(_))) {
                    out.pop();
                } else if !matches!(last, Some(Component::RootDir | Component::Prefix(_))) {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_relative_to_the_repository_root() {
        let root = repo_root();
        assert_eq!(
            shown(&root.join("../shared/data/topic/topic.dev.jsonl")),
            "../shared/data/topic/topic.dev.jsonl"
        );
        assert_eq!(
            shown(&root.join("crates/topics/../../models/minilm-static-256")),
            "models/minilm-static-256"
        );
        assert_eq!(shown(Path::new("data/x.jsonl")), "data/x.jsonl");
        let depth = root.components().count() - 1;
        assert_eq!(
            shown(Path::new("/elsewhere/data")),
            format!("{}elsewhere/data", "../".repeat(depth))
        );
    }

    #[test]
    fn the_default_folder_is_beside_the_repository() {
        assert_eq!(
            shown(&normalize(&repo_root().join(DEFAULT))),
            "../shared/data"
        );
        let missing = require(root_relative("no-such-file.jsonl")).unwrap_err();
        let message = missing.to_string();
        assert!(
            message.contains("no evaluation data at no-such-file.jsonl"),
            "{message}"
        );
        assert!(message.contains(ENV), "{message}");
    }

    fn root_relative(rel: &str) -> PathBuf {
        repo_root().join(rel)
    }
}
