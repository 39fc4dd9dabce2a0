//! `POST /v1/chat/completions`, stage by stage. [`Pipeline::chat`] is the list of stages;
//! each one goes on or answers now (a guard's refusal written as an answer, a cache hit), and
//! fills its part of the record through [`RecordGuard`]'s methods.

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use opentelemetry::KeyValue;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
use switchyard_cache::{CacheControl, HitKind};
use switchyard_control::{CachePolicySpec, JudgeGuardSpec, OutputAction, Policy};
use switchyard_providers::tokens;
use switchyard_rollout::TargetKind;

use super::{admit, note_served, validate_chat, Caller, ChatOutcome, Pipeline, Target};
use crate::data_plane::admission::{class_of, shed_by_flag};
use crate::data_plane::cache::{cache_control, CacheFill, CacheOutcome};
use crate::data_plane::dispatch::{ModelRuntime, Served, Started};
use crate::data_plane::flags::{self, FlagSet};
use crate::data_plane::guards::{
    context_field_message, refusal, unmask_response, GuardStage, GuardVerdict, Masking, Outcome,
    Screen,
};
use crate::data_plane::keys::worst_case;
use crate::data_plane::live::Live;
use crate::data_plane::record::RecordGuard;
use crate::data_plane::routing::{header_policy, Route};
use crate::data_plane::stream::{gateway_chunk, StreamAnswer};
use crate::data_plane::trace::strings;
use crate::error::{ErrorKind, GatewayError};

/// A stage's result: go on (with what the stage found), or answer now.
type Stage<T = ()> = Result<ControlFlow<ChatOutcome, T>, GatewayError>;

/// The cache policy of a model named directly when the config has no `[cache]`.
const NO_CACHE: CachePolicySpec = CachePolicySpec {
    enabled: false,
    semantic: false,
    threshold: 1.0,
    ttl: std::time::Duration::from_secs(1),
    allow_temperature: false,
};

/// What a chat request carries from stage to stage.
struct ChatContext<'a> {
    caller: Caller<'a>,
    live: &'a Live,
    request: ChatCompletionRequest,
    target: Target<'a>,
    guards: &'a GuardStage,
    /// The cache scope: the model, or the route and its policy.
    scope: String,
    cache_control: CacheControl,
    verdicts: Vec<GuardVerdict>,
    masking: Option<Masking>,
    /// The classifying input guards, running until the call needs their verdict.
    screen: Option<Screen>,
    /// When the screen started, when the request is traced.
    screen_since: Option<std::time::SystemTime>,
    /// Where a cache miss's answer is stored.
    fill: Option<CacheFill>,
}

impl Pipeline {
    /// `POST /v1/chat/completions` for a caller already authenticated: its stages, in order.
    pub async fn chat(
        &self,
        record: &mut RecordGuard,
        caller: Caller<'_>,
        request: ChatCompletionRequest,
        live: &Live,
    ) -> Result<ChatOutcome, GatewayError> {
        let mut cx = self.context(record, caller, request, live).await?;
        self.mask(record, &mut cx)?;
        self.admit_worst_case(record, &mut cx).await?;
        if let Break(answer) = self.screen_first(record, &mut cx).await? {
            return Ok(answer);
        }
        if let Break(answer) = self.look_up_cache(record, &mut cx).await? {
            return Ok(answer);
        }
        let chain = self.choose_model(record, &cx);
        let (started, served) = match self.call(record, &mut cx, &chain).await? {
            Continue(called) => called,
            Break(answer) => return Ok(answer),
        };
        self.deliver(record, cx, &chain, started, served).await
    }

