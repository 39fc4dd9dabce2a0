//! Router and guard artifacts shipped inside the binary, so a config (the embedded demo among them) can
//! say `router = "builtin:NAME"` and work from any directory. Each is the same file that
//! `eval/` trains and reports on; `docs/configuration.md` lists them with their training data.

use std::path::Path;

use switchyard_route::{Artifact, FORMAT_VERSION};

/// `(name, JSON)` of every built-in injection detector. Only the one trained on permissively
/// licensed sources ships (`eval/injection.md` says which).
pub const INJECTION_DETECTORS: &[(&str, &str)] = &[(
    "injection-permissive.v1",
    include_str!("../../../eval/artifacts/injection-permissive.v1.json"),
)];

/// `(name, JSON)` of every built-in toxicity detector (trained on MIT-licensed data,
/// `eval/toxicity.md`).
pub const TOXICITY_DETECTORS: &[(&str, &str)] = &[(
    "toxicity.v1",
    include_str!("../../../eval/artifacts/toxicity.v1.json"),
)];

/// `(name, JSON)` of every built-in harmful-request classifier (`eval/harmful.md`).
pub const HARMFUL_CLASSIFIERS: &[(&str, &str)] = &[(
    "harmful.v1",
    include_str!("../../../eval/artifacts/harmful.v1.json"),
)];

/// Loads `builtin:NAME` (one of [`HARMFUL_CLASSIFIERS`]) or a path as the harmful-request
/// classifier.
pub fn load_harmful(
    source: &str,
) -> Result<switchyard_textclass::harmful::HarmfulArtifact, String> {
    use switchyard_textclass::harmful::HarmfulArtifact;
    match source.strip_prefix("builtin:") {
        Some(name) => {
            let text = find(HARMFUL_CLASSIFIERS, name, "harmful-request classifier")?;
            HarmfulArtifact::from_json(text)
                .map_err(|e| format!("built-in classifier `{name}` does not parse: {e}"))
        }
        None => HarmfulArtifact::load(Path::new(source)).map_err(|e| error_chain(&e)),
    }
}

/// `(name, JSON)` of every built-in semantic-cache pair check (`eval/cache.md`).
pub const PAIR_CHECKS: &[(&str, &str)] = &[(
    "cache-pair-check.v1",
    include_str!("../../../eval/artifacts/cache-pair-check.v1.json"),
)];

/// Loads `builtin:NAME` (one of [`PAIR_CHECKS`]) or a path as the cache's pair check.
pub fn load_pair_check(source: &str) -> Result<switchyard_cache::pair::PairCheck, String> {
    match source.strip_prefix("builtin:") {
        Some(name) => {
            let text = find(PAIR_CHECKS, name, "pair check")?;
            switchyard_cache::pair::PairCheck::from_json(text)
                .map_err(|e| format!("built-in pair check `{name}` does not parse: {e}"))
        }
        None => {
            switchyard_cache::pair::PairCheck::load(Path::new(source)).map_err(|e| error_chain(&e))
        }
    }
}

/// Loads `builtin:NAME` (one of `builtins`) or a path as a text-classifier artifact.
pub fn load_classifier(
    source: &str,
    builtins: &[(&str, &'static str)],
) -> Result<switchyard_textclass::BinaryArtifact, String> {
    match source.strip_prefix("builtin:") {
        Some(name) => {
            let text = find(builtins, name, "detector")?;
            switchyard_textclass::BinaryArtifact::from_json(text)
                .map_err(|e| format!("built-in detector `{name}` does not parse: {e}"))
        }
        None => switchyard_textclass::BinaryArtifact::load(Path::new(source))
            .map_err(|e| error_chain(&e)),
    }
}

/// The JSON of built-in `name`, or a sentence listing what is built in.
fn find(builtins: &[(&str, &'static str)], name: &str, what: &str) -> Result<&'static str, String> {
    builtins
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            let names: Vec<&str> = builtins.iter().map(|(n, _)| *n).collect();
            format!(
                "no built-in {what} `{name}`; built in: {}",
                names.join(", ")
            )
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// `(name, JSON)` of every built-in router artifact.
pub const ROUTERS: &[(&str, &str)] = &[
    (
        "routellm-neighbours.v1",
        include_str!("../../../eval/artifacts/routellm-neighbours.v1.json"),
    ),
    (
        "routellm-mixtral-gpt4.v1",
        include_str!("../../../eval/artifacts/routellm-mixtral-gpt4.v1.json"),
    ),
];

/// Loads `builtin:NAME` from the binary, anything else as a file path. The error is a
/// sentence for a config diagnostic.
pub fn load_router(source: &str) -> Result<Artifact, String> {
    match source.strip_prefix("builtin:") {
        Some(name) => {
            let text = find(ROUTERS, name, "router")?;
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
        // The chain, so "reading … : No such file" says both what and why.
        None => Artifact::load(Path::new(source)).map_err(|e| error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_router_loads_with_heads() {
        for (name, _) in ROUTERS {
            let a = load_router(&format!("builtin:{name}")).unwrap();
            let estimator = a.estimator().unwrap();
            assert!(
                estimator
                    .head_position("mistralai/Mixtral-8x7B-Instruct-v0.1")
                    .is_some(),
                "{name}"
            );
        }
        assert!(load_router("builtin:nope")
            .unwrap_err()
            .contains("built in:"));
        assert!(load_router("/nonexistent/router.json")
            .unwrap_err()
            .contains("No such file"));
        for (name, _) in INJECTION_DETECTORS {
            load_classifier(&format!("builtin:{name}"), INJECTION_DETECTORS).unwrap();
        }
        for (name, _) in TOXICITY_DETECTORS {
            load_classifier(&format!("builtin:{name}"), TOXICITY_DETECTORS).unwrap();
        }
        for (name, _) in HARMFUL_CLASSIFIERS {
            load_harmful(&format!("builtin:{name}")).unwrap();
        }
        assert!(load_harmful("builtin:nope")
            .unwrap_err()
            .contains("built in:"));
    }
}
