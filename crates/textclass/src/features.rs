//! Text to sparse vectors: hashed word unigrams and bigrams and hashed character n-grams,
//! each group scaled to unit length, then any numeric values the caller appends.
//!
//! The layout of one vector is `[0, buckets)` hashed text features, then the caller's extra
//! values at `buckets + i`. The hash ([`fnv1a`]) and the tokenisation are frozen: trained
//! weights in shipped artifacts depend on every bucket staying where it is, so a change here
//! must come with a new artifact format version. Owns no I/O and no model.

use serde::{Deserialize, Serialize};

/// How text becomes hashed n-grams. Stored in every artifact; changing any field changes the
/// meaning of every weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NgramConfig {
    /// Number of hash buckets is `2^buckets_log2`.
    pub buckets_log2: u32,
    /// Smallest and largest character n-gram length (inclusive); `0, 0` turns them off.
    pub char_ngram_min: usize,
    pub char_ngram_max: usize,
    /// Text is cut to this many bytes (at a char boundary) before featurising, which bounds
    /// the time spent on very long inputs.
    pub max_bytes: usize,
}

impl Default for NgramConfig {
    fn default() -> Self {
        Self {
            buckets_log2: 18,
            char_ngram_min: 3,
            char_ngram_max: 5,
            max_bytes: 4096,
        }
    }
}

impl NgramConfig {
    /// Number of hash buckets.
    pub fn buckets(&self) -> usize {
        1usize << self.buckets_log2
    }

    /// Checks an artifact's config before use, so a corrupt file cannot ask for 2^60 buckets.
    pub fn validate(&self) -> Result<(), String> {
        if !(8..=24).contains(&self.buckets_log2) {
            return Err(format!("buckets_log2 {} outside 8..=24", self.buckets_log2));
        }
        if self.char_ngram_min > self.char_ngram_max {
            return Err("char_ngram_min exceeds char_ngram_max".to_owned());
        }
        if self.char_ngram_max > 16 {
            return Err(format!("char_ngram_max {} above 16", self.char_ngram_max));
        }
        Ok(())
    }
}

/// A featurised text: sorted, de-duplicated `(index, value)` pairs over the whole layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Features {
    /// Dot product with a dense weight vector; indices beyond `weights` count as zero.
    pub fn dot(&self, weights: &[f32]) -> f32 {
        self.indices
            .iter()
            .zip(&self.values)
            .map(|(&i, &v)| weights.get(i as usize).copied().unwrap_or(0.0) * v)
            .sum()
    }
}

/// 64-bit FNV-1a over a kind byte and separated parts. Written out (not taken from a crate)
/// because the bucket of every n-gram is baked into trained weights: the function must never
/// change, and FNV-1a is fixed by its published constants.
pub fn fnv1a(kind: u8, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = FNV_OFFSET;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    };
    eat(kind);
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            // A separator so that ("ab", "c") and ("a", "bc") differ.
            eat(0x1f);
        }
        part.iter().copied().for_each(&mut eat);
    }
    h
}

