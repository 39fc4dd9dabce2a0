//! The two load shapes, and the recorder they fill.
//!
//! Closed loop: N workers, each sending its next request as soon as the previous one
//! completes. It finds the throughput a server sustains at a given concurrency, but a slow
//! response also delays the requests behind it, so its latencies understate a stall.
//!
//! Open loop: requests are due on a fixed schedule whatever the server does, and each one's
//! latency runs from the time it was due, not the time it left. A server that stalls for
//! 100 ms is then charged for every request that should have gone out in those 100 ms
//! (no "coordinated omission"). In-flight requests are capped; one due beyond the cap is
//! dropped and counted, never silently delayed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Endpoint, Outcome};

/// Microseconds, 1 µs to 1 hour at 3 significant digits.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What one measured run collected.
pub struct Recorder {
    /// Full response, µs.
    pub total: Histogram<u64>,
    /// Time to first `data:` frame, µs; streaming only.
    pub first_chunk: Histogram<u64>,
    /// Open loop: how late the generator itself sent each request past its due time, µs.
    pub send_lag: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub dropped: u64,
    pub elapsed: Duration,
}

impl Recorder {
    fn new() -> anyhow::Result<Self> {
        Ok(Recorder {
            total: histogram()?,
            first_chunk: histogram()?,
            send_lag: histogram()?,
            errors: BTreeMap::new(),
            dropped: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok { first_chunk, total } => {
                self.total.saturating_record(micros(*total));
                if let Some(f) = first_chunk {
                    self.first_chunk.saturating_record(micros(*f));
                }
            }
            Outcome::Failed(f) => *self.errors.entry(f.to_string()).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Recorder) {
        // Same bounds on both sides, so adding cannot fail; a failure would only lose samples.
        let _ = self.total.add(&other.total);
        let _ = self.first_chunk.add(&other.first_chunk);
        let _ = self.send_lag.add(&other.send_lag);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.dropped += other.dropped;
    }

    pub fn ok(&self) -> u64 {
        self.total.len()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// N workers sending back to back for `duration`.
pub async fn closed(
    ep: Arc<Endpoint>,
    stream: bool,
    workers: usize,
    duration: Duration,
) -> anyhow::Result<Recorder> {
    let mut all = Recorder::new()?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let ep = Arc::clone(&ep);
        let mut rec = Recorder::new()?;
        set.spawn(async move {
            while Instant::now() < deadline {
                let origin = Instant::now();
                let outcome = ep.send(stream, origin).await;
                rec.record(&outcome);
            }
            rec
        });
    }
    while let Some(done) = set.join_next().await {
        all.merge(done?);
    }
    all.elapsed = start.elapsed();
    Ok(all)
}

/// `rate` requests per second for `duration`, each timed from its due time.
pub async fn open(
    ep: Arc<Endpoint>,
    stream: bool,
    rate: u32,
    duration: Duration,
    max_inflight: usize,
) -> anyhow::Result<Recorder> {
    let mut rec = Recorder::new()?;
    let start = Instant::now();
    let count = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let period_ns = 1e9 / f64::from(rate.max(1));
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();

    // The schedule runs on its own OS thread: tokio's timer ticks in whole milliseconds, which
    // at 2,000 requests/s would send them in bursts and charge up to 1 ms of the generator's
    // own lateness to the server. A thread sleep wakes within tens of microseconds.
    let std_start = start.into_std();
    let scheduler = std::thread::Builder::new()
        .name("open-loop-schedule".to_owned())
        .spawn(move || {
            for i in 0..count {
                let due = std_start + Duration::from_nanos((i as f64 * period_ns) as u64);
                wait_until(due);
                if tx.send(Instant::from_std(due)).is_err() {
                    return;
                }
            }
        });

    let scheduler = scheduler?;
    let mut set: JoinSet<(Outcome, Duration)> = JoinSet::new();
    while let Some(due) = rx.recv().await {
        while let Some(done) = set.try_join_next() {
            let (outcome, lag) = done?;
            rec.record(&outcome);
            rec.send_lag.saturating_record(micros(lag));
        }
        if set.len() >= max_inflight {
            rec.dropped += 1;
            continue;
        }
        let ep = Arc::clone(&ep);
        set.spawn(async move {
            let lag = due.elapsed();
            (ep.send(stream, due).await, lag)
        });
    }
    while let Some(done) = set.join_next().await {
        let (outcome, lag) = done?;
        rec.record(&outcome);
        rec.send_lag.saturating_record(micros(lag));
    }
    rec.elapsed = start.elapsed();
    // The thread has sent its last due time by now, since the channel closed.
    if scheduler.join().is_err() {
        anyhow::bail!("the open-loop scheduler thread panicked");
    }
    Ok(rec)
}

/// Linux wakes a sleeping thread up to its timer slack (50 µs by default) late, plus the
/// wake-up itself; sleeping this much short of the due time and yielding the rest keeps the
/// generator's own lateness out of the latencies without busy-waiting the shared core.
const SPIN: Duration = Duration::from_micros(150);

fn wait_until(due: std::time::Instant) {
    let now = std::time::Instant::now();
    if due > now + SPIN {
        #[expect(
            clippy::disallowed_methods,
            reason = "this thread runs no async tasks, so blocking it is the point"
        )]
        std::thread::sleep(due - now - SPIN);
    }
    while std::time::Instant::now() < due {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EndpointSpec;
    use crate::testserver;

    fn endpoint(addr: std::net::SocketAddr, timeout: Duration) -> Arc<Endpoint> {
        let spec = EndpointSpec {
            name: "t".into(),
            base_url: format!("http://{addr}/v1"),
            uri: format!("http://{addr}/v1/chat/completions")
                .parse()
                .unwrap(),
            key: Some("k".into()),
            model: "fast".into(),
            pid: None,
        };
        Arc::new(Endpoint::new(spec, 8, timeout, crate::cli::Workload::Same).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_counts_responses_and_first_chunks() {
        let server = testserver::start(Duration::ZERO).await;
        let ep = endpoint(server.addr, Duration::from_secs(5));
        let rec = closed(Arc::clone(&ep), false, 4, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(rec.ok() > 10, "ok = {}", rec.ok());
        assert_eq!(rec.error_count(), 0);
        assert_eq!(rec.first_chunk.len(), 0);

        let rec = closed(ep, true, 2, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(rec.ok() > 10);
        assert_eq!(rec.first_chunk.len(), rec.ok());
        assert!(rec.first_chunk.max() <= rec.total.max());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_keeps_its_rate_and_counts_drops() {
        let server = testserver::start(Duration::ZERO).await;
        let ep = endpoint(server.addr, Duration::from_secs(5));
        let rec = open(Arc::clone(&ep), false, 200, Duration::from_millis(500), 64)
            .await
            .unwrap();
        assert_eq!(rec.ok() + rec.error_count() + rec.dropped, 100);
        assert_eq!(rec.error_count(), 0);

        // A server slower than the schedule: in-flight fills to the cap, the rest is dropped,
        // and latency includes the wait since the due time.
        let slow = testserver::start(Duration::from_millis(200)).await;
        let ep = endpoint(slow.addr, Duration::from_secs(5));
        let rec = open(ep, false, 200, Duration::from_millis(500), 10)
            .await
            .unwrap();
        assert_eq!(rec.ok() + rec.error_count() + rec.dropped, 100);
        assert!(rec.dropped >= 50, "dropped = {}", rec.dropped);
        assert!(rec.total.value_at_quantile(0.5) >= 200_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_and_timeouts_are_counted() {
        let server = testserver::start(Duration::from_millis(300)).await;
        let ep = endpoint(server.addr, Duration::from_millis(50));
        let rec = closed(ep, false, 1, Duration::from_millis(120))
            .await
            .unwrap();
        assert_eq!(rec.ok(), 0);
        assert!(rec.errors.get("timeout").copied().unwrap_or(0) >= 1);

        let server = testserver::start_failing(503).await;
        let ep = endpoint(server.addr, Duration::from_secs(5));
        let rec = closed(ep, false, 1, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(rec.ok(), 0);
        assert!(rec.errors.get("http 503").copied().unwrap_or(0) >= 1);
    }
}
