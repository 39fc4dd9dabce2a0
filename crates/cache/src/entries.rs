//! Where the cache's entries live, behind one seam, [`Entries`], so that replicas can share
//! them: today's implementation, [`InProcessEntries`], holds them in this process under one
//! byte budget; a shared one (Redis, for a fleet) replaces it through `Cache::with_entries`.
//! What to store and what to serve (policy, the guard, thresholds) stays in `Cache`.
//!
//! An entry is addressed by its slot: its [`Scope`] and its [`ExactKey`]. The exact tier
//! reads and writes by slot; the semantic tier asks for a scope's nearest entries to an
//! embedding and then reads the one it serves by slot.
//!
//! Why the seam is synchronous: every lookup runs through it, in the request's path, and the
//! semantic tier is a scan over vectors that only a local index can do in microseconds. A
//! shared implementation therefore keeps a local copy (this one) that answers `get` and
//! `nearest`, writes through on `put` by queueing the entry for a background task (with its
//! TTL), and adds the entries other replicas store as they arrive from a subscription. The
//! byte budget then holds on every replica, and scopes keep tenants apart as they do here.
//! Should an exact lookup ever need a round trip to the shared store, that await belongs in
//! the gateway's cache stage, before it calls into this crate.
//!
//! How an entry lives and dies in [`InProcessEntries`]:
//! 1. `put` stores the response once, as its JSON, and indexes it by its slot and, when it
//!    has an embedding, as a row in its scope's `FlatIndex`. Its size in bytes (JSON +
//!    question text + names + vector row + [`ENTRY_OVERHEAD`]) is added to the total;
//!    `tests/memory.rs` holds that figure to the heap an entry really takes, counted by the
//!    allocator. A second put into the same slot replaces the first.
//! 2. Each `get` moves the entry to the most-recently-used end of the LRU order.
//! 3. While the total exceeds the budget, the least-recently-used entry is removed from every
//!    index it is in. An entry larger than the whole budget is refused.
//! 4. An entry past its expiry is never returned by `get`: it is removed and counted;
//!    `purge_expired` sweeps the rest.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::index::FlatIndex;
use crate::key::{ExactKey, Shape};

/// Fixed cost counted per entry: the `Entry` and its slot in three maps (hash tables keep up
/// to twice the slots they use), the LRU node, and the allocations' own headers. Measured
/// with the allocator in `tests/memory.rs`.
pub const ENTRY_OVERHEAD: usize = 900;

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

/// Counters for metrics; read with `Cache::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: usize,
    pub bytes: usize,
    pub scopes: usize,
    pub evicted: u64,
    pub expired: u64,
}

/// Why `put` stored nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PutError {
    #[error("entry of {bytes} bytes is larger than the whole cache ({max} bytes)")]
    TooLarge { bytes: usize, max: usize },
    #[error("embedding has {got} dimensions, the scope holds {want}")]
    Dimension { got: usize, want: usize },
}

/// The cache's entries: what a replica shares with the others.
pub trait Entries: Send + Sync + Debug {
    /// The entry in the slot, marked used; one expired at `now` is removed (and counted as
    /// expired) instead.
    fn get(&self, scope: &Scope, key: &ExactKey, now: Instant) -> Option<Stored>;

    /// Stores `entry` in the slot, replacing what was there, and makes room within the
    /// budget by evicting the least recently used. Refuses an entry larger than the budget,
    /// and an embedding whose dimension differs from the scope's.
    fn put(&self, scope: &Scope, key: ExactKey, entry: NewEntry) -> Result<(), PutError>;

    /// Removes the slot's entry.
    fn evict(&self, scope: &Scope, key: &ExactKey, why: Removal);

    /// Up to `k` entries of `scope` nearest to `v` (unit length), best first, expired ones
    /// included (the caller decides); `None` when the scope holds no embedded entry.
    fn nearest(&self, scope: &Scope, v: &[f32], k: usize) -> Option<Vec<Candidate>>;

    /// Removes every entry expired at `now`; returns how many.
    fn purge_expired(&self, now: Instant) -> usize;

    fn stats(&self) -> Stats;
}

/// Entries shared behind an `Arc`: the cache reads them, and their owner (a replica's shared
/// tier) adds the entries other replicas store.
impl<E: Entries + ?Sized> Entries for Arc<E> {
    fn get(&self, scope: &Scope, key: &ExactKey, now: Instant) -> Option<Stored> {
        (**self).get(scope, key, now)
    }

