//! Provider conformance: one list of cases, run over real HTTP against a fake upstream for
//! every adapter, so each adapter is held to the same contract (whole and streamed answers,
//! tool calls, error classification, usage, broken streams, cancellation).
//!
//! Layout: `Adapter` says how to build an adapter and what its upstream must have received;
//! `Harness` is one adapter wired to its own fake upstream; `mod cases` holds the cases, each
//! an `async fn(Harness)`; `suite!` turns the case list into one `#[tokio::test]` per adapter
//! and case (test names read `openai::streamed_text`, `anthropic::client_disconnect`,
//! `vertex_anthropic::rate_limited`, ...). The cloud kinds' fakes check credentials as the
//! services do: Azure's `api-version` and `api-key` (or a bearer token its `/token` granted for
//! the client credentials), Gemini's `x-goog-api-key`, Vertex's bearer token granted for a JWT
//! assertion whose RS256 signature the fake verifies against the test-only key.

// Helpers outside `#[test]` functions fail tests the same way the tests themselves do.
#![expect(clippy::expect_used, clippy::panic, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest, EmbeddingsRequest};
use switchyard_control::{
    AnthropicSpec, AzureAuth, AzureSpec, BedrockSpec, ClientCredentials, GeminiSpec, OpenAiSpec,
    ProviderSpec, VertexSpec, AZURE_COGNITIVE_SCOPE,
};
use switchyard_providers::{CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError};
use switchyard_testkit::{
    foreign_service_account_key_file, service_account_key_file, Behavior, Ending, FakeUpstream,
    Flavor, RecordedRequest, Reply,
};

use std::collections::VecDeque;
use std::sync::Mutex;
use switchyard_control::{Distribution, SimModelSpec, SimRule, SimRuleAction, SimSpec};

const KEY_VAR: &str = "CONFORMANCE_KEY";
const KEY: &str = "sk-conformance-secret";
/// A safety net against a hung test, never a synchronisation point.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Adapter {
    OpenAi,
    Anthropic,
    /// AWS Bedrock's Converse API, against a fake that checks every request's SigV4
    /// signature (credentials from the environment the build reads).
    Bedrock,
    /// The built-in simulator, scripted through its config (see [`ScriptedSim`]).
    Sim,
    /// Azure OpenAI with an API key, and with an Entra ID token.
    Azure,
    AzureEntra,
    Gemini,
    /// Vertex AI: a Gemini model, and an Anthropic model.
    Vertex,
    VertexAnthropic,
}

/// The Entra ID application of `Adapter::AzureEntra` (its secret is [`KEY`]).
const CLIENT_ID: &str = "conformance-client";
const AZURE_API_VERSION: &str = "2024-10-21";
const VERTEX_MODELS: &str = "/v1/projects/conformance/locations/us-central1/publishers";

impl Adapter {
    fn flavor(self) -> Flavor {
        match self {
            Adapter::OpenAi => Flavor::OpenAi,
            Adapter::Anthropic => Flavor::Anthropic,
            Adapter::Bedrock => Flavor::Bedrock,
            // The simulator has no upstream: its harness starts a fake that is never called.
            Adapter::Sim => Flavor::OpenAi,
            Adapter::Azure | Adapter::AzureEntra => Flavor::Azure,
            Adapter::Gemini => Flavor::Gemini,
            Adapter::Vertex | Adapter::VertexAnthropic => Flavor::Vertex,
        }
    }

