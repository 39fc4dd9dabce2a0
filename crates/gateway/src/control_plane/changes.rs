//! How a replica hears that what it serves was changed: a config applied, a flag flipped, a
//! prompt pushed or relabelled, a rollout stepped, here or on another replica sharing the
//! store. Every such change moves the store's control generation in the same transaction
//! (`switchyard_store::ControlReader::control_generation`); a [`ChangeFeed`] says what the
//! generation is now, and wakes the control loop (`background.rs`) to look again.
//!
//! Today's feed, [`PolledGeneration`], wakes it every second and reads the counter. A feed
//! pushed by the database (PostgreSQL's LISTEN/NOTIFY, Redis pub/sub) would wake it at once,
//! keeping a slow poll as its fallback. Changes made on this replica do not wait for either:
//! the admin API reloads as soon as its transaction commits (`ControlPlane::refresh_control`).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use switchyard_store::{Store, StoreError};

/// Where the control loop hears that the control state may have moved.
pub trait ChangeFeed: Send + Sync {
    /// The control generation now. Blocks: call it off the async threads.
    fn generation(&self) -> Result<u64, StoreError>;

    /// A wake-up each time the generation may have moved since the last one, the first at
    /// once. A wake-up may be spurious (a poll finds nothing new): the caller compares
    /// [`Self::generation`] with the one it last read. The stream never ends.
    fn wakeups(&self) -> BoxStream<'static, ()>;
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
