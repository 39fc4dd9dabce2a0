//! The CLI as a user meets it: exit codes, messages, the embedded demo.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{repo_file, spawn_demo, spawn_with_banner, stop, switchyard};

#[test]
fn config_check_accepts_the_examples() {
    for example in ["examples/demo.toml", "examples/production.toml"] {
        let out = switchyard()
            .args(["config", "check"])
            .arg(repo_file(example))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    }
}

/// `switchyard config check FILE`, expected to fail with exit code 1; its stderr.
fn config_check_fails(file: &std::path::Path) -> String {
    let out = switchyard()
        .args(["config", "check"])
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn config_check_reports_every_error_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo_file("examples/demo.toml"))
        .unwrap()
        .replace(
            "upstream_model = \"sim-medium\"",
            "upstream_model = \"sim-medum\"",
        )
        .replace("rpm = 600", "rpm = 0");
    std::fs::write(&file, text).unwrap();
    let err = config_check_fails(&file);
    assert!(err.contains("config has 2 errors"), "{err}");
    assert!(err.contains("bad.toml:"), "{err}");
    assert!(err.contains("`models.medium.deployments[0].upstream_model`: sim provider `sim` has no model `sim-medum`"), "{err}");
    assert!(
        err.contains("`keys[0].rpm`: must be greater than 0"),
        "{err}"
    );

    let out = switchyard()
        .args(["config", "check", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read config file /nonexistent.toml")
    );
}

/// Seven mistakes of different kinds in different sections of the demo config: `config
/// check` reports all of them in one run, each with its line and field, ordered by line; and
/// starting with the file prints the same list and fails.
#[test]
fn config_check_reports_every_mistake_of_a_file_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let demo = std::fs::read_to_string(repo_file("examples/demo.toml")).unwrap();
    let edits = [
        (
            "log_format = \"text\"",
            "log_format = \"text\"\nlog_colour = \"on\"",
        ),
        ("kind = \"sim\"", "kind = \"simulator\""),
        ("rpm = 600", "rpm = -5"),
        ("tpm = 2000000", "tpm = \"many\"\nxtpm = 1"),
        (
            "budget_usd_daily = 10.0",
            "budget_usd_daily = -1.0\nbudget_daily = 1",
        ),
        ("quality_tier = 1", "quality_tier = 1000"),
        ("[storage]", "[storage]\nmax_mb = 3"),
    ];
    let mut text = demo.clone();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&file, &text).unwrap();
    // (the start of the line, the field reported there), in the file's order
    let expected = [
        ("max_mb = ", "storage.max_mb"),
        ("log_colour = ", "telemetry.log_colour"),
        ("kind = \"simulator\"", "providers.sim.kind"),
        ("quality_tier = 1000", "models.small.quality_tier"),
        ("rpm = -5", "keys[0].rpm"),
        ("tpm = \"many\"", "keys[0].tpm"),
        ("xtpm = ", "keys[0].xtpm"),
        ("budget_usd_daily = -1.0", "keys[0].budget_usd_daily"),
        ("budget_daily = ", "keys[0].budget_daily"),
    ];

    let err = config_check_fails(&file);
    assert!(err.contains("config has 9 errors"), "{err}");
    let reported: Vec<&str> = err.lines().filter(|l| l.contains("bad.toml:")).collect();
    assert_eq!(reported.len(), expected.len(), "{err}");
    for ((needle, field), r) in expected.iter().zip(&reported) {
        let line = text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
        assert!(
            r.contains(&format!("bad.toml:{line}:")) && r.contains(&format!("`{field}`")),
            "{field} at line {line}:\n{err}"
        );
    }

    // Start-up says the same and does not start.
    let out = switchyard()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let start = String::from_utf8_lossy(&out.stderr);
    for r in &reported {
        assert!(start.contains(r.trim()), "{r}:\n{start}");
    }
}

