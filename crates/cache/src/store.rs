//! The in-process cache: one set of entries, reachable two ways (exact key, and per-scope
//! embedding rows), under one byte budget.
//!
//! How an entry lives and dies:
//! 1. `insert` stores the response once, as its JSON (a third of the heap of the parsed
//!    response, and exactly as big as it says), and indexes it by its exact slot (tenant,
//!    route, `ExactKey`) and, when an embedding is given, as a row in its scope's `FlatIndex`.
//!    Its size in bytes (JSON + question text + names + vector row + [`ENTRY_OVERHEAD`]) is
//!    added to the total; `tests/memory.rs` holds that figure to the heap an entry really
//!    takes, counted by the allocator. A second insert into the same exact slot replaces the
//!    first (that is how `refresh` works).
//! 2. Each hit moves the entry to the most-recently-used end of the LRU order.
//! 3. While the total exceeds `max_bytes`, the least-recently-used entry is removed from every
//!    index it is in. An entry larger than the whole budget is refused.
//! 4. An entry past its expiry is never served: a lookup that finds one removes it and goes
//!    on; `purge_expired` sweeps the rest.
//!
//! Time is passed in (`now`), so tests and the gateway's paused clock control it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, Role};

use crate::guard::{self, Features, GuardReason};
use crate::index::{normalise, FlatIndex};
use crate::key::{normalise_ws, ExactKey, Shape};
use crate::policy::{
    request_cacheable, response_cacheable, CacheControl, NotCacheable, RoutePolicy,
};
use crate::Embedder;

/// Fixed cost counted per entry: the `Entry` and its slot in three maps (hash tables keep up
/// to twice the slots they use), the LRU node, and the allocations' own headers. Measured
/// with the allocator in `tests/memory.rs`.
const ENTRY_OVERHEAD: usize = 900;

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

/// Where an entry may be seen from: nothing is ever served across scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub tenant: String,
    pub route: String,
    /// Everything in the request but its words (`key::Shape`): the system prompt, tools,
    /// response format, parameters, and the conversation's structure and data. Only requests
    /// of the same shape are compared by embedding.
    pub shape: Shape,
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
    /// before serving it (the evaluation's verifier, `examples/eval/verify.rs`).
    pub question: Arc<str>,
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

/// Counters for metrics; read with `Cache::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: usize,
    pub bytes: usize,
    pub scopes: usize,
    pub evicted: u64,
    pub expired: u64,
}

#[derive(Debug)]
struct Entry {
    /// The response's JSON, parsed again for each hit (microseconds, against the model call
    /// a hit saves).
    response: Arc<[u8]>,
    /// Shared with every `Hit` served from the entry. The guard's features are made from it
    /// when the entry is a candidate, not kept: they would take more heap than the answer.
    question: Arc<str>,
    bytes: usize,
    expires: Instant,
    tick: u64,
    slot: (Scope, ExactKey),
    /// Position in the scope's index, when the entry has an embedding.
    row: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u64, Entry>,
    exact: HashMap<(Scope, ExactKey), u64>,
    scopes: HashMap<Scope, FlatIndex>,
    lru: BTreeMap<u64, u64>,
    bytes: usize,
    tick: u64,
    next_id: u64,
    stats: Stats,
}

