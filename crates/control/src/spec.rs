//! The validated configuration. Every value here has been checked; the data plane trusts it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
pub use switchyard_admission::{Capacity, Class, ClassLimits, PerClass};
pub use switchyard_resilience::{Backoff, BreakerPolicy};
pub use switchyard_route::{Artifact, Bars, CalibrationConfig, Candidate, Evidence, Policy, Rule};

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSpec,
    pub storage: StorageSpec,
    /// `[redis]`; `None`: counters and cache in this process.
    pub redis: Option<RedisSpec>,
    pub telemetry: TelemetrySpec,
    pub retry_budget: RetryBudgetSpec,
    pub providers: BTreeMap<String, ProviderSpec>,
    /// The circuit-breaker policy of each provider's deployments.
    pub breakers: BTreeMap<String, BreakerPolicy>,
    pub models: BTreeMap<String, ModelSpec>,
    /// Aliases (e.g. `auto`) the router resolves to one of their candidate models.
    pub routes: BTreeMap<String, RouteSpec>,
    /// The response cache; `None` when `[cache]` is absent or disabled.
    pub cache: Option<CacheSpec>,
    /// The default guard policy.
    pub guards: GuardsSpec,
    /// Named policies chosen by a key (first) or a route (else) instead of `guards`.
    pub guard_policies: BTreeMap<String, GuardsSpec>,
    pub keys: Vec<KeySpec>,
    pub admin: Option<AdminSpec>,
    /// `[[slos]]`, validated.
    pub slos: Vec<switchyard_slo::SloSpec>,
    /// Each SLO's `[slos.on_page]` actions, by SLO name (SLOs without actions are absent).
    pub slo_actions: BTreeMap<String, SloActions>,
    pub alerts: AlertsSpec,
    pub limits: LimitsSpec,
    /// `[prompts]`: the limits of one render of a stored prompt.
    pub prompts: RenderLimits,
    /// `[batch]`: the Batch API's limits and its worker.
    pub batch: BatchSpec,
    /// `[responses]`: stored responses' bound and retention.
    pub responses: ResponsesSpec,
    /// `[admission]`: class queue limits and the autoscaling target.
    pub admission: AdmissionSpec,
    /// Warnings about one field each, with its file and line (an upstream URL on a
    /// link-local address); [`Config::warnings`] gives them with the rest.
    pub located_warnings: Vec<crate::Diagnostic>,
}

/// What the gateway does while a page alert of an SLO fires (`[slos.on_page]`); undone when
/// every page of the SLO has resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SloActions {
    /// Requests of this class and every lower one are shed (503 `overloaded`).
    pub shed: Option<switchyard_admission::Class>,
    /// Route alias to the router policy its requests use when the caller names none.
    pub route_policy: BTreeMap<String, String>,
}

/// `[admission]`: how deployments with a `capacity` queue requests.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionSpec {
    /// Each class's maximum wait and room (the admission crate's defaults where not set).
    pub classes: PerClass<ClassLimits>,
    /// The utilisation `switchyard_desired_replicas` aims at, in (0, 1].
    pub target_utilization: f64,
}

impl Default for AdmissionSpec {
    fn default() -> Self {
        AdmissionSpec {
            classes: switchyard_admission::QueueConfig::new(Capacity::default()).classes,
            target_utilization: 0.8,
        }
    }
}

/// What a request does when every deployment of its model is at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSaturation {
    /// Wait in the queue of a deployment of the model.
    #[default]
    Wait,
    /// Go to the first model of the fallback chain with free capacity (wait when none has).
    Fallback,
}

/// `[limits]`: how keys' limits are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsSpec {
    /// The output cap of a request that sets none, to a model without `max_output_tokens`,
    /// from a key whose limits count tokens or money (admission reserves it, the provider is
    /// asked to stay within it).
    pub default_max_output_tokens: u32,
}

/// `[batch]`: the Batch API's limits and its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    pub max_file_bytes: u64,
    pub max_lines: usize,
    /// Lines this replica runs at once; 0: none.
    pub concurrency: usize,
    pub lease: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    /// What a batch line pays of its price, in millionths (500 000 for a discount of 0.5).
    pub pay_ppm: u64,
    pub retention: Duration,
}

