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
//!    await, and a stored answer is also written there. Without one (and without the pair
//!    check), the lookup is what it always was: synchronous.
//! 6. With `[cache] pair_check` set, the one semantic candidate the static search found
//!    (guard off, the best candidate only) is checked before it is served
//!    (`switchyard_cache::pair`): MiniLM's token vectors of both questions (one forward pass
//!    of two texts, ~15-25 ms on a quiet core in a release build, on a blocking thread),
//!    token alignment and the trained model. Only a lookup with a candidate at or above the
//!    threshold pays it; a miss never does. Refused, the lookup is a miss.
//! 7. Feedback: a semantic hit's request id is remembered with the entry's slot (the last
//!    [`SERVED_HITS`]). A negative score on it (`POST /v1/feedback`, thumbs down) removes the
//!    entry and tightens its scope one notch: +[`NOTCH`] on the similarity threshold and on
//!    the pair check's probability threshold, at most [`MAX_NOTCHES`] notches, for as long as
//!    this process runs (at most [`TIGHTENED_SCOPES`] scopes). In a fleet the replica that
//!    served the hit removes the entry from Redis and tells the others to remove theirs
//!    (`shared::cache`, 5.); the tightening stays with that replica.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::http::HeaderMap;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
use switchyard_cache::pair::{PairCheck, Refusal, Side};
use switchyard_cache::{
    Cache, CacheConfig, CacheControl, Embedder, ExactKey, Hit, HitKind, Lookup, Miss, Prepared,
    RoutePolicy, Scope,
};
use switchyard_control::{CachePolicySpec, CacheSpec};
use switchyard_embed::{MiniLm, StaticEmbedder, TokenVectors};

use crate::data_plane::shared::cache::SharedCache;
use crate::error::GatewayError;

pub const CACHE_CONTROL: &str = "x-switchyard-cache-control";

/// Semantic hits remembered for feedback (point 7).
pub const SERVED_HITS: usize = 4_096;
/// Scopes whose tightening is remembered (point 7).
pub const TIGHTENED_SCOPES: usize = 4_096;
/// One notch of tightening.
pub const NOTCH: f32 = 0.02;
pub const MAX_NOTCHES: u8 = 3;

/// The process-wide cache with the embedder its semantic tier searches with.
pub struct CacheStage {
    cache: Arc<Cache>,
    embedder: Option<Arc<StaticModel>>,
    /// The fleet's shared tier, whose local entries `cache` holds.
    shared: Option<Arc<SharedCache>>,
    /// Point 6, when configured.
    checker: Option<Arc<PairChecker>>,
    feedback: Arc<Mutex<FeedbackState>>,
}

/// The pair check with the MiniLM it runs on.
pub struct PairChecker {
    check: Arc<PairCheck>,
    minilm: MiniLm,
}

impl PairChecker {
    /// Whether `cached` may be served for `query`, at the check's threshold raised by
    /// `notches`. A MiniLM failure refuses: a miss is the safe outcome.
    fn check(
        &self,
        query: &str,
        cached: &str,
        similarity: f32,
        notches: u8,
    ) -> Result<(), Refusal> {
        let threshold = (self.check.threshold + NOTCH * f32::from(notches)).min(0.99);
        let v = match self.minilm.tokens(&[query, cached]) {
            Ok(v) if v.len() == 2 => v,
            _ => return Err(Refusal::Guard("minilm_failed")),
        };
        self.check
            .check_at(
                side_of(&v[0], query),
                side_of(&v[1], cached),
                similarity,
                threshold,
            )
            .map(|_| ())
    }
}

fn side_of<'a>(v: &'a TokenVectors, text: &'a str) -> Side<'a> {
    Side {
        text,
        ids: &v.ids,
        tokens: &v.tokens,
        pooled: &v.pooled,
    }
}

/// Point 7: recent semantic hits and the scopes tightened by feedback, both bounded.
#[derive(Default)]
struct FeedbackState {
    served: VecDeque<(String, Scope, ExactKey)>,
    notches: HashMap<Scope, u8>,
}

impl FeedbackState {
    fn notches(&self, scope: &Scope) -> u8 {
        self.notches.get(scope).copied().unwrap_or(0)
    }
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
        /// A semantic hit's entry, to remember for feedback ([`CacheStage::served`]).
        slot: Option<(Scope, ExactKey)>,
    },
    /// Not served from the cache. `fill` is set when the answer may be stored.
    Miss {
        label: &'static str,
        best_similarity: Option<f32>,
        fill: Option<CacheFill>,
    },
}

