//! Behaviour of the simulated provider through its public trait, in paused tokio time.
#![expect(
    clippy::disallowed_methods,
    reason = "test tasks end within each test, in paused time"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use regex::Regex;
use serde_json::{json, Value};
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingVector,
    EmbeddingsRequest,
};
use switchyard_control::{Distribution, SimModelSpec, SimRule, SimRuleAction, SimSpec};
use tokio::time::Instant;

use super::schema::tests::conforms;
use super::SimProvider;
use crate::{ChatProvider, ChatReply, ProviderError};

/// A zero-latency model with 40-token answers.
fn fast() -> SimModelSpec {
    SimModelSpec {
        ttft_ms: Distribution::fixed(0.0),
        tokens_per_second: Distribution::fixed(1e9),
        output_tokens: Distribution::fixed(40.0),
        error_rate: 0.0,
        error_status: 500,
        rate_limit_rate: 0.0,
        timeout_rate: 0.0,
        spike_rate: 0.0,
        spike: Duration::ZERO,
        echo: false,
        rules: Vec::new(),
        embedding_dims: 64,
        engine: None,
    }
}

fn sim(models: Vec<(&str, SimModelSpec)>) -> SimProvider {
    let models: BTreeMap<String, SimModelSpec> =
        models.into_iter().map(|(n, m)| (n.to_owned(), m)).collect();
    SimProvider::new("sim", &SimSpec { seed: 42, models })
}

fn one(spec: SimModelSpec) -> SimProvider {
    sim(vec![("m", spec)])
}

fn req(extra: Value) -> ChatCompletionRequest {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "Hello there"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(body).unwrap()
}

fn ask(text: &str) -> ChatCompletionRequest {
    req(json!({"messages": [{"role": "user", "content": text}]}))
}

async fn complete(p: &SimProvider, r: ChatCompletionRequest) -> ChatCompletionResponse {
    match p.chat(r).await.unwrap() {
        ChatReply::Complete(c) => c,
        ChatReply::Stream(_) => panic!("expected a whole response"),
    }
}

/// Every chunk with the virtual time since the call started.
async fn chunks(
    p: &SimProvider,
    mut r: ChatCompletionRequest,
) -> Vec<(Duration, ChatCompletionChunk)> {
    r.stream = Some(true);
    let start = Instant::now();
    let ChatReply::Stream(mut s) = p.chat(r).await.unwrap() else {
        panic!("expected a stream");
    };
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.push((start.elapsed(), c.unwrap()));
    }
    out
}

