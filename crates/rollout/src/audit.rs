//! The append-only audit log as a hash chain, and the line diffs its entries carry.
//!
//! Each entry's hash covers every other field, its predecessor's hash included, so editing,
//! deleting or reordering a stored entry breaks the chain where it happened. Cutting entries
//! off the end leaves a valid, shorter chain: only a head kept elsewhere (the last hash the
//! gateway announced, printed or stored apart) reveals it, hence [`verify_with_head`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the chain: what happened ([`AuditEvent`]) with its place in the chain.
/// Serialised flat: `seq`, the event's fields, `prev_hash`, `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first entry, then one more each time.
    pub seq: u64,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Lowercase hex SHA-256 of the previous entry, [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of this entry's canonical form ([`AuditEntry::canonical`]).
    pub hash: String,
}

/// What happened: an entry's content, before and after it is sealed into the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at_ms: u64,
    /// Who acted: a user, a key id, or `system` for automatic rollbacks.
    pub actor: String,
    /// What was done, e.g. `config.apply`, `rollout.rollback`, `flag.set`.
    pub action: String,
    /// What it was done to, e.g. `config:v12`, `flag:new-ui`.
    pub target: String,
    pub reason: String,
    /// A line diff of the change ([`diff_lines`]), or empty.
    pub diff: String,
}

/// A chain's last entry, as known from somewhere the log's writer cannot rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {seq}: {what}")]
pub struct ChainError {
    /// The entry where the chain breaks (for `Truncated`, the head's `seq`).
    pub seq: u64,
    pub what: ChainFault,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    #[error("its hash does not match its content (edited)")]
    Edited,
    #[error("expected entry {expected} before it (deleted)")]
    Missing { expected: u64 },
    #[error("expected entry {expected} here (reordered or duplicated)")]
    OutOfOrder { expected: u64 },
    #[error("its prev_hash is not the previous entry's hash")]
    BrokenLink,
    #[error("the log ends at entry {last} but the known head is entry {head_seq} (truncated)")]
    Truncated { last: u64, head_seq: u64 },
    #[error("its hash differs from the known head's (rewritten)")]
    NotTheHead,
}

