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
use switchyard_control::{Config, ModelSpec, ProviderSpec};
use switchyard_providers::{tokens, ChatProvider};
use switchyard_resilience::CircuitBreaker;

use crate::data_plane::arms::RolloutSet;
use crate::data_plane::cache::{cache_control, CacheOutcome, CacheStage};
use crate::data_plane::dispatch::{
    Deployment, Dispatcher, ModelRuntime, Served, Started, Weighted,
};
use crate::data_plane::flags::FlagSet;
use crate::data_plane::guards::{
    context_field_message, unmask_response, GuardStage, GuardVerdict, Masking,
};
use crate::data_plane::keys::{
    resolve_secret, worst_case, KeyState, Keyring, Periods, Reservation,
};
use crate::data_plane::live::Live;
use crate::data_plane::record::RecordGuard;
use crate::data_plane::routing::{header_policy, RouteRuntime};
use crate::data_plane::stream::StreamAnswer;
use crate::error::{ErrorKind, GatewayError};
use switchyard_cache::{CacheControl, HitKind};
use switchyard_control::{CachePolicySpec, OutputAction, Policy};
use switchyard_rollout::TargetKind;

pub struct Pipeline {
    pub config: Arc<Config>,
    /// The config version this pipeline was built from (`versions::version_id`).
    pub version: String,
    keyring: Keyring,
    models: HashMap<String, Arc<ModelRuntime>>,
    routes: HashMap<String, RouteRuntime>,
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
    #[error("routes.{route}: {source}")]
    Route {
        route: String,
        source: switchyard_route::RouteError,
    },
}

/// What a chat request produced, before it is framed for HTTP.
pub enum ChatOutcome {
    Complete(switchyard_api::ChatCompletionResponse),
    Stream(Box<crate::data_plane::stream::StreamAnswer>),
}

/// What a chat request's `model` names.
enum Target<'a> {
    Model(Arc<ModelRuntime>),
    Route {
        route: &'a RouteRuntime,
        policy: Policy,
    },
}

