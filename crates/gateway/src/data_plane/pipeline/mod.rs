//! The data plane for one config version: every stage a request passes through, in order,
//! in one place. Built once from a validated [`Config`]; the server swaps whole pipelines.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use switchyard_api::{
    ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse, Model, ModelList,
};
use switchyard_control::{Config, ModelSpec};

mod build;
mod chat;

use crate::data_plane::arms::RolloutSet;
use crate::data_plane::cache::CacheStage;
use crate::data_plane::dispatch::{Deployment, Dispatcher, ModelRuntime, Served};
use crate::data_plane::guards::GuardStage;
use crate::data_plane::keys::{KeyState, Keyring, Reservation};
use crate::data_plane::record::RecordGuard;
use crate::data_plane::routing::{Route, RouteRuntime};
use crate::error::{ErrorKind, GatewayError};
use switchyard_control::Policy;
use switchyard_rollout::TargetKind;

pub struct Pipeline {
    pub config: Arc<Config>,
    /// The config version this pipeline was built from (`versions::version_id`).
    pub version: String,
    keyring: Keyring,
    models: HashMap<String, Arc<ModelRuntime>>,
    routes: HashMap<String, Route>,
    cache: Option<CacheStage>,
    /// `[guards]`, and each `[guard_policies.NAME]`.
    guards: GuardStage,
    guard_policies: HashMap<String, GuardStage>,
    /// Every distinct deployment once, by label.
    deployments: Vec<Arc<Deployment>>,
    /// Stores requests' prompts and answers, when the config asks for it.
    content: Option<crate::data_plane::content::ContentStage>,
    dispatcher: Dispatcher,
    created: i64,
    /// The config's names, the only values metric labels take.
    labels: Arc<crate::metrics::Labels>,
    /// Self-hosted engines' load, read while this pipeline lives.
    _engines: crate::data_plane::engines::Engines,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Provider(#[from] switchyard_providers::BuildError),
    #[error(transparent)]
    KeySecret(#[from] crate::data_plane::keys::MissingKeySecret),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Embedder(#[from] crate::data_plane::cache::EmbedderMissing),
    #[error(transparent)]
    Guards(#[from] crate::data_plane::guards::GuardBuildError),
    #[error("storage: {0}")]
    Store(switchyard_store::StoreError),
    #[error("telemetry.content: {0}")]
    Content(switchyard_pii::PiiError),
    #[error("routes.{route}: `{model}` is not a model")]
    RouteTarget { route: String, model: String },
    /// The route's error is part of this message and not its `source`: a start-up error is
    /// printed with its chain, which printed the route's error twice more.
    #[error("routes.{route}: {problem}")]
    Route {
        route: String,
        problem: switchyard_route::RouteError,
    },
}

/// Who is calling, worked out once per request (`Running::chat`).
pub struct Caller<'a> {
    pub key: Arc<KeyState>,
    /// Who the request is for in sticky splits (flags, rollout arms): `flags::user_key`.
    pub user: String,
    pub headers: &'a HeaderMap,
}

/// What a chat request produced, before it is framed for HTTP.
pub enum ChatOutcome {
    Complete(switchyard_api::ChatCompletionResponse),
    Stream(Box<crate::data_plane::stream::StreamAnswer>),
}

/// What a chat request's `model` names.
enum Target<'a> {
    Model(Arc<ModelRuntime>),
    Route { route: &'a Route, policy: Policy },
}

impl Pipeline {
    /// `POST /v1/embeddings`.
    pub async fn embed(
        &self,
        record: &mut RecordGuard,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<EmbeddingsResponse, GatewayError> {
        self.embed_as(record, None, headers, body).await
    }

    /// [`Self::embed`] as the key the request presents, or (a Batch API line) as the key
    /// whose secret has SHA-256 `key_hash`.
    pub async fn embed_as(
        &self,
        record: &mut RecordGuard,
        key_hash: Option<&[u8; 32]>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<EmbeddingsResponse, GatewayError> {
        let key = self.authenticate_as(key_hash, headers)?;
        record.set_key(&key);
        let request: EmbeddingsRequest = parse_json(body)?;
        record.set_request(&request.model, false);
        let model = self.model_for(&key, &request.model)?;
        // No token is shorter than a byte: the inputs' bytes bound their tokens.
        let bound: u64 = request.input.texts().iter().map(|t| t.len() as u64).sum();
        let reservation = Reservation {
            tokens: u32::try_from(bound).unwrap_or(u32::MAX),
            cost_nanos: model.spec.price.cost_nanos(bound, 0),
        };
        admit(record, &key, reservation).await?;
        let chain = self.chain(&model);
        let (mut response, served) = self
            .dispatcher
            .run(record, &chain, |deployment: &Deployment, trace| {
                let mut attempt = request.clone();
                attempt.model.clone_from(&deployment.upstream_model);
                let provider = deployment.provider.clone();
                let options = switchyard_providers::CallOptions { class: None, trace };
                async move { provider.embed_with(attempt, options).await }
            })
            .await?;
        note_served(record, &served);
        response.model.clone_from(&served.model.spec.name);
        record.set_usage(response.usage.prompt_tokens, 0, false);
        Ok(response)
    }

    /// The key a request presents (for endpoints outside the model pipeline).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyState>, GatewayError> {
        self.keyring.authenticate(headers)
    }

    /// The key a request presents, or the key whose secret has SHA-256 `key_hash`.
    pub fn authenticate_as(
        &self,
        key_hash: Option<&[u8; 32]>,
        headers: &HeaderMap,
    ) -> Result<Arc<KeyState>, GatewayError> {
        match key_hash {
            Some(hash) => self.keyring.by_hash(hash),
            None => self.keyring.authenticate(headers),
        }
    }

    /// The keys, for the dashboard's sign-in.
    pub fn keyring(&self) -> &crate::data_plane::keys::Keyring {
        &self.keyring
    }

    /// The admin key, for `/admin/v1/`.
    pub fn authenticate_admin(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        self.keyring.authenticate_admin(headers)
    }

    /// `GET /v1/models`: the models and routes this key may use.
    pub fn models(&self, headers: &HeaderMap) -> Result<ModelList, GatewayError> {
        let key = self.keyring.authenticate(headers)?;
        let mut data: Vec<Model> = self
            .models
            .keys()
            .chain(self.routes.keys())
            .filter(|name| key.models.allows(name))
            .map(|name| self.model_entry(name))
            .collect();
        data.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(ModelList::new(data))
    }

    /// `GET /v1/models/{model}`: a model, or a route alias with or without its `:policy`, that
    /// this key may use, as `model` names it in a request. Anything else is a 404, as OpenAI
    /// answers for a model that does not exist or that the caller may not use, so the answer
    /// does not tell which models exist.
    pub fn model(&self, headers: &HeaderMap, name: &str) -> Result<Model, GatewayError> {
        let key = self.keyring.authenticate(headers)?;
        let allowed = if self.models.contains_key(name) {
            key.models.allows(name)
        } else {
            self.route_alias(name)
                .is_some_and(|alias| key.models.allows(alias))
        };
        if !allowed {
            return Err(model_not_found(name));
        }
        Ok(self.model_entry(name))
    }

    fn model_entry(&self, name: &str) -> Model {
        Model {
            id: name.to_owned(),
            object: "model".to_owned(),
            created: self.created,
            owned_by: "switchyard".to_owned(),
        }
    }

    /// The config's names as metric label values.
    pub fn labels(&self) -> &Arc<crate::metrics::Labels> {
        &self.labels
    }

    /// Every deployment, for `/metrics`.
    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments.iter()
    }

    /// `switchyard_desired_replicas` of each model with deployments of finite capacity, as
    /// their load stands now (`admission::desired_replicas`).
    pub fn publish_desired_replicas(&self) {
        let target = self.config.admission.target_utilization;
        for (name, model) in &self.models {
            let loads: Vec<f64> = model
                .deployments
                .iter()
                .filter_map(|d| d.deployment.gate())
                .map(|gate| gate.load().utilization)
                .collect();
            if loads.is_empty() {
                continue;
            }
            let desired = crate::data_plane::admission::desired_replicas(&loads, target);
            crate::metrics::gauge(
                crate::metrics::DESIRED_REPLICAS,
                &[("model", self.labels().model(name))],
            )
            .set(desired as f64);
        }
    }

    /// The cache stage, for metrics and upkeep.
    pub fn cache(&self) -> Option<&CacheStage> {
        self.cache.as_ref()
    }

    /// The route named `name`, for `switchyard route explain`.
    pub fn route(&self, name: &str) -> Option<&RouteRuntime> {
        self.routes.get(name).map(|r| &r.runtime)
    }

    pub fn routes(&self) -> impl Iterator<Item = (&String, &RouteRuntime)> {
        self.routes.iter().map(|(name, r)| (name, &r.runtime))
    }

    /// The configured route alias a request's `model` names (as [`Self::target_for`] reads
    /// it), or `None` for a model.
    pub fn route_alias<'a>(&self, requested: &'a str) -> Option<&'a str> {
        if self.models.contains_key(requested) {
            return None;
        }
        let (alias, _) = Policy::split_model(requested).ok()?;
        self.routes.contains_key(alias).then_some(alias)
    }