    /// The request made ready: a stored prompt rendered in (its rollout arm taken), checked,
    /// and what it names resolved: the target, its guards, its cache scope.
    async fn context<'a>(
        &'a self,
        record: &mut RecordGuard,
        caller: Caller<'a>,
        mut request: ChatCompletionRequest,
        live: &'a Live,
    ) -> Result<ChatContext<'a>, GatewayError> {
        let class = class_of(caller.headers, &caller.key.priority)?;
        record.set_priority(class);
        // An SLO's page (or an operator) may shed the lowest classes for a while.
        let shed = live
            .flags
            .variant(flags::SHED, &caller.user)
            .and_then(|v| v.parse::<switchyard_admission::Class>().ok());
        if let Some(shed) = shed.filter(|shed| class <= *shed) {
            return Err(shed_by_flag(class, shed));
        }
        // A stored prompt renders into the request before anything else reads it.
        let rendered = live
            .prompts
            .render_into(
                &mut request,
                &live.rollouts,
                &caller.user,
                &self.config.prompts,
            )
            .await?;
        if let Some((prompt, taken)) = rendered {
            record.set_prompt(prompt);
            if let Some(t) = taken {
                record.take_arm(t, live.stats.clone());
            }
        }
        validate_chat(&request)?;
        record.set_request(&request.model, request.is_stream());
        record.trace_request(&request);
        let cache_control = if live.flags.is_off(flags::CACHE, &caller.user) {
            CacheControl::Bypass
        } else {
            cache_control(caller.headers)?
        };
        let target = self.target_for(&caller, &request.model, &live.flags)?;
        let scope = match &target {
            Target::Model(m) => m.spec.name.clone(),
            Target::Route { route, policy } => {
                record.set_route(route.runtime.spec.name.clone());
                record.set_baseline_price(route.runtime.baseline_price);
                format!("{}:{policy}", route.runtime.spec.name)
            }
        };
        let guards = self.guards_for(&caller, &target, &live.flags);
        Ok(ChatContext {
            caller,
            live,
            request,
            target,
            guards,
            scope,
            cache_control,
            verdicts: Vec::new(),
            masking: None,
            screen: None,
            screen_since: None,
            fill: None,
        })
    }

    /// Masking transforms the request, so everything after it (cache, router, provider,
    /// classifying guards) sees placeholders, never the values. What the model will be sent
    /// is what is stored, refused or not.
    fn mask(&self, record: &mut RecordGuard, cx: &mut ChatContext<'_>) -> Result<(), GatewayError> {
        context_field_message(&mut cx.request)?;
        let since = record.stage_clock();
        let masked = cx.guards.mask(&mut cx.request, &mut cx.verdicts);
        record.set_guards(&cx.verdicts);
        if !cx.verdicts.is_empty() {
            record.trace_stage("switchyard.guard.mask", since, || {
                guard_attributes(&cx.verdicts)
            });
        }
        if let Some(content) = &self.content {
            record.capture_content(content.capture(&cx.request));
        }
        cx.masking = masked?;
        Ok(())
    }

    /// Admission reserves the request's worst case on every model it may reach (a retry, a
    /// fallback or a rollout may land on any). For a key whose limits count tokens or money,
    /// a request without an output cap gets the one reserved for, so the provider cannot
    /// produce more; it is set before the cache, whose key then covers it.
    async fn admit_worst_case(
        &self,
        record: &mut RecordGuard,
        cx: &mut ChatContext<'_>,
    ) -> Result<(), GatewayError> {
        let reachable = self.reachable(&cx.target, &cx.live.rollouts);
        let default_cap = self.config.limits.default_max_output_tokens;
        let request = &mut cx.request;
        if cx.caller.key.limits_output() && request.output_cap().is_none() {
            let cap = reachable
                .iter()
                .map(|m| m.spec.max_output_tokens.unwrap_or(default_cap))
                .min()
                .unwrap_or(default_cap);
            request.max_completion_tokens = Some(cap);
        }
        // Every choice of `n` is a completion paid for (a fan-out pays the prompt each time
        // too), and each regeneration asks for all `n` again.
        let attempts = if request.is_stream() {
            1
        } else {
            1 + cx.guards.regenerations()
        };
        let answers = attempts.saturating_mul(request.choices());
        // What it holds of a deployment's capacity: the prompt's bound and the output cap (or
        // the least of the reachable models' maximum output).
        let output = request.output_cap().unwrap_or_else(|| {
            reachable
                .iter()
                .map(|m| m.spec.max_output_tokens.unwrap_or(default_cap))
                .min()
                .unwrap_or(default_cap)
        });
        let prompt = tokens::prompt_bound(request);
        let outputs = u64::from(output).saturating_mul(u64::from(request.choices()));
        record.set_capacity_tokens(u64::from(prompt).saturating_add(outputs));
        let reservation = worst_case(
            prompt,
            request.output_cap(),
            reachable
                .iter()
                .map(|m| (m.spec.price, m.spec.max_output_tokens)),
            default_cap,
            answers,
        );
        admit(record, &cx.caller.key, reservation).await
    }

    /// Starts the classifying input guards; with `screen = "first"` waits for their verdict
    /// before anything is spent.
    async fn screen_first(&self, record: &mut RecordGuard, cx: &mut ChatContext<'_>) -> Stage {
        cx.screen = cx.guards.screen(&cx.request);
        cx.screen_since = cx.screen.as_ref().and_then(|_| record.stage_clock());
        if !cx.guards.screens_first() {
            return Ok(Continue(()));
        }
        match cx.screen.take() {
            Some(screen) => self.settle(record, cx, screen).await,
            None => Ok(Continue(())),
        }
    }

    /// Waits for a screen with no call beside it (a cache hit, or `screen = "first"`): its
    /// refusal as an answer or an error, else go on.
    async fn settle(
        &self,
        record: &mut RecordGuard,
        cx: &mut ChatContext<'_>,
        screen: Screen,
    ) -> Stage {
        let before = cx.verdicts.len();
        cx.verdicts.extend(cx.guards.settle(screen).await);
        record.set_guards(&cx.verdicts);
        trace_screen(record, cx, before);
        if let Some(text) = cx.guards.refusal_answer(&cx.verdicts) {
            return Ok(Break(self.answer_from_guard(record, &cx.request, text)));
        }
        match cx.verdicts.iter().find(|v| v.blocks) {
            Some(refusing) => Err(refusal(refusing)),
            None => Ok(Continue(())),
        }
    }

    /// The cache: a hit answers (once the screen, which a hit does not skip, let it); a miss
    /// keeps where to store the answer.
    async fn look_up_cache(&self, record: &mut RecordGuard, cx: &mut ChatContext<'_>) -> Stage {
        let Some(cache) = &self.cache else {
            return Ok(Continue(()));
        };
        let mut policy = match &cx.target {
            Target::Route { route, .. } => route.runtime.spec.cache,
            Target::Model(_) => self.config.cache.as_ref().map_or(NO_CACHE, |c| c.defaults),
        };
        if cx.live.flags.is_off(flags::SEMANTIC_CACHE, &cx.caller.user) {
            policy.semantic = false;
        }
        let tenant = &cx.caller.key.tenant;
        let since = record.stage_clock();
        let outcome = cache
            .lookup(tenant, &cx.scope, &policy, cx.cache_control, &cx.request)
            .finish()
            .await;
        match outcome {
            CacheOutcome::Hit {
                response,
                kind,
                slot,
            } => {
                record.trace_stage("switchyard.cache.lookup", since, || cache_attributes(kind));
                if let Some(slot) = slot {
                    cache.served(record.request_id(), slot);
                }
                if let Some(screen) = cx.screen.take() {
                    if let Break(answer) = self.settle(record, cx, screen).await? {
                        return Ok(Break(answer));
                    }
                }
                let masking = cx.masking.take();
                let answer = self.answer_from_cache(record, &cx.request, &response, kind, masking);
                Ok(Break(answer))
            }
            CacheOutcome::Miss {
                label,
                best_similarity,
                fill,
            } => {
                record.set_cache_miss(label, best_similarity);
                record.trace_stage("switchyard.cache.lookup", since, || {
                    let mut a = vec![KeyValue::new("switchyard.cache.outcome", label)];
                    if let Some(s) = best_similarity {
                        a.push(KeyValue::new("switchyard.cache.similarity", f64::from(s)));
                    }
                    a
                });
                cx.fill = fill;
                Ok(Continue(()))
            }
        }
    }

    /// The model that answers, with its fallbacks: the router's choice for a route, then a
    /// model rollout's arm.
    fn choose_model(
        &self,
        record: &mut RecordGuard,
        cx: &ChatContext<'_>,
    ) -> Vec<Arc<ModelRuntime>> {
        let model = match &cx.target {
            Target::Model(m) => m.clone(),
            Target::Route { route, policy } => {
                self.decide(record, route, *policy, &cx.request, &cx.caller.key.id)
            }
        };
        let user = &cx.caller.user;
        let rollouts = &cx.live.rollouts;
        let Some(taken) = rollouts.take(TargetKind::Model, &model.spec.name, user) else {
            return self.chain(&model);
        };
        let chosen = match &taken.candidate {
            None => model,
            Some(candidate) => match self.models.get(candidate) {
                Some(c) => c.clone(),
                // A config without the candidate is refused while the rollout is in force
                // (`versions::ApplyError::RolloutTarget`); one applied elsewhere in the
                // meantime serves the baseline, outside the arm, rather than fail.
                None => return self.chain(&model),
            },
        };
        record.take_arm(taken, cx.live.stats.clone());
        self.chain(&chosen)
    }

    /// The router's decision for a route, counted and recorded, as the model it chose.
    fn decide(
        &self,
        record: &mut RecordGuard,
        route: &Route,
        policy: Policy,
        request: &ChatCompletionRequest,
        key_id: &str,
    ) -> Arc<ModelRuntime> {
        use crate::metrics::{self as m, LabelValue};
        let since = record.stage_clock();
        let decision = route.runtime.decide(request, key_id, policy);
        let by = if decision.rule.is_some() {
            "rule"
        } else {
            "classifier"
        };
        m::counter(
            m::ROUTE_DECISIONS,
            &[
                ("route", self.labels.route(&route.runtime.spec.name)),
                ("policy", LabelValue::policy(policy)),
                ("model", self.labels.model(&decision.model)),
                ("by", LabelValue::fixed(by)),
            ],
        )
        .increment(1);
        record.set_route_decision(
            decision.header_value(),
            serde_json::to_string(&decision).ok(),
        );
        record.trace_stage("switchyard.route", since, || {
            vec![
                KeyValue::new("switchyard.route.name", route.runtime.spec.name.clone()),
                KeyValue::new("switchyard.route.policy", policy.to_string()),
                KeyValue::new("switchyard.route.model", decision.model.clone()),
                KeyValue::new("switchyard.route.by", by),
            ]
        });
        route.target(decision.chosen).clone()
    }

    /// The provider call, with the screen running alongside: when the call fails and the
    /// screen refused with an answer of its own, that answer is given.
    async fn call(
        &self,
        record: &mut RecordGuard,
        cx: &mut ChatContext<'_>,
        chain: &[Arc<ModelRuntime>],
    ) -> Stage<(Started, Served)> {
        let call = self.dispatcher.chat(record, chain, &cx.request);
        let result = match cx.screen.take() {
            Some(screen) => {
                let before = cx.verdicts.len();
                let (result, screened) = cx.guards.alongside(call, screen).await;
                cx.verdicts.extend(screened);
                trace_screen(record, cx, before);
                result
            }
            None => call.await,
        };
        record.set_guards(&cx.verdicts);
        if result.is_err() {
            if let Some(text) = cx.guards.refusal_answer(&cx.verdicts) {
                return Ok(Break(self.answer_from_guard(record, &cx.request, text)));
            }
        }
        Ok(Continue(result?))
    }

    /// The answer: a whole one through the output guards, stored in the cache when it passed
    /// them, values put back; a stream with the output guards' window over it.
    async fn deliver(
        &self,
        record: &mut RecordGuard,
        mut cx: ChatContext<'_>,
        chain: &[Arc<ModelRuntime>],
        started: Started,
        mut served: Served,
    ) -> Result<ChatOutcome, GatewayError> {
        note_served(record, &served);
        let idle_timeout = served.model.spec.resilience.stream_idle_timeout;
        match started {
            Started::Complete(response) => {
                let response = complete(record, &cx.request, &served, response, false);
                let (mut response, passed) = self.review(record, &mut cx, chain, response).await?;
                // Stored masked (the values belong to this request only), and only answers
                // that passed every output guard.
                if let (Some(fill), true) = (cx.fill, passed) {
                    fill.store(&cx.request, response.clone());
                }
                if let Some(m) = &cx.masking {
                    unmask_response(&mut response, m);
                }
                Ok(ChatOutcome::Complete(response))
            }
            Started::Stream { first, rest } => Ok(ChatOutcome::Stream(Box::new(StreamAnswer {
                first,
                rest,
                windows: (0..cx.request.choices())
                    .filter_map(|_| cx.guards.stream_window(&cx.request))
                    .collect(),
                request: Box::new(cx.request),
                idle_timeout,
                fill: cx.fill,
                masking: cx.masking,
                verdicts: cx.verdicts,
                slot: served.slot.take(),
            }))),
        }
    }

    /// The output guards over a whole answer: one that fails them is regenerated while
    /// retries are left (`action = "retry"`), else replaced by the safe answer. Returns the
    /// answer and whether it passed.
    async fn review(
        &self,
        record: &mut RecordGuard,
        cx: &mut ChatContext<'_>,
        chain: &[Arc<ModelRuntime>],
        mut response: ChatCompletionResponse,
    ) -> Result<(ChatCompletionResponse, bool), GatewayError> {
        let guards = cx.guards;
        let mut retries = guards.output_policy().retries;
        loop {
            let since = record.stage_clock();
            let before = cx.verdicts.len();
            let mut failure = guards.review(&cx.request, &mut response, &mut cx.verdicts);
            if failure.is_none() {
                if let Some(judge) = guards.judge() {
                    failure = self
                        .judge(
                            record,
                            guards,
                            judge,
                            &cx.request,
                            &response,
                            &mut cx.verdicts,
                        )
                        .await?;
                }
            }
            // What the model wrote: the last attempt, before any safe answer.
            record.capture_answer(&response);
            if cx.verdicts.len() > before {
                record.trace_stage("switchyard.guard.output", since, || {
                    guard_attributes(&cx.verdicts[before..])
                });
            }
            let Some((failed, action)) = failure else {
                record.set_guards(&cx.verdicts);
                return Ok((response, true));
            };
            if action == OutputAction::Retry && retries > 0 {
                retries -= 1;
                let corrected = guards.corrected(&cx.request, &failed);
                let (again, served) = self.dispatcher.chat(record, chain, &corrected).await?;
                note_served(record, &served);
                if let Started::Complete(r) = again {
                    response = complete(record, &corrected, &served, r, true);
                    continue;
                }
            }
            guards.safe_answer(&mut response);
            cx.verdicts.push(GuardVerdict {
                guard: "output",
                outcome: Outcome::Replaced,
                score: None,
                detail: format!("safe answer after {} failed", failed.guard),
                ms: 0.0,
                blocks: false,
            });
            record.set_guards(&cx.verdicts);
            return Ok((response, false));
        }
    }

    /// Asks the judge model about an answer. Its cost is added to the request's; a judge that
    /// fails to answer fails the check only when the guard blocks on errors (it does not: an
    /// unreachable judge is recorded as an error and the answer passes).
    async fn judge(
        &self,
        record: &mut RecordGuard,
        guards: &GuardStage,
        judge: &JudgeGuardSpec,
        request: &ChatCompletionRequest,
        response: &ChatCompletionResponse,
        verdicts: &mut Vec<GuardVerdict>,
    ) -> Result<Option<(GuardVerdict, OutputAction)>, GatewayError> {
        let started = std::time::Instant::now();
        // Every choice is an answer the client reads: the judge reads them all.
        let texts: Vec<String> = response.choices.iter().map(|c| c.message.text()).collect();
        let prompt = guards.judge_prompt(judge, request, &texts.join("\n\n"))?;
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
            None => (Outcome::Error, false),
            Some(text) if judge.unsafe_pattern.is_match(text) => {
                if judge.action == OutputAction::Flag {
                    (Outcome::Flagged, false)
                } else {
                    (Outcome::Failed, true)
                }
            }
            Some(_) => (Outcome::Pass, false),
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
        cached: &ChatCompletionResponse,
        kind: HitKind,
        masking: Option<Masking>,
    ) -> ChatOutcome {
        let mut response = cached.clone();
        // A fresh identity: clients that de-duplicate by id must not see two answers as one.
        response.id = format!("chatcmpl-{}", record.request_id());
        response.created = switchyard_providers::unix_now();
        if let Some(spec) = self.models.get(&response.model).map(|m| &m.spec) {
            record.set_price(spec.price);
        }
        let usage = response.usage.clone().unwrap_or_default();
        record.set_cache_hit(kind);
        record.set_served(&response.model, "cache", None);
        record.set_usage(usage.prompt_tokens, usage.completion_tokens, false);
        record.trace_answer(&response);
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
        record.set_served_by_guard();
        let response = ChatCompletionResponse {
            id: format!("chatcmpl-{}", record.request_id()),
            object: "chat.completion".to_owned(),
            created: switchyard_providers::unix_now(),
            model: request.model.clone(),
            choices: vec![switchyard_api::Choice {
                index: 0,
                message: switchyard_api::ChatMessage::new(switchyard_api::Role::Assistant, text),
                finish_reason: Some(switchyard_api::finish_reason::STOP.to_owned()),
                logprobs: None,
                stop_reason: None,
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
        response: ChatCompletionResponse,
        masking: Option<Masking>,
    ) -> ChatOutcome {
        if !request.is_stream() {
            return ChatOutcome::Complete(response);
        }
        let mut chunks = switchyard_cache::replay_chunks(&response, true).into_iter();
        // A stream must start with a chunk; a cached answer with no choices still gets one.
        let first = chunks
            .next()
            .unwrap_or_else(|| gateway_chunk(&response.model, Vec::new()));
        ChatOutcome::Stream(Box::new(StreamAnswer {
            first,
            rest: Box::pin(futures::stream::iter(chunks.map(Ok))),
            request: Box::new(request.clone()),
            idle_timeout: std::time::Duration::from_secs(60),
            fill: None,
            masking,
            // A cached answer passed the output guards when it was stored.
            windows: Vec::new(),
            verdicts: Vec::new(),
            slot: None,
        }))
    }

    /// The key's guard policy, else the route's, else `[guards]`.
    fn guards_for(&self, caller: &Caller<'_>, target: &Target<'_>, flags: &FlagSet) -> &GuardStage {
        if let Some(name) = flags.variant(flags::GUARD_POLICY, &caller.user) {
            if name == "default" {
                return &self.guards;
            }
            if let Some(stage) = self.guard_policies.get(&name) {
                return stage;
            }
        }
        let route_policy = match target {
            Target::Route { route, .. } => route.runtime.spec.guard_policy.as_deref(),
            Target::Model(_) => None,
        };
        caller
            .key
            .guard_policy
            .as_deref()
            .or(route_policy)
            .and_then(|name| self.guard_policies.get(name))
            .unwrap_or(&self.guards)
    }

    /// What `model` names: a model, else a route alias with an optional `:policy` suffix
    /// (else the suffix, the header, the key, a flag, the route's default, in that order).
    fn target_for(
        &self,
        caller: &Caller<'_>,
        name: &str,
        flags: &FlagSet,
    ) -> Result<Target<'_>, GatewayError> {
        let key = &caller.key;
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
                .variant(&flags::route_policy(alias), &caller.user)
                .and_then(|v| v.parse::<Policy>().ok())
        };
        let policy = match suffix {
            Some(p) => p,
            None => header_policy(caller.headers)?
                .or(key.route_policy)
                .or_else(flagged)
                .unwrap_or(route.runtime.spec.default_policy),
        };
        Ok(Target::Route { route, policy })
    }
}