impl Pipeline {
    /// `env` reads environment variables (provider API keys, key secrets); `spent` reads a
    /// key's spend since a time from the store.
    pub fn build(
        config: Arc<Config>,
        env: &dyn Fn(&str) -> Option<String>,
        spent: &dyn Fn(&str, i64) -> u64,
        version: &str,
    ) -> Result<Self, BuildError> {
        // One connection pool per connect timeout: reqwest sets that timeout per client.
        let mut clients: HashMap<std::time::Duration, reqwest::Client> = HashMap::new();
        let mut providers: HashMap<&str, Arc<dyn ChatProvider>> = HashMap::new();
        for (name, spec) in &config.providers {
            let connect_timeout = match spec {
                ProviderSpec::OpenAi(o) => o.connect_timeout,
                ProviderSpec::Anthropic(a) => a.connect_timeout,
                ProviderSpec::Sim(_) => std::time::Duration::from_secs(5),
            };
            let http = match clients.get(&connect_timeout) {
                Some(c) => c.clone(),
                None => {
                    let c = switchyard_providers::http_client(connect_timeout)?;
                    clients.insert(connect_timeout, c.clone());
                    c
                }
            };
            providers.insert(name, switchyard_providers::build(name, spec, &http, env)?);
        }
        let now = tokio::time::Instant::now().into_std();
        let mut models = HashMap::new();
        // A deployment (provider and upstream model) used by several models is one object:
        // one breaker, one count of calls in flight, whichever alias reached it.
        let mut shared: HashMap<String, Arc<Deployment>> = HashMap::new();
        for (name, spec) in &config.models {
            let mut deployments = Vec::new();
            for d in &spec.deployments {
                let Some(provider) = providers.get(d.provider.as_str()) else {
                    continue;
                };
                let deployment = shared
                    .entry(d.label())
                    .or_insert_with(|| {
                        Arc::new(Deployment::new(
                            d.label(),
                            d.upstream_model.clone(),
                            provider.clone(),
                            CircuitBreaker::new(
                                config
                                    .breakers
                                    .get(&d.provider)
                                    .copied()
                                    .unwrap_or_default(),
                                now,
                            ),
                        ))
                    })
                    .clone();
                deployments.push(Weighted {
                    deployment,
                    weight: d.weight,
                });
            }
            models.insert(
                name.clone(),
                Arc::new(ModelRuntime {
                    spec: spec.clone(),
                    deployments,
                }),
            );
        }
        let periods = Periods::now();
        let mut keys = HashMap::new();
        for k in &config.keys {
            let hash = resolve_secret(&k.id, &k.secret, env)?;
            keys.insert(hash, Arc::new(KeyState::new(k, &periods, spent)));
        }
        let admin = match &config.admin {
            Some(a) => Some(resolve_secret("admin", &a.secret, env)?),
            None => None,
        };
        let mut deployments: Vec<Arc<Deployment>> = shared.into_values().collect();
        deployments.sort_by(|a, b| a.label.cmp(&b.label));
        let mut routes = HashMap::new();
        for (name, spec) in &config.routes {
            let runtime =
                RouteRuntime::build(spec, &config.models).map_err(|source| BuildError::Route {
                    route: name.clone(),
                    source,
                })?;
            routes.insert(name.clone(), runtime);
        }
        let mut static_models = crate::data_plane::cache::StaticModels::default();
        let cache = match &config.cache {
            Some(spec) => {
                let semantic = |p: &CachePolicySpec| p.enabled && p.semantic;
                let semantic_used =
                    semantic(&spec.defaults) || config.routes.values().any(|r| semantic(&r.cache));
                Some(CacheStage::build(spec, semantic_used, &mut static_models)?)
            }
            None => None,
        };
        let guards = GuardStage::build(&config.guards, env, &mut static_models)?;
        let mut guard_policies = HashMap::new();
        for (name, spec) in &config.guard_policies {
            guard_policies.insert(
                name.clone(),
                GuardStage::build(spec, env, &mut static_models)?,
            );
        }
        let content = match &config.telemetry.content {
            Some(spec) => Some(
                crate::data_plane::content::ContentStage::build(spec)
                    .map_err(BuildError::Content)?,
            ),
            None => None,
        };
        Ok(Pipeline {
            routes,
            cache,
            guards,
            guard_policies,
            deployments,
            content,
            dispatcher: Dispatcher::new(
                config.retry_budget.percent,
                config.retry_budget.min_per_sec,
            ),
            labels: Arc::new(crate::metrics::Labels::new(&config)),
            config,
            version: version.to_owned(),
            keyring: Keyring::new(keys, admin),
            models,
            created: switchyard_providers::unix_now(),
        })
    }

