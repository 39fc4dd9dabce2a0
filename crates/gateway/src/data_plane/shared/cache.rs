//! The cache's shared tier ([`SharedCache`]): what one replica stores, the others can serve.
//!
//! 1. Every replica keeps its own entries (`InProcessEntries`, under the cache's byte
//!    budget), and serves exact and semantic hits from them first, as the embedded cache does.
//! 2. An answer stored here is also written to Redis as an exact entry (`SET … PX ttl`, its
//!    name the digest of its scope and exact key, `names::Names::cache_entry`, so a tenant
//!    never reads another's), and, when it has an embedding, published with it on the
//!    entries' channel. Writes go through a bounded queue to a task: storing never waits.
//! 3. An exact miss here asks Redis (one round trip, `GET` and `PTTL` pipelined); an entry
//!    found is kept here with the time Redis has left on it, and served.
//! 4. Every replica follows the channel (`pubsub::follow`) and adds the entries other
//!    replicas publish to its own entries, with their embedding: a semantic entry stored by
//!    one replica is found by the others' semantic search as soon as it arrives. The byte
//!    budget holds on every replica, since every entry lives in its `InProcessEntries`.
//! 5. A removed entry (a user disliked the semantic hit it served, `data_plane/cache.rs`, 7.)
//!    is deleted from Redis and the removal published ([`REMOVED`]): every replica removes its
//!    copy when it hears it.
//! 6. While Redis is unreachable (`connection.rs`) the shared tier is bypassed: lookups stay
//!    local, nothing is written, a failure says so once (`warn!`) and
//!    `switchyard_cache_shared_total{outcome="bypassed"}` counts the lookups it skipped.
//!    Entries published meanwhile are lost to the replicas that missed them; the exact ones
//!    are still in Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_cache::entries::Removal;
use switchyard_cache::{Entries, ExactKey, InProcessEntries, NewEntry, Scope, Shape};
use tokio::sync::{mpsc, watch};

use super::connection::{AbortOnDrop, Shared};
use super::pubsub::{follow, Heard};
use crate::metrics::{self as m, LabelValue};

/// The format of what the tier writes and publishes; a replica ignores other formats.
const FORMAT: u8 = 1;
/// The first byte of a published removal (a replica that predates it ignores it as another
/// format): the publishing replica, the scope and the exact key, as in [`Published`].
const REMOVED: u8 = 2;

/// Messages from other replicas waiting to be added here.
const HEARD_QUEUE: usize = 1_024;

/// A replica's shared cache tier.
pub struct SharedCache {
    shared: Arc<Shared>,
    local: Arc<InProcessEntries>,
    writes: mpsc::Sender<Job>,
    subscriptions: watch::Receiver<u64>,
    received: watch::Receiver<u64>,
    _tasks: [AbortOnDrop; 3],
}

/// What the writer does next.
enum Job {
    Write(Write),
    /// Delete the slot's entry from Redis and tell the other replicas to remove theirs.
    Remove {
        scope: Scope,
        key: ExactKey,
    },
}

/// An entry to write to Redis (and to publish, with an embedding).
struct Write {
    scope: Scope,
    key: ExactKey,
    response: Arc<[u8]>,
    question: Arc<str>,
    embedding: Option<Vec<f32>>,
    ttl: Duration,
}

