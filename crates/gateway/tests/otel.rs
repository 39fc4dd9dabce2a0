//! OpenTelemetry traces over real HTTP (issue 19): an OTLP/HTTP receiver started by the test
//! decodes what the gateway exports (protobuf, with the `opentelemetry-proto` types) and the
//! fake upstream records the `traceparent` it was sent. The gateway is stopped before the
//! spans are read: shutdown flushes the export queue, so no test waits on a timer.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use common::{guarded_config, start, start_with_env, user, KEY};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, Metric};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message;
use serde_json::json;
use switchyard_testkit::{
    service_account_key_file, Behavior, FakeUpstream, Flavor, Reply, FAKE_AWS_ACCESS_KEY_ID,
    FAKE_AWS_REGION, FAKE_AWS_SECRET_ACCESS_KEY,
};

/// What the receiver was sent: each export's headers and spans, with the resource's
/// `service.name`.
#[derive(Default)]
struct Received {
    exports: Vec<(HeaderMap, String, Vec<Span>)>,
    metrics: Vec<Metric>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

impl Receiver {
    /// A collector on `127.0.0.1:0`; returns it and its base URL.
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(receive))
            .route("/v1/metrics", axum::routing::post(receive_metrics))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        #[expect(
            clippy::disallowed_methods,
            reason = "the test's collector; ends with it"
        )]
        let _serving = tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.0.lock().unwrap();
        received
            .exports
            .iter()
            .flat_map(|(_, _, spans)| spans.clone())
            .collect()
    }

    fn exports(&self) -> usize {
        self.0.lock().unwrap().exports.len()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let mut received = r.0.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        let spans = resource
            .scope_spans
            .into_iter()
            .flat_map(|s| s.spans)
            .collect();
        received.exports.push((headers.clone(), service, spans));
    }
    // An empty ExportTraceServiceResponse: full success.
    Vec::new()
}

async fn receive_metrics(State(r): State<Receiver>, body: Bytes) -> Vec<u8> {
    let request = ExportMetricsServiceRequest::decode(body).unwrap();
    let metrics = request
        .resource_metrics
        .into_iter()
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics);
    r.0.lock().unwrap().metrics.extend(metrics);
    Vec::new()
}

