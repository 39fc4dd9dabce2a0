//! The admin CLI against the real binary serving a real config: config versions applied,
//! diffed, listed and rolled back, prompts pushed and labelled, flags set and deleted, the
//! audit log listed and verified (and its tampering found), and the exit codes scripts rely on.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::path::Path;
use std::process::Child;

use common::{repo_file, spawn_with_banner, switchyard};

const ADMIN: &str = "sk-test-admin";
const KEY: &str = "sk-test-key";

fn hash(key: &str) -> String {
    hex::encode(switchyard_control::hash_key(key))
}

/// A config with the admin key, storage in `data_dir`, one sim model and one key.
fn config(data_dir: &Path) -> String {
    format!(
        r#"[admin]
secret_sha256 = "{admin}"

[storage]
data_dir = {data_dir:?}

[providers.sim]
kind = "sim"

[providers.sim.models.fast]
ttft_ms = {{ p50 = 1 }}
output_tokens = {{ p50 = 4 }}

[models.fast]
deployments = [{{ provider = "sim" }}]

[[keys]]
id = "test"
secret_sha256 = "{key}"
"#,
        admin = hash(ADMIN),
        data_dir = data_dir.display().to_string(),
        key = hash(KEY),
    )
}

/// The gateway binary on a free port; killed when dropped, also when a test panics.
struct Gateway {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, config(&dir.path().join("data"))).unwrap();
        let (child, banner) = spawn_with_banner(
            switchyard()
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&file),
            1,
        );
        let url = banner[0]
            .strip_prefix("Switchyard listening on ")
            .unwrap_or_else(|| panic!("{banner:?}"))
            .to_owned();
        Gateway { child, url, dir }
    }

    /// Runs the CLI against this gateway with the admin key from the environment.
    fn cli(&self, args: &[&str]) -> Run {
        let out = switchyard()
            .args(args)
            .env("SWITCHYARD_URL", &self.url)
            .env("SWITCHYARD_ADMIN_KEY", ADMIN)
            .env("SWITCHYARD_ACTOR", "ci-test")
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// As [`Gateway::cli`], expecting success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.cli(args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        run.stdout
    }

    /// As [`Gateway::cli`], expecting exit code `code` and nothing on stdout; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let run = self.cli(args);
        assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        run.stderr
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The data rows of a table (its header dropped).
fn rows(table: &str) -> Vec<&str> {
    table.lines().skip(1).collect()
}

fn short_id(line: &str, prefix: &str) -> String {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
    let id: String = rest.chars().take(12).collect();
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    id
}

