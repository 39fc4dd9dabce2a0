//! Waiting for what a server does in the background, without sleeping a guessed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// Waits for `done` (checked every 20 ms), failing the test after `limit`: for what a server
/// (another replica, a writer thread, a heartbeat) does in the background. `limit` is a
/// deadline for a slow machine, never a measurement.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
