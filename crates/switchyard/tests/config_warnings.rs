//! `switchyard config check` on a valid config that is probably a mistake: it passes (exit 0)
//! and says what looks wrong, with the file, line and field.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{repo_file, switchyard};

#[test]
fn config_check_warns_about_an_upstream_on_the_metadata_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meta.toml");
    let text = std::fs::read_to_string(repo_file("examples/production.toml")).unwrap();
    let (before, after) = text.split_once("base_url = \"").unwrap();
    let rest = after.split_once('"').unwrap().1;
    let text = format!("{before}base_url = \"http://169.254.169.254/latest\"{rest}");
    let line = before.lines().count() + 1;
    std::fs::write(&file, text).unwrap();
    let out = switchyard()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in {stdout}"));
    assert!(
        warning.contains(&format!("meta.toml:{line}: `providers."))
            && warning.contains(
                ".base_url`: `http://169.254.169.254/latest` points at a cloud metadata service"
            ),
        "{warning}"
    );
    assert!(stdout.contains("meta.toml: ok ("), "{stdout}");
}

#[test]
fn serve_logs_the_same_warnings_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meta.toml");
    std::fs::write(
        &file,
        format!(
            r#"[storage]
data_dir = {:?}

[telemetry]
log_format = "text"

[providers.up]
kind = "openai"
base_url = "http://169.254.169.254/v1"

[models.m]
deployments = [{{ provider = "up" }}]

[[keys]]
id = "k"
secret_sha256 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
"#,
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = switchyard()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The log up to the line that says the gateway listens (or to the end, if it stopped).
    let mut log = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let Ok(line) = line else { break };
        let listening = line.contains("listening");
        log.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.last().is_some_and(|l| l.contains("listening")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("WARN")
            && l.contains("meta.toml:9: `providers.up.base_url`: `http://169.254.169.254/v1` points at a cloud metadata service")),
        "{log:#?}"
    );
}