#[test]
fn config_versions_apply_diff_and_roll_back() {
    let gw = Gateway::start();
    let history = gw.ok(&["config", "history"]);
    assert_eq!(rows(&history).len(), 1, "{history}");
    assert!(rows(&history)[0].starts_with('*'), "{history}");

    let base = config(&gw.dir.path().join("data"));
    let next = format!(
        "{base}\n[models.extra]\ndeployments = [{{ provider = \"sim\", upstream_model = \"fast\" }}]\n"
    );
    let next_file = gw.write("next.toml", &next);
    let diff = gw.ok(&["config", "diff", &next_file]);
    assert!(diff.contains("+[models.extra]"), "{diff}");

    let applied = gw.ok(&[
        "config",
        "apply",
        &next_file,
        "-m",
        "add extra",
        "--reason",
        "ticket 42",
    ]);
    let first_line = applied.lines().next().unwrap();
    let second = short_id(first_line, "applied ");
    assert!(first_line.contains("(parent "), "{applied}");
    assert!(applied.contains("+[models.extra]"), "{applied}");
    let again = gw.ok(&["config", "apply", &next_file]);
    assert_eq!(
        again.trim(),
        format!("unchanged: {second} is already running")
    );
    assert!(gw
        .ok(&["config", "diff", &next_file])
        .starts_with("no changes"));

    let history = gw.ok(&["config", "history"]);
    let lines = rows(&history);
    assert_eq!(lines.len(), 2, "{history}");
    assert!(lines[0].starts_with(&format!("*  {second}")), "{history}");
    assert!(lines[0].contains("ci-test"), "{history}");
    assert!(lines[0].contains("add extra; ticket 42"), "{history}");

    // A broken file: the diff names the line and exits 1; apply is refused with exit 1.
    let broken = next.replace("id = \"test\"\n", "id = \"test\"\nrpm = 0\n");
    let broken_line = broken.lines().position(|l| l.starts_with("rpm")).unwrap() + 1;
    let broken_file = gw.write("broken.toml", &broken);
    let err = gw.fails(&["config", "diff", &broken_file], 1);
    assert!(err.contains("broken.toml has 1 problem"), "{err}");
    assert!(
        err.contains(&format!(":{broken_line}:")),
        "line {broken_line}: {err}"
    );
    assert!(
        err.contains("`keys[0].rpm`: must be greater than 0"),
        "{err}"
    );
    let err = gw.fails(&["config", "apply", &broken_file], 1);
    assert!(err.starts_with("error: invalid_config: "), "{err}");

    // Rollback to the version before, then forward again by prefix, as JSON.
    let back = gw.ok(&["config", "rollback", "--reason", "extra misbehaves"]);
    let first = short_id(back.lines().next().unwrap(), "rolled back to ");
    assert_ne!(first, second);
    assert!(back
        .lines()
        .next()
        .unwrap()
        .ends_with(&format!("(was {second})")));
    assert!(back.contains("-[models.extra]"), "{back}");
    let json: serde_json::Value =
        serde_json::from_str(&gw.ok(&["config", "rollback", "--to", &second[..8], "--json"]))
            .unwrap();
    assert!(json["version"].as_str().unwrap().starts_with(&second));
    assert_eq!(json["changed"], true);
    let history = gw.ok(&["config", "history", "--limit", "10"]);
    assert_eq!(rows(&history).len(), 4, "{history}");
    assert!(rows(&history)[0].starts_with(&format!("*  {second}")));

    let err = gw.fails(&["config", "rollback", "--to", "0000000000"], 1);
    assert!(err.starts_with("error: "), "{err}");

    // A file that cannot be read is a usage error, found before any call.
    let err = gw.fails(&["config", "apply", "/nonexistent.toml"], 2);
    assert!(err.contains("cannot read /nonexistent.toml"), "{err}");
}

