//! OTLP export of traces (issue 19): the settings `[telemetry.otlp]` and the standard `OTEL_*`
//! variables make, the tracer requests start their spans on (`data_plane::trace`), and the
//! export, off the request path.
//!
//! 1. A finished span goes to a bounded queue ([`Bounded`]): when `queue_size` spans wait
//!    already, it is dropped and counted (`switchyard_otlp_spans_dropped_total`); a request
//!    never waits for room.
//! 2. The SDK's batch span processor drains the queue on a thread of its own, in batches.
//! 3. Each batch is sent as OTLP/HTTP protobuf by the gateway's own reqwest, on the gateway's
//!    runtime ([`Sender`]): no second HTTP client, no tonic. A collector that is down or slow
//!    costs that thread only, within `timeout` per export, retries included.
//! 4. Shutdown flushes what is queued, within a bounded time ([`Export::shutdown`]).
//!
//! It must not: block or fail a request, or print a header's value (they carry vendors' API
//! keys): errors name the variable and the header's position, never what it holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::Histogram;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use switchyard_control::OtlpSpec;

use crate::metrics::{self as m, LabelValue};

/// The collector's base URL; `/v1/traces` is added.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The traces endpoint itself, used as it is.
pub const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const HEADERS_VAR: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const TRACES_HEADERS_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";
/// The metrics endpoint itself, used as it is (with `metrics = true`).
pub const METRICS_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// Where OTLP/HTTP goes when export is configured with no endpoint (the OTLP default).
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
const TRACES_PATH: &str = "/v1/traces";
const METRICS_PATH: &str = "/v1/metrics";
/// How often the GenAI metrics are exported (and at shutdown).
const METRICS_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("{from}: `{value}` is not an http:// or https:// URL")]
    Endpoint { from: &'static str, value: String },
    #[error("{var}: header {position} is not `name=value` with a valid name and value")]
    Header { var: String, position: usize },
    #[error("telemetry.otlp.headers_env: `{0}` is not set")]
    HeadersUnset(String),
    #[error("cannot start OTLP export: {0}")]
    Build(String),
}

/// Where traces go and how: `[telemetry.otlp]` first, then the environment.
pub struct Settings {
    /// The traces endpoint (`.../v1/traces`).
    pub endpoint: String,
    /// The metrics endpoint (`.../v1/metrics`), when the GenAI metrics are exported.
    pub metrics_endpoint: Option<String>,
    /// Secret values: this type has no `Debug`.
    headers: HashMap<String, String>,
    pub service_name: String,
    pub sampling_ratio: f64,
    pub timeout: Duration,
    pub queue_size: usize,
}