fn text(v: &Any) -> Option<String> {
    match v {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// A span's attribute, as a string, an integer, a float or a bool written out.
fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|v| text(v.value.as_ref()?))
            .collect::<Vec<_>>()
            .join(","),
        other => format!("{other:?}"),
    })
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The one request span (the gateway's server span) named `name`.
fn request_span<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = of_kind(spans, SpanKind::Server)
        .into_iter()
        .filter(|s| s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one request span `{name}` in {:#?}",
        names(spans)
    );
    found[0]
}

fn of_kind(spans: &[Span], kind: SpanKind) -> Vec<&Span> {
    spans.iter().filter(|s| s.kind == kind as i32).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one `{name}` span in {:#?}", names(spans));
    found[0]
}

fn names(spans: &[Span]) -> Vec<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn otlp(url: &str) -> String {
    format!("[telemetry.otlp]\nendpoint = \"{url}\"\n")
}

/// `before` (a telemetry section), then model `m` on `up` with `model_extra` in its table,
/// and the test key.
fn config_on(up: &FakeUpstream, before: &str, model_extra: &str) -> String {
    format!(
        "{before}{}{model_extra}\n[[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::openai_model(up)
    )
}

#[tokio::test]
async fn the_request_span_carries_genai_attributes_and_its_children_under_the_callers_trace() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("Paris is the capital.").with_usage(11, 5));
    let config = guarded_config(&up, &otlp(&url), "[guards.pii]\n");
    let mut gw = start(&config).await;
    let prompt = "What is the capital of France? Write to ada@example.com";
    let r = gw
        .chat(json!({"model": "m", "messages": user(prompt), "max_tokens": 50, "temperature": 0.0, "top_p": 0.5}))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request_id = common::request_id(&r);
    let body: serde_json::Value = r.json().await.unwrap();
    gw.stop().await;

    let spans = receiver.spans();
    let request = request_span(&spans, "chat m");
    assert_eq!(hex(&request.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&request.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(request.trace_state, "vendor=abc");
    assert_eq!(request.kind, SpanKind::Server as i32);
    for (key, want) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "m"),
        ("gen_ai.response.model", "m"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.usage.input_tokens", "11"),
        ("gen_ai.usage.output_tokens", "5"),
        ("gen_ai.response.finish_reasons", "stop"),
        ("gen_ai.request.max_tokens", "50"),
        ("gen_ai.request.temperature", "0"),
        ("gen_ai.request.top_p", "0.5"),
        ("http.response.status_code", "200"),
        ("switchyard.request_id", request_id.as_str()),
        ("switchyard.tenant", "test"),
        ("switchyard.cache", "miss"),
        ("switchyard.endpoint", "chat"),
    ] {
        assert_eq!(attr(request, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(
        attr(request, "gen_ai.response.id").as_deref(),
        body["id"].as_str(),
        "the answer's id"
    );
    assert_eq!(attr(request, "error.type"), None);

    // The stages and the attempt, each a child of the request's span.
    let mask = one(&spans, "switchyard.guard.mask");
    assert_eq!(attr(mask, "switchyard.guard.names").as_deref(), Some("pii"));
    assert_eq!(
        attr(mask, "switchyard.guard.outcomes").as_deref(),
        Some("masked")
    );
    let cache = one(&spans, "switchyard.cache.lookup");
    assert_eq!(
        attr(cache, "switchyard.cache.outcome").as_deref(),
        Some("miss")
    );
    let attempts = of_kind(&spans, SpanKind::Client);
    assert_eq!(attempts.len(), 1, "{:#?}", names(&spans));
    let attempt = attempts[0];
    assert_eq!(attempt.name, "chat m", "the upstream model");
    assert_eq!(
        attr(attempt, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(attempt, "server.port"),
        Some(up.addr().port().to_string())
    );
    assert_eq!(
        attr(attempt, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(attempt, "switchyard.attempt").as_deref(), Some("1"));
    for child in [mask, cache, attempt] {
        assert_eq!(child.parent_span_id, request.span_id, "{}", child.name);
        assert_eq!(child.trace_id, request.trace_id, "{}", child.name);
    }

    // The upstream was told the attempt's span, in the caller's trace.
    let sent = up.last_request().unwrap();
    let traceparent = sent.header("traceparent").unwrap();
    assert_eq!(
        traceparent,
        format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id))
    );
    assert_eq!(sent.header("tracestate"), Some("vendor=abc"));

    // Names, numbers and ids only: no prompt, answer or masked value in any attribute.
    let everything = format!("{spans:?}");
    for secret in [
        "capital of France",
        "ada@example.com",
        "Paris is the capital",
    ] {
        assert!(!everything.contains(secret), "`{secret}` was exported");
    }
}

#[tokio::test]
async fn a_streamed_request_ends_its_span_with_usage_and_each_attempt_is_a_span() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Behavior::status(503, "overloaded"));
    up.push(Reply::pieces(["Hel", "lo", "!"]).with_usage(9, 3));
    let config = config_on(
        &up,
        &otlp(&url),
        "resilience = { max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 2 }\n",
    );
    let mut gw = start(&config).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (content, _) = common::sse_content(&r.text().await.unwrap());
    assert_eq!(content, "Hello!");
    gw.stop().await;

    let spans = receiver.spans();
    let request = request_span(&spans, "chat m");
    assert!(
        request.parent_span_id.is_empty(),
        "no traceparent: a root span"
    );
    assert_eq!(
        attr(request, "gen_ai.usage.input_tokens").as_deref(),
        Some("9")
    );
    assert_eq!(
        attr(request, "gen_ai.usage.output_tokens").as_deref(),
        Some("3")
    );
    assert_eq!(attr(request, "switchyard.stream").as_deref(), Some("true"));
    assert_eq!(attr(request, "switchyard.attempts").as_deref(), Some("2"));
    assert!(attr(request, "gen_ai.response.id").is_some());
    let attempts = of_kind(&spans, SpanKind::Client);
    assert_eq!(attempts.len(), 2, "{:#?}", names(&spans));
    let failed = attempts
        .iter()
        .find(|s| attr(s, "switchyard.attempt").as_deref() == Some("1"))
        .unwrap();
    assert_eq!(
        attr(failed, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(attr(failed, "error.type").as_deref(), Some("upstream_5xx"));
    let retried = attempts
        .iter()
        .find(|s| attr(s, "switchyard.attempt").as_deref() == Some("2"))
        .unwrap();
    assert_eq!(
        attr(retried, "http.request.resend_count").as_deref(),
        Some("1")
    );
    // Each attempt told the upstream its own span.
    let sent: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].contains(&hex(&failed.span_id)), "{sent:?}");
    assert!(sent[1].contains(&hex(&retried.span_id)), "{sent:?}");
}

/// Model `m` on a provider of `up`'s kind as `upstream_model`, its credentials from `ENV`
/// (Vertex's from the service account key file `key_file`).
fn provider_config(
    up: &FakeUpstream,
    before: &str,
    upstream_model: &str,
    key_file: &str,
) -> String {
    let base = up.base_url();
    let provider = match up.flavor() {
        Flavor::OpenAi | Flavor::Anthropic | Flavor::Gemini => {
            format!("base_url = \"{base}\"\napi_key_env = \"OTEL_TEST_KEY\"")
        }
        Flavor::Bedrock => format!("base_url = \"{base}\"\nregion = \"{FAKE_AWS_REGION}\""),
        Flavor::Azure => format!(
            "endpoint = \"{base}\"\napi_version = \"2024-10-21\"\napi_key_env = \"OTEL_TEST_KEY\""
        ),
        Flavor::Vertex => format!(
            "base_url = \"{base}\"\nproject = \"p\"\nlocation = \"us-east5\"\ncredentials_file = \"{key_file}\""
        ),
    };
    format!(
        "{before}[providers.up]\nkind = \"{}\"\n{provider}\n\n\
         [models.m]\ndeployments = [{{ provider = \"up\", upstream_model = \"{upstream_model}\" }}]\n\n\
         [[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n",
        up.flavor().kind()
    )
}

const ENV: &[(&str, &str)] = &[
    ("OTEL_TEST_KEY", "sk-upstream"),
    ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
];

/// Each call `up` was sent carried its own attempt span, one of `attempts`, in the caller's
/// trace.
fn sent_the_attempts(up: &FakeUpstream, attempts: &[&Span], case: &str) {
    let mut told: Vec<String> = up
        .requests()
        .iter()
        .map(|sent| {
            assert_eq!(sent.header("tracestate"), Some("vendor=abc"), "{case}");
            sent.header("traceparent").unwrap_or("none").to_owned()
        })
        .collect();
    let mut want: Vec<String> = attempts
        .iter()
        .map(|a| format!("00-{TRACE_ID}-{}-01", hex(&a.span_id)))
        .collect();
    told.sort();
    want.sort();
    assert_eq!(told, want, "{case}");
}

#[tokio::test]
async fn every_http_provider_sends_the_attempts_traceparent_and_names_its_server() {
    // The provider as the GenAI semantic conventions name the service behind it.
    for (flavor, upstream_model, system) in [
        (Flavor::OpenAi, "gpt-4o", "openai"),
        (Flavor::Anthropic, "claude-sonnet-4-5", "anthropic"),
        (
            Flavor::Bedrock,
            "anthropic.claude-3-haiku-20240307-v1:0",
            "aws.bedrock",
        ),
        (Flavor::Azure, "gpt-4o", "azure.ai.openai"),
        (Flavor::Gemini, "gemini-2.5-flash", "gcp.gemini"),
        (Flavor::Vertex, "gemini-2.5-pro", "gcp.vertex_ai"),
        (
            Flavor::Vertex,
            "claude-sonnet-4-5@20250929",
            "gcp.vertex_ai",
        ),
    ] {
        let case = format!("{flavor:?} {upstream_model}");
        let (receiver, url) = Receiver::start().await;
        let up = FakeUpstream::start(flavor).await.unwrap();
        up.push(Reply::text("Hi there.").with_usage(4, 2));
        // Azure's and Gemini's fakes check it (the others ignore it).
        up.require_api_key(ENV[0].1);
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), service_account_key_file(&up.token_url())).unwrap();
        let path = key_file.path().display().to_string();
        let config = provider_config(&up, &otlp(&url), upstream_model, &path);
        let mut gw = start_with_env(&config, ENV).await;
        let traced = |path: &str, body: serde_json::Value| {
            reqwest::Client::new()
                .post(gw.url(path))
                .bearer_auth(KEY)
                .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
                .header("tracestate", "vendor=abc")
                .json(&body)
                .send()
        };
        let r = traced(
            "/v1/chat/completions",
            json!({"model": "m", "messages": user("hello")}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{case}: {}", r.text().await.unwrap());
        // Azure serves embeddings too, through the openai adapter's code.
        let embeds = flavor == Flavor::Azure;
        if embeds {
            let r = traced("/v1/embeddings", json!({"model": "m", "input": "hello"}))
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{case}: {}", r.text().await.unwrap());
        }
        gw.stop().await;

        let spans = receiver.spans();
        let attempts = of_kind(&spans, SpanKind::Client);
        assert_eq!(
            attempts.len(),
            1 + usize::from(embeds),
            "{case}: {:#?}",
            names(&spans)
        );
        for span in attempts.iter().chain([&request_span(&spans, "chat m")]) {
            assert_eq!(
                attr(span, "gen_ai.provider.name").as_deref(),
                Some(system),
                "{case}"
            );
        }
        for attempt in &attempts {
            assert_eq!(
                attr(attempt, "server.address").as_deref(),
                Some("127.0.0.1"),
                "{case}"
            );
            assert_eq!(
                attr(attempt, "server.port"),
                Some(up.addr().port().to_string()),
                "{case}"
            );
        }
        // The fakes checked each call's credentials too (Bedrock's, its SigV4 signature: the
        // trace's headers, unsigned, break nothing).
        sent_the_attempts(&up, &attempts, &case);
    }
}

#[tokio::test]
async fn messages_and_embeddings_get_the_same_request_span() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("Hi there.").with_usage(4, 2));
    let config = config_on(&up, &otlp(&url), "");
    let mut gw = start(&config).await;
    let r = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "m", "max_tokens": 20, "messages": user("hello")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": "m", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.stop().await;

    let spans = receiver.spans();
    let chat = spans
        .iter()
        .find(|s| {
            attr(s, "switchyard.endpoint").as_deref() == Some("messages")
                && s.kind == SpanKind::Server as i32
        })
        .unwrap();
    assert_eq!(chat.name, "chat m");
    assert_eq!(
        attr(chat, "gen_ai.usage.output_tokens").as_deref(),
        Some("2")
    );
    assert_eq!(
        attr(chat, "gen_ai.request.max_tokens").as_deref(),
        Some("20")
    );
    let embed = request_span(&spans, "embeddings m");
    assert_eq!(
        attr(embed, "gen_ai.operation.name").as_deref(),
        Some("embeddings")
    );
    let attempt = of_kind(&spans, SpanKind::Client)
        .into_iter()
        .find(|s| s.name.starts_with("embeddings ") && s.parent_span_id == embed.span_id)
        .unwrap();
    // The embeddings call carried the attempt's span on too.
    let sent = up.last_request().unwrap();
    assert!(sent.path.ends_with("/embeddings"), "{}", sent.path);
    let traceparent = sent.header("traceparent").unwrap();
    assert!(
        traceparent.contains(&hex(&attempt.span_id)),
        "{traceparent}"
    );
}