impl BatchSpec {
    /// `cost` at the batch price.
    pub fn discounted(&self, cost_nanos: u64) -> u64 {
        let paid = u128::from(cost_nanos) * u128::from(self.pay_ppm) / 1_000_000;
        u64::try_from(paid).unwrap_or(u64::MAX)
    }
}

/// `[responses]`: what the Responses API keeps of a stored response, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsesSpec {
    /// The most bytes a stored response takes (conversation and output, as JSON).
    pub max_stored_bytes: usize,
    pub retention: Duration,
}

/// `[alerts]`: where SLO alert changes go, and what a firing page does to rollouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsSpec {
    pub webhook: Option<String>,
    pub timeout: Duration,
    pub on_page: OnPage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPage {
    /// Only notify.
    Nothing,
    /// Hold every running rollout at its share.
    Pause,
    /// Send everyone back to the baseline.
    Abort,
}

/// The guards in force; each `None` when not configured.
#[derive(Debug, Clone, Default)]
pub struct GuardsSpec {
    /// Run the classifying guards before the provider call instead of alongside it.
    pub screen_first: bool,
    pub pii: Option<PiiGuardSpec>,
    pub injection: Option<InjectionGuardSpec>,
    pub toxicity: Option<ToxicityGuardSpec>,
    pub compliance: Option<ComplianceGuardSpec>,
    pub output: OutputPolicySpec,
    pub webhook: Option<WebhookGuardSpec>,
    pub judge: Option<JudgeGuardSpec>,
    pub topics: Option<TopicsGuardSpec>,
    pub grounding: Option<GroundingGuardSpec>,
    pub bias: Option<BiasGuardSpec>,
    pub harmful: Option<HarmfulGuardSpec>,
}

#[derive(Debug, Clone)]
pub struct HarmfulGuardSpec {
    /// Block the request (else only flag it in the record and header).
    pub block: bool,
    pub threshold: Option<f32>,
    /// Where the artifact came from, and the artifact.
    pub source: String,
    pub artifact: std::sync::Arc<switchyard_textclass::harmful::HarmfulArtifact>,
    /// The risk areas the action applies to (names from
    /// `switchyard_textclass::harmful::CATEGORIES`).
    pub categories: std::collections::BTreeSet<&'static str>,
    /// Folder of the static embedding model, when the artifact uses it.
    pub embedder: PathBuf,
    /// A guard that errors lets the request through (else refuses it).
    pub fail_open: bool,
}

impl HarmfulGuardSpec {
    /// Whether the classifier embeds requests with the static model in `embedder`.
    pub fn needs_static_model(&self) -> bool {
        self.artifact.embedding == switchyard_textclass::harmful::Embedding::Static
    }
}

#[derive(Debug, Clone)]
pub struct TopicsGuardSpec {
    /// Allowed and denied topics, checked for names and content.
    pub topics: Vec<switchyard_topics::TopicSpec>,
    pub thresholds: switchyard_topics::Thresholds,
    /// Answer with `refusal` (else only flag the request).
    pub refuse: bool,
    pub refusal: String,
    pub embedder: PathBuf,
    pub fail_open: bool,
}

