//! The cache's decisions: what may be stored and served (policy and cache control), the exact
//! tier by key, and the semantic tier by embedding within a scope with the guard against
//! false hits. Where the entries live, and their byte budget, LRU eviction and expiry, is
//! the [`Entries`] seam (`entries.rs`).
//!
//! Time is passed in (`now`), so tests and the gateway's paused clock control it.

use std::sync::Arc;
use std::time::Instant;

use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, Role};

use crate::entries::{
    Entries, InProcessEntries, NewEntry, PutError, Removal, Scope, Stats, Stored,
};
use crate::guard::{self, Features, GuardReason};
use crate::index::normalise;
use crate::key::{normalise_ws, ExactKey, Shape};
use crate::policy::{
    request_cacheable, response_cacheable, CacheControl, NotCacheable, RoutePolicy,
};
use crate::Embedder;

/// Weight of the last user message in the conversation embedding; the earlier turns share the
/// rest. The last message carries the question; earlier turns say what "it" refers to.
const LAST_TURN_WEIGHT: f32 = 0.75;

/// How many earlier user and assistant turns join the context embedding.
const CONTEXT_TURNS: usize = 4;

/// Store-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// The byte budget over all entries of all scopes.
    pub max_bytes: usize,
    /// Candidates above the threshold that the guard may look at before giving up.
    pub top_k: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 << 20,
            top_k: 4,
        }
    }
}

/// A request made ready for the cache: its keys and the texts to embed and to guard.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub key: ExactKey,
    pub scope: Scope,
    /// The last user message, normalised: what the guard compares.
    pub question: String,
    /// Earlier non-system turns, normalised and joined; empty for a first turn.
    pub context: String,
}

impl Prepared {
    /// Prepares `req` for tenant `tenant` on route `route`. Cheap: a hash and some copying.
    pub fn new(tenant: &str, route: &str, req: &ChatCompletionRequest) -> Prepared {
        // The words: user and assistant turns. System prompts and tool results are in the
        // shape, matched exactly.
        let mut turns: Vec<String> = Vec::new();
        let mut last_user = None;
        for m in &req.messages {
            if matches!(m.role, Role::User | Role::Assistant) {
                if m.role == Role::User {
                    last_user = Some(turns.len());
                }
                turns.push(normalise_ws(&m.text()));
            }
        }
        let (question, context) = match last_user {
            Some(i) => {
                let q = turns.get(i).cloned().unwrap_or_default();
                let start = i.saturating_sub(CONTEXT_TURNS);
                (q, turns[start..i].join("\n"))
            }
            None => (String::new(), turns.join("\n")),
        };
        let shape = Shape::of(req);
        Prepared {
            key: ExactKey::with_shape(req, &shape),
            scope: Scope {
                tenant: tenant.to_owned(),
                route: route.to_owned(),
                shape,
            },
            question,
            context,
        }
    }

    /// The conversation embedding: the last user message, blended with the earlier turns
    /// when there are any, unit length.
    pub fn embed(&self, embedder: &dyn Embedder) -> Vec<f32> {
        let mut q = embedder.embed(&self.question);
        normalise(&mut q);
        if !self.context.is_empty() {
            let mut c = embedder.embed(&self.context);
            normalise(&mut c);
            if c.len() == q.len() {
                for (x, y) in q.iter_mut().zip(&c) {
                    *x = LAST_TURN_WEIGHT * *x + (1.0 - LAST_TURN_WEIGHT) * y;
                }
                normalise(&mut q);
            }
        }
        q
    }
}

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HitKind {
    Exact,
    Semantic { similarity: f32 },
}

/// A served answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: HitKind,
    pub response: Arc<ChatCompletionResponse>,
    /// The cached entry's question (`Prepared::question` when it was stored: the last user
    /// message, whitespace-normalised), so the caller can check a semantic hit against it
    /// before serving it (the gateway's pair check, [`crate::pair::PairCheck`]).
    pub question: Arc<str>,
    /// The entry's slot in its scope, so the caller can remove it later
    /// ([`Cache::remove`], when a user dislikes the answer).
    pub key: ExactKey,
}