    fn model(self) -> &'static str {
        match self {
            Adapter::OpenAi | Adapter::Azure | Adapter::AzureEntra => "gpt-fake",
            Adapter::Anthropic | Adapter::VertexAnthropic => "claude-fake",
            // A versioned id: its `:` must be escaped in the path.
            Adapter::Bedrock => "anthropic.claude-fake-v1:0",
            Adapter::Sim => "sim-fake",
            Adapter::Gemini | Adapter::Vertex => "gemini-fake",
        }
    }

    /// Builds the adapter the way the gateway does, through `switchyard_providers::build`;
    /// OAuth tokens come from `token_url`.
    fn provider(
        self,
        base_url: &str,
        token_url: &str,
        http: &reqwest::Client,
    ) -> Arc<dyn ChatProvider> {
        let headers = vec![("x-extra".to_owned(), "yes".to_owned())];
        // The service account key file a Vertex provider reads when it is built.
        let key_file = tempfile::NamedTempFile::new().expect("key file");
        std::fs::write(key_file.path(), service_account_key_file(token_url)).expect("key written");
        let connect_timeout = Duration::from_secs(2);
        let spec = match self {
            Adapter::Azure | Adapter::AzureEntra => ProviderSpec::Azure(AzureSpec {
                endpoint: base_url.to_owned(),
                api_version: AZURE_API_VERSION.to_owned(),
                auth: match self {
                    Adapter::Azure => AzureAuth::ApiKey {
                        api_key_env: KEY_VAR.to_owned(),
                    },
                    _ => AzureAuth::Entra(ClientCredentials {
                        token_url: token_url.to_owned(),
                        client_id: CLIENT_ID.to_owned(),
                        client_secret_env: KEY_VAR.to_owned(),
                        scope: AZURE_COGNITIVE_SCOPE.to_owned(),
                    }),
                },
                headers,
                connect_timeout,
            }),
            Adapter::Gemini => ProviderSpec::Gemini(GeminiSpec {
                base_url: base_url.to_owned(),
                api_key_env: Some(KEY_VAR.to_owned()),
                headers,
                connect_timeout,
            }),
            Adapter::Vertex | Adapter::VertexAnthropic => ProviderSpec::Vertex(VertexSpec {
                base_url: base_url.to_owned(),
                project: "conformance".to_owned(),
                location: "us-central1".to_owned(),
                credentials_file: Some(key_file.path().display().to_string()),
                anthropic_version: "vertex-2023-10-16".to_owned(),
                default_max_tokens: 321,
                headers,
                connect_timeout,
            }),
            Adapter::OpenAi => ProviderSpec::OpenAi(OpenAiSpec {
                base_url: base_url.to_owned(),
                api_key_env: Some(KEY_VAR.to_owned()),
                headers,
                connect_timeout: Duration::from_secs(2),
                engine: None,
            }),
            Adapter::Anthropic => ProviderSpec::Anthropic(AnthropicSpec {
                base_url: base_url.to_owned(),
                api_key_env: Some(KEY_VAR.to_owned()),
                version: "2023-06-01".to_owned(),
                headers,
                connect_timeout: Duration::from_secs(2),
                default_max_tokens: 321,
            }),
            Adapter::Bedrock => ProviderSpec::Bedrock(BedrockSpec {
                region: Some(switchyard_testkit::FAKE_AWS_REGION.to_owned()),
                base_url: Some(base_url.to_owned()),
                profile: None,
                headers,
                connect_timeout: Duration::from_secs(2),
            }),
            Adapter::Sim => return Arc::new(ScriptedSim::new(http.clone())),
        };
        let secrets = |var: &str| match var {
            KEY_VAR => Some(KEY.to_owned()),
            "AWS_ACCESS_KEY_ID" => Some(switchyard_testkit::FAKE_AWS_ACCESS_KEY_ID.to_owned()),
            "AWS_SECRET_ACCESS_KEY" => {
                Some(switchyard_testkit::FAKE_AWS_SECRET_ACCESS_KEY.to_owned())
            }
            _ => None,
        };
        switchyard_providers::build("under-test", &spec, http, &secrets).expect("provider builds")
    }

    fn supports_embeddings(self) -> bool {
        matches!(
            self,
            Adapter::OpenAi | Adapter::Sim | Adapter::Azure | Adapter::AzureEntra
        )
    }

    /// The root a connection is refused at, for an upstream listening on `addr` no more.
    fn dead_base(self, addr: std::net::SocketAddr) -> String {
        match self.flavor() {
            Flavor::OpenAi => format!("http://{addr}/v1"),
            _ => format!("http://{addr}"),
        }
    }

    /// What the upstream must have received for a chat call: path, credentials, headers, the
    /// model, and the streaming switches.
    fn check_request(self, r: &RecordedRequest, streaming: bool) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("x-extra"), Some("yes"));
        match self {
            Adapter::Azure | Adapter::AzureEntra => {
                let operation = format!("/openai/deployments/{}/chat/completions", self.model());
                assert_eq!(r.path, operation);
                assert_eq!(
                    r.query.as_deref(),
                    Some(format!("api-version={AZURE_API_VERSION}").as_str())
                );
                if matches!(self, Adapter::Azure) {
                    assert_eq!(r.header("api-key"), Some(KEY));
                    assert_eq!(r.header("authorization"), None);
                } else {
                    let bearer = r.header("authorization").expect("a bearer token");
                    assert!(bearer.starts_with("Bearer fake-access-token-"), "{bearer}");
                    assert_eq!(r.header("api-key"), None);
                }
                if streaming {
                    assert_eq!(r.body["stream_options"]["include_usage"], true);
                }
            }
            Adapter::Gemini | Adapter::Vertex => {
                let root = match self {
                    Adapter::Gemini => "/v1beta/models".to_owned(),
                    _ => format!("{VERTEX_MODELS}/google/models"),
                };
                let (method, query) = match streaming {
                    true => ("streamGenerateContent", Some("alt=sse")),
                    false => ("generateContent", None),
                };
                assert_eq!(r.path, format!("{root}/{}:{method}", self.model()));
                assert_eq!(r.query.as_deref(), query);
                if matches!(self, Adapter::Gemini) {
                    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
                } else {
                    let bearer = r.header("authorization").expect("a bearer token");
                    assert!(bearer.starts_with("Bearer fake-access-token-"), "{bearer}");
                }
                assert_eq!(
                    r.body["systemInstruction"],
                    json!({"parts": [{"text": "You are terse."}]})
                );
                assert!(r.body.get("model").is_none());
            }
            Adapter::VertexAnthropic => {
                let method = if streaming {
                    "streamRawPredict"
                } else {
                    "rawPredict"
                };
                assert_eq!(
                    r.path,
                    format!("{VERTEX_MODELS}/anthropic/models/{}:{method}", self.model())
                );
                assert!(r.header("authorization").is_some());
                assert_eq!(r.body["anthropic_version"], "vertex-2023-10-16");
                assert!(r.body.get("model").is_none());
                assert_eq!(r.body["max_tokens"], 321);
                assert_eq!(r.body["system"], "You are terse.");
            }
            Adapter::OpenAi => {
                assert_eq!(r.body["model"], self.model());
                assert_eq!(r.path, "/v1/chat/completions");
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {KEY}").as_str())
                );
                if streaming {
                    assert_eq!(r.body["stream"], true);
                    assert_eq!(r.body["stream_options"]["include_usage"], true);
                }
            }
            Adapter::Anthropic => {
                assert_eq!(r.body["model"], self.model());
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(r.header("x-api-key"), Some(KEY));
                assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(r.body["max_tokens"], 321);
                assert_eq!(r.body["system"], "You are terse.");
                if streaming {
                    assert_eq!(r.body["stream"], true);
                }
            }
            Adapter::Bedrock => {
                let op = if streaming {
                    "converse-stream"
                } else {
                    "converse"
                };
                assert_eq!(r.path, format!("/model/anthropic.claude-fake-v1%3A0/{op}"));
                // The fake has already checked the signature; this is whose it is.
                let auth = r.header("authorization").expect("signed");
                assert!(
                    auth.starts_with(&format!(
                        "AWS4-HMAC-SHA256 Credential={}/",
                        switchyard_testkit::FAKE_AWS_ACCESS_KEY_ID
                    )),
                    "{auth}"
                );
                assert!(!auth.contains(switchyard_testkit::FAKE_AWS_SECRET_ACCESS_KEY));
                assert_eq!(r.header("x-amz-security-token"), None);
                assert_eq!(r.body["system"], json!([{"text": "You are terse."}]));
                assert!(r.body.get("model").is_none() && r.body.get("stream").is_none());
            }
            // No upstream: `Harness::check_upstream` never gets here.
            Adapter::Sim => {}
        }
    }
}

