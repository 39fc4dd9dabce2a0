//! Deterministic embeddings by feature hashing: lowercased word unigrams and character
//! trigrams, each hashed to a dimension and a sign, then L2-normalised.
//!
//! Texts that share words and word fragments share dimensions, so a paraphrase scores closer
//! than an unrelated text: enough for semantic-cache and routing demos without a model.

use base64::Engine;

use super::text::StableHasher;

/// Trigrams count half as much as whole words: they carry spelling similarity (plurals,
/// typos) without drowning the words themselves.
const TRIGRAM_WEIGHT: f32 = 0.5;

/// A unit vector of `dims` dimensions for `text`; `basis` (from the seed and model) picks the
/// hash functions, so two simulated models have unrelated vector spaces, as real ones do.
pub(crate) fn embed(text: &str, dims: usize, basis: u64) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0.0f32; dims];
    let lower = text.to_lowercase();
    let mut add = |kind: u8, feature: &str, weight: f32| {
        let h = StableHasher::new(basis)
            .bytes(&[kind])
            .str(feature)
            .finish();
        // The top bit gives the sign: signed hashing keeps collisions from adding up to a
        // bias that makes every pair of texts look alike.
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % dims as u64) as usize] += sign * weight;
    };
    let mut padded = String::new();
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add(b'w', word, 1.0);
        padded.clear();
        padded.push(' ');
        padded.push_str(word);
        padded.push(' ');
        let idx: Vec<usize> = padded.char_indices().map(|(i, _)| i).collect();
        for w in idx.windows(4) {
            add(b't', &padded[w[0]..w[3]], TRIGRAM_WEIGHT);
        }
        // The window above stops one trigram short of the end: add the last one.
        if let Some(&start) = idx.len().checked_sub(3).and_then(|i| idx.get(i)) {
            add(b't', &padded[start..], TRIGRAM_WEIGHT);
        }
    }
    if v.iter().all(|x| *x == 0.0) {
        // No features (empty or punctuation-only text): a fixed unit vector rather than zeros,
        // whose cosine with anything is undefined.
        v[0] = 1.0;
    }
    normalise(&mut v);
    v
}

/// The first `n` dimensions, renormalised, as OpenAI's `dimensions` parameter does.
pub(crate) fn shorten(mut v: Vec<f32>, n: usize) -> Vec<f32> {
    v.truncate(n);
    if v.iter().all(|x| *x == 0.0) {
        if let Some(first) = v.first_mut() {
            *first = 1.0;
        }
    }
    normalise(&mut v);
    v
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Base64 of the little-endian f32s, OpenAI's `encoding_format: "base64"`.
pub(crate) fn to_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn paraphrase_is_closer_than_unrelated_text() {
        let a = embed("How do I reset my password?", 256, 1);
        let b = embed("how can i reset the password for my account", 256, 1);
        let c = embed("The weather in Paris is sunny today", 256, 1);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(
            cos(&a, &b) > cos(&a, &c) + 0.3,
            "{} vs {}",
            cos(&a, &b),
            cos(&a, &c)
        );
    }

    #[test]
    fn unit_length_for_any_text_and_after_shortening() {
        for text in ["", "?!", "a", "naïve café ünïcode"] {
            let v = embed(text, 64, 0);
            assert!((cos(&v, &v) - 1.0).abs() < 1e-5, "{text}");
            let s = shorten(v, 8);
            assert_eq!(s.len(), 8);
            assert!((cos(&s, &s) - 1.0).abs() < 1e-5, "{text}");
        }
    }
}