/// Plain 64-bit FNV-1a of a string, for reproducible splits and folds keyed by row ids.
pub fn fnv1a_str(s: &str) -> u64 {
    s.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// A well-mixed 64-bit hash of a row id, for reproducible splits and folds: FNV-1a followed
/// by MurmurHash3's 64-bit finaliser. FNV-1a alone barely mixes the last bytes into the high
/// bits, so sorting ids such as `surge/13`, `surge/985` by it keeps them close to numeric
/// order; when a file lists one label before the other, a 70/30 cut then splits by label.
pub fn id_hash(id: &str) -> u64 {
    let mut h = fnv1a_str(id);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Turns text into [`Features`] under one [`NgramConfig`].
#[derive(Debug, Clone)]
pub struct NgramFeaturizer {
    config: NgramConfig,
}

impl NgramFeaturizer {
    pub fn new(config: NgramConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &NgramConfig {
        &self.config
    }

    /// Hashed n-grams only.
    pub fn featurize(&self, text: &str) -> Features {
        self.featurize_with(text, |_, _| [])
    }

    /// Hashed n-grams, then the values `extra` returns at slots `buckets + i` (zeros are
    /// skipped). `extra` sees the lower-cased, truncated text and its words, so callers that
    /// add numeric signals tokenise exactly as the hashed features do.
    pub fn featurize_with<E, I>(&self, raw: &str, extra: E) -> Features
    where
        E: FnOnce(&str, &[&str]) -> I,
        I: IntoIterator<Item = f32>,
    {
        let text = truncate(raw, self.config.max_bytes).to_lowercase();
        let mask = (self.config.buckets() - 1) as u64;
        let words = words(&text);
        // Each group is scaled to unit length on its own, so long texts with thousands of
        // character n-grams do not drown out the word features.
        let words_part = normalised(word_ngrams(&words, mask));
        let chars_part = normalised(self.char_ngrams(&text, mask));

        let base = self.config.buckets() as u32;
        let extras: Vec<(u32, f32)> = extra(&text, &words)
            .into_iter()
            .enumerate()
            .filter(|(_, v)| *v != 0.0)
            .map(|(i, v)| (base + i as u32, v))
            .collect();
        merge(&words_part, &chars_part, extras)
    }

    /// The character n-grams of the configured lengths (none when they are off), hashed.
    fn char_ngrams(&self, text: &str, mask: u64) -> Vec<(u32, f32)> {
        let mut char_feats: Vec<(u32, f32)> = Vec::new();
        if self.config.char_ngram_min == 0 {
            return char_feats;
        }
        // Whitespace runs collapse to one space so layout does not change the n-grams.
        let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let bytes = squeezed.as_bytes();
        // Byte offset of every char, plus the end: an n-gram of chars `i..i + n` is the
        // byte range `starts[i]..starts[i + n]`, whose bytes are exactly the chars'
        // UTF-8 encodings in order (what the hash has always consumed).
        let starts: Vec<usize> = squeezed
            .char_indices()
            .map(|(b, _)| b)
            .chain([bytes.len()])
            .collect();
        let chars = starts.len() - 1;
        char_feats.reserve(chars * 3);
        for n in self.config.char_ngram_min..=self.config.char_ngram_max {
            if chars < n {
                break;
            }
            let seed = fnv1a(3, &[&[n as u8]]);
            for i in 0..=chars - n {
                let mut h = seed;
                for &b in &bytes[starts[i]..starts[i + n]] {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(FNV_PRIME);
                }
                char_feats.push(slot(h, mask));
            }
        }
        char_feats
    }
}

/// Signed hashing: the hash's low bits pick the bucket and its top bit +1 or -1, so
/// collisions cancel on average instead of piling up.
fn slot(h: u64, mask: u64) -> (u32, f32) {
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    ((h & mask) as u32, sign)
}

/// The words and the pairs of adjacent words, hashed.
fn word_ngrams(words: &[&str], mask: u64) -> Vec<(u32, f32)> {
    let mut word_feats: Vec<(u32, f32)> = Vec::with_capacity(words.len() * 2);
    for w in words {
        word_feats.push(slot(fnv1a(1, &[w.as_bytes()]), mask));
    }
    for pair in words.windows(2) {
        word_feats.push(slot(
            fnv1a(2, &[pair[0].as_bytes(), pair[1].as_bytes()]),
            mask,
        ));
    }
    word_feats
}

/// Both groups are sorted and each index appears once per group, so a merge gives the
/// sorted union; where a word and a char n-gram share a bucket their two values are added
/// (a + b == b + a exactly, so the result never depends on order). Extras sit above every
/// bucket, in order.
fn merge(
    words_part: &[(u32, f32)],
    chars_part: &[(u32, f32)],
    extras: Vec<(u32, f32)>,
) -> Features {
    let mut out = Features {
        indices: Vec::with_capacity(words_part.len() + chars_part.len() + extras.len()),
        values: Vec::with_capacity(words_part.len() + chars_part.len() + extras.len()),
    };
    let (mut a, mut b) = (words_part.iter().peekable(), chars_part.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(&&(ia, va)), Some(&&(ib, vb))) => {
                if ia == ib {
                    a.next();
                    b.next();
                    (ia, va + vb)
                } else if ia < ib {
                    a.next();
                    (ia, va)
                } else {
                    b.next();
                    (ib, vb)
                }
            }
            (Some(&&p), None) => {
                a.next();
                p
            }
            (None, Some(&&p)) => {
                b.next();
                p
            }
            (None, None) => break,
        };
        out.indices.push(next.0);
        out.values.push(next.1);
    }
    for (i, v) in extras {
        out.indices.push(i);
        out.values.push(v);
    }
    out
}

/// The words of lower-cased text: maximal runs of alphanumeric characters.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Sort a group by index, add up repeats, scale to unit length. Values are ±1 before
/// scaling, so sums are exact integers whatever order repeats are added in.
fn normalised(mut group: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    if group.is_empty() {
        return group;
    }
    radix_sort(&mut group);
    let mut merged: Vec<(u32, f32)> = Vec::with_capacity(group.len());
    for (i, v) in group {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 += v,
            _ => merged.push((i, v)),
        }
    }
    let norm = merged.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
    if norm > 0.0 {
        for p in &mut merged {
            p.1 /= norm;
        }
        merged
    } else {
        Vec::new()
    }
}

