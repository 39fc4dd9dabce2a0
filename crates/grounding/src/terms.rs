//! Words, numbers and names of a sentence, normalised so that the answer's and the context's
//! can be compared: lower case, a light suffix stripper (`grossed` and `gross` meet), numbers
//! without thousands separators or currency signs (`$ 181,674,817` and `$181,674,817` meet),
//! and candidate names (capitalised words not opening the sentence, acronyms).

use switchyard_textclass::stopwords::{is_function_word, QUESTION_WORDS};

/// Words that carry no claim of their own beyond the shared function and question words
/// (`switchyard_textclass::stopwords`): prepositions of place and time, quantifiers, the
/// pieces of contractions, connectives and negations (negation is tracked apart, with
/// `NEGATIONS`). The rest are content words.
const NO_CLAIM: &[&str] = &[
    "over",
    "under",
    "after",
    "before",
    "between",
    "through",
    "during",
    "up",
    "down",
    "out",
    "off",
    "theirs",
    "both",
    "each",
    "other",
    "such",
    "while",
    "only",
    "own",
    "same",
    "too",
    "d",
    "ll",
    "re",
    "ve",
    "m",
    "o",
    "there's",
    "it's",
    "more",
    "most",
    "well",
    "because",
    "again",
    "further",
    "once",
    "per",
    "via",
    "upon",
    "within",
    "without",
    "yes",
    "however",
    "therefore",
    "thus",
    "since",
    "until",
    "whether",
    "either",
    "neither",
    "nor",
    "not",
    "no",
    "never",
    "n't",
];

/// Words an answer uses to talk about the exchange itself rather than the world ("the answer
/// is ...", "based on the context ...", "the passage says ..."): framing, not a claim the
/// context has to hold. Compared lower case, before stemming.
const FRAMING: &[&str] = &[
    "answer",
    "answers",
    "answered",
    "question",
    "questions",
    "asked",
    "context",
    "passage",
    "passages",
    "article",
    "document",
    "documents",
    "text",
    "excerpt",
    "paragraph",
    "source",
    "sources",
    "according",
    "based",
    "provided",
    "mentioned",
    "mentions",
    "stated",
    "says",
    "summary",
    "summarizes",
    "summarises",
    "information",
    "correct",
    "response",
];

/// `lower` carries no claim of its own: not a content word.
fn is_stopword(lower: &str) -> bool {
    is_function_word(lower)
        || QUESTION_WORDS.contains(&lower)
        || NO_CLAIM.contains(&lower)
        || FRAMING.contains(&lower)
}

/// Negation words: a sentence that says one of these while its best context match does not
/// (or the reverse) may flip the claim.
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "none",
    "nor",
    "neither",
    "nobody",
    "nothing",
    "nowhere",
    "cannot",
    "without",
    "n't",
    "isn't",
    "wasn't",
    "aren't",
    "weren't",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "can't",
    "couldn't",
    "shouldn't",
    "wouldn't",
    "hasn't",
    "haven't",
    "hadn't",
];

/// The pieces of one sentence used by the support features.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    /// Stems of content words, in order (repeats kept).
    pub content: Vec<String>,
    /// The same words lower-cased but not stemmed, for [`rarity`].
    pub surface: Vec<String>,
    /// Normalised numbers (digits, one optional decimal point).
    pub numbers: Vec<String>,
    /// Names: stems of capitalised words that do not open the sentence, and acronyms.
    pub entities: Vec<String>,
    /// Says a negation word.
    pub negated: bool,
}

/// Raw word tokens with their byte offsets: runs of letters, digits, apostrophes inside a
/// word, and `.`/`,` between digits.
pub fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut prev: Option<char> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let next = iter.peek().map(|&(_, n)| n);
        let inner = match c {
            '\'' | '\u{2019}' => {
                start.is_some()
                    && prev.is_some_and(char::is_alphabetic)
                    && next.is_some_and(char::is_alphabetic)
            }
            '.' | ',' => {
                start.is_some()
                    && prev.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit())
            }
            _ => c.is_alphanumeric(),
        };
        if inner {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            out.push((s, &text[s..i]));
        }
        prev = Some(c);
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Lower case and strip a few English suffixes, so inflections of one word meet.
pub fn stem(word: &str) -> String {
    let w = word.to_lowercase().replace('\u{2019}', "'");
    let w = w.strip_suffix("'s").unwrap_or(&w);
    let n = w.chars().count();
    if n <= 3 {
        return w.to_owned();
    }
    for (suffix, min_left) in [
        ("ies", 3),
        ("ing", 4),
        ("ed", 3),
        ("es", 3),
        ("ly", 4),
        ("s", 3),
    ] {
        if let Some(base) = w.strip_suffix(suffix) {
            if base.chars().count() >= min_left && !(suffix == "s" && base.ends_with('s')) {
                return if suffix == "ies" {
                    format!("{base}y")
                } else {
                    base.to_owned()
                };
            }
        }
    }
    w.to_owned()
}

