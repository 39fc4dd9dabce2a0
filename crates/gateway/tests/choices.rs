//! `n > 1` and `logprobs` over real HTTP against fake upstreams: passed to an OpenAI-compatible
//! upstream as sent, fanned out to one that answers one choice per call (Anthropic), streamed
//! and not; usage summed, admission counting every choice, one record per request, the cache
//! keyed by `n`, every choice judged by the output guards; `logprobs` passed through and
//! returned, or refused with a 400 naming the field where the provider cannot return them.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{start_with_env, user, TestGateway};
use serde_json::{json, Value};
use switchyard_testkit::{
    FakeUpstream, Flavor, Reply, FAKE_AWS_ACCESS_KEY_ID, FAKE_AWS_REGION,
    FAKE_AWS_SECRET_ACCESS_KEY,
};

/// A gateway with model `m` on `up` (OpenAI or Anthropic), the exact cache on, `extra`
/// (guards) in the config and `key_limits` on the key.
async fn gateway(up: &FakeUpstream, extra: &str, key_limits: &str) -> TestGateway {
    gateway_for(up, "m", extra, key_limits).await
}

async fn gateway_for(up: &FakeUpstream, model: &str, extra: &str, key: &str) -> TestGateway {
    let kind = up.flavor().kind();
    let credentials = match up.flavor() {
        Flavor::Bedrock => format!("region = \"{FAKE_AWS_REGION}\""),
        _ => "api_key_env = \"CHOICES_TEST_KEY\"".to_owned(),
    };
    let provider = format!(
        "[providers.up]\nkind = \"{kind}\"\nbase_url = \"{}\"\n{credentials}\n",
        up.base_url()
    );
    let model = format!(
        "[models.{model}]\ndeployments = [{{ provider = \"up\" }}]\nresilience = {{ max_attempts = 1 }}\n"
    );
    let keys = format!("[[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n{key}\n");
    let config = format!("{provider}\n{model}\n[cache]\nsemantic = false\n\n{extra}\n\n{keys}");
    let env = [
        ("CHOICES_TEST_KEY", "sk-test"),
        ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
    ];
    start_with_env(&config, &env).await
}

async fn send(gw: &TestGateway, body: Value) -> (u16, Value) {
    let r = gw.chat(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The data events of an SSE body, `[DONE]` apart.
async fn events(gw: &TestGateway, body: Value) -> Vec<Value> {
    let r = gw.chat(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each choice's streamed text, by index.
fn texts_by_index(events: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for c in events.iter().flat_map(|e| e["choices"].as_array().unwrap()) {
        let i = c["index"].as_u64().unwrap() as usize;
        if texts.len() <= i {
            texts.resize(i + 1, String::new());
        }
        texts[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
    }
    texts
}

#[tokio::test]
async fn n_goes_as_sent_to_an_openai_upstream_and_all_choices_come_back() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = gateway(&up, "", "").await;
    up.push(Reply::text("one two three").with_usage(10, 3));
    let (status, body) = send(&gw, json!({"model": "m", "messages": user("hi"), "n": 3})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        up.requests().len(),
        1,
        "one call: the upstream makes the choices"
    );
    assert_eq!(up.last_request().unwrap().body["n"], 3);
    let indexes: Vec<u64> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(body["usage"]["completion_tokens"], 9);
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 1, "one record per request");
    assert_eq!(records[0].completion_tokens, 9);
}

#[tokio::test]
async fn n_is_fanned_out_to_anthropic_with_usage_summed() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let mut gw = gateway(&up, "", "").await;
    for text in ["first answer", "second answer", "third answer"] {
        up.push(Reply::text(text).with_usage(10, 2));
    }
    let (status, body) = send(&gw, json!({"model": "m", "messages": user("hi"), "n": 3})).await;
    assert_eq!(status, 200, "{body}");
    let seen = up.requests();
    assert_eq!(seen.len(), 3, "one call per choice");
    assert!(seen.iter().all(|r| r.body.get("n").is_none()));
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    let mut texts: Vec<&str> = choices
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap())
        .collect();
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
    }
    texts.sort();
    assert_eq!(texts, ["first answer", "second answer", "third answer"]);
    assert_eq!(body["usage"]["prompt_tokens"], 30);
    assert_eq!(body["usage"]["completion_tokens"], 6);
    assert_eq!(body["usage"]["total_tokens"], 36);
    gw.stop().await;
    let records = gw.records();
    assert_eq!(records.len(), 1, "one record per request");
    assert_eq!(
        (records[0].prompt_tokens, records[0].completion_tokens),
        (30, 6)
    );
}