/// The simulator under the suite. Each call plays the next scripted [`Behavior`] with a sim
/// provider built (through `switchyard_providers::build`, as the gateway does) from a config
/// that does it: a rule replying with the scripted text or calling the scripted tool, a fault
/// rate of one for errors and hangs, a token rate that paces chunks like the scripted delay.
#[derive(Clone)]
struct ScriptedSim {
    script: Arc<Mutex<VecDeque<Behavior>>>,
    http: reqwest::Client,
}

impl ScriptedSim {
    fn new(http: reqwest::Client) -> Self {
        ScriptedSim {
            script: Arc::default(),
            http,
        }
    }

    fn push(&self, behavior: Behavior) {
        self.script.lock().expect("script").push_back(behavior);
    }

    fn next(&self) -> Arc<dyn ChatProvider> {
        let mut behavior = self
            .script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or_else(|| Reply::default().into());
        // The simulator has no wire to hold: a gated behaviour plays what follows the gate.
        while let Behavior::Gated { then, .. } = behavior {
            behavior = *then;
        }
        let mut m = SimModelSpec {
            ttft_ms: Distribution::fixed(0.0),
            tokens_per_second: Distribution::fixed(1e6),
            output_tokens: Distribution::fixed(20.0),
            error_rate: 0.0,
            error_status: 500,
            rate_limit_rate: 0.0,
            timeout_rate: 0.0,
            spike_rate: 0.0,
            spike: Duration::ZERO,
            echo: false,
            rules: Vec::new(),
            embedding_dims: 16,
            engine: None,
        };
        match behavior {
            Behavior::Reply(r) => {
                if !r.delay.is_zero() {
                    m.tokens_per_second = Distribution::fixed(1.0 / r.delay.as_secs_f64());
                }
                let action = match &r.tool_call {
                    Some(call) => SimRuleAction::ToolCall(call.name.clone()),
                    None => SimRuleAction::Reply(r.joined()),
                };
                let pattern = regex::Regex::new("").expect("regex");
                m.rules.push(SimRule { pattern, action });
            }
            Behavior::Status { status: 429, .. } => m.rate_limit_rate = 1.0,
            Behavior::Status { status, .. } => {
                m.error_rate = 1.0;
                m.error_status = status;
            }
            // The simulator has no wire to redirect on: the error a redirect becomes.
            Behavior::Redirect { status, .. } => {
                m.error_rate = 1.0;
                m.error_status = status;
            }
            Behavior::Hang => m.timeout_rate = 1.0,
            Behavior::Gated { .. } => unreachable!("unwrapped above"),
        }
        let models = [("sim-fake", m.clone()), ("embed-fake", m)]
            .into_iter()
            .map(|(name, m)| (name.to_owned(), m))
            .collect();
        let spec = ProviderSpec::Sim(SimSpec { seed: 1, models });
        switchyard_providers::build("under-test", &spec, &self.http, &|_| None).expect("sim builds")
    }
}

