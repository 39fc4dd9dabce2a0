//! The config file as written: serde types with defaults, unknown fields refused. Validation
//! turns these into the types in `spec`. Fields are only ever added here, with defaults, so
//! stored configs keep parsing. They are read by `shape` (every mistake of a file in one
//! run), never by toml's own deserializer; a new field needs nothing beyond its line here.

use serde::Deserialize;
use std::collections::BTreeMap;

mod cloud;
mod common;
pub use cloud::{RawAzure, RawBedrock, RawGemini, RawVertex};
pub use common::RawBreaker;
use common::{default_connect_timeout_ms, default_max_tokens};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub resilience: RawResilience,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
    #[serde(default)]
    pub cache: Option<RawCache>,
    #[serde(default)]
    pub guards: RawGuards,
    /// Named guard policies that routes and keys can choose instead of `[guards]`.
    #[serde(default)]
    pub guard_policies: BTreeMap<String, RawGuards>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    /// `[[slos]]`: service level objectives.
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    /// `[alerts]`: where SLO alerts go and what a page does.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// `[limits]`: how keys' limits are enforced.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[prompts]`: how far rendering a stored prompt may go.
    #[serde(default)]
    pub prompts: RawPrompts,
    /// `[batch]`: the Batch API's limits and its worker.
    #[serde(default)]
    pub batch: RawBatch,
    /// `[responses]`: what the Responses API keeps of a stored response, and for how long.
    #[serde(default)]
    pub responses: RawResponses,
    /// `[admission]`: the queues of deployments with a `capacity`, and the autoscaling target.
    #[serde(default)]
    pub admission: RawAdmission,
}

/// `[batch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBatch {
    /// The largest file `POST /v1/files` takes, in MiB.
    pub max_file_mb: u64,
    /// The most requests one input file may hold.
    pub max_lines: u64,
    /// Lines this replica runs at once; 0: it runs none (it still serves the API).
    pub concurrency: u32,
    /// How long a claimed line stays this replica's before another may take it.
    pub lease_secs: u64,
    /// Attempts of a line whose failure is retryable (429, 5xx) before it is failed.
    pub max_attempts: u32,
    /// The first retry's wait; doubled for each next one.
    pub retry_backoff_ms: u64,
    /// The share of the price batch lines do not pay (OpenAI's: half).
    pub price_discount: f64,
    /// Files and ended batches are deleted this many days after they were made.
    pub retention_days: u32,
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch {
            max_file_mb: 100,
            max_lines: 50_000,
            concurrency: 8,
            lease_secs: 600,
            max_attempts: 3,
            retry_backoff_ms: 1_000,
            price_discount: 0.5,
            retention_days: 30,
        }
    }
}

/// `[responses]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawResponses {
    /// The most a stored response may take (its conversation and its output), in KiB. A
    /// request whose conversation is already larger is refused when it asks to be stored.
    pub max_stored_kb: u64,
    /// Stored responses are deleted this many days after they were made.
    pub retention_days: u32,
}

impl Default for RawResponses {
    fn default() -> Self {
        RawResponses {
            max_stored_kb: 1024,
            retention_days: 30,
        }
    }
}

/// `[admission]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmission {
    /// The utilisation (in flight and queued over capacity) `switchyard_desired_replicas`
    /// aims at, as a Kubernetes HPA's target.
    pub target_utilization: f64,
    /// `[admission.classes.NAME]`: the queue limits of a priority class.
    pub classes: BTreeMap<String, RawClassLimits>,
}

impl Default for RawAdmission {
    fn default() -> Self {
        RawAdmission {
            target_utilization: 0.8,
            classes: BTreeMap::new(),
        }
    }
}

/// One class's queue limits; a field not given keeps the class's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassLimits {
    /// A request of the class waiting longer for capacity is shed.
    #[serde(default)]
    pub max_wait_ms: Option<u64>,
    /// The most requests of the class waiting for one deployment.
    #[serde(default)]
    pub max_queue: Option<usize>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// The output cap of a request that sets no `max_tokens`, to a model without
    /// `max_output_tokens`, from a key with a spend budget or a `tpm` limit: what admission
    /// reserves, and what the provider is asked to stay within.
    pub default_max_output_tokens: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            default_max_output_tokens: 4096,
        }
    }
}

