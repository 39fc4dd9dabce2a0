//! One replica's link to the Redis its fleet shares: the connection (one multiplexed
//! connection that reconnects by itself), the settings, whether Redis is reachable now, and
//! how many replicas are alive. The counters, the cache tier and the change feed are made
//! from it.
//!
//! Whether Redis is reachable, and what it costs when it is not:
//! 1. The link starts up. A command that fails (refused, broken, timed out after
//!    `RedisSettings::timeout`) marks it down: one `warn!` and one count of
//!    `switchyard_redis_outages_total` per outage, whichever part saw it first, and
//!    `switchyard_redis_up` is 0.
//! 2. While it is down nothing on a request's path waits for Redis: limits count this
//!    replica's share (or refuse, `WhenDown::Refuse`), the cache serves from this replica's own
//!    entries.
//! 3. A heartbeat every `RedisSettings::heartbeat` writes this replica's id with a TTL
//!    (`names::HEARTBEAT`) and reads how many replicas are alive; the last count seen (at
//!    least 1) is what limits are divided by during an outage. The first heartbeat that
//!    succeeds marks the link up again (an `info!`), and the shared state is used at once.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchyard_control::SecretUrl;
use tokio::sync::watch;

use super::names::{Names, Scripts};
use crate::metrics::{self as m, LabelValue};

/// How the shared state is reached and what happens when it cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// What a key's limits do while Redis is unreachable.
    pub when_down: WhenDown,
    /// The names' prefix: replicas that share state use the same one.
    pub prefix: String,
    /// How long one command may take, and one connection attempt, before Redis counts as
    /// unreachable.
    pub timeout: Duration,
    /// How often a replica writes its heartbeat (and checks that Redis is back).
    pub heartbeat: Duration,
    /// How long a heartbeat counts: a replica silent that long is no longer counted.
    pub replica_ttl: Duration,
    /// Settlements waiting to be sent; when full, a settlement is dropped (and counted): its
    /// reservation then stays taken until its bucket refills or its budget period ends, so a
    /// dropped settlement errs on the side of refusing.
    pub settle_queue: usize,
    /// Cache entries waiting to be written; when full, an entry stays in this replica only.
    pub cache_queue: usize,
}

/// What limits do while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDown {
    /// Each replica admits its share: every limit divided by the replicas last counted (at
    /// least 1 request or token a minute), so the fleet stays near the limit.
    PerReplica,
    /// Refuse every request of a key with limits (503, `limits_unavailable`): fail closed.
    Refuse,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            when_down: WhenDown::PerReplica,
            prefix: "switchyard".to_owned(),
            timeout: Duration::from_millis(500),
            heartbeat: Duration::from_secs(1),
            replica_ttl: Duration::from_secs(5),
            settle_queue: 16_384,
            cache_queue: 1_024,
        }
    }
}

/// Why the shared state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("redis url {url}: {reason}")]
    Url { url: SecretUrl, reason: String },
}

/// Whether Redis answers now, and how many outages there have been (each outage's fallback
/// counters are its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub outage: u64,
}

