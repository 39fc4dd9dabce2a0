use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::kind::{EntityKind, Span};
use crate::scanner::Scanner;

/// What to do with a finding of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with `[EMAIL]`: nothing of the value is kept.
    Redact,
    /// Replace with `<EMAIL_1>`; the same value gets the same placeholder within a session,
    /// and [`MaskSession::unmask`] puts the value back into the model's answer.
    Pseudonymize,
    /// Replace with `<EMAIL:3f2a9c1b>`, a keyed SHA-256 (HMAC) of the value under the
    /// caller's salt: stable across requests with the same salt, not reversible.
    Hash,
    /// The text must be refused; the masked text is still redacted, for logs.
    Block,
    /// Report the finding, leave the text as it is.
    Allow,
}

/// The action for each kind, with a default for kinds not listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskPolicy {
    pub default_action: Action,
    pub actions: BTreeMap<EntityKind, Action>,
}

impl Default for MaskPolicy {
    fn default() -> Self {
        MaskPolicy::uniform(Action::Pseudonymize)
    }
}

impl MaskPolicy {
    pub fn uniform(action: Action) -> MaskPolicy {
        MaskPolicy {
            default_action: action,
            actions: BTreeMap::new(),
        }
    }

    pub fn with(mut self, kind: EntityKind, action: Action) -> MaskPolicy {
        self.actions.insert(kind, action);
        self
    }

    pub fn action(&self, kind: EntityKind) -> Action {
        self.actions
            .get(&kind)
            .copied()
            .unwrap_or(self.default_action)
    }
}

/// A scanner and a policy, built once per configuration; hands out one [`MaskSession`] per
/// request.
#[derive(Debug)]
pub struct Masker {
    scanner: Arc<Scanner>,
    policy: MaskPolicy,
}

impl Masker {
    pub fn new(scanner: Arc<Scanner>, policy: MaskPolicy) -> Masker {
        Masker { scanner, policy }
    }

    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    pub fn policy(&self) -> &MaskPolicy {
        &self.policy
    }

    /// A session for one request (all its messages and its answer). `salt` keys the `hash`
    /// action; give each tenant its own so hashes cannot be compared across tenants.
    pub fn session(&self, salt: &[u8]) -> MaskSession<'_> {
        MaskSession {
            masker: self,
            salt: salt.to_vec(),
            pseudonyms: HashMap::new(),
            next_number: BTreeMap::new(),
            restorations: Restorations::default(),
        }
    }
}

/// One finding as masked: where it was in the original text and what replaced it. The
/// original value is deliberately not kept here, so findings can be logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: EntityKind,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
    pub rule: &'static str,
    pub action: Action,
    /// What replaced the value in the masked text; empty for [`Action::Allow`].
    pub replacement: String,
}

/// A masked text and what was found in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Masked {
    pub text: String,
    pub findings: Vec<Finding>,
    /// Some finding's action was [`Action::Block`]: the caller must refuse the request.
    pub blocked: bool,
}

impl Masked {
    /// The masked text of `original`'s first `limit` bytes (`original` is the text this was
    /// masked from; the cut goes down to a char boundary): cut where the original reached
    /// `limit`, so a value the cut goes through is masked as a whole, as the scanner saw it,
    /// and no part of it is left in clear. A value that straddles the cut is kept as its
    /// whole replacement.
    pub fn prefix(&self, original: &str, limit: usize) -> &str {
        let limit = crate::text::floor_boundary(original, limit);
        // How much longer the masked text is than the original, up to here.
        let mut grown: isize = 0;
        let mut end = None;
        for f in &self.findings {
            if f.start >= limit {
                break;
            }
            // `allow` leaves the value in place (its `replacement` is empty).
            let replaced = if f.action == Action::Allow {
                f.end - f.start
            } else {
                f.replacement.len()
            };
            if f.end > limit {
                end = Some(f.start.saturating_add_signed(grown) + replaced);
                break;
            }
            grown += replaced as isize - (f.end - f.start) as isize;
        }
        let end = end.unwrap_or_else(|| limit.saturating_add_signed(grown));
        &self.text[..crate::text::floor_boundary(&self.text, end)]
    }
}