/// `[prompts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPrompts {
    pub max_rendered_bytes: u64,
    pub fuel: u64,
}

impl Default for RawPrompts {
    fn default() -> Self {
        let limits = crate::spec::RenderLimits::default();
        RawPrompts {
            max_rendered_bytes: limits.max_bytes as u64,
            fuel: limits.fuel,
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Each alert state change is POSTed here as JSON.
    pub webhook: Option<String>,
    pub timeout_ms: u64,
    /// What a page that starts firing does to the rollouts in force: `none`, `pause`, `abort`.
    pub on_page: String,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            webhook: None,
            timeout_ms: 2000,
            on_page: "pause".to_owned(),
        }
    }
}

/// `[[slos]]`: one objective, its target and window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub name: String,
    /// `availability`, `latency`, `ttft` or `quality`.
    pub objective: String,
    /// The share of good requests promised, e.g. 0.995.
    pub target: f64,
    /// For `latency` and `ttft`: a request is good under this many milliseconds.
    #[serde(default)]
    pub threshold_ms: Option<u64>,
    #[serde(default = "default_slo_window_days")]
    pub window_days: u32,
    /// Only requests to this route alias (default: all).
    #[serde(default)]
    pub route: Option<String>,
    /// Only requests a model answered (default: all).
    #[serde(default)]
    pub model: Option<String>,
    /// What the gateway does while one of this SLO's page alerts fires.
    #[serde(default)]
    pub on_page: Option<RawSloActions>,
}

/// `[slos.on_page]`: actions in force while a page of the SLO fires, undone when it resolves.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSloActions {
    /// A priority class: requests of it and every lower class are shed.
    #[serde(default)]
    pub shed: Option<String>,
    /// Route alias to the router policy it uses meanwhile (`cheap`, `balanced`, `best`, a bar).
    #[serde(default)]
    pub route_policy: BTreeMap<String, String>,
}

fn default_slo_window_days() -> u32 {
    30
}

/// `[guards]`: checks on what goes to the model and what comes back.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    /// `alongside` (default: classifying guards run while the provider call runs) or `first`
    /// (they finish before the call starts: a refused request costs no provider call).
    #[serde(default)]
    pub screen: Option<String>,
    #[serde(default)]
    pub pii: Option<RawPiiGuard>,
    #[serde(default)]
    pub injection: Option<RawInjectionGuard>,
    #[serde(default)]
    pub toxicity: Option<RawToxicityGuard>,
    #[serde(default)]
    pub compliance: Option<RawComplianceGuard>,
    /// What output guards do when an answer fails them.
    #[serde(default)]
    pub output: RawOutputPolicy,
    #[serde(default)]
    pub webhook: Option<RawWebhookGuard>,
    #[serde(default)]
    pub judge: Option<RawJudgeGuard>,
    #[serde(default)]
    pub topics: Option<RawTopicsGuard>,
    #[serde(default)]
    pub grounding: Option<RawGroundingGuard>,
    #[serde(default)]
    pub bias: Option<RawBiasGuard>,
    #[serde(default)]
    pub harmful: Option<RawHarmfulGuard>,
}

/// `[guards.harmful]`: requests a model should not answer (Do-Not-Answer's risk areas),
/// classified with the other input screens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHarmfulGuard {
    /// `block` (default) or `flag`.
    #[serde(default = "default_injection_action")]
    pub action: String,
    /// Score at or above which a request is harmful; default: the artifact's.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// `builtin:NAME` or a path to a trained classifier artifact.
    #[serde(default = "default_harmful_artifact")]
    pub artifact: String,
    /// The risk areas the action applies to; default: all. A harmful request of another area
    /// passes, its area and score recorded.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Folder of the static embedding model the artifact was trained with.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// `closed` (default: a guard that fails blocks the request) or `open`.
    #[serde(default = "default_on_error")]
    pub on_error: String,
}

fn default_harmful_artifact() -> String {
    "builtin:harmful.v1".to_owned()
}