fn streamed_text(chunks: &[(Duration, ChatCompletionChunk)]) -> String {
    chunks
        .iter()
        .flat_map(|(_, c)| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect()
}

fn status(e: ProviderError) -> u16 {
    match e {
        ProviderError::Status { status, .. } => status,
        other => panic!("expected a status error, got {other:?}"),
    }
}

fn rule(pattern: &str, action: SimRuleAction) -> SimRule {
    SimRule {
        pattern: Regex::new(pattern).unwrap(),
        action,
    }
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
        {"type": "function", "function": {"name": "get_weather", "description": "Weather forecast for a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "unit", "days"]}}}
    ])
}

#[tokio::test(start_paused = true)]
async fn text_depends_only_on_seed_model_and_messages() {
    // Two providers from the same spec, called a different number of times.
    let a = sim(vec![("m", fast()), ("other", fast())]);
    let b = sim(vec![("m", fast()), ("other", fast())]);
    let _ = complete(&b, ask("warm up")).await;
    let first = complete(&a, ask("Tell me a story")).await;
    assert_eq!(
        first.text(),
        complete(&a, ask("Tell me a story")).await.text()
    );
    assert_eq!(
        first.text(),
        complete(&b, ask("Tell me a story")).await.text()
    );
    assert_ne!(
        first.text(),
        complete(&a, ask("Tell me a joke")).await.text()
    );

    let mut other = ask("Tell me a story");
    other.model = "other".to_owned();
    assert_ne!(first.text(), complete(&a, other).await.text());

    let seeded = |seed: i64| {
        let mut r = ask("Tell me a story");
        r.seed = Some(seed);
        r
    };
    let s1 = complete(&a, seeded(1)).await.text();
    assert_eq!(s1, complete(&a, seeded(1)).await.text());
    assert_ne!(s1, complete(&a, seeded(2)).await.text());
}

#[tokio::test(start_paused = true)]
async fn default_reply_says_it_is_simulated_and_reports_usage() {
    let p = one(fast());
    let r = complete(&p, ask("hello world")).await;
    assert!(
        r.text()
            .starts_with("This is a simulated reply from model m."),
        "{}",
        r.text()
    );
    assert_eq!(r.model, "m");
    assert_eq!(r.object, "chat.completion");
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    let usage = r.usage.as_ref().unwrap();
    // 3 to prime + (3 framing + 2 text) for the one message, with the real tokenizer.
    assert_eq!(usage.prompt_tokens, 8);
    assert_eq!(usage.completion_tokens, 40);
    assert_eq!(usage.total_tokens, 48);
}

#[tokio::test(start_paused = true)]
async fn unknown_model_is_404() {
    let mut r = ask("hi");
    r.model = "nope".to_owned();
    let e = one(fast()).chat(r).await.unwrap_err();
    assert!(e.to_string().contains("model `nope` does not exist"), "{e}");
    assert_eq!(status(e), 404);
}

#[tokio::test(start_paused = true)]
async fn rules_first_match_wins() {
    let mut spec = fast();
    spec.rules = vec![
        rule(
            "(?i)refund",
            SimRuleAction::Reply("Refunds: {{echo}}!".to_owned()),
        ),
        rule("(?i)refund|broken", SimRuleAction::Error(503)),
        rule("weather", SimRuleAction::ToolCall("get_weather".to_owned())),
    ];
    let p = one(spec);
    let r = complete(&p, ask("I want a REFUND now")).await;
    assert_eq!(r.text(), "Refunds: I want a REFUND now!");
    assert_eq!(status(p.chat(ask("it is broken")).await.unwrap_err()), 503);

    // A tool-call rule applies only when the tool is offered.
    let r = complete(&p, ask("the weather in Rome?")).await;
    assert!(r.choices[0].message.tool_calls.is_none());
    let r = complete(
        &p,
        req(
            json!({"messages": [{"role": "user", "content": "the weather in Rome?"}],
                   "tools": weather_tools()}),
        ),
    )
    .await;
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let call = &r.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.function.name, "get_weather");
    assert!(call.id.starts_with("call_"));
}

#[tokio::test(start_paused = true)]
async fn echo_model_repeats_the_last_user_message() {
    let mut spec = fast();
    spec.echo = true;
    let r = complete(
        &one(spec),
        req(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second one"}]})),
    )
    .await;
    assert_eq!(r.text(), "second one");
    assert_eq!(r.usage.as_ref().unwrap().completion_tokens, 2);
}

#[tokio::test(start_paused = true)]
async fn forced_tool_choice_calls_a_tool_with_arguments_valid_for_its_schema() {
    let p = one(fast());
    let tools = weather_tools();
    let schema = tools[1]["function"]["parameters"].clone();
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let r = complete(
            &p,
            req(json!({"messages": [{"role": "user", "content": "Is it raining in the city of Oslo?"}],
                       "tools": tools, "tool_choice": choice})),
        )
        .await;
        let choice0 = &r.choices[0];
        assert_eq!(choice0.finish_reason.as_deref(), Some("tool_calls"));
        assert!(choice0.message.content.is_none());
        let call = &choice0.message.tool_calls.as_ref().unwrap()[0];
        // "required" picks the tool whose description matches the prompt best.
        assert_eq!(call.function.name, "get_weather");
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
        conforms(&schema, &schema, &args).unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn auto_tool_choice_calls_only_when_a_rule_says_so_and_bad_choices_are_400() {
    let p = one(fast());
    let r = complete(
        &p,
        req(json!({"tools": weather_tools(), "tool_choice": "auto"})),
    )
    .await;
    assert!(r.choices[0].message.tool_calls.is_none());
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));

    let e = p
        .chat(req(json!({"tool_choice": "required"})))
        .await
        .unwrap_err();
    assert_eq!(status(e), 400);
    let e = p
        .chat(req(json!({"tools": weather_tools(),
                         "tool_choice": {"type": "function", "function": {"name": "nope"}}})))
        .await
        .unwrap_err();
    assert_eq!(status(e), 400);
}

