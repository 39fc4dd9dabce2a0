//! The path from the request to the disk: a bounded queue and one writer thread.
//!
//! 1. Requests hand their finished record to [`TelemetrySender::record`], which never blocks:
//!    when the queue is full the record is dropped and counted (`lost().queue_full`), because
//!    a request must not wait for the disk.
//! 2. The writer thread blocks until a record arrives, then parks for `flush_interval` while
//!    more gather, then writes everything waiting, `batch_size` records a transaction. It
//!    does not wait on the queue while it sleeps, so senders never have to wake it: under
//!    load the thread wakes a few times a second, not once per request.
//! 3. A failed write (disk full, locked) is kept and retried with backoff while new records
//!    wait in the queue; nothing accepted is discarded for a write error.
//! 4. [`TelemetryWriter::close`] asks the thread to write everything still queued and waits for
//!    it: a clean shutdown loses nothing. When the store keeps failing, the thread retries for
//!    `close_retry`, then gives up; close reports what was written and what was lost
//!    ([`Closed`]), records given up and records finished after close counted as
//!    `lost().shutdown`.
//! 5. A record may come with a [`ContentJob`] (the request's masked prompt and answer): the
//!    thread runs it as it takes the record off the queue, so the request path never pays
//!    for masking. Masking long texts is slow (about 0.13 ms a KB, `eval/pii.md`), so when
//!    the thread falls behind (more than half the queue waiting) it skips content, and
//!    counts it (`content_shed()`), rather than let the queue fill and drop records.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::content::ContentJob;
use crate::spool::Spool;
use crate::{RecordStore, RequestRecord};

enum Msg {
    Record(Box<RequestRecord>, Option<ContentJob>),
    Close,
}

/// A record as the writer takes it off the queue: with its content made, when it has some,
/// unless more than half the queue is waiting (5.).
fn ready(
    record: Box<RequestRecord>,
    content: Option<ContentJob>,
    settings: &WriterSettings,
    counters: &Counters,
) -> RequestRecord {
    let mut record = *record;
    if let Some(job) = content {
        if counters.depth.load(Ordering::Relaxed) > settings.queue_capacity / 2 {
            counters.content_shed.fetch_add(1, Ordering::Relaxed);
        } else {
            record.content = Some(Box::new(job()));
        }
    }
    record
}

#[derive(Default)]
struct Counters {
    /// Accepted and not yet written (counted before the send, so close sees every one).
    depth: AtomicUsize,
    queue_full: AtomicU64,
    lost_at_shutdown: AtomicU64,
    written: AtomicU64,
    content_shed: AtomicU64,
    /// Records in the spool, waiting for the store.
    spooled: AtomicUsize,
    /// A spool is configured and its last append (if any) was taken.
    spool_open: AtomicBool,
    healthy: AtomicBool,
    /// Set by `close`: the writer stops gathering and writes what is queued.
    closing: AtomicBool,
}

/// Records that will never be written, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Refused because the queue was full.
    pub queue_full: u64,
    /// Accepted but not written when the writer stopped (the store kept failing), or finished
    /// after it stopped.
    pub shutdown: u64,
}

impl Lost {
    pub fn total(&self) -> u64 {
        self.queue_full + self.shutdown
    }
}

/// What a writer did over its life, as [`TelemetryWriter::close`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub written: u64,
    pub lost: Lost,
    /// Records left in the spool (the store still refused them): written at the next start
    /// on the same data folder.
    pub spooled: u64,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.spooled > 0 {
            write!(
                f,
                "{} request records wait in the spool for the next start; ",
                self.spooled
            )?;
        }
        if self.lost.total() == 0 {
            let other = if self.spooled > 0 { "other " } else { "" };
            return write!(
                f,
                "all {} {other}request records were written",
                self.written
            );
        }
        write!(
            f,
            "{} request records were written and {} lost ({} at shutdown, the store failing; {} to a full queue)",
            self.written,
            self.lost.total(),
            self.lost.shutdown,
            self.lost.queue_full
        )
    }
}

/// Cheap to clone; one per request path.
#[derive(Clone)]
pub struct TelemetrySender {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
}

impl TelemetrySender {
    /// Queues a record; returns false (and counts it as lost) when the queue is full or the
    /// writer has stopped.
    pub fn record(&self, record: RequestRecord) -> bool {
        self.send(record, None)
    }

