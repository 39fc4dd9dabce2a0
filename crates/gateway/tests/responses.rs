//! The Responses API (`/v1/responses`) over real HTTP: against the simulator (text, streams
//! and their events in order, tools and their outputs, structured output, limits), against
//! fake OpenAI and Anthropic upstreams (the conversation `previous_response_id` carries, as
//! the provider receives it), stored responses read and deleted per tenant, and bad input
//! answered in OpenAI's error shape with the `param` at fault.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use common::{start, start_with_env, KEY};
use serde_json::{json, Value};
use switchyard_testkit::{Ending, FakeUpstream, Flavor, Reply};

const OTHER_KEY: &str = "sk-other-tenant";
const SLOW_KEY: &str = "sk-one-a-minute";

fn sim_config() -> String {
    format!(
        r#"{sim}
[models.small]
deployments = [{{ provider = "sim", upstream_model = "fast" }}]

[responses]
max_stored_kb = 16

[[keys]]
id = "k1"
tenant = "t1"
secret_sha256 = "{{KEY}}"

[[keys]]
id = "k2"
tenant = "t2"
secret_sha256 = "{}"

[[keys]]
id = "slow"
tenant = "t1"
secret_sha256 = "{}"
rpm = 1
"#,
        common::hex_sha256(OTHER_KEY),
        common::hex_sha256(SLOW_KEY),
        sim = common::SIM_FAST,
    )
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }
    })
}

async fn create(gw: &common::TestGateway, key: &str, body: Value) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// An error answer: its status and body, which must be OpenAI's shape.
async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    (status, body)
}

/// `method` on `/v1/responses/{id}` with `key`.
async fn by_id(
    gw: &common::TestGateway,
    method: reqwest::Method,
    key: &str,
    id: &str,
) -> reqwest::Response {
    gw.http
        .request(method, gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn get(gw: &common::TestGateway, key: &str, id: &str) -> reqwest::Response {
    by_id(gw, reqwest::Method::GET, key, id).await
}

async fn delete(gw: &common::TestGateway, key: &str, id: &str) -> reqwest::Response {
    by_id(gw, reqwest::Method::DELETE, key, id).await
}

/// The events of a Responses stream: each `event:` name with its data, checked to agree.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line in {frame:?}"));
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{frame}");
            (name.to_owned(), data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn a_text_response_is_answered_stored_and_read_back() {
    let mut gw = start(&sim_config()).await;
    let r = create(
        &gw,
        KEY,
        json!({"model": "small", "instructions": "Answer briefly.",
               "input": "What is the capital of France?", "metadata": {"ticket": "42"}}),
    )
    .await;
    assert!(r.headers()["x-switchyard-model"]
        .to_str()
        .unwrap()
        .starts_with("small;"));
    let body = ok(r).await;
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "small");
    assert_eq!(body["store"], true);
    assert_eq!(body["instructions"], "Answer briefly.");
    assert_eq!(body["metadata"], json!({"ticket": "42"}));
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["role"], "assistant");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][0]["content"][0]["text"], "Paris.");
    let usage = &body["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{id}");
    // Read back as it was answered.
    let stored = ok(get(&gw, KEY, id).await).await;
    assert_eq!(stored, body);
    // Counted as the Responses endpoint's.
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_requests_total{")
                && l.contains("endpoint=\"responses\"")),
        "{metrics}"
    );
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].endpoint, "responses");
    assert_eq!(records[0].status, 200);
    assert_eq!(records[0].model.as_deref(), Some("small"));
}

#[tokio::test]
async fn a_stream_sends_the_responses_events_in_order_and_is_stored() {
    let gw = start(&sim_config()).await;
    let r = create(
        &gw,
        KEY,
        json!({"model": "small", "input": "Tell me something.", "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = events(&r.text().await.unwrap());
    let kinds = names(&events);
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas >= 1, "{kinds:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, expected);
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], text.as_str());
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        events[0].1["response"]["id"], done["id"],
        "one id from the first event to the last"
    );
    let stored = ok(get(&gw, KEY, done["id"].as_str().unwrap()).await).await;
    assert_eq!(&stored, done);
}