    /// `POST /v1/chat/completions`: authenticate, parse, admit, cache, route, dispatch, and
    /// store the answer for the next caller.
    pub async fn chat(
        &self,
        record: &mut RecordGuard,
        headers: &HeaderMap,
        body: &Bytes,
        live: &Live,
    ) -> Result<ChatOutcome, GatewayError> {
        let key = self.keyring.authenticate(headers)?;
        record.set_key(&key);
        let mut request: ChatCompletionRequest = parse_json(body)?;
        let user = crate::data_plane::flags::user_key(headers, &request, &key.id);
        // A stored prompt renders into the request before anything else reads it.
        if let Some((prompt, taken)) = live
            .prompts
            .render_into(&mut request, &live.rollouts, &user, &self.config.prompts)
            .await?
        {
            record.record().prompt = Some(prompt);
            if let Some(t) = taken {
                record.take_arm(t, live.stats.clone());
            }
        }
        let flags = &live.flags;
        validate_chat(&request)?;
        record.record().requested_model = Some(request.model.clone());
        record.record().stream = request.is_stream();
        let control = if flags.is_off(crate::data_plane::flags::CACHE, &user) {
            CacheControl::Bypass
        } else {
            cache_control(headers)?
        };
        let target = self.target_for(&key, &request.model, headers, flags, &user)?;
        if let Target::Route { route, .. } = &target {
            record.set_route(route.spec.name.clone());
        }
        let guards = self.guards_for(&key, &target, flags, &user);

        // Masking transforms the request, so everything after it (cache, router, provider,
        // classifying guards) sees placeholders, never the values.
        context_field_message(&mut request)?;
        let mut verdicts: Vec<GuardVerdict> = Vec::new();
        let masked = guards.mask(&mut request, &mut verdicts);
        record.set_guards(&verdicts);
        // What the model will be sent is what is stored, refused or not.
        if let Some(content) = &self.content {
            record.capture_content(content.capture(&request));
        }
        let masking = masked?;

        let scope = match &target {
            Target::Model(m) => m.spec.name.clone(),
            Target::Route { route, policy } => {
                record.set_baseline_price(route.baseline_price);
                format!("{}:{policy}", route.spec.name)
            }
        };
        // Admission reserves the request's worst case on every model it may reach (a retry,
        // a fallback or a rollout may land on any). For a key whose limits count tokens or
        // money, a request without an output cap gets the one reserved for, so the provider
        // cannot produce more; it is set before the cache, whose key then covers it.
        let reachable = self.reachable(&target, &live.rollouts);
        let default_cap = self.config.limits.default_max_output_tokens;
        if key.limits_output() && request.output_cap().is_none() {
            let cap = reachable
                .iter()
                .map(|m| m.spec.max_output_tokens.unwrap_or(default_cap))
                .min()
                .unwrap_or(default_cap);
            request.max_completion_tokens = Some(cap);
        }
        let answers = if request.is_stream() {
            1
        } else {
            1 + guards.regenerations()
        };
        let reservation = worst_case(
            tokens::prompt_bound(&request),
            request.output_cap(),
            reachable
                .iter()
                .map(|m| (m.spec.price, m.spec.max_output_tokens)),
            default_cap,
            answers,
        );
        admit(record, &key, reservation)?;
        let mut screen = guards.screen(&request);
        if guards.screens_first() {
            if let Some(s) = screen.take() {
                if let Some(early) = self
                    .settle(record, guards, s, &mut verdicts, &request)
                    .await?
                {
                    return Ok(early);
                }
            }
        }

        let mut fill = None;
        if let Some(cache) = &self.cache {
            let policy = match &target {
                Target::Route { route, .. } => route.spec.cache,
                Target::Model(_) => self.config.cache.as_ref().map_or(
                    CachePolicySpec {
                        enabled: false,
                        semantic: false,
                        threshold: 1.0,
                        ttl: std::time::Duration::from_secs(1),
                        allow_temperature: false,
                    },
                    |c| c.defaults,
                ),
            };
            let mut policy = policy;
            if flags.is_off(crate::data_plane::flags::SEMANTIC_CACHE, &user) {
                policy.semantic = false;
            }
            match cache.lookup(&key.tenant, &scope, &policy, control, &request) {
                CacheOutcome::Hit { response, kind } => {
                    // A hit skips the provider, not the screen.
                    if let Some(s) = screen {
                        let early = self.settle(record, guards, s, &mut verdicts, &request);
                        if let Some(early) = early.await? {
                            return Ok(early);
                        }
                    }
                    return Ok(self.answer_from_cache(record, &request, &response, kind, masking));
                }
                CacheOutcome::Miss {
                    label,
                    best_similarity,
                    fill: f,
                } => {
                    let r = record.record();
                    r.cache = Some(label.to_owned());
                    r.cache_similarity = best_similarity.map(f64::from);
                    fill = f;
                }
            }
        }

        let model = match target {
            Target::Model(m) => m,
            Target::Route { route, policy } => {
                let decision = route.decide(&request, &key.id, policy);
                {
                    use crate::metrics::{self as m, LabelValue};
                    let by = if decision.rule.is_some() {
                        "rule"
                    } else {
                        "classifier"
                    };
                    m::counter(
                        m::ROUTE_DECISIONS,
                        &[
                            ("route", self.labels.route(&route.spec.name)),
                            ("policy", LabelValue::policy(policy)),
                            ("model", self.labels.model(&decision.model)),
                            ("by", LabelValue::fixed(by)),
                        ],
                    )
                    .increment(1);
                }
                record.set_route_header(decision.header_value());
                record.record().route = serde_json::to_string(&decision).ok();
                self.models.get(&decision.model).cloned().ok_or_else(|| {
                    GatewayError::new(
                        ErrorKind::Internal,
                        "route_target_missing",
                        format!(
                            "route `{}` chose `{}`, which is not a model",
                            route.spec.name, decision.model
                        ),
                    )
                })?
            }
        };

        let model = match live
            .rollouts
            .take(TargetKind::Model, &model.spec.name, &user)
        {
            Some(taken) => {
                let chosen = match &taken.candidate {
                    Some(c) => self.models.get(c).cloned().ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::Internal,
                            "rollout_target_missing",
                            format!(
                                "rollout `{}` sends to `{c}`, which is not a model",
                                taken.rollout
                            ),
                        )
                    })?,
                    None => model,
                };
                record.take_arm(taken, live.stats.clone());
                chosen
            }
            None => model,
        };
        let chain = self.chain(&model);
        let call = self.dispatcher.chat(record, &chain, &request);
        let result = match screen {
            Some(screen) => {
                let (result, screened) = guards.alongside(call, screen).await;
                verdicts.extend(screened);
                result
            }
            None => call.await,
        };
        record.set_guards(&verdicts);
        if result.is_err() {
            if let Some(text) = guards.refusal_answer(&verdicts) {
                return Ok(self.answer_from_guard(record, &request, text));
            }
        }
        let (started, served) = result?;
        note_served(record, &served);
        let idle_timeout = served.model.spec.resilience.stream_idle_timeout;
        Ok(match started {
            Started::Complete(response) => {
                let mut response = complete(record, &request, &served, response, false);
                // Output guards: regenerate or replace an answer that fails them.
                let mut retries = guards.output_policy().retries;
                let mut passed = true;
                loop {
                    let mut failure = guards.review(&request, &mut response, &mut verdicts);
                    if failure.is_none() {
                        if let Some(judge) = guards.judge() {
                            failure = self
                                .judge(record, guards, judge, &request, &response, &mut verdicts)
                                .await?;
                        }
                    }
                    // What the model wrote: the last attempt, before any safe answer.
                    record.capture_answer(&response);
                    let Some((failed, action)) = failure else {
                        break;
                    };
                    if action == OutputAction::Retry && retries > 0 {
                        retries -= 1;
                        let corrected = guards.corrected(&request, &failed);
                        let (again, served) =
                            self.dispatcher.chat(record, &chain, &corrected).await?;
                        note_served(record, &served);
                        if let Started::Complete(r) = again {
                            response = complete(record, &corrected, &served, r, true);
                            continue;
                        }
                    }
                    guards.safe_answer(&mut response);
                    verdicts.push(GuardVerdict {
                        guard: "output",
                        outcome: "replaced",
                        score: None,
                        detail: format!("safe answer after {} failed", failed.guard),
                        ms: 0.0,
                        blocks: false,
                    });
                    passed = false;
                    break;
                }
                record.set_guards(&verdicts);
                // Stored masked (the values belong to this request only), and only answers
                // that passed every output guard.
                if let (Some(fill), true) = (fill, passed) {
                    fill.store(&request, response.clone());
                }
                if let Some(m) = &masking {
                    unmask_response(&mut response, m);
                }
                ChatOutcome::Complete(response)
            }
            Started::Stream { first, rest } => ChatOutcome::Stream(Box::new(StreamAnswer {
                first,
                rest,
                window: guards.stream_window(&request),
                request: Box::new(request),
                idle_timeout,
                fill,
                masking,
                verdicts,
            })),
        })
    }

    /// Waits for a screen with no call beside it (a cache hit, or `screen = "first"`): its
    /// refusal as an answer or an error, else `None` to go on.
    async fn settle(
        &self,
        record: &mut RecordGuard,
        guards: &GuardStage,
        screen: crate::data_plane::guards::Screen,
        verdicts: &mut Vec<GuardVerdict>,
        request: &ChatCompletionRequest,
    ) -> Result<Option<ChatOutcome>, GatewayError> {
        verdicts.extend(guards.settle(screen).await);
        record.set_guards(verdicts);
        if let Some(text) = guards.refusal_answer(verdicts) {
            return Ok(Some(self.answer_from_guard(record, request, text)));
        }
        match verdicts.iter().find(|v| v.blocks) {
            Some(refusing) => Err(refusing.refusal()),
            None => Ok(None),
        }
    }

    /// Asks the judge model about an answer. Its cost is added to the request's; a judge that
    /// fails to answer fails the check only when the guard blocks on errors (it does not: an
    /// unreachable judge is recorded as an error and the answer passes).
    async fn judge(
        &self,
        record: &mut RecordGuard,
        guards: &GuardStage,
        judge: &switchyard_control::JudgeGuardSpec,
        request: &ChatCompletionRequest,
        response: &switchyard_api::ChatCompletionResponse,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Result<Option<(GuardVerdict, OutputAction)>, GatewayError> {
        let started = std::time::Instant::now();
        let prompt = guards.judge_prompt(judge, request, &response.text())?;
        let Some(model) = self.models.get(&judge.model).cloned() else {
            return Ok(None);
        };
        let ask: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": judge.model,
            "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        }))
        .map_err(|e| GatewayError::new(ErrorKind::Internal, "judge_request", e.to_string()))?;
        let chain = self.chain(&model);
        let answer =
            match self.dispatcher.chat(record, &chain, &ask).await {
                Ok((Started::Complete(r), served)) => {
                    if let Some(u) = &r.usage {
                        record.add_cost(served.model.spec.price.cost_nanos(
                            u64::from(u.prompt_tokens),
                            u64::from(u.completion_tokens),
                        ));
                    }
                    Some(r.text())
                }
                _ => None,
            };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let (outcome, failure) = match &answer {
            None => ("error", false),
            Some(text) if judge.unsafe_pattern.is_match(text) => {
                if judge.action == OutputAction::Flag {
                    ("flagged", false)
                } else {
                    ("failed", true)
                }
            }
            Some(_) => ("pass", false),
        };
        let detail: String = answer
            .as_deref()
            .unwrap_or("the judge did not answer")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        let verdict = GuardVerdict {
            guard: "judge",
            outcome,
            score: None,
            detail,
            ms,
            blocks: false,
        };
        verdicts.push(verdict.clone());
        Ok(failure.then_some((verdict, judge.action)))
    }

    /// A cached answer, as JSON or replayed as a stream, recorded as free with what it saved.
    fn answer_from_cache(
        &self,
        record: &mut RecordGuard,
        request: &ChatCompletionRequest,
        cached: &switchyard_api::ChatCompletionResponse,
        kind: HitKind,
        masking: Option<Masking>,
    ) -> ChatOutcome {
        let mut response = cached.clone();
        // A fresh identity: clients that de-duplicate by id must not see two answers as one.
        response.id = format!("chatcmpl-{}", record.record_ref().request_id);
        response.created = switchyard_providers::unix_now();
        if let Some(spec) = self.models.get(&response.model).map(|m| &m.spec) {
            record.set_price(spec.price);
        }
        record.set_from_cache();
        let usage = response.usage.clone().unwrap_or_default();
        let r = record.record();
        r.model = Some(response.model.clone());
        r.deployment = Some("cache".to_owned());
        r.prompt_tokens = usage.prompt_tokens;
        r.completion_tokens = usage.completion_tokens;
        match kind {
            HitKind::Exact => r.cache = Some("hit-exact".to_owned()),
            HitKind::Semantic { similarity } => {
                r.cache = Some("hit-semantic".to_owned());
                r.cache_similarity = Some(f64::from(similarity));
            }
        }
        // As cached: with placeholders, not this request's values.
        record.capture_answer(&response);
        if let Some(m) = &masking {
            unmask_response(&mut response, m);
        }
        // Unmasked already: the stream restores nothing more.
        Self::outcome_of(request, response, None)
    }

    /// A guard's refusal as the answer (the topic filter's polite one): no provider was paid.
    fn answer_from_guard(
        &self,
        record: &mut RecordGuard,
        request: &ChatCompletionRequest,
        text: &str,
    ) -> ChatOutcome {
        let r = record.record();
        r.deployment = Some("guard".to_owned());
        let response = switchyard_api::ChatCompletionResponse {
            id: format!("chatcmpl-{}", r.request_id),
            object: "chat.completion".to_owned(),
            created: switchyard_providers::unix_now(),
            model: request.model.clone(),
            choices: vec![switchyard_api::Choice {
                index: 0,
                message: switchyard_api::ChatMessage::new(switchyard_api::Role::Assistant, text),
                finish_reason: Some(switchyard_api::finish_reason::STOP.to_owned()),
                logprobs: None,
            }],
            usage: Some(switchyard_api::Usage::default()),
            system_fingerprint: None,
            extra: Default::default(),
        };
        Self::outcome_of(request, response, None)
    }

    /// An answer the gateway has whole, framed as the request asked: one body, or a stream.
    fn outcome_of(
        request: &ChatCompletionRequest,
        response: switchyard_api::ChatCompletionResponse,
        masking: Option<Masking>,
    ) -> ChatOutcome {
        if !request.is_stream() {
            return ChatOutcome::Complete(response);
        }
        let mut chunks = switchyard_cache::replay_chunks(&response, true).into_iter();
        // A stream must start with a chunk; a cached answer with no choices still gets one.
        let first = chunks.next().unwrap_or_else(|| {
            crate::data_plane::stream::gateway_chunk(&response.model, Vec::new())
        });
        ChatOutcome::Stream(Box::new(StreamAnswer {
            first,
            rest: Box::pin(futures::stream::iter(chunks.map(Ok))),
            request: Box::new(request.clone()),
            idle_timeout: std::time::Duration::from_secs(60),
            fill: None,
            masking,
            // A cached answer passed the output guards when it was stored.
            window: None,
            verdicts: Vec::new(),
        }))
    }

    /// `POST /v1/embeddings`.
    pub async fn embed(
        &self,
        record: &mut RecordGuard,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<EmbeddingsResponse, GatewayError> {
        let key = self.keyring.authenticate(headers)?;
        record.set_key(&key);
        let request: EmbeddingsRequest = parse_json(body)?;
        record.record().requested_model = Some(request.model.clone());
        let model = self.model_for(&key, &request.model)?;
        // No token is shorter than a byte: the inputs' bytes bound their tokens.
        let bound: u64 = request.input.texts().iter().map(|t| t.len() as u64).sum();
        let reservation = Reservation {
            tokens: u32::try_from(bound).unwrap_or(u32::MAX),
            cost_nanos: model.spec.price.cost_nanos(bound, 0),
        };
        admit(record, &key, reservation)?;
        let chain = self.chain(&model);
        let (mut response, served) = self
            .dispatcher
            .run(record, &chain, |deployment: &Deployment| {
                let mut attempt = request.clone();
                attempt.model.clone_from(&deployment.upstream_model);
                let provider = deployment.provider.clone();
                async move { provider.embed(attempt).await }
            })
            .await?;
        note_served(record, &served);
        response.model.clone_from(&served.model.spec.name);
        record.record().prompt_tokens = response.usage.prompt_tokens;
        Ok(response)
    }

    /// The key a request presents (for endpoints outside the model pipeline).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyState>, GatewayError> {
        self.keyring.authenticate(headers)
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

    /// The cache stage, for metrics and upkeep.
    pub fn cache(&self) -> Option<&CacheStage> {
        self.cache.as_ref()
    }

    /// The route named `name`, for `switchyard route explain`.
    pub fn route(&self, name: &str) -> Option<&RouteRuntime> {
        self.routes.get(name)
    }

    pub fn routes(&self) -> impl Iterator<Item = (&String, &RouteRuntime)> {
        self.routes.iter()
    }

    /// The key's guard policy, else the route's, else `[guards]`.
    fn guards_for(
        &self,
        key: &KeyState,
        target: &Target<'_>,
        flags: &FlagSet,
        user: &str,
    ) -> &GuardStage {
        if let Some(name) = flags.variant(crate::data_plane::flags::GUARD_POLICY, user) {
            if name == "default" {
                return &self.guards;
            }
            if let Some(stage) = self.guard_policies.get(&name) {
                return stage;
            }
        }
        let route_policy = match target {
            Target::Route { route, .. } => route.spec.guard_policy.as_deref(),
            Target::Model(_) => None,
        };
        key.guard_policy
            .as_deref()
            .or(route_policy)
            .and_then(|name| self.guard_policies.get(name))
            .unwrap_or(&self.guards)
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

    /// A model by name, else a route alias with an optional `:policy` suffix.
    fn target_for(
        &self,
        key: &KeyState,
        name: &str,
        headers: &HeaderMap,
        flags: &FlagSet,
        user: &str,
    ) -> Result<Target<'_>, GatewayError> {
        if self.models.contains_key(name) {
            return self.model_for(key, name).map(Target::Model);
        }
        let (alias, suffix) = match Policy::split_model(name) {
            Ok(split) => split,
            Err(e) => return Err(GatewayError::invalid(Some("model"), e.to_string())),
        };
        let Some(route) = self.routes.get(alias) else {
            return self.model_for(key, name).map(Target::Model);
        };
        if !key.models.allows(alias) {
            let mut e = GatewayError::new(
                ErrorKind::Forbidden,
                "model_not_allowed",
                format!("key `{}` may not use model `{alias}`", key.id),
            );
            e.param = Some("model".into());
            return Err(e);
        }
        let flagged = || {
            flags
                .variant(&crate::data_plane::flags::route_policy(alias), user)
                .and_then(|v| v.parse::<Policy>().ok())
        };
        let policy = match suffix {
            Some(p) => p,
            None => header_policy(headers)?
                .or(key.route_policy)
                .or_else(flagged)
                .unwrap_or(route.spec.default_policy),
        };
        Ok(Target::Route { route, policy })
    }

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
                .spec
                .candidates
                .iter()
                .map(|c| c.model.as_str())
                .chain(route.spec.rules.iter().map(|r| r.model.as_str()))
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

/// A whole answer as the client gets it: the gateway's model name, usage (counted when the
/// upstream gave none), and its tokens in the record (added to earlier attempts' on a retry).
fn complete(
    record: &mut RecordGuard,
    request: &ChatCompletionRequest,
    served: &Served,
    mut response: switchyard_api::ChatCompletionResponse,
    add: bool,
) -> switchyard_api::ChatCompletionResponse {
    response.model.clone_from(&served.model.spec.name);
    if response.usage.is_none() {
        record.record().usage_counted = true;
        response.usage = Some(switchyard_api::Usage::new(
            tokens::count_messages(&request.messages),
            tokens::count_text(&response_text(&response)),
        ));
    }
    let usage = response.usage.clone().unwrap_or_default();
    let r = record.record();
    if add {
        r.prompt_tokens += usage.prompt_tokens;
        r.completion_tokens += usage.completion_tokens;
    } else {
        r.prompt_tokens = usage.prompt_tokens;
        r.completion_tokens = usage.completion_tokens;
    }
    response
}

/// Reserves `reservation` against the key's limits; the limits' state goes to the record for
/// the answer's `x-ratelimit-*` headers, admitted or not.
fn admit(
    record: &mut RecordGuard,
    key: &Arc<KeyState>,
    reservation: Reservation,
) -> Result<(), GatewayError> {
    match key.admit(reservation) {
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

fn note_served(record: &mut RecordGuard, served: &Served) {
    record.set_price(served.model.spec.price);
    let r = record.record();
    r.model = Some(served.model.spec.name.clone());
    r.deployment = Some(served.deployment.label.clone());
    r.fallback_from.clone_from(&served.fallback_from);
}

fn response_text(response: &switchyard_api::ChatCompletionResponse) -> String {
    response
        .choices
        .iter()
        .map(|c| {
            let calls: String = c
                .message
                .tool_calls
                .iter()
                .flatten()
                .map(|t| format!("{}{}", t.function.name, t.function.arguments))
                .collect();
            c.message.text() + &calls
        })
        .collect()
}

/// Parses a JSON body: one JSON value and nothing after it but whitespace. The error names
/// the field that failed (`param`) where serde knows it, and is `None` where it does not.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
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
        if n != 1 {
            return Err(GatewayError::invalid(
                Some("n"),
                format!(
                    "only n=1 is supported (got n={n}); send separate requests for more choices"
                ),
            ));
        }
    }
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
        let p = Pipeline::build(Arc::new(config), &|_| None, &|_, _| 0, "v").unwrap();
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
    fn refuses_n_above_one_and_out_of_range_sampling() {
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
            validate_chat(&req(r#", "n": 2"#))
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
    }
}
