//! Request records the store could not take, kept on disk until it can: a bounded folder of
//! JSON-lines segments, oldest first. The telemetry writer ([`crate::telemetry`]) owns it; a
//! replica on PostgreSQL keeps one in its data folder, so that records accepted while the
//! database is unreachable wait there instead of in memory, survive a restart, and are written
//! in order when the database returns.
//!
//! - A segment holds at most [`SEGMENT_RECORDS`] records; it is written to the store in one
//!   `write_batch` (one transaction) and deleted after. A crash between the two writes that
//!   segment twice: the one duplicate a crash can cause.
//! - Every append is flushed to the disk (`fsync`) before the records leave memory.
//! - A line cut short by a crash mid-append is skipped on replay, with an error in the log.
//! - The spool refuses an append that would take it past its size; the writer then keeps the
//!   records in memory and its queue fills, as without a spool.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{RecordStore, RequestContent, RequestRecord, StoreError};

/// The most records in one segment: one transaction when it is replayed.
pub const SEGMENT_RECORDS: usize = 1_000;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the store still refuses the spooled records: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the spool: {0}")]
    Io(#[from] io::Error),
}

/// One spooled line: the record with its content, which the record's own JSON leaves out.
#[derive(Serialize, Deserialize)]
struct Spooled {
    record: RequestRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<RequestContent>,
}

struct Segment {
    path: PathBuf,
    bytes: u64,
    records: usize,
}

/// The spool: its segments, oldest first; the last one is appended to until it is full.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    next_seq: u64,
    /// The last segment takes no more appends (it is being replayed, or was found at start).
    last_sealed: bool,
}

impl Spool {
    /// Opens the spool in `dir` (creating it), with what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let path = e.path();
                let seq = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".jsonl")?
                    .parse::<u64>()
                    .ok()?;
                Some((seq, path))
            })
            .collect();
        found.sort();
        let mut segments = VecDeque::new();
        for (_, path) in &found {
            let bytes = std::fs::metadata(path)?.len();
            let records = BufReader::new(File::open(path)?).lines().count();
            segments.push_back(Segment {
                path: path.clone(),
                bytes,
                records,
            });
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            next_seq: found.last().map_or(0, |(seq, _)| seq + 1),
            segments,
            last_sealed: true,
        })
    }

    /// Records waiting.
    pub fn records(&self) -> usize {
        self.segments.iter().map(|s| s.records).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Appends `records` and flushes them to the disk; `Ok(false)`, writing nothing, when they
    /// do not fit in the spool's size.
    pub fn append(&mut self, records: &[RequestRecord]) -> io::Result<bool> {
        let mut lines = Vec::new();
        let mut ends = Vec::with_capacity(records.len());
        for r in records {
            let mut record = r.clone();
            let content = record.content.take().map(|c| *c);
            serde_json::to_writer(&mut lines, &Spooled { record, content })?;
            lines.push(b'\n');
            ends.push(lines.len());
        }
        if self.bytes() + lines.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        let mut start = 0;
        let mut taken = 0;
        while taken < records.len() {
            let room = match self.segments.back() {
                Some(last) if !self.last_sealed => SEGMENT_RECORDS.saturating_sub(last.records),
                _ => 0,
            };
            if room == 0 {
                self.new_segment()?;
                continue;
            }
            let n = room.min(records.len() - taken);
            let end = ends[taken + n - 1];
            let last = self
                .segments
                .back_mut()
                .ok_or_else(|| io::Error::other("the spool has no segment to append to"))?;
            let mut file = OpenOptions::new().append(true).open(&last.path)?;
            file.write_all(&lines[start..end])?;
            file.sync_data()?;
            last.bytes += (end - start) as u64;
            last.records += n;
            start = end;
            taken += n;
        }
        Ok(true)
    }

    fn new_segment(&mut self) -> io::Result<()> {
        let path = self.dir.join(format!("{:020}.jsonl", self.next_seq));
        File::create(&path)?.sync_all()?;
        // The new name must survive a crash too.
        File::open(&self.dir)?.sync_all()?;
        self.next_seq += 1;
        self.segments.push_back(Segment {
            path,
            bytes: 0,
            records: 0,
        });
        self.last_sealed = false;
        Ok(())
    }

    /// Writes the oldest segment to `store` in one batch and deletes it; returns how many
    /// records were written (0 when the spool is empty).
    pub fn replay_one(&mut self, store: &dyn RecordStore) -> Result<usize, ReplayError> {
        let Some(oldest) = self.segments.front() else {
            return Ok(0);
        };
        if self.segments.len() == 1 {
            // Appends go to a new segment from now on, so this one is written whole.
            self.last_sealed = true;
        }
        let records = read_segment(&oldest.path)?;
        if !records.is_empty() {
            store.write_batch(&records)?;
        }
        std::fs::remove_file(&oldest.path)?;
        self.segments.pop_front();
        Ok(records.len())
    }
}

