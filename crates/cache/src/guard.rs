//! The false-hit guard: a second, rule-based look at a semantic candidate that is already above
//! the similarity threshold.
//!
//! Sentence embeddings place "how do I enable X" and "how do I disable X" close together,
//! because they share nearly every word and topic; the difference that matters to the user is
//! one token. So before a candidate is served, the query and the cached question are compared
//! on the tokens embeddings are weakest at:
//!
//! 1. negation: the sides hold different numbers of negations (not, never, no, without,
//!    can't, ...), so one negated clause more or fewer is caught even in a text that already
//!    has one;
//! 2. polarity: one side says a word whose opposite the other side says (enable/disable,
//!    increase/decrease, before/after, ...), and neither says both;
//! 3. numbers: the sets of numbers differ (digits, with `1,000` read as `1000`, and number
//!    words up to twenty);
//! 4. entities: each side names a capitalised word or code-like token (`snake_case`,
//!    `v1.2`, `camelCase`, `std::io`) that the other side does not contain at all; a
//!    substitution, not a mere addition, because paraphrases often add or drop a name.
//!
//! 5. substitution: the two texts are the same sequence of words but one, and that one is a
//!    content word on both sides ("translate 'good morning'" / "translate 'good night'"):
//!    a template with a different slot filled is a different question, however close the
//!    embeddings. Function words ("how do I" / "how can I") and forms of one word
//!    ("reset" / "resetting") do not count.
//!
//! The guard is symmetric and a text always passes against itself (property-tested).

use std::collections::BTreeSet;

/// Why the guard refused a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardReason {
    /// One side is negated and the other is not.
    Negation,
    /// Opposite words: the query's and the candidate's.
    Polarity { query: String, cached: String },
    /// The numbers differ.
    Numbers,
    /// A name or code token on each side that the other does not have.
    Entities { query: String, cached: String },
    /// The same words but one content word.
    Substitution { query: String, cached: String },
}

impl GuardReason {
    /// The reason's kind, without the words it quotes (those are the caller's).
    pub fn kind(&self) -> &'static str {
        match self {
            GuardReason::Negation => "negation",
            GuardReason::Polarity { .. } => "polarity",
            GuardReason::Numbers => "numbers",
            GuardReason::Entities { .. } => "entities",
            GuardReason::Substitution { .. } => "substitution",
        }
    }
}

impl std::fmt::Display for GuardReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardReason::Negation => f.write_str("negation differs"),
            GuardReason::Polarity { query, cached } => write!(f, "polarity: {query} vs {cached}"),
            GuardReason::Numbers => f.write_str("numbers differ"),
            GuardReason::Entities { query, cached } => write!(f, "entities: {query} vs {cached}"),
            GuardReason::Substitution { query, cached } => {
                write!(f, "substitution: {query} vs {cached}")
            }
        }
    }
}

/// Words that negate. Contractions in `n't` are caught by suffix.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent",
    "wasnt", "werent", "wont", "shouldnt", "wouldnt", "couldnt", "none", "nobody", "nothing",
    "neither", "nor", "nowhere", "hasnt", "havent", "hadnt", "mustnt", "neednt",
];