#[tokio::test(start_paused = true)]
async fn response_format_gives_json() {
    let p = one(fast());
    let r = complete(&p, req(json!({"response_format": {"type": "json_object"}}))).await;
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["simulated"], true);

    let schema = json!({"type": "object", "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "topics": {"type": "array", "items": {"type": "string"}}},
        "required": ["sentiment", "score", "topics"], "additionalProperties": false});
    let r = complete(
        &p,
        req(json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": true}}})),
    )
    .await;
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    conforms(&schema, &schema, &v).unwrap();
}

#[tokio::test(start_paused = true)]
async fn stop_sequences_cut_the_text() {
    let p = one(fast());
    let full = complete(&p, ask("hi")).await.text();
    let r = complete(
        &p,
        req(json!({"messages": [{"role": "user", "content": "hi"}],
                                     "stop": ["simulated", "zzz"]})),
    )
    .await;
    assert_eq!(r.text(), "This is a ");
    assert!(full.starts_with(&r.text()));
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    // "This", " is", " a" and the space that began " simulated".
    assert_eq!(r.usage.as_ref().unwrap().completion_tokens, 4);

    let mut streamed = ask("hi");
    streamed.stop = Some(switchyard_api::Stop::One("reply".to_owned()));
    assert_eq!(
        streamed_text(&chunks(&p, streamed).await),
        "This is a simulated "
    );
}

#[tokio::test(start_paused = true)]
async fn max_tokens_clamps_with_finish_reason_length() {
    let p = one(fast());
    for field in ["max_tokens", "max_completion_tokens"] {
        let r = complete(&p, req(json!({ field: 5 }))).await;
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(r.usage.as_ref().unwrap().completion_tokens, 5);
        assert_eq!(r.text(), "This is a simulated reply.");
    }
    // A cap above the drawn length changes nothing.
    let r = complete(&p, req(json!({"max_tokens": 100}))).await;
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.usage.as_ref().unwrap().completion_tokens, 40);
}

#[tokio::test(start_paused = true)]
async fn error_rate_fails_about_that_share_of_calls_and_retries_can_succeed() {
    let mut spec = fast();
    spec.error_rate = 0.1;
    spec.error_status = 502;
    let p = one(spec);
    let mut failures = 0;
    for _ in 0..1000 {
        match p.chat(ask("same request")).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(status(e), 502);
                failures += 1;
            }
        }
    }
    // Binomial(1000, 0.1): sd ~9.5, so +-40 is over 4 sd. Every call was the same request,
    // so the ~900 successes are retries that succeeded.
    assert!((60..=140).contains(&failures), "{failures} failures");
}

#[tokio::test(start_paused = true)]
async fn rate_limits_carry_retry_after_and_timeouts_never_answer() {
    let mut spec = fast();
    spec.rate_limit_rate = 1.0;
    match one(spec).chat(ask("x")).await.unwrap_err() {
        ProviderError::Status {
            status: 429,
            retry_after,
            ..
        } => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        other => panic!("{other:?}"),
    }
    let mut spec = fast();
    spec.timeout_rate = 1.0;
    let p = one(spec);
    let waited = tokio::time::timeout(Duration::from_secs(600), p.chat(ask("x"))).await;
    assert!(waited.is_err(), "a timeout fault must not answer");
}