/// Where a request's grounding context is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextSources {
    /// The `context` extension field: a string or an array of strings.
    pub field: bool,
    /// Tool (and function) results in the conversation.
    pub tools: bool,
    /// System messages.
    pub system: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroundingGuardSpec {
    pub action: OutputAction,
    /// `None`: the artifact's own threshold.
    pub threshold: Option<f32>,
    pub context: ContextSources,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BiasGuardSpec {
    pub action: OutputAction,
    pub threshold: Option<f32>,
}

/// The default rubric of `[guards.judge]`.
pub const DEFAULT_JUDGE_TEMPLATE: &str = "You are a safety reviewer. Read the user's question and the \
assistant's answer. Reply with one word, SAFE or UNSAFE, then a short reason. An answer is UNSAFE \
if it is abusive, dangerous, discriminatory, or leaks private data.\n\nQuestion:\n{{ question }}\n\n\
Answer:\n{{ answer }}";

#[derive(Debug, Clone)]
pub struct JudgeGuardSpec {
    pub model: String,
    pub template: String,
    pub unsafe_pattern: Regex,
    pub action: OutputAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookGuardSpec {
    pub url: String,
    pub timeout: Duration,
    pub fail_open: bool,
}

/// What an output guard does with an answer that fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputAction {
    /// Regenerate (up to `output.retries`), then the safe answer.
    Retry,
    /// The safe answer at once.
    Block,
    /// Record only.
    Flag,
}

#[derive(Debug, Clone)]
pub struct ToxicityGuardSpec {
    pub action: OutputAction,
    pub threshold: Option<f32>,
    pub source: String,
    pub artifact: std::sync::Arc<switchyard_textclass::BinaryArtifact>,
}

#[derive(Debug, Clone)]
pub struct ComplianceGuardSpec {
    pub action: OutputAction,
    pub forbidden: Vec<Regex>,
    pub disclaimers: Vec<(Regex, String)>,
    pub max_chars: Option<usize>,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputPolicySpec {
    pub retries: u32,
    pub corrective_note: bool,
    pub safe_answer: String,
}

#[derive(Debug, Clone)]
pub struct PiiGuardSpec {
    pub kinds: std::collections::BTreeSet<switchyard_pii::EntityKind>,
    pub policy: switchyard_pii::MaskPolicy,
    pub hash_salt_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InjectionGuardSpec {
    /// Block the request (else only flag it in the record and header).
    pub block: bool,
    pub threshold: Option<f32>,
    /// Where the artifact came from, and the artifact.
    pub source: String,
    pub artifact: std::sync::Arc<switchyard_textclass::BinaryArtifact>,
    pub scan_tool_results: bool,
    /// A guard that errors lets the request through (else refuses it).
    pub fail_open: bool,
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    /// Cheapest first, each with its model's quality tier.
    pub candidates: Vec<Candidate>,
    pub router: Option<RouterSpec>,
    /// Folder of the static embedding model the router's neighbour estimate needs.
    pub embedder: PathBuf,
    pub default_policy: Policy,
    /// The bars behind `cheap` and `balanced`: the config's override, else the artifact's.
    pub bars: Bars,
    pub rules: Vec<Rule>,
    /// The route's cache settings, `[cache]` merged with the route's own.
    pub cache: CachePolicySpec,
    /// Feedback-driven bar adjustment; `None` when turned off or there is no classifier.
    pub recalibrate: Option<RecalibrateSpec>,
    pub guard_policy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecalibrateSpec {
    pub interval: Duration,
    /// How far back outcomes are read.
    pub window: Duration,
    pub calibration: CalibrationConfig,
}

/// A trained router artifact and where it came from (a path or `builtin:NAME`).
#[derive(Debug, Clone)]
pub struct RouterSpec {
    pub source: String,
    pub artifact: std::sync::Arc<Artifact>,
    /// What scores the candidates, decoded from the artifact once.
    pub estimator: switchyard_route::Estimator,
}

#[derive(Debug, Clone)]
pub struct CacheSpec {
    pub max_bytes: usize,
    /// Folder of the static embedding model (loaded when some route uses the semantic tier).
    pub embedder: PathBuf,
    pub top_k: usize,
    /// What models and routes without their own settings use.
    pub defaults: CachePolicySpec,
    /// `pair_check`: the check each semantic candidate passes before it is served.
    pub pair_check: Option<PairCheckSpec>,
}

/// `[cache] pair_check` with the MiniLM it runs on.
#[derive(Debug, Clone)]
pub struct PairCheckSpec {
    /// What the config named (`builtin:NAME` or a path).
    pub source: String,
    pub check: std::sync::Arc<switchyard_cache::pair::PairCheck>,
    /// MiniLM's folder (`[cache] minilm`).
    pub minilm: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachePolicySpec {
    pub enabled: bool,
    pub semantic: bool,
    pub threshold: f32,
    pub ttl: Duration,
    pub allow_temperature: bool,
}

#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub demo: bool,
}

#[derive(Debug, Clone)]
pub struct StorageSpec {
    /// The embedded SQLite store's folder (also where a PostgreSQL replica keeps its spool
    /// of records while the database is unreachable).
    pub data_dir: PathBuf,
    /// `[storage] url` (or `SWITCHYARD_STORAGE_URL`): every table in this PostgreSQL
    /// database; `None` for SQLite in `data_dir`.
    pub postgres: Option<crate::SecretUrl>,
    /// On PostgreSQL, the most bytes of records waiting on disk (in `data_dir/spool`) for an
    /// unreachable database.
    pub spool_max_bytes: u64,
}

/// `[redis]` (or `SWITCHYARD_REDIS_URL`): the limits' counters and the cache, shared by
/// every replica through this Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    pub url: crate::SecretUrl,
    pub on_failure: RedisFailure,
}

/// What keys' limits do while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// Each replica enforces its share, the limit divided by the replicas last seen.
    PerReplica,
    /// Requests of keys with limits are refused until Redis answers again.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct TelemetrySpec {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    pub access_log: bool,
    /// `content = "masked"`: chat requests' prompts and answers are stored, masked; `None`
    /// for `"none"`.
    pub content: Option<ContentSpec>,
    /// How long stored content is kept. It applies whatever `content` is now, so content
    /// stored before a switch to `"none"` goes too.
    pub content_retention: Duration,
    /// `[telemetry.otlp]`, when present (the environment may turn export on without it).
    pub otlp: Option<OtlpSpec>,
}

/// `[telemetry.otlp]`, checked. What the environment adds (`OTEL_*`) is read at start.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSpec {
    /// The collector's base URL, without a trailing `/`; `None`: from the environment.
    pub endpoint: Option<String>,
    /// The environment variable holding headers (`name=value,...`), never their values.
    pub headers_env: Option<String>,
    pub service_name: Option<String>,
    pub sampling_ratio: f64,
    pub timeout: Duration,
    pub queue_size: usize,
    /// Export the GenAI metrics too.
    pub metrics: bool,
}

impl OtlpSpec {
    /// The bounds of `queue_size`: a few requests' spans, and about 100 MB of them.
    pub const QUEUE_RANGE: std::ops::RangeInclusive<usize> = 64..=1_000_000;
    /// The bounds of `timeout_ms`: 100 ms, and a minute.
    pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=60_000;
}

/// How request content is stored (`[telemetry] content = "masked"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSpec {
    /// The most bytes of each text kept; longer ones are cut with a marker.
    pub max_bytes: usize,
}

