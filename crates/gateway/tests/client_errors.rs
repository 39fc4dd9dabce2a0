//! What a client is told when it cannot be served: every 400 names the field it is about
//! (`param`) wherever the gateway knows it, and is `null`, never `"?"`, where it does not; a
//! body with junk after its JSON is refused; every 429 and 503 says when to come back
//! (`retry-after`).

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{admin_section, hex_sha256, start_with_env, TestGateway, ADMIN, KEY};
use reqwest::Method;
use serde_json::{json, Value};
use switchyard_testkit::{Behavior, FakeUpstream, Flavor};

const LIMITED: &str = "sk-limited";
const BROKE: &str = "sk-broke";

fn config(openai: &FakeUpstream, anthropic: &FakeUpstream) -> String {
    format!(
        r#"
{admin}
[providers.sim]
kind = "sim"
[providers.sim.models.fast]
ttft_ms = {{ p50 = 0 }}
output_tokens = {{ p50 = 4 }}

[providers.strict]
kind = "sim"
breaker = {{ consecutive_failures = 2, open_secs = 60 }}
[providers.strict.models.broken]
error_rate = 1.0

[providers.up]
kind = "openai"
base_url = "{openai}"
api_key_env = "UP_KEY"

[providers.claude]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "CLAUDE_KEY"

[models.small]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}
[models.private]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]
[models.breaks]
deployments = [{{ provider = "strict", upstream_model = "broken" }}]
resilience = {{ max_attempts = 1 }}
[models.limited-upstream]
deployments = [{{ provider = "up" }}]
resilience = {{ max_attempts = 1 }}
[models.claude]
deployments = [{{ provider = "claude", upstream_model = "claude-x" }}]

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
models = ["small", "breaks", "limited-upstream", "claude"]

[[keys]]
id = "limited"
secret_sha256 = "{limited}"
models = ["small"]
rpm = 1

[[keys]]
id = "broke"
secret_sha256 = "{broke}"
models = ["small"]
budget_usd_daily = 0.000000001
"#,
        admin = admin_section(),
        openai = openai.base_url(),
        anthropic = anthropic.base_url(),
        limited = hex_sha256(LIMITED),
        broke = hex_sha256(BROKE),
    )
}

struct Setup {
    gw: TestGateway,
    _openai: FakeUpstream,
    _anthropic: FakeUpstream,
}

async fn setup() -> Setup {
    let openai = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let anthropic = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let gw = start_with_env(
        &config(&openai, &anthropic),
        &[("UP_KEY", "sk-up"), ("CLAUDE_KEY", "sk-claude")],
    )
    .await;
    // The OpenAI upstream rate-limits the gateway, saying when to come back.
    for _ in 0..8 {
        openai.push(Behavior::rate_limited("7"));
    }
    Setup {
        gw,
        _openai: openai,
        _anthropic: anthropic,
    }
}

/// A request of a table: method, path, the key, a raw body, extra headers.
struct Ask<'a> {
    method: Method,
    path: &'a str,
    key: &'a str,
    body: Option<String>,
    headers: &'a [(&'a str, &'a str)],
}

fn chat(body: Value) -> Ask<'static> {
    raw("/v1/chat/completions", body.to_string())
}

fn raw(path: &'static str, body: String) -> Ask<'static> {
    Ask {
        method: Method::POST,
        path,
        key: KEY,
        body: Some(body),
        headers: &[],
    }
}

fn admin_get(path: &str) -> Ask<'_> {
    Ask {
        method: Method::GET,
        path,
        key: ADMIN,
        body: None,
        headers: &[],
    }
}

async fn send(gw: &TestGateway, ask: &Ask<'_>) -> reqwest::Response {
    let mut r = gw
        .http
        .request(ask.method.clone(), gw.url(ask.path))
        .bearer_auth(ask.key)
        .header("content-type", "application/json");
    for (name, value) in ask.headers {
        r = r.header(*name, *value);
    }
    if let Some(body) = &ask.body {
        r = r.body(body.clone());
    }
    r.send().await.unwrap()
}

fn hi() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