/// Pairs of opposites, as base forms; common inflections are derived in `forms`.
const OPPOSITES: &[(&str, &str)] = &[
    ("enable", "disable"),
    ("activate", "deactivate"),
    ("allow", "block"),
    ("allow", "deny"),
    ("allow", "forbid"),
    ("permit", "forbid"),
    ("on", "off"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("raise", "lower"),
    ("add", "remove"),
    ("add", "delete"),
    ("insert", "delete"),
    ("create", "delete"),
    ("create", "destroy"),
    ("install", "uninstall"),
    ("start", "stop"),
    ("begin", "end"),
    ("open", "close"),
    ("lock", "unlock"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("compress", "decompress"),
    ("import", "export"),
    ("upload", "download"),
    ("connect", "disconnect"),
    ("subscribe", "unsubscribe"),
    ("follow", "unfollow"),
    ("show", "hide"),
    ("mount", "unmount"),
    ("include", "exclude"),
    ("accept", "reject"),
    ("buy", "sell"),
    ("win", "lose"),
    ("gain", "lose"),
    ("before", "after"),
    ("above", "below"),
    ("more", "less"),
    ("most", "least"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("best", "worst"),
    ("better", "worse"),
    ("true", "false"),
    ("positive", "negative"),
    ("input", "output"),
    ("inside", "outside"),
    ("internal", "external"),
    ("first", "last"),
    ("push", "pull"),
    ("upper", "lower"),
    ("uppercase", "lowercase"),
    ("ascending", "descending"),
    ("legal", "illegal"),
    ("valid", "invalid"),
    ("safe", "unsafe"),
    ("possible", "impossible"),
    ("like", "dislike"),
    ("love", "hate"),
    ("cheap", "expensive"),
    ("fast", "slow"),
    ("easy", "hard"),
    ("easy", "difficult"),
    ("rich", "poor"),
    ("good", "bad"),
    ("happy", "sad"),
    ("hot", "cold"),
    ("long", "short"),
    ("old", "new"),
    ("young", "old"),
    ("men", "women"),
    ("male", "female"),
    ("boy", "girl"),
    ("agree", "disagree"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
    ("success", "failure"),
    ("succeed", "fail"),
    ("north", "south"),
    ("east", "west"),
];

/// Number words read as digits, so "two" and "2" agree.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
];

/// Capitalised words that are not names: sentence starters and pronouns.
const NOT_NAMES: &[&str] = &[
    "i", "what", "how", "why", "when", "where", "who", "which", "is", "are", "can", "do", "does",
    "should", "will", "would", "could", "the", "a", "an", "if", "in", "on", "my", "it", "this",
    "that", "please", "hi", "hello", "hey", "thanks", "ok", "okay", "yes", "am", "was", "were",
    "has", "have", "did", "and", "or", "but", "so", "to", "for", "of", "with", "as",
];

/// What the guard looks at in one text; computed once per text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Lower-cased tokens, contractions folded (`can't` → `cant`).
    words: BTreeSet<String>,
    /// How many negation words: "not X" against "couldn't, not X" still differs.
    negations: usize,
    numbers: BTreeSet<String>,
    entities: BTreeSet<String>,
    /// The lower-cased words in order, for the substitution rule.
    sequence: Vec<String>,
}

impl Features {
    pub fn of(text: &str) -> Features {
        let mut f = Features::default();
        let mut sentence_start = true;
        for raw in tokens(text) {
            let trimmed = raw.trim_end_matches(['.', ',', ':', '-', '/', '\'']);
            if trimmed.is_empty() {
                continue;
            }
            let lower = trimmed.to_lowercase().replace('\'', "");
            if is_negation(&lower) {
                f.negations += 1;
            }
            if let Some(n) = number(&lower) {
                f.numbers.insert(n);
            } else if let Some(ns) = number_range(&lower) {
                f.numbers.extend(ns);
            } else if is_code_like(trimmed)
                || (!sentence_start
                    && starts_upper(trimmed)
                    && !NOT_NAMES.contains(&lower.as_str()))
            {
                f.entities.insert(lower.clone());
            }
            f.sequence.push(lower.clone());
            f.words.insert(lower);
            sentence_start = raw.ends_with(['.', '?', '!']) || raw.ends_with(':');
        }
        f
    }
}

/// A negation word; contractions arrive with the apostrophe dropped (`don't` → `dont`).
fn is_negation(lower: &str) -> bool {
    NEGATIONS.contains(&lower) || matches!(lower, "aint" | "mightnt" | "shant" | "oughtnt")
}

fn starts_upper(s: &str) -> bool {
    s.chars().next().is_some_and(char::is_uppercase)
}

/// `snake_case`, `v1.2`, `camelCase`, `std::io`, `a/b`: tokens that name a thing in code.
fn is_code_like(s: &str) -> bool {
    let has_alpha = s.chars().any(char::is_alphabetic);
    let has_digit = s.chars().any(|c| c.is_ascii_digit());
    let inner_mark = s.contains('_') || s.contains("::") || s.contains('.') || s.contains('/');
    let camel = s
        .chars()
        .zip(s.chars().skip(1))
        .any(|(a, b)| a.is_lowercase() && b.is_uppercase());
    has_alpha && (has_digit || inner_mark || camel)
}

/// A number in canonical digits, or `None`.
fn number(lower: &str) -> Option<String> {
    if let Some((_, d)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
        return Some((*d).to_owned());
    }
    let digits: String = lower.chars().filter(|c| *c != ',').collect();
    let digits = digits.trim_start_matches(['$', '#', '+']);
    let digits = digits.trim_end_matches(['%', 'k', 'm']);
    if !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().any(|c| c.is_ascii_digit())
    {
        let canon = if digits.contains('.') {
            digits.trim_end_matches('0').trim_end_matches('.')
        } else {
            digits
        };
        let canon = canon.trim_start_matches('0');
        return Some(if canon.is_empty() {
            "0".to_owned()
        } else {
            canon.to_owned()
        });
    }
    None
}

/// A range such as `24-25` or `2019-2020`: its numbers, so "June 24-25" and "June 24 and 25"
/// agree and "June 25" differs.
fn number_range(lower: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = lower.split(['-', '\u{2013}']).collect();
    if parts.len() < 2 {
        return None;
    }
    parts.iter().map(|p| number(p)).collect()
}

/// Splits on anything that is not part of a word or a code token.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.replace(['\u{2019}', '\u{2018}'], "'")
        .split(|c: char| {
            !(c.is_alphanumeric()
                || matches!(
                    c,
                    '\'' | '_' | '.' | ':' | '/' | '-' | '$' | '%' | ',' | '#' | '+'
                ))
                && c != '?'
                && c != '!'
        })
        .flat_map(|t| {
            // `?` and `!` end a sentence but are not part of the word.
            let ends = t.ends_with(['?', '!']);
            let w = t.trim_matches(['?', '!', ',', '-', '\'']);
            if w.is_empty() {
                None
            } else if ends {
                Some(format!("{w}."))
            } else {
                Some(w.to_owned())
            }
        })
        .collect::<Vec<_>>()
        .into_iter()
}

/// Whether `words` holds `base` or one of its inflections (`enable` → enables, enabled,
/// enabling; `remove` → removal; `delete` → deletion). Every form starts with the stem (`base` less a final `e`), so only the
/// words in that range of the sorted set are looked at; nothing is allocated, because this
/// runs for each of the ~80 opposite pairs on both sides of every candidate.
fn says(words: &BTreeSet<String>, base: &str) -> bool {
    let stem = base.strip_suffix('e').unwrap_or(base);
    // The prefix every form shares: `eas` for easy/easily, the stem otherwise.
    let prefix = base.strip_suffix('y').unwrap_or(stem);
    words
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|w| w.starts_with(prefix))
        .any(|w| {
            w == base
                || w.strip_suffix('s') == Some(base)
                || w.strip_suffix('d') == Some(base)
                || w.strip_suffix("ed") == Some(stem)
                || w.strip_suffix("ing") == Some(stem)
                // easy → easily, easier, easiest.
                || base.strip_suffix('y').is_some_and(|b| {
                    ["ily", "ier", "iest"].iter().any(|x| w.strip_suffix(x) == Some(b))
                })
                // Nouns of the verb: removal, deletion, insertion.
                || w.strip_suffix("al") == Some(stem)
                || w.strip_suffix("ion") == Some(stem)
        })
}

