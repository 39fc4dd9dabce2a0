//! The Kubernetes example (deploy/kubernetes/switchyard.yaml) is valid as far as it can be
//! checked without a cluster: its documents refer to each other (deploy/kubernetes/check.py,
//! with PyYAML from tests/sdk/requirements.txt), and its config passes Switchyard's own
//! validation once the placeholders for key hashes are filled in.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SWITCHYARD_PYTHON") {
        return p.into();
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

#[test]
fn the_kubernetes_example_is_consistent_and_its_config_validates() {
    let root = repo_root();
    let out = Command::new(python())
        .arg(root.join("deploy/kubernetes/check.py"))
        .arg(root.join("deploy/kubernetes/switchyard.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} (run scripts/test.sh, which installs PyYAML into .venv)",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[redis]"), "{text}");
    let filled = text
        .replace(
            "REPLACE-WITH-THE-SHA-256-OF-YOUR-ADMIN-KEY",
            &"a".repeat(64),
        )
        .replace("REPLACE-WITH-THE-SHA-256-OF-A-KEY", &"b".repeat(64));
    let config = switchyard_control::parse(&filled, "deploy/kubernetes/switchyard.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.keys.len(), 1);
    assert!(config.redis.is_some());
}