#[test]
fn demo_refuses_to_listen_beyond_loopback() {
    let out = switchyard()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn keys_hash_prints_the_sha256() {
    let out = switchyard()
        .args(["keys", "hash", "sk-switchyard-demo"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483"
    );
    let out = switchyard().args(["keys", "new"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("secret_sha256: "));
}

#[tokio::test]
async fn the_embedded_demo_answers_with_its_published_key() {
    let cwd = tempfile::tempdir().unwrap();
    let (server, base) = spawn_demo(cwd.path());

    let http = reqwest::Client::new();
    let reply: serde_json::Value = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-switchyard-demo")
        .json(&serde_json::json!({"model": "small", "messages": [{"role": "user", "content": "What is the capital of France?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );

    // The self-hosted model on its simulated engine answers like the others.
    let local = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-switchyard-demo")
        .json(&serde_json::json!({"model": "local", "max_tokens": 5, "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    let local: serde_json::Value = local.json().await.unwrap();
    assert_eq!(local["usage"]["completion_tokens"], 5, "{local}");

    server.stop();
    assert!(cwd.path().join("switchyard-data/switchyard.db").exists());
}

#[tokio::test]
async fn the_simulator_serves_alone() {
    let (child, banner) =
        spawn_with_banner(switchyard().args(["sim", "--listen", "127.0.0.1:0"]), 1);
    let banner = &banner[0];
    let base = banner
        .strip_prefix("Switchyard simulator listening on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    let http = reqwest::Client::new();
    let models: serde_json::Value = http
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "sim-flaky",
            "sim-frontier",
            "sim-local",
            "sim-medium",
            "sim-small"
        ]
    );
    let reply: serde_json::Value = http
        .post(format!("{base}/chat/completions"))
        .json(&serde_json::json!({"model": "sim-small", "messages": [{"role": "user", "content": "capital of France?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    stop(child);
}

#[test]
fn route_explain_shows_the_demo_routers_decision() {
    let run = |args: &[&str]| {
        let out = switchyard().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["route", "explain", "Translate 'good morning' into Spanish."]);
    assert!(text.contains("policy:   balanced"), "{text}");
    assert!(text.contains("chosen:   small"), "{text}");
    assert!(text.contains("clears the bar"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run(&[
        "route",
        "explain",
        "--json",
        "--policy",
        "best",
        "Translate 'good morning' into Spanish.",
    ]))
    .unwrap();
    assert_eq!(json["model"], "frontier");
    let text = run(&["route", "explain", "Please review this code: fn main() {}"]);
    assert!(text.contains("rule:     `code-review` matched"), "{text}");
    assert!(text.contains("chosen:   medium"), "{text}");
    // From the repository root the demo finds the static model (scripts/fetch-models.sh) and
    // routes with the neighbour estimate, whose reasons are printed in words.
    let out = switchyard()
        .current_dir(repo_file(""))
        .args(["route", "explain", "Translate 'good morning' into Spanish."])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chosen:   small"), "{text}");
    assert!(text.contains("why small scores"), "{text}");
    assert!(
        text.contains("the most similar labelled prompts are"),
        "{text}"
    );
    assert!(text.contains("characters (shorter than"), "{text}");
    let out = switchyard()
        .args(["route", "explain", "--route", "nope", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no route `nope`"));
}

#[test]
fn router_report_reads_the_demo_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard()
        .current_dir(dir.path())
        .args(["router", "report", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["route"], "auto");
    assert_eq!(reports[0]["requests"], 0);
    assert!(reports[0]["trained_bars"][1].as_f64().unwrap() > 0.5);
}

/// A config of its own (not the demo), listening where the file says, data in `dir`.
fn own_config(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("own.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[storage]
data_dir = "{data}"

[providers.sim]
kind = "sim"
[providers.sim.models.sim-small]

[models.small]
deployments = [{{ provider = "sim", upstream_model = "sim-small" }}]

[[keys]]
id = "own"
secret_sha256 = "{hash}"
"#,
        data = dir.join("data").display(),
        hash = hex::encode(switchyard_control::hash_key("sk-own-test-key")),
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `cmd` (a gateway), checks that its banner begins with `banner` and that it answers
/// `/healthz`, then stops it.
async fn serves_health(cmd: &mut std::process::Command, banner: &str) {
    let (child, lines) = spawn_with_banner(cmd, 1);
    let base = lines[0]
        .strip_prefix(banner)
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_owned();
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    stop(child);
}

/// Serving is the default command: `switchyard --listen ADDR` runs the demo there.
#[tokio::test]
async fn listen_works_without_serve() {
    let cwd = tempfile::tempdir().unwrap();
    serves_health(
        switchyard()
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(cwd.path()),
        "Switchyard embedded demo listening on ",
    )
    .await;
}

/// `switchyard --config FILE` serves that file (its own listen address, not the demo).
#[tokio::test]
async fn config_works_without_serve() {
    let dir = tempfile::tempdir().unwrap();
    let file = own_config(dir.path());
    for flag in ["--config", "-c"] {
        serves_health(
            switchyard().arg(flag).arg(&file),
            "Switchyard listening on ",
        )
        .await;
    }
    assert!(dir.path().join("data/switchyard.db").exists());
}

#[test]
fn help_lists_the_serve_options_at_the_top_level() {
    let out = switchyard().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--config <FILE>"), "{help}");
    assert!(help.contains("--listen <ADDR>"), "{help}");
    assert!(help.contains("serve"), "{help}");
}

/// A serve option before another command is refused, saying why (it would be ignored).
#[test]
fn serve_options_do_not_mix_with_other_commands() {
    let out = switchyard()
        .args(["--listen", "127.0.0.1:0", "keys", "new"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(err.contains("--listen"), "{err}");
}

/// A SIGTERM sent the moment the banner is printed (as a supervisor restarting a fresh
/// replica may) is a clean shutdown, never a kill by the signal: the handlers are in place
/// before the banner. The gateway and the simulator, several times each.
#[test]
fn a_signal_right_after_the_banner_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = own_config(dir.path());
    for _ in 0..5 {
        let (gateway, _) = spawn_with_banner(switchyard().arg("--config").arg(&file), 1);
        stop(gateway);
        let (simulator, _) =
            spawn_with_banner(switchyard().args(["sim", "--listen", "127.0.0.1:0"]), 1);
        stop(simulator);
    }
}
