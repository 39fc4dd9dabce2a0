//! Router artifacts shipped inside the binary, so a config (the embedded demo among them) can
//! say `router = "builtin:NAME"` and work from any directory. Each is the same file that
//! `eval/` trains and reports on; `docs/configuration.md` lists them with their training data.

use std::path::Path;

use switchyard_route::{Artifact, FORMAT_VERSION};

/// `(name, JSON)` of every built-in artifact.
pub const ROUTERS: &[(&str, &str)] = &[(
    "routellm-mixtral-gpt4.v1",
    include_str!("../../../eval/artifacts/routellm-mixtral-gpt4.v1.json"),
)];

/// Loads `builtin:NAME` from the binary, anything else as a file path. The error is a
/// sentence for a config diagnostic.
pub fn load_router(source: &str) -> Result<Artifact, String> {
    match source.strip_prefix("builtin:") {
        Some(name) => {
            let (_, text) = ROUTERS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                let names: Vec<&str> = ROUTERS.iter().map(|(n, _)| *n).collect();
                format!(
                    "no built-in router `{name}`; built in: {}",
                    names.join(", ")
                )
            })?;
            let artifact: Artifact = serde_json::from_str(text)
                .map_err(|e| format!("built-in router `{name}` does not parse: {e}"))?;
            if artifact.format_version != FORMAT_VERSION {
                return Err(format!(
                    "built-in router `{name}` has format version {}, this build reads {FORMAT_VERSION}",
                    artifact.format_version
                ));
            }
            Ok(artifact)
        }
        None => Artifact::load(Path::new(source)).map_err(|e| {
            // The chain, so "reading … : No such file" says both what and why.
            let mut msg = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                msg.push_str(": ");
                msg.push_str(&c.to_string());
                cause = c.source();
            }
            msg
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_router_loads_with_heads() {
        for (name, _) in ROUTERS {
            let a = load_router(&format!("builtin:{name}")).unwrap();
            assert!(!a.heads.is_empty(), "{name}");
        }
        assert!(load_router("builtin:nope")
            .unwrap_err()
            .contains("built in:"));
        assert!(load_router("/nonexistent/router.json")
            .unwrap_err()
            .contains("No such file"));
    }
}
