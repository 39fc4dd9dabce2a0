//! Anthropic's Messages API over real HTTP: `/v1/messages` whole and streamed, tools, images,
//! `count_tokens`, errors in Anthropic's shape with their status codes, `x-api-key` and
//! Bearer keys, and the same pipeline as chat completions (records, limits) on the simulator
//! and on an Anthropic upstream.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{hex_sha256, start, start_with_env, KEY};
use serde_json::{json, Value};
use switchyard_testkit::{Ending, FakeUpstream, Flavor, Reply};

const LIMITED: &str = "sk-limited";

/// `, "name"` for each `[models.name]` of `extra`: the test key may use them.
fn models_in(extra: &str) -> String {
    extra
        .lines()
        .filter_map(|l| l.strip_prefix("[models.")?.strip_suffix(']'))
        .map(|m| format!(", \"{m}\""))
        .collect()
}

fn config(extra: &str) -> String {
    format!(
        r#"{sim}[providers.sim.models.broken]
error_rate = 1.0
error_status = 503

[models.small]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }}
[models.secret]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]
[models.broken]
deployments = [{{ provider = "sim", upstream_model = "broken" }}]
resilience = {{ max_attempts = 1 }}

[[keys]]
id = "test"
tenant = "acme"
secret_sha256 = "{{KEY}}"
models = ["small", "broken"{added}]

[[keys]]
id = "limited"
secret_sha256 = "{limited}"
models = ["small"]
rpm = 1
{extra}
"#,
        sim = common::SIM_FAST,
        limited = hex_sha256(LIMITED),
        added = models_in(extra),
    )
}

const WEATHER: &str = r#"{"name": "get_weather", "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
    "required": ["city"]}}"#;

fn weather_tool() -> Value {
    serde_json::from_str(WEATHER).unwrap()
}

async fn post(
    gw: &common::TestGateway,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = gw.http.post(gw.url(path)).json(&body);
    if let Some(key) = key {
        request = request
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01");
    }
    request.send().await.unwrap()
}

/// `POST /v1/messages` with the test key.
async fn message(gw: &common::TestGateway, body: Value) -> reqwest::Response {
    post(gw, "/v1/messages", Some(KEY), body).await
}

/// The status and the body, which must be Anthropic's error shape.
async fn anthropic_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    let kind = body["error"]["type"].as_str().unwrap().to_owned();
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    (status, kind, message)
}

/// The `(event name, data)` pairs of an Anthropic event stream.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "the event name is its data's type");
            (name.to_owned(), data)
        })
        .collect()
}

#[tokio::test]
async fn a_message_is_answered_in_anthropic_shape_and_recorded() {
    let mut gw = start(&config("")).await;
    let r = message(
        &gw,
        json!({"model": "small", "max_tokens": 100,
               "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
               "messages": [{"role": "user", "content": "What is the capital of France?"}],
               "metadata": {"user_id": "u-7"}, "temperature": 0.2, "top_k": 5}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-switchyard-model"],
        "small; deployment=sim/fast"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "small");
    assert_eq!(body["content"], json!([{"type": "text", "text": "Paris."}]));
    assert_eq!(body["stop_reason"], "end_turn");
    let input = body["usage"]["input_tokens"].as_u64().unwrap();
    let output = body["usage"]["output_tokens"].as_u64().unwrap();
    assert!(input > 0 && output > 0, "{body}");
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.endpoint, "messages");
    assert_eq!(
        (rec.status, rec.tenant.as_deref(), rec.key_id.as_deref()),
        (200, Some("acme"), Some("test"))
    );
    assert_eq!(
        (
            u64::from(rec.prompt_tokens),
            u64::from(rec.completion_tokens)
        ),
        (input, output)
    );
    assert!(rec.cost_nanos > 0);
}

#[tokio::test]
async fn a_stop_sequence_is_the_stop_reason_whole_and_streamed() {
    let gw = start(&config("")).await;
    let ask = |stream: bool| {
        json!({"model": "small", "max_tokens": 100, "stream": stream, "stop_sequences": ["zz", "ri"],
               "messages": [{"role": "user", "content": "What is the capital of France?"}]})
    };
    let body: Value = message(&gw, ask(false)).await.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "Pa", "{body}");
    assert_eq!(
        (&body["stop_reason"], &body["stop_sequence"]),
        (&json!("stop_sequence"), &json!("ri"))
    );
    let text = message(&gw, ask(true)).await.text().await.unwrap();
    let events = events(&text);
    let delta = &events[events.len() - 2].1["delta"];
    assert_eq!(
        delta,
        &json!({"stop_reason": "stop_sequence", "stop_sequence": "ri"})
    );
}