#[tokio::test]
async fn a_fanned_out_stream_carries_every_index_and_one_summed_usage_chunk() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let gw = gateway(&up, "", "").await;
    up.push(Reply::text("alpha beta").with_usage(10, 2));
    up.push(Reply::text("gamma delta").with_usage(10, 2));
    let events = events(
        &gw,
        json!({"model": "m", "messages": user("hi"), "n": 2, "stream": true,
               "stream_options": {"include_usage": true}}),
    )
    .await;
    let mut texts = texts_by_index(&events);
    texts.sort();
    assert_eq!(texts, ["alpha beta", "gamma delta"]);
    let usage: Vec<&Value> = events
        .iter()
        .filter(|e| e["usage"].is_object())
        .map(|e| &e["usage"])
        .collect();
    assert_eq!(usage.len(), 1, "{events:?}");
    assert_eq!(usage[0]["completion_tokens"], 4);
    assert_eq!(usage[0]["prompt_tokens"], 20);
    let id = &events[0]["id"];
    let with_choices = events.iter().filter(|e| e["choices"] != json!([]));
    assert!(with_choices.clone().count() > 4);
    for e in with_choices {
        assert_eq!(&e["id"], id, "one id for the stream's chunks");
    }
}

#[tokio::test]
async fn n_beyond_the_bound_is_a_400_naming_n() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = gateway(&up, "", "").await;
    for n in [0, 9] {
        let (status, body) = send(&gw, json!({"model": "m", "messages": user("hi"), "n": n})).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "n", "{body}");
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn admission_counts_every_choice() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = gateway(&up, "", "tpm = 1000").await;
    let ask = |n: u32| json!({"model": "m", "messages": user("hi"), "max_tokens": 200, "n": n});
    let (status, body) = send(&gw, ask(1)).await;
    assert_eq!(status, 200, "{body}");
    // Eight choices of up to 200 tokens each cannot fit the minute's 1,000 tokens.
    let (status, body) = send(&gw, ask(8)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn the_cache_keys_on_n_and_a_hit_returns_every_choice() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let gw = gateway(&up, "", "").await;
    up.push(Reply::text("cached one"));
    up.push(Reply::text("cached two"));
    let ask = |n: u32| json!({"model": "m", "messages": user("hi"), "temperature": 0, "n": n});
    let r = gw.chat(ask(2)).send().await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let first: Value = r.json().await.unwrap();
    let r = gw.chat(ask(2)).send().await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "hit-exact");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["choices"], first["choices"]);
    assert_eq!(up.requests().len(), 2);
    // One choice is another question: not served from the entry of two.
    let r = gw.chat(ask(1)).send().await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    assert_eq!(up.requests().len(), 3);
}

const TOXIC: &str = "You are a worthless idiot and a stupid moron, shut up and go away.";