#[test]
fn prompts_flags_and_the_audit_log() {
    let gw = Gateway::start();

    // Prompts: one file with a label, then a directory in name order.
    let example = repo_file("examples/prompts/support-answer.toml");
    let pushed = gw.ok(&[
        "prompt",
        "push",
        example.to_str().unwrap(),
        "--label",
        "production",
        "-m",
        "first",
    ]);
    assert_eq!(
        pushed.trim(),
        "support-answer: version 1 (new), labelled production"
    );
    let text = std::fs::read_to_string(&example).unwrap();
    gw.write(
        "prompts/b-support.toml",
        &text.replace("Be brief", "Be brief and kind"),
    );
    gw.write(
        "prompts/a-greeting.toml",
        "name = \"greeting\"\nmodel = \"fast\"\n[[messages]]\nrole = \"user\"\ncontent = \"Hello\"\n",
    );
    gw.write("prompts/notes.txt", "not a prompt");
    let dir = gw.dir.path().join("prompts");
    let push_dir = || gw.ok(&["prompt", "push", dir.to_str().unwrap()]);
    assert_eq!(
        push_dir().lines().collect::<Vec<_>>(),
        [
            "greeting: version 1 (new)",
            "support-answer: version 2 (new)"
        ]
    );
    assert_eq!(
        push_dir().lines().collect::<Vec<_>>(),
        [
            "greeting: version 1 (unchanged)",
            "support-answer: version 2 (unchanged)"
        ]
    );
    let list = gw.ok(&["prompt", "list"]);
    assert_eq!(rows(&list).len(), 2, "{list}");
    assert!(rows(&list)[1].contains("production=1"), "{list}");
    let moved = gw.ok(&[
        "prompt",
        "label",
        "support-answer",
        "production",
        "2",
        "--reason",
        "reviewed",
    ]);
    assert_eq!(moved.trim(), "support-answer@production: version 1 -> 2");
    let shown = gw.ok(&["prompt", "show", "support-answer"]);
    assert!(
        shown.starts_with("support-answer  labels: production=2"),
        "{shown}"
    );
    let versions = rows(&shown);
    assert_eq!(versions.len(), 3, "{shown}"); // the column header, then versions 2 and 1
    assert!(
        versions[1].starts_with("2 ") && versions[1].contains("production"),
        "{shown}"
    );
    assert!(versions[2].contains("first"), "{shown}");
    let template = gw.ok(&["prompt", "show", "support-answer", "--version", "2"]);
    assert!(template.contains("Be brief and kind"), "{template}");
    let err = gw.fails(&["prompt", "show", "nope"], 1);
    assert!(err.contains("prompt_not_found"), "{err}");
    gw.fails(&["prompt", "label", "support-answer", "production", "9"], 1);

    // Flags.
    assert_eq!(gw.ok(&["flag", "list"]).trim(), "no flags set");
    let set = gw.ok(&[
        "flag",
        "set",
        "cache",
        "--percent",
        "2.5",
        "--reason",
        "incident 7",
    ]);
    assert_eq!(set.trim(), "flag cache: percentage 2.5% (was: not set)");
    let set = gw.ok(&["flag", "set", "cache", "--off", "--disabled"]);
    assert_eq!(
        set.trim(),
        "flag cache: boolean off, disabled (was: percentage 2.5%)"
    );
    gw.ok(&["flag", "set", "guards.policy", "--variant", "default=100"]);
    let list = gw.ok(&["flag", "list"]);
    assert_eq!(
        rows(&list),
        [
            "cache          boolean  off          no",
            "guards.policy  variant  default=100  yes"
        ],
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&gw.ok(&["flag", "list", "--json"])).unwrap();
    assert_eq!(
        json["flags"][0]["kind"],
        serde_json::json!({"type": "boolean", "on": false})
    );
    let err = gw.fails(&["flag", "set", "cache.smantic", "--on"], 1);
    assert!(err.contains("no stage reads `cache.smantic`"), "{err}");
    gw.fails(&["flag", "set", "cache", "--on", "--percent", "5"], 2);
    assert_eq!(
        gw.ok(&["flag", "delete", "cache"]).trim(),
        "flag cache deleted (was: boolean off, disabled)"
    );
    let err = gw.fails(&["flag", "delete", "cache"], 1);
    assert!(err.contains("no_such_flag"), "{err}");

    // The audit log: every change above, by this actor, then intact.
    let audit = gw.ok(&["audit", "list"]);
    let actions: Vec<&str> = rows(&audit)
        .iter()
        .map(|r| r.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "config.apply",
            "prompt.push",
            "prompt.label",
            "prompt.push",
            "prompt.push",
            "prompt.label",
            "flag.set",
            "flag.set",
            "flag.set",
            "flag.delete"
        ],
        "{audit}"
    );
    assert!(rows(&audit)[6].contains("ci-test"), "{audit}");
    assert!(rows(&audit)[6].contains("incident 7"), "{audit}");
    let after = gw.ok(&["audit", "list", "--after", "8", "--diff"]);
    assert!(after.lines().nth(1).unwrap().starts_with("9 "), "{after}");
    assert!(
        after.contains("    +  \"key\": \"guards.policy\","),
        "{after}"
    );
    assert_eq!(
        gw.ok(&["audit", "verify"]).trim(),
        "audit log intact: 10 entries"
    );

    // Someone edits the log behind the gateway's back: verify fails with exit 1.
    let db = rusqlite::Connection::open(gw.dir.path().join("data/switchyard.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'nothing to see' WHERE seq = 7;",
    )
    .unwrap();
    drop(db);
    let err = gw.fails(&["audit", "verify"], 1);
    assert!(err.starts_with("audit log broken at entry 7"), "{err}");
}

#[test]
fn a_wrong_admin_key_is_refused_with_exit_1() {
    let gw = Gateway::start();
    let err = gw.fails(&["flag", "list", "--admin-key", "sk-wrong"], 1);
    assert!(err.contains("invalid_api_key"), "{err}");
    assert!(err.contains("SWITCHYARD_ADMIN_KEY"), "{err}");
    assert!(!err.contains("sk-wrong"), "{err}");
}