#[async_trait::async_trait]
impl ChatProvider for ScriptedSim {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn chat_with(
        &self,
        request: ChatCompletionRequest,
        _options: CallOptions,
    ) -> Result<ChatReply, ProviderError> {
        self.next().chat(request).await
    }

    async fn embed_with(
        &self,
        request: EmbeddingsRequest,
        options: CallOptions,
    ) -> Result<switchyard_api::EmbeddingsResponse, ProviderError> {
        self.next().embed_with(request, options).await
    }
}

fn client() -> reqwest::Client {
    switchyard_providers::http_client(Duration::from_secs(2)).expect("http client builds")
}

/// One adapter wired to its own fake upstream.
struct Harness {
    adapter: Adapter,
    fake: FakeUpstream,
    provider: Arc<dyn ChatProvider>,
    /// The script of `Adapter::Sim`, which plays pushes instead of the fake.
    sim: Option<ScriptedSim>,
}

impl Harness {
    async fn start(adapter: Adapter) -> Harness {
        let fake = FakeUpstream::start(adapter.flavor())
            .await
            .expect("fake upstream starts");
        fake.require_api_key(KEY);
        fake.require_client(CLIENT_ID, KEY, AZURE_COGNITIVE_SCOPE);
        let (provider, sim) = match adapter {
            Adapter::Sim => {
                let sim = ScriptedSim::new(client());
                (Arc::new(sim.clone()) as Arc<dyn ChatProvider>, Some(sim))
            }
            _ => (
                adapter.provider(&fake.base_url(), &fake.token_url(), &client()),
                None,
            ),
        };
        Harness {
            adapter,
            fake,
            provider,
            sim,
        }
    }

    /// Scripts the upstream's next answer.
    fn push(&self, behavior: impl Into<Behavior>) {
        match &self.sim {
            Some(sim) => sim.push(behavior.into()),
            None => self.fake.push(behavior),
        }
    }

    /// The simulator has no HTTP upstream: cases about the wire skip it.
    fn is_sim(&self) -> bool {
        matches!(self.adapter, Adapter::Sim)
    }

    /// Checks what the upstream received, when there is one.
    fn check_upstream(&self, streaming: bool) {
        if !self.is_sim() {
            self.adapter.check_request(&self.last_request(), streaming);
        }
    }

    fn request(&self, stream: bool) -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": self.adapter.model(),
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What's the weather in Paris?"}
            ],
            "stream": stream,
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["city", "unit"]}}}]
        }))
        .expect("request parses")
    }

    async fn chat(&self, stream: bool) -> Result<ChatReply, ProviderError> {
        tokio::time::timeout(PATIENCE, self.provider.chat(self.request(stream)))
            .await
            .expect("the call finishes")
    }

    async fn complete(&self) -> switchyard_api::ChatCompletionResponse {
        match self.chat(false).await {
            Ok(ChatReply::Complete(r)) => r,
            other => panic!("expected a whole answer, got {other:?}"),
        }
    }

    async fn stream(&self) -> ChunkStream {
        match self.chat(true).await {
            Ok(ChatReply::Stream(s)) => s,
            other => panic!("expected a stream, got {other:?}"),
        }
    }

    fn last_request(&self) -> RecordedRequest {
        self.fake
            .last_request()
            .expect("the upstream got a request")
    }
}

/// Every item of a stream, with a safety timeout.
async fn drain(stream: ChunkStream) -> Vec<Result<ChatCompletionChunk, ProviderError>> {
    tokio::time::timeout(PATIENCE, stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends")
}

fn ok_chunks(items: Vec<Result<ChatCompletionChunk, ProviderError>>) -> Vec<ChatCompletionChunk> {
    items
        .into_iter()
        .map(|i| i.expect("chunk, not an error"))
        .collect()
}

fn text_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect()
}

fn finish_reasons(chunks: &[ChatCompletionChunk]) -> Vec<&str> {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.as_deref())
        .collect()
}

/// Tool calls reassembled from deltas: (id, name, arguments) by index.
fn tool_calls_of(chunks: &[ChatCompletionChunk]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for delta in chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
    {
        let i = delta.index as usize;
        if calls.len() <= i {
            calls.resize(i + 1, Default::default());
        }
        if let Some(id) = &delta.id {
            calls[i].0.push_str(id);
        }
        if let Some(f) = &delta.function {
            calls[i].1.push_str(f.name.as_deref().unwrap_or(""));
            calls[i].2.push_str(f.arguments.as_deref().unwrap_or(""));
        }
    }
    calls
}

fn status_of(e: &ProviderError) -> (u16, String, Option<Duration>) {
    match e {
        ProviderError::Status {
            status,
            message,
            retry_after,
        } => (*status, message.clone(), *retry_after),
        other => panic!("expected a status error, got {other:?}"),
    }
}

