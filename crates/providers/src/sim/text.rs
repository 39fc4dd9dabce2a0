//! Deterministic text for the simulator: a stable hash, generated sentences, the split of an
//! output into pieces (the simulator's tokens) and stop sequences.
//!
//! Pure functions only: no clock, no shared state. The same inputs give the same bytes on every
//! platform and Rust release, which is what lets caching demos compare answers across runs.

use rand::rngs::StdRng;
use rand::Rng;

/// FNV-1a folded through a SplitMix64 finaliser. std's hashers promise stability neither across
/// releases nor platforms; this one is fixed forever, and the finaliser repairs FNV's weak
/// mixing of short inputs.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub(crate) fn new(seed: u64) -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325 ^ mix(seed))
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// A string field followed by 0xff, a byte UTF-8 never contains, so `("ab", "c")` and
    /// `("a", "bc")` hash apart.
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes()).bytes(&[0xff])
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// SplitMix64's finaliser: a bijection that spreads every input bit over the output.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An output split into pieces, the unit the simulator paces, clamps and counts as completion
/// tokens. Piece `i` is `text[ends[i - 1]..ends[i]]` (from 0 for the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pieces {
    text: String,
    ends: Vec<usize>,
}

impl Pieces {
    /// Word pieces: each holds one word and the whitespace before it, as BPE tokenizers split
    /// English (`"Hello"`, `" world"`).
    pub(crate) fn words(text: String) -> Self {
        let mut ends = Vec::new();
        let mut prev_space = true;
        for (i, c) in text.char_indices() {
            let space = c.is_whitespace();
            if space && !prev_space && i > 0 {
                ends.push(i);
            }
            prev_space = space;
        }
        if !text.is_empty() {
            ends.push(text.len());
        }
        Pieces { text, ends }
    }

    /// Fixed runs of `chars` characters, for JSON, which has no spaces to split on; four
    /// characters is about one BPE token of JSON.
    pub(crate) fn runs(text: String, chars: usize) -> Self {
        let chars = chars.max(1);
        let mut ends: Vec<usize> = text
            .char_indices()
            .skip(chars)
            .step_by(chars)
            .map(|(i, _)| i)
            .collect();
        if !text.is_empty() {
            ends.push(text.len());
        }
        Pieces { text, ends }
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// The text of pieces `from..to` (clamped to the pieces there are).
    pub(crate) fn span(&self, from: usize, to: usize) -> &str {
        let to = to.min(self.ends.len());
        if from >= to {
            return "";
        }
        let start = if from == 0 { 0 } else { self.ends[from - 1] };
        &self.text[start..self.ends[to - 1]]
    }

    /// Keeps the first `n` pieces; true when some were dropped.
    pub(crate) fn truncate(&mut self, n: usize) -> bool {
        if self.ends.len() <= n {
            return false;
        }
        let end = if n == 0 { 0 } else { self.ends[n - 1] };
        self.ends.truncate(n);
        self.text.truncate(end);
        true
    }

    /// Cuts the text where the first stop sequence starts, as OpenAI does (the stop sequence
    /// itself is not returned); the sequence, when one was found.
    pub(crate) fn stop_at(&mut self, stops: &[String]) -> Option<String> {
        let (cut, stop) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| Some((self.text.find(s.as_str())?, s)))
            .min_by_key(|(at, _)| *at)?;
        let stop = stop.clone();
        self.ends.retain(|&e| e < cut);
        if cut > self.ends.last().copied().unwrap_or(0) {
            self.ends.push(cut);
        }
        self.text.truncate(cut);
        Some(stop)
    }

    fn push_word(&mut self, word: &str) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(word);
        self.ends.push(self.text.len());
    }

    /// Appends a full stop to the last piece (no new piece: punctuation rides on its word).
    fn end_sentence(&mut self) {
        if let Some(last) = self.ends.last_mut() {
            if !self.text.ends_with('.') {
                self.text.push('.');
                *last = self.text.len();
            }
        }
    }
}

const DETERMINERS: &[&str] = &["The", "A", "Each", "This", "Every", "One"];
const OBJECT_DETERMINERS: &[&str] = &["the", "a", "each", "every", "one", "this"];
const ADJECTIVES: &[&str] = &[
    "quick", "simple", "stable", "careful", "small", "clear", "steady", "useful", "local", "new",
    "short", "plain", "fast", "quiet", "shared", "final", "fresh", "safe", "early", "typical",
];
const NOUNS: &[&str] = &[
    "answer", "request", "model", "gateway", "route", "cache", "reply", "token", "budget", "user",
    "team", "service", "policy", "version", "record", "signal", "metric", "prompt", "message",
    "result", "question", "system", "client", "server", "plan", "test", "report", "change", "rule",
    "guard", "window", "batch", "queue", "stream", "limit", "key", "value",
];
const VERBS: &[&str] = &[
    "keeps", "checks", "returns", "measures", "records", "sends", "reads", "writes", "shows",
    "uses", "needs", "follows", "handles", "counts", "tracks", "explains", "covers", "holds",
];
const PREPOSITIONS: &[&str] = &["for", "with", "after", "before", "within", "beside"];

