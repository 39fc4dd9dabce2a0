//! Black-box: the real `switchyard` binary, started on 127.0.0.1:0, driven by the official
//! OpenAI and Anthropic Python SDKs (tests/sdk/), then stopped with SIGTERM: it must exit
//! cleanly with every request recorded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python that has the SDK: `SWITCHYARD_PYTHON`, the repo's `.venv`, or `python3`.
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

/// Kills the gateway if the test fails before stopping it.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn openai_python_sdk_against_the_binary() {
    let py = python();
    let has_sdk = Command::new(&py)
        .args(["-c", "import anthropic, openai, pytest"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_sdk,
        "{} lacks the openai or anthropic SDK or pytest: run scripts/test.sh (it makes .venv) or `pip install -r tests/sdk/requirements.txt`",
        py.display()
    );

    let data = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(repo_root().join("tests/sdk/gateway.toml"))
        .unwrap()
        .replace(
            "[server]",
            &format!(
                "[storage]\ndata_dir = {:?}\n\n[server]",
                data.path().display().to_string()
            ),
        );
    let config_path = data.path().join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut gateway = Gateway(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    let base = first_line
        .trim()
        .strip_prefix("Switchyard listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
        .to_owned();

    let status = Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo_root().join("tests/sdk"))
        .env("SWITCHYARD_BASE_URL", format!("{base}/v1"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the SDK conformance tests failed (output above)"
    );

    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = gateway.0.wait().unwrap();
    assert!(exit.success(), "gateway exit after SIGTERM: {exit:?}");
    let store = switchyard_store::SqliteStore::open_in(data.path()).unwrap();
    let records = store.recent(1000).unwrap();
    assert!(
        records.len() >= 15,
        "every SDK request is recorded, got {}",
        records.len()
    );
    assert!(records.iter().any(|r| r.status == 429));
    assert!(records
        .iter()
        .any(|r| r.status == 502 && r.model.as_deref() == Some("broken")));
    assert!(
        records
            .iter()
            .any(|r| r.endpoint == "messages" && r.stream && r.status == 200),
        "the Anthropic SDK's requests are recorded as `messages`"
    );
}