mod cases {
    use super::*;

    pub async fn plain_text(h: Harness) {
        h.push(Reply::text("The weather in Paris is mild."));
        let reply = h.complete().await;
        assert_eq!(reply.text(), "The weather in Paris is mild.");
        assert_eq!(reply.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            reply.choices[0].message.role,
            switchyard_api::Role::Assistant
        );
        let usage = reply.usage.expect("usage reported");
        assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );
        h.check_upstream(false);
    }

    pub async fn streamed_text(h: Harness) {
        let text = "It is sunny and twenty degrees in Paris today.";
        h.push(Reply::text(text).with_delay(Duration::from_millis(5)));
        let chunks = ok_chunks(drain(h.stream().await).await);
        assert_eq!(text_of(&chunks), text);
        assert!(chunks.len() > 3, "streamed in several chunks");
        assert_eq!(
            chunks[0].choices[0].delta.role,
            Some(switchyard_api::Role::Assistant)
        );
        assert_eq!(finish_reasons(&chunks), ["stop"]);
        let with_usage: Vec<_> = chunks.iter().filter(|c| c.usage.is_some()).collect();
        assert_eq!(with_usage.len(), 1, "usage once");
        let last = chunks.last().expect("chunks");
        let usage = last.usage.as_ref().expect("usage on the last chunk");
        assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
        h.check_upstream(true);
    }

    pub async fn tool_call(h: Harness) {
        let args = json!({"city": "Paris", "unit": "celsius"});
        h.push(Reply::tool_call("get_weather", args.clone()));
        let reply = h.complete().await;
        let choice = &reply.choices[0];
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        let calls = choice.message.tool_calls.as_ref().expect("tool calls");
        assert_eq!(calls.len(), 1);
        assert!(!calls[0].id.is_empty());
        assert_eq!(calls[0].kind, "function");
        assert_eq!(calls[0].function.name, "get_weather");
        let parsed: Value = serde_json::from_str(&calls[0].function.arguments).expect("JSON args");
        assert_eq!(parsed, args);
    }

    pub async fn streamed_tool_call(h: Harness) {
        let args = json!({"city": "Paris", "unit": "celsius"});
        h.push(Reply::tool_call("get_weather", args.clone()));
        let chunks = ok_chunks(drain(h.stream().await).await);
        let calls = tool_calls_of(&chunks);
        assert_eq!(calls.len(), 1, "{calls:?}");
        let (id, name, arguments) = &calls[0];
        assert!(!id.is_empty());
        assert_eq!(name, "get_weather");
        let parsed: Value = serde_json::from_str(arguments).expect("JSON args");
        assert_eq!(parsed, args);
        assert_eq!(finish_reasons(&chunks), ["tool_calls"]);
        assert!(chunks.last().and_then(|c| c.usage.as_ref()).is_some());
    }

    pub async fn rate_limited(h: Harness) {
        for stream in [false, true] {
            h.push(Behavior::rate_limited("2"));
            let err = h.chat(stream).await.expect_err("429 is an error");
            let (status, message, retry_after) = status_of(&err);
            assert_eq!(status, 429);
            if h.is_sim() {
                // The simulator words its own errors and always asks for one second.
                assert_eq!(retry_after, Some(Duration::from_secs(1)));
            } else {
                assert_eq!(message, "rate limit reached, slow down");
                assert_eq!(retry_after, Some(Duration::from_secs(2)));
            }
            assert!(err.retryable());
            assert_eq!(err.kind(), "rate_limited");
        }
    }

    pub async fn server_errors_are_retryable(h: Harness) {
        for status in [500, 502, 503, 529] {
            h.push(Behavior::status(status, "upstream trouble"));
            let err = h.chat(false).await.expect_err("5xx is an error");
            let (got, message, retry_after) = status_of(&err);
            assert_eq!((got, retry_after), (status, None));
            // The simulator words its own errors.
            assert!(h.is_sim() || message == "upstream trouble", "{message}");
            assert!(err.retryable(), "{status}");
            assert!(err.counts_against_deployment());
        }
    }

    pub async fn client_errors_are_not_retryable(h: Harness) {
        for status in [400, 401, 404] {
            h.push(Behavior::status(status, "you did something wrong"));
            let err = h.chat(true).await.expect_err("4xx is an error");
            assert_eq!(status_of(&err).0, status);
            assert!(!err.retryable(), "{status}");
            assert!(!err.to_string().contains(KEY));
        }
    }

    pub async fn redirects_are_errors_and_never_followed(h: Harness) {
        if h.is_sim() {
            return; // no wire to redirect on
        }
        let elsewhere = FakeUpstream::start(h.adapter.flavor())
            .await
            .expect("fake upstream starts");
        for (status, stream) in [(307, false), (308, true), (302, false)] {
            h.push(Behavior::Redirect {
                status,
                location: format!("{}/chat/completions", elsewhere.base_url()),
            });
            let err = h.chat(stream).await.expect_err("a redirect is an error");
            assert_eq!(status_of(&err).0, status);
            assert!(status_of(&err).1.contains("base_url"), "{err}");
            // Another deployment may answer; this one is misconfigured.
            assert!(
                err.retryable() && err.counts_against_deployment(),
                "{status}"
            );
        }
        assert!(
            elsewhere.requests().is_empty(),
            "the request and its key went where the redirect pointed"
        );
    }

    pub async fn malformed_chunk(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        h.push(Reply::text("one two three four").ending(Ending::Malformed));
        let items = drain(h.stream().await).await;
        let first_err = items
            .iter()
            .position(Result::is_err)
            .expect("an error item");
        assert!(first_err > 0, "good chunks came first");
        assert_eq!(first_err, items.len() - 1, "the error ends the stream");
        let err = items[first_err].as_ref().expect_err("error");
        assert!(matches!(err, ProviderError::Decode(_)), "{err:?}");
    }

    pub async fn malformed_body(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        h.push(Reply::text("cut short").ending(Ending::Malformed));
        let err = h.chat(false).await.expect_err("bad JSON is an error");
        assert!(matches!(err, ProviderError::Decode(_)), "{err:?}");
        assert!(!err.retryable());
    }

    pub async fn usage_missing(h: Harness) {
        if h.is_sim() {
            return; // the simulator always reports usage
        }
        h.push(Reply::text("no usage here").without_usage());
        let reply = h.complete().await;
        assert_eq!(reply.text(), "no usage here");
        assert_eq!(reply.usage, None);

        h.push(Reply::text("no usage here either").without_usage());
        let chunks = ok_chunks(drain(h.stream().await).await);
        assert_eq!(text_of(&chunks), "no usage here either");
        assert!(chunks.iter().all(|c| c.usage.is_none()));
        assert_eq!(finish_reasons(&chunks), ["stop"]);
    }

    pub async fn stream_without_terminator(h: Harness) {
        h.push(Reply::text("ends without a terminator").ending(Ending::NoTerminator));
        let chunks = ok_chunks(drain(h.stream().await).await);
        assert_eq!(text_of(&chunks), "ends without a terminator");
        assert_eq!(finish_reasons(&chunks), ["stop"]);
    }

    /// A body that ends cleanly before the answer is complete (OpenAI: no choice's
    /// `finish_reason` and no `[DONE]`; Anthropic: no `stop_reason` and no `message_stop`),
    /// whether at an event's end or halfway through one, ends in a retryable stream error
    /// after the chunks that did arrive, never in a clean end.
    pub async fn truncated_stream(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        for ending in [Ending::Truncated, Ending::CutMidEvent] {
            h.push(Reply::text("one two three four").ending(ending));
            let items = drain(h.stream().await).await;
            let (last, good) = items.split_last().expect("items");
            let err = last
                .as_ref()
                .expect_err("a truncated stream ends in an error");
            assert!(
                matches!(err, ProviderError::Stream(_)),
                "{ending:?}: {err:?}"
            );
            assert!(err.retryable());
            let chunks = ok_chunks(good.to_vec());
            assert_eq!(text_of(&chunks), "one ", "{ending:?}");
            assert!(finish_reasons(&chunks).is_empty(), "{ending:?}");
        }
        // Cut inside the first event: nothing came, and the error is the only item.
        h.push(Reply::text("one two").ending(Ending::CutAtStart));
        let items = drain(h.stream().await).await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(
            matches!(&items[0], Err(ProviderError::Stream(_))),
            "{items:?}"
        );
    }

    pub async fn connection_cut_mid_stream(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        h.push(Reply::text("one two three").ending(Ending::Abort));
        let items = drain(h.stream().await).await;
        assert!(items[0].is_ok());
        let err = items
            .last()
            .expect("items")
            .as_ref()
            .expect_err("ends in error");
        assert!(matches!(err, ProviderError::Stream(_)), "{err:?}");
        assert!(err.retryable());
    }

    pub async fn client_disconnect(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        let pieces = vec!["tick "; 500];
        h.push(Reply::pieces(pieces).with_delay(Duration::from_millis(10)));
        let mut stream = h.stream().await;
        for _ in 0..3 {
            let item = tokio::time::timeout(PATIENCE, stream.next()).await;
            assert!(matches!(item, Ok(Some(Ok(_)))));
        }
        assert_eq!(h.fake.disconnects(), 0);
        drop(stream);
        tokio::time::timeout(PATIENCE, h.fake.wait_for_disconnects(1))
            .await
            .expect("the upstream saw the client go away");
    }

    pub async fn dropped_call_cancels_upstream(h: Harness) {
        h.push(Behavior::Hang);
        let call = h.provider.chat(h.request(false));
        // Dropping the future is how the gateway gives up on an attempt.
        let gave_up = tokio::time::timeout(Duration::from_millis(200), call).await;
        assert!(gave_up.is_err(), "a hung upstream never answers");
        if h.is_sim() {
            return; // no connection to drop
        }
        tokio::time::timeout(PATIENCE, h.fake.wait_for_disconnects(1))
            .await
            .expect("the upstream saw the client go away");
    }

    pub async fn http_timeout(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        h.push(Behavior::Hang);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client");
        let provider = h
            .adapter
            .provider(&h.fake.base_url(), &h.fake.token_url(), &http);
        let err = provider
            .chat(h.request(false))
            .await
            .expect_err("times out");
        assert!(matches!(err, ProviderError::Timeout), "{err:?}");
        assert!(err.retryable());
    }

    pub async fn connection_refused(h: Harness) {
        if h.is_sim() {
            return; // no wire to break
        }
        // A port that was just free and is closed now: nothing listens there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        // Tokens still come from the fake: the refused connection is the API's.
        let provider =
            h.adapter
                .provider(&h.adapter.dead_base(addr), &h.fake.token_url(), &client());
        let err = provider.chat(h.request(false)).await.expect_err("refused");
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
        assert!(err.retryable());
        assert!(!err.to_string().contains(KEY));
    }

    pub async fn embeddings(h: Harness) {
        let request: EmbeddingsRequest = serde_json::from_value(json!({
            "model": "embed-fake", "input": ["alpha", "beta"]
        }))
        .expect("request parses");
        let result = h.provider.embed(request).await;
        if h.adapter.supports_embeddings() {
            let reply = result.expect("embeddings");
            assert_eq!(reply.data.len(), 2);
            assert_eq!(reply.model, "embed-fake");
            if !h.is_sim() {
                let r = h.last_request();
                assert!(r.path.ends_with("/embeddings"));
                assert_eq!(r.body["input"], json!(["alpha", "beta"]));
            }
        } else {
            let err = result.expect_err("no embeddings");
            assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
            assert!(h.fake.requests().is_empty(), "nothing was sent upstream");
        }
    }
}