    /// A model by name, if the key may use it.
    fn model_for(&self, key: &KeyState, name: &str) -> Result<Arc<ModelRuntime>, GatewayError> {
        let model = self.models.get(name).ok_or_else(|| model_not_found(name))?;
        if !key.models.allows(name) {
            let mut e = GatewayError::new(
                ErrorKind::Forbidden,
                "model_not_allowed",
                format!("key `{}` may not use model `{name}`", key.id),
            );
            e.param = Some("model".into());
            return Err(e);
        }
        Ok(model.clone())
    }

    /// Every model a request for `target` may be answered by: the model, or the route's
    /// candidates and rule targets; a model rollout's candidate of any of them; and each
    /// one's fallbacks.
    fn reachable(&self, target: &Target<'_>, rollouts: &RolloutSet) -> Vec<Arc<ModelRuntime>> {
        let roots: Vec<&str> = match target {
            Target::Model(m) => vec![m.spec.name.as_str()],
            Target::Route { route, .. } => route
                .runtime
                .spec
                .candidates
                .iter()
                .map(|c| c.model.as_str())
                .chain(route.runtime.spec.rules.iter().map(|r| r.model.as_str()))
                .collect(),
        };
        let mut out: Vec<Arc<ModelRuntime>> = Vec::new();
        for root in roots {
            let rolled = rollouts.candidate_of(TargetKind::Model, root);
            for name in std::iter::once(root).chain(rolled) {
                let Some(model) = self.models.get(name) else {
                    continue;
                };
                for reached in self.chain(model) {
                    if !out.iter().any(|o| Arc::ptr_eq(o, &reached)) {
                        out.push(reached);
                    }
                }
            }
        }
        out
    }