impl AuditEntry {
    /// Appends `event` after `prev` (`None` for the first entry): sets `seq`, `prev_hash` and
    /// `hash`.
    pub fn seal(prev: Option<&AuditEntry>, event: AuditEvent) -> AuditEntry {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS_HASH.to_string()),
        };
        let mut entry = AuditEntry {
            seq,
            event,
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }

    /// The bytes that are hashed: a JSON object of every field but `hash`, keys in the order
    /// `seq, at_ms, actor, action, target, reason, diff, prev_hash`, no whitespace, strings
    /// escaped as serde_json escapes them (`"`, `\` and control characters; other characters
    /// as UTF-8). Written out by hand so that no map ordering or serde feature can change it.
    pub fn canonical(&self) -> String {
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        format!(
            r#"{{"seq":{},"at_ms":{},"actor":{},"action":{},"target":{},"reason":{},"diff":{},"prev_hash":{}}}"#,
            self.seq,
            self.event.at_ms,
            s(&self.event.actor),
            s(&self.event.action),
            s(&self.event.target),
            s(&self.event.reason),
            s(&self.event.diff),
            s(&self.prev_hash)
        )
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Checks a whole chain from its first entry: sequence numbers, each hash against its
/// entry's content, and each link to the previous entry. A chain cut short at the end passes;
/// use [`verify_with_head`] to catch that.
pub fn verify(entries: &[AuditEntry]) -> Result<(), ChainError> {
    verify_links(None, entries)
}

/// Checks a chain's continuation after an entry already verified (`anchor`), so a long log
/// is verified in pieces.
pub fn verify_after(anchor: &AuditEntry, entries: &[AuditEntry]) -> Result<(), ChainError> {
    verify_links(Some(anchor), entries)
}

/// [`verify`], and the chain holds the known `head`: an entry with the head's `seq` and hash
/// (entries after it are later appends). Catches a truncated tail and a rewritten tail.
pub fn verify_with_head(entries: &[AuditEntry], head: &Head) -> Result<(), ChainError> {
    verify(entries)?;
    let last = entries.last().map_or(0, |e| e.seq);
    if last < head.seq {
        return Err(ChainError {
            seq: head.seq,
            what: ChainFault::Truncated {
                last,
                head_seq: head.seq,
            },
        });
    }
    // verify() proved seq runs 1, 2, 3, ...: the head is at index seq - 1.
    let at = entries.get((head.seq as usize).saturating_sub(1));
    match at {
        Some(e) if e.seq == head.seq && e.hash == head.hash => Ok(()),
        _ => Err(ChainError {
            seq: head.seq,
            what: ChainFault::NotTheHead,
        }),
    }
}

fn verify_links(anchor: Option<&AuditEntry>, entries: &[AuditEntry]) -> Result<(), ChainError> {
    let mut prev = anchor;
    for e in entries {
        let expected = prev.map_or(1, |p| p.seq + 1);
        let fail = |what| Err(ChainError { seq: e.seq, what });
        if e.seq > expected {
            return fail(ChainFault::Missing { expected });
        }
        if e.seq < expected {
            return fail(ChainFault::OutOfOrder { expected });
        }
        if e.compute_hash() != e.hash {
            return fail(ChainFault::Edited);
        }
        let want_prev = prev.map_or(GENESIS_HASH, |p| p.hash.as_str());
        if e.prev_hash != want_prev {
            return fail(ChainFault::BrokenLink);
        }
        prev = Some(e);
    }
    Ok(())
}

/// Lines of context around each change in [`diff_lines`].
const CONTEXT: usize = 2;
/// Above this many cells (changed old lines × changed new lines) the diff does not search
/// for common lines and shows the changed middle as removed, then added.
const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Removed(usize),
    Added(usize),
}

/// A unified-style line diff of `old` to `new`: hunks headed `@@ -a,b +c,d @@` with up to two
/// lines of context, removed lines `-`, added lines `+`, context ` `. Empty when the texts
/// have the same lines. A longest common subsequence between the common prefix and suffix;
/// enough for config files, not meant for megabytes.
pub fn diff_lines(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&i| !matches!(ops[i], Op::Same(..)))
        .collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        // Grow a hunk while the next change is within two contexts of the last.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(ops.len());
        write_hunk(&mut out, &ops[start..end], &a, &b);
        k += 1;
    }
    out
}

fn write_hunk(out: &mut String, ops: &[Op], a: &[&str], b: &[&str]) {
    // Where the hunk starts in each file: the first line of that file it touches.
    let first_old = ops.iter().find_map(|op| match op {
        Op::Same(i, _) | Op::Removed(i) => Some(*i),
        Op::Added(_) => None,
    });
    let first_new = ops.iter().find_map(|op| match op {
        Op::Same(_, j) | Op::Added(j) => Some(*j),
        Op::Removed(_) => None,
    });
    let old_len = ops.iter().filter(|op| !matches!(op, Op::Added(_))).count();
    let new_len = ops
        .iter()
        .filter(|op| !matches!(op, Op::Removed(_)))
        .count();
    // A side with no lines in the hunk is an empty file (context is kept otherwise): 0.
    let old_start = first_old.map_or(0, |i| i + 1);
    let new_start = first_new.map_or(0, |j| j + 1);
    out.push_str(&format!(
        "@@ -{old_start},{old_len} +{new_start},{new_len} @@\n"
    ));
    for op in ops {
        let (sign, line) = match *op {
            Op::Same(i, _) => (' ', a[i]),
            Op::Removed(i) => ('-', a[i]),
            Op::Added(j) => ('+', b[j]),
        };
        out.push(sign);
        out.push_str(line);
        out.push('\n');
    }
}

fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Same(i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > MAX_CELLS {
        ops.extend((0..n).map(|i| Op::Removed(prefix + i)));
        ops.extend((0..m).map(|j| Op::Added(prefix + j)));
    } else {
        // lcs[i][j]: the longest common subsequence of am[i..] and bm[j..].
        let width = m + 1;
        let mut lcs = vec![0u32; (n + 1) * width];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * width + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push(Op::Same(prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
                // Removals before additions, as diffs are read.
                ops.push(Op::Removed(prefix + i));
                i += 1;
            } else {
                ops.push(Op::Added(prefix + j));
                j += 1;
            }
        }
    }
    let (a_tail, b_tail) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|k| Op::Same(a_tail + k, b_tail + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let event = AuditEvent {
                at_ms: 1_000 * i,
                actor: "ops@example".into(),
                action: "flag.set".into(),
                target: format!("flag:f{i}"),
                reason: format!("step {i}"),
                diff: "-enabled = false\n+enabled = true\n".into(),
            };
            let e = AuditEntry::seal(out.last(), event);
            out.push(e);
        }
        out
    }

    fn fault(r: Result<(), ChainError>) -> (u64, ChainFault) {
        let e = r.unwrap_err();
        (e.seq, e.what)
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let c = chain(5);
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[3].prev_hash, c[2].hash);
        assert!(verify(&c).is_ok());
        assert!(verify(&[]).is_ok());
        assert!(verify_with_head(&c, &c[4].head()).is_ok());
        // A head recorded earlier still holds after later appends.
        assert!(verify_with_head(&c, &c[2].head()).is_ok());
        assert!(verify_after(&c[1], &c[2..]).is_ok());
    }

    #[test]
    fn the_hash_is_pinned() {
        // The canonical form and its hash are part of the stored format: never change them.
        let e = AuditEntry::seal(
            None,
            AuditEvent {
                at_ms: 1,
                actor: "a".into(),
                action: "b".into(),
                target: "c".into(),
                reason: "d \"q\"".into(),
                diff: "-x\n+y\n".into(),
            },
        );
        assert_eq!(
            e.canonical(),
            format!(
                r#"{{"seq":1,"at_ms":1,"actor":"a","action":"b","target":"c","reason":"d \"q\"","diff":"-x\n+y\n","prev_hash":"{GENESIS_HASH}"}}"#
            )
        );
        assert_eq!(e.hash, PINNED_HASH);
    }
    // Computed independently (Python's hashlib over the canonical text above).
    const PINNED_HASH: &str = "55a21f69bf3c27bc98e82fcd1543d1b0df897b6e1d56a05880066b15b2721bb7";

    #[test]
    fn entries_are_stored_flat_and_read_back() {
        let c = chain(2);
        let json = serde_json::to_string(&c[1]).unwrap();
        assert!(
            json.starts_with(r#"{"seq":2,"at_ms":1000,"actor":"#),
            "{json}"
        );
        let back: AuditEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c[1]);
        assert!(verify(&[c[0].clone(), back]).is_ok());
    }

    #[test]
    fn an_edited_field_is_found() {
        let mut c = chain(4);
        c[1].event.reason = "nothing to see".into();
        assert_eq!(fault(verify(&c)), (2, ChainFault::Edited));
        // Rehashing the edited entry breaks the next link instead.
        c[1].hash = c[1].compute_hash();
        assert_eq!(fault(verify(&c)), (3, ChainFault::BrokenLink));
        // Every field is covered.
        for edit in 0..8 {
            let mut c = chain(3);
            let e = &mut c[1];
            match edit {
                0 => e.event.at_ms += 1,
                1 => e.event.actor.push('x'),
                2 => e.event.action.push('x'),
                3 => e.event.target.push('x'),
                4 => e.event.reason.push('x'),
                5 => e.event.diff.push('x'),
                6 => e.prev_hash = GENESIS_HASH.into(),
                _ => e.hash = GENESIS_HASH.into(),
            }
            assert_eq!(fault(verify(&c)), (2, ChainFault::Edited), "edit {edit}");
        }
    }

    #[test]
    fn a_deleted_entry_is_found() {
        let mut c = chain(4);
        c.remove(2);
        assert_eq!(fault(verify(&c)), (4, ChainFault::Missing { expected: 3 }));
        let mut c = chain(3);
        c.remove(0);
        assert_eq!(fault(verify(&c)), (2, ChainFault::Missing { expected: 1 }));
    }

    #[test]
    fn a_deleted_entry_with_renumbering_is_found() {
        // Delete entry 2 and renumber (rehashing) the rest: the links give it away.
        let mut c = chain(4);
        c.remove(1);
        for e in c.iter_mut().skip(1) {
            e.seq -= 1;
            e.hash = e.compute_hash();
        }
        assert_eq!(fault(verify(&c)), (2, ChainFault::BrokenLink));
    }

    #[test]
    fn a_reordered_entry_is_found() {
        let mut c = chain(4);
        c.swap(1, 2);
        assert_eq!(fault(verify(&c)), (3, ChainFault::Missing { expected: 2 }));
        let mut c = chain(4);
        let dup = c[1].clone();
        c.insert(2, dup);
        assert_eq!(
            fault(verify(&c)),
            (2, ChainFault::OutOfOrder { expected: 3 })
        );
    }

    #[test]
    fn a_truncated_tail_is_found_only_with_a_head() {
        let full = chain(5);
        let head = full[4].head();
        let cut = &full[..3];
        assert!(verify(cut).is_ok());
        assert_eq!(
            fault(verify_with_head(cut, &head)),
            (
                5,
                ChainFault::Truncated {
                    last: 3,
                    head_seq: 5
                }
            )
        );
        // A rewritten tail of the same length: same seq, another hash.
        let mut other = full[..4].to_vec();
        other.push(AuditEntry::seal(other.last(), AuditEvent::default()));
        assert_eq!(
            fault(verify_with_head(&other, &head)),
            (5, ChainFault::NotTheHead)
        );
    }

    #[test]
    fn errors_read_well() {
        let e = ChainError {
            seq: 4,
            what: ChainFault::Missing { expected: 3 },
        };
        assert_eq!(
            e.to_string(),
            "audit entry 4: expected entry 3 before it (deleted)"
        );
    }

    #[test]
    fn diff_merges_close_changes_and_splits_far_ones() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .filter_map(|i| match i {
                3 => Some("three\n".to_string()),
                6 => Some("six\n".to_string()),
                17 => None,
                i => Some(format!("{i}\n")),
            })
            .collect();
        let d = diff_lines(&old, &new);
        let headers: Vec<&str> = d.lines().filter(|l| l.starts_with("@@")).collect();
        assert_eq!(headers, ["@@ -1,8 +1,8 @@", "@@ -15,5 +15,4 @@"], "{d}");
        assert!(d.contains("-3\n+three\n"));
        assert!(d.contains(" 16\n-17\n 18\n"));
    }

    #[test]
    fn diffs() {
        // (old, new, diff)
        let cases = [
            // Same lines (a missing last newline is not a change).
            ("a\nb\n", "a\nb", ""),
            ("", "", ""),
            // One change, two lines of context each side.
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n",
                "1\n2\n3\nfour\n5\n6\n7\n8\n",
                "@@ -2,5 +2,5 @@\n 2\n 3\n-4\n+four\n 5\n 6\n",
            ),
            // Whole files added or removed.
            ("", "a\nb\n", "@@ -0,0 +1,2 @@\n+a\n+b\n"),
            ("a\n", "", "@@ -1,1 +0,0 @@\n-a\n"),
            // Common lines inside a changed block are found.
            (
                "a\nx\nb\ny\nc\n",
                "a\nb\nc\nz\n",
                "@@ -1,5 +1,4 @@\n a\n-x\n b\n-y\n c\n+z\n",
            ),
        ];
        for (old, new, expect) in cases {
            assert_eq!(diff_lines(old, new), expect, "{old:?} -> {new:?}");
        }
    }
}
