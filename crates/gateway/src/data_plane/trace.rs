//! A request's trace (issue 19): one span per request following the OpenTelemetry GenAI
//! semantic conventions, child spans for the stages that decide (guards, cache, route) and
//! one client span per upstream attempt, whose context the upstream call carries on as
//! `traceparent`.
//!
//! It lives in the request's `RecordGuard` as an `Option`: when no exporter is configured
//! there is none, and no span, attribute list or header is ever made. The request span ends
//! where the record is written (an answer, an error, a stream's end or a client hanging up),
//! with what the record knows then (usage, the model that answered, the error). Stage spans
//! are made when their stage is over, with the start time taken before it, so a stage with
//! nothing to show (no guard ran) leaves no span. No prompt or answer text is ever an
//! attribute: names, numbers, ids and outcomes only.

use std::borrow::Cow;
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, Span};
use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse};
use switchyard_store::RequestRecord;

/// A request's span and what the record does not keep for it.
pub struct RequestTrace {
    tracer: SdkTracer,
    /// The context with the request's span: the parent of every child span.
    cx: Context,
    operation: &'static str,
    /// `gen_ai.request.*` and `gen_ai.response.*` attributes gathered on the way.
    attributes: Vec<KeyValue>,
    response_id: Option<String>,
    finish_reasons: Vec<String>,
    provider: Option<&'static str>,
}

/// The GenAI operation an endpoint performs (`gen_ai.operation.name`).
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        _ => "chat",
    }
}

impl RequestTrace {
    /// The request's span, a child of the caller's `traceparent` (and `tracestate`) when it
    /// sent a valid one; a malformed one is ignored and the span starts a trace.
    pub fn start(tracer: &SdkTracer, headers: &HeaderMap, endpoint: &str) -> Self {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let operation = operation(endpoint);
        let span = tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        RequestTrace {
            tracer: tracer.clone(),
            cx: parent.with_span(span),
            operation,
            attributes: Vec::new(),
            response_id: None,
            finish_reasons: Vec::new(),
            provider: None,
        }
    }

    /// The request's parameters (never its messages).
    pub fn request(&mut self, request: &ChatCompletionRequest) {
        let a = &mut self.attributes;
        if let Some(cap) = request.output_cap() {
            a.push(KeyValue::new("gen_ai.request.max_tokens", i64::from(cap)));
        }
        let numbers = [
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
        ];
        for (key, value) in numbers {
            if let Some(v) = value {
                a.push(KeyValue::new(key, v));
            }
        }
        for (key, field) in [
            ("gen_ai.request.frequency_penalty", "frequency_penalty"),
            ("gen_ai.request.presence_penalty", "presence_penalty"),
        ] {
            if let Some(v) = request.extra.get(field).and_then(|v| v.as_f64()) {
                a.push(KeyValue::new(key, v));
            }
        }
        if let Some(seed) = request.seed {
            a.push(KeyValue::new("gen_ai.request.seed", seed));
        }
        if request.choices() > 1 {
            a.push(KeyValue::new(
                "gen_ai.request.choice.count",
                i64::from(request.choices()),
            ));
        }
        a.push(KeyValue::new("switchyard.stream", request.is_stream()));
    }

    /// A whole answer's id and finish reasons.
    pub fn answer(&mut self, response: &ChatCompletionResponse) {
        self.response_id = Some(response.id.clone());
        self.finish_reasons = response
            .choices
            .iter()
            .filter_map(|c| c.finish_reason.clone())
            .collect();
    }

    /// A streamed answer's id (its first chunk's) and finish reasons, as they come.
    pub fn chunk(&mut self, chunk: &ChatCompletionChunk) {
        if self.response_id.is_none() && !chunk.id.is_empty() {
            self.response_id = Some(chunk.id.clone());
        }
        let reasons = chunk.choices.iter().filter_map(|c| c.finish_reason.clone());
        self.finish_reasons.extend(reasons);
        // A provider sending finish reasons without end stays bounded by `n`.
        self.finish_reasons.truncate(128);
    }

    /// The provider kind that answered (`gen_ai.provider.name`, as [`gen_ai_provider`]
    /// spells it).
    pub fn provider(&mut self, kind: &'static str) {
        self.provider = Some(gen_ai_provider(kind));
    }

