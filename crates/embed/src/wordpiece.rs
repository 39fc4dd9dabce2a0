//! A fast path for BERT's uncased WordPiece tokenizer on ASCII text.
//!
//! The static model's whole cost is tokenization: `tokenizers` spends ~70 µs on a 20-token
//! input (normalisation, pre-tokenization and WordPiece through its general pipeline, with
//! offsets and allocations per piece), against ~1 µs for the table lookups. For ASCII input,
//! BERT's uncased pipeline is simple enough to do in one pass without allocating per piece:
//! 1. normalise: drop control characters, turn whitespace into spaces, lowercase (accent
//!    stripping does nothing on ASCII);
//! 2. pre-tokenize: split on whitespace, and make every ASCII punctuation character its own
//!    word (BERT counts all of `!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~` as punctuation);
//! 3. WordPiece: per word, greedy longest match from the start, then from each remaining
//!    position with the `##` prefix; a word with no full segmentation, or longer than the
//!    limit, is one `[UNK]`.
//!
//! Anything else (non-ASCII text, which needs Unicode normalisation, or a `[` that might
//! open a special token such as `[SEP]`) goes to the full tokenizer. The integration tests
//! check that both give the same ids on every text of the semantic-cache data.

use std::collections::HashMap;

use tokenizers::Tokenizer;

/// The vocabulary of a BERT uncased WordPiece tokenizer, split for lookups by slice.
#[derive(Debug, Clone)]
pub(crate) struct FastWordPiece {
    /// Pieces that start a word.
    start: HashMap<Box<str>, u32>,
    /// Pieces that continue a word, without their `##`.
    cont: HashMap<Box<str>, u32>,
    unk: u32,
    max_chars: usize,
}

impl FastWordPiece {
    /// Some when `tokenizer` is exactly the pipeline this module reimplements.
    pub(crate) fn from_tokenizer(tokenizer: &Tokenizer) -> Option<Self> {
        let json: serde_json::Value =
            serde_json::from_str(&tokenizer.to_string(false).ok()?).ok()?;
        let norm = &json["normalizer"];
        let model = &json["model"];
        let ok = norm["type"] == "BertNormalizer"
            && norm["clean_text"] == true
            && norm["lowercase"] == true
            && norm["strip_accents"] != false
            && json["pre_tokenizer"]["type"] == "BertPreTokenizer"
            && model["type"] == "WordPiece"
            && model["continuing_subword_prefix"] == "##";
        if !ok {
            return None;
        }
        let unk = tokenizer.token_to_id(model["unk_token"].as_str()?)?;
        let max_chars = usize::try_from(model["max_input_chars_per_word"].as_u64()?).ok()?;
        let mut start = HashMap::new();
        let mut cont = HashMap::new();
        for (piece, id) in model["vocab"].as_object()? {
            let id = u32::try_from(id.as_u64()?).ok()?;
            match piece.strip_prefix("##") {
                Some(rest) => cont.insert(rest.into(), id),
                None => start.insert(piece.as_str().into(), id),
            };
        }
        Some(Self {
            start,
            cont,
            unk,
            max_chars,
        })
    }

    /// Token ids of `text` (no special tokens), or None when the text needs the full
    /// tokenizer. Stops after `limit` ids.
    pub(crate) fn encode(&self, text: &str, limit: usize, out: &mut Vec<u32>) -> Option<()> {
        if !text.is_ascii() || text.contains('[') {
            return None;
        }
        let mut lower = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'\t' | b'\n' | b'\r' | b' ' => lower.push(' '),
                0..=0x1f | 0x7f => {}
                _ => lower.push(char::from(b.to_ascii_lowercase())),
            }
        }
        let bytes = lower.as_bytes();
        let mut i = 0;
        while i < bytes.len() && out.len() < limit {
            let b = bytes[i];
            if b == b' ' {
                i += 1;
            } else if b.is_ascii_punctuation() {
                self.word(&lower[i..=i], out);
                i += 1;
            } else {
                let end = bytes[i..]
                    .iter()
                    .position(|c| *c == b' ' || c.is_ascii_punctuation())
                    .map_or(bytes.len(), |p| i + p);
                self.word(&lower[i..end], out);
                i = end;
            }
        }
        out.truncate(limit);
        Some(())
    }

    fn word(&self, word: &str, out: &mut Vec<u32>) {
        if word.len() > self.max_chars {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let table = if start == 0 { &self.start } else { &self.cont };
            // Longest match first; ASCII, so every byte offset is a char boundary.
            let found = (start + 1..=word.len())
                .rev()
                .find_map(|end| table.get(&word[start..end]).map(|&id| (id, end)));
            match found {
                Some((id, end)) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Tokenizer, FastWordPiece) {
        let vocab: serde_json::Map<String, serde_json::Value> = [
            "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", "!", ",", "'", "s", "it",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_owned(), i.into()))
        .collect();
        // Built from JSON, the form the real tokenizer.json has.
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 12,
                "vocab": vocab}
        });
        let tok: Tokenizer = json.to_string().parse().unwrap();
        let fast = FastWordPiece::from_tokenizer(&tok).unwrap();
        (tok, fast)
    }

    #[test]
    fn agrees_with_the_full_tokenizer() {
        let (tok, fast) = tiny();
        for text in [
            "unaffable",
            "Hello, UNAFFABLE!",
            "it's\thello\n\r un",
            "unknown words here",
            "unaffableunaffable",
            "  ,,!! ",
            "",
            "a\u{7}b",
        ] {
            let want = tok.encode(text, false).unwrap().get_ids().to_vec();
            let mut got = Vec::new();
            fast.encode(text, 512, &mut got).unwrap();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn declines_what_it_cannot_do_and_respects_the_limit() {
        let (_, fast) = tiny();
        let mut out = Vec::new();
        assert!(fast.encode("héllo", 512, &mut out).is_none());
        assert!(fast.encode("[SEP] hello", 512, &mut out).is_none());
        fast.encode("hello hello hello", 2, &mut out).unwrap();
        assert_eq!(out.len(), 2);
    }
}
