//! The OpenAI adapter against fake self-hosted engines over real HTTP: vLLM is told the
//! request's priority from its class (and schedules by it); other engines' bodies are sent as
//! the client wrote them.

#![expect(clippy::expect_used, reason = "test code")]
#![expect(
    clippy::disallowed_methods,
    reason = "test tasks are joined within each test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_admission::Class;
use switchyard_api::ChatCompletionRequest;
use switchyard_control::{EngineKind, EngineSpec, OpenAiSpec, ProviderSpec};
use switchyard_providers::{CallOptions, ChatProvider, ChatReply};
use switchyard_testkit::{EngineFlavor, FakeEngine, ENGINE_MODEL};

/// The OpenAI adapter on `fake`, its engine named `kind`; vLLM with priority scheduling.
fn provider(fake: &FakeEngine, kind: EngineKind) -> Arc<dyn ChatProvider> {
    provider_with(fake, kind, kind == EngineKind::Vllm)
}

fn provider_with(
    fake: &FakeEngine,
    kind: EngineKind,
    priority_scheduling: bool,
) -> Arc<dyn ChatProvider> {
    let spec = ProviderSpec::OpenAi(OpenAiSpec {
        base_url: fake.base_url(),
        api_key_env: None,
        headers: Vec::new(),
        connect_timeout: Duration::from_secs(2),
        engine: Some(EngineSpec {
            kind,
            metrics_url: fake.metrics_url(),
            poll: Duration::from_millis(250),
            priority_scheduling,
        }),
    });
    let http = switchyard_providers::http_client(Duration::from_secs(2)).expect("client");
    switchyard_providers::build("engine", &spec, &http, &|_: &str| None).expect("provider")
}

fn request(extra: Value) -> ChatCompletionRequest {
    let mut body = json!({"model": ENGINE_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(body).expect("request")
}

async fn finish(reply: ChatReply) {
    match reply {
        ChatReply::Complete(_) => {}
        ChatReply::Stream(mut s) => while s.next().await.transpose().expect("chunk").is_some() {},
    }
}

/// One call to the end, with `extra` in the body and the gateway's `class`.
async fn call(p: &Arc<dyn ChatProvider>, extra: Value, class: Option<Class>) {
    let reply = p
        .chat_with(
            request(extra),
            CallOptions {
                class,
                ..Default::default()
            },
        )
        .await;
    finish(reply.expect("answer")).await;
}

/// The `priority` of each body the engine received.
fn priorities(fake: &FakeEngine) -> Vec<Value> {
    fake.requests()
        .iter()
        .map(|b| b["priority"].clone())
        .collect()
}

#[tokio::test]
async fn vllm_receives_the_class_as_its_priority_and_nothing_the_caller_made_up() {
    let fake = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(4))
        .await
        .expect("fake");
    let p = provider(&fake, EngineKind::Vllm);
    call(&p, json!({}), Some(Class::Batch)).await;
    call(&p, json!({"stream": true}), Some(Class::Batch)).await;
    call(&p, json!({"priority": 99}), Some(Class::Critical)).await;
    call(&p, json!({"priority": -5}), None).await;
    let want = [json!(3), json!(3), json!(0), Value::Null];
    assert_eq!(priorities(&fake), want);
}

/// Without `--scheduling-policy priority` vLLM refuses a priority other than 0: none is sent,
/// not even the caller's.
#[tokio::test]
async fn vllm_without_priority_scheduling_gets_no_priority() {
    let fake = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(4))
        .await
        .expect("fake");
    let p = provider_with(&fake, EngineKind::Vllm, false);
    call(&p, json!({}), Some(Class::Batch)).await;
    call(&p, json!({"priority": 5}), Some(Class::Critical)).await;
    assert_eq!(priorities(&fake), [Value::Null, Value::Null]);
}

#[tokio::test]
async fn other_engines_get_the_body_as_the_client_wrote_it() {
    let fake = FakeEngine::start(EngineFlavor::LlamaCpp, FakeEngine::params(2))
        .await
        .expect("fake");
    let p = provider(&fake, EngineKind::LlamaCpp);
    call(&p, json!({"priority": 7}), Some(Class::Batch)).await;
    call(&p, json!({}), Some(Class::Batch)).await;
    assert_eq!(priorities(&fake), [json!(7), Value::Null]);
}

/// With its one slot held, the vLLM fake queues a batch request, then a critical one; when
/// the slot frees, the critical one runs first.
#[tokio::test]
async fn the_vllm_fake_runs_the_higher_class_first() {
    let fake = FakeEngine::start(EngineFlavor::Vllm, FakeEngine::params(1))
        .await
        .expect("fake");
    let p = provider(&fake, EngineKind::Vllm);
    let hold = fake.hold(1).await;
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut calls = Vec::new();
    for (n, class) in [(1, Class::Batch), (2, Class::Critical)] {
        let (p, done) = (p.clone(), done.clone());
        calls.push(tokio::spawn(async move {
            let options = CallOptions {
                class: Some(class),
                ..Default::default()
            };
            finish(
                p.chat_with(request(json!({})), options)
                    .await
                    .expect("answer"),
            )
            .await;
            done.lock().expect("lock").push(class);
        }));
        switchyard_testkit::eventually(Duration::from_secs(10), "the request waits", || {
            let waiting = fake.load().waiting;
            async move { waiting == n }
        })
        .await;
    }
    drop(hold);
    for c in calls {
        c.await.expect("call");
    }
    assert_eq!(*done.lock().expect("lock"), [Class::Critical, Class::Batch]);
}