impl ContentSpec {
    /// The bounds of `content_max_bytes`: a line of text, and a long document.
    pub const MAX_BYTES_RANGE: std::ops::RangeInclusive<u64> = 256..=1_048_576;
    /// The bounds of `content_retention_days`: a day, and ten years.
    pub const RETENTION_DAYS_RANGE: std::ops::RangeInclusive<u32> = 1..=3_650;
}

/// Retries allowed on top of first attempts, shared by all requests (a Finagle-style budget):
/// `percent` of recent requests plus `min_per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudgetSpec {
    pub percent: f32,
    pub min_per_sec: u32,
}

#[derive(Debug, Clone)]
pub enum ProviderSpec {
    OpenAi(OpenAiSpec),
    Anthropic(AnthropicSpec),
    Bedrock(BedrockSpec),
    Sim(SimSpec),
    Azure(crate::AzureSpec),
    Gemini(crate::GeminiSpec),
    Vertex(crate::VertexSpec),
}

impl ProviderSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSpec::OpenAi(_) => "openai",
            ProviderSpec::Anthropic(_) => "anthropic",
            ProviderSpec::Bedrock(_) => "bedrock",
            ProviderSpec::Sim(_) => "sim",
            ProviderSpec::Azure(_) => "azure",
            ProviderSpec::Gemini(_) => "gemini",
            ProviderSpec::Vertex(_) => "vertex",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiSpec {
    /// Without a trailing slash, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    /// The self-hosted engine behind it, when named: its load is read for routing, and the
    /// request's priority passed on where the engine takes one.
    pub engine: Option<EngineSpec>,
}

/// A self-hosted engine's metrics, read every `poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    pub kind: EngineKind,
    /// Prometheus text format; by default the base URL's origin with `/metrics`.
    pub metrics_url: String,
    pub poll: Duration,
    /// vLLM runs with `--scheduling-policy priority`: the request's class goes as `priority`.
    /// (Without that flag vLLM refuses any request whose priority is not 0.)
    pub priority_scheduling: bool,
}

pub use switchyard_engine::EngineKind;

#[derive(Debug, Clone)]
pub struct AnthropicSpec {
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    pub default_max_tokens: u32,
}