/// The cache. Share it behind an `Arc`; methods take `&self` and hold the lock only for the
/// index work, never while embedding.
#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    inner: Mutex<Inner>,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Cache {
        Cache {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are still each consistent enough to
        // serve or evict from; refusing all caching after one bug would be worse.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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
        let mut g = self.lock();
        let slot = (prepared.scope.clone(), prepared.key);
        let id = *g.exact.get(&slot)?;
        if g.entries.get(&id).is_some_and(|e| e.expires <= now) {
            g.remove(id);
            g.stats.expired += 1;
            return None;
        }
        let (response, question) = g.touch(id)?;
        drop(g);
        let response = self.parsed(id, &response)?;
        Some(Hit {
            kind: HitKind::Exact,
            response,
            question,
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
        // The query's guard features are computed before taking the lock.
        let q = policy.guard.then(|| Features::of(&prepared.question));
        let mut g = self.lock();
        let Some(ix) = g.scopes.get(&prepared.scope) else {
            return Lookup::Miss(Miss::Empty);
        };
        if ix.is_empty() {
            return Lookup::Miss(Miss::Empty);
        }
        // Searched with no floor so the best similarity is known for the record even on a
        // miss; the same single pass.
        let mut found = ix.top_k(v, self.config.top_k, f32::NEG_INFINITY);
        let best = found.first().map(|f| f.2);
        found.retain(|f| f.2 >= policy.threshold);
        if found.is_empty() {
            return Lookup::Miss(Miss::BelowThreshold { best });
        }
        let mut refused: Option<Miss> = None;
        let mut stale = Vec::new();
        let mut served = None;
        for (id, _, sim) in found {
            let Some(e) = g.entries.get(&id) else {
                continue;
            };
            if e.expires <= now {
                stale.push(id);
                continue;
            }
            if let Some(q) = &q {
                if let Err(reason) = guard::check(q, &Features::of(&e.question)) {
                    refused.get_or_insert(Miss::Guarded {
                        similarity: sim,
                        reason,
                    });
                    continue;
                }
            }
            served = Some((id, sim));
            break;
        }
        for id in stale {
            g.remove(id);
            g.stats.expired += 1;
        }
        let touched = served.and_then(|(id, sim)| g.touch(id).map(|r| (id, r, sim)));
        drop(g);
        let parsed = touched.and_then(|(id, (json, question), similarity)| {
            Some((self.parsed(id, &json)?, question, similarity))
        });
        match parsed {
            Some((response, question, similarity)) => Lookup::Hit(Hit {
                kind: HitKind::Semantic { similarity },
                response,
                question,
            }),
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
        if !control.may_store() {
            return Err(NotCacheable::Bypass.into());
        }
        request_cacheable(req, policy)?;
        response_cacheable(&response)?;
        let json: Arc<[u8]> = serde_json::to_vec(&response)
            .map_err(|e| InsertError::Serialise(e.to_string()))?
            .into();
        let dims = embedding.as_ref().map_or(0, Vec::len);
        // The names are held twice (the entry's slot and the exact map's key); an index row
        // is the quantised vector, its scale and its id, counted twice: the index's vectors
        // grow by doubling and keep their room when entries leave.
        let row_bytes = if dims > 0 { 2 * (dims + 4 + 8) } else { 0 };
        let bytes = ENTRY_OVERHEAD
            + json.len()
            + prepared.question.len()
            + 2 * (prepared.scope.tenant.len() + prepared.scope.route.len())
            + row_bytes;
        if bytes > self.config.max_bytes {
            return Err(InsertError::TooLarge {
                bytes,
                max: self.config.max_bytes,
            });
        }
        let mut g = self.lock();
        if let Some(ix) = g.scopes.get(&prepared.scope) {
            if dims > 0 && ix.dim() != dims {
                return Err(InsertError::Dimension {
                    got: dims,
                    want: ix.dim(),
                });
            }
        }
        let slot = (prepared.scope.clone(), prepared.key);
        if let Some(old) = g.exact.get(&slot).copied() {
            g.remove(old);
        }
        let id = g.next_id;
        g.next_id += 1;
        g.tick += 1;
        let tick = g.tick;
        let row = match embedding {
            Some(mut v) if !v.is_empty() => {
                normalise(&mut v);
                let ix = g
                    .scopes
                    .entry(prepared.scope.clone())
                    .or_insert_with(|| FlatIndex::new(dims));
                Some(ix.push(id, &v))
            }
            _ => None,
        };
        g.entries.insert(
            id,
            Entry {
                response: json,
                question: Arc::from(prepared.question.as_str()),
                bytes,
                expires: now + policy.ttl,
                tick,
                slot: slot.clone(),
                row,
            },
        );
        g.exact.insert(slot, id);
        g.lru.insert(tick, id);
        g.bytes += bytes;
        while g.bytes > self.config.max_bytes {
            let Some((_, victim)) = g.lru.pop_first() else {
                break;
            };
            g.remove(victim);
            g.stats.evicted += 1;
        }
        Ok(())
    }

    /// An entry's response, parsed from its JSON outside the lock. JSON this cache wrote
    /// always parses; if it ever did not, the entry is dropped and the lookup is a miss.
    fn parsed(&self, id: u64, json: &[u8]) -> Option<Arc<ChatCompletionResponse>> {
        match serde_json::from_slice(json) {
            Ok(response) => Some(Arc::new(response)),
            Err(_) => {
                self.lock().remove(id);
                None
            }
        }
    }

    /// Removes every expired entry; call it now and then (e.g. once a minute).
    pub fn purge_expired(&self, now: Instant) -> usize {
        let mut g = self.lock();
        let old: Vec<u64> = g
            .entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            g.remove(*id);
        }
        g.stats.expired += old.len() as u64;
        old.len()
    }

    pub fn stats(&self) -> Stats {
        let g = self.lock();
        Stats {
            entries: g.entries.len(),
            bytes: g.bytes,
            scopes: g.scopes.len(),
            ..g.stats
        }
    }
}

impl Inner {
    /// Marks `id` used now and returns its response and question.
    fn touch(&mut self, id: u64) -> Option<(Arc<[u8]>, Arc<str>)> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&id)?;
        let old = std::mem::replace(&mut e.tick, tick);
        let response = (Arc::clone(&e.response), Arc::clone(&e.question));
        self.lru.remove(&old);
        self.lru.insert(tick, id);
        Some(response)
    }

    /// Removes `id` from every index.
    fn remove(&mut self, id: u64) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(e.bytes);
        self.lru.remove(&e.tick);
        if self.exact.get(&e.slot) == Some(&id) {
            self.exact.remove(&e.slot);
        }
        if let Some(row) = e.row {
            let scope = &e.slot.0;
            let mut empty = false;
            if let Some(ix) = self.scopes.get_mut(scope) {
                if let Some(moved) = ix.swap_remove(row) {
                    if let Some(m) = self.entries.get_mut(&moved) {
                        m.row = Some(row);
                    }
                }
                empty = ix.is_empty();
            }
            if empty {
                self.scopes.remove(scope);
            }
        }
    }
}