fn pick<'a>(rng: &mut StdRng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

/// `n` word pieces that say plainly they are simulated, then readable filler sentences drawn
/// from `rng` (a small grammar keeps them grammatical, so demos do not look broken).
pub(crate) fn generate(model: &str, n: usize, rng: &mut StdRng) -> Pieces {
    let mut out = Pieces::default();
    let intro = [
        "This",
        "is",
        "a",
        "simulated",
        "reply",
        "from",
        "model",
        model,
    ];
    for word in intro {
        if out.len() == n {
            break;
        }
        out.push_word(word);
    }
    out.end_sentence();
    while out.len() < n {
        let mut sentence: Vec<&str> = Vec::with_capacity(10);
        sentence.push(pick(rng, DETERMINERS));
        if rng.random_bool(0.5) {
            sentence.push(pick(rng, ADJECTIVES));
        }
        sentence.push(pick(rng, NOUNS));
        sentence.push(pick(rng, VERBS));
        sentence.push(pick(rng, OBJECT_DETERMINERS));
        if rng.random_bool(0.5) {
            sentence.push(pick(rng, ADJECTIVES));
        }
        sentence.push(pick(rng, NOUNS));
        if rng.random_bool(0.5) {
            sentence.push(pick(rng, PREPOSITIONS));
            sentence.push(pick(rng, OBJECT_DETERMINERS));
            sentence.push(pick(rng, NOUNS));
        }
        for word in sentence {
            if out.len() == n {
                break;
            }
            out.push_word(word);
        }
        out.end_sentence();
    }
    out
}

/// One short generated sentence, for the `answer` field of a JSON-object reply.
pub(crate) fn sentence(rng: &mut StdRng) -> String {
    let mut s = String::new();
    s.push_str(pick(rng, DETERMINERS));
    for w in [
        pick(rng, NOUNS),
        pick(rng, VERBS),
        pick(rng, OBJECT_DETERMINERS),
        pick(rng, ADJECTIVES),
        pick(rng, NOUNS),
    ] {
        s.push(' ');
        s.push_str(w);
    }
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn all(p: &Pieces) -> Vec<&str> {
        (0..p.len()).map(|i| p.span(i, i + 1)).collect()
    }

    #[test]
    fn words_keep_leading_whitespace() {
        let p = Pieces::words("Hello  big\nworld".to_owned());
        assert_eq!(all(&p), vec!["Hello", "  big", "\nworld"]);
        assert_eq!(Pieces::words(String::new()).len(), 0);
        assert_eq!(all(&Pieces::words(" lead".to_owned())), vec![" lead"]);
    }

    #[test]
    fn runs_split_by_chars() {
        let p = Pieces::runs("{\"é\":12345}".to_owned(), 4);
        assert_eq!(all(&p), vec!["{\"é\"", ":123", "45}"]);
    }

    #[test]
    fn truncate_and_stop() {
        let mut p = Pieces::words("one two three four".to_owned());
        assert!(p.truncate(3));
        assert_eq!(p.text(), "one two three");
        assert!(!p.truncate(3));
        assert_eq!(
            p.stop_at(&["hre".to_owned(), "wo".to_owned()]).as_deref(),
            Some("wo")
        );
        assert_eq!(p.text(), "one t");
        assert_eq!(all(&p), vec!["one", " t"]);
        assert_eq!(p.stop_at(&["zzz".to_owned(), String::new()]), None);
    }

    #[test]
    fn generated_text_has_exactly_n_pieces_and_says_it_is_simulated() {
        for n in [1, 3, 8, 9, 40, 200] {
            let mut rng = StdRng::seed_from_u64(7);
            let p = generate("sim-small", n, &mut rng);
            assert_eq!(p.len(), n, "{}", p.text());
            assert!(p.text().ends_with('.'));
        }
        let mut rng = StdRng::seed_from_u64(7);
        let p = generate("sim-small", 40, &mut rng);
        assert!(p
            .text()
            .starts_with("This is a simulated reply from model sim-small."));
    }

    #[test]
    fn stable_hash_separates_fields_and_seeds() {
        assert_eq!(
            StableHasher::new(0).str("a").finish(),
            StableHasher::new(0).str("a").finish()
        );
        assert_ne!(
            StableHasher::new(0).str("ab").str("c").finish(),
            StableHasher::new(0).str("a").str("bc").finish()
        );
        assert_ne!(
            StableHasher::new(1).str("a").finish(),
            StableHasher::new(0).str("a").finish()
        );
    }
}
