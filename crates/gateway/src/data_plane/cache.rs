//! The cache stage: looks a request up before routing and dispatch, and stores the answer
//! after a success (whole, or assembled from the stream once it has ended).
//!
//! 1. The caller's `x-switchyard-cache-control` and the route's policy decide whether to look
//!    up at all (`bypass`, temperature) and whether to store (`refresh` stores, does not look).
//! 2. The exact tier first: a hash, no embedding. An exact hit never pays for an embedding.
//! 3. On an exact miss, when the route's semantic tier is on, the conversation is embedded
//!    with the static model (microseconds) and searched in the request's scope: tenant, route
//!    (with its policy) and the request's shape (system prompt, tools, response format, every
//!    other parameter, the conversation's structure and tool results: `switchyard_cache::key`),
//!    so nothing crosses tenants and only the conversation's words are compared by embedding.
//!    A hit is always an answer to a request of the same kind.
//! 4. A miss returns a [`CacheFill`] carrying the keys and the embedding already computed, so
//!    storing the answer later costs no second embedding.
//! 5. With a shared tier (a fleet's Redis, `shared::cache`), an exact miss here is asked of
//!    Redis before the semantic tier: [`CacheStage::lookup`] hands back a [`SharedLookup`] to
//!    await (the only await of the stage, and only with a shared tier), and a stored answer is
//!    also written there. Without one, the lookup is what it always was: synchronous.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
use switchyard_cache::{
    Cache, CacheConfig, CacheControl, Embedder, HitKind, Lookup, Miss, Prepared, RoutePolicy,
};
use switchyard_control::{CachePolicySpec, CacheSpec};
use switchyard_embed::StaticEmbedder;

use crate::data_plane::shared::cache::SharedCache;
use crate::error::GatewayError;

pub const CACHE_CONTROL: &str = "x-switchyard-cache-control";

/// The process-wide cache with the embedder its semantic tier searches with.
pub struct CacheStage {
    cache: Arc<Cache>,
    embedder: Option<Arc<StaticModel>>,
    /// The fleet's shared tier, whose local entries `cache` holds.
    shared: Option<Arc<SharedCache>>,
}

/// The static models a pipeline loaded, one per folder, shared by the cache and the guards.
#[derive(Default)]
pub struct StaticModels(std::collections::HashMap<std::path::PathBuf, Arc<StaticModel>>);

impl StaticModels {
    /// The model in `dir`, loaded on first use.
    pub fn get(&mut self, dir: &Path) -> Result<Arc<StaticModel>, switchyard_embed::EmbedError> {
        if let Some(m) = self.0.get(dir) {
            return Ok(Arc::clone(m));
        }
        let m = Arc::new(StaticModel(StaticEmbedder::load(dir)?));
        self.0.insert(dir.to_owned(), Arc::clone(&m));
        Ok(m)
    }
}

/// `switchyard_embed::StaticEmbedder` as the cache's `Embedder`.
pub struct StaticModel(pub StaticEmbedder);

impl Embedder for StaticModel {
    fn embed(&self, text: &str) -> Vec<f32> {
        // A tokenizer failure on odd input leaves a zero vector: it matches nothing, which is
        // the safe outcome for a cache.
        self.0
            .embed(text)
            .unwrap_or_else(|_| vec![0.0; self.0.dim()])
    }
}

/// What the lookup found.
pub enum CacheOutcome {
    Hit {
        response: Arc<ChatCompletionResponse>,
        kind: HitKind,
    },
    /// Not served from the cache. `fill` is set when the answer may be stored.
    Miss {
        label: &'static str,
        best_similarity: Option<f32>,
        fill: Option<CacheFill>,
    },
}

/// What [`CacheStage::lookup`] found, or the shared tier still to ask.
pub enum Looked<'a> {
    Done(CacheOutcome),
    /// A miss here, with a shared tier to ask before the semantic search.
    Ask(SharedLookup<'a>),
}

/// The rest of a lookup once the shared tier has been asked (point 5).
pub struct SharedLookup<'a> {
    stage: &'a CacheStage,
    tier: &'a SharedCache,
    pending: Pending,
}

impl SharedLookup<'_> {
    /// Asks Redis for the exact entry (a hit is kept here and served), then searches here.
    pub async fn finish(self) -> CacheOutcome {
        let SharedLookup {
            stage,
            tier,
            pending,
        } = self;
        let p = &pending.prepared;
        if tier.fetch(&p.scope, &p.key, now()).await {
            if let Some(hit) = stage.cache.lookup_exact(p, now()) {
                return CacheOutcome::Hit {
                    response: hit.response,
                    kind: hit.kind,
                };
            }
        }
        stage.semantic(pending, now())
    }
}

/// A lookup past its exact tier: what the semantic tier and the fill need.
struct Pending {
    prepared: Prepared,
    policy: RoutePolicy,
    control: CacheControl,
}

/// Everything needed to store the answer to a missed request (boxed: it rides along with
/// every outcome and stream, and is large).
pub struct CacheFill(Box<Fill>);

struct Fill {
    cache: Arc<Cache>,
    prepared: Prepared,
    embedding: Option<Vec<f32>>,
    policy: RoutePolicy,
    control: CacheControl,
    shared: Option<Arc<SharedCache>>,
}