/// What [`CacheStage::lookup`] found, or the shared tier still to ask, or the candidate
/// still to check.
pub enum Looked<'a> {
    Done(CacheOutcome),
    /// A miss here, with a shared tier to ask before the semantic search.
    Ask(SharedLookup<'a>),
    /// A semantic candidate for the pair check (point 6).
    Check(PendingCheck),
}

impl Looked<'_> {
    /// The outcome, after whatever is still to await.
    pub async fn finish(self) -> CacheOutcome {
        match self {
            Looked::Done(outcome) => outcome,
            Looked::Ask(shared) => shared.finish().await,
            Looked::Check(check) => check.finish().await,
        }
    }
}

/// A semantic candidate and everything its miss would need, waiting for the pair check.
pub struct PendingCheck {
    checker: Arc<PairChecker>,
    hit: Hit,
    similarity: f32,
    notches: u8,
    scope: Scope,
    miss: CacheFill,
}

impl PendingCheck {
    /// Runs the check on the model pool (MiniLM takes milliseconds of CPU); served when it
    /// passes, otherwise the miss with its fill.
    pub async fn finish(self) -> CacheOutcome {
        let PendingCheck {
            checker,
            hit,
            similarity,
            notches,
            scope,
            miss,
        } = self;
        let query = miss.0.prepared.question.clone();
        let cached = hit.question.clone();
        let verdict =
            crate::tasks::classify(move || checker.check(&query, &cached, similarity, notches))
                .await
                .unwrap_or(Err(Refusal::Guard("minilm_failed")));
        match verdict {
            Ok(()) => CacheOutcome::Hit {
                response: hit.response,
                kind: hit.kind,
                slot: Some((scope, hit.key)),
            },
            Err(refusal) => {
                use crate::metrics::{self as m, LabelValue};
                m::counter(
                    m::CACHE_GUARDED,
                    &[("reason", LabelValue::fixed(refusal.kind()))],
                )
                .increment(1);
                CacheOutcome::Miss {
                    label: "miss",
                    best_similarity: Some(similarity),
                    fill: Some(miss),
                }
            }
        }
    }
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
                    slot: None,
                };
            }
        }
        match stage.semantic(pending, now()) {
            Looked::Check(check) => check.finish().await,
            Looked::Done(outcome) => outcome,
            // `semantic` never asks the shared tier.
            Looked::Ask(_) => CacheOutcome::Miss {
                label: "miss",
                best_similarity: None,
                fill: None,
            },
        }
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
pub enum EmbedderMissing {
    #[error("cache.embedder: {0}")]
    Static(#[from] switchyard_embed::EmbedError),
    #[error("cache.minilm (for pair_check): {0}")]
    MiniLm(switchyard_embed::EmbedError),
}

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
        let checker = match (&spec.pair_check, semantic_used) {
            (Some(p), true) => Some(Arc::new(PairChecker {
                check: Arc::clone(&p.check),
                minilm: MiniLm::load(&p.minilm).map_err(EmbedderMissing::MiniLm)?,
            })),
            _ => None,
        };
        Ok(CacheStage {
            cache: Arc::new(Cache::new(CacheConfig {
                max_bytes: spec.max_bytes,
                top_k: spec.top_k,
            })),
            embedder,
            shared: None,
            checker,
            feedback: Arc::default(),
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
                    slot: None,
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
            _ => self.semantic(pending, now),
        }
    }

    /// Remembers that `request_id` was answered by a semantic hit from `slot` (point 7).
    pub fn served(&self, request_id: &str, slot: (Scope, ExactKey)) {
        let mut f = self.feedback.lock().unwrap_or_else(PoisonError::into_inner);
        if f.served.len() >= SERVED_HITS {
            f.served.pop_front();
        }
        f.served.push_back((request_id.to_owned(), slot.0, slot.1));
    }

    /// A negative score from `tenant` on `request_id` (point 7): when that request was a
    /// semantic hit of the tenant's, removes the entry and tightens its scope one notch.
    /// Whether it did.
    pub fn disliked(&self, tenant: &str, request_id: &str) -> bool {
        let mut f = self.feedback.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(at) = f
            .served
            .iter()
            .position(|(id, scope, _)| id == request_id && scope.tenant == tenant)
        else {
            return false;
        };
        let Some((_, scope, key)) = f.served.remove(at) else {
            return false;
        };
        self.cache.remove(&scope, &key);
        if let Some(tier) = &self.shared {
            tier.remove(&scope, key);
        }
        if !f.notches.contains_key(&scope) && f.notches.len() >= TIGHTENED_SCOPES {
            // Full: forget the least tightened scope to make room.
            if let Some(k) = f
                .notches
                .iter()
                .min_by_key(|(_, n)| **n)
                .map(|(k, _)| k.clone())
            {
                f.notches.remove(&k);
            }
        }
        let n = f.notches.entry(scope).or_insert(0);
        *n = (*n + 1).min(MAX_NOTCHES);
        true
    }