/// One `#[tokio::test]` per case for an adapter. The case list lives here only.
macro_rules! suite {
    ($module:ident, $adapter:expr) => {
        mod $module {
            use super::*;

            suite!(@cases $adapter;
                plain_text,
                streamed_text,
                tool_call,
                streamed_tool_call,
                rate_limited,
                server_errors_are_retryable,
                client_errors_are_not_retryable,
                redirects_are_errors_and_never_followed,
                malformed_chunk,
                malformed_body,
                usage_missing,
                stream_without_terminator,
                truncated_stream,
                connection_cut_mid_stream,
                client_disconnect,
                dropped_call_cancels_upstream,
                http_timeout,
                connection_refused,
                embeddings,
            );
        }
    };
    (@cases $adapter:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                cases::$case(Harness::start($adapter).await).await;
            }
        )*
    };
}

suite!(openai, Adapter::OpenAi);
suite!(anthropic, Adapter::Anthropic);
suite!(bedrock, Adapter::Bedrock);
suite!(sim, Adapter::Sim);
suite!(azure, Adapter::Azure);
suite!(azure_entra, Adapter::AzureEntra);
suite!(gemini, Adapter::Gemini);
suite!(vertex, Adapter::Vertex);
suite!(vertex_anthropic, Adapter::VertexAnthropic);