#[tokio::test]
async fn the_output_guards_judge_every_choice() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let guards = "[guards.toxicity]\n[guards.output]\nretries = 0\nsafe_answer = \"Withheld.\"\n";
    let gw = gateway(&up, guards, "").await;
    // Only the second choice is toxic: the answer is replaced whole.
    up.push(Reply::text("A kind answer."));
    up.push(Reply::text(TOXIC));
    let (status, body) = send(&gw, json!({"model": "m", "messages": user("hi"), "n": 2})).await;
    assert_eq!(status, 200, "{body}");
    for c in body["choices"].as_array().unwrap() {
        assert_eq!(c["message"]["content"], "Withheld.", "{body}");
    }
    // Streamed: each choice has its window; the toxic one stops the stream before any of
    // its text is sent, while the clean one's text flows.
    up.push(Reply::text("A kind answer. It goes on kindly."));
    up.push(Reply::text(TOXIC));
    let stopped = events(
        &gw,
        json!({"model": "m", "messages": user("hi"), "n": 2, "stream": true}),
    )
    .await;
    let sent = texts_by_index(&stopped).concat();
    assert!(!sent.contains("idiot"), "{stopped:?}");
    let finishes: Vec<&str> = stopped
        .iter()
        .flat_map(|e| e["choices"].as_array().unwrap())
        .filter_map(|c| c["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes.last(), Some(&"content_filter"), "{stopped:?}");
    // Two clean choices pass whole, each released by its own window.
    up.push(Reply::text("First kind answer. Still kind."));
    up.push(Reply::text("Second kind answer. Also kind."));
    let clean = events(
        &gw,
        json!({"model": "m", "messages": user("hello"), "n": 2, "stream": true}),
    )
    .await;
    let mut texts = texts_by_index(&clean);
    texts.sort();
    assert_eq!(
        texts,
        [
            "First kind answer. Still kind.",
            "Second kind answer. Also kind."
        ]
    );
    assert_eq!(up.requests().len(), 6);
}

#[tokio::test]
async fn logprobs_pass_through_an_openai_upstream_whole_and_streamed() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = gateway(&up, "", "").await;
    let ask = json!({"model": "m", "messages": user("hi"), "logprobs": true, "top_logprobs": 2,
                     "temperature": 0});
    up.push(Reply::text("hello there"));
    let (status, body) = send(&gw, ask.clone()).await;
    assert_eq!(status, 200, "{body}");
    let sent = up.last_request().unwrap().body;
    assert_eq!(
        (&sent["logprobs"], &sent["top_logprobs"]),
        (&json!(true), &json!(2))
    );
    let tokens: Vec<&str> = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["hello ", "there"]);
    // Not served from the cache: asked again, the upstream answers again.
    let (status, _) = send(&gw, ask.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(up.requests().len(), 2);

    let mut streamed = ask;
    streamed["stream"] = json!(true);
    up.push(Reply::text("hello there"));
    let events = events(&gw, streamed).await;
    let tokens: Vec<&str> = events
        .iter()
        .flat_map(|e| e["choices"].as_array().unwrap())
        .filter_map(|c| c["logprobs"]["content"].as_array())
        .flatten()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["hello ", "there"]);
}

#[tokio::test]
async fn logprobs_asked_of_anthropic_are_a_400_naming_logprobs() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let gw = gateway(&up, "", "").await;
    let (status, body) = send(
        &gw,
        json!({"model": "m", "messages": user("hi"), "logprobs": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "logprobs", "{body}");
    assert!(up.requests().is_empty(), "refused before any call");
    // Malformed fields are refused for every provider alike.
    let (status, body) = send(
        &gw,
        json!({"model": "m", "messages": user("hi"), "top_logprobs": 3}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "top_logprobs");
}

#[tokio::test]
async fn a_request_with_n_is_counted_once_in_the_metrics() {
    let up = FakeUpstream::start(Flavor::Anthropic).await.unwrap();
    let gw = gateway_for(&up, "choices_metric", "", "").await;
    let (status, _) = send(
        &gw,
        json!({"model": "choices_metric", "messages": user("hi"), "n": 4}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(up.requests().len(), 4);
    let metrics = gw.metrics().await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("switchyard_requests_total{")
                && l.contains("model=\"choices_metric\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
}

#[tokio::test]
async fn a_choice_whose_text_the_gateway_rewrites_loses_its_logprobs() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = gateway(&up, "[guards.pii]\n", "").await;
    let ask = json!({"model": "m", "logprobs": true,
                     "messages": user("Write to alice@example.com please.")});
    // Values put back: the logprobs described the placeholder, not what the client reads.
    up.push(Reply::text("I wrote to <EMAIL_1> today."));
    let (status, body) = send(&gw, ask.clone()).await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(
        choice["message"]["content"],
        "I wrote to alice@example.com today."
    );
    assert_eq!(choice["logprobs"], Value::Null);
    // Nothing put back: the provider's logprobs, unchanged.
    up.push(Reply::text("Done, nothing to add."));
    let (_, body) = send(&gw, ask.clone()).await;
    assert_eq!(
        body["choices"][0]["logprobs"]["content"][0]["token"],
        "Done, "
    );
    // Streamed: the chunks whose text was held back or rewritten carry none; the others do.
    up.push(Reply::pieces(["Sent ", "to <EMA", "IL_1>", " now."]));
    let mut streamed = ask;
    streamed["stream"] = json!(true);
    let events = events(&gw, streamed).await;
    let with: Vec<&str> = events
        .iter()
        .flat_map(|e| e["choices"].as_array().unwrap())
        .filter(|c| c["logprobs"].is_object())
        .map(|c| c["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(with, ["Sent ", " now."], "{events:?}");
    assert_eq!(texts_by_index(&events), ["Sent to alice@example.com now."]);
}
