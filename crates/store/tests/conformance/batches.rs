//! The Batch API's files, batches and lines: tenants apart, pages by cursor, lines claimed by
//! lease (one claimant at a time, taken over when the lease expired), ends recorded only by
//! their holder, cancel, expiry and one finalisation.

use switchyard_store::batches::{
    Cancel, NewLine, ProducedFile, StoredBatch, StoredFile, LINE_CANCELLED, LINE_DONE,
    LINE_EXPIRED, LINE_FAILED,
};

use crate::{conformance, Backend};

conformance!(
    files_belong_to_their_tenant_and_page_newest_first,
    batches_page_newest_first_per_tenant,
    a_line_has_one_holder_until_its_lease_expires,
    an_end_is_recorded_only_by_the_holder_and_counted,
    a_retried_line_waits_for_its_time,
    cancelling_stops_pending_lines_and_finishes_once,
    expiry_fails_the_open_lines_and_finalising_happens_once,
    released_lines_are_claimed_again_at_once,
    purging_deletes_expired_files_and_old_ended_batches,
);

fn file(id: &str, tenant: &str, purpose: &str, created_ms: i64) -> StoredFile {
    StoredFile {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        filename: format!("{id}.jsonl"),
        purpose: purpose.to_owned(),
        bytes: 3,
        created_ms,
        expires_at: None,
    }
}

fn batch(id: &str, tenant: &str, created_ms: i64, lines: u64) -> StoredBatch {
    StoredBatch {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        key_id: "k".to_owned(),
        key_hash: "00".to_owned(),
        endpoint: "/v1/chat/completions".to_owned(),
        input_file_id: "file-in".to_owned(),
        completion_window: "24h".to_owned(),
        status: "validating".to_owned(),
        metadata: Some("{\"a\":\"b\"}".to_owned()),
        created_ms,
        expires_at: created_ms / 1000 + 86_400,
        total: lines,
        ..StoredBatch::default()
    }
}

fn lines(n: u64) -> Vec<NewLine> {
    (1..=n)
        .map(|i| NewLine {
            line: i,
            custom_id: format!("c{i}"),
            body: format!("{{\"n\":{i}}}"),
        })
        .collect()
}

/// A batch of `n` lines, in progress.
fn running_batch(b: &Backend, id: &str, n: u64) {
    let store = b.store();
    store
        .create_batch(&batch(id, "t", 1_000, n), &lines(n))
        .unwrap();
    assert!(store.start_batch(id, 2).unwrap());
    assert!(!store.start_batch(id, 3).unwrap(), "moves once");
}

fn files_belong_to_their_tenant_and_page_newest_first(b: &Backend) {
    let store = b.store();
    store
        .put_file(&file("f1", "t", "batch", 1), b"one")
        .unwrap();
    store
        .put_file(&file("f2", "t", "batch_output", 2), b"two")
        .unwrap();
    store
        .put_file(&file("f3", "t", "batch", 2), b"thr")
        .unwrap();
    store
        .put_file(&file("g1", "u", "batch", 5), b"uuu")
        .unwrap();
    assert_eq!(
        store.file("t", "f1").unwrap(),
        Some(file("f1", "t", "batch", 1))
    );
    assert_eq!(store.file("u", "f1").unwrap(), None, "another tenant's");
    assert_eq!(
        store.file_content("t", "f2").unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(store.file_content("u", "f2").unwrap(), None);
    let ids = |fs: Vec<StoredFile>| fs.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.files("t", None, None, 10).unwrap()),
        ["f3", "f2", "f1"]
    );
    assert_eq!(ids(store.files("t", None, None, 2).unwrap()), ["f3", "f2"]);
    assert_eq!(ids(store.files("t", None, Some("f2"), 2).unwrap()), ["f1"]);
    assert_eq!(
        ids(store.files("t", Some("batch"), None, 10).unwrap()),
        ["f3", "f1"]
    );
    assert!(
        store.files("t", None, Some("g1"), 10).unwrap().is_empty(),
        "a cursor of another tenant"
    );
    assert!(!store.delete_file("u", "f1").unwrap());
    assert!(store.delete_file("t", "f1").unwrap());
    assert_eq!(b.another().file("t", "f1").unwrap(), None);
}

fn batches_page_newest_first_per_tenant(b: &Backend) {
    let store = b.store();
    store
        .create_batch(&batch("b1", "t", 1_000, 1), &lines(1))
        .unwrap();
    store
        .create_batch(&batch("b2", "t", 2_000, 2), &lines(2))
        .unwrap();
    store
        .create_batch(&batch("b3", "u", 3_000, 1), &lines(1))
        .unwrap();
    assert_eq!(
        store.batch("t", "b1").unwrap(),
        Some(batch("b1", "t", 1_000, 1))
    );
    assert_eq!(store.batch("u", "b1").unwrap(), None);
    let ids = |bs: Vec<StoredBatch>| bs.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(ids(store.batches("t", None, 10).unwrap()), ["b2", "b1"]);
    assert_eq!(ids(store.batches("t", Some("b2"), 10).unwrap()), ["b1"]);
    assert_eq!(ids(store.open_batches(10).unwrap()), ["b1", "b2", "b3"]);
}

