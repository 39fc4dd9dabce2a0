//! Building a pipeline from a validated config: providers, models and their deployments,
//! keys, routes, the cache, guard policies, content capture, each in its own step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_control::{CachePolicySpec, Config, ProviderSpec};
use switchyard_providers::ChatProvider;
use switchyard_resilience::CircuitBreaker;

use super::{BuildError, Pipeline};
use crate::data_plane::admission::Gates;
use crate::data_plane::cache::{CacheStage, StaticModels};
use crate::data_plane::content::ContentStage;
use crate::data_plane::dispatch::{Deployment, Dispatcher, ModelRuntime, Weighted};
use crate::data_plane::engines::Engines;
use crate::data_plane::guards::GuardStage;
use crate::data_plane::keys::{resolve_secret, KeyState, Keyring, Periods};
use crate::data_plane::routing::{Route, RouteRuntime};
use crate::data_plane::shared::{SharedCache, SharedState};

/// What reads environment variables (provider API keys, key secrets, the PII salt).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Pipeline {
    /// `env` reads environment variables (provider API keys, key secrets); `spent` reads a
    /// key's spend since a time from the store; `shared` is the fleet's Redis, when the
    /// config has one (keys' limits and the cache are then shared through it).
    pub fn build(
        config: Arc<Config>,
        env: Env<'_>,
        spent: &dyn Fn(&str, i64) -> u64,
        version: &str,
        shared: Option<&SharedState>,
        gates: &Gates,
    ) -> Result<Self, BuildError> {
        let providers = providers(&config, env)?;
        let labels = Arc::new(crate::metrics::Labels::new(&config));
        let engines = Engines::start(&config, &labels)?;
        let (models, deployments) = models(&config, &providers, &engines, shared, gates);
        let keyring = keyring(&config, env, spent, shared)?;
        let mut static_models = StaticModels::default();
        let routes = routes(&config, &models, &mut static_models)?;
        let cache = cache(&config, &mut static_models, shared)?;
        let guards = GuardStage::build(&config.guards, env, &mut static_models)?;
        let mut guard_policies = HashMap::new();
        for (name, spec) in &config.guard_policies {
            let stage = GuardStage::build(spec, env, &mut static_models)?;
            guard_policies.insert(name.clone(), stage);
        }
        let content = match &config.telemetry.content {
            Some(spec) => Some(ContentStage::build(spec).map_err(BuildError::Content)?),
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
            labels,
            _engines: engines,
            config,
            version: version.to_owned(),
            keyring,
            models,
            created: switchyard_providers::unix_now(),
        })
    }
}

/// Every configured provider, on one connection pool per connect timeout (reqwest sets that
/// timeout per client).
fn providers(
    config: &Config,
    env: Env<'_>,
) -> Result<HashMap<String, Arc<dyn ChatProvider>>, BuildError> {
    let mut clients: HashMap<Duration, reqwest::Client> = HashMap::new();
    let mut providers = HashMap::new();
    for (name, spec) in &config.providers {
        let connect_timeout = match spec {
            ProviderSpec::OpenAi(o) => o.connect_timeout,
            ProviderSpec::Anthropic(a) => a.connect_timeout,
            ProviderSpec::Bedrock(b) => b.connect_timeout,
            ProviderSpec::Azure(a) => a.connect_timeout,
            ProviderSpec::Gemini(g) => g.connect_timeout,
            ProviderSpec::Vertex(v) => v.connect_timeout,
            ProviderSpec::Sim(_) => Duration::from_secs(5),
        };
        let http = match clients.get(&connect_timeout) {
            Some(c) => c.clone(),
            None => {
                let c = switchyard_providers::http_client(connect_timeout)?;
                clients.insert(connect_timeout, c.clone());
                c
            }
        };
        let provider = switchyard_providers::build(name, spec, &http, env)?;
        providers.insert(name.clone(), provider);
    }
    Ok(providers)
}