/// Why a lookup served nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// The caller asked not to look up (`bypass` or `refresh`).
    Control(CacheControl),
    /// The request may not use the cache under the route's policy.
    NotCacheable(NotCacheable),
    /// Nothing in the scope (or semantic search is off for the route).
    Empty,
    /// The best candidate was below the threshold (`None` when nothing was close at all).
    BelowThreshold { best: Option<f32> },
    /// Candidates passed the threshold and the guard refused them all; the first refusal.
    Guarded {
        similarity: f32,
        reason: GuardReason,
    },
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(Hit),
    Miss(Miss),
}

/// Why an insert stored nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsertError {
    #[error("not cacheable: {0}")]
    NotCacheable(#[from] NotCacheable),
    #[error("the response cannot be stored: {0}")]
    Serialise(String),
    #[error("entry of {bytes} bytes is larger than the whole cache ({max} bytes)")]
    TooLarge { bytes: usize, max: usize },
    #[error("embedding has {got} dimensions, the scope holds {want}")]
    Dimension { got: usize, want: usize },
}

impl From<PutError> for InsertError {
    fn from(e: PutError) -> Self {
        match e {
            PutError::TooLarge { bytes, max } => InsertError::TooLarge { bytes, max },
            PutError::Dimension { got, want } => InsertError::Dimension { got, want },
        }
    }
}

/// The cache. Share it behind an `Arc`; methods take `&self`, and the entries' lock is held
/// only for their map and index work, never while embedding or checking candidates.
#[derive(Debug)]
pub struct Cache {
    /// Candidates above the threshold that the guard may look at before giving up.
    top_k: usize,
    entries: Box<dyn Entries>,
}

impl Cache {
    /// A cache whose entries live in this process, under `config.max_bytes`.
    pub fn new(config: CacheConfig) -> Cache {
        let entries = Box::new(InProcessEntries::new(config.max_bytes));
        Cache::with_entries(config.top_k, entries)
    }

    /// A cache whose entries live in `entries` (shared by replicas, for one); `top_k` as in
    /// [`CacheConfig`], the byte budget is the entries' own.
    pub fn with_entries(top_k: usize, entries: Box<dyn Entries>) -> Cache {
        Cache { top_k, entries }
    }

    /// The whole lookup: policy, control, exact, then (embedding only if needed) semantic.
    pub fn lookup(
        &self,
        req: &ChatCompletionRequest,
        prepared: &Prepared,
        policy: &RoutePolicy,
        control: CacheControl,
        embedder: &dyn Embedder,
        now: Instant,
    ) -> Lookup {
        if !control.may_lookup() {
            return Lookup::Miss(Miss::Control(control));
        }
        if let Err(e) = request_cacheable(req, policy) {
            return Lookup::Miss(Miss::NotCacheable(e));
        }
        if let Some(hit) = self.lookup_exact(prepared, now) {
            return Lookup::Hit(hit);
        }
        if !policy.semantic {
            return Lookup::Miss(Miss::Empty);
        }
        let v = prepared.embed(embedder);
        self.lookup_semantic(prepared, &v, policy, now)
    }

    /// The exact tier alone.
    pub fn lookup_exact(&self, prepared: &Prepared, now: Instant) -> Option<Hit> {
        let stored = self.entries.get(&prepared.scope, &prepared.key, now)?;
        let response = self.parsed(prepared, &prepared.key, &stored)?;
        Some(Hit {
            kind: HitKind::Exact,
            response,
            question: stored.question,
            key: prepared.key,
        })
    }

