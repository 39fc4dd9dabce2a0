//! Switchyard's response cache, as a library: an exact tier (a normalised hash of everything
//! in a request that changes the answer) and a semantic tier (nearest neighbours over the
//! embeddings of the conversation's words, scoped by tenant, route and the request's shape:
//! system prompt, tools, response format, parameters and the conversation's structure, see
//! `key`; with a rule-based guard against false hits), under one byte budget with LRU eviction and per-route TTL.
//!
//! It owns keys, the index, the guard, the policy helpers and the replay of a cached answer as
//! a stream. The entries themselves live behind the `Entries` trait (`entries`): in this
//! process by default (`InProcessEntries`), shared by replicas with another implementation.
//! It must not do I/O, read clocks (time is passed in) or embed text itself: embeddings come
//! through the `Embedder` trait, implemented by the gateway over `switchyard-embed`.
//!
//! The gateway's call sequence:
//! ```text
//! let prepared = Prepared::new(tenant, route, &req);
//! match cache.lookup(&req, &prepared, &policy, control, embedder, now) {
//!     Lookup::Hit(hit) => /* answer hit.response, or replay_chunks(&hit.response, usage) */,
//!     Lookup::Miss(why) => /* call upstream, then: */
//!         cache.insert(&req, &prepared, Some(prepared.embed(embedder)), resp, &policy, control, now),
//! }
//! ```
//! (Keep the embedding from the lookup to avoid computing it twice: `lookup_exact`,
//! `Prepared::embed`, `lookup_semantic` are the same steps, separately callable.)
//!
//! A semantic hit can be checked before it is served: `pair::PairCheck` (MiniLM token
//! alignment and a trained model, `eval/cache.md`), given the token vectors by the caller;
//! `Hit::question` and `Hit::key` are what it and the feedback that removes an entry need.
//! The older pair verifier (`examples/eval/verify.rs`) is evaluation code only.

pub mod entries;
pub mod guard;
pub mod index;
pub mod key;
pub mod pair;
pub mod policy;
pub mod replay;
pub mod store;

pub use entries::{Entries, InProcessEntries, NewEntry, Scope, Stats};
pub use guard::{check_texts, GuardReason};
pub use key::{ExactKey, Shape, NOT_SHAPING};
pub use policy::{request_cacheable, response_cacheable, CacheControl, NotCacheable, RoutePolicy};
pub use replay::{replay_chunks, word_pieces};
pub use store::{Cache, CacheConfig, Hit, HitKind, InsertError, Lookup, Miss, Prepared};

/// Turns text into a vector. Implementations need not normalise; the cache does.
pub trait Embedder: Send + Sync {
    fn embed(&self, text: &str) -> Vec<f32>;
}