fn read_segment(path: &Path) -> io::Result<Vec<RequestRecord>> {
    let mut records = Vec::new();
    for (i, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        match serde_json::from_str::<Spooled>(&line) {
            Ok(Spooled {
                mut record,
                content,
            }) => {
                record.content = content.map(Box::new);
                records.push(record);
            }
            Err(e) => tracing::error!(
                segment = %path.display(),
                line = i + 1,
                error = %e,
                "skipping a spooled record that cannot be read (cut short by a crash?)"
            ),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContentStore, SqliteStore};

    fn record(i: usize) -> RequestRecord {
        RequestRecord {
            request_id: format!("r{i}"),
            endpoint: "chat".into(),
            started_at_ms: i as i64,
            ..RequestRecord::default()
        }
    }

    #[test]
    fn records_come_back_in_order_with_their_content_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("spool"), 16 << 20).unwrap();
        let mut first = record(0);
        first.content = Some(Box::new(RequestContent {
            messages: vec![crate::ContentMessage {
                role: "user".into(),
                text: "hello".into(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        let batch: Vec<_> = std::iter::once(first)
            .chain((1..2_500).map(record))
            .collect();
        assert!(spool.append(&batch).unwrap());
        assert_eq!(spool.records(), 2_500);
        drop(spool);

        let mut spool = Spool::open(&dir.path().join("spool"), 16 << 20).unwrap();
        assert_eq!(spool.records(), 2_500, "segments of 1000, 1000 and 500");
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let mut written = Vec::new();
        while !spool.is_empty() {
            written.push(spool.replay_one(&store).unwrap());
        }
        assert_eq!(written, [1_000, 1_000, 500]);
        assert_eq!(store.count().unwrap(), 2_500);
        assert!(store.request_content("r0").unwrap().is_some());
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_full_spool_takes_nothing_of_a_batch_that_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 2_000).unwrap();
        assert!(spool.append(&[record(1)]).unwrap());
        let before = spool.bytes();
        let big: Vec<_> = (0..100).map(record).collect();
        assert!(!spool.append(&big).unwrap());
        assert_eq!(spool.bytes(), before);
        assert_eq!(spool.records(), 1);
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("spool"), 16 << 20).unwrap();
        assert!(spool.append(&[record(1), record(2)]).unwrap());
        drop(spool);
        let segment = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(b"{\"record\":{\"request_id\":\"r3\"").unwrap();
        let mut spool = Spool::open(&dir.path().join("spool"), 16 << 20).unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        assert_eq!(spool.replay_one(&store).unwrap(), 2);
        assert!(spool.is_empty());
    }

    #[test]
    fn a_failed_replay_keeps_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("spool"), 16 << 20).unwrap();
        assert!(spool.append(&[record(1)]).unwrap());
        let store = SqliteStore::open_in(dir.path()).unwrap();
        rusqlite::Connection::open(dir.path().join("switchyard.db"))
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'down'); END;",
            )
            .unwrap();
        assert!(spool.replay_one(&store).is_err());
        assert_eq!(spool.records(), 1);
        // Appends after a failed replay go to a new segment, replayed after the old one.
        assert!(spool.append(&[record(2)]).unwrap());
        rusqlite::Connection::open(dir.path().join("switchyard.db"))
            .unwrap()
            .execute_batch("DROP TRIGGER refuse;")
            .unwrap();
        assert_eq!(spool.replay_one(&store).unwrap(), 1);
        assert_eq!(spool.replay_one(&store).unwrap(), 1);
        let ids: Vec<_> = store
            .recent(10)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids.len(), 2);
    }
}