    pub fn provider_name(&self) -> Option<&'static str> {
        self.provider
    }

    /// `gen_ai.operation.name`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// A finished stage as a child span from `since` to now.
    pub fn stage(&self, name: &'static str, since: SystemTime, attributes: Vec<KeyValue>) {
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(since)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        span.end();
    }

    /// A client span for one upstream attempt, started now.
    pub fn attempt(&self, attempt: &AttemptInfo<'_>) -> Attempt {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", self.operation),
            KeyValue::new("gen_ai.request.model", attempt.upstream_model.to_owned()),
            KeyValue::new("gen_ai.provider.name", gen_ai_provider(attempt.provider)),
            KeyValue::new("switchyard.model", attempt.model.to_owned()),
            KeyValue::new("switchyard.deployment", attempt.deployment.to_owned()),
            KeyValue::new("switchyard.attempt", i64::from(attempt.number)),
        ];
        if attempt.number > 1 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(attempt.number - 1),
            ));
        }
        if let Some((host, port)) = &attempt.server {
            attributes.push(KeyValue::new("server.address", host.clone()));
            attributes.push(KeyValue::new("server.port", i64::from(*port)));
        }
        let span = self
            .tracer
            .span_builder(format!("{} {}", self.operation, attempt.upstream_model))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        Attempt(span)
    }

    /// Ends the request's span with what its record says.
    pub fn end(mut self, r: &RequestRecord, route_header: Option<&str>) {
        let span = self.cx.span();
        let mut a = std::mem::take(&mut self.attributes);
        a.push(KeyValue::new("gen_ai.operation.name", self.operation));
        // A request refused before its body was read names no model: the span keeps its
        // operation's name.
        if let Some(requested) = r.requested_model.as_deref().filter(|m| !m.is_empty()) {
            span.update_name(Cow::Owned(format!("{} {requested}", self.operation)));
            a.push(KeyValue::new("gen_ai.request.model", requested.to_owned()));
        }
        if let Some(model) = &r.model {
            a.push(KeyValue::new("gen_ai.response.model", model.clone()));
        }
        if let Some(kind) = self.provider {
            a.push(KeyValue::new("gen_ai.provider.name", kind));
        }
        if r.prompt_tokens > 0 || r.completion_tokens > 0 {
            a.push(KeyValue::new(
                "gen_ai.usage.input_tokens",
                i64::from(r.prompt_tokens),
            ));
            a.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                i64::from(r.completion_tokens),
            ));
        }
        if let Some(id) = self.response_id.take() {
            a.push(KeyValue::new("gen_ai.response.id", id));
        }
        if !self.finish_reasons.is_empty() {
            a.push(strings(
                "gen_ai.response.finish_reasons",
                std::mem::take(&mut self.finish_reasons),
            ));
        }
        a.push(KeyValue::new(
            "http.response.status_code",
            i64::from(r.status),
        ));
        a.extend(switchyard_facts(r, route_header));
        if r.status >= 400 {
            let kind = r.error_kind.clone().unwrap_or_else(|| r.status.to_string());
            a.push(KeyValue::new("error.type", kind.clone()));
            span.set_status(Status::error(kind));
        }
        span.set_attributes(a);
        span.end();
    }
}

/// What a team filters a gateway's traces by: who, which decision, where it was served.
fn switchyard_facts(r: &RequestRecord, route_header: Option<&str>) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("switchyard.request_id", r.request_id.clone()),
        KeyValue::new("switchyard.endpoint", r.endpoint.clone()),
        KeyValue::new("switchyard.attempts", i64::from(r.attempts)),
        KeyValue::new(
            "switchyard.cost_nanousd",
            i64::try_from(r.cost_nanos).unwrap_or(i64::MAX),
        ),
    ];
    let optional = [
        ("switchyard.tenant", &r.tenant),
        ("switchyard.key", &r.key_id),
        ("switchyard.deployment", &r.deployment),
        ("switchyard.fallback_from", &r.fallback_from),
        ("switchyard.cache", &r.cache),
        ("switchyard.config_version", &r.config_version),
        ("switchyard.priority", &r.priority),
        ("switchyard.rollout", &r.rollout),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            a.push(KeyValue::new(key, v.clone()));
        }
    }
    if let Some(route) = route_header {
        a.push(KeyValue::new("switchyard.route", route.to_owned()));
    }
    a
}

/// A string array attribute.
pub fn strings(key: &'static str, values: Vec<String>) -> KeyValue {
    let values: Vec<StringValue> = values.into_iter().map(StringValue::from).collect();
    KeyValue::new(key, Value::Array(Array::String(values)))
}

/// What an attempt span says about where the call goes.
pub struct AttemptInfo<'a> {
    pub model: &'a str,
    pub upstream_model: &'a str,
    pub deployment: &'a str,
    pub provider: &'static str,
    pub server: Option<(String, u16)>,
    /// 1 for the first attempt of the request.
    pub number: u32,
}

/// An upstream attempt's span, live while the call runs.
pub struct Attempt(Span);

impl Attempt {
    /// `traceparent` (and `tracestate`) naming this attempt, for the upstream call.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let cx = Context::new().with_remote_span_context(self.0.span_context().clone());
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
        headers
    }

    /// Ends it: the upstream's status (`None`: no answer came, e.g. a connect error or a
    /// timeout) and the error's kind on failure.
    pub fn end(mut self, status: Option<u16>, error: Option<&'static str>) {
        if let Some(code) = status {
            self.0
                .set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        }
        if let Some(kind) = error {
            self.0.set_attribute(KeyValue::new("error.type", kind));
            self.0.set_status(Status::error(kind));
        }
        self.0.end();
    }
}

/// A provider kind as the GenAI semantic conventions name the system behind it
/// (`gen_ai.provider.name`), so a tracing backend's GenAI views group Switchyard's spans with
/// other clients' calls to the same service; kinds with no such name (the simulator) keep
/// their own.
pub fn gen_ai_provider(kind: &'static str) -> &'static str {
    match kind {
        "bedrock" => "aws.bedrock",
        "azure" => "azure.ai.openai",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        other => other,
    }
}