#[tokio::test]
async fn a_function_call_and_its_output_continue_from_the_stored_response() {
    let gw = start(&sim_config()).await;
    let first = ok(create(
        &gw,
        KEY,
        json!({"model": "small", "input": "What is the weather in Paris?", "tools": [weather_tool()]}),
    )
    .await)
    .await;
    let call = &first["output"][0];
    assert_eq!(call["type"], "function_call", "{first}");
    assert_eq!(call["name"], "get_weather");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["city"].is_string(), "{arguments}");
    let call_id = call["call_id"].as_str().unwrap();
    // The tool's output, sent with the response it answers; streamed this time. (Without
    // the tools: the simulator would call the tool again for the same question.)
    let r = create(
        &gw,
        KEY,
        json!({"model": "small", "previous_response_id": first["id"], "stream": true,
               "input": [{"type": "function_call_output", "call_id": call_id, "output": "18C and sunny"}]}),
    )
    .await;
    let events = events(&r.text().await.unwrap());
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["previous_response_id"], first["id"]);
    assert_eq!(done["output"][0]["type"], "message");
    // An output whose call is nowhere in the conversation is refused.
    let (status, e) = error_of(
        create(
            &gw,
            KEY,
            json!({"model": "small", "previous_response_id": first["id"],
                   "input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["param"], "input[0].call_id");
}

#[tokio::test]
async fn a_streamed_function_call_has_its_argument_events() {
    let gw = start(&sim_config()).await;
    let r = create(
        &gw,
        KEY,
        json!({"model": "small", "input": "Weather in Oslo?", "tools": [weather_tool()],
               "tool_choice": "required", "stream": true}),
    )
    .await;
    let events = events(&r.text().await.unwrap());
    let kinds = names(&events);
    let added = kinds
        .iter()
        .position(|k| *k == "response.output_item.added")
        .unwrap();
    assert_eq!(events[added].1["item"]["type"], "function_call");
    assert!(
        kinds.contains(&"response.function_call_arguments.delta"),
        "{kinds:?}"
    );
    let tail = &kinds[kinds.len() - 3..];
    assert_eq!(
        tail,
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let args_done = &events[kinds.len() - 3].1["arguments"];
    let done = &events.last().unwrap().1["response"];
    assert_eq!(&done["output"][0]["arguments"], args_done);
    assert!(serde_json::from_str::<Value>(args_done.as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn text_format_json_schema_gives_structured_output() {
    let gw = start(&sim_config()).await;
    let body = ok(create(
        &gw,
        KEY,
        json!({"model": "small", "input": "Describe a city.",
               "text": {"format": {"type": "json_schema", "name": "city", "strict": true, "schema": {
                   "type": "object",
                   "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
                   "required": ["name", "population"], "additionalProperties": false}}}}),
    )
    .await)
    .await;
    let text = body["output"][0]["content"][0]["text"].as_str().unwrap();
    let city: Value = serde_json::from_str(text).unwrap();
    assert!(
        city["name"].is_string() && city["population"].is_i64(),
        "{city}"
    );
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    let body = ok(create(
        &gw,
        KEY,
        json!({"model": "small", "input": "Any JSON.", "text": {"format": {"type": "json_object"}}}),
    )
    .await)
    .await;
    let text = body["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(serde_json::from_str::<Value>(text).unwrap().is_object());
}

#[tokio::test]
async fn previous_response_id_sends_the_conversation_to_the_provider() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("Hello Ada."));
    up.push(Reply::text("Your name is Ada."));
    let config = format!(
        "{}\n[[keys]]\nid = \"k\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::openai_model(&up)
    );
    let gw = start(&config).await;
    let first = ok(create(
        &gw,
        KEY,
        json!({"model": "m", "instructions": "Be warm.", "input": "My name is Ada.",
               "max_output_tokens": 40, "temperature": 0.3, "top_p": 0.8, "user": "u-7"}),
    )
    .await)
    .await;
    let sent = up.last_request().unwrap().body;
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be warm."}, {"role": "user", "content": "My name is Ada."}])
    );
    assert_eq!(sent["max_completion_tokens"], 40);
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["top_p"], 0.8);
    assert_eq!(sent["user"], "u-7");
    let second = ok(create(
        &gw,
        KEY,
        json!({"model": "m", "previous_response_id": first["id"],
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]}]}),
    )
    .await)
    .await;
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "Your name is Ada."
    );
    // The earlier turn and its answer, without the earlier turn's instructions (as OpenAI).
    let sent = up.last_request().unwrap().body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"}
        ])
    );
    // The conversation it was made from, newest first, a page at a time.
    let items = |query: &str| {
        let url = gw.url(&format!(
            "/v1/responses/{}/input_items{query}",
            second["id"].as_str().unwrap()
        ));
        gw.http.get(url).bearer_auth(KEY).send()
    };
    let page = ok(items("?limit=2").await.unwrap()).await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["content"][0]["text"], "What is my name?");
    assert_eq!(page["data"][1]["role"], "assistant");
    assert_eq!(page["data"][1]["content"][0]["text"], "Hello Ada.");
    let last_id = page["last_id"].as_str().unwrap();
    let rest = ok(items(&format!("?limit=2&after={last_id}")).await.unwrap()).await;
    assert_eq!(rest["data"][0]["content"][0]["text"], "My name is Ada.");
    assert_eq!(rest["has_more"], false);
    let (status, e) = error_of(items("?limit=500").await.unwrap()).await;
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("limit")));
}