    /// The semantic tier alone, with the conversation embedding already computed
    /// (`Prepared::embed`); `v` must be unit length.
    pub fn lookup_semantic(
        &self,
        prepared: &Prepared,
        v: &[f32],
        policy: &RoutePolicy,
        now: Instant,
    ) -> Lookup {
        let scope = &prepared.scope;
        // Searched with no floor so the best similarity is known for the record even on a
        // miss; the same single pass.
        let Some(mut found) = self.entries.nearest(scope, v, self.top_k) else {
            return Lookup::Miss(Miss::Empty);
        };
        let best = found.first().map(|c| c.similarity);
        found.retain(|c| c.similarity >= policy.threshold);
        if found.is_empty() {
            return Lookup::Miss(Miss::BelowThreshold { best });
        }
        let q = policy.guard.then(|| Features::of(&prepared.question));
        let mut refused: Option<Miss> = None;
        let mut served = None;
        for c in found {
            if c.expires <= now {
                self.entries.evict(scope, &c.key, Removal::Expired);
                continue;
            }
            if let Some(q) = &q {
                if let Err(reason) = guard::check(q, &Features::of(&c.question)) {
                    refused.get_or_insert(Miss::Guarded {
                        similarity: c.similarity,
                        reason,
                    });
                    continue;
                }
            }
            served = Some(c);
            break;
        }
        let hit = served.and_then(|c| {
            let stored = self.entries.get(scope, &c.key, now)?;
            let response = self.parsed(prepared, &c.key, &stored)?;
            Some(Hit {
                kind: HitKind::Semantic {
                    similarity: c.similarity,
                },
                response,
                question: stored.question,
                key: c.key,
            })
        });
        match hit {
            Some(hit) => Lookup::Hit(hit),
            None => Lookup::Miss(refused.unwrap_or(Miss::BelowThreshold { best })),
        }
    }

    /// Stores a response for `prepared`. `embedding` (from `Prepared::embed`) adds it to the
    /// semantic tier; `None` stores it for exact hits only. Refuses what policy forbids.
    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is a separate decision of the caller"
    )]
    pub fn insert(
        &self,
        req: &ChatCompletionRequest,
        prepared: &Prepared,
        embedding: Option<Vec<f32>>,
        response: ChatCompletionResponse,
        policy: &RoutePolicy,
        control: CacheControl,
        now: Instant,
    ) -> Result<(), InsertError> {
        let entry = self.new_entry(req, prepared, embedding, response, policy, control, now)?;
        self.put(&prepared.scope, prepared.key, entry)
    }

    /// The entry [`Cache::insert`] would store, made but not stored: for a caller that also
    /// hands it to other replicas before storing it with [`Cache::put`].
    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is a separate decision of the caller"
    )]
    pub fn new_entry(
        &self,
        req: &ChatCompletionRequest,
        prepared: &Prepared,
        embedding: Option<Vec<f32>>,
        response: ChatCompletionResponse,
        policy: &RoutePolicy,
        control: CacheControl,
        now: Instant,
    ) -> Result<NewEntry, InsertError> {
        if !control.may_store() {
            return Err(NotCacheable::Bypass.into());
        }
        request_cacheable(req, policy)?;
        response_cacheable(&response)?;
        let json: Arc<[u8]> = serde_json::to_vec(&response)
            .map_err(|e| InsertError::Serialise(e.to_string()))?
            .into();
        let embedding = embedding.filter(|v| !v.is_empty()).map(|mut v| {
            normalise(&mut v);
            v
        });
        Ok(NewEntry {
            response: json,
            question: Arc::from(prepared.question.as_str()),
            embedding,
            expires: now + policy.ttl,
        })
    }

    /// Stores an entry in its slot: one from [`Cache::new_entry`], or one another replica
    /// made (its response JSON written by this cache's `new_entry` there).
    pub fn put(&self, scope: &Scope, key: ExactKey, entry: NewEntry) -> Result<(), InsertError> {
        Ok(self.entries.put(scope, key, entry)?)
    }

    /// An entry's response, parsed from its JSON outside the lock. JSON this cache wrote
    /// always parses; if it ever did not, the entry is dropped and the lookup is a miss.
    fn parsed(
        &self,
        prepared: &Prepared,
        key: &ExactKey,
        stored: &Stored,
    ) -> Option<Arc<ChatCompletionResponse>> {
        match serde_json::from_slice(&stored.response) {
            Ok(response) => Some(Arc::new(response)),
            Err(_) => {
                self.entries
                    .evict(&prepared.scope, key, Removal::Unreadable);
                None
            }
        }
    }

    /// Removes the entry in the slot (a user disliked what it served); nothing when it is
    /// already gone.
    pub fn remove(&self, scope: &Scope, key: &ExactKey) {
        self.entries.evict(scope, key, Removal::Disliked);
    }

    /// Removes every expired entry; call it now and then (e.g. once a minute).
    pub fn purge_expired(&self, now: Instant) -> usize {
        self.entries.purge_expired(now)
    }

    pub fn stats(&self) -> Stats {
        self.entries.stats()
    }
}