fn a_line_has_one_holder_until_its_lease_expires(b: &Backend) {
    running_batch(b, "b", 3);
    let store = b.store();
    let other = b.another();
    let first = store.claim_lines("b", "r1", 10_000, 1_000, 2).unwrap();
    assert_eq!(first.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        (first[0].custom_id.as_str(), first[0].body.as_str()),
        ("c1", "{\"n\":1}")
    );
    assert_eq!(first[0].attempts, 1);
    let second = other.claim_lines("b", "r2", 10_500, 1_000, 5).unwrap();
    assert_eq!(second.iter().map(|l| l.line).collect::<Vec<_>>(), [3]);
    assert!(other
        .claim_lines("b", "r2", 10_999, 1_000, 5)
        .unwrap()
        .is_empty());
    // r1's lease ran out: r2 takes its lines over, a second attempt each.
    let taken = other.claim_lines("b", "r2", 11_000, 1_000, 5).unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|l| (l.line, l.attempts))
            .collect::<Vec<_>>(),
        [(1, 2), (2, 2)]
    );
    assert_eq!(store.open_lines("b").unwrap(), 3);
    // r2 lives on and renews what it holds: its lines stay its own past the first lease.
    assert_eq!(other.renew_lines("r2", 20_000).unwrap(), 3);
    assert_eq!(
        store.renew_lines("r1", 20_000).unwrap(),
        0,
        "r1 holds nothing now"
    );
    assert!(store
        .claim_lines("b", "r1", 19_999, 1_000, 5)
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .claim_lines("b", "r1", 20_000, 1_000, 5)
            .unwrap()
            .len(),
        3
    );
}

fn an_end_is_recorded_only_by_the_holder_and_counted(b: &Backend) {
    running_batch(b, "b", 3);
    let store = b.store();
    store.claim_lines("b", "r1", 0, 1_000, 3).unwrap();
    assert!(
        !store.finish_line("b", 1, "r2", false, "x").unwrap(),
        "not r2's"
    );
    assert!(store
        .finish_line("b", 1, "r1", false, "{\"ok\":1}")
        .unwrap());
    assert!(
        !store.finish_line("b", 1, "r1", false, "again").unwrap(),
        "once"
    );
    assert!(store
        .finish_line("b", 2, "r1", true, "{\"bad\":2}")
        .unwrap());
    let got = store.batch("t", "b").unwrap().unwrap();
    assert_eq!((got.total, got.completed, got.failed), (3, 1, 1));
    let results = store.line_results("b").unwrap();
    let seen: Vec<(u64, &str, Option<&str>)> = results
        .iter()
        .map(|r| (r.line, r.status.as_str(), r.result.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, LINE_DONE, Some("{\"ok\":1}")),
            (2, LINE_FAILED, Some("{\"bad\":2}")),
            (3, "running", None)
        ]
    );
    assert!(
        !store.begin_finalizing("b", 9).unwrap(),
        "a line is still running"
    );
    assert!(store
        .finish_line("b", 3, "r1", false, "{\"ok\":3}")
        .unwrap());
    assert!(store.begin_finalizing("b", 9).unwrap());
    assert!(!store.begin_finalizing("b", 9).unwrap(), "once");
    assert_eq!(
        store.batch("t", "b").unwrap().unwrap().finalizing_at,
        Some(9)
    );
}

fn a_retried_line_waits_for_its_time(b: &Backend) {
    running_batch(b, "b", 1);
    let store = b.store();
    store.claim_lines("b", "r1", 0, 1_000, 1).unwrap();
    assert!(store.retry_line("b", 1, "r1", 5_000).unwrap());
    assert!(store
        .claim_lines("b", "r1", 4_999, 1_000, 1)
        .unwrap()
        .is_empty());
    let again = store.claim_lines("b", "r1", 5_000, 1_000, 1).unwrap();
    assert_eq!(again[0].attempts, 2);
}