#[tokio::test]
async fn every_client_error_names_its_field_or_says_null() {
    let s = setup().await;
    let ok = json!({"model": "small", "messages": hi()}).to_string();
    let cases: Vec<(&str, Ask<'_>, u16, Option<&str>)> = vec![
        // Bodies that are not one JSON value.
        (
            "junk after the JSON",
            raw("/v1/chat/completions", format!("{ok} junk")),
            400,
            None,
        ),
        (
            "a second object",
            raw("/v1/chat/completions", format!("{ok}{ok}")),
            400,
            None,
        ),
        (
            "a stray brace",
            raw("/v1/chat/completions", format!("{ok}}}")),
            400,
            None,
        ),
        (
            "broken JSON",
            raw("/v1/chat/completions", r#"{"model": "small",, }"#.into()),
            400,
            None,
        ),
        (
            "cut short",
            raw(
                "/v1/chat/completions",
                r#"{"model": "small", "messages": [{"role": "us"#.into(),
            ),
            400,
            Some("messages[0].role"),
        ),
        // Fields of the request.
        (
            "no model",
            chat(json!({"messages": hi()})),
            400,
            Some("model"),
        ),
        (
            "model not a string",
            chat(json!({"model": 5, "messages": hi()})),
            400,
            Some("model"),
        ),
        (
            "no messages",
            chat(json!({"model": "small", "messages": []})),
            400,
            Some("messages"),
        ),
        (
            "bad role",
            chat(json!({"model": "small", "messages": [{"role": "wizard", "content": "x"}]})),
            400,
            Some("messages[0].role"),
        ),
        (
            "bad content",
            chat(json!({"model": "small", "messages": [{"role": "user", "content": 5}]})),
            400,
            Some("messages[0].content"),
        ),
        (
            "n",
            chat(json!({"model": "small", "messages": hi(), "n": 9})),
            400,
            Some("n"),
        ),
        (
            "temperature",
            chat(json!({"model": "small", "messages": hi(), "temperature": 3})),
            400,
            Some("temperature"),
        ),
        (
            "max_tokens",
            chat(json!({"model": "small", "messages": hi(), "max_tokens": 0})),
            400,
            Some("max_tokens"),
        ),
        (
            "stream_options",
            chat(
                json!({"model": "small", "messages": hi(), "stream_options": {"include_usage": true}}),
            ),
            400,
            Some("stream_options"),
        ),
        (
            "context",
            chat(json!({"model": "small", "messages": hi(), "context": 5})),
            400,
            Some("context"),
        ),
        (
            "unknown model",
            chat(json!({"model": "gpt-99", "messages": hi()})),
            404,
            Some("model"),
        ),
        (
            "model not allowed",
            chat(json!({"model": "private", "messages": hi()})),
            403,
            Some("model"),
        ),
        (
            "cache header",
            Ask {
                headers: &[("x-switchyard-cache-control", "sometimes")],
                ..chat(json!({"model": "small", "messages": hi()}))
            },
            400,
            Some("x-switchyard-cache-control"),
        ),
        // A request the provider cannot express, named inside the message.
        (
            "part the provider cannot take",
            chat(
                json!({"model": "claude", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            ),
            400,
            Some("messages[0].content[0].type"),
        ),
        (
            "role the provider cannot take",
            chat(
                json!({"model": "claude", "messages": [{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "x"}]}),
            ),
            400,
            Some("messages[1].role"),
        ),
        // Embeddings and feedback.
        (
            "embeddings junk",
            raw(
                "/v1/embeddings",
                r#"{"model": "small", "input": "x"} ]"#.into(),
            ),
            400,
            None,
        ),
        (
            "embeddings without input",
            raw("/v1/embeddings", r#"{"model": "small"}"#.into()),
            400,
            Some("input"),
        ),
        (
            "feedback junk",
            raw(
                "/v1/feedback",
                r#"{"request_id": "r", "score": 1} x"#.into(),
            ),
            400,
            None,
        ),
        (
            "feedback without id",
            raw("/v1/feedback", r#"{"score": 1}"#.into()),
            400,
            Some("request_id"),
        ),
        (
            "feedback score",
            raw("/v1/feedback", r#"{"request_id": "r", "score": 3}"#.into()),
            400,
            Some("score"),
        ),
        (
            "feedback with nothing",
            raw("/v1/feedback", r#"{"request_id": "r"}"#.into()),
            400,
            Some("score"),
        ),
        // The admin API.
        (
            "audit query",
            admin_get("/admin/v1/audit?after=soon"),
            400,
            Some("after"),
        ),
        (
            "audit both",
            admin_get("/admin/v1/audit?after=3&latest=true"),
            400,
            Some("after"),
        ),
        (
            "kpi format",
            admin_get("/admin/v1/kpis/summary?format=xml"),
            400,
            Some("format"),
        ),
        (
            "path",
            admin_get("/admin/v1/prompts/p/versions/latest"),
            400,
            Some("version"),
        ),
        (
            "config text",
            Ask {
                key: ADMIN,
                ..raw(
                    "/admin/v1/config",
                    json!({"source": "[models.x]\nprice = 5\n"}).to_string(),
                )
            },
            400,
            Some("source"),
        ),
        (
            "admin junk",
            Ask {
                key: ADMIN,
                ..raw("/admin/v1/config/rollback", r#"{"to": "abc"} {}"#.into())
            },
            400,
            None,
        ),
        (
            "rollback to nothing",
            Ask {
                key: ADMIN,
                ..raw("/admin/v1/config/rollback", r#"{"to": "abcdef"}"#.into())
            },
            404,
            Some("to"),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, ask, status, param) in &cases {
        let r = send(&s.gw, ask).await;
        let got_status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        // `param` is always there, null when nothing is known.
        let got_param = body["error"].get("param");
        let expected = param.map_or(Value::Null, |p| json!(p));
        if got_status != *status || got_param != Some(&expected) {
            wrong.push(format!(
                "{what}: expected {status} {expected}, got {got_status} {got_param:?}: {}",
                body["error"]["message"]
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_429_and_503_says_when_to_retry() {
    let s = setup().await;
    let gw = &s.gw;
    let small = json!({"model": "small", "messages": hi()});
    // Warm the limited key up to its limit, and open the breaker (two failures in a row).
    assert_eq!(
        send(
            gw,
            &Ask {
                key: LIMITED,
                ..chat(small.clone())
            }
        )
        .await
        .status(),
        200
    );
    for _ in 0..2 {
        let r = send(gw, &chat(json!({"model": "breaks", "messages": hi()}))).await;
        assert_eq!(r.status(), 502);
    }
    // A budget is checked before a request and may be overshot by one: the broke key's first
    // request spends it.
    let first = Ask {
        key: BROKE,
        ..chat(small.clone())
    };
    assert_eq!(send(gw, &first).await.status(), 200);
    // Every feedback write fails, as on a full disk.
    rusqlite::Connection::open(gw.dir.path().join("switchyard.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON feedback BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();

    // (what, request, status, code, the retry-after it must carry: exact, or a range)
    let cases: Vec<(&str, Ask<'_>, u16, &str, std::ops::RangeInclusive<u64>)> = vec![
        (
            "requests per minute",
            Ask {
                key: LIMITED,
                ..chat(small.clone())
            },
            429,
            "rate_limit_exceeded",
            1..=60,
        ),
        (
            "daily budget",
            Ask {
                key: BROKE,
                ..chat(small.clone())
            },
            429,
            "budget_exceeded",
            1..=86_400,
        ),
        (
            "upstream rate limit",
            chat(json!({"model": "limited-upstream", "messages": hi()})),
            503,
            "upstream_rate_limited",
            7..=7,
        ),
        // The breaker opened for 60 s: come back when it lets a probe through, not at once.
        (
            "circuit open",
            chat(json!({"model": "breaks", "messages": hi()})),
            503,
            "upstream_unavailable",
            2..=60,
        ),
        (
            "store unavailable",
            raw(
                "/v1/feedback",
                r#"{"request_id": "r-1", "score": 1}"#.into(),
            ),
            503,
            "store_unavailable",
            1..=1,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, ask, status, code, after) in &cases {
        let r = send(gw, ask).await;
        let got = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let body: Value = r.json().await.unwrap();
        let fine = got == *status
            && body["error"]["code"] == *code
            && retry_after.is_some_and(|s| after.contains(&s));
        if !fine {
            wrong.push(format!(
                "{what}: expected {status} {code} retry-after in {after:?}, got {got} {} retry-after {retry_after:?}",
                body["error"]["code"]
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn readiness_says_when_to_look_again() {
    let s = setup().await;
    // Another writer holds the store: readiness finds it not writable once the busy wait ends.
    let blocker = rusqlite::Connection::open(s.gw.dir.path().join("switchyard.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let r = s.gw.http.get(s.gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    blocker.execute_batch("COMMIT;").unwrap();
    let r = s.gw.http.get(s.gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("retry-after"));
}