/// `[guards.topics]`: what the service will talk about, judged alongside the model call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopicsGuard {
    /// Topics a request must be close to (when any is declared).
    #[serde(default)]
    pub allowed: Vec<RawTopic>,
    /// Topics a request must not be close to.
    #[serde(default)]
    pub denied: Vec<RawTopic>,
    /// `refuse` (default: the configured refusal is the answer) or `flag`.
    #[serde(default = "default_topics_action")]
    pub action: String,
    /// The answer an off-topic or denied request gets.
    #[serde(default = "default_topic_refusal")]
    pub refusal: String,
    /// Cosine at or above which an allowed topic accepts a request.
    #[serde(default)]
    pub allow_threshold: Option<f32>,
    /// Cosine at or above which a denied topic refuses a request.
    #[serde(default)]
    pub deny_threshold: Option<f32>,
    /// The static embedding model's folder (see `scripts/fetch-models.sh`).
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// `closed` (default: a guard that fails blocks the request) or `open`.
    #[serde(default = "default_on_error")]
    pub on_error: String,
}

/// One topic: a few example phrases, a description, keywords.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub name: String,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

fn default_topics_action() -> String {
    "refuse".to_owned()
}
fn default_topic_refusal() -> String {
    "I'm sorry, I can only help with questions this service is meant for.".to_owned()
}
pub(crate) fn default_embedder() -> String {
    "models/minilm-static-256".to_owned()
}

/// `[guards.grounding]`: answers must be supported by the context the request gave.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroundingGuard {
    /// `flag` (default), `retry` or `block`.
    #[serde(default = "default_flag_action")]
    pub action: String,
    /// An answer whose weakest sentence's support is below this fails (default: the
    /// artifact's measured threshold, `eval/hallucination.md`).
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Where the context is: `field` (the request's `context` extension field), `tools`
    /// (tool results in the conversation), `system` (system messages).
    #[serde(default = "default_context_sources")]
    pub context: Vec<String>,
}

fn default_flag_action() -> String {
    "flag".to_owned()
}
fn default_context_sources() -> Vec<String> {
    vec!["field".to_owned(), "tools".to_owned()]
}

/// `[guards.bias]`: stereotyping generalisations about groups in answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBiasGuard {
    /// `flag` (default), `retry` or `block`.
    #[serde(default = "default_flag_action")]
    pub action: String,
    #[serde(default)]
    pub threshold: Option<f32>,
}

/// `[guards.judge]`: another configured model reads each answer and says whether it is safe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJudgeGuard {
    /// A model under [models] (e.g. a Llama Guard deployment).
    pub model: String,
    /// A minijinja template with `question` and `answer`; default: a SAFE/UNSAFE rubric.
    #[serde(default)]
    pub template: Option<String>,
    /// A judge reply matching this regex fails the answer.
    #[serde(default = "default_unsafe_pattern")]
    pub unsafe_pattern: String,
    #[serde(default = "default_output_action")]
    pub action: String,
}

fn default_unsafe_pattern() -> String {
    "(?i)\\bunsafe\\b".to_owned()
}

/// `[guards.webhook]`: a service of the team's own that judges the request, alongside the call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookGuard {
    pub url: String,
    #[serde(default = "default_webhook_timeout")]
    pub timeout_ms: u64,
    /// `closed` (default: no answer in time refuses the request) or `open`.
    #[serde(default = "default_on_error")]
    pub on_error: String,
}

fn default_webhook_timeout() -> u64 {
    1000
}

/// `[guards.toxicity]`: toxic answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToxicityGuard {
    /// `retry` (default), `block` (the safe answer at once) or `flag`.
    #[serde(default = "default_output_action")]
    pub action: String,
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default = "default_toxicity_artifact")]
    pub artifact: String,
}

/// `[guards.compliance]`: rules every answer must keep.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComplianceGuard {
    #[serde(default = "default_output_action")]
    pub action: String,
    /// Regexes an answer must not match.
    #[serde(default)]
    pub forbidden: Vec<String>,
    /// Texts appended to answers of a category (a regex on the question or the answer) that
    /// lack them.
    #[serde(default)]
    pub disclaimers: Vec<RawDisclaimer>,
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// Answers to `response_format` JSON requests must be JSON (with the schema's required
    /// top-level fields).
    #[serde(default = "yes")]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisclaimer {
    pub when: String,
    pub text: String,
}

