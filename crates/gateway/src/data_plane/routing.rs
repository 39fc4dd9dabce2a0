//! The routing stage: turns a route alias (`auto`, `auto:cheap`) into one of its candidate
//! models before dispatch, and says why.
//!
//! The policy comes from, first to last: the model name's suffix (`auto:best`), the
//! `x-switchyard-route-policy` header, the key's `route_policy`, the route's default. The
//! decision itself (rules, then classifier and bar) is `switchyard_route::Router`'s.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use switchyard_api::{ChatCompletionRequest, Role};
use switchyard_cache::Embedder as _;
use switchyard_control::{ModelSpec, Policy, Price, RouteSpec};
use switchyard_route::{
    Bars, Chosen, Classifier, Decision, Estimator, RouteError, RouteRequest, Router,
};

use crate::data_plane::cache::{StaticModel, StaticModels};
use crate::data_plane::dispatch::ModelRuntime;
use crate::error::GatewayError;

pub const ROUTE_POLICY: &str = "x-switchyard-route-policy";

pub struct RouteRuntime {
    pub spec: RouteSpec,
    router: Router,
    /// The bars in force: the trained ones (`spec.bars`), moved by recalibration.
    bars: ArcSwap<Bars>,
    /// The price of the route's most expensive candidate: what the traffic would cost without
    /// routing, the baseline savings are counted against.
    pub baseline_price: Price,
    /// The static model a neighbour router embeds prompts with (`None` for other routers).
    embedder: Option<Arc<StaticModel>>,
}

impl RouteRuntime {
    /// `static_models` gives the route's embedding model when its router needs one, checked
    /// against the fingerprint the router was built with.
    pub fn build(
        spec: &RouteSpec,
        models: &std::collections::BTreeMap<String, ModelSpec>,
        static_models: &mut StaticModels,
    ) -> Result<Self, RouteError> {
        let estimator = spec.router.as_ref().map_or_else(
            || Estimator::Linear(Classifier::new(Default::default(), Vec::new())),
            |r| r.estimator.clone(),
        );
        let embedder = match estimator.neighbours() {
            Some(neighbours) => {
                let model = static_models.get(&spec.embedder).map_err(|e| {
                    RouteError::Embedder(format!("{}: {e}", spec.embedder.display()))
                })?;
                neighbours
                    .check_embedder(|text| model.embed(text))
                    .map_err(RouteError::Embedder)?;
                Some(model)
            }
            None => None,
        };
        let router = Router::new(
            spec.candidates.clone(),
            spec.rules.clone(),
            estimator,
            spec.bars,
        )?;
        let baseline_price = spec
            .candidates
            .iter()
            .filter_map(|c| models.get(&c.model))
            .map(|m| m.price)
            .max_by_key(|p| (p.output_nanos_per_mtok, p.input_nanos_per_mtok))
            .unwrap_or_default();
        Ok(RouteRuntime {
            spec: spec.clone(),
            router,
            bars: ArcSwap::from_pointee(spec.bars),
            baseline_price,
            embedder,
        })
    }

    /// The decision for `request` under `policy`.
    pub fn decide(
        &self,
        request: &ChatCompletionRequest,
        key_id: &str,
        policy: Policy,
    ) -> Decision {
        let prompt = routed_prompt(request);
        let metadata = request_metadata(request);
        // Only a neighbour router has an embedder, and it only needs the vector when a
        // classifier runs at all; a rule match or `best` wastes these few microseconds.
        let dense = self.embedder.as_ref().map(|m| m.embed(&prompt));
        self.router.decide_with_bars(
            &RouteRequest {
                prompt: &prompt,
                key: Some(key_id),
                metadata: &metadata,
                dense: dense.as_deref(),
            },
            policy,
            self.bars(),
        )
    }

    pub fn bars(&self) -> Bars {
        **self.bars.load()
    }

    /// Takes effect on the next request.
    pub fn set_bars(&self, bars: Bars) {
        self.bars.store(std::sync::Arc::new(bars));
    }
}

/// A route of a pipeline: its runtime, and the models its decisions can name (candidates
/// and rule targets, in the router's order), resolved once when the pipeline is built, so a
/// decision is a model without a lookup that could miss.
pub struct Route {
    pub runtime: RouteRuntime,
    candidates: Vec<Arc<ModelRuntime>>,
    rule_targets: Vec<Arc<ModelRuntime>>,
}

impl Route {
    /// `Err` names a candidate or rule target that is not among `models` (config validation
    /// refuses such a route, so this does not happen to a validated config).
    pub fn resolve(
        runtime: RouteRuntime,
        models: &HashMap<String, Arc<ModelRuntime>>,
    ) -> Result<Self, String> {
        let resolve = |name: &String| models.get(name).cloned().ok_or_else(|| name.clone());
        let candidates = runtime
            .spec
            .candidates
            .iter()
            .map(|c| resolve(&c.model))
            .collect::<Result<_, _>>()?;
        let rule_targets = runtime
            .spec
            .rules
            .iter()
            .map(|r| resolve(&r.model))
            .collect::<Result<_, _>>()?;
        Ok(Route {
            runtime,
            candidates,
            rule_targets,
        })
    }

    /// The model a decision of this route chose. The router was built from the same
    /// candidates and rules, in the same order, so the position is always in range.
    pub fn target(&self, chosen: Chosen) -> &Arc<ModelRuntime> {
        match chosen {
            Chosen::Candidate(i) => &self.candidates[i],
            Chosen::Rule(i) => &self.rule_targets[i],
        }
    }
}

/// The policy named by the caller's header, if any; a bad value is a 400 naming the header.
pub fn header_policy(headers: &HeaderMap) -> Result<Option<Policy>, GatewayError> {
    let Some(v) = headers.get(ROUTE_POLICY) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("");
    text.parse::<Policy>()
        .map(Some)
        .map_err(|e| GatewayError::invalid(Some(ROUTE_POLICY), format!("`{ROUTE_POLICY}`: {e}")))
}

/// What the classifier reads: the last user message, which carries the task. (The router was
/// trained on single prompts; earlier turns would only dilute the features.)
pub fn routed_prompt(request: &ChatCompletionRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text())
        .unwrap_or_default()
}

/// The request's `metadata` object (OpenAI's field), as string pairs for metadata rules.
fn request_metadata(request: &ChatCompletionRequest) -> Vec<(String, String)> {
    request
        .extra
        .get("metadata")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