impl SharedCache {
    /// The tier over `shared`, with this replica's own entries under `max_bytes`; starts its
    /// writer and its subscription (call it inside the runtime).
    pub fn new(shared: &Arc<Shared>, max_bytes: usize) -> Arc<Self> {
        let local = Arc::new(InProcessEntries::new(max_bytes));
        let (writes, queued) = mpsc::channel(shared.settings.cache_queue.max(1));
        let (heard_tx, heard) = mpsc::channel(HEARD_QUEUE);
        let (subscribed, subscriptions) = watch::channel(0);
        let (adopted, received) = watch::channel(0);
        let follower = follow(shared, shared.names.cache_channel(), heard_tx);
        let adopting = Adopting {
            local: local.clone(),
            replica: shared.replica().to_owned(),
            subscribed,
            adopted,
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "aborted with the tier; an entry not yet written is only not shared"
        )]
        let writer = tokio::spawn(write_loop(Arc::downgrade(shared), queued));
        #[expect(
            clippy::disallowed_methods,
            reason = "aborted with the tier; it only adds other replicas' entries here"
        )]
        let adopter = tokio::spawn(adopting.run(heard));
        Arc::new(SharedCache {
            shared: shared.clone(),
            local,
            writes,
            subscriptions,
            received,
            _tasks: [follower, AbortOnDrop(writer), AbortOnDrop(adopter)],
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This replica's entries, for `Cache::with_entries`.
    pub fn local(&self) -> Arc<InProcessEntries> {
        self.local.clone()
    }

    /// How many times the tier has subscribed to the entries' channel (again after each
    /// outage): an entry published after the count moved reaches this replica.
    pub fn subscriptions(&self) -> watch::Receiver<u64> {
        self.subscriptions.clone()
    }

    /// How many entries (and removals, point 5) of other replicas were applied here.
    pub fn received(&self) -> watch::Receiver<u64> {
        self.received.clone()
    }

    /// Point 3: the exact entry of the slot from Redis, kept here; whether one was found.
    pub async fn fetch(&self, scope: &Scope, key: &ExactKey, now: Instant) -> bool {
        if !self.shared.link().up {
            count("bypassed");
            return false;
        }
        let name = self.shared.names.cache_entry(scope, key);
        let mut conn = self.shared.conn();
        let found: Result<(Option<Vec<u8>>, i64), _> = redis::pipe()
            .get(&name)
            .pttl(&name)
            .query_async(&mut conn)
            .await;
        let (value, ttl_ms) = match found {
            Ok(found) => found,
            Err(e) => {
                self.shared.mark_down("cache", &e);
                return false;
            }
        };
        let entry = value
            .as_deref()
            .and_then(decode_value)
            .filter(|_| ttl_ms > 0);
        let Some((question, response)) = entry else {
            count("miss");
            return false;
        };
        let entry = NewEntry {
            response: response.into(),
            question: question.into(),
            embedding: None,
            expires: now + Duration::from_millis(ttl_ms.unsigned_abs()),
        };
        let kept = self.local.put(scope, *key, entry).is_ok();
        count(if kept { "hit" } else { "miss" });
        kept
    }

    /// Point 2: queues `entry` (stored in `scope` under `key`, living `ttl`) for Redis and the
    /// other replicas. Never waits; skipped while Redis is unreachable or the queue is full.
    pub fn write(&self, scope: &Scope, key: ExactKey, entry: &NewEntry, ttl: Duration) {
        if !self.shared.link().up {
            return;
        }
        let write = Write {
            scope: scope.clone(),
            key,
            response: entry.response.clone(),
            question: entry.question.clone(),
            embedding: entry.embedding.clone(),
            ttl,
        };
        if self.writes.try_send(Job::Write(write)).is_err() {
            count("dropped");
        }
    }

    /// Point 5: queues the removal of the slot's entry from Redis and from the other
    /// replicas (this replica's own copy is the caller's to remove). Never waits; skipped
    /// while Redis is unreachable or the queue is full.
    pub fn remove(&self, scope: &Scope, key: ExactKey) {
        if !self.shared.link().up {
            return;
        }
        let job = Job::Remove {
            scope: scope.clone(),
            key,
        };
        if self.writes.try_send(job).is_err() {
            count("dropped");
        }
    }
}

fn count(outcome: &'static str) {
    m::counter(m::CACHE_SHARED, &[("outcome", LabelValue::fixed(outcome))]).increment(1);
}

/// Point 2, the writer: each entry `SET` with its TTL and, with an embedding, published, in
/// one round trip. A failure marks the link down and drops the entry: it stays in this
/// replica.
async fn write_loop(shared: std::sync::Weak<Shared>, mut queued: mpsc::Receiver<Job>) {
    while let Some(job) = queued.recv().await {
        let Some(link) = shared.upgrade() else {
            return;
        };
        let w = match job {
            Job::Write(w) => w,
            Job::Remove { scope, key } => {
                let mut pipe = redis::pipe();
                pipe.cmd("DEL")
                    .arg(link.names.cache_entry(&scope, &key))
                    .ignore();
                pipe.cmd("PUBLISH")
                    .arg(link.names.cache_channel())
                    .arg(encode_removal(link.replica(), &scope, &key))
                    .ignore();
                match pipe.query_async::<()>(&mut link.conn()).await {
                    Ok(()) => count("removed"),
                    Err(e) => {
                        link.mark_down("cache", &e);
                    }
                }
                continue;
            }
        };
        let ttl_ms = u64::try_from(w.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(link.names.cache_entry(&w.scope, &w.key))
            .arg(encode_value(&w.question, &w.response))
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        if let Some(embedding) = &w.embedding {
            let message = Published {
                replica: link.replica(),
                scope: &w.scope,
                key: &w.key,
                ttl_ms,
                question: &w.question,
                embedding,
                response: &w.response,
            };
            pipe.cmd("PUBLISH")
                .arg(link.names.cache_channel())
                .arg(message.encode())
                .ignore();
        }
        match pipe.query_async::<()>(&mut link.conn()).await {
            Ok(()) => count("written"),
            Err(e) => {
                link.mark_down("cache", &e);
            }
        }
    }
}

/// Point 4: other replicas' entries added to this one's.
struct Adopting {
    local: Arc<InProcessEntries>,
    replica: String,
    subscribed: watch::Sender<u64>,
    adopted: watch::Sender<u64>,
}

impl Adopting {
    async fn run(self, mut heard: mpsc::Receiver<Heard>) {
        while let Some(h) = heard.recv().await {
            match h {
                Heard::Subscribed => self.subscribed.send_modify(|n| *n += 1),
                Heard::Message(bytes) => self.adopt(&bytes),
            }
        }
    }

    fn adopt(&self, bytes: &[u8]) {
        if let Some((replica, scope, key)) = decode_removal(bytes) {
            if replica != self.replica {
                self.local.evict(&scope, &key, Removal::Disliked);
                self.adopted.send_modify(|n| *n += 1);
            }
            return;
        }
        let Some(p) = Received::decode(bytes) else {
            return;
        };
        if p.replica == self.replica {
            return;
        }
        let now = tokio::time::Instant::now().into_std();
        let entry = NewEntry {
            response: p.response.into(),
            question: p.question.into(),
            embedding: Some(p.embedding),
            expires: now + Duration::from_millis(p.ttl_ms),
        };
        // Refused (larger than this replica's budget, another dimension): not kept here.
        if self.local.put(&p.scope, p.key, entry).is_ok() {
            count("received");
            self.adopted.send_modify(|n| *n += 1);
        }
    }
}

/// An exact entry's value in Redis: the format, the question's length (u32 LE), the
/// question, then the response's JSON.
fn encode_value(question: &str, response: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + question.len() + response.len());
    out.push(FORMAT);
    put_bytes(&mut out, question.as_bytes());
    out.extend_from_slice(response);
    out
}

fn decode_value(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut r = Reader(bytes);
    (r.byte()? == FORMAT).then_some(())?;
    let question = r.text()?;
    Some((question, r.0.to_vec()))
}

/// A removal as published: [`REMOVED`], the publishing replica, the scope (tenant, route,
/// shape), the exact key.
fn encode_removal(replica: &str, scope: &Scope, key: &ExactKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(REMOVED);
    for text in [replica, &scope.tenant, &scope.route] {
        put_bytes(&mut out, text.as_bytes());
    }
    out.extend_from_slice(&scope.shape.0);
    out.extend_from_slice(&key.0);
    out
}

/// `None` for anything but a whole removal.
fn decode_removal(bytes: &[u8]) -> Option<(String, Scope, ExactKey)> {
    let mut r = Reader(bytes);
    (r.byte()? == REMOVED).then_some(())?;
    let (replica, tenant, route) = (r.text()?, r.text()?, r.text()?);
    let shape = Shape(r.array()?);
    let key = ExactKey(r.array()?);
    r.0.is_empty().then_some(())?;
    Some((
        replica,
        Scope {
            tenant,
            route,
            shape,
        },
        key,
    ))
}

/// A semantic entry as published: the format, the publishing replica, the scope (tenant,
/// route, shape), the exact key, the TTL left (ms), the question, the embedding (count, then
/// f32 LE), then the response's JSON.
struct Published<'a> {
    replica: &'a str,
    scope: &'a Scope,
    key: &'a ExactKey,
    ttl_ms: u64,
    question: &'a str,
    embedding: &'a [f32],
    response: &'a [u8],
}