/// AWS Bedrock's Converse API. Credentials are not configured here: they come from the
/// environment, the shared credentials file, the container endpoint or the instance's role,
/// in the order AWS's SDKs look.
#[derive(Debug, Clone)]
pub struct BedrockSpec {
    /// `None`: `AWS_REGION`, else `AWS_DEFAULT_REGION`, read when the provider is built.
    pub region: Option<String>,
    /// `None`: `https://bedrock-runtime.{region}.amazonaws.com`.
    pub base_url: Option<String>,
    pub profile: Option<String>,
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SimSpec {
    pub seed: u64,
    pub models: BTreeMap<String, SimModelSpec>,
}

#[derive(Debug, Clone)]
pub struct SimModelSpec {
    pub ttft_ms: Distribution,
    pub tokens_per_second: Distribution,
    pub output_tokens: Distribution,
    pub error_rate: f64,
    pub error_status: u16,
    pub rate_limit_rate: f64,
    pub timeout_rate: f64,
    pub spike_rate: f64,
    pub spike: Duration,
    pub echo: bool,
    pub rules: Vec<SimRule>,
    pub embedding_dims: usize,
    /// A continuous-batching engine: when set, its queue, prefill and batch decide the timing
    /// (`ttft_ms` and `tokens_per_second` are not drawn).
    pub engine: Option<switchyard_engine::Params>,
}

#[derive(Debug, Clone)]
pub struct SimRule {
    pub pattern: Regex,
    pub action: SimRuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimRuleAction {
    /// `{{echo}}` in the text is replaced by the last user message.
    Reply(String),
    Error(u16),
    ToolCall(String),
}

/// A positive quantity drawn per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    pub shape: Shape,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Fixed(f64),
    /// ln(X) ~ Normal(mu, sigma).
    LogNormal {
        mu: f64,
        sigma: f64,
    },
}

/// The standard normal's 99th percentile: p99 = exp(mu + Z99 * sigma).
const Z99: f64 = 2.326_347_874_040_841;

impl Distribution {
    pub fn fixed(v: f64) -> Self {
        Distribution {
            shape: Shape::Fixed(v),
            min: 0.0,
            max: f64::INFINITY,
        }
    }

    /// Log-normal through a median and a 99th percentile (`p99 >= p50 > 0`).
    pub fn from_percentiles(p50: f64, p99: f64) -> Self {
        let mu = p50.ln();
        let sigma = (p99 / p50).ln() / Z99;
        Distribution {
            shape: Shape::LogNormal { mu, sigma },
            min: 0.0,
            max: f64::INFINITY,
        }
    }

    /// The value for a standard-normal draw `z`, clamped to `[min, max]`.
    pub fn value(&self, z: f64) -> f64 {
        let v = match self.shape {
            Shape::Fixed(v) => v,
            Shape::LogNormal { mu, sigma } => (mu + sigma * z).exp(),
        };
        v.clamp(self.min, self.max)
    }
}

/// Price in nano-dollars per million tokens: integers, so sums are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input_nanos_per_mtok: u64,
    pub output_nanos_per_mtok: u64,
}