/// Every model with its deployments, and every distinct deployment once, by label. A
/// deployment (provider and upstream model) used by several models is one object: one
/// breaker, one count of calls in flight, whichever alias reached it.
fn models(
    config: &Config,
    providers: &HashMap<String, Arc<dyn ChatProvider>>,
    engines: &Engines,
    shared: Option<&SharedState>,
    gates: &Gates,
) -> (HashMap<String, Arc<ModelRuntime>>, Vec<Arc<Deployment>>) {
    let now = tokio::time::Instant::now().into_std();
    // In a fleet, each replica admits its share of a deployment's capacity: the replicas
    // counted by Redis's heartbeats, else by their publications to PostgreSQL.
    let replicas = shared
        .map(|s| {
            let link = s.link.clone();
            Arc::new(move || link.replicas()) as crate::data_plane::admission::Replicas
        })
        .or_else(|| gates.replicas());
    let mut models = HashMap::new();
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
                    let breaker = config
                        .breakers
                        .get(&d.provider)
                        .copied()
                        .unwrap_or_default();
                    let deployment = Deployment::new(
                        d.label(),
                        d.upstream_model.clone(),
                        provider.clone(),
                        CircuitBreaker::new(breaker, now),
                    )
                    .with_engine(engines.watch(&d.provider));
                    Arc::new(match d.capacity {
                        Some(capacity) => deployment.with_gate(gates.gate(
                            &d.label(),
                            queue_config(config, capacity),
                            replicas.clone(),
                        )),
                        None => deployment,
                    })
                })
                .clone();
            deployments.push(Weighted {
                deployment,
                weight: d.weight,
            });
        }
        let runtime = ModelRuntime {
            spec: spec.clone(),
            deployments,
        };
        models.insert(name.clone(), Arc::new(runtime));
    }
    let mut deployments: Vec<Arc<Deployment>> = shared.into_values().collect();
    deployments.sort_by(|a, b| a.label.cmp(&b.label));
    (models, deployments)
}

/// A deployment's admission queue: its capacity, each class's limits from `[admission]`,
/// the admission crate's defaults for the rest.
fn queue_config(
    config: &Config,
    capacity: switchyard_control::Capacity,
) -> switchyard_admission::QueueConfig {
    let mut queue = switchyard_admission::QueueConfig::new(capacity);
    queue.classes = config.admission.classes.clone();
    queue
}

/// The keys by the hash of their secret, and the admin key's. A key counts in this process,
/// from what it spent in its budget periods so far (read back from the store, `spent`), or
/// in the fleet's Redis (which seeds itself from the store).
fn keyring(
    config: &Config,
    env: Env<'_>,
    spent: &dyn Fn(&str, i64) -> u64,
    shared: Option<&SharedState>,
) -> Result<Keyring, BuildError> {
    let periods = Periods::now();
    let mut keys = HashMap::new();
    for k in &config.keys {
        let hash = resolve_secret(&k.id, &k.secret, env)?;
        let state = match shared {
            Some(s) => KeyState::with_counters(k, Box::new(s.counters.counters(k))),
            None => KeyState::new(k, &periods, spent),
        };
        keys.insert(hash, Arc::new(state));
    }
    let admin = match &config.admin {
        Some(a) => Some(resolve_secret("admin", &a.secret, env)?),
        None => None,
    };
    Ok(Keyring::new(keys, admin))
}

/// Every route, with the models its decisions name resolved.
fn routes(
    config: &Config,
    models: &HashMap<String, Arc<ModelRuntime>>,
    static_models: &mut StaticModels,
) -> Result<HashMap<String, Route>, BuildError> {
    let mut routes = HashMap::new();
    for (name, spec) in &config.routes {
        let runtime =
            RouteRuntime::build(spec, &config.models, static_models).map_err(|problem| {
                BuildError::Route {
                    route: name.clone(),
                    problem,
                }
            })?;
        let route = Route::resolve(runtime, models).map_err(|model| BuildError::RouteTarget {
            route: name.clone(),
            model,
        })?;
        routes.insert(name.clone(), route);
    }
    Ok(routes)
}

/// The cache, with the static embedding model loaded only when some policy is semantic; in
/// a fleet, over the shared tier.
fn cache(
    config: &Config,
    models: &mut StaticModels,
    shared: Option<&SharedState>,
) -> Result<Option<CacheStage>, BuildError> {
    let Some(spec) = &config.cache else {
        return Ok(None);
    };
    let semantic = |p: &CachePolicySpec| p.enabled && p.semantic;
    let semantic_used =
        semantic(&spec.defaults) || config.routes.values().any(|r| semantic(&r.cache));
    Ok(Some(match shared {
        Some(s) => {
            let tier = SharedCache::new(&s.link, spec.max_bytes);
            CacheStage::build_shared(spec, semantic_used, models, tier)?
        }
        None => CacheStage::build(spec, semantic_used, models)?,
    }))
}