/// `[guards.output]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutputPolicy {
    /// Regenerations after a failed answer before the safe answer is sent.
    pub retries: u32,
    /// Tell the model, on a retry, which check the last answer failed.
    pub corrective_note: bool,
    pub safe_answer: String,
}

impl Default for RawOutputPolicy {
    fn default() -> Self {
        RawOutputPolicy {
            retries: 1,
            corrective_note: true,
            safe_answer: "I'm sorry, I can't provide that answer.".to_owned(),
        }
    }
}

fn default_output_action() -> String {
    "retry".to_owned()
}
fn default_toxicity_artifact() -> String {
    "builtin:toxicity.v1".to_owned()
}

/// `[guards.pii]`: PII and secrets in the request, masked before anything else sees them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPiiGuard {
    /// `pseudonymize` (default), `redact`, `hash`, `block` or `flag`.
    #[serde(default = "default_pii_action")]
    pub action: String,
    /// Entity kinds to look for; default: the structured ones and secrets.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Per-kind actions over `action`, e.g. `{ SECRET = "block" }`.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// Environment variable holding the salt of `hash` (stable hashes across restarts).
    #[serde(default)]
    pub hash_salt_env: Option<String>,
}

fn default_pii_action() -> String {
    "pseudonymize".to_owned()
}

/// `[guards.injection]`: prompt injection and jailbreaks, classified alongside the model call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInjectionGuard {
    /// `block` (default) or `flag`.
    #[serde(default = "default_injection_action")]
    pub action: String,
    /// Score at or above which a text is an injection; default: the artifact's.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// `builtin:NAME` or a path to a trained detector artifact.
    #[serde(default = "default_injection_artifact")]
    pub artifact: String,
    /// Also scan tool results in the conversation (indirect injection).
    #[serde(default = "yes")]
    pub scan_tool_results: bool,
    /// `closed` (default: a guard that fails blocks the request) or `open`.
    #[serde(default = "default_on_error")]
    pub on_error: String,
}

fn default_injection_action() -> String {
    "block".to_owned()
}
fn default_injection_artifact() -> String {
    "builtin:injection-permissive.v1".to_owned()
}
fn default_on_error() -> String {
    "closed".to_owned()
}
fn yes() -> bool {
    true
}

/// `[routes.NAME]`: a model alias whose requests the router sends to one of its candidates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Cheapest first; the last is the fallback when no cheaper one is predicted good enough.
    pub candidates: Vec<RawCandidate>,
    /// A router artifact: a file path, or `builtin:NAME` for one shipped in the binary.
    #[serde(default)]
    pub router: Option<String>,
    /// Folder of the static embedding model a neighbour router embeds prompts with (the one
    /// it was built with); default `models/minilm-static-256`, as for the cache.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// `cheap`, `balanced`, `best` or a number in [0, 1]; `balanced` when unset.
    #[serde(default)]
    pub default_policy: Option<String>,
    /// Overrides the artifact's bars for the named policies.
    #[serde(default)]
    pub bars: Option<RawBars>,
    /// Tried in order before the classifier; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Per-route cache settings over `[cache]`.
    #[serde(default)]
    pub cache: Option<RawCachePolicy>,
    /// Moving the bars with user feedback.
    #[serde(default)]
    pub recalibrate: RawRecalibrate,
    /// A `[guard_policies.NAME]` for this route's requests instead of `[guards]`.
    #[serde(default)]
    pub guard_policy: Option<String>,
}

/// `[routes.NAME.recalibrate]`: on by default, within tight bounds of the trained bars.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecalibrate {
    pub enabled: bool,
    pub interval_secs: u64,
    pub window_hours: u64,
    pub min_feedback: usize,
    pub step: f32,
    pub max_shift: f32,
    pub target_cheap: f32,
    pub target_balanced: f32,
    pub margin: f32,
}

