//! How a replica hears that what it serves was changed: a config applied, a flag flipped, a
//! prompt pushed or relabelled, a rollout stepped, here or on another replica sharing the
//! store. Every such change moves the store's control generation in the same transaction
//! (`switchyard_store::ControlReader::control_generation`); a [`ChangeFeed`] says what the
//! generation is now, and wakes the control loop (`background.rs`) to look again.
//!
//! The embedded feed, [`PolledGeneration`], wakes it every second and reads the counter. A
//! fleet's feed, [`RedisFeed`], also wakes it at once when another replica announces a change
//! on a Redis channel, keeping the poll as its fallback. Changes made on this replica do not
//! wait for either: where a change commits (the admin API, the rollout controller, an SLO
//! page acting, a config apply), `ControlPlane::changed` announces it
//! ([`ChangeFeed::announce`]) and reloads here at once.
//!
//! [`RedisFeed`], numbered:
//! 1. `announce` never waits: it wakes the feed's publisher task, which publishes this
//!    replica's id on the changes channel (`shared::names`); announcements made while one is
//!    being sent are sent as one.
//! 2. `wakeups` follows the channel (`shared::pubsub::follow`): a message from another replica
//!    wakes the control loop, which reads the generation from the store as it always did. Its
//!    own messages are skipped.
//! 3. After every (re)subscription, as after Redis restarts, it wakes once more: what was
//!    announced while it was away is read then.
//! 4. The poll goes on beside it (`fallback_poll`): a message lost to an outage is made up
//!    for within one poll.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use switchyard_store::{Store, StoreError};
use tokio::sync::{mpsc, Notify};

use crate::data_plane::shared::connection::AbortOnDrop;
use crate::data_plane::shared::pubsub::{follow, Heard};
use crate::data_plane::shared::Shared;

/// Where the control loop hears that the control state may have moved.
pub trait ChangeFeed: Send + Sync {
    /// The control generation now. Blocks: call it off the async threads.
    fn generation(&self) -> Result<u64, StoreError>;

    /// A wake-up each time the generation may have moved since the last one, the first at
    /// once. A wake-up may be spurious (a poll finds nothing new): the caller compares
    /// [`Self::generation`] with the one it last read. The stream never ends.
    fn wakeups(&self) -> BoxStream<'static, ()>;

    /// A change committed on this replica: tell the other replicas now. Never blocks or
    /// waits (it is called from blocking and async code alike).
    fn announce(&self);
}

/// The store's generation counter, read every `every`.
pub struct PolledGeneration {
    store: Arc<dyn Store>,
    every: Duration,
}

impl PolledGeneration {
    /// How often the control loop has always polled: a change made elsewhere takes effect
    /// here within a second.
    pub const EVERY: Duration = Duration::from_secs(1);

    pub fn new(store: Arc<dyn Store>, every: Duration) -> Self {
        PolledGeneration { store, every }
    }
}

impl ChangeFeed for PolledGeneration {
    fn generation(&self) -> Result<u64, StoreError> {
        self.store.control_generation()
    }

    fn wakeups(&self) -> BoxStream<'static, ()> {
        // The interval is made at the first poll, inside the runtime that drives the stream.
        let every = self.every;
        futures::stream::unfold(
            None,
            move |tick: Option<tokio::time::Interval>| async move {
                let mut tick = tick.unwrap_or_else(|| tokio::time::interval(every));
                tick.tick().await;
                Some(((), Some(tick)))
            },
        )
        .boxed()
    }

    fn announce(&self) {
        // Nothing to send: the other replicas read the store's generation at their next poll.
    }
}

/// The store's generation, with a Redis channel that wakes every replica at once when one of
/// them announces a change (numbered in the module comment).
pub struct RedisFeed {
    polled: PolledGeneration,
    shared: Arc<Shared>,
    announced: Arc<Notify>,
    _publisher: AbortOnDrop,
}

impl RedisFeed {
    /// The feed over `store`'s generation, polled every `fallback_poll`, and the fleet's
    /// channel on `shared` (call it inside the runtime).
    pub fn new(store: Arc<dyn Store>, shared: &Arc<Shared>, fallback_poll: Duration) -> Self {
        let announced = Arc::new(Notify::new());
        let publisher = publish_loop(Arc::downgrade(shared), announced.clone());
        RedisFeed {
            polled: PolledGeneration::new(store, fallback_poll),
            shared: shared.clone(),
            announced,
            _publisher: publisher,
        }
    }
}

impl ChangeFeed for RedisFeed {
    fn generation(&self) -> Result<u64, StoreError> {
        self.polled.generation()
    }

    fn wakeups(&self) -> BoxStream<'static, ()> {
        let shared = self.shared.clone();
        let channel = shared.names.changes_channel();
        let own = shared.replica().to_owned();
        // The subscription starts at the first poll, inside the runtime that drives the
        // stream, and ends with it.
        let pushed = futures::stream::unfold(
            None,
            move |followed: Option<(AbortOnDrop, mpsc::Receiver<Heard>)>| {
                let (shared, channel, own) = (shared.clone(), channel.clone(), own.clone());
                async move {
                    let (task, mut heard) = followed.unwrap_or_else(|| {
                        let (tx, rx) = mpsc::channel(16);
                        (follow(&shared, channel, tx), rx)
                    });
                    loop {
                        match heard.recv().await? {
                            Heard::Message(from) if from == own.as_bytes() => continue,
                            Heard::Message(_) | Heard::Subscribed => {
                                return Some(((), Some((task, heard))))
                            }
                        }
                    }
                }
            },
        );
        futures::stream::select(self.polled.wakeups(), pushed).boxed()
    }

    fn announce(&self) {
        self.announced.notify_one();
    }
}

/// Point 1: publishes this replica's id each time it is woken; a failure is left to the
/// others' poll.
fn publish_loop(shared: std::sync::Weak<Shared>, announced: Arc<Notify>) -> AbortOnDrop {
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted with the feed; an announcement lost at shutdown is read at the others' next poll"
    )]
    let task = tokio::spawn(async move {
        loop {
            announced.notified().await;
            let Some(link) = shared.upgrade() else {
                return;
            };
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(link.names.changes_channel())
                .arg(link.replica())
                .query_async(&mut link.conn())
                .await;
            if let Err(e) = sent {
                link.mark_down("feed", &e);
            }
        }
    });
    AbortOnDrop(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_rollout::{Flag, FlagKind};
    use switchyard_store::SqliteStore;

    #[tokio::test(start_paused = true)]
    async fn the_polled_feed_reads_the_stores_generation_at_each_tick() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
        let feed = PolledGeneration::new(store.clone(), PolledGeneration::EVERY);
        assert_eq!(feed.generation().unwrap(), 0);
        let flag = Flag {
            key: "f".into(),
            kind: FlagKind::Boolean { on: true },
            enabled: true,
        };
        store.put_flag(&flag, 1).unwrap();
        assert_eq!(feed.generation().unwrap(), 1);

        // The clock is paused: it moves only as far as the feed waits.
        let mut wakeups = feed.wakeups();
        let start = tokio::time::Instant::now();
        wakeups.next().await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first wake-up is at once"
        );
        wakeups.next().await.unwrap();
        wakeups.next().await.unwrap();
        assert_eq!(start.elapsed(), 2 * PolledGeneration::EVERY);
    }
}