    /// How many notches feedback has tightened `scope` by.
    fn notches(&self, scope: &Scope) -> u8 {
        self.feedback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notches(scope)
    }

    /// The semantic tier (point 3), then the miss with its fill, or the candidate to check
    /// (point 6).
    fn semantic(&self, pending: Pending, now: Instant) -> Looked<'_> {
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
                let notches = self.notches(&prepared.scope);
                let mut search = route_policy.clone();
                search.threshold = (search.threshold + NOTCH * f32::from(notches)).min(0.99);
                // The pair check replaces the rule guard and looks at the best candidate only.
                search.guard = self.checker.is_none();
                match self.cache.lookup_semantic(&prepared, &v, &search, now) {
                    Lookup::Hit(hit) => {
                        let similarity = match hit.kind {
                            HitKind::Semantic { similarity } => similarity,
                            HitKind::Exact => 1.0,
                        };
                        let scope = prepared.scope.clone();
                        let Some(checker) = &self.checker else {
                            return Looked::Done(CacheOutcome::Hit {
                                response: hit.response,
                                kind: hit.kind,
                                slot: Some((scope, hit.key)),
                            });
                        };
                        return Looked::Check(PendingCheck {
                            checker: checker.clone(),
                            hit,
                            similarity,
                            notches,
                            scope,
                            miss: self.fill(prepared, Some(v), route_policy, control),
                        });
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
        Looked::Done(CacheOutcome::Miss {
            label: "miss",
            best_similarity,
            fill: Some(self.fill(prepared, embedding, route_policy, control)),
        })
    }

    fn fill(
        &self,
        prepared: Prepared,
        embedding: Option<Vec<f32>>,
        policy: RoutePolicy,
        control: CacheControl,
    ) -> CacheFill {
        CacheFill(Box::new(Fill {
            cache: self.cache.clone(),
            prepared,
            embedding,
            policy,
            control,
            shared: self.shared.clone(),
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> CacheStage {
        let spec = CacheSpec {
            max_bytes: 1 << 20,
            embedder: "unused".into(),
            top_k: 4,
            defaults: CachePolicySpec {
                enabled: true,
                semantic: false,
                threshold: 0.9,
                ttl: std::time::Duration::from_secs(60),
                allow_temperature: false,
            },
            pair_check: None,
        };
        CacheStage::build(&spec, false, &mut StaticModels::default()).unwrap()
    }

    fn scope(tenant: &str) -> Scope {
        Scope {
            tenant: tenant.to_owned(),
            route: "r".to_owned(),
            shape: switchyard_cache::Shape([0; 32]),
        }
    }

    #[test]
    fn a_dislike_tightens_only_the_tenants_own_hit_and_at_most_three_notches() {
        let s = stage();
        for i in 0..5 {
            s.served(&format!("req-{i}"), (scope("acme"), ExactKey([i; 32])));
        }
        // Another tenant cannot act on acme's hit; an unknown id does nothing.
        assert!(!s.disliked("globex", "req-0"));
        assert!(!s.disliked("acme", "req-unknown"));
        assert_eq!(s.notches(&scope("acme")), 0);
        for i in 0..5 {
            assert!(s.disliked("acme", &format!("req-{i}")));
        }
        assert_eq!(s.notches(&scope("acme")), MAX_NOTCHES);
        // Each hit counts once.
        assert!(!s.disliked("acme", "req-0"));
    }

    #[test]
    fn remembered_hits_and_tightened_scopes_stay_bounded() {
        let s = stage();
        for i in 0..SERVED_HITS + 10 {
            s.served(
                &format!("req-{i}"),
                (scope(&format!("t{i}")), ExactKey([0; 32])),
            );
        }
        // The oldest were forgotten.
        assert!(!s.disliked("t0", "req-0"));
        for i in 10..SERVED_HITS + 10 {
            assert!(s.disliked(&format!("t{i}"), &format!("req-{i}")));
        }
        let f = s.feedback.lock().unwrap();
        assert_eq!(f.served.len(), 0);
        assert!(f.notches.len() <= TIGHTENED_SCOPES);
    }
}