/// Masks the texts of one request consistently and restores placeholders in the answer.
#[derive(Debug)]
pub struct MaskSession<'m> {
    masker: &'m Masker,
    salt: Vec<u8>,
    pseudonyms: HashMap<(EntityKind, String), String>,
    next_number: BTreeMap<EntityKind, usize>,
    restorations: Restorations,
}

impl MaskSession<'_> {
    /// Scans `text` and applies the policy to every finding.
    pub fn mask(&mut self, text: &str) -> Masked {
        let spans = self.masker.scanner.scan(text);
        self.mask_spans(text, &spans)
    }

    /// Applies the policy to findings the caller already has (they must be sorted,
    /// non-overlapping and on char boundaries of `text`, as [`Scanner::scan`] returns them;
    /// others are skipped).
    pub fn mask_spans(&mut self, text: &str, spans: &[Span]) -> Masked {
        let mut out = String::with_capacity(text.len() + 16 * spans.len());
        let mut findings = Vec::with_capacity(spans.len());
        let mut blocked = false;
        let mut cursor = 0;
        for span in spans {
            let Some(value) = text.get(span.start..span.end) else {
                continue;
            };
            if span.start < cursor || value.is_empty() {
                continue;
            }
            let action = self.masker.policy.action(span.kind);
            let replacement = match action {
                Action::Redact | Action::Block => format!("[{}]", span.kind.label()),
                Action::Pseudonymize => self.pseudonym(span.kind, value, text),
                Action::Hash => format!(
                    "<{}:{}>",
                    span.kind.label(),
                    keyed_digest(&self.salt, span.kind, value)
                ),
                Action::Allow => value.to_string(),
            };
            blocked |= action == Action::Block;
            out.push_str(&text[cursor..span.start]);
            out.push_str(&replacement);
            cursor = span.end;
            findings.push(Finding {
                kind: span.kind,
                start: span.start,
                end: span.end,
                confidence: span.confidence,
                rule: span.rule,
                action,
                // `allow` leaves the value in the text; the finding must not carry it.
                replacement: if action == Action::Allow {
                    String::new()
                } else {
                    replacement
                },
            });
        }
        out.push_str(&text[cursor..]);
        Masked {
            text: out,
            findings,
            blocked,
        }
    }

    /// The placeholder for `value`: the one it already has in this session, or the next free
    /// number for its kind. A number whose placeholder already appears literally in `text` is
    /// skipped, so restoring never turns the user's own text into something else.
    fn pseudonym(&mut self, kind: EntityKind, value: &str, text: &str) -> String {
        let key = (kind, value.to_string());
        if let Some(existing) = self.pseudonyms.get(&key) {
            return existing.clone();
        }
        let counter = self.next_number.entry(kind).or_insert(1);
        let placeholder = loop {
            let candidate = format!("<{}_{}>", kind.label(), counter);
            *counter += 1;
            if !text.contains(&candidate) && !self.restorations.contains(&candidate) {
                break candidate;
            }
        };
        self.pseudonyms.insert(key, placeholder.clone());
        self.restorations
            .insert(placeholder.clone(), value.to_string());
        placeholder
    }

    /// Restores every placeholder this session issued; anything else is left as it is.
    pub fn unmask(&self, text: &str) -> String {
        self.restorations.unmask(text)
    }

    /// The placeholder-to-value map, owned, for an unmasker that outlives the session (an
    /// answer stream).
    pub fn restorations(&self) -> Restorations {
        self.restorations.clone()
    }

    pub fn stream_unmasker(&self) -> StreamUnmasker {
        StreamUnmasker::new(self.restorations())
    }
}

/// HMAC-SHA256 (RFC 2104) of `kind || 0 || value` under `salt`, first 4 bytes in hex. The
/// kind is in the message so the same digits as a phone and as a card hash differently.
fn keyed_digest(salt: &[u8], kind: EntityKind, value: &str) -> String {
    let mac = hmac_sha256(salt, &[kind.label().as_bytes(), &[0u8], value.as_bytes()]);
    hex::encode(&mac[..4])
}