/// Words that carry grammar, not the question's subject: swapping one for another does not
/// change what is asked.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "my", "your", "our", "their", "his", "her",
    "its", "i", "you", "we", "they", "he", "she", "it", "me", "us", "them", "do", "does", "did",
    "can", "could", "should", "would", "will", "shall", "may", "might", "must", "is", "are", "was",
    "were", "be", "been", "am", "to", "of", "in", "on", "at", "for", "with", "by", "from", "into",
    "about", "what", "which", "how", "why", "when", "where", "who", "whom", "and", "or", "but",
    "so", "if", "some", "any", "all", "there", "here", "please", "just", "get", "got", "one",
    "ones", "way", "ways", "best", "good", "really", "very", "much", "many", "more", "most",
    "also", "too", "as", "than", "then", "have", "has", "had",
];

/// Rule 5: the one content word that differs between two otherwise identical sequences.
fn substitution(query: &Features, cached: &Features) -> Option<(String, String)> {
    if query.sequence.len() != cached.sequence.len() || query.sequence.len() < 2 {
        return None;
    }
    let mut diffs = query
        .sequence
        .iter()
        .zip(&cached.sequence)
        .filter(|(q, c)| q != c);
    let (q, c) = diffs.next()?;
    if diffs.next().is_some() {
        return None;
    }
    let content = |w: &str| {
        let bare = w.trim_end_matches('.');
        bare.chars().count() >= 3 && !FUNCTION_WORDS.contains(&bare)
    };
    // Forms of one word share a long prefix: reset / resetting, colour / colours.
    let shared = q.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    let same_word = shared >= 4 && shared * 4 >= q.chars().count().min(c.chars().count()) * 3;
    (content(q) && content(c) && !same_word).then(|| (q.clone(), c.clone()))
}