/// A whole answer as the client gets it: the gateway's model name, usage (counted when the
/// upstream gave none), and its tokens in the record (added to earlier attempts' on a retry).
fn complete(
    record: &mut RecordGuard,
    request: &ChatCompletionRequest,
    served: &Served,
    mut response: ChatCompletionResponse,
    add: bool,
) -> ChatCompletionResponse {
    response.model.clone_from(&served.model.spec.name);
    let counted = response.usage.is_none();
    if counted {
        response.usage = Some(switchyard_api::Usage::new(
            tokens::count_messages(&request.messages),
            tokens::count_text(&response_text(&response)),
        ));
    }
    let usage = response.usage.clone().unwrap_or_default();
    record.trace_answer(&response);
    if add {
        record.add_usage(usage.prompt_tokens, usage.completion_tokens, counted);
    } else {
        record.set_usage(usage.prompt_tokens, usage.completion_tokens, counted);
    }
    response
}

/// The screen's span, from its start to its verdicts (those after `before`).
fn trace_screen(record: &RecordGuard, cx: &ChatContext<'_>, before: usize) {
    if cx.verdicts.len() > before {
        record.trace_stage("switchyard.guard.screen", cx.screen_since, || {
            guard_attributes(&cx.verdicts[before..])
        });
    }
}

/// A guard stage's verdicts as span attributes: which guards, and what each found.
fn guard_attributes(verdicts: &[GuardVerdict]) -> Vec<KeyValue> {
    vec![
        strings(
            "switchyard.guard.names",
            verdicts.iter().map(|v| v.guard.to_owned()).collect(),
        ),
        strings(
            "switchyard.guard.outcomes",
            verdicts
                .iter()
                .map(|v| v.outcome.as_str().to_owned())
                .collect(),
        ),
        KeyValue::new(
            "switchyard.guard.blocked",
            verdicts.iter().any(|v| v.blocks),
        ),
    ]
}

/// A cache hit as span attributes.
fn cache_attributes(kind: HitKind) -> Vec<KeyValue> {
    match kind {
        HitKind::Exact => vec![KeyValue::new("switchyard.cache.outcome", "hit-exact")],
        HitKind::Semantic { similarity } => vec![
            KeyValue::new("switchyard.cache.outcome", "hit-semantic"),
            KeyValue::new("switchyard.cache.similarity", f64::from(similarity)),
        ],
    }
}

fn response_text(response: &ChatCompletionResponse) -> String {
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