impl Default for RawRecalibrate {
    fn default() -> Self {
        RawRecalibrate {
            enabled: true,
            interval_secs: 300,
            window_hours: 24,
            min_feedback: 30,
            step: 0.01,
            max_shift: 0.1,
            target_cheap: 0.90,
            target_balanced: 0.95,
            margin: 0.03,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCandidate {
    pub model: String,
    /// The artifact head that scores this candidate (defaults to the model's name).
    #[serde(default)]
    pub head: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBars {
    pub cheap: f32,
    pub balanced: f32,
}

/// A rule route: exactly one of `prompt_regex`, `key`, `metadata` says when it applies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub prompt_regex: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// One `name = "value"` pair matched against the request's `metadata` object.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `[cache]`: the exact and semantic response cache shared by every model and route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub enabled: bool,
    pub max_mb: u64,
    /// Folder of the static embedding model the semantic tier searches with.
    pub embedder: String,
    /// Candidates above the threshold the false-hit guard may look at.
    pub top_k: usize,
    /// Whether the semantic tier runs (the exact tier always does when the cache is on).
    pub semantic: bool,
    /// Cosine similarity a semantic candidate needs.
    pub threshold: f32,
    pub ttl_secs: u64,
    /// Also cache requests with temperature above zero (or unset).
    pub allow_temperature: bool,
    /// Check the semantic candidate with this pair check (`builtin:cache-pair-check.v1` or
    /// an artifact's path: MiniLM token alignment and a trained model) before serving it.
    pub pair_check: Option<String>,
    /// Folder of MiniLM, loaded when `pair_check` is on.
    pub minilm: String,
}

impl Default for RawCache {
    fn default() -> Self {
        RawCache {
            enabled: true,
            max_mb: 64,
            embedder: default_embedder(),
            top_k: 4,
            semantic: true,
            threshold: 0.90,
            ttl_secs: 3600,
            allow_temperature: false,
            pair_check: None,
            minilm: "models/all-MiniLM-L6-v2".to_owned(),
        }
    }
}

/// Cache settings a route may override; unset fields inherit from `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCachePolicy {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub semantic: Option<bool>,
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub allow_temperature: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: u64,
    pub shutdown_grace_secs: u64,
    /// Marks the embedded demo: published keys, so it may only listen on loopback.
    pub demo: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 30,
            demo: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub data_dir: String,
    /// `postgres://…`: every table in PostgreSQL instead of SQLite in `data_dir`.
    pub url: Option<String>,
    /// On PostgreSQL: how much of `data_dir` the records waiting for an unreachable
    /// database may take.
    pub spool_max_mb: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            data_dir: "switchyard-data".to_owned(),
            url: None,
            spool_max_mb: 1024,
        }
    }
}

/// `[redis]`: the counters and cache a fleet of replicas shares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub url: String,
    /// `per_replica` or `refuse`: what keys' limits do while Redis cannot be reached.
    pub on_failure: String,
}

impl Default for RawRedis {
    fn default() -> Self {
        RawRedis {
            url: String::new(),
            on_failure: "per_replica".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub log_format: String,
    pub log_level: String,
    /// One log line per request, besides the stored record.
    pub access_log: bool,
    /// `none` or `masked`: whether each chat request's prompt and answer are stored, masked,
    /// with its record.
    pub content: String,
    /// Stored content is deleted this many days after its request.
    pub content_retention_days: u32,
    /// The most bytes of each stored text (a message, a tool call's arguments, the answer).
    pub content_max_bytes: u64,
    /// `[telemetry.otlp]`: OTLP export of traces; off when absent (and no
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set).
    pub otlp: Option<RawOtlp>,
}

/// `[telemetry.otlp]`: where traces go. Header values are never written here: the config's
/// text is stored with each version and shown by the admin API, and headers carry vendors' API
/// keys, so they come from environment variables (`headers_env`, `OTEL_EXPORTER_OTLP_HEADERS`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOtlp {
    /// The collector's base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` is added);
    /// empty: from the environment.
    pub endpoint: String,
    /// An environment variable holding headers as `name=value,name2=value2`.
    pub headers_env: Option<String>,
    /// `service.name`; empty: `OTEL_SERVICE_NAME`, else `switchyard`.
    pub service_name: String,
    /// The share of traces started here that are kept (a parent's decision is followed).
    pub sampling_ratio: f64,
    /// One export's time limit, retries included.
    pub timeout_ms: u64,
    /// Spans waiting for export at most; more are dropped and counted.
    pub queue_size: usize,
    /// Also export the GenAI metrics (`gen_ai.client.token.usage`, ...) over OTLP.
    pub metrics: bool,
}