/// HMAC-SHA256 over the concatenation of `message` parts.
fn hmac_sha256(key: &[u8], message: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let mut inner = Sha256::new().chain_update(pad(0x36));
    for part in message {
        inner.update(part);
    }
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner.finalize())
        .finalize()
        .into()
}

/// Placeholders issued by a session and the values they stand for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restorations {
    values: HashMap<String, String>,
    longest: usize,
}

fn placeholder_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

impl Restorations {
    fn insert(&mut self, placeholder: String, value: String) {
        self.longest = self.longest.max(placeholder.len());
        self.values.insert(placeholder, value);
    }

    fn contains(&self, placeholder: &str) -> bool {
        self.values.contains_key(placeholder)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The longest placeholder: a streaming unmasker never holds back more than this.
    pub fn longest_placeholder(&self) -> usize {
        self.longest
    }

    /// Replaces each `<KIND_N>` that this map knows, left to right in one pass. Placeholders
    /// cannot overlap (each holds exactly one `<`), so the result does not depend on order.
    pub fn unmask(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let inner_len = tail[1..]
                .find(|c: char| !placeholder_char(c))
                .unwrap_or(tail.len() - 1);
            let candidate_end = 1 + inner_len;
            if tail[candidate_end..].starts_with('>') {
                let placeholder = &tail[..=candidate_end];
                if let Some(value) = self.values.get(placeholder) {
                    out.push_str(value);
                    rest = &tail[candidate_end + 1..];
                    continue;
                }
            }
            out.push('<');
            rest = &tail[1..];
        }
        out.push_str(rest);
        out
    }

    /// Where a possible placeholder begins that `text` ends in the middle of, if any.
    fn unfinished_placeholder(&self, text: &str) -> Option<usize> {
        let open = text.rfind('<')?;
        let tail = &text[open..];
        let could_continue = tail.len() < self.longest && tail[1..].chars().all(placeholder_char);
        could_continue.then_some(open)
    }
}

/// Restores placeholders in an answer that arrives in pieces (an SSE stream).
///
/// 1. Each piece is appended to what was held back.
/// 2. If the text ends inside something that could still become a known placeholder (a `<`
///    followed only by `A-Z`, `0-9`, `_`, shorter than the longest placeholder), that tail is
///    held back; everything before it is restored and returned at once.
/// 3. `finish` restores and returns whatever is still held.
///
/// At most [`Restorations::longest_placeholder`] bytes are ever held, and the concatenated
/// output equals [`Restorations::unmask`] of the whole answer for any way of cutting it.
#[derive(Debug, Clone)]
pub struct StreamUnmasker {
    restorations: Restorations,
    held: String,
}

impl StreamUnmasker {
    pub fn new(restorations: Restorations) -> StreamUnmasker {
        StreamUnmasker {
            restorations,
            held: String::new(),
        }
    }

    /// Restored text that can be sent now (possibly empty).
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        match self.restorations.unfinished_placeholder(&self.held) {
            Some(open) => {
                let ready = self.restorations.unmask(&self.held[..open]);
                self.held.drain(..open);
                ready
            }
            None => {
                let ready = self.restorations.unmask(&self.held);
                self.held.clear();
                ready
            }
        }
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The rest, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = self.restorations.unmask(&self.held);
        self.held.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScannerConfig;
    use proptest::prelude::*;

    fn masker(policy: MaskPolicy) -> Masker {
        Masker::new(
            Arc::new(Scanner::new(ScannerConfig::default()).unwrap()),
            policy,
        )
    }