/// Pairs below which a comparison sort is used instead of the radix sort.
const RADIX_MIN: usize = 512;

/// Sorts by index. A 4 KB text has about 12,000 character n-grams, and a comparison sort of
/// them was most of the featurizer's time, so long groups take a stable LSD radix sort, 11
/// bits a pass. Each pass clears and scans a 2,048-entry count table (16 KB), which for a
/// short prompt's few dozen n-grams costs far more than sorting them: callgrind put the
/// radix passes at a third of a guarded request's instructions (issue 18), so short groups
/// take a comparison sort. The order of equal indices does not matter: their values are
/// ±1 and add up exactly in any order.
fn radix_sort(v: &mut Vec<(u32, f32)>) {
    if v.len() < RADIX_MIN {
        v.sort_unstable_by_key(|p| p.0);
    } else {
        radix_passes(v);
    }
}

fn radix_passes(v: &mut Vec<(u32, f32)>) {
    const BITS: u32 = 11;
    let max = v.iter().map(|p| p.0).max().unwrap_or(0);
    let mut tmp = vec![(0u32, 0.0f32); v.len()];
    let mut shift = 0;
    while shift < 32 && (max >> shift) > 0 {
        let mut counts = [0usize; 1 << BITS];
        for p in v.iter() {
            counts[((p.0 >> shift) & ((1 << BITS) - 1)) as usize] += 1;
        }
        let mut sum = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for p in v.iter() {
            let d = ((p.0 >> shift) & ((1 << BITS) - 1)) as usize;
            tmp[counts[d]] = *p;
            counts[d] += 1;
        }
        std::mem::swap(v, &mut tmp);
        shift += BITS;
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> NgramFeaturizer {
        NgramFeaturizer::new(NgramConfig {
            buckets_log2: 12,
            ..NgramConfig::default()
        })
    }

    #[test]
    fn deterministic_sorted_and_in_range() {
        let f = small();
        let a = f.featurize("How do I reverse a list in Python?");
        let b = f.featurize("How do I reverse a list in Python?");
        assert_eq!(a, b);
        assert!(a.indices.windows(2).all(|w| w[0] < w[1]));
        assert!(a
            .indices
            .iter()
            .all(|&i| (i as usize) < f.config().buckets()));
    }

    #[test]
    fn id_hash_mixes_trailing_digits() {
        // Ids that differ only at the end must not keep their numeric order.
        let mut ids: Vec<String> = (0..200).map(|i| format!("src/{i}")).collect();
        ids.sort_by_key(|id| id_hash(id));
        let first_half_low = ids[..100]
            .iter()
            .filter(|id| id[4..].parse::<u32>().unwrap_or(0) < 100)
            .count();
        assert!((35..=65).contains(&first_half_low), "{first_half_low}");
    }

    #[test]
    fn hash_is_pinned() {
        // Trained artifacts depend on these exact values; a change here breaks every model.
        assert_eq!(fnv1a(1, &[b"hello"]), 0xe657_88c8_60f9_c52c);
        assert_ne!(fnv1a(2, &[b"ab", b"c"]), fnv1a(2, &[b"a", b"bc"]));
        assert_ne!(fnv1a(1, &[b"x"]), fnv1a(2, &[b"x"]));
        assert_eq!(fnv1a_str(""), FNV_OFFSET);
        assert_eq!(fnv1a_str("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn word_group_is_unit_length() {
        let f = NgramFeaturizer::new(NgramConfig {
            buckets_log2: 16,
            char_ngram_min: 0,
            char_ngram_max: 0,
            ..NgramConfig::default()
        });
        let x = f.featurize("alpha beta gamma");
        let norm: f32 = x.values.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn extras_land_after_the_buckets_and_zeros_are_skipped() {
        let f = small();
        let base = f.config().buckets() as u32;
        let x = f.featurize_with("Hello World", |text, words| {
            assert_eq!(text, "hello world");
            assert_eq!(words, ["hello", "world"]);
            [0.5, 0.0, 2.0]
        });
        let tail: Vec<_> = x
            .indices
            .iter()
            .zip(&x.values)
            .filter(|(i, _)| **i >= base)
            .map(|(i, v)| (*i - base, *v))
            .collect();
        assert_eq!(tail, [(0, 0.5), (2, 2.0)]);
    }

    #[test]
    fn radix_sort_sorts() {
        let mut v: Vec<(u32, f32)> = (0..5000u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761)) % 300_000, i as f32))
            .collect();
        let mut expected = v.clone();
        expected.sort_by_key(|p| p.0);
        radix_sort(&mut v);
        assert_eq!(v, expected, "stable and sorted");
    }

    #[test]
    fn short_groups_featurize_as_the_radix_passes_would() {
        for n in [0usize, 1, 2, 7, 60, 300, RADIX_MIN - 1, RADIX_MIN, 3000] {
            // Many repeats (indices modulo a small range) and both signs, as hashed n-grams.
            let group: Vec<(u32, f32)> = (0..n as u32)
                .map(|i| {
                    let h = i.wrapping_mul(2_654_435_761);
                    (h % 97 * 2_711, if h >> 31 == 1 { -1.0 } else { 1.0 })
                })
                .collect();
            let mut radix = group.clone();
            radix_passes(&mut radix);
            let mut either = group.clone();
            radix_sort(&mut either);
            let keys = |v: &[(u32, f32)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
            assert_eq!(keys(&either), keys(&radix), "n = {n}");
            let via_radix = {
                let mut merged: Vec<(u32, f32)> = Vec::new();
                for (i, v) in radix {
                    match merged.last_mut() {
                        Some(last) if last.0 == i => last.1 += v,
                        _ => merged.push((i, v)),
                    }
                }
                merged
            };
            let norm = via_radix.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt();
            let expected: Vec<(u32, f32)> = if norm > 0.0 {
                via_radix.iter().map(|&(i, v)| (i, v / norm)).collect()
            } else {
                Vec::new()
            };
            assert_eq!(normalised(group), expected, "n = {n}");
        }
    }

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn config_validation() {
        assert!(NgramConfig::default().validate().is_ok());
        let bad = NgramConfig {
            buckets_log2: 40,
            ..NgramConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