#[tokio::test]
async fn a_route_decision_is_a_child_span() {
    let (receiver, url) = Receiver::start().await;
    let config = format!(
        r#"{}
[providers.sim]
kind = "sim"
[providers.sim.models.s]
ttft_ms = {{ p50 = 0 }}
output_tokens = {{ p50 = 4 }}
[providers.sim.models.f]
ttft_ms = {{ p50 = 0 }}
output_tokens = {{ p50 = 4 }}

[models.small]
deployments = [{{ provider = "sim", upstream_model = "s" }}]
quality_tier = 1
[models.frontier]
deployments = [{{ provider = "sim", upstream_model = "f" }}]
quality_tier = 3

[routes.auto]
candidates = [
  {{ model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" }},
  {{ model = "frontier" }},
]
router = "builtin:routellm-mixtral-gpt4.v1"

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        otlp(&url)
    );
    let mut gw = start(&config).await;
    let r = gw
        .chat(json!({"model": "auto", "messages": user("What is 2 + 2?")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let chosen = r.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_owned();
    gw.stop().await;

    let spans = receiver.spans();
    let request = request_span(&spans, "chat auto");
    let route = one(&spans, "switchyard.route");
    assert_eq!(route.parent_span_id, request.span_id);
    assert_eq!(
        attr(route, "switchyard.route.name").as_deref(),
        Some("auto")
    );
    let model = attr(route, "switchyard.route.model").unwrap();
    assert!(chosen.contains(&model), "{chosen} names {model}");
    assert_eq!(
        attr(request, "switchyard.route").as_deref(),
        Some(chosen.as_str())
    );
    assert_eq!(
        attr(request, "gen_ai.provider.name").as_deref(),
        Some("sim")
    );
}

#[tokio::test]
async fn the_standard_variables_configure_export_and_a_bad_traceparent_is_ignored() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("ok"));
    let config = config_on(&up, "", "");
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-vendor-key=sk-otel-secret-1",
        ),
        ("OTEL_SERVICE_NAME", "gateway-under-test"),
    ];
    let mut gw = start_with_env(&config, &vars).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a malformed traceparent is no error");
    let metrics = gw.metrics().await;
    assert!(
        !metrics.contains("sk-otel-secret"),
        "the header's value stays out of /metrics"
    );
    gw.stop().await;

    let exports = receiver.0.lock().unwrap().exports.clone();
    assert!(!exports.is_empty());
    for (headers, service, _) in &exports {
        assert_eq!(headers["x-vendor-key"], "sk-otel-secret-1");
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(service, "gateway-under-test");
    }
    let spans = receiver.spans();
    let request = request_span(&spans, "chat m");
    assert!(
        request.parent_span_id.is_empty(),
        "the bad traceparent was ignored"
    );
    let sent = up.last_request().unwrap();
    let traceparent = sent.header("traceparent").unwrap();
    assert!(
        traceparent.contains(&hex(&request.trace_id)),
        "{traceparent}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_fails_no_request() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("still here"));
    let config = config_on(&up, &format!("{}timeout_ms = 500\n", otlp(&url)), "");
    let mut gw = start(&config).await;
    let r = hi(&gw).await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "still here");
    // Shutdown tries to flush and gives up within its bound; the records are all written.
    let closed = gw.stop().await.unwrap();
    assert_eq!(closed.written, 1);
    let metrics = switchyard_gateway::metrics::handle().render();
    assert!(
        metrics.contains(r#"switchyard_otlp_exports_total{outcome="error"}"#),
        "the failed export is counted"
    );
}

#[tokio::test]
async fn off_exports_nothing_and_sends_no_traceparent_upstream() {
    let (receiver, _url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("ok"));
    let config = config_on(&up, "", "");
    let mut gw = start(&config).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.stop().await;
    assert_eq!(receiver.exports(), 0);
    let sent = up.last_request().unwrap();
    assert_eq!(sent.header("traceparent"), None, "not forwarded, not made");
    assert_eq!(sent.header("tracestate"), None);
}

/// "hi" to model `m`, answered.
async fn hi(gw: &common::TestGateway) -> reqwest::Response {
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_stream_ends_the_span() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let never = switchyard_testkit::Gate::new();
    up.push(Reply::text("a long story").held_after_first(&never));
    let mut gw = start(&config_on(&up, &otlp(&url), "")).await;
    let r = gw
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    up.wait_for_disconnects(1).await;
    gw.stop().await;

    let spans = receiver.spans();
    let request = request_span(&spans, "chat m");
    assert_eq!(
        attr(request, "http.response.status_code").as_deref(),
        Some("499")
    );
    assert_eq!(
        attr(request, "error.type").as_deref(),
        Some("client_closed")
    );
    assert_eq!(
        request.status.as_ref().map(|s| s.code),
        Some(opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32)
    );
}

#[tokio::test]
async fn a_collector_that_never_answers_fills_the_queue_and_drops_are_counted() {
    // Accepts connections and never answers: the first export waits out its timeout, so the
    // queue stays full while the requests run.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    #[expect(
        clippy::disallowed_methods,
        reason = "the silent collector; ends with the test"
    )]
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let otlp = format!("{}queue_size = 64\ntimeout_ms = 60000\n", otlp(&url));
    let mut gw = start(&config_on(&up, &otlp, "")).await;
    // Two spans a request (the request's and its attempt's): 80 spans for a queue of 64.
    for i in 0..40 {
        up.push(Reply::text("ok"));
        let r = gw
            .chat(json!({"model": "m", "messages": user(&format!("question {i}"))}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    let dropped = dropped_spans(&gw.metrics().await);
    assert!(dropped >= 16, "{dropped} spans dropped");
    gw.stop().await;
}

fn dropped_spans(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_otlp_spans_dropped_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_config_shown_holds_no_header_value_and_a_change_of_export_needs_a_restart() {
    let (_receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let before = format!(
        "{}{}headers_env = \"VENDOR_HEADERS\"\n\n",
        common::admin_section(),
        otlp(&url)
    );
    let vars = [("VENDOR_HEADERS", "x-vendor-key=sk-otel-secret-2")];
    let mut gw = start_with_env(&config_on(&up, &before, ""), &vars).await;
    let (status, shown) = gw
        .admin(reqwest::Method::GET, "/admin/v1/config", None)
        .await;
    assert_eq!(status, 200);
    let source = shown["source"].as_str().unwrap().to_owned();
    assert!(source.contains("headers_env = \"VENDOR_HEADERS\""));
    assert!(!shown.to_string().contains("sk-otel-secret"));

    let changed = source.replace(&url, "http://127.0.0.1:9");
    let (status, err) = gw
        .admin(
            reqwest::Method::POST,
            "/admin/v1/config",
            Some(json!({"source": changed, "message": "move the collector"})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("telemetry.otlp") && message.contains("restart"),
        "{message}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_genai_metrics_are_exported_when_asked() {
    let (receiver, url) = Receiver::start().await;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    up.push(Reply::text("Hi.").with_usage(11, 5));
    let otlp = format!("{}metrics = true\n", otlp(&url));
    let mut gw = start(&config_on(&up, &otlp, "")).await;
    hi(&gw).await;
    // Shutdown sends the last reading.
    gw.stop().await;

    let metrics = receiver.0.lock().unwrap().metrics.clone();
    let named = |name: &str| {
        metrics
            .iter()
            .filter(|m| m.name == name)
            .collect::<Vec<_>>()
    };
    let tokens = named("gen_ai.client.token.usage");
    assert!(
        !tokens.is_empty(),
        "{:?}",
        metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    let mut sums = Vec::new();
    for metric in tokens {
        let Some(Data::Histogram(h)) = &metric.data else {
            panic!("a histogram: {metric:?}");
        };
        for point in &h.data_points {
            let attr = |key: &str| {
                point
                    .attributes
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            };
            assert_eq!(attr("gen_ai.request.model").as_deref(), Some("m"));
            assert_eq!(attr("gen_ai.provider.name").as_deref(), Some("openai"));
            sums.push((attr("gen_ai.token.type").unwrap(), point.sum.unwrap()));
        }
    }
    sums.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        sums,
        [("input".to_owned(), 11.0), ("output".to_owned(), 5.0)]
    );
    assert!(!named("gen_ai.client.operation.duration").is_empty());
}