/// The link to Redis one replica holds; `Arc`-shared by the counters, the cache tier and the
/// change feed made from it. Dropping the last holder stops its heartbeat.
pub struct Shared {
    url: SecretUrl,
    client: redis::Client,
    conn: ConnectionManager,
    pub(super) settings: RedisSettings,
    pub(crate) names: Names,
    pub(super) scripts: Scripts,
    /// This replica's id in the heartbeats and in what it publishes.
    replica: String,
    link: watch::Sender<Link>,
    replicas: AtomicU32,
    _heartbeat: AbortOnDrop,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("url", &self.url)
            .field("settings", &self.settings)
            .field("replica", &self.replica)
            .field("link", &*self.link.borrow())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Connects to `url` and starts the heartbeat (call it inside the runtime). Only a URL
    /// that cannot be used is an error: a Redis that does not answer yet makes a link that
    /// starts down and comes up when it does.
    pub async fn connect(
        url: &SecretUrl,
        settings: RedisSettings,
    ) -> Result<Arc<Shared>, SharedError> {
        let bad = |e: redis::RedisError| SharedError::Url {
            url: url.clone(),
            reason: url.scrub(&e.to_string()),
        };
        let client = redis::Client::open(url.expose()).map_err(bad)?;
        // No retries inside the manager: an outage is noticed at once and handled here (the
        // heartbeat retries every `heartbeat`), rather than every command waiting out a
        // series of reconnection attempts.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(bad)?;
        let (link, _) = watch::channel(Link {
            up: true,
            outage: 0,
        });
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            names: Names::new(&settings.prefix),
            scripts: Scripts::new(),
            _heartbeat: heartbeat_loop(weak.clone(), settings.heartbeat),
            settings,
            url: url.clone(),
            client,
            conn,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            link,
            replicas: AtomicU32::new(1),
        });
        shared.beat().await;
        Ok(shared)
    }

    /// The connection, for one command or script (a cheap clone of a shared handle).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own for a subscription.
    pub(super) async fn pubsub(&self) -> Result<redis::aio::PubSub, String> {
        match tokio::time::timeout(self.settings.timeout, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(self.scrub(&e)),
            Err(_) => Err("connection timed out".to_owned()),
        }
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    pub fn url(&self) -> &SecretUrl {
        &self.url
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether Redis answers now.
    pub fn link(&self) -> Link {
        *self.link.borrow()
    }

    /// Replicas alive at the last heartbeat that succeeded; at least 1.
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Waits until Redis answers again (returns at once when it does).
    pub async fn until_up(&self) {
        let mut rx = self.link.subscribe();
        let _ = rx.wait_for(|l| l.up).await;
    }

    /// A redis error as text, without the URL's password.
    pub(super) fn scrub(&self, e: &redis::RedisError) -> String {
        self.url.scrub(&e.to_string())
    }

    /// Redis failed `component` (counters, cache, heartbeat): the link is down. Warns and
    /// counts once per outage; returns the outage's number.
    pub(crate) fn mark_down(&self, component: &'static str, e: &redis::RedisError) -> u64 {
        // The closure runs under the channel's lock: exactly one caller turns the link down.
        let mut outage = 0;
        let turned = self.link.send_if_modified(|l| {
            let turning = l.up;
            if turning {
                l.up = false;
                l.outage += 1;
            }
            outage = l.outage;
            turning
        });
        if turned {
            tracing::warn!(
                redis = %self.url,
                component,
                error = %self.scrub(e),
                replicas = self.replicas(),
                when_down = ?self.settings.when_down,
                "Redis is unreachable: limits count per replica (limit / replicas) or refuse as \
                 configured, the cache serves this replica's own entries; requests go on"
            );
            m::counter(
                m::REDIS_OUTAGES,
                &[("component", LabelValue::fixed(component))],
            )
            .increment(1);
            m::gauge(m::REDIS_UP, &[]).set(0.0);
        }
        outage
    }

    /// Redis answered: the link is up (an `info!` when it was down).
    fn mark_up(&self) {
        let was_down = self.link.send_if_modified(|l| {
            if l.up {
                return false;
            }
            l.up = true;
            true
        });
        m::gauge(m::REDIS_UP, &[]).set(1.0);
        if was_down {
            tracing::info!(
                redis = %self.url,
                "Redis answers again: limits and the cache are shared again"
            );
        }
    }

    /// One heartbeat: this replica alive for `replica_ttl`, the replicas counted; the link
    /// marked up or down by the outcome.
    pub async fn beat(&self) {
        let ttl = u64::try_from(self.settings.replica_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn();
        let counted: Result<u32, _> = self
            .scripts
            .heartbeat
            .key(self.names.replicas())
            .arg(&self.replica)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await;
        match counted {
            Ok(n) => {
                self.replicas.store(n.max(1), Ordering::Relaxed);
                m::gauge(m::REPLICAS, &[]).set(f64::from(n.max(1)));
                self.mark_up();
            }
            Err(e) => {
                self.mark_down("heartbeat", &e);
            }
        }
    }
}

/// A task aborted when its owner drops it.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Beats every `every` while the link is held (a weak reference: the loop does not keep it
/// alive, and its owner aborts it on drop).
fn heartbeat_loop(shared: Weak<Shared>, every: Duration) -> AbortOnDrop {
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted when the link is dropped; a heartbeat holds no state of its own"
    )]
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // `connect` beat once already
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.beat().await;
        }
    });
    AbortOnDrop(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_and_its_errors_never_show_the_password() {
        // Nothing listens on port 1: the link starts down, and says so without the password.
        let url = SecretUrl::redis("redis://app:hunter2@127.0.0.1:1/0").unwrap();
        let shared = Shared::connect(&url, RedisSettings::default())
            .await
            .unwrap();
        assert!(!shared.link().up);
        let shown = format!("{shared:?} {}", shared.url());
        assert!(shown.contains("redis://app:*****@127.0.0.1:1/0"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // A URL the client library refuses (a database index that is no number).
        let url = SecretUrl::redis("redis://app:hunter2@host/zero").unwrap();
        let e = Shared::connect(&url, RedisSettings::default())
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    }
}