    #[test]
    fn redact_hash_and_block() {
        let text = "mail jane@example.com now";
        let redacted = masker(MaskPolicy::uniform(Action::Redact))
            .session(b"s")
            .mask(text);
        assert_eq!(redacted.text, "mail [EMAIL] now");
        assert!(!redacted.blocked);

        let hashing = masker(MaskPolicy::uniform(Action::Hash));
        let a = hashing.session(b"tenant-a").mask(text).text;
        let again = hashing.session(b"tenant-a").mask(text).text;
        let b = hashing.session(b"tenant-b").mask(text).text;
        assert!(
            a.starts_with("mail <EMAIL:") && a.len() == "mail <EMAIL:12345678> now".len(),
            "{a}"
        );
        assert_eq!(a, again, "stable under one salt");
        assert_ne!(a, b, "different salts differ");

        let blocking =
            masker(MaskPolicy::uniform(Action::Redact).with(EntityKind::Email, Action::Block));
        let blocked = blocking.session(b"s").mask(text);
        assert!(blocked.blocked);
        assert_eq!(blocked.text, "mail [EMAIL] now");
    }

    #[test]
    fn a_prefix_cuts_the_masked_text_where_the_original_reached_the_limit() {
        let text = "to ann@example.com and bob@example.org, thanks";
        let masked = masker(MaskPolicy::uniform(Action::Redact))
            .session(b"s")
            .mask(text);
        assert_eq!(masked.text, "to [EMAIL] and [EMAIL], thanks");
        // Before the first value; inside it (kept whole); after it (shifted).
        assert_eq!(masked.prefix(text, 2), "to");
        assert_eq!(masked.prefix(text, 6), "to [EMAIL]");
        assert_eq!(masked.prefix(text, 22), "to [EMAIL] and");
        assert_eq!(masked.prefix(text, text.len()), masked.text);
        assert_eq!(masked.prefix(text, 10_000), masked.text);
        // On a multi-byte character: down to its start.
        let text = "é ann@example.com";
        let masked = masker(MaskPolicy::uniform(Action::Redact))
            .session(b"s")
            .mask(text);
        assert_eq!(masked.prefix(text, 1), "");
        let allowed = masker(MaskPolicy::uniform(Action::Allow))
            .session(b"s")
            .mask(text);
        // `allow` keeps the value in the text: whole, as any value the cut goes through.
        assert_eq!(allowed.prefix(text, 10), "é ann@example.com");
        assert_eq!(allowed.prefix(text, 3), "é ");
    }

    #[test]
    fn allow_reports_without_carrying_the_value() {
        let masker = masker(MaskPolicy::uniform(Action::Allow));
        let masked = masker.session(b"s").mask("mail ann@example.com");
        assert_eq!(masked.text, "mail ann@example.com");
        assert_eq!(masked.findings.len(), 1);
        assert_eq!(masked.findings[0].replacement, "");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6 of RFC 4231 (a short key, and a key longer than the block).
        let short = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(short),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        let one = keyed_digest(b"key", EntityKind::Email, "a@b.io");
        assert_eq!(one.len(), 8);
        assert_ne!(one, keyed_digest(b"key", EntityKind::Phone, "a@b.io"));
    }

    #[test]
    fn pseudonyms_are_consistent_across_the_messages_of_a_session() {
        let masker = masker(MaskPolicy::default());
        let mut session = masker.session(b"s");
        let first = session.mask("Write to ann@example.com and bob@example.org.");
        let second = session.mask("Again: ann@example.com");
        assert_eq!(first.text, "Write to <EMAIL_1> and <EMAIL_2>.");
        assert_eq!(second.text, "Again: <EMAIL_1>");
        let answer = "I wrote to <EMAIL_2>, cc <EMAIL_1>; <EMAIL_3> is unknown.";
        assert_eq!(
            session.unmask(answer),
            "I wrote to bob@example.org, cc ann@example.com; <EMAIL_3> is unknown."
        );
    }

    #[test]
    fn literal_placeholders_in_the_input_are_not_reused() {
        let masker = masker(MaskPolicy::default());
        let mut session = masker.session(b"s");
        let text = "the tag <EMAIL_1> means ann@example.com";
        let masked = session.mask(text);
        assert_eq!(masked.text, "the tag <EMAIL_1> means <EMAIL_2>");
        assert_eq!(session.unmask(&masked.text), text);
    }