impl Default for RawOtlp {
    fn default() -> Self {
        RawOtlp {
            endpoint: String::new(),
            headers_env: None,
            service_name: String::new(),
            sampling_ratio: 1.0,
            timeout_ms: 10_000,
            queue_size: 2_048,
            metrics: false,
        }
    }
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            queue_capacity: 65_536,
            batch_size: 512,
            flush_interval_ms: 200,
            log_format: "json".to_owned(),
            log_level: "info".to_owned(),
            access_log: false,
            content: "none".to_owned(),
            content_retention_days: 7,
            content_max_bytes: 16_384,
            otlp: None,
        }
    }
}

/// Retry, timeout and breaker settings. At the top level every field has a default; under a
/// model, the fields given override the top level's. Breakers belong to deployments, so
/// `breaker` is set at the top level or per provider, not per model.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResilience {
    pub attempt_timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub retry_budget_percent: Option<f32>,
    pub retry_budget_min_per_sec: Option<u32>,
    #[serde(default)]
    pub breaker: RawBreaker,
}

/// Tagged by its `kind` field (`kind = "sim"`), as `shape` reads a table given to an enum.
/// (Not serde's `tag = "kind"`: serde buffers an internally tagged enum's fields, which loses
/// their places and stops at the first mistake among them.)
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawProvider {
    Openai(RawOpenAi),
    Anthropic(RawAnthropic),
    Bedrock(RawBedrock),
    Sim(RawSim),
    Azure(RawAzure),
    Gemini(RawGemini),
    Vertex(RawVertex),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenAi {
    /// This provider's circuit breakers (one per deployment); fields given override `[resilience.breaker]`.
    #[serde(default)]
    pub breaker: RawBreaker,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `vllm`, `llamacpp`, `tgi` or `sglang`: the self-hosted engine behind the URL.
    #[serde(default)]
    pub engine: Option<String>,
    /// Where the engine's Prometheus metrics are; by default the base URL's origin + `/metrics`.
    #[serde(default)]
    pub metrics_url: Option<String>,
    #[serde(default)]
    pub metrics_poll_ms: Option<u64>,
    /// vLLM runs with `--scheduling-policy priority`: send the class as `priority`.
    #[serde(default)]
    pub priority_scheduling: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnthropic {
    /// This provider's circuit breakers (one per deployment); fields given override `[resilience.breaker]`.
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default = "default_anthropic_url")]
    pub base_url: String,
    #[serde(default = "default_anthropic_key_env")]
    pub api_key_env: Option<String>,
    #[serde(default = "default_anthropic_version")]
    pub version: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
}