    /// Queues a record with the job that makes its content, run on the writer's thread.
    pub fn record_with_content(&self, record: RequestRecord, content: ContentJob) -> bool {
        self.send(record, Some(content))
    }

    fn send(&self, record: RequestRecord, content: Option<ContentJob>) -> bool {
        self.counters.depth.fetch_add(1, Ordering::Relaxed);
        let refused = match self.tx.try_send(Msg::Record(Box::new(record), content)) {
            Ok(()) => return true,
            Err(TrySendError::Full(_)) => &self.counters.queue_full,
            Err(TrySendError::Disconnected(_)) => &self.counters.lost_at_shutdown,
        };
        self.counters.depth.fetch_sub(1, Ordering::Relaxed);
        refused.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Records written without the content they came with, because the writer was behind.
    pub fn content_shed(&self) -> u64 {
        self.counters.content_shed.load(Ordering::Relaxed)
    }

    pub fn queue_depth(&self) -> usize {
        self.counters.depth.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> Lost {
        Lost {
            queue_full: self.counters.queue_full.load(Ordering::Relaxed),
            shutdown: self.counters.lost_at_shutdown.load(Ordering::Relaxed),
        }
    }

    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// False while the last write failed.
    pub fn healthy(&self) -> bool {
        self.counters.healthy.load(Ordering::Relaxed)
    }

    /// Records in the spool, accepted and waiting for the store.
    pub fn spooled(&self) -> usize {
        self.counters.spooled.load(Ordering::Relaxed)
    }

    /// Whether records the store refuses can go to the spool: one is configured, and it took
    /// the last records offered to it (it was neither full nor failing).
    pub fn spool_open(&self) -> bool {
        self.counters.spool_open.load(Ordering::Relaxed)
    }
}

pub struct TelemetryWriter {
    sender: TelemetrySender,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// How long a closing writer keeps retrying a store that fails before giving up (on the
    /// records that the spool, if any, has no room for).
    pub close_retry: Duration,
    /// Where records wait on disk while the store refuses them; `None` keeps them in memory,
    /// in the queue, only.
    pub spool: Option<SpoolSettings>,
}

/// The spool of a writer ([`crate::spool`]).
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl TelemetryWriter {
    /// Starts the writer thread over `store`: a connection of its own (on SQLite, readers
    /// then never wait for its batches), of which it needs only the records' part.
    pub fn start(
        store: Box<dyn RecordStore + Send>,
        settings: WriterSettings,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(settings.queue_capacity);
        let spool = match &settings.spool {
            Some(s) => Some(Spool::open(&s.dir, s.max_bytes)?),
            None => None,
        };
        let counters = Arc::new(Counters {
            healthy: AtomicBool::new(true),
            spooled: AtomicUsize::new(spool.as_ref().map_or(0, Spool::records)),
            spool_open: AtomicBool::new(spool.is_some()),
            ..Counters::default()
        });
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("telemetry-writer".into())
            .spawn(move || run(&*store, rx, settings, &thread_counters, spool))?;
        Ok(TelemetryWriter {
            sender: TelemetrySender { tx, counters },
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> TelemetrySender {
        self.sender.clone()
    }

    /// Writes everything queued before this call, then stops the thread, and says what was
    /// written and lost. Blocks: call it from a blocking context (`spawn_blocking`) in async
    /// code.
    pub fn close(mut self) -> Closed {
        self.sender.counters.closing.store(true, Ordering::Release);
        // A blocking send: the close marker waits for room behind the queued records.
        let _ = self.sender.tx.send(Msg::Close);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // The thread has stopped and its queue is gone: whatever is still counted as queued
        // (given up on, or sent after the close marker) will never be written.
        let counters = &self.sender.counters;
        let stranded = counters.depth.swap(0, Ordering::Relaxed) as u64;
        counters
            .lost_at_shutdown
            .fetch_add(stranded, Ordering::Relaxed);
        Closed {
            written: self.sender.written(),
            lost: self.sender.lost(),
            spooled: self.sender.spooled() as u64,
        }
    }
}

/// Parks for `flush_interval` while records gather, not waiting on the queue; `close` ends it
/// early. The flag decides, not the wake-up: the queue's own blocking parks this thread too and
/// may take `close`'s unpark, which would leave the writer asleep for a whole interval.
fn gather(flush_interval: Duration, counters: &Counters) {
    let until = std::time::Instant::now() + flush_interval;
    while !counters.closing.load(Ordering::Acquire) {
        let now = std::time::Instant::now();
        if now >= until {
            return;
        }
        std::thread::park_timeout(until - now);
    }
}

/// When to try a failing store again: after 100 ms, doubling up to [`MAX_RETRY_DELAY`].
struct Retry {
    delay: Duration,
    /// `None` while the store answers.
    next: Option<Instant>,
}

impl Retry {
    const FIRST: Duration = Duration::from_millis(100);

    fn due(&self) -> bool {
        self.next.is_none_or(|at| Instant::now() >= at)
    }

    fn failed(&mut self) {
        self.next = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_RETRY_DELAY);
    }

    fn succeeded(&mut self) {
        self.delay = Retry::FIRST;
        self.next = None;
    }

    /// How long until the next try.
    fn wait(&self) -> Duration {
        self.next.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        })
    }
}

/// Runs until closed; the queue (`rx`) is dropped on return, so later sends fail and count.
fn run(
    store: &dyn RecordStore,
    rx: Receiver<Msg>,
    settings: WriterSettings,
    counters: &Counters,
    mut spool: Option<Spool>,
) {
    let mut pending: Vec<RequestRecord> = Vec::new();
    let mut closing = false;
    // Set when the close marker is seen: the last moment a failing write is retried.
    let mut give_up_at: Option<Instant> = None;
    // While the store fails, records go to the spool until it is time to try it again.
    let mut retry = Retry {
        delay: Retry::FIRST,
        next: None,
    };
    loop {
        if closing && give_up_at.is_none() {
            give_up_at = Some(Instant::now() + settings.close_retry);
        }
        if pending.is_empty() && !closing {
            // Spooled records wait for the store: wake to try it even when no record comes.
            let waiting = spool.as_ref().is_some_and(|s| !s.is_empty());
            let patience = waiting.then(|| retry.wait().max(Duration::from_millis(10)));
            closing = wait_for_records(&rx, &mut pending, patience, &settings, counters);
        }
        closing |= take_waiting(&rx, &mut pending, closing, &settings, counters);
        // At close the store is tried once more whatever the backoff says: it may be back,
        // and what the spool holds is better written now than left for the next start.
        let mut failed = !retry.due() && !closing;
        // The spool's records are older than the queue's: they go first.
        if let (false, Some(spool)) = (failed, spool.as_mut()) {
            match replay(spool, store, counters) {
                Ok(0) => {}
                Ok(_) => retry.succeeded(),
                Err(()) => {
                    retry.failed();
                    failed = true;
                }
            }
        }
        if pending.is_empty() {
            if closing {
                return;
            }
            continue;
        }
        if !failed {
            if write_pending(store, &mut pending, settings.batch_size, counters) {
                retry.succeeded();
                continue;
            }
            retry.failed();
        }
        if let Some(spool) = spool.as_mut() {
            if spool_pending(spool, &mut pending, counters) {
                if closing {
                    return;
                }
                continue;
            }
        }
        let out_of_time = give_up_at.is_some_and(|at| Instant::now() + retry.wait() > at);
        if closing && out_of_time {
            // Counted as lost by `close`: they are still in `depth`.
            tracing::error!(
                records = pending.len(),
                "giving up on telemetry records at shutdown"
            );
            return;
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "a dedicated writer thread, not a runtime thread"
        )]
        std::thread::sleep(retry.wait());
    }
}

/// Blocks until a record arrives (then gathers more for `flush_interval`), or `patience`
/// passes; returns whether the queue was closed.
fn wait_for_records(
    rx: &Receiver<Msg>,
    pending: &mut Vec<RequestRecord>,
    patience: Option<Duration>,
    settings: &WriterSettings,
    counters: &Counters,
) -> bool {
    let got = match patience {
        Some(patience) => match rx.recv_timeout(patience) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Close),
        },
        None => Some(rx.recv().unwrap_or(Msg::Close)),
    };
    match got {
        Some(Msg::Record(r, content)) => {
            pending.push(ready(r, content, settings, counters));
            gather(settings.flush_interval, counters);
            false
        }
        Some(Msg::Close) => true,
        None => false,
    }
}