    fn put(&self, scope: &Scope, key: ExactKey, entry: NewEntry) -> Result<(), PutError> {
        (**self).put(scope, key, entry)
    }

    fn evict(&self, scope: &Scope, key: &ExactKey, why: Removal) {
        (**self).evict(scope, key, why)
    }

    fn nearest(&self, scope: &Scope, v: &[f32], k: usize) -> Option<Vec<Candidate>> {
        (**self).nearest(scope, v, k)
    }

    fn purge_expired(&self, now: Instant) -> usize {
        (**self).purge_expired(now)
    }

    fn stats(&self) -> Stats {
        (**self).stats()
    }
}

/// An answer to store.
#[derive(Debug)]
pub struct NewEntry {
    /// The response's JSON.
    pub response: Arc<[u8]>,
    /// The last user message, normalised (`Prepared::question`).
    pub question: Arc<str>,
    /// The conversation embedding, unit length; `None` for the exact tier only.
    pub embedding: Option<Vec<f32>>,
    pub expires: Instant,
}

/// A stored answer, as `get` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub response: Arc<[u8]>,
    pub question: Arc<str>,
}

/// An entry near a query, as `nearest` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub key: ExactKey,
    pub similarity: f32,
    pub question: Arc<str>,
    pub expires: Instant,
}

/// Why an entry is removed, for the counts in [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Past its expiry.
    Expired,
    /// Its JSON no longer parses (this cache wrote it, so never expected); not counted.
    Unreadable,
    /// A user disliked the answer it served (thumbs down); not counted.
    Disliked,
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