    fn chain(&self, model: &Arc<ModelRuntime>) -> Vec<Arc<ModelRuntime>> {
        std::iter::once(model.clone())
            .chain(
                model
                    .spec
                    .fallbacks
                    .iter()
                    .filter_map(|f| self.models.get(f).cloned()),
            )
            .collect()
    }

    pub fn model_spec(&self, name: &str) -> Option<&ModelSpec> {
        self.models.get(name).map(|m| &m.spec)
    }
}

fn model_not_found(name: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        "model_not_found",
        format!("the model `{name}` does not exist or you do not have access to it"),
    )
    .with_param("model")
}

/// Reserves `reservation` against the key's limits; the limits' state goes to the record for
/// the answer's `x-ratelimit-*` headers, admitted or not.
async fn admit(
    record: &mut RecordGuard,
    key: &Arc<KeyState>,
    reservation: Reservation,
) -> Result<(), GatewayError> {
    match key.reserve(reservation).await {
        Ok(admission) => {
            record.set_admission(admission);
            Ok(())
        }
        Err(refused) => {
            record.set_rate_limits(refused.limits);
            Err(refused.error)
        }
    }
}

/// Who answered, and at what price.
fn note_served(record: &mut RecordGuard, served: &Served) {
    record.set_price(served.model.spec.price);
    record.trace_provider(served.deployment.provider.kind());
    record.set_served(
        &served.model.spec.name,
        &served.deployment.label,
        served.fallback_from.as_deref(),
    );
}