fn default_anthropic_url() -> String {
    "https://api.anthropic.com".to_owned()
}
fn default_anthropic_key_env() -> Option<String> {
    Some("ANTHROPIC_API_KEY".to_owned())
}
fn default_anthropic_version() -> String {
    "2023-06-01".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSim {
    /// This provider's circuit breakers (one per deployment); fields given override `[resilience.breaker]`.
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub models: BTreeMap<String, RawSimModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimModel {
    #[serde(default = "default_ttft")]
    pub ttft_ms: RawDist,
    #[serde(default = "default_tps")]
    pub tokens_per_second: RawDist,
    #[serde(default = "default_output_tokens")]
    pub output_tokens: RawDist,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    #[serde(default)]
    pub rate_limit_rate: f64,
    #[serde(default)]
    pub timeout_rate: f64,
    #[serde(default)]
    pub spike_rate: f64,
    #[serde(default)]
    pub spike_ms: u64,
    #[serde(default)]
    pub echo: bool,
    #[serde(default)]
    pub rules: Vec<RawSimRule>,
    #[serde(default = "default_embedding_dims")]
    pub embedding_dims: usize,
    #[serde(default)]
    pub engine: Option<RawSimEngine>,
}

/// A simulated continuous-batching engine (`[providers.NAME.models.MODEL.engine]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimEngine {
    pub slots: u32,
    #[serde(default = "default_kv_tokens")]
    pub kv_tokens: u64,
    #[serde(default)]
    pub prefill_ms: f64,
    #[serde(default)]
    pub prefill_ms_per_1k_tokens: f64,
    #[serde(default = "default_decode_ms")]
    pub decode_ms: f64,
    #[serde(default)]
    pub decode_ms_per_sequence: f64,
}

fn default_kv_tokens() -> u64 {
    65_536
}
fn default_decode_ms() -> f64 {
    10.0
}

fn default_ttft() -> RawDist {
    RawDist::fixed(50.0)
}
fn default_tps() -> RawDist {
    RawDist::fixed(100.0)
}
fn default_output_tokens() -> RawDist {
    RawDist {
        p50: 40.0,
        p99: Some(200.0),
        min: Some(1.0),
        max: None,
    }
}
fn default_error_status() -> u16 {
    500
}
fn default_embedding_dims() -> usize {
    256
}

/// A value drawn per request: fixed (`{ p50 = 80 }`) or log-normal through its median and
/// 99th percentile (`{ p50 = 80, p99 = 400 }`), optionally clamped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDist {
    pub p50: f64,
    #[serde(default)]
    pub p99: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

impl RawDist {
    pub fn fixed(v: f64) -> Self {
        RawDist {
            p50: v,
            p99: None,
            min: None,
            max: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSimRule {
    /// Regex over the last user message.
    pub pattern: String,
    /// The reply when it matches; `{{echo}}` is replaced by the last user message.
    #[serde(default)]
    pub reply: Option<String>,
    /// Or answer with an error of this HTTP status.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// Or call this tool (with arguments built from its JSON schema).
    #[serde(default)]
    pub tool_call: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub deployments: Vec<RawDeployment>,
    #[serde(default)]
    pub price: RawPrice,
    #[serde(default = "default_context_tokens")]
    pub context_tokens: u32,
    #[serde(default = "default_quality_tier")]
    pub quality_tier: u8,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub resilience: Option<RawResilience>,
    /// The most output tokens the model produces in one answer (its provider's limit).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// `wait` or `fallback`: when every deployment's capacity is taken, wait in the queue or
    /// go to the first model of `fallbacks` with free capacity.
    #[serde(default = "default_on_saturation")]
    pub on_saturation: String,
}

fn default_on_saturation() -> String {
    "wait".to_owned()
}

fn default_context_tokens() -> u32 {
    128_000
}
fn default_quality_tier() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    #[serde(default)]
    pub upstream_model: Option<String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// What the deployment serves at once; beyond it requests wait in its queue.
    #[serde(default)]
    pub capacity: Option<RawCapacity>,
}

/// A deployment's capacity: concurrent requests and/or tokens in flight.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// Prompt and output tokens (each request's estimate) of the requests being served.
    #[serde(default)]
    pub max_tokens_in_flight: Option<u64>,
}

fn default_weight() -> u32 {
    1
}

/// USD per million tokens.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub secret_sha256: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u32>,
    #[serde(default)]
    pub budget_usd_daily: Option<f64>,
    #[serde(default)]
    pub budget_usd_monthly: Option<f64>,
    /// The route policy for this key's requests when the caller names none.
    #[serde(default)]
    pub route_policy: Option<String>,
    /// A `[guard_policies.NAME]` for this key's requests (over the route's and `[guards]`).
    #[serde(default)]
    pub guard_policy: Option<String>,
    /// The priority class of this key's requests without `x-switchyard-priority`.
    #[serde(default)]
    pub priority: Option<String>,
    /// The highest class this key's requests may ask for; higher ones are lowered to it.
    #[serde(default)]
    pub max_priority: Option<String>,
}

fn all_models() -> Vec<String> {
    vec!["*".to_owned()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub secret_sha256: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
}