/// The entries in this process, under a byte budget. Methods take `&self` and hold the lock
/// only for the map and index work.
#[derive(Debug)]
pub struct InProcessEntries {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl InProcessEntries {
    pub fn new(max_bytes: usize) -> InProcessEntries {
        InProcessEntries {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves maps that are still each consistent enough to
        // serve or evict from; refusing all caching after one bug would be worse.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries for InProcessEntries {
    fn get(&self, scope: &Scope, key: &ExactKey, now: Instant) -> Option<Stored> {
        let mut g = self.lock();
        let slot = (scope.clone(), *key);
        let id = *g.exact.get(&slot)?;
        if g.entries.get(&id).is_some_and(|e| e.expires <= now) {
            g.remove(id);
            g.stats.expired += 1;
            return None;
        }
        g.touch(id)
    }

    fn put(&self, scope: &Scope, key: ExactKey, entry: NewEntry) -> Result<(), PutError> {
        let dims = entry.embedding.as_ref().map_or(0, Vec::len);
        // The names are held twice (the entry's slot and the exact map's key); an index row
        // is the quantised vector, its scale and its id, counted twice: the index's vectors
        // grow by doubling and keep their room when entries leave.
        let row_bytes = if dims > 0 { 2 * (dims + 4 + 8) } else { 0 };
        let bytes = ENTRY_OVERHEAD
            + entry.response.len()
            + entry.question.len()
            + 2 * (scope.tenant.len() + scope.route.len())
            + row_bytes;
        if bytes > self.max_bytes {
            return Err(PutError::TooLarge {
                bytes,
                max: self.max_bytes,
            });
        }
        let mut g = self.lock();
        if let Some(ix) = g.scopes.get(scope) {
            if dims > 0 && ix.dim() != dims {
                return Err(PutError::Dimension {
                    got: dims,
                    want: ix.dim(),
                });
            }
        }
        let slot = (scope.clone(), key);
        if let Some(old) = g.exact.get(&slot).copied() {
            g.remove(old);
        }
        let id = g.next_id;
        g.next_id += 1;
        g.tick += 1;
        let tick = g.tick;
        let row = match entry.embedding {
            Some(v) if !v.is_empty() => {
                let ix = g
                    .scopes
                    .entry(scope.clone())
                    .or_insert_with(|| FlatIndex::new(dims));
                Some(ix.push(id, &v))
            }
            _ => None,
        };
        g.entries.insert(
            id,
            Entry {
                response: entry.response,
                question: entry.question,
                bytes,
                expires: entry.expires,
                tick,
                slot: slot.clone(),
                row,
            },
        );
        g.exact.insert(slot, id);
        g.lru.insert(tick, id);
        g.bytes += bytes;
        while g.bytes > self.max_bytes {
            let Some((_, victim)) = g.lru.pop_first() else {
                break;
            };
            g.remove(victim);
            g.stats.evicted += 1;
        }
        Ok(())
    }

    fn evict(&self, scope: &Scope, key: &ExactKey, why: Removal) {
        let mut g = self.lock();
        let Some(id) = g.exact.get(&(scope.clone(), *key)).copied() else {
            return;
        };
        g.remove(id);
        if why == Removal::Expired {
            g.stats.expired += 1;
        }
    }

    fn nearest(&self, scope: &Scope, v: &[f32], k: usize) -> Option<Vec<Candidate>> {
        let g = self.lock();
        let ix = g.scopes.get(scope).filter(|ix| !ix.is_empty())?;
        let found = ix.top_k(v, k, f32::NEG_INFINITY);
        Some(
            found
                .into_iter()
                .filter_map(|(id, _, similarity)| {
                    let e = g.entries.get(&id)?;
                    Some(Candidate {
                        key: e.slot.1,
                        similarity,
                        question: Arc::clone(&e.question),
                        expires: e.expires,
                    })
                })
                .collect(),
        )
    }

    fn purge_expired(&self, now: Instant) -> usize {
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

    fn stats(&self) -> Stats {
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
    fn touch(&mut self, id: u64) -> Option<Stored> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&id)?;
        let old = std::mem::replace(&mut e.tick, tick);
        let stored = Stored {
            response: Arc::clone(&e.response),
            question: Arc::clone(&e.question),
        };
        self.lru.remove(&old);
        self.lru.insert(tick, id);
        Some(stored)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scope(tenant: &str) -> Scope {
        Scope {
            tenant: tenant.into(),
            route: "r".into(),
            shape: Shape([0; 32]),
        }
    }

    fn entry(answer: &str, embedding: Option<Vec<f32>>, expires: Instant) -> NewEntry {
        NewEntry {
            response: Arc::from(answer.as_bytes()),
            question: Arc::from(answer),
            embedding,
            expires,
        }
    }

    #[test]
    fn slots_are_read_replaced_and_evicted_by_key() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        let e = InProcessEntries::new(1 << 20);
        let (a, b) = (scope("a"), scope("b"));
        let k = ExactKey([1; 32]);
        e.put(&a, k, entry("one", None, later)).unwrap();
        assert_eq!(e.get(&b, &k, t0), None, "another scope holds nothing");
        e.put(&a, k, entry("two", None, later)).unwrap();
        let got = e.get(&a, &k, t0).unwrap();
        assert_eq!(&*got.response, b"two");
        assert_eq!(e.stats().entries, 1, "a second put replaces the first");
        e.evict(&a, &k, Removal::Unreadable);
        assert_eq!(e.get(&a, &k, t0), None);
        assert_eq!(e.stats(), Stats::default(), "nothing left, nothing counted");
        // Expired: removed by the read that finds it, and counted.
        e.put(&a, k, entry("three", None, later)).unwrap();
        assert_eq!(e.get(&a, &k, later), None);
        assert_eq!((e.stats().entries, e.stats().expired), (0, 1));
    }

    #[test]
    fn nearest_ranks_a_scopes_rows_and_keeps_their_keys_after_removals() {
        let t0 = Instant::now();
        let e = InProcessEntries::new(1 << 20);
        let s = scope("a");
        assert_eq!(e.nearest(&s, &[1.0, 0.0], 4), None);
        for (i, v) in [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]].into_iter().enumerate() {
            let k = ExactKey([i as u8; 32]);
            e.put(&s, k, entry(&format!("q{i}"), Some(v.to_vec()), t0))
                .unwrap();
        }
        let near = e.nearest(&s, &[1.0, 0.0], 2).unwrap();
        let keys: Vec<u8> = near.iter().map(|c| c.key.0[0]).collect();
        assert_eq!(keys, [0, 2]);
        assert_eq!(&*near[1].question, "q2");
        // Removing the first row moves the last into its place; keys still match rows.
        e.evict(&s, &ExactKey([0; 32]), Removal::Expired);
        let near = e.nearest(&s, &[0.6, 0.8], 1).unwrap();
        assert_eq!(near[0].key, ExactKey([2; 32]));
        assert_eq!(e.stats().expired, 1);
        assert_eq!(
            e.put(&s, ExactKey([9; 32]), entry("x", Some(vec![1.0; 3]), t0)),
            Err(PutError::Dimension { got: 3, want: 2 })
        );
    }
}
