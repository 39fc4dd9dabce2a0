//! What only the shared database has to show: replicas migrating an empty database at once,
//! PostgreSQL stopped and started again under a live store, and the password of the URL kept
//! out of errors, logs and `Debug` output.

use std::io::Write;
use std::sync::{Arc, Barrier, Mutex};

use switchyard_store::{PostgresStore, RecordStore, RequestRecord, Store};
use switchyard_testkit::servers::PostgresServer;

fn server(test: &str) -> Option<PostgresServer> {
    match PostgresServer::start() {
        Ok(server) => Some(server),
        Err(e) => {
            e.skip(test);
            None
        }
    }
}

fn record(id: &str) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        started_at_ms: 1,
        endpoint: "chat".into(),
        status: 200,
        ..RequestRecord::default()
    }
}

/// `(rows, distinct versions, highest version)` of `schema_migrations`.
fn migrations(url: &str) -> (i64, i64, i64) {
    let mut db = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let row = db
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT version), MAX(version) FROM schema_migrations",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn replicas_starting_at_once_on_an_empty_database_migrate_it_once() {
    let Some(pg) = server("replicas_starting_at_once_on_an_empty_database_migrate_it_once") else {
        return;
    };
    let url = pg.url();
    let replicas = 3;
    let start = Barrier::new(replicas);
    let stores: Vec<PostgresStore> = std::thread::scope(|s| {
        let connects: Vec<_> = (0..replicas)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    PostgresStore::connect(&url)
                })
            })
            .collect();
        connects
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect()
    });
    let (rows, distinct, highest) = migrations(&url);
    assert_eq!((rows, distinct), (highest, highest), "each migration once");
    assert!(highest >= 5);
    // Every replica works on the one schema, and connecting again applies nothing.
    for (i, store) in stores.iter().enumerate() {
        store.write_batch(&[record(&format!("r{i}"))]).unwrap();
    }
    assert_eq!(stores[0].count().unwrap(), replicas as u64);
    PostgresStore::connect(&url).unwrap();
    assert_eq!(migrations(&url), (highest, highest, highest));
}

#[test]
fn calls_fail_while_postgresql_is_down_and_work_again_after() {
    let Some(pg) = server("calls_fail_while_postgresql_is_down_and_work_again_after") else {
        return;
    };
    let store: Box<dyn Store> = Box::new(PostgresStore::connect(&pg.url()).unwrap());
    store.write_batch(&[record("before")]).unwrap();
    store.control_generation().unwrap();

    pg.stop();
    assert!(store.write_batch(&[record("during")]).is_err());
    assert!(store.count().is_err());
    assert!(store.check_writable().is_err());
    let err = store.control_generation().unwrap_err().to_string();
    assert!(err.contains("PostgreSQL"), "{err}");

    pg.start_again().unwrap();
    // The same store, without reconnecting by hand.
    store.check_writable().unwrap();
    store.write_batch(&[record("after")]).unwrap();
    // The test server runs without fsync and was stopped as by a crash: what it committed
    // last before may be gone; what failed was never written.
    assert!(store.request("after").unwrap().is_some());
    assert!(store.request("during").unwrap().is_none());
    store.control_generation().unwrap();
}

/// What a `tracing` subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_password_never_shows_in_errors_logs_or_debug() {
    let Some(pg) = server("the_password_never_shows_in_errors_logs_or_debug") else {
        return;
    };
    // The test server trusts every local connection, so any password connects.
    let secret = "hunter2-very-secret";
    let url = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/switchyard",
        pg.port()
    );
    let logs = Captured::default();
    // Tracing caches per call site, globally, whether anyone listens, and the tests of this
    // binary run on parallel threads that connect without a subscriber: under load a connect
    // here has logged nothing (once in CI, once in a full local run). Each connect logs the ready line,
    // so connecting again, with the cache rebuilt under this subscriber, tells a lost event
    // from a line that is never written.
    let mut store = None;
    for _ in 0..3 {
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let connected = tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            PostgresStore::connect(&url)
        })
        .unwrap();
        store = Some(connected);
        if String::from_utf8_lossy(&logs.0.lock().unwrap()).contains("PostgreSQL store ready") {
            break;
        }
    }
    let store = store.unwrap();
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("PostgreSQL store ready"), "{logged}");
    assert!(logged.contains("postgres:*****@127.0.0.1"), "{logged}");
    let debug = format!("{store:?}");
    assert!(debug.contains("postgres:*****@"), "{debug}");
    pg.stop();
    // The first call fails on the connection it had, the next on connecting, which names
    // the server.
    let broken = store.count().unwrap_err();
    let refused = store.count().unwrap_err();
    assert!(
        refused.to_string().contains("postgres:*****@127.0.0.1"),
        "{refused}"
    );
    for shown in [
        logged,
        debug,
        broken.to_string(),
        format!("{broken:?}"),
        refused.to_string(),
        format!("{refused:?}"),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