    #[test]
    fn streaming_holds_back_only_a_partial_placeholder() {
        let masker = masker(MaskPolicy::default());
        let mut session = masker.session(b"s");
        session.mask("ann@example.com");
        let mut stream = session.stream_unmasker();
        assert_eq!(stream.push("Hi <EMA"), "Hi ");
        assert_eq!(stream.held(), 4);
        assert_eq!(stream.push("IL_1> and a < b"), "ann@example.com and a < b");
        assert_eq!(stream.push(" <EMAIL_1"), " ");
        assert_eq!(stream.finish(), "<EMAIL_1");
    }

    fn pii_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("ann@example.com".to_string()),
            Just("+44 7700 900123".to_string()),
            Just("4111 1111 1111 1111".to_string()),
            Just("my name is ana lee".to_string()),
            Just("Dr. John Smith".to_string()),
            Just("12 Kent Street, Oslo".to_string()),
            Just("192.168.0.1".to_string()),
            Just("<EMAIL_1>".to_string()),
            Just("<PERSON_".to_string()),
            Just("<".to_string()),
            Just(">".to_string()),
            "\\PC{0,12}",
            "[a-zA-Z0-9 .,@<>_:-]{0,12}",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.join(" "))
    }

    proptest! {
        #[test]
        fn unmask_inverts_pseudonymize(text in pii_text()) {
            let masker = masker(MaskPolicy::default());
            let mut session = masker.session(b"s");
            let masked = session.mask(&text);
            prop_assert_eq!(session.unmask(&masked.text), text);
        }

        #[test]
        fn streaming_equals_one_shot(text in pii_text(), answer in pii_text(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let masker = masker(MaskPolicy::default());
            let mut session = masker.session(b"s");
            let masked = session.mask(&text);
            let whole = format!("{} {}", masked.text, answer);
            let mut boundaries: Vec<usize> = cuts.iter().map(|c| crate::text::floor_boundary(&whole, c % (whole.len() + 1))).collect();
            boundaries.sort_unstable();
            let mut stream = session.stream_unmasker();
            let mut streamed = String::new();
            let mut from = 0;
            for to in boundaries.into_iter().chain([whole.len()]) {
                streamed.push_str(&stream.push(&whole[from..to]));
                prop_assert!(stream.held() <= session.restorations().longest_placeholder());
                from = to;
            }
            streamed.push_str(&stream.finish());
            prop_assert_eq!(streamed, session.unmask(&whole));
        }

        #[test]
        fn a_prefix_never_holds_part_of_a_value(text in pii_text(), limit in 0usize..200) {
            let masker = masker(MaskPolicy::uniform(Action::Redact));
            let masked = masker.session(b"s").mask(&text);
            let prefix = masked.prefix(&text, limit);
            // As masking the original cut at the limit, or past it to the end of the value
            // the cut goes through, with the spans the whole text had.
            let spans = masker.scanner().scan(&text);
            let at = crate::text::floor_boundary(&text, limit);
            let end = spans.iter().find(|s| s.start < at && s.end > at).map_or(at, |s| s.end);
            let head: Vec<Span> = spans.iter().filter(|s| s.end <= end).cloned().collect();
            let expected = masker.session(b"s").mask_spans(&text[..end], &head).text;
            prop_assert_eq!(prefix, expected.as_str());
        }

        #[test]
        fn masking_arbitrary_unicode_never_panics(text in "\\PC{0,200}", action in prop_oneof![Just(Action::Redact), Just(Action::Pseudonymize), Just(Action::Hash), Just(Action::Block)]) {
            let masker = masker(MaskPolicy::uniform(action));
            let scanner = masker.scanner();
            for span in scanner.scan(&text) {
                prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
                prop_assert!(span.start < span.end);
            }
            let masked = masker.session(b"s").mask(&text);
            prop_assert!(masked.findings.windows(2).all(|w| w[0].end <= w[1].start));
        }
    }
}