impl Price {
    /// The cost of a call in nano-dollars, rounded to the nearest nano-dollar.
    pub fn cost_nanos(&self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        let scaled = u128::from(prompt_tokens) * u128::from(self.input_nanos_per_mtok)
            + u128::from(completion_tokens) * u128::from(self.output_nanos_per_mtok);
        u64::try_from((scaled + 500_000) / 1_000_000).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub deployments: Vec<DeploymentSpec>,
    pub price: Price,
    pub context_tokens: u32,
    pub quality_tier: u8,
    /// Models tried, in order, when every deployment of this one has failed.
    pub fallbacks: Vec<String>,
    pub resilience: ResilienceSpec,
    /// The most output tokens one answer of the model can hold, when configured.
    pub max_output_tokens: Option<u32>,
    pub on_saturation: OnSaturation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    pub provider: String,
    pub upstream_model: String,
    pub weight: u32,
    /// `None`: unlimited, no queue.
    pub capacity: Option<Capacity>,
}

impl DeploymentSpec {
    /// `provider/upstream_model`, the name used in headers, records and metrics.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider, self.upstream_model)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSpec {
    /// Until the response head (non-streaming: the whole response; streaming: the first chunk).
    pub attempt_timeout: Duration,
    /// Longest silence between two chunks of a stream already flowing.
    pub stream_idle_timeout: Duration,
    /// Everything before the first byte to the client: attempts, backoff and fallbacks.
    pub deadline: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySecret {
    Sha256([u8; 32]),
    /// Read from this environment variable when the gateway starts, then hashed.
    Env(String),
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub id: String,
    pub tenant: String,
    pub secret: KeySecret,
    pub models: ModelAccess,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget_daily_nanos: Option<u64>,
    pub budget_monthly_nanos: Option<u64>,
    /// The route policy when the caller names none (else the route's default).
    pub route_policy: Option<Policy>,
    pub guard_policy: Option<String>,
    pub priority: KeyPriority,
}

/// A key's priority classes: the one its requests get without `x-switchyard-priority`, and
/// the highest they may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPriority {
    pub default: Class,
    pub max: Class,
}

impl Default for KeyPriority {
    /// Interactive, and no higher: `critical` is given by config, never taken.
    fn default() -> Self {
        KeyPriority {
            default: Class::Interactive,
            max: Class::Interactive,
        }
    }
}

impl KeyPriority {
    /// The class of a request that asked for `asked` (`None`: no header).
    pub fn effective(&self, asked: Option<Class>) -> Class {
        asked.unwrap_or(self.default).clamp_to(self.max)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelAccess {
    All,
    Only(Vec<String>),
}

impl ModelAccess {
    pub fn allows(&self, model: &str) -> bool {
        match self {
            ModelAccess::All => true,
            ModelAccess::Only(list) => list.iter().any(|m| m == model),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdminSpec {
    pub secret: KeySecret,
}

/// The keys the embedded demo publishes in its README. A config that accepts one of them may
/// only listen on loopback.
pub const DEMO_KEY: &str = "sk-switchyard-demo";
pub const DEMO_ADMIN_KEY: &str = "sk-switchyard-admin";

impl Config {
    /// Things that are valid but probably not what the author meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .located_warnings
            .iter()
            .map(|d| d.to_string())
            .collect();
        if self.keys.is_empty() {
            out.push("no [[keys]] are declared: the gateway would refuse every request (a config for `switchyard sim` needs none)".to_owned());
        }
        out
    }

    /// Whether any key (client or admin) is one of the published demo keys.
    pub fn accepts_published_keys(&self) -> bool {
        let published = [crate::hash_key(DEMO_KEY), crate::hash_key(DEMO_ADMIN_KEY)];
        self.keys
            .iter()
            .map(|k| &k.secret)
            .chain(self.admin.iter().map(|a| &a.secret))
            .any(|s| matches!(s, KeySecret::Sha256(h) if published.contains(h)))
    }
}

/// How far one render of a prompt may go (`[prompts]` in the config). A template is code: a
/// loop over a range, nested loops or a string repeated can make it render for minutes and
/// hundreds of megabytes. Both limits cover the whole prompt, every message together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Most bytes the rendered messages may hold together.
    pub max_bytes: usize,
    /// Most template instructions one render may run (minijinja's fuel: about one per
    /// expression, filter or loop step).
    pub fuel: u64,
}

impl Default for RenderLimits {
    /// 4 MiB, the most a client may send in a body (`server.max_body_bytes`' default), and a
    /// million instructions: tens of milliseconds, hundreds of times what a prompt that loops
    /// over a few dozen items needs.
    fn default() -> Self {
        RenderLimits {
            max_bytes: 4 * 1024 * 1024,
            fuel: 1_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cost_is_exact_in_nanos() {
        // $0.15 / Mtok in, $0.60 / Mtok out.
        let p = Price {
            input_nanos_per_mtok: 150_000_000,
            output_nanos_per_mtok: 600_000_000,
        };
        assert_eq!(p.cost_nanos(10, 0), 1_500);
        assert_eq!(p.cost_nanos(1_000_000, 1_000_000), 750_000_000);
    }

    #[test]
    fn lognormal_hits_its_percentiles() {
        let d = Distribution::from_percentiles(100.0, 400.0);
        assert!((d.value(0.0) - 100.0).abs() < 1e-9);
        assert!((d.value(Z99) - 400.0).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn cost_is_additive_within_rounding(a in 0u64..10_000_000, b in 0u64..10_000_000, pin in 0u64..100_000_000_000, pout in 0u64..100_000_000_000) {
            let p = Price { input_nanos_per_mtok: pin, output_nanos_per_mtok: pout };
            let whole = p.cost_nanos(a + b, 0);
            let parts = p.cost_nanos(a, 0) + p.cost_nanos(b, 0);
            prop_assert!(whole.abs_diff(parts) <= 1);
        }
    }
}
