//! Keys' limits over real HTTP: a spend budget under concurrency (admission reserves each
//! request's worst case, settled with the truth), the output cap the provider is held to,
//! and OpenAI's `x-ratelimit-*` headers on answers and on the gateway's own 429s.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{start, start_with_env, user, TestGateway, LONG_ANSWERS};
use serde_json::{json, Value};
use switchyard_testkit::{FakeUpstream, Flavor, Reply};

const NANOS_PER_USD: u64 = 1_000_000_000;

#[tokio::test]
async fn a_daily_budget_holds_under_64_concurrent_requests() {
    let mut gw = start(LONG_ANSWERS).await;
    let bodies = common::long_stories(64);
    let sends = bodies.iter().map(|b| async {
        let r = gw.chat(b.clone()).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, text)
    });
    let answers = futures::future::join_all(sends).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&String> = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(ok + refused.len(), 64, "{answers:?}");
    assert!(ok >= 1, "the first requests are served");
    assert!(
        refused.iter().all(|t| t.contains("budget_exceeded")),
        "{refused:?}"
    );
    gw.stop().await;

    // What one request may cost at most: its prompt at one token per byte of the whole body
    // (more than the gateway's own bound), its output at the model's 1,000 tokens.
    let price = |prompt: u64, output: u64| prompt * 1_000 + output * 10_000;
    let worst = bodies
        .iter()
        .map(|b| price(b.to_string().len() as u64, 1_000))
        .max()
        .unwrap();
    let records = gw.records();
    let spent: u64 = records.iter().map(|r| r.cost_nanos).sum();
    let budget = NANOS_PER_USD / 20;
    assert!(
        spent <= budget + worst,
        "spent {spent} nano-USD against a budget of {budget} and one worst case of {worst}"
    );
    // The provider was held to the output reserved for: no answer went past 1,000 tokens,
    // although the model would have written 2,000.
    assert!(
        records.iter().all(|r| r.completion_tokens <= 1_000),
        "{records:?}"
    );
    assert!(records.iter().any(|r| r.completion_tokens == 1_000));
}

fn upstream_config(up: &FakeUpstream, key_limits: &str) -> String {
    format!(
        r#"
{}
max_output_tokens = 777

[models.free]
deployments = [{{ provider = "up" }}]

[limits]
default_max_output_tokens = 555

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
{key_limits}
"#,
        common::openai_model(up)
    )
}

/// The `max_completion_tokens` the upstream received for one request.
async fn cap_sent(gw: &TestGateway, up: &FakeUpstream, body: Value) -> Value {
    let r = gw.chat(body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    up.last_request().unwrap().body["max_completion_tokens"].clone()
}

#[tokio::test]
async fn a_key_with_a_budget_holds_the_provider_to_the_output_it_reserved() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start_with_env(&upstream_config(&up, "budget_usd_daily = 5.0"), &[]).await;
    let ask = |model: &str| json!({"model": model, "messages": user("hi")});
    // No cap from the caller: the model's maximum, else `[limits]`'s default.
    assert_eq!(cap_sent(&gw, &up, ask("m")).await, json!(777));
    assert_eq!(cap_sent(&gw, &up, ask("free")).await, json!(555));
    // The caller's own cap is sent as the caller wrote it.
    let mut capped = ask("m");
    capped["max_tokens"] = json!(50);
    assert_eq!(cap_sent(&gw, &up, capped).await, Value::Null);
    assert_eq!(up.last_request().unwrap().body["max_tokens"], 50);

    // A key whose limits count neither tokens nor money: the request goes as it came.
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = start_with_env(&upstream_config(&up, "rpm = 100"), &[]).await;
    assert_eq!(cap_sent(&gw, &up, ask("m")).await, Value::Null);
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `(limit, remaining)` of the `x-ratelimit-*-{what}` trio of an answer, whose reset must be
/// in OpenAI's form.
fn window(r: &reqwest::Response, what: &str) -> (u32, u32) {
    let get = |name: &str| {
        let full = format!("x-ratelimit-{name}-{what}");
        header(r, &full).unwrap_or_else(|| panic!("no {full}: {:?}", r.headers()))
    };
    let reset = get("reset");
    assert!(is_openai_duration(&reset), "{what}: {reset}");
    (
        get("limit").parse().unwrap(),
        get("remaining").parse().unwrap(),
    )
}

/// A reset as OpenAI writes it: `20ms`, `1s`, `8.64s`, `6m0s`, `1h2m3.5s`.
fn is_openai_duration(s: &str) -> bool {
    let number = |t: &str| {
        !t.is_empty()
            && t.split('.').count() <= 2
            && t.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(ms) = s.strip_suffix("ms") {
        return number(ms);
    }
    let Some(rest) = s.strip_suffix('s') else {
        return false;
    };
    let rest = match rest.split_once('h') {
        Some((h, rest)) if number(h) && !h.contains('.') && rest.contains('m') => rest,
        Some(_) => return false,
        None => rest,
    };
    match rest.split_once('m') {
        Some((m, sec)) => number(m) && !m.contains('.') && number(sec),
        None => number(rest),
    }
}

#[tokio::test]
async fn answers_and_refusals_carry_openai_rate_limit_headers() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("one"));
    up.push(Reply::text("two"));
    let gw = start_with_env(&upstream_config(&up, "rpm = 2\ntpm = 100000"), &[]).await;
    let plain = json!({"model": "m", "messages": user("hi"), "max_tokens": 10});
    let r = gw.chat(plain.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(window(&r, "requests"), (2, 1));
    let (limit, remaining) = window(&r, "tokens");
    assert_eq!(limit, 100_000);
    // Reserved: the output cap of 10 and the prompt's bound (a few dozen tokens for "hi").
    assert!(
        (99_000..100_000 - 10).contains(&remaining),
        "the request's tokens are reserved: {remaining}"
    );

    // Streamed answers carry them too.
    let mut streamed = plain.clone();
    streamed["stream"] = json!(true);
    let r = gw.chat(streamed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(window(&r, "requests"), (2, 0));
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    // The gateway's own 429 says the same, with nothing left.
    let r = gw.chat(plain.clone()).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(window(&r, "requests"), (2, 0));

    // A key without rpm or tpm has no such headers.
    let gw = start_with_env(&upstream_config(&up, ""), &[]).await;
    let r = gw.chat(plain).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !r.headers()
            .keys()
            .any(|k| k.as_str().starts_with("x-ratelimit-")),
        "{:?}",
        r.headers()
    );
}

#[test]
fn the_duration_check_knows_openais_forms() {
    for ok in [
        "20ms", "1s", "8.64s", "6m0s", "1m30.5s", "1h0m0s", "1h2m3.5s",
    ] {
        assert!(is_openai_duration(ok), "{ok}");
    }
    for bad in ["", "s", "1", "1.s", "ms", "1h", "1h5s", "1.5m0s"] {
        assert!(!is_openai_duration(bad), "{bad}");
    }
}
