//! Following a Redis channel through outages.
//!
//! 1. A connection of its own subscribes to the channel; once it is subscribed the follower
//!    hears [`Heard::Subscribed`] (messages published while it was away are lost, so the
//!    follower catches up by other means: the change feed reads the generation, the cache
//!    has the exact entries in Redis).
//! 2. Each message is handed on as [`Heard::Message`]. When the follower cannot keep up (its
//!    queue is full), a message is dropped: a wake-up is a wake-up, and a cache entry missed
//!    is one this replica fills itself.
//! 3. When the connection ends (Redis stopped, restarted, the network broke) or cannot be
//!    made, it is tried again after a full-jitter backoff of 50 ms doubling to 2 s, for as
//!    long as the follower listens.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use switchyard_resilience::Backoff;
use tokio::sync::mpsc;

use super::connection::{AbortOnDrop, Shared};

const RETRY: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_secs(2),
};

/// What a follower hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Subscribed (again): anything published meanwhile was missed.
    Subscribed,
    Message(Vec<u8>),
}

/// Follows `channel` for as long as `to` is open and the returned task lives (it is aborted on
/// drop). Holds the link weakly: it does not keep the link alive.
pub fn follow(shared: &Arc<Shared>, channel: String, to: mpsc::Sender<Heard>) -> AbortOnDrop {
    let shared = Arc::downgrade(shared);
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted with its owner (the feed's stream, the cache tier); holds no state"
    )]
    let task = tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match listen(&shared, &channel, &to).await {
                Listened::Closed => return,
                Listened::Lost => failures = 0,
                Listened::Failed(e) => {
                    if failures == 0 {
                        tracing::debug!(channel, error = %e, "cannot subscribe; will retry");
                    }
                    failures = failures.saturating_add(1);
                }
            }
            tokio::time::sleep(RETRY.delay(failures, rand::random::<f64>())).await;
        }
    });
    AbortOnDrop(task)
}

enum Listened {
    /// Nobody listens any more (or the link is gone): stop.
    Closed,
    /// Subscribed, then the connection ended.
    Lost,
    /// Could not subscribe.
    Failed(String),
}

/// One subscription, from connecting to the connection's end.
async fn listen(shared: &Weak<Shared>, channel: &str, to: &mpsc::Sender<Heard>) -> Listened {
    let Some(link) = shared.upgrade() else {
        return Listened::Closed;
    };
    let mut pubsub = match link.pubsub().await {
        Ok(p) => p,
        Err(e) => return Listened::Failed(e),
    };
    if let Err(e) = pubsub.subscribe(channel).await {
        return Listened::Failed(link.scrub(&e));
    }
    // The stream below must not keep the link alive while it waits.
    drop(link);
    if to.send(Heard::Subscribed).await.is_err() {
        return Listened::Closed;
    }
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        match to.try_send(Heard::Message(msg.get_payload_bytes().to_vec())) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Listened::Closed,
        }
    }
    // The link warns once per outage; this is one of its consequences.
    tracing::debug!(channel, "lost the subscription to Redis; subscribing again");
    Listened::Lost
}