/// Takes every record waiting; the close marker, once seen, means nothing follows it.
/// Returns whether it was seen.
fn take_waiting(
    rx: &Receiver<Msg>,
    pending: &mut Vec<RequestRecord>,
    closing: bool,
    settings: &WriterSettings,
    counters: &Counters,
) -> bool {
    if closing {
        return true;
    }
    loop {
        match rx.try_recv() {
            Ok(Msg::Record(r, content)) => pending.push(ready(r, content, settings, counters)),
            Ok(Msg::Close) | Err(TryRecvError::Disconnected) => return true,
            Err(TryRecvError::Empty) => return false,
        }
    }
}

/// Writes `pending` in batches; false (keeping what is left) when the store fails.
fn write_pending(
    store: &dyn RecordStore,
    pending: &mut Vec<RequestRecord>,
    batch_size: usize,
    counters: &Counters,
) -> bool {
    while !pending.is_empty() {
        let n = pending.len().min(batch_size);
        match store.write_batch(&pending[..n]) {
            Ok(()) => {
                pending.drain(..n);
                counters.depth.fetch_sub(n, Ordering::Relaxed);
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
                counters.healthy.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                counters.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, records = pending.len(), "telemetry write failed; will retry");
                return false;
            }
        }
    }
    true
}

/// The longest wait between two tries of a failing store.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Writes the spool to the store, oldest segment first, until it is empty or the store fails;
/// returns how many records were written.
fn replay(spool: &mut Spool, store: &dyn RecordStore, counters: &Counters) -> Result<usize, ()> {
    let mut written = 0;
    while !spool.is_empty() {
        match spool.replay_one(store) {
            Ok(n) => {
                written += n;
                counters.spooled.fetch_sub(n, Ordering::Relaxed);
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
                counters.healthy.store(true, Ordering::Relaxed);
                // What a segment held beyond the lines read (a line cut short) is gone.
                counters.spooled.store(spool.records(), Ordering::Relaxed);
                if spool.is_empty() {
                    tracing::info!("the spooled request records are written");
                }
            }
            Err(e) => {
                counters.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, records = spool.records(), "request records stay spooled; will retry");
                return Err(());
            }
        }
    }
    Ok(written)
}