#[tokio::test(start_paused = true)]
async fn non_streaming_answers_after_ttft_plus_generation() {
    let mut spec = fast();
    spec.ttft_ms = Distribution::fixed(200.0);
    spec.tokens_per_second = Distribution::fixed(100.0);
    let p = one(spec);
    let start = Instant::now();
    let r = complete(&p, ask("hi")).await;
    assert_eq!(r.usage.as_ref().unwrap().completion_tokens, 40);
    // 200 ms + 40 tokens at 100/s.
    assert_eq!(start.elapsed(), Duration::from_millis(600));

    let mut failing = fast();
    failing.ttft_ms = Distribution::fixed(300.0);
    failing.error_rate = 1.0;
    let start = Instant::now();
    assert!(one(failing).chat(ask("hi")).await.is_err());
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn spikes_add_to_the_ttft() {
    let mut spec = fast();
    spec.ttft_ms = Distribution::fixed(50.0);
    spec.spike_rate = 1.0;
    spec.spike = Duration::from_secs(2);
    let c = chunks(&one(spec), ask("hi")).await;
    assert_eq!(c[0].0, Duration::from_millis(2050));
}

#[tokio::test(start_paused = true)]
async fn stream_is_paced_from_the_ttft() {
    let mut spec = fast();
    spec.ttft_ms = Distribution::fixed(250.0);
    spec.tokens_per_second = Distribution::fixed(50.0);
    let c = chunks(&one(spec), ask("hi")).await;
    // 40 single-token chunks (20 ms apart, above the merge threshold) and the usage chunk.
    assert_eq!(c.len(), 41);
    assert_eq!(c[0].0, Duration::from_millis(250));
    assert_eq!(c[1].0, Duration::from_millis(270));
    assert_eq!(c[39].0, Duration::from_millis(250 + 39 * 20));

    // A fast model groups tokens: 1,000 tokens/s is 5 per chunk, 5 ms apart.
    let mut spec = fast();
    spec.ttft_ms = Distribution::fixed(100.0);
    spec.tokens_per_second = Distribution::fixed(1000.0);
    let c = chunks(&one(spec), ask("hi")).await;
    assert_eq!(c.len(), 8 + 1);
    assert_eq!(c[0].0, Duration::from_millis(100));
    assert_eq!(c[7].0, Duration::from_millis(135));
}

#[tokio::test(start_paused = true)]
async fn stream_shape_matches_the_whole_response() {
    let p = one(fast());
    let whole = complete(&p, ask("hi")).await;
    let mut spec = fast();
    spec.tokens_per_second = Distribution::fixed(20.0);
    let paced = one(spec);
    let c = chunks(&paced, ask("hi")).await;
    let (_, first) = &c[0];
    assert!(c.iter().all(|(_, x)| x.id == first.id
        && x.created == first.created
        && x.model == "m"
        && x.object == "chat.completion.chunk"));
    assert_eq!(
        first.choices[0].delta.role,
        Some(switchyard_api::Role::Assistant)
    );
    assert!(c[1..]
        .iter()
        .all(|(_, x)| x.choices.first().is_none_or(|ch| ch.delta.role.is_none())));
    let (last_content, usage) = (&c[c.len() - 2].1, &c[c.len() - 1].1);
    assert_eq!(
        last_content.choices[0].finish_reason.as_deref(),
        Some("stop")
    );
    assert!(c[..c.len() - 2]
        .iter()
        .all(|(_, x)| x.choices[0].finish_reason.is_none()));
    assert!(usage.choices.is_empty());
    assert_eq!(usage.usage, whole.usage);
    assert_eq!(streamed_text(&c), whole.text());
}

#[tokio::test(start_paused = true)]
async fn streamed_tool_call_assembles_to_valid_arguments() {
    let mut spec = fast();
    spec.tokens_per_second = Distribution::fixed(50.0);
    let c = chunks(
        &one(spec),
        req(json!({"tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
    )
    .await;
    let deltas: Vec<_> = c
        .iter()
        .flat_map(|(_, x)| x.choices.iter())
        .flat_map(|ch| ch.delta.tool_calls.iter().flatten())
        .collect();
    assert_eq!(
        deltas[0].id.as_deref().map(|id| id.starts_with("call_")),
        Some(true)
    );
    assert_eq!(
        deltas[0].function.as_ref().and_then(|f| f.name.as_deref()),
        Some("get_weather")
    );
    assert!(deltas[1..].iter().all(|d| d.id.is_none()));
    let args: String = deltas
        .iter()
        .filter_map(|d| d.function.as_ref()?.arguments.clone())
        .collect();
    let v: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(v["city"], "Paris");
    assert_eq!(
        c[c.len() - 2].1.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
}

#[tokio::test(start_paused = true)]
async fn zero_latency_model_arms_no_timer() {
    // With the clock paused, time moves only to fire a timer: none may be armed.
    let p = one(fast());
    let start = Instant::now();
    let _ = complete(&p, ask("hi")).await;
    let c = chunks(&p, ask("hi")).await;
    assert_eq!(c.len(), 2, "one content chunk and the usage chunk");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_deterministic_unit_vectors_where_paraphrases_are_close() {
    let p = one(fast());
    let e = p
        .embed(
            serde_json::from_value::<EmbeddingsRequest>(json!({"model": "m", "input": [
                "How do I reset my password?",
                "how can I reset the password of my account",
                "Best pizza toppings in Naples"]}))
            .unwrap(),
        )
        .await
        .unwrap();
    let v: Vec<Vec<f32>> = e
        .data
        .iter()
        .map(|d| match &d.embedding {
            EmbeddingVector::Float(v) => v.clone(),
            EmbeddingVector::Base64(_) => panic!("float asked"),
        })
        .collect();
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert_eq!(v[0].len(), 64);
    assert!((cos(&v[0], &v[0]) - 1.0).abs() < 1e-5);
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]) + 0.3);
    assert_eq!(e.data[2].index, 2);
    assert!(e.usage.prompt_tokens > 10);
    assert_eq!(e.usage.total_tokens, e.usage.prompt_tokens);
}

#[tokio::test(start_paused = true)]
async fn embeddings_base64_round_trip_and_dimensions() {
    let p = one(fast());
    let embed = |extra: Value| {
        let mut body = json!({"model": "m", "input": "the quick brown fox"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        p.embed(serde_json::from_value(body).unwrap())
    };
    let float = match embed(json!({})).await.unwrap().data[0].embedding.clone() {
        EmbeddingVector::Float(v) => v,
        EmbeddingVector::Base64(_) => panic!("float asked"),
    };
    let b64 = match embed(json!({"encoding_format": "base64"}))
        .await
        .unwrap()
        .data[0]
        .embedding
        .clone()
    {
        EmbeddingVector::Base64(s) => s,
        EmbeddingVector::Float(_) => panic!("base64 asked"),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, float);

    let short = match embed(json!({"dimensions": 16})).await.unwrap().data[0]
        .embedding
        .clone()
    {
        EmbeddingVector::Float(v) => v,
        EmbeddingVector::Base64(_) => panic!("float asked"),
    };
    assert_eq!(short.len(), 16);
    assert!((short.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    let norm16 = float[..16].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((short[3] - float[3] / norm16).abs() < 1e-6);

    assert_eq!(
        status(embed(json!({"dimensions": 65})).await.unwrap_err()),
        400
    );
    assert_eq!(
        status(embed(json!({"encoding_format": "hex"})).await.unwrap_err()),
        400
    );
    assert_eq!(
        status(embed(json!({"model": "nope"})).await.unwrap_err()),
        404
    );
}

/// A model on a one-slot engine: 10 ms prefill, 20 ms a token, 5-token answers.
fn on_engine(slots: u32) -> SimProvider {
    let mut m = fast();
    m.output_tokens = Distribution::fixed(5.0);
    m.engine = Some(switchyard_engine::Params {
        slots,
        kv_tokens: 10_000,
        prefill_base: Duration::from_millis(10),
        prefill_per_token: Duration::ZERO,
        decode_base: Duration::from_millis(20),
        decode_per_sequence: Duration::from_millis(5),
    });
    one(m)
}

#[tokio::test(start_paused = true)]
async fn on_an_engine_a_queued_stream_gets_its_first_token_later() {
    let p = std::sync::Arc::new(on_engine(1));
    let second = tokio::spawn({
        let p = p.clone();
        async move {
            tokio::task::yield_now().await;
            chunks(&p, ask("second")).await
        }
    });
    let first = chunks(&p, ask("first")).await;
    let second = second.await.unwrap();
    // Alone: prefill, then four more tokens.
    assert_eq!(first[0].0, Duration::from_millis(10));
    assert_eq!(first.last().unwrap().0, Duration::from_millis(90));
    // Queued behind the first: its whole answer, then its own prefill.
    assert_eq!(second[0].0, Duration::from_millis(100));
    assert_eq!(streamed_text(&second).split_whitespace().count(), 5);
    assert_eq!(p.engine_load("m").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn on_an_engine_tokens_slow_as_the_batch_grows() {
    let p = std::sync::Arc::new(on_engine(2));
    let other = tokio::spawn({
        let p = p.clone();
        async move { chunks(&p, ask("other")).await }
    });
    let mine = chunks(&p, ask("mine")).await;
    other.await.unwrap();
    // Two in the batch: 25 ms a token instead of 20.
    assert_eq!(mine.last().unwrap().0, Duration::from_millis(10 + 4 * 25));
}

#[tokio::test(start_paused = true)]
async fn on_an_engine_the_class_orders_the_queue() {
    use switchyard_admission::Class;
    let p = std::sync::Arc::new(on_engine(1));
    let mut busy = ask("busy");
    busy.stream = Some(true);
    let ChatReply::Stream(mut holding) = p.chat(busy).await.unwrap() else {
        panic!("expected a stream");
    };
    holding.next().await.unwrap().unwrap();
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut calls = Vec::new();
    for (name, class) in [
        ("batch", Some(Class::Batch)),
        ("unclassified", None),
        ("critical", Some(Class::Critical)),
        ("interactive", Some(Class::Interactive)),
    ] {
        let (p, done) = (p.clone(), done.clone());
        calls.push(tokio::spawn(async move {
            let options = crate::CallOptions {
                class,
                ..Default::default()
            };
            p.chat_with(ask(name), options).await.unwrap();
            done.lock().unwrap().push(name);
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(p.engine_load("m").unwrap().waiting, 4);
    while holding.next().await.is_some() {}
    for c in calls {
        c.await.unwrap();
    }
    // Without a class the body's priority (here none: 0) counts, as vLLM's does.
    let order = done.lock().unwrap().clone();
    assert_eq!(order, ["unclassified", "critical", "interactive", "batch"]);
}

#[tokio::test(start_paused = true)]
async fn on_an_engine_a_request_larger_than_its_kv_cache_is_refused() {
    let mut m = fast();
    m.engine = Some(switchyard_engine::Params {
        slots: 1,
        kv_tokens: 10,
        prefill_base: Duration::ZERO,
        prefill_per_token: Duration::ZERO,
        decode_base: Duration::from_millis(1),
        decode_per_sequence: Duration::ZERO,
    });
    let err = one(m).chat(ask("hello")).await.unwrap_err();
    assert_eq!(status(err), 400);
}