#[test]
fn usage_and_connection_failures_have_their_own_exit_codes() {
    // No admin key: clap's usage error.
    let out = switchyard().args(["audit", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-key"));

    // Nothing listens on port 1.
    let out = switchyard()
        .args(["audit", "verify", "--url", "http://127.0.0.1:1"])
        .env("SWITCHYARD_ADMIN_KEY", "sk-secret-admin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach the gateway at http://127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("sk-secret-admin"), "{err}");

    // A value no HTTP header can carry is refused before anything is sent.
    let out = switchyard()
        .args(["audit", "verify", "--url", "http://127.0.0.1:1"])
        .args(["--admin-key", "k", "--actor", "two\nlines"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("printable ASCII"));

    let out = switchyard()
        .args(["flag", "list", "--url", "ftp://example", "--admin-key", "k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let help = switchyard()
        .args(["config", "apply", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("SWITCHYARD_URL"), "{help}");
}

#[test]
fn rollouts_start_show_pause_and_promote() {
    let gw = Gateway::start();
    let text = std::fs::read_to_string(gw.dir.path().join("switchyard.toml")).unwrap();
    let two = gw.write(
        "two.toml",
        &format!("{text}\n[models.fast-v2]\ndeployments = [{{ provider = \"sim\", upstream_model = \"fast\" }}]\n"),
    );
    gw.ok(&["config", "apply", &two]);

    let started = gw.ok(&[
        "rollout",
        "start",
        "model",
        "fast",
        "fast-v2",
        "--id",
        "v2",
        "--steps",
        "10,100",
        "--min-step-secs",
        "0",
        "--min-samples",
        "5",
        "--reason",
        "try v2",
    ]);
    assert!(
        started.starts_with(
            "rollout v2: model fast -> fast-v2: running, candidate serves 10% of users"
        ),
        "{started}"
    );
    assert!(
        started.contains("started: 10% of users to the candidate"),
        "{started}"
    );
    let list = gw.ok(&["rollout", "status"]);
    assert_eq!(rows(&list).len(), 1, "{list}");
    assert!(rows(&list)[0].contains("fast -> fast-v2"), "{list}");

    let paused = gw.ok(&["rollout", "pause", "v2", "--reason", "lunch"]);
    assert!(paused.contains(": paused,"), "{paused}");
    let shown = gw.ok(&["rollout", "status", "v2"]);
    assert!(shown.contains("paused at step 1"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&gw.ok(&["rollout", "status", "v2", "--json"])).unwrap();
    assert_eq!(json["rollout"]["state"]["state"], "paused");

    let promoted = gw.ok(&["rollout", "promote", "v2"]);
    assert!(
        promoted.contains("promoted, candidate serves 100% of users"),
        "{promoted}"
    );
    // A finished rollout refuses more actions; a bad kind is the gateway's refusal.
    let err = gw.fails(&["rollout", "resume", "v2"], 1);
    assert!(err.contains("already finished"), "{err}");
    let err = gw.fails(&["rollout", "start", "deployment", "a", "b"], 1);
    assert!(err.contains("not one of"), "{err}");

    // A config version, staged (not applied), then rolled out to a share of users.
    let staged = gw.ok(&["config", "apply", &two, "--stage"]);
    assert!(
        staged.contains("unchanged") || staged.starts_with("staged"),
        "{staged}"
    );
    let three = gw.write(
        "three.toml",
        &format!("{}\n# three\n", std::fs::read_to_string(&two).unwrap()),
    );
    let staged = gw.ok(&["config", "apply", &three, "--stage", "-m", "three"]);
    assert!(staged.starts_with("staged "), "{staged}");
    let id: String = staged["staged ".len()..].chars().take(12).collect();
    let started = gw.ok(&["rollout", "start", "config", "running", &id, "--id", "cfg"]);
    assert!(
        started.contains(": running, candidate serves 5% of users"),
        "{started}"
    );
    gw.ok(&["rollout", "abort", "cfg", "--reason", "not today"]);
    gw.fails(
        &[
            "rollout", "start", "model", "fast", "fast-v2", "--steps", "5,lots",
        ],
        2,
    );
    let audit = gw.ok(&["audit", "list"]);
    for action in ["rollout.running", "rollout.paused", "rollout.promoted"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
}

#[test]
fn slo_rules_from_a_config_and_status_from_a_gateway() {
    let out = switchyard()
        .args(["slo", "rules", "--config"])
        .arg(repo_file("examples/demo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("availability"), "{yaml}");
    assert!(yaml.contains("14.4"), "{yaml}");
    // The route's latency bar (15 s) is no histogram bucket bound, so it cannot be expressed;
    // its route could (the metrics carry a route label).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auto-latency") && stderr.contains("not a bucket bound"),
        "{stderr}"
    );

    let gw = Gateway::start();
    let status = gw.ok(&["slo", "status"]);
    assert!(status.contains("no SLOs are declared"), "{status}");
}