/// Parses a JSON body: one JSON value and nothing after it but whitespace. The error names
/// the field that failed (`param`) where serde knows it, and is `None` where it does not.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    // Tracking the path was 2.6% of a whole request's instructions (issue 18), and only an
    // error needs it: a body that fails is read again, tracked, for the message.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let param = param_of(e.path(), e.inner());
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("the request body is not valid JSON: {inner}")
        } else {
            match &param {
                Some(p) => format!("invalid value for `{p}`: {inner}"),
                None => format!("invalid request body: {inner}"),
            }
        };
        GatewayError::invalid(param.as_deref(), message)
    })?;
    // Junk after the value (a second object, a stray brace) is refused, not ignored.
    de.end().map_err(|e| {
        GatewayError::invalid(None, format!("the request body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// The request field a deserialization error is about, in OpenAI's `param` style
/// (`messages[0].content`): the path to the value that failed, as far as serde could follow
/// it, and the field a "missing field" or "unknown field" error names. `None` when nothing is
/// known.
pub(crate) fn param_of(
    path: &serde_path_to_error::Path,
    error: &impl std::fmt::Display,
) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut param = String::new();
    let push = |param: &mut String, name: &str| {
        if !param.is_empty() {
            param.push('.');
        }
        param.push_str(name);
    };
    for segment in path {
        match segment {
            Segment::Seq { index } => param.push_str(&format!("[{index}]")),
            Segment::Map { key } => push(&mut param, key),
            Segment::Enum { variant } => push(&mut param, variant),
            Segment::Unknown => break,
        }
    }
    let message = error.to_string();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    if let Some(field) = named {
        if !param.ends_with(field) {
            push(&mut param, field);
        }
    }
    (!param.is_empty()).then_some(param)
}

/// The most choices (`n`) one request may ask for: each is a completion paid for, admitted
/// and (for providers that return one choice per call) a call of its own.
pub const MAX_CHOICES: u32 = 8;

/// The most `top_logprobs` OpenAI accepts.
const MAX_TOP_LOGPROBS: u64 = 20;

/// `logprobs` is a boolean; `top_logprobs` an integer from 0 to 20, only with `logprobs: true`
/// (OpenAI's rules, checked here so every provider's caller gets the same 400).
fn validate_logprobs(r: &ChatCompletionRequest) -> Result<(), GatewayError> {
    let logprobs = r.extra.get("logprobs").filter(|v| !v.is_null());
    if logprobs.is_some_and(|v| !v.is_boolean()) {
        return Err(GatewayError::invalid(
            Some("logprobs"),
            "`logprobs` must be true or false",
        ));
    }
    let Some(top) = r.extra.get("top_logprobs").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    if top.as_u64().is_none_or(|t| t > MAX_TOP_LOGPROBS) {
        return Err(GatewayError::invalid(
            Some("top_logprobs"),
            format!("`top_logprobs` must be an integer from 0 to {MAX_TOP_LOGPROBS}"),
        ));
    }
    if logprobs != Some(&serde_json::Value::Bool(true)) {
        return Err(GatewayError::invalid(
            Some("top_logprobs"),
            "`top_logprobs` requires `logprobs: true`",
        ));
    }
    Ok(())
}

fn validate_chat(r: &ChatCompletionRequest) -> Result<(), GatewayError> {
    if r.model.trim().is_empty() {
        return Err(GatewayError::invalid(
            Some("model"),
            "`model` must not be empty",
        ));
    }
    if r.messages.is_empty() {
        return Err(GatewayError::invalid(
            Some("messages"),
            "`messages` must hold at least one message",
        ));
    }
    if let Some(n) = r.n {
        if !(1..=MAX_CHOICES).contains(&n) {
            return Err(GatewayError::invalid(
                Some("n"),
                format!("`n` must be between 1 and {MAX_CHOICES} (got {n})"),
            ));
        }
    }
    validate_logprobs(r)?;
    if let Some(t) = r.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(GatewayError::invalid(
                Some("temperature"),
                format!("`temperature` must be between 0 and 2 (got {t})"),
            ));
        }
    }
    if let Some(p) = r.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(GatewayError::invalid(
                Some("top_p"),
                format!("`top_p` must be between 0 and 1 (got {p})"),
            ));
        }
    }
    if r.output_cap() == Some(0) {
        return Err(GatewayError::invalid(
            Some("max_tokens"),
            "`max_tokens` must be at least 1",
        ));
    }
    if r.stream_options.is_some() && !r.is_stream() {
        return Err(GatewayError::invalid(
            Some("stream_options"),
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field_or_none() {
        let chat = |body: &str| parse_json::<ChatCompletionRequest>(body.as_bytes());
        let ok = r#"{"model": "m", "messages": [{"role": "user", "content": "x"}]}"#;
        assert!(chat(ok).is_ok());
        assert!(
            chat(&format!("  {ok}\n\t ")).is_ok(),
            "whitespace around is fine"
        );
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"model": "m", "messages": [{"role": "user", "content": 5}]}"#,
                Some("messages[0].content"),
            ),
            (r#"{"model": 5, "messages": []}"#, Some("model")),
            (r#"{"messages": []}"#, Some("model")),
            (
                r#"{"model": "m", "messages": [{"content": "x"}]}"#,
                Some("messages[0].role"),
            ),
            (
                r#"{"model": "m", "messages": [], "temperature": "hot"}"#,
                Some("temperature"),
            ),
            (
                r#"{"model": "m", "messages": [], "stream": "yes"}"#,
                Some("stream"),
            ),
            (r#"{"model": "#, Some("model")),
            (r#"{"model": "m",, "messages": []}"#, None),
            (r#"{"model" "m"}"#, None),
            (r#"[1, 2]"#, None),
            ("", None),
            ("not json", None),
            (&format!("{ok} trailing"), None),
            (&format!("{ok}{{}}"), None),
            (&format!("{ok}}}"), None),
        ];
        for (body, param) in cases {
            let e = chat(body).map(|_| ()).expect_err(body);
            assert_eq!(e.param.as_deref(), *param, "{body}: {}", e.message);
            assert_ne!(e.param.as_deref(), Some("?"), "{body}");
        }
        let e = chat(&format!("{ok} trailing")).unwrap_err();
        assert!(e.message.contains("trailing characters"), "{}", e.message);
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        assert!(e.message.contains("wizard"), "{}", e.message);
        let e = parse_json::<ChatCompletionRequest>(b"{\"model\": ").unwrap_err();
        assert!(
            e.message.starts_with("the request body is not valid JSON"),
            "{}",
            e.message
        );
        let e = parse_json::<ChatCompletionRequest>(br#"{"messages": []}"#).unwrap_err();
        assert!(e.message.contains("missing field `model`"), "{}", e.message);
    }

    /// Admission reserves on every model a request may reach: a model's fallbacks, a route's
    /// candidates and rule targets with theirs; nothing else.
    #[tokio::test]
    async fn the_reachable_models_include_fallbacks_and_rule_targets() {
        let config = switchyard_control::parse(
            r#"
[providers.sim]
kind = "sim"
[providers.sim.models.x]
[models.small]
deployments = [{ provider = "sim", upstream_model = "x" }]
fallbacks = ["dear"]
[models.dear]
deployments = [{ provider = "sim", upstream_model = "x" }]
[models.ruled]
deployments = [{ provider = "sim", upstream_model = "x" }]
[models.unrelated]
deployments = [{ provider = "sim", upstream_model = "x" }]
[routes.auto]
candidates = [{ model = "small" }]
[[routes.auto.rules]]
name = "r"
prompt_regex = "x"
model = "ruled"
"#,
            "t.toml",
        )
        .unwrap();
        let p = Pipeline::build(
            Arc::new(config),
            &|_| None,
            &|_, _| 0,
            "v",
            None,
            &Default::default(),
        )
        .unwrap();
        let names = |target: &Target<'_>| {
            let mut n: Vec<String> = p
                .reachable(target, &RolloutSet::default())
                .iter()
                .map(|m| m.spec.name.clone())
                .collect();
            n.sort();
            n
        };
        let small = Target::Model(p.models["small"].clone());
        assert_eq!(names(&small), ["dear", "small"]);
        let route = Target::Route {
            route: &p.routes["auto"],
            policy: Policy::Balanced,
        };
        assert_eq!(names(&route), ["dear", "ruled", "small"]);
    }

    #[test]
    fn refuses_n_out_of_range_bad_logprobs_and_out_of_range_sampling() {
        let req = |extra: &str| {
            parse_json::<ChatCompletionRequest>(
                format!(
                    r#"{{"model": "m", "messages": [{{"role": "user", "content": "x"}}]{extra}}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(
            validate_chat(&req(r#", "n": 9"#))
                .unwrap_err()
                .param
                .as_deref(),
            Some("n")
        );
        assert_eq!(
            validate_chat(&req(r#", "temperature": 3"#))
                .unwrap_err()
                .param
                .as_deref(),
            Some("temperature")
        );
        assert!(validate_chat(&req(r#", "n": 1"#)).is_ok());
        assert!(validate_chat(&req(r#", "n": 8"#)).is_ok());
        assert_eq!(
            validate_chat(&req(r#", "n": 0"#))
                .unwrap_err()
                .param
                .as_deref(),
            Some("n")
        );
        let param = |extra: &str| validate_chat(&req(extra)).unwrap_err().param;
        assert_eq!(param(r#", "logprobs": 1"#).as_deref(), Some("logprobs"));
        assert_eq!(
            param(r#", "logprobs": true, "top_logprobs": 21"#).as_deref(),
            Some("top_logprobs")
        );
        assert_eq!(
            param(r#", "top_logprobs": 2"#).as_deref(),
            Some("top_logprobs")
        );
        assert!(validate_chat(&req(r#", "logprobs": true, "top_logprobs": 2"#)).is_ok());
    }
}