/// OpenAI-compatible upstreams get the request as the client sent it, unknown fields included.
#[tokio::test]
async fn openai_passes_unknown_fields_through() {
    let h = Harness::start(Adapter::OpenAi).await;
    let mut request = h.request(true);
    request
        .extra
        .insert("logit_bias".into(), json!({"50256": -100}));
    request.extra.insert("top_k".into(), json!(40));
    request.stream_options = Some(
        serde_json::from_value(json!({"include_usage": false, "continuous_usage_stats": true}))
            .expect("options parse"),
    );
    let ChatReply::Stream(stream) = h.provider.chat(request).await.expect("chat") else {
        panic!("expected a stream");
    };
    drain(stream).await;
    let body = h.last_request().body;
    assert_eq!(body["logit_bias"], json!({"50256": -100}));
    assert_eq!(body["top_k"], 40);
    assert_eq!(
        body["stream_options"],
        json!({"include_usage": true, "continuous_usage_stats": true})
    );
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
}

/// Anthropic gets a Messages API request: the tools translated, the system prompt lifted out.
#[tokio::test]
async fn anthropic_request_is_translated_on_the_wire() {
    let h = Harness::start(Adapter::Anthropic).await;
    h.complete().await;
    let body = h.last_request().body;
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]}])
    );
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    assert!(body.get("stream").is_none());
}