fn cancelling_stops_pending_lines_and_finishes_once(b: &Backend) {
    running_batch(b, "b", 4);
    let store = b.store();
    store.claim_lines("b", "r1", 0, 1_000, 2).unwrap();
    assert_eq!(store.cancel_batch("u", "b", 7).unwrap(), Cancel::NotFound);
    let Cancel::Cancelling(got) = store.cancel_batch("t", "b", 7).unwrap() else {
        panic!("cancelling");
    };
    assert_eq!(
        (got.status.as_str(), got.cancelling_at),
        ("cancelling", Some(7))
    );
    assert!(
        store
            .claim_lines("b", "r2", 0, 1_000, 3)
            .unwrap()
            .is_empty(),
        "nothing is claimed"
    );
    assert_eq!(
        store.open_lines("b").unwrap(),
        2,
        "the running lines finish"
    );
    assert!(store
        .finish_line("b", 1, "r1", false, "{\"ok\":1}")
        .unwrap());
    // Line 2 failed retryably after the cancel: put back, then closed as cancelled.
    assert!(store.retry_line("b", 2, "r1", 0).unwrap());
    assert_eq!(store.close_lines("b", 0).unwrap(), 1);
    assert_eq!(store.open_lines("b").unwrap(), 0);
    let statuses: Vec<String> = store
        .line_results("b")
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [LINE_DONE, LINE_CANCELLED, LINE_CANCELLED, LINE_CANCELLED]
    );
    let out = ProducedFile {
        file: file("out", "t", "batch_output", 9),
        content: b"{\"ok\":1}\n".to_vec(),
    };
    assert!(store
        .finish_batch("b", "cancelling", "cancelled", 9, Some(&out), None)
        .unwrap());
    assert!(!b
        .another()
        .finish_batch("b", "cancelling", "cancelled", 9, Some(&out), None)
        .unwrap());
    let got = store.batch("t", "b").unwrap().unwrap();
    assert_eq!(
        (
            got.status.as_str(),
            got.cancelled_at,
            got.output_file_id.as_deref(),
            got.error_file_id
        ),
        ("cancelled", Some(9), Some("out"), None)
    );
    assert_eq!(
        store.file_content("t", "out").unwrap().unwrap(),
        out.content
    );
    assert!(matches!(
        store.cancel_batch("t", "b", 10).unwrap(),
        Cancel::Ended(_)
    ));
}

fn expiry_fails_the_open_lines_and_finalising_happens_once(b: &Backend) {
    running_batch(b, "b", 3);
    let store = b.store();
    store.claim_lines("b", "r1", 0, 1_000, 2).unwrap();
    assert!(store
        .finish_line("b", 1, "r1", false, "{\"ok\":1}")
        .unwrap());
    // Line 2 is held until 1 000: still running at 500, abandoned at 1 000.
    assert_eq!(store.close_lines("b", 500).unwrap(), 1);
    assert_eq!(store.close_lines("b", 1_000).unwrap(), 1);
    let statuses: Vec<String> = store
        .line_results("b")
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [LINE_DONE, LINE_EXPIRED, LINE_EXPIRED]);
    let got = store.batch("t", "b").unwrap().unwrap();
    assert_eq!((got.completed, got.failed), (1, 2));
    assert!(
        !store.finish_line("b", 2, "r1", false, "late").unwrap(),
        "an expired line stays so"
    );
    assert!(store.begin_finalizing("b", 20).unwrap());
    let errors = ProducedFile {
        file: file("err", "t", "batch_output", 21),
        content: b"e\n".to_vec(),
    };
    assert!(store
        .finish_batch("b", "finalizing", "expired", 21, None, Some(&errors))
        .unwrap());
    assert!(!store
        .finish_batch("b", "finalizing", "expired", 22, None, Some(&errors))
        .unwrap());
    let got = store.batch("t", "b").unwrap().unwrap();
    assert_eq!(
        (
            got.status.as_str(),
            got.expired_at,
            got.output_file_id,
            got.error_file_id.as_deref()
        ),
        ("expired", Some(21), None, Some("err"))
    );
    assert!(store.open_batches(10).unwrap().is_empty());
}

fn released_lines_are_claimed_again_at_once(b: &Backend) {
    running_batch(b, "b", 2);
    let store = b.store();
    store.claim_lines("b", "r1", 0, 60_000, 2).unwrap();
    assert_eq!(store.release_lines("r1").unwrap(), 2);
    assert_eq!(store.claim_lines("b", "r2", 1, 60_000, 5).unwrap().len(), 2);
}

fn purging_deletes_expired_files_and_old_ended_batches(b: &Backend) {
    let store = b.store();
    let mut old = file("old", "t", "batch", 1);
    old.expires_at = Some(100);
    store.put_file(&old, b"x").unwrap();
    store
        .put_file(&file("kept", "t", "batch", 1), b"x")
        .unwrap();
    running_batch(b, "b", 1);
    store.cancel_batch("t", "b", 3).unwrap();
    assert!(store
        .finish_batch("b", "cancelling", "cancelled", 4, None, None)
        .unwrap());
    store
        .create_batch(&batch("open", "t", 1_000, 1), &lines(1))
        .unwrap();
    assert_eq!(store.purge_batches(99, 0).unwrap(), 0);
    assert_eq!(
        store.purge_batches(100, 5_000).unwrap(),
        2,
        "the old file and the ended batch"
    );
    assert_eq!(store.file("t", "old").unwrap(), None);
    assert!(store.file("t", "kept").unwrap().is_some());
    assert_eq!(store.batch("t", "b").unwrap(), None);
    assert!(
        store.batch("t", "open").unwrap().is_some(),
        "an open batch stays"
    );
}