/// Moves `pending` to the spool; false (keeping them) when it has no room or cannot be written.
fn spool_pending(spool: &mut Spool, pending: &mut Vec<RequestRecord>, counters: &Counters) -> bool {
    match spool.append(pending) {
        Ok(true) => {
            counters.depth.fetch_sub(pending.len(), Ordering::Relaxed);
            counters.spooled.store(spool.records(), Ordering::Relaxed);
            counters.spool_open.store(true, Ordering::Relaxed);
            pending.clear();
            true
        }
        Ok(false) => {
            counters.spool_open.store(false, Ordering::Relaxed);
            tracing::error!(
                records = pending.len(),
                spooled = spool.records(),
                "the spool is full; request records wait in memory"
            );
            false
        }
        Err(e) => {
            counters.spool_open.store(false, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot write to the spool; request records wait in memory");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContentStore, SqliteStore};

    #[test]
    fn close_flushes_everything_queued() {
        let dir = tempfile::tempdir().unwrap();
        let writer = TelemetryWriter::start(
            Box::new(SqliteStore::open_in(dir.path()).unwrap()),
            WriterSettings {
                queue_capacity: 10_000,
                batch_size: 64,
                flush_interval: Duration::from_secs(3600),
                close_retry: Duration::from_secs(10),
                spool: None,
            },
        )
        .unwrap();
        let sender = writer.sender();
        for i in 0..1000 {
            assert!(sender.record(RequestRecord {
                request_id: format!("r{i}"),
                endpoint: "chat".into(),
                ..RequestRecord::default()
            }));
        }
        let closed = writer.close();
        assert_eq!(
            closed,
            Closed {
                written: 1000,
                lost: Lost::default(),
                spooled: 0,
            }
        );
        assert_eq!(closed.to_string(), "all 1000 request records were written");
        assert_eq!(
            SqliteStore::open_in(dir.path()).unwrap().count().unwrap(),
            1000
        );
        assert_eq!(sender.written(), 1000);
        assert_eq!(sender.queue_depth(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        // A lock held by another connection stalls the writer, so the queue fills.
        let blocker = rusqlite::Connection::open(dir.path().join("switchyard.db")).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let writer = TelemetryWriter::start(
            Box::new(store),
            WriterSettings {
                queue_capacity: 4,
                batch_size: 1,
                flush_interval: Duration::from_millis(1),
                close_retry: Duration::from_secs(10),
                spool: None,
            },
        )
        .unwrap();
        let sender = writer.sender();
        let accepted = (0..100)
            .filter(|_| sender.record(RequestRecord::default()))
            .count();
        assert!(accepted < 100);
        assert_eq!(sender.lost().queue_full as usize, 100 - accepted);
        blocker.execute_batch("COMMIT;").unwrap();
        writer.close();
        assert_eq!(
            SqliteStore::open_in(dir.path()).unwrap().count().unwrap() as usize,
            accepted
        );
    }

    #[test]
    fn a_store_failing_at_shutdown_is_reported_as_loss() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        // Every write of a record fails, as on a full disk.
        rusqlite::Connection::open(dir.path().join("switchyard.db"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .unwrap();
        let writer = TelemetryWriter::start(
            Box::new(store),
            WriterSettings {
                queue_capacity: 100,
                batch_size: 10,
                flush_interval: Duration::from_millis(1),
                close_retry: Duration::ZERO,
                spool: None,
            },
        )
        .unwrap();
        let sender = writer.sender();
        for _ in 0..30 {
            assert!(sender.record(RequestRecord::default()));
        }
        let closed = writer.close();
        assert_eq!(
            closed,
            Closed {
                written: 0,
                lost: Lost {
                    queue_full: 0,
                    shutdown: 30
                },
                spooled: 0,
            }
        );
        let said = closed.to_string();
        assert!(
            said.contains("0 request records were written and 30 lost"),
            "{said}"
        );
        // A record finished after the writer stopped is lost too, and counted.
        assert!(!sender.record(RequestRecord::default()));
        assert_eq!(sender.lost().shutdown, 31);
    }

    fn refuse_writes(dir: &std::path::Path) {
        rusqlite::Connection::open(dir.join("switchyard.db"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'database down'); END;",
            )
            .unwrap();
    }

    fn allow_writes(dir: &std::path::Path) {
        rusqlite::Connection::open(dir.join("switchyard.db"))
            .unwrap()
            .execute_batch("DROP TRIGGER refuse;")
            .unwrap();
    }

    /// Records `r0`.. `rN-1`, each sent again while the queue is full.
    fn send_all(sender: &TelemetrySender, n: usize) {
        for i in 0..n {
            let record = RequestRecord {
                request_id: format!("r{i}"),
                ..RequestRecord::default()
            };
            while !sender.record(record.clone()) {
                std::thread::yield_now();
            }
        }
    }

    fn spooled_writer(dir: &std::path::Path) -> TelemetryWriter {
        TelemetryWriter::start(
            Box::new(SqliteStore::open_in(dir).unwrap()),
            WriterSettings {
                queue_capacity: 16,
                batch_size: 8,
                flush_interval: Duration::from_millis(1),
                close_retry: Duration::ZERO,
                spool: Some(SpoolSettings {
                    dir: dir.join("spool"),
                    max_bytes: 16 << 20,
                }),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_store_that_is_down_loses_nothing_the_spool_has_room_for() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in(dir.path()).unwrap();
        refuse_writes(dir.path());
        let writer = spooled_writer(dir.path());
        let sender = writer.sender();
        // Far more than the queue holds: the writer moves them to the disk as they come.
        let mut accepted = 0;
        for i in 0..500 {
            let record = RequestRecord {
                request_id: format!("r{i}"),
                endpoint: "chat".into(),
                ..RequestRecord::default()
            };
            while !sender.record(record.clone()) {
                std::thread::yield_now();
            }
            accepted += 1;
        }
        // (A send refused by the full queue is retried above, so `queue_full` counts tries.)
        let closed = writer.close();
        assert_eq!(closed.lost.shutdown, 0, "{closed}");
        assert_eq!(closed.written, 0);
        assert_eq!(sender.spooled(), accepted);

        // The database is back; the next start writes what waited, oldest first.
        allow_writes(dir.path());
        let writer = spooled_writer(dir.path());
        let closed = writer.close();
        assert_eq!(closed.written, 500);
        let store = SqliteStore::open_in(dir.path()).unwrap();
        assert_eq!(store.count().unwrap(), 500);
        let mut ids: Vec<String> = store
            .recent(500)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 500, "each record once");
    }

    #[test]
    fn spooled_records_are_written_when_the_store_returns_while_running() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in(dir.path()).unwrap();
        refuse_writes(dir.path());
        let writer = spooled_writer(dir.path());
        let sender = writer.sender();
        send_all(&sender, 40);
        while sender.spooled() + (sender.written() as usize) < 40 || sender.healthy() {
            std::thread::yield_now();
        }
        allow_writes(dir.path());
        // No new record comes: the writer retries the store on its own.
        while sender.written() < 40 {
            std::thread::yield_now();
        }
        assert_eq!(sender.spooled(), 0);
        assert!(sender.healthy());
        assert_eq!(writer.close().lost.shutdown, 0);
    }

    #[test]
    fn a_close_tries_the_store_again_for_the_spool_whatever_the_backoff() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in(dir.path()).unwrap();
        refuse_writes(dir.path());
        let writer = spooled_writer(dir.path());
        let sender = writer.sender();
        send_all(&sender, 40);
        // Several failures in: the next try is up to seconds away.
        while sender.spooled() < 40 {
            std::thread::yield_now();
        }
        allow_writes(dir.path());
        let closed = writer.close();
        assert_eq!((closed.written, closed.spooled), (40, 0), "{closed}");
        assert_eq!(
            SqliteStore::open_in(dir.path()).unwrap().count().unwrap(),
            40
        );
    }

    /// A writer on a new store in `dir`, in batches of 64.
    fn writer_in(dir: &std::path::Path, queue_capacity: usize, flush_ms: u64) -> TelemetryWriter {
        let settings = WriterSettings {
            queue_capacity,
            batch_size: 64,
            flush_interval: Duration::from_millis(flush_ms),
            close_retry: Duration::from_secs(10),
            spool: None,
        };
        TelemetryWriter::start(Box::new(SqliteStore::open_in(dir).unwrap()), settings).unwrap()
    }

    #[test]
    fn content_is_made_on_the_writer_thread_and_written_with_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_in(dir.path(), 16, 1);
        let record = RequestRecord {
            request_id: "r".into(),
            endpoint: "chat".into(),
            ..RequestRecord::default()
        };
        assert!(writer.sender().record_with_content(
            record,
            Box::new(|| crate::RequestContent {
                messages: vec![crate::ContentMessage {
                    role: "user".into(),
                    // Where the job ran.
                    text: std::thread::current().name().unwrap_or("").to_owned(),
                    ..crate::ContentMessage::default()
                }],
                ..crate::RequestContent::default()
            }),
        ));
        writer.close();
        let content = SqliteStore::open_in(dir.path())
            .unwrap()
            .request_content("r")
            .unwrap()
            .unwrap();
        assert_eq!(content.messages[0].text, "telemetry-writer");
    }

    #[test]
    fn a_writer_behind_sheds_content_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_in(dir.path(), 8, 1);
        let sender = writer.sender();
        let record = |i: usize| RequestRecord {
            request_id: format!("r{i}"),
            ..RequestRecord::default()
        };
        // The first record's content holds the writer until the other seven wait behind it.
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        assert!(sender.record_with_content(
            record(0),
            Box::new(move || {
                let _ = started.send(());
                let _ = wait.recv();
                crate::RequestContent::default()
            })
        ));
        running.recv().unwrap();
        for i in 1..8 {
            assert!(sender.record_with_content(record(i), Box::new(crate::RequestContent::default)));
        }
        go.send(()).unwrap();
        writer.close();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        assert_eq!(store.count().unwrap(), 8);
        let stored: Vec<bool> = (0..8)
            .map(|i| store.request_content(&format!("r{i}")).unwrap().is_some())
            .collect();
        assert_eq!(
            stored,
            [true, false, false, false, false, false, false, false]
        );
        assert_eq!(sender.content_shed(), 7);
    }
}