/// A number token in canonical form: separators dropped, a trailing `.0` kept as written.
fn number(token: &str) -> Option<String> {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    // Words such as "1990s" or "3rd": keep the leading digits.
    let lead: String = token
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let lead = lead.trim_end_matches('.').to_owned();
    if lead.is_empty() {
        None
    } else {
        Some(lead)
    }
}

/// The content words, numbers, names and negation of a sentence.
pub fn terms(sentence: &str) -> Terms {
    let mut t = Terms::default();
    let toks = tokens(sentence);
    for (n, &(_, tok)) in toks.iter().enumerate() {
        let lower = tok.to_lowercase();
        if NEGATIONS.contains(&lower.as_str()) || lower.ends_with("n't") {
            t.negated = true;
        }
        if let Some(num) = number(tok) {
            t.numbers.push(num);
            continue;
        }
        if is_stopword(&lower) {
            continue;
        }
        let s = stem(tok);
        let first = tok.chars().next();
        let capital = first.is_some_and(char::is_uppercase);
        let acronym = tok.chars().count() >= 2 && tok.chars().all(|c| c.is_uppercase());
        // The first word is capitalised anyway; count it as a name only when the next word
        // is capitalised too ("Allie Goertz wrote ...").
        let opens = n == 0;
        let next_capital = toks
            .get(n + 1)
            .is_some_and(|(_, w)| w.chars().next().is_some_and(char::is_uppercase));
        if acronym || (capital && (!opens || next_capital)) {
            t.entities.push(s.clone());
        }
        t.content.push(s);
        t.surface.push(lower);
    }
    t
}

/// Common English words in frequency order (`common_words.txt`).
const COMMON_WORDS: &str = include_str!("common_words.txt");

/// How rare a lower-case word is, in `[0, 1]`: 0 for the most common English word, rising
/// with the logarithm of its frequency rank, 1 for a word outside the ~11,000 listed. An
/// answer word the context does not hold is weak evidence of invention when it is common
/// ("say", "likely", "known") and strong when it is rare ("astronaut").
pub fn rarity(lower: &str) -> f32 {
    static RANKS: std::sync::OnceLock<std::collections::HashMap<&'static str, u32>> =
        std::sync::OnceLock::new();
    let ranks = RANKS.get_or_init(|| {
        COMMON_WORDS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .zip(0u32..)
            .collect()
    });
    match ranks.get(lower) {
        Some(&r) => ((r as f32).ln_1p() / (ranks.len() as f32).ln_1p()).clamp(0.0, 1.0),
        None => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_numbers_and_contractions() {
        let words: Vec<&str> = tokens("It's $181,674,817 (3.5%) in 1990s, isn't it?")
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(
            words,
            ["It's", "181,674,817", "3.5", "in", "1990s", "isn't", "it"]
        );
    }

    #[test]
    fn stems_meet() {
        assert_eq!(stem("grossed"), stem("gross"));
        assert_eq!(stem("Studies"), "study");
        assert_eq!(stem("films"), stem("film"));
        assert_eq!(stem("class"), "class");
    }

    #[test]
    fn terms_of_a_sentence() {
        let t = terms("Allie Goertz wrote 3 songs about Marge in 1,990, not 1991.");
        assert_eq!(t.numbers, ["3", "1990", "1991"]);
        assert!(t.entities.contains(&"marge".to_owned()));
        assert!(t.entities.contains(&"allie".to_owned()));
        assert!(t.negated);
        assert!(t.content.contains(&"song".to_owned()));
        assert!(!t.content.contains(&"about".to_owned()));
        assert_eq!(t.content.len(), t.surface.len());
    }

    #[test]
    fn rarity_follows_frequency() {
        assert_eq!(rarity("the"), 0.0);
        assert!(rarity("say") < rarity("musician"));
        assert!(rarity("musician") < 1.0);
        assert_eq!(rarity("qwxzv"), 1.0);
    }

    #[test]
    fn framing_words_are_no_claim() {
        let t = terms("Based on the context, the answer is Nixon.");
        assert_eq!(t.content, ["nixon"]);
    }
}