impl Settings {
    /// The settings, or `None` when export is off: no `[telemetry.otlp]` and neither
    /// endpoint variable set.
    pub fn resolve(
        spec: Option<&OtlpSpec>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, OtlpError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        // The collector's base URL: the file's, else the variable's, else the default when
        // the file asks for export.
        let base = match (spec.and_then(|s| s.endpoint.clone()), var(ENDPOINT_VAR)) {
            (Some(base), _) => Some(base),
            (None, Some(base)) => Some(checked(ENDPOINT_VAR, base)?),
            (None, None) => spec.map(|_| DEFAULT_ENDPOINT.to_owned()),
        };
        let from_file = spec.and_then(|s| s.endpoint.as_ref()).is_some();
        let endpoint = match (var(TRACES_ENDPOINT_VAR), &base) {
            (Some(url), _) if !from_file => checked(TRACES_ENDPOINT_VAR, url)?,
            (_, Some(base)) => signal_url(base, TRACES_PATH),
            (Some(url), None) => checked(TRACES_ENDPOINT_VAR, url)?,
            (None, None) => return Ok(None),
        };
        let metrics_endpoint = match (spec.is_some_and(|s| s.metrics), var(METRICS_ENDPOINT_VAR)) {
            (false, _) => None,
            (true, Some(url)) if !from_file => Some(checked(METRICS_ENDPOINT_VAR, url)?),
            (true, _) => base.as_deref().map(|b| signal_url(b, METRICS_PATH)),
        };
        let mut headers = HashMap::new();
        for name in [HEADERS_VAR, TRACES_HEADERS_VAR] {
            if let Some(list) = var(name) {
                headers.extend(parse_headers(name, &list)?);
            }
        }
        if let Some(name) = spec.and_then(|s| s.headers_env.as_deref()) {
            let list = var(name).ok_or_else(|| OtlpError::HeadersUnset(name.to_owned()))?;
            headers.extend(parse_headers(name, &list)?);
        }
        let service_name = spec
            .and_then(|s| s.service_name.clone())
            .or_else(|| var(SERVICE_NAME_VAR))
            .unwrap_or_else(|| "switchyard".to_owned());
        Ok(Some(Settings {
            endpoint,
            metrics_endpoint,
            headers,
            service_name,
            sampling_ratio: spec.map_or(1.0, |s| s.sampling_ratio),
            timeout: spec.map_or(Duration::from_secs(10), |s| s.timeout),
            queue_size: spec.map_or(2_048, |s| s.queue_size),
        }))
    }

    /// How many headers are sent (their names and values stay private).
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }
}

fn checked(from: &'static str, value: String) -> Result<String, OtlpError> {
    let url = value.trim();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url.to_owned()),
        _ => Err(OtlpError::Endpoint { from, value }),
    }
}

/// A base URL as a signal's endpoint (`path`: `/v1/traces`, `/v1/metrics`), as the OTLP
/// exporter spec says for the base variable; a URL already ending in a signal's path is the
/// collector's base plus that path.
fn signal_url(base: &str, path: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    let base = [TRACES_PATH, METRICS_PATH]
        .iter()
        .find_map(|p| base.strip_suffix(p))
        .unwrap_or(base);
    format!("{base}{path}")
}