impl Published<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.response.len() + 4 * self.embedding.len());
        out.push(FORMAT);
        for text in [self.replica, &self.scope.tenant, &self.scope.route] {
            put_bytes(&mut out, text.as_bytes());
        }
        out.extend_from_slice(&self.scope.shape.0);
        out.extend_from_slice(&self.key.0);
        out.extend_from_slice(&self.ttl_ms.to_le_bytes());
        put_bytes(&mut out, self.question.as_bytes());
        let dims = u32::try_from(self.embedding.len()).unwrap_or(0);
        out.extend_from_slice(&dims.to_le_bytes());
        for x in self.embedding.iter().take(dims as usize) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(self.response);
        out
    }
}

/// A published entry, read back.
#[derive(Debug, PartialEq)]
struct Received {
    replica: String,
    scope: Scope,
    key: ExactKey,
    ttl_ms: u64,
    question: String,
    embedding: Vec<f32>,
    response: Vec<u8>,
}

impl Received {
    /// `None` for anything malformed or of another format.
    fn decode(bytes: &[u8]) -> Option<Received> {
        let mut r = Reader(bytes);
        (r.byte()? == FORMAT).then_some(())?;
        let (replica, tenant, route) = (r.text()?, r.text()?, r.text()?);
        let shape = Shape(r.array()?);
        let key = ExactKey(r.array()?);
        let ttl_ms = u64::from_le_bytes(r.array()?);
        let question = r.text()?;
        let dims = u32::from_le_bytes(r.array()?) as usize;
        let raw = r.take(dims.checked_mul(4)?)?;
        let embedding = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Received {
            replica,
            scope: Scope {
                tenant,
                route,
                shape,
            },
            key,
            ttl_ms,
            question,
            embedding,
            response: r.0.to_vec(),
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Reads the formats above, refusing to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_entries_read_back_whole_and_nothing_malformed_is_read() {
        let scope = Scope {
            tenant: "acme".into(),
            route: "auto:cheap".into(),
            shape: Shape([3; 32]),
        };
        let key = ExactKey([9; 32]);
        let embedding = [0.6f32, -0.8, 0.0];
        let bytes = Published {
            replica: "r1",
            scope: &scope,
            key: &key,
            ttl_ms: 60_000,
            question: "what is 2+2?",
            embedding: &embedding,
            response: br#"{"id":"x"}"#,
        }
        .encode();
        let got = Received::decode(&bytes).unwrap();
        assert_eq!(
            got,
            Received {
                replica: "r1".into(),
                scope: scope.clone(),
                key,
                ttl_ms: 60_000,
                question: "what is 2+2?".into(),
                embedding: embedding.to_vec(),
                response: br#"{"id":"x"}"#.to_vec(),
            }
        );
        // Cut anywhere before the response, or of another format: nothing.
        let response_starts = bytes.len() - br#"{"id":"x"}"#.len();
        for cut in 0..response_starts {
            assert_eq!(Received::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = FORMAT + 1;
        assert_eq!(Received::decode(&other), None);

        let removal = encode_removal("r1", &scope, &key);
        assert_eq!(
            decode_removal(&removal),
            Some(("r1".to_owned(), scope.clone(), key))
        );
        for cut in 0..removal.len() {
            assert_eq!(decode_removal(&removal[..cut]), None, "cut at {cut}");
        }
        // A removal is not an entry, nor an entry a removal.
        assert_eq!(Received::decode(&removal), None);
        assert_eq!(decode_removal(&bytes), None);

        let value = encode_value("q", b"{}");
        assert_eq!(decode_value(&value), Some(("q".to_owned(), b"{}".to_vec())));
        assert_eq!(decode_value(&value[..3]), None);
    }
}