/// Checks a candidate: `Ok` when it may be served for the query.
pub fn check(query: &Features, cached: &Features) -> Result<(), GuardReason> {
    if query.negations != cached.negations {
        return Err(GuardReason::Negation);
    }
    for (a, b) in OPPOSITES {
        let (qa, qb) = (says(&query.words, a), says(&query.words, b));
        let (ca, cb) = (says(&cached.words, a), says(&cached.words, b));
        if qa && !qb && cb && !ca {
            return Err(GuardReason::Polarity {
                query: (*a).to_owned(),
                cached: (*b).to_owned(),
            });
        }
        if qb && !qa && ca && !cb {
            return Err(GuardReason::Polarity {
                query: (*b).to_owned(),
                cached: (*a).to_owned(),
            });
        }
    }
    if query.numbers != cached.numbers {
        return Err(GuardReason::Numbers);
    }
    let only_q = query.entities.iter().find(|e| !cached.words.contains(*e));
    let only_c = cached.entities.iter().find(|e| !query.words.contains(*e));
    if let (Some(q), Some(c)) = (only_q, only_c) {
        return Err(GuardReason::Entities {
            query: q.clone(),
            cached: c.clone(),
        });
    }
    if let Some((query, cached)) = substitution(query, cached) {
        return Err(GuardReason::Substitution { query, cached });
    }
    Ok(())
}

/// Each rule's verdict separately, for the pair verifier of the cache evaluation
/// (`examples/eval/verify.rs`), which uses them as features (entities)
/// or as its hard veto (negation, polarity, a changed number), rather than stopping at the
/// first rule that fires as `check` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Rule 1: the negation counts differ.
    pub negation: bool,
    /// Rule 2: an opposite word on each side.
    pub polarity: bool,
    /// Both sides name numbers and the sets differ: a changed number, not an added detail.
    pub numbers_changed: bool,
    /// Only one side names numbers (a detail added or dropped).
    pub numbers_one_side: bool,
    /// Rule 4: an entity on each side that the other lacks (a substitution).
    pub entities_swapped: bool,
    /// An entity on one side only that the other lacks (an addition).
    pub entities_added: bool,
    /// One side says a word of an opposite pair and the other side says neither word of the
    /// pair ("It is impossible to ..." against "Yes, you can ..."): weaker than `polarity`,
    /// because a paraphrase may drop the word ("increase my height" / "grow taller").
    pub polarity_one_side: bool,
    /// The narrow, vetoed case of `polarity_one_side`: the word on the one side is the
    /// negated pole of its pair (`impossible`, `uninstall`, `disagree`, `disable`,
    /// `decrease`), which a paraphrase of the other side would not introduce.
    pub negated_one_side: bool,
}

pub fn signals(query: &Features, cached: &Features) -> Signals {
    let polarity = OPPOSITES.iter().any(|(a, b)| {
        let (qa, qb) = (says(&query.words, a), says(&query.words, b));
        let (ca, cb) = (says(&cached.words, a), says(&cached.words, b));
        (qa && !qb && cb && !ca) || (qb && !qa && ca && !cb)
    });
    let polarity_one_side = OPPOSITES.iter().any(|(a, b)| {
        let q = says(&query.words, a) || says(&query.words, b);
        let c = says(&cached.words, a) || says(&cached.words, b);
        q != c
    });
    let negated_one_side = OPPOSITES
        .iter()
        .filter(|(a, b)| negated_pole(a, b))
        .any(|(a, b)| {
            let q = says(&query.words, a) || says(&query.words, b);
            let c = says(&cached.words, a) || says(&cached.words, b);
            (says(&query.words, b) && !c) || (says(&cached.words, b) && !q)
        });
    let both_numbers = !query.numbers.is_empty() && !cached.numbers.is_empty();
    let only_q = query.entities.iter().any(|e| !cached.words.contains(e));
    let only_c = cached.entities.iter().any(|e| !query.words.contains(e));
    Signals {
        negation: query.negations != cached.negations,
        polarity,
        numbers_changed: both_numbers && query.numbers != cached.numbers,
        numbers_one_side: query.numbers.is_empty() != cached.numbers.is_empty(),
        entities_swapped: only_q && only_c,
        entities_added: only_q != only_c,
        polarity_one_side,
        negated_one_side,
    }
}

/// Whether `b` is `a` negated by a prefix (possible/impossible, install/uninstall), or one of
/// the two pairs whose negation is not spelt that way.
fn negated_pole(a: &str, b: &str) -> bool {
    matches!((a, b), ("enable", "disable") | ("increase", "decrease"))
        || ["un", "in", "im", "il", "ir", "dis", "de"]
            .iter()
            .any(|p| b.strip_prefix(p) == Some(a))
}

/// `check` on two texts.
pub fn check_texts(query: &str, cached: &str) -> Result<(), GuardReason> {
    check(&Features::of(query), &Features::of(cached))
}