impl CacheFill {
    /// Stores `response` as the answer to `request` (and, with a shared tier, hands it to
    /// the other replicas). Refusals (unfinished answers, entries larger than the cache) are
    /// normal and only counted.
    pub fn store(self, request: &ChatCompletionRequest, response: ChatCompletionResponse) {
        let f = *self.0;
        let p = &f.prepared;
        let entry = f.cache.new_entry(
            request,
            p,
            f.embedding,
            response,
            &f.policy,
            f.control,
            now(),
        );
        let stored = entry.and_then(|entry| {
            if let Some(tier) = &f.shared {
                tier.write(&p.scope, p.key, &entry, f.policy.ttl);
            }
            f.cache.put(&p.scope, p.key, entry)
        });
        let outcome = if stored.is_ok() { "stored" } else { "refused" };
        use crate::metrics::{self as m, LabelValue};
        m::counter(m::CACHE_STORES, &[("outcome", LabelValue::fixed(outcome))]).increment(1);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cache.embedder: {0}")]
pub struct EmbedderMissing(#[from] switchyard_embed::EmbedError);

impl CacheStage {
    /// Builds the cache; loads the static model only when some policy uses the semantic tier.
    pub fn build(
        spec: &CacheSpec,
        semantic_used: bool,
        load: &mut StaticModels,
    ) -> Result<Self, EmbedderMissing> {
        let embedder = if semantic_used {
            Some(load.get(&spec.embedder)?)
        } else {
            None
        };
        Ok(CacheStage {
            cache: Arc::new(Cache::new(CacheConfig {
                max_bytes: spec.max_bytes,
                top_k: spec.top_k,
            })),
            embedder,
            shared: None,
        })
    }

    /// [`CacheStage::build`] over a fleet's shared tier: its entries are the tier's local
    /// ones (under the tier's byte budget), and lookups and stores go through it.
    pub fn build_shared(
        spec: &CacheSpec,
        semantic_used: bool,
        load: &mut StaticModels,
        tier: Arc<SharedCache>,
    ) -> Result<Self, EmbedderMissing> {
        let mut stage = Self::build(spec, semantic_used, load)?;
        stage.cache = Arc::new(Cache::with_entries(spec.top_k, Box::new(tier.local())));
        stage.shared = Some(tier);
        Ok(stage)
    }

    pub fn stats(&self) -> switchyard_cache::Stats {
        self.cache.stats()
    }

    pub fn purge_expired(&self) -> usize {
        self.cache.purge_expired(now())
    }

    /// Looks `request` up in `scope_route` for `tenant` under `policy`: done here, or (with a
    /// shared tier, after an exact miss here) a [`SharedLookup`] to finish.
    pub fn lookup(
        &self,
        tenant: &str,
        scope_route: &str,
        policy: &CachePolicySpec,
        control: CacheControl,
        request: &ChatCompletionRequest,
    ) -> Looked<'_> {
        let bypass = CacheOutcome::Miss {
            label: "bypass",
            best_similarity: None,
            fill: None,
        };
        if !policy.enabled || control == CacheControl::Bypass {
            return Looked::Done(bypass);
        }
        let route_policy = RoutePolicy {
            threshold: policy.threshold,
            ttl: policy.ttl,
            allow_temperature: policy.allow_temperature,
            semantic: policy.semantic && self.embedder.is_some(),
            guard: true,
        };
        if switchyard_cache::request_cacheable(request, &route_policy).is_err() {
            return Looked::Done(bypass);
        }
        let prepared = Prepared::new(tenant, scope_route, request);
        let now = now();
        if control.may_lookup() {
            if let Some(hit) = self.cache.lookup_exact(&prepared, now) {
                return Looked::Done(CacheOutcome::Hit {
                    response: hit.response,
                    kind: hit.kind,
                });
            }
        }
        let pending = Pending {
            prepared,
            policy: route_policy,
            control,
        };
        match &self.shared {
            Some(tier) if control.may_lookup() => Looked::Ask(SharedLookup {
                stage: self,
                tier,
                pending,
            }),
            _ => Looked::Done(self.semantic(pending, now)),
        }
    }

    /// The semantic tier (point 3), then the miss with its fill.
    fn semantic(&self, pending: Pending, now: Instant) -> CacheOutcome {
        let Pending {
            prepared,
            policy: route_policy,
            control,
        } = pending;
        let mut best_similarity = None;
        let mut embedding = None;
        if let (true, Some(embedder)) = (route_policy.semantic, &self.embedder) {
            let v = prepared.embed(embedder.as_ref());
            if control.may_lookup() {
                match self
                    .cache
                    .lookup_semantic(&prepared, &v, &route_policy, now)
                {
                    Lookup::Hit(hit) => {
                        return CacheOutcome::Hit {
                            response: hit.response,
                            kind: hit.kind,
                        }
                    }
                    Lookup::Miss(Miss::BelowThreshold { best }) => best_similarity = best,
                    Lookup::Miss(Miss::Guarded { similarity, reason }) => {
                        // The kind only: the reason's words are the caller's.
                        use crate::metrics::{self as m, LabelValue};
                        m::counter(
                            m::CACHE_GUARDED,
                            &[("reason", LabelValue::fixed(reason.kind()))],
                        )
                        .increment(1);
                        best_similarity = Some(similarity);
                    }
                    Lookup::Miss(_) => {}
                }
            }
            embedding = Some(v);
        }
        CacheOutcome::Miss {
            label: "miss",
            best_similarity,
            fill: Some(CacheFill(Box::new(Fill {
                cache: self.cache.clone(),
                prepared,
                embedding,
                policy: route_policy,
                control,
                shared: self.shared.clone(),
            }))),
        }
    }
}

/// The caller's cache control; an unknown value is a 400 naming the header.
pub fn cache_control(headers: &HeaderMap) -> Result<CacheControl, GatewayError> {
    let Some(v) = headers.get(CACHE_CONTROL) else {
        return Ok(CacheControl::Normal);
    };
    v.to_str()
        .ok()
        .and_then(CacheControl::parse)
        .ok_or_else(|| {
            GatewayError::invalid(
                Some(CACHE_CONTROL),
                format!("`{CACHE_CONTROL}` must be `bypass` or `refresh`"),
            )
        })
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