#[tokio::test]
async fn an_anthropic_provider_serves_the_responses_api() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    up.push(Reply::text("Bonjour from Claude").with_usage(11, 4));
    let config = format!(
        "[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"ANTHROPIC_TEST_KEY\"\n\n\
         [models.c]\ndeployments = [{{ provider = \"claude\", upstream_model = \"claude-x\" }}]\n\n\
         [[keys]]\nid = \"k\"\nsecret_sha256 = \"{{KEY}}\"\n",
        up.base_url()
    );
    let gw = start_with_env(&config, &[("ANTHROPIC_TEST_KEY", "sk-ant")]).await;
    let body = ok(create(
        &gw,
        KEY,
        json!({"model": "c", "instructions": "be nice", "input": "hi"}),
    )
    .await)
    .await;
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "Bonjour from Claude"
    );
    assert_eq!(body["usage"]["input_tokens"], 11);
    assert_eq!(up.last_request().unwrap().body["system"], "be nice");
}

#[tokio::test]
async fn another_tenants_response_is_not_found_and_delete_is_the_owners() {
    let gw = start(&sim_config()).await;
    let body = ok(create(&gw, KEY, json!({"model": "small", "input": "hi"})).await).await;
    let id = body["id"].as_str().unwrap();
    // Another tenant: not found, whether read, deleted or continued.
    assert_eq!(error_of(get(&gw, OTHER_KEY, id).await).await.0, 404);
    assert_eq!(error_of(delete(&gw, OTHER_KEY, id).await).await.0, 404);
    let (status, e) = error_of(
        create(
            &gw,
            OTHER_KEY,
            json!({"model": "small", "input": "more", "previous_response_id": id}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["param"], "previous_response_id");
    // Another key of the same tenant reads it.
    assert_eq!(get(&gw, SLOW_KEY, id).await.status(), 200);
    let deleted = ok(delete(&gw, KEY, id).await).await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    assert_eq!(error_of(get(&gw, KEY, id).await).await.0, 404);
    assert_eq!(error_of(delete(&gw, KEY, id).await).await.0, 404);
    // No key, no answer.
    let r = gw
        .http
        .get(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 401);
}

#[tokio::test]
async fn store_false_keeps_nothing_and_the_bound_is_enforced() {
    let gw = start(&sim_config()).await;
    let body = ok(create(
        &gw,
        KEY,
        json!({"model": "small", "input": "hi", "store": false}),
    )
    .await)
    .await;
    assert_eq!(body["store"], false);
    assert_eq!(
        error_of(get(&gw, KEY, body["id"].as_str().unwrap()).await)
            .await
            .0,
        404
    );
    // `max_stored_kb = 16`: a longer conversation is refused before the call when it is to
    // be stored, and served when it is not.
    let long = "word ".repeat(4_000);
    let (status, e) =
        error_of(create(&gw, KEY, json!({"model": "small", "input": long})).await).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["param"], "input");
    let body = ok(create(
        &gw,
        KEY,
        json!({"model": "small", "input": long, "store": false}),
    )
    .await)
    .await;
    assert_eq!(body["status"], "completed");
}

#[tokio::test]
async fn the_chat_pipeline_limits_apply() {
    let gw = start(&sim_config()).await;
    ok(create(&gw, SLOW_KEY, json!({"model": "small", "input": "one"})).await).await;
    let r = create(&gw, SLOW_KEY, json!({"model": "small", "input": "two"})).await;
    assert_eq!(error_of(r).await.0, 429);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_param() {
    let gw = start(&sim_config()).await;
    let cases: &[(Value, &str)] = &[
        (json!({"input": "hi"}), "model"),
        (json!({"model": "small"}), "input"),
        (json!({"model": "small", "input": 7}), "input"),
        (
            json!({"model": "small", "input": "hi", "frobnicate": true}),
            "frobnicate",
        ),
        (
            json!({"model": "small", "input": [{"role": "wizard", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "small", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "small", "input": "hi", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "small", "input": "hi", "temperature": 9}),
            "temperature",
        ),
        (
            json!({"model": "small", "input": "hi", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (
            json!({"model": "small", "input": "hi", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "small", "input": "hi", "store": "yes"}),
            "store",
        ),
        (json!({"model": "nope", "input": "hi"}), "model"),
    ];
    for (body, param) in cases {
        let (status, e) = error_of(create(&gw, KEY, body.clone()).await).await;
        assert!(matches!(status, 400 | 404), "{body}: {status} {e}");
        assert_eq!(e["error"]["param"], *param, "{body}: {e}");
    }
    let (status, e) = error_of(
        create(
            &gw,
            KEY,
            json!({"model": "small", "input": "hi", "previous_response_id": "resp_nope"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(e["error"]["param"], "previous_response_id");
    // The key is checked first, whatever the body.
    let r = gw
        .http
        .post(gw.url("/v1/responses"))
        .bearer_auth("sk-wrong")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 401);
    let r = gw
        .http
        .post(gw.url("/v1/responses"))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, e) = error_of(r).await;
    assert_eq!((status, e["error"]["param"].clone()), (400, Value::Null));
}

#[tokio::test]
async fn masking_and_the_cache_apply_as_to_chat() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("I wrote to <EMAIL_1> today."));
    up.push(Reply::text("Done."));
    let config = format!(
        "{}\n[guards.pii]\n\n[cache]\nsemantic = false\n\n[[keys]]\nid = \"k\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::openai_model(&up)
    );
    let gw = start(&config).await;
    let ask = json!({"model": "m", "temperature": 0, "stream": true,
                     "input": "Write to alice@example.com please."});
    let r = create(&gw, KEY, ask.clone()).await;
    assert!(r.headers()["x-switchyard-guard"]
        .to_str()
        .unwrap()
        .contains("pii=masked"));
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let events = events(&r.text().await.unwrap());
    let done = &events.last().unwrap().1["response"];
    // The provider saw a placeholder; the client, and the stored response, the value.
    let sent = up.last_request().unwrap().body.to_string();
    assert!(
        sent.contains("<EMAIL_1>") && !sent.contains("alice@"),
        "{sent}"
    );
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "I wrote to alice@example.com today."
    );
    let id = done["id"].as_str().unwrap();
    let stored = ok(get(&gw, KEY, id).await).await;
    assert_eq!(stored["output"], done["output"]);
    // The same question again, whole this time: the cache answers, the provider is not asked.
    let mut again = ask.clone();
    again["stream"] = false.into();
    let r = create(&gw, KEY, again).await;
    assert_eq!(r.headers()["x-switchyard-cache"], "hit-exact");
    let body = ok(r).await;
    assert_eq!(
        body["output"][0]["content"][0]["text"],
        "I wrote to alice@example.com today."
    );
    assert_ne!(body["id"], done["id"]);
    assert_eq!(up.requests().len(), 1);
    // Continuing: the earlier turns reach the provider masked again.
    ok(create(
        &gw,
        KEY,
        json!({"model": "m", "previous_response_id": id, "input": "Thanks."}),
    )
    .await)
    .await;
    let sent = up.last_request().unwrap().body.to_string();
    assert!(
        sent.contains("<EMAIL_1>") && !sent.contains("alice@"),
        "{sent}"
    );
    assert!(sent.contains("Thanks."), "{sent}");
}

#[tokio::test]
async fn stored_responses_go_after_their_retention() {
    let config = sim_config().replace(
        "max_stored_kb = 16\n",
        "max_stored_kb = 16\nretention_days = 2\n",
    );
    let gw = start(&config).await;
    let body = ok(create(&gw, KEY, json!({"model": "small", "input": "hi"})).await).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let made_ms = body["created_at"].as_i64().unwrap() * 1000;
    let state = gw.state.control.clone();
    let purged = tokio::task::spawn_blocking(move || {
        use switchyard_gateway::control_plane::retention::purge_responses_once;
        let kept = purge_responses_once(&state, made_ms + 2 * 86_400_000).unwrap();
        let gone = purge_responses_once(&state, made_ms + 2 * 86_400_000 + 1).unwrap();
        (kept, gone)
    })
    .await
    .unwrap();
    assert_eq!(purged, (0, 1));
    assert_eq!(error_of(get(&gw, KEY, &id).await).await.0, 404);
}

#[tokio::test]
async fn a_stream_the_upstream_breaks_ends_with_response_failed() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("one two three four").ending(Ending::Abort));
    let config = format!(
        "{}resilience = {{ max_attempts = 1 }}\n\n[[keys]]\nid = \"k\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::openai_model(&up)
    );
    let mut gw = start(&config).await;
    let r = create(
        &gw,
        KEY,
        json!({"model": "m", "input": "count", "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let events = events(&r.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.failed", "{:?}", names(&events));
    assert_eq!(data["response"]["status"], "failed");
    assert_eq!(data["response"]["error"]["code"], "upstream_stream_error");
    assert!(names(&events).contains(&"response.output_text.delta"));
    // Stored as it ended, as OpenAI keeps failed responses.
    let id = data["response"]["id"].as_str().unwrap();
    assert_eq!(ok(get(&gw, KEY, id).await).await["status"], "failed");
    gw.stop().await;
    assert_eq!(gw.records()[0].status, 502);
}
