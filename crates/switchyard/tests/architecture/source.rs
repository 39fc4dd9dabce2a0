//! The crates of the workspace and their parsed sources.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One crate: its folder from the workspace root (`crates/pii`) and every `src/**/*.rs`, keyed
/// by the path under `src/` (`sim/mod.rs`).
pub struct Crate {
    pub dir: String,
    pub files: BTreeMap<String, Source>,
}

pub struct Source {
    pub text: String,
    pub ast: syn::File,
}

impl Crate {
    /// A crate from inline sources, for the checker's own tests.
    pub fn from_sources(dir: &str, sources: &[(&str, &str)]) -> Result<Crate, String> {
        let mut files = BTreeMap::new();
        for (path, text) in sources {
            files.insert((*path).to_owned(), parse(dir, path, text)?);
        }
        Ok(Crate {
            dir: dir.to_owned(),
            files,
        })
    }

    /// Where a file is, as a reader finds it from the workspace root.
    pub fn path_of(&self, file: &str) -> String {
        format!("{}/src/{file}", self.dir)
    }
}

fn parse(dir: &str, path: &str, text: &str) -> Result<Source, String> {
    let ast = syn::parse_file(text).map_err(|e| {
        let at = e.span().start();
        format!("{dir}/src/{path}:{}: does not parse: {e}", at.line)
    })?;
    Ok(Source {
        text: text.to_owned(),
        ast,
    })
}

/// The workspace's root: two folders above this crate's manifest.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or(manifest)
}

/// Every member of the workspace (root `Cargo.toml`'s `members`, a trailing `/*` expanded,
/// `exclude` left out) that has a `src` folder, with its sources parsed.
pub fn workspace_crates(root: &Path) -> Result<Vec<Crate>, String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let manifest: toml::Table = manifest.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
    let list = |key: &str| -> Vec<String> {
        manifest
            .get("workspace")
            .and_then(|w| w.get(key))
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded = list("exclude");
    let mut dirs = Vec::new();
    for member in list("members") {
        match member.strip_suffix("/*") {
            Some(parent) => {
                for entry in fs::read_dir(root.join(parent)).map_err(|e| e.to_string())? {
                    let name = entry.map_err(|e| e.to_string())?.file_name();
                    dirs.push(format!("{parent}/{}", name.to_string_lossy()));
                }
            }
            None => dirs.push(member),
        }
    }
    dirs.retain(|d| !excluded.contains(d) && root.join(d).join("src").is_dir());
    dirs.sort();
    dirs.iter().map(|dir| load(root, dir)).collect()
}

fn load(root: &Path, dir: &str) -> Result<Crate, String> {
    let src = root.join(dir).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths).map_err(|e| format!("{dir}: {e}"))?;
    let mut files = BTreeMap::new();
    for path in paths {
        let rel = path
            .strip_prefix(&src)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .replace('\\', "/");
        let text = fs::read_to_string(&path).map_err(|e| format!("{dir}/src/{rel}: {e}"))?;
        files.insert(rel.clone(), parse(dir, &rel, &text)?);
    }
    Ok(Crate {
        dir: dir.to_owned(),
        files,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `#[cfg(test)]`, `#[test]` or `#[tokio::test]`: the item is test code.
pub fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "test")
            || (attr.path().is_ident("cfg")
                && attr
                    .meta
                    .require_list()
                    .is_ok_and(|list| list.tokens.to_string() == "test"))
    })
}