/// Bedrock gets a Converse request: the system prompt lifted out, the tools as
/// `toolConfig.tools[].toolSpec`, the model only in the (escaped) path, and a signature the
/// fake recomputed and accepted.
#[tokio::test]
async fn bedrock_request_is_translated_on_the_wire() {
    let h = Harness::start(Adapter::Bedrock).await;
    h.complete().await;
    let r = h.last_request();
    assert_eq!(r.path, "/model/anthropic.claude-fake-v1%3A0/converse");
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": [{"text": "What's the weather in Paris?"}]}])
    );
    let spec = &r.body["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(spec["name"], "get_weather");
    assert_eq!(
        spec["inputSchema"]["json"]["required"],
        json!(["city", "unit"])
    );
    let signed = r.header("authorization").expect("signed");
    assert!(
        signed.contains(&format!(
            "/{}/bedrock/aws4_request",
            switchyard_testkit::FAKE_AWS_REGION
        )),
        "{signed}"
    );
    assert!(
        signed.contains("x-extra"),
        "configured headers are signed: {signed}"
    );
}

/// An Entra ID token is fetched once, from the client credentials, and reused while valid;
/// a token endpoint that refuses the credentials fails the call as a retryable 502 that
/// names no secret, and nothing reaches the API.
#[tokio::test]
async fn azure_entra_token_is_granted_once_and_refusals_are_502() {
    let h = Harness::start(Adapter::AzureEntra).await;
    h.complete().await;
    drain(h.stream().await).await;
    assert_eq!(h.fake.tokens_granted(), 1);
    let bearers: Vec<_> = h
        .fake
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(bearers[0], bearers[1]);

    let refused = FakeUpstream::start(Flavor::Azure)
        .await
        .expect("fake upstream starts");
    refused.require_client(CLIENT_ID, "another secret", AZURE_COGNITIVE_SCOPE);
    let provider =
        Adapter::AzureEntra.provider(&refused.base_url(), &refused.token_url(), &client());
    let err = provider.chat(h.request(false)).await.expect_err("refused");
    let (status, message, _) = status_of(&err);
    assert_eq!(status, 502);
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!message.contains(KEY) && !format!("{err:?}").contains(KEY));
    assert!(err.retryable());
    assert!(refused.requests().is_empty());
}

/// Vertex's token comes from a JWT assertion the fake token endpoint verifies (RS256 by the
/// account's key, its claims) and is reused while valid; the key file may be named by
/// `GOOGLE_APPLICATION_CREDENTIALS`. A key that is not the account's is refused there: the
/// call fails as a retryable 502 that quotes no key, and nothing reaches the API.
#[tokio::test]
async fn vertex_token_comes_from_a_verified_assertion_and_a_foreign_key_is_refused() {
    let h = Harness::start(Adapter::Vertex).await;
    h.complete().await;
    drain(h.stream().await).await;
    assert_eq!(h.fake.tokens_granted(), 1);
    let requests = h.fake.requests();
    assert_eq!(
        requests[0].header("authorization"),
        requests[1].header("authorization")
    );

    let refused = FakeUpstream::start(Flavor::Vertex)
        .await
        .expect("fake upstream starts");
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    let foreign = foreign_service_account_key_file(&refused.token_url());
    std::fs::write(key_file.path(), &foreign).expect("key written");
    let spec = ProviderSpec::Vertex(VertexSpec {
        base_url: refused.base_url(),
        project: "conformance".to_owned(),
        location: "us-central1".to_owned(),
        credentials_file: None,
        anthropic_version: "vertex-2023-10-16".to_owned(),
        default_max_tokens: 321,
        headers: Vec::new(),
        connect_timeout: Duration::from_secs(2),
    });
    let path = key_file.path().display().to_string();
    let secrets = |var: &str| (var == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone());
    let provider =
        switchyard_providers::build("vertex", &spec, &client(), &secrets).expect("builds");
    let err = provider.chat(h.request(false)).await.expect_err("refused");
    let (status, message, _) = status_of(&err);
    assert_eq!(status, 502);
    assert!(message.contains("invalid_grant"), "{message}");
    let key: Value = serde_json::from_str(&foreign).expect("key file JSON");
    let pem = key["private_key"].as_str().expect("key");
    let key_line = pem.lines().nth(1).expect("a line of the key");
    assert!(!format!("{err:?}").contains(key_line));
    assert!(err.retryable());
    assert!(refused.requests().is_empty());

    // No key file configured and none in the environment: the build says which variable.
    let err = switchyard_providers::build("vertex", &spec, &client(), &|_| None)
        .err()
        .expect("no credentials");
    assert!(
        err.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{err}"
    );
}

/// Gemini gets a `generateContent` request: roles, tools as function declarations, the
/// system prompt as `systemInstruction`, nothing of OpenAI's own.
#[tokio::test]
async fn gemini_request_is_translated_on_the_wire() {
    let h = Harness::start(Adapter::Gemini).await;
    h.complete().await;
    let body = h.last_request().body;
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "What's the weather in Paris?"}]}])
    );
    let declaration = &body["tools"][0]["functionDeclarations"][0];
    assert_eq!(declaration["name"], "get_weather");
    assert_eq!(declaration["parametersJsonSchema"]["type"], "object");
    assert!(body.get("stream").is_none() && body.get("messages").is_none());
}