/// `name=value,name2=value2` (values percent-decoded), the form of `OTEL_EXPORTER_OTLP_HEADERS`.
/// A bad entry is named by its position: its text may hold a key.
fn parse_headers(var: &str, list: &str) -> Result<Vec<(String, String)>, OtlpError> {
    let bad = |position| OtlpError::Header {
        var: var.to_owned(),
        position,
    };
    list.split(',')
        .enumerate()
        .filter(|(_, entry)| !entry.trim().is_empty())
        .map(|(i, entry)| {
            let (name, value) = entry.split_once('=').ok_or_else(|| bad(i + 1))?;
            let (name, value) = (
                name.trim(),
                percent_decode(value.trim()).ok_or_else(|| bad(i + 1))?,
            );
            let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(&value).is_ok();
            if !valid {
                return Err(bad(i + 1));
            }
            Ok((name.to_ascii_lowercase(), value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The export pipeline of this process. Dropping it without [`Export::shutdown`] makes the SDK
/// shut down there, blocking: shut it down off the async threads first.
pub struct Export {
    provider: SdkTracerProvider,
    meters: Option<SdkMeterProvider>,
}

/// What [`Export::start`] gives the request path.
pub struct Started {
    pub export: Export,
    pub tracer: SdkTracer,
    pub gen_ai: Option<Arc<GenAiMetrics>>,
}

impl Export {
    /// Starts export as `settings` say, sending on `runtime`; returns the tracer requests
    /// start their spans on.
    pub fn start(
        settings: Settings,
        runtime: tokio::runtime::Handle,
    ) -> Result<Started, OtlpError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let sender = Arc::new(Sender { http, runtime });
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_shared_http_client(sender.clone())
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(settings.timeout)
            .with_headers(settings.headers.clone())
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let batches = BatchSpanProcessor::builder(Counting {
            inner: exporter,
            queued: queued.clone(),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(settings.queue_size)
                .build(),
        )
        .build();
        let processor = Bounded {
            inner: batches,
            queued,
            capacity: settings.queue_size,
        };
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(resource.clone())
            .build();
        let tracer = provider.tracer("switchyard");
        let meters = match &settings.metrics_endpoint {
            Some(endpoint) => Some(meter_provider(&settings, endpoint, sender, resource)?),
            None => None,
        };
        let gen_ai = meters.as_ref().map(|m| Arc::new(GenAiMetrics::new(m)));
        Ok(Started {
            export: Export { provider, meters },
            tracer,
            gen_ai,
        })
    }

    /// Exports what is queued and stops, waiting at most `within`. Blocks: call it off the
    /// async threads (the export itself runs on them).
    pub fn shutdown(&self, within: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(within) {
            tracing::warn!(error = %e, "OTLP export: spans still queued at shutdown were lost");
        }
        if let Some(meters) = &self.meters {
            if let Err(e) = meters.shutdown_with_timeout(within) {
                tracing::warn!(error = %e, "OTLP export: the last GenAI metrics were not sent");
            }
        }
    }
}

/// The GenAI metrics' provider: cumulative OTLP/HTTP on the same client and headers, read
/// every [`METRICS_INTERVAL`] (and at shutdown) by the SDK's periodic reader, on its thread.
fn meter_provider(
    settings: &Settings,
    endpoint: &str,
    sender: Arc<Sender>,
    resource: Resource,
) -> Result<SdkMeterProvider, OtlpError> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_shared_http_client(sender)
        .with_endpoint(endpoint.to_owned())
        .with_timeout(settings.timeout)
        .with_headers(settings.headers.clone())
        .build()
        .map_err(|e| OtlpError::Build(e.to_string()))?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(METRICS_INTERVAL)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build())
}

/// The GenAI semantic conventions' metrics, recorded once per request when it ends
/// (`RecordGuard`). Model names come bounded by the config's names (`metrics::Labels`).
pub struct GenAiMetrics {
    tokens: Histogram<u64>,
    duration: Histogram<f64>,
    first_token: Histogram<f64>,
}

/// One request, as the GenAI metrics see it.
pub struct GenAiSample<'a> {
    pub operation: &'static str,
    pub provider: Option<&'static str>,
    pub requested: &'a str,
    pub response: Option<&'a str>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub seconds: f64,
    pub first_token_seconds: Option<f64>,
    pub error: Option<&'a str>,
}

impl GenAiMetrics {
    fn new(meters: &SdkMeterProvider) -> Self {
        use opentelemetry::metrics::MeterProvider as _;
        let meter = meters.meter("switchyard");
        // The conventions' advised bucket boundaries.
        let token_buckets = (0..14).map(|i| 4f64.powi(i)).collect();
        let second_buckets: Vec<f64> = (0..14).map(|i| 0.01 * 2f64.powi(i)).collect();
        GenAiMetrics {
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens used per request, by gen_ai.token.type.")
                .with_boundaries(token_buckets)
                .build(),
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("Request duration, the whole answer or stream.")
                .with_boundaries(second_buckets.clone())
                .build(),
            first_token: meter
                .f64_histogram("gen_ai.server.time_to_first_token")
                .with_unit("s")
                .with_description("Time to the first token of a streamed answer.")
                .with_boundaries(second_buckets)
                .build(),
        }
    }

    pub fn record(&self, s: &GenAiSample<'_>) {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", s.operation),
            KeyValue::new("gen_ai.request.model", s.requested.to_owned()),
        ];
        if let Some(provider) = s.provider {
            attributes.push(KeyValue::new("gen_ai.provider.name", provider));
        }
        if let Some(model) = s.response {
            attributes.push(KeyValue::new("gen_ai.response.model", model.to_owned()));
        }
        if let Some(first) = s.first_token_seconds {
            self.first_token.record(first, &attributes);
        }
        if s.input_tokens > 0 || s.output_tokens > 0 {
            for (kind, tokens) in [("input", s.input_tokens), ("output", s.output_tokens)] {
                let mut a = attributes.clone();
                a.push(KeyValue::new("gen_ai.token.type", kind));
                self.tokens.record(u64::from(tokens), &a);
            }
        }
        if let Some(error) = s.error {
            attributes.push(KeyValue::new("error.type", error.to_owned()));
        }
        self.duration.record(s.seconds, &attributes);
    }
}

/// The OTLP exporter's HTTP client: the gateway's reqwest, run on the gateway's runtime. The
/// batch processor's thread waits for the task; the request path never does.
#[derive(Debug)]
struct Sender {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Sender {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let call = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        let sent = self.runtime.spawn(async move {
            let response = call.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// Step 1: the batch processor with a bound the gateway counts. `queued` is every span handed
/// on and not yet through an export, so the processor's own queue (of the same size) never
/// fills and drops nothing uncounted.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            m::counter(m::SPANS_DROPPED, &[]).increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, giving back the queue's room as each batch is done with (sent, failed or
/// abandoned) and counting exports by outcome.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

/// Gives back `.1` spans' room in the queue when dropped.
struct Release(Arc<AtomicUsize>, usize);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _release = Release(self.queued.clone(), batch.len());
        let result = self.inner.export(batch).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        m::counter(m::SPAN_EXPORTS, &[("outcome", LabelValue::fixed(outcome))]).increment(1);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn off_without_config_or_endpoint_variables() {
        let env = env_of(&[(HEADERS_VAR, "a=b")]);
        assert!(Settings::resolve(None, &env).unwrap().is_none());
    }

    #[test]
    fn the_standard_variables_turn_it_on() {
        let env = env_of(&[
            (ENDPOINT_VAR, "http://collector:4318/"),
            (HEADERS_VAR, "x-api-key=abc%3D,x-team = core"),
            (SERVICE_NAME_VAR, "gw"),
        ]);
        let s = Settings::resolve(None, &env).unwrap().unwrap();
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.headers["x-api-key"], "abc=");
        assert_eq!(s.headers["x-team"], "core");
        assert_eq!(s.service_name, "gw");
        let env = env_of(&[(TRACES_ENDPOINT_VAR, "https://vendor.example/otlp/traces")]);
        let s = Settings::resolve(None, &env).unwrap().unwrap();
        assert_eq!(
            s.endpoint, "https://vendor.example/otlp/traces",
            "used as it is"
        );
    }

    #[test]
    fn metrics_go_beside_traces_when_asked() {
        let spec = |metrics| OtlpSpec {
            endpoint: Some("http://collector:4318".to_owned()),
            headers_env: None,
            service_name: None,
            sampling_ratio: 1.0,
            timeout: Duration::from_secs(1),
            queue_size: 64,
            metrics,
        };
        let none = |_: &str| None;
        let on = Settings::resolve(Some(&spec(true)), &none)
            .unwrap()
            .unwrap();
        assert_eq!(on.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(
            on.metrics_endpoint.as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        let off = Settings::resolve(Some(&spec(false)), &none)
            .unwrap()
            .unwrap();
        assert_eq!(off.metrics_endpoint, None);
    }

    #[test]
    fn bad_variables_are_named_without_their_values() {
        let env = env_of(&[(ENDPOINT_VAR, "collector:4318")]);
        let e = Settings::resolve(None, &env).err().unwrap().to_string();
        assert!(e.contains(ENDPOINT_VAR), "{e}");
        let env = env_of(&[
            (ENDPOINT_VAR, "http://c:4318"),
            (HEADERS_VAR, "ok=1,sk-secret"),
        ]);
        let e = Settings::resolve(None, &env).err().unwrap().to_string();
        assert!(e.contains("header 2") && !e.contains("sk-secret"), "{e}");
    }
}