#[tokio::test]
async fn a_streamed_message_sends_anthropic_events_in_order() {
    let mut gw = start(&config("")).await;
    let r = message(
        &gw,
        json!({"model": "small", "max_tokens": 100, "stream": true,
               "messages": [{"role": "user", "content": "Tell me something."}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = events(&r.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(names[2..names.len() - 3]
        .iter()
        .all(|n| *n == "content_block_delta"));
    let start = &events[0].1["message"];
    assert_eq!(
        (&start["role"], &start["model"], &start["content"]),
        (&json!("assistant"), &json!("small"), &json!([]))
    );
    let text: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect();
    assert!(!text.is_empty());
    let delta = &events[events.len() - 2].1;
    assert!(
        ["end_turn", "max_tokens"].contains(&delta["delta"]["stop_reason"].as_str().unwrap()),
        "{delta}"
    );
    let output = delta["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output > 0 && delta["usage"]["input_tokens"].as_u64().unwrap() > 0);
    gw.stop().await;
    let rec = &gw.records()[0];
    assert!(rec.stream && rec.status == 200 && rec.ttft_ms.is_some());
    assert_eq!(rec.endpoint, "messages");
    assert_eq!(u64::from(rec.completion_tokens), output);
}

#[tokio::test]
async fn tools_round_trip_whole_and_streamed() {
    let gw = start(&config("")).await;
    let ask = |stream: bool| {
        json!({"model": "small", "max_tokens": 200, "stream": stream, "tools": [weather_tool()],
               "tool_choice": {"type": "any"},
               "messages": [{"role": "user", "content": "What's the weather in Lisbon?"}]})
    };
    let body: Value = message(&gw, ask(false)).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use", "{body}");
    let call = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert!(call["input"]["city"].is_string(), "{call}");

    let text = message(&gw, ask(true)).await.text().await.unwrap();
    let events = events(&text);
    let start = events
        .iter()
        .find(|(n, e)| n == "content_block_start" && e["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let index = &start.1["index"];
    let json_text: String = events
        .iter()
        .filter(|(_, e)| &e["index"] == index)
        .filter_map(|(_, e)| e["delta"]["partial_json"].as_str())
        .collect();
    let input: Value = serde_json::from_str(&json_text).unwrap();
    assert!(input["city"].is_string(), "{json_text}");
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");

    // The tool's result goes back as a tool_result block, with an image beside it.
    let r = message(
        &gw,
        json!({"model": "small", "max_tokens": 50, "tools": [weather_tool()],
               "messages": [
                {"role": "user", "content": "What's the weather in Lisbon?"},
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": call["id"], "content": "18C and sunny"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "text", "text": "Summarise please."}]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["content"][0]["type"], "text", "{body}");
}

#[tokio::test]
async fn count_tokens_counts_for_a_model_the_key_may_use() {
    let gw = start(&config("")).await;
    let count = |body: Value| {
        let gw = &gw;
        async move {
            let r = post(gw, "/v1/messages/count_tokens", Some(KEY), body).await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            body["input_tokens"].as_u64().unwrap()
        }
    };
    let short =
        count(json!({"model": "small", "messages": [{"role": "user", "content": "Hi"}]})).await;
    let longer = count(
        json!({"model": "small", "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "Hi"}], "tools": [weather_tool()]}),
    )
    .await;
    assert!(short > 0 && longer > short, "{short} {longer}");
    let r = post(
        &gw,
        "/v1/messages/count_tokens",
        Some(KEY),
        json!({"model": "nope", "messages": []}),
    )
    .await;
    assert_eq!(anthropic_error(r).await.0, 404);
    let r = post(
        &gw,
        "/v1/messages/count_tokens",
        None,
        json!({"model": "small", "messages": []}),
    )
    .await;
    assert_eq!(anthropic_error(r).await.0, 401);
}

#[tokio::test]
async fn keys_come_as_x_api_key_or_bearer_and_errors_are_anthropic_shaped() {
    let gw = start(&config("")).await;
    let hi = |model: &str| json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // Bearer, as some Anthropic clients send an auth token.
    let r = gw
        .http
        .post(gw.url("/v1/messages"))
        .bearer_auth(KEY)
        .json(&hi("small"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let cases: Vec<(Option<&str>, Value, u16, &str, &str)> = vec![
        (None, hi("small"), 401, "authentication_error", ""),
        (
            Some("sk-wrong"),
            hi("small"),
            401,
            "authentication_error",
            "",
        ),
        (Some(KEY), hi("nope"), 404, "not_found_error", "nope"),
        (Some(KEY), hi("secret"), 403, "permission_error", "secret"),
        (
            Some(KEY),
            json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (
            Some(KEY),
            json!({"model": "small", "max_tokens": 5, "messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "invalid_request_error",
            "messages[0].role",
        ),
        (
            Some(KEY),
            json!({"model": "small", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
            400,
            "invalid_request_error",
            "messages[0].content[0].type",
        ),
        (
            Some(KEY),
            json!({"model": "small", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "data": "x"}}]}]}),
            400,
            "invalid_request_error",
            "`messages[0].content`: unknown variant `document`",
        ),
        (
            Some(KEY),
            json!({"model": "small", "max_tokens": 5, "messages": []}),
            400,
            "invalid_request_error",
            "messages",
        ),
        (Some(KEY), hi("broken"), 502, "api_error", ""),
    ];
    for (key, body, status, kind, names) in cases {
        let r = post(&gw, "/v1/messages", key, body.clone()).await;
        let got = anthropic_error(r).await;
        assert_eq!((got.0, got.1.as_str()), (status, kind), "{body}: {}", got.2);
        assert!(got.2.contains(names), "{body}: {}", got.2);
    }
    let r = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic_error(r).await.0, 400);

    // The key's limits hold here too: a second request in the minute is a 429.
    let first = post(&gw, "/v1/messages", Some(LIMITED), hi("small")).await;
    assert_eq!(first.status(), 200);
    let second = post(&gw, "/v1/messages", Some(LIMITED), hi("small")).await;
    assert!(second.headers().contains_key("retry-after"));
    let (status, kind, _) = anthropic_error(second).await;
    assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
}

#[tokio::test]
async fn messages_reach_an_anthropic_upstream_through_the_chat_pipeline() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    up.push(Reply::text("Bonjour from Claude").with_usage(11, 4));
    up.push(Reply::text("streamed Claude").with_usage(9, 2));
    let extra = format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key_env = "CLAUDE_KEY"
[models.claude]
deployments = [{{ provider = "claude", upstream_model = "claude-x" }}]
[guards.pii]
"#,
        up.base_url()
    );
    let gw = start_with_env(&config(&extra), &[("CLAUDE_KEY", "sk-ant-secret")]).await;
    let body: Value = message(
        &gw,
        json!({"model": "claude", "max_tokens": 64, "system": "be nice", "top_k": 3,
               "stop_sequences": ["END"],
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi, I am eve@example.com"}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["content"][0]["text"], "Bonjour from Claude", "{body}");
    assert_eq!(body["usage"]["input_tokens"], 11);
    assert_eq!(body["usage"]["output_tokens"], 4);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.body["system"], "be nice");
    assert_eq!(seen.body["model"], "claude-x");
    assert_eq!(seen.body["max_tokens"], 64);
    assert_eq!(seen.body["top_k"], 3);
    assert_eq!(seen.body["stop_sequences"], json!(["END"]));
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-secret"));
    // The guards ran: the address was masked before it left.
    let sent = seen.body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        sent.starts_with("hi, I am ") && !sent.contains("eve@example.com"),
        "{sent}"
    );

    let text = message(
        &gw,
        json!({"model": "claude", "max_tokens": 64, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events = events(&text);
    let streamed: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, "streamed Claude");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["usage"]["input_tokens"], 9);
    assert_eq!(delta["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn the_cache_answers_a_repeated_message_whole_and_streamed() {
    let gw = start(&config("[cache]\nsemantic = false\n")).await;
    let ask = |stream: bool| {
        json!({"model": "small", "max_tokens": 50, "temperature": 0, "stream": stream,
               "messages": [{"role": "user", "content": "How many moons does Jupiter have?"}]})
    };
    let first = message(&gw, ask(false)).await;
    assert_eq!(first.headers()["x-switchyard-cache"], "miss");
    let first: Value = first.json().await.unwrap();
    let second = message(&gw, ask(false)).await;
    assert_eq!(second.headers()["x-switchyard-cache"], "hit-exact");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["content"], first["content"]);
    assert_eq!(second["stop_reason"], first["stop_reason"]);

    // Replayed from the cache as Anthropic's events.
    let r = message(&gw, ask(true)).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit-exact");
    let events = events(&r.text().await.unwrap());
    let text: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, first["content"][0]["text"].as_str().unwrap());
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn a_stream_broken_after_the_first_byte_ends_with_an_error_event() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("one two three four").ending(Ending::Abort));
    let extra = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.up]\ndeployments = [{{ provider = \"up\" }}]\n",
        up.base_url()
    );
    let mut gw = start(&config(&extra)).await;
    let r = message(
        &gw,
        json!({"model": "up", "max_tokens": 50, "stream": true,
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let events = events(&r.text().await.unwrap());
    assert_eq!(events[0].0, "message_start");
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "api_error", "{last}");
    assert!(events.iter().all(|(n, _)| n != "message_stop"));
    gw.stop().await;
    assert_eq!(gw.records()[0].status, 502);
}
