//! The toxicity detector: a small lexicon tier and a trained classifier, combined.
//!
//! 1. Words are normalised for the lexicon: lower-cased, URLs and @mentions dropped, common
//!    letter substitutions inside words undone (`sh!t`, `a$$`, `b1tch`), and each word is
//!    tried with runs of three or more equal letters cut to two (`asssss` → `ass`) and, if
//!    it had such a run, with every run cut to one (`fuuuck` → `fuck`).
//! 2. The lexicon tier looks each word up in a short list of slurs, strong profanity,
//!    insults and threats, each entry matching the whole word, a prefix (`fucktard`) or
//!    anywhere inside it (`motherfucker`), plus a few multi-word threat phrases. Each
//!    category has a weight; the tier's score is the noisy-OR of the categories that fired.
//! 3. The classifier is logistic regression over hashed word and character n-grams
//!    ([`BinaryClassifier`]), which also catches toxicity without listed words.
//! 4. The combined score is the noisy-OR of both, against a threshold from the artifact.
//!
//! Verdicts name categories, never the matched words, so they can go into logs and headers.
//! Pure: no clocks, no I/O beyond loading the artifact from a path the caller gives. It must
//! not decide what happens to a toxic answer (retry, replace, flag): that is the guard's job.

use std::path::Path;

use crate::artifact::{ArtifactError, BinaryArtifact};
use crate::binary::{noisy_or, BinaryClassifier, DenseFeatures};

/// A lexicon category and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Slurs against protected groups.
    Slur,
    /// Strong profanity.
    Profanity,
    /// Insults aimed at a person.
    Insult,
    /// Threats and wishes of harm.
    Threat,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Self::Slur => "slur",
            Self::Profanity => "profanity",
            Self::Insult => "insult",
            Self::Threat => "threat",
        }
    }

    /// Hand-set: a slur or a threat is nearly always toxic in these data sets' sense; strong
    /// profanity often is; an insult word alone less so ("idiot" in banter).
    pub fn weight(self) -> f32 {
        match self {
            Self::Slur => 0.85,
            Self::Threat => 0.8,
            Self::Profanity => 0.6,
            Self::Insult => 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The whole word, or the word plus a common suffix (s, es, ed, er, ers, ing, y).
    Word,
    /// The word starts with the entry.
    Prefix,
    /// The entry appears anywhere in the word (only for stems with no innocent host words).
    Inside,
}

use Category::{Insult, Profanity, Slur, Threat};
use Match::{Inside, Prefix, Word};

/// The lexicon. Deliberately short: entries that are mostly innocent in some sense
/// ("bloody", "hell", "damn", "crap") are left to the classifier, which sees context.
const LEXICON: &[(&str, Category, Match)] = &[
    // Slurs (English, the data's language).
    ("nigger", Slur, Prefix),
    ("nigga", Slur, Prefix),
    ("niggah", Slur, Word),
    ("nigguh", Slur, Word),
    ("faggot", Slur, Prefix),
    ("fag", Slur, Word),
    ("fags", Slur, Word),
    ("dyke", Slur, Word),
    ("tranny", Slur, Word),
    ("retard", Slur, Prefix),
    ("retarded", Slur, Word),
    ("spic", Slur, Word),
    ("wetback", Slur, Prefix),
    ("chink", Slur, Word),
    ("gook", Slur, Word),
    ("kike", Slur, Word),
    ("raghead", Slur, Prefix),
    ("towelhead", Slur, Prefix),
    ("beaner", Slur, Word),
    ("coon", Slur, Word),
    ("jigaboo", Slur, Word),
    ("porchmonkey", Slur, Word),
    ("sandnigger", Slur, Word),
    ("queers", Slur, Word),
    ("homo", Slur, Word),
    ("wigger", Slur, Word),
    ("whitey", Slur, Word),
    ("cracker", Slur, Word),
    ("redskin", Slur, Word),
    ("hoe", Slur, Word),
    ("hoes", Slur, Word),
    ("thot", Slur, Word),
    // Strong profanity.
    ("fuck", Profanity, Inside),
    ("fuk", Profanity, Prefix),
    ("fck", Profanity, Prefix),
    ("shit", Profanity, Prefix),
    ("bullshit", Profanity, Word),
    ("cunt", Profanity, Prefix),
    ("bitch", Profanity, Prefix),
    ("biatch", Profanity, Word),
    ("pussy", Profanity, Prefix),
    ("pussies", Profanity, Word),
    ("dick", Profanity, Word),
    ("dickhead", Profanity, Word),
    ("cock", Profanity, Word),
    ("cocksucker", Profanity, Prefix),
    ("motherfucker", Profanity, Prefix),
    ("asshole", Profanity, Prefix),
    ("ass", Profanity, Word),
    ("twat", Profanity, Word),
    ("wanker", Profanity, Word),
    ("slut", Profanity, Prefix),
    ("whore", Profanity, Prefix),
    ("bastard", Profanity, Word),
    ("skank", Profanity, Prefix),
    // Insults aimed at a person.
    ("idiot", Insult, Prefix),
    ("moron", Insult, Prefix),
    ("imbecile", Insult, Word),
    ("stupid", Insult, Word),
    ("dumbass", Insult, Word),
    ("dumb", Insult, Word),
    ("loser", Insult, Word),
    ("scum", Insult, Prefix),
    ("scumbag", Insult, Word),
    ("trash", Insult, Word),
    ("pathetic", Insult, Word),
    ("worthless", Insult, Word),
    ("ugly", Insult, Word),
    ("pig", Insult, Word),
    ("pigs", Insult, Word),
    ("traitor", Insult, Word),
    ("pedophile", Insult, Word),
    ("pedo", Insult, Word),
    ("clown", Insult, Word),
    ("libtard", Insult, Prefix),
    ("demonrat", Insult, Prefix),
    ("democrap", Insult, Prefix),
    ("repuke", Insult, Prefix),
    ("trumptard", Insult, Prefix),
    ("filth", Insult, Prefix),
    ("vermin", Insult, Word),
    ("degenerate", Insult, Word),
];

/// Multi-word threats, matched on the normalised words joined by single spaces.
const THREAT_PHRASES: &[&str] = &[
    "kill yourself",
    "kill urself",
    "kys",
    "hope you die",
    "hope u die",
    "you should die",
    "should be shot",
    "should be hanged",
    "should be killed",
    "deserve to die",
    "i will kill you",
    "gonna kill you",
    "going to kill you",
    "exterminate all",
    "take you out",
    "put a bullet",
];

/// What the lexicon tier found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LexiconMatch {
    pub score: f32,
    /// Categories that fired, in category order.
    pub categories: Vec<Category>,
}

/// The lexicon tier, with its lookup tables built once.
#[derive(Debug, Clone)]
pub struct Lexicon {
    /// Whole-word and prefix entries by their first byte (all entries are ASCII): a word is
    /// compared with the handful of entries sharing its first letter, once each. Measured:
    /// a map lookup per suffix-stripped stem spent most of a 4 KB scan in `memcmp`.
    by_first: Vec<Vec<(&'static str, Category, Match)>>,
    /// Entries matched anywhere inside a word.
    inside: Vec<(&'static str, Category)>,
    /// Threat phrases padded with spaces, built once rather than per scan.
    threats: Vec<String>,
}

impl Default for Lexicon {
    fn default() -> Self {
        Self::new()
    }
}

/// Endings a whole-word entry may carry (`idiots`, `bitching`).
const SUFFIXES: [&str; 8] = ["", "s", "es", "ed", "er", "ers", "ing", "y"];

impl Lexicon {
    pub fn new() -> Self {
        let mut by_first = vec![Vec::new(); 256];
        let mut inside = Vec::new();
        for &(term, cat, how) in LEXICON {
            match (how, term.bytes().next()) {
                (Inside, _) => inside.push((term, cat)),
                (_, Some(b)) => by_first[usize::from(b)].push((term, cat, how)),
                (_, None) => {}
            }
        }
        Self {
            by_first,
            inside,
            threats: THREAT_PHRASES.iter().map(|p| format!(" {p} ")).collect(),
        }
    }

    fn word_category(&self, w: &str) -> Option<Category> {
        let first = usize::from(*w.as_bytes().first()?);
        let hit = self.by_first[first].iter().find(|(term, _, how)| {
            w.strip_prefix(term).is_some_and(|rest| match how {
                Word => SUFFIXES.contains(&rest),
                Prefix | Inside => true,
            })
        });
        if let Some(&(_, c, _)) = hit {
            return Some(c);
        }
        self.inside
            .iter()
            .find(|(p, _)| w.contains(p))
            .map(|&(_, c)| c)
    }

    pub fn scan(&self, text: &str) -> LexiconMatch {
        let words = normalised_words(text);
        let mut hit = [false; 4];
        for w in &words {
            if !has_run(w, 3) {
                // The common case: nothing stretched, look the word up as it is.
                if let Some(c) = self.word_category(w) {
                    hit[c as usize] = true;
                }
                continue;
            }
            let two = squeeze_runs(w, 2);
            // Runs cut to one letter only for words someone stretched (a run of three or
            // more): otherwise "shiitake" would read as a swear word.
            let found = self
                .word_category(&two)
                .or_else(|| self.word_category(&squeeze_runs(w, 1)));
            if let Some(c) = found {
                hit[c as usize] = true;
            }
        }
        if !hit[Threat as usize] {
            let joined = format!(" {} ", words.join(" "));
            if self.threats.iter().any(|p| joined.contains(p.as_str())) {
                hit[Threat as usize] = true;
            }
        }
        let categories: Vec<Category> = [Slur, Profanity, Insult, Threat]
            .into_iter()
            .filter(|c| hit[*c as usize])
            .collect();
        LexiconMatch {
            score: noisy_or(categories.iter().map(|c| c.weight())),
            categories,
        }
    }
}

/// Lower-cased words with URLs and @mentions dropped and in-word substitutions undone.
fn normalised_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if token.starts_with('@') || token.starts_with("http") || token.starts_with("www.") {
            continue;
        }
        let chars: Vec<char> = token.chars().flat_map(char::to_lowercase).collect();
        let mut word = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphabetic() {
                word.push(c);
                i += 1;
                continue;
            }
            // A run of substitutable symbols: undo it only where it stands for letters.
            let end = (i..chars.len())
                .find(|&k| substitute(chars[k]).is_none())
                .unwrap_or(chars.len());
            if end == i {
                // Neither a letter nor a substitute: a word boundary.
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                i += 1;
                continue;
            }
            let run = &chars[i..end];
            let left = i > 0 && chars[i - 1].is_alphabetic();
            let right = chars.get(end).is_some_and(|n| n.is_alphabetic());
            let in_word = if left {
                // Between letters (`sh!t`), or trailing dollars (`a$$`); a trailing `!`
                // ends a sentence.
                right || run.iter().all(|&c| c == '$')
            } else {
                // `$hit`, `@ss`: leading symbols before a letter, but not a number (`4real`).
                right && run.iter().any(|c| !c.is_ascii_digit())
            };
            if in_word {
                word.extend(run.iter().filter_map(|&c| substitute(c)));
            } else if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            i = end;
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// The letter a symbol or digit commonly stands for inside a word.
fn substitute(c: char) -> Option<char> {
    match c {
        '0' => Some('o'),
        '1' | '!' => Some('i'),
        '3' => Some('e'),
        '4' | '@' => Some('a'),
        '5' | '$' => Some('s'),
        '7' => Some('t'),
        '8' => Some('b'),
        _ => None,
    }
}

/// Whether `w` has a run of at least `n` equal characters.
fn has_run(w: &str, n: usize) -> bool {
    let mut prev = None;
    let mut run = 0;
    for c in w.chars() {
        run = if Some(c) == prev { run + 1 } else { 1 };
        prev = Some(c);
        if run >= n {
            return true;
        }
    }
    false
}

/// Cut every run of equal characters longer than `max` to `max`.
fn squeeze_runs(w: &str, max: usize) -> String {
    let mut out = String::with_capacity(w.len());
    let mut prev = None;
    let mut run = 0;
    for c in w.chars() {
        if Some(c) == prev {
            run += 1;
        } else {
            prev = Some(c);
            run = 1;
        }
        if run <= max {
            out.push(c);
        }
    }
    out
}

/// `text` with every masking placeholder of the PII guard replaced by one space: `<KIND_N>`
/// (pseudonyms), `[KIND]` (redactions) and `<KIND:hex>` (hashes), where KIND is upper-case
/// ASCII letters and underscores. Anything else in angle or square brackets is left alone.
/// Borrows when there is nothing to take out (the common case).
pub fn strip_placeholders(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let close = match bytes[i] {
            b'<' => b'>',
            b'[' => b']',
            _ => {
                i += 1;
                continue;
            }
        };
        match placeholder_len(&bytes[i..], close) {
            Some(len) => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                // `i` and `i + len` sit on ASCII bytes, so both are char boundaries.
                o.push_str(&text[copied..i]);
                o.push(' ');
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[copied..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// The byte length of a placeholder at the start of `b` (which opens with `<` or `[`), if
/// there is one: the kind, then for `<`: `_` digits or `:` hex digits; then `close`.
fn placeholder_len(b: &[u8], close: u8) -> Option<usize> {
    // The longest kind label is 14 bytes (`STREET_ADDRESS`); 24 leaves room for new kinds.
    let kind = b[1..]
        .iter()
        .take(25)
        .take_while(|c| c.is_ascii_uppercase() || **c == b'_')
        .count();
    // At least two letters before a pseudonym's trailing `_` (`<A_1>` is not a label).
    let letters = kind - usize::from(kind > 0 && b[kind] == b'_');
    if letters < 2 || kind > 24 || !b[1].is_ascii_uppercase() {
        return None;
    }
    let mut at = 1 + kind;
    if close == b'>' {
        // A pseudonym's `_N` is taken by the kind's `_` run: the label ends in `_`, digits follow.
        let suffix = match (b[at - 1], b.get(at)) {
            (b'_', Some(c)) if c.is_ascii_digit() => {
                b[at..].iter().take_while(|c| c.is_ascii_digit()).count()
            }
            (_, Some(b':')) => {
                at += 1;
                b[at..].iter().take_while(|c| c.is_ascii_hexdigit()).count()
            }
            _ => 0,
        };
        if suffix == 0 || suffix > 16 {
            return None;
        }
        at += suffix;
    }
    (b.get(at) == Some(&close)).then_some(at + 1)
}

/// The detector's answer for one text.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicityVerdict {
    pub score: f32,
    pub toxic: bool,
    pub threshold: f32,
    pub lexicon_score: f32,
    pub classifier_score: Option<f32>,
    pub categories: Vec<Category>,
}

/// Names of the tuning values kept in the artifact's `params`.
pub use crate::artifact::COMBINED_THRESHOLD;
pub const LEXICON_THRESHOLD: &str = "lexicon_threshold";

#[derive(Debug, thiserror::Error)]
pub enum ToxicityError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("toxicity artifact: {0}")]
    Invalid(String),
}

/// The layered toxicity detector.
#[derive(Debug, Clone)]
pub struct ToxicityDetector {
    lexicon: Lexicon,
    classifier: Option<BinaryClassifier>,
    threshold: f32,
}

impl ToxicityDetector {
    pub fn new(classifier: Option<BinaryClassifier>, threshold: f32) -> Self {
        Self {
            lexicon: Lexicon::new(),
            classifier,
            threshold,
        }
    }

    /// Load from a binary artifact (`eval/artifacts/toxicity.v1.json`).
    pub fn load(path: &Path) -> Result<Self, ToxicityError> {
        Self::from_artifact(&BinaryArtifact::load(path)?)
    }

    pub fn from_artifact(a: &BinaryArtifact) -> Result<Self, ToxicityError> {
        Self::from_artifact_with(a, None)
    }

    /// [`ToxicityDetector::from_artifact`] with the dense features an artifact with a
    /// `dense` field needs (the static embedding it names); fails without them.
    pub fn from_artifact_with(
        a: &BinaryArtifact,
        dense: Option<DenseFeatures>,
    ) -> Result<Self, ToxicityError> {
        let (classifier, threshold) = a
            .detector_parts_with(dense)
            .map_err(ToxicityError::Invalid)?;
        Ok(Self::new(Some(classifier), threshold))
    }

    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    pub fn classifier(&self) -> Option<&BinaryClassifier> {
        self.classifier.as_ref()
    }

    /// Scan one text. Masking placeholders (`<PERSON_1>`, `[EMAIL]`, `<PHONE:1a2b3c4d>`) are
    /// taken out first ([`strip_placeholders`]): they stand for a value the model never saw,
    /// and their upper-case, bracketed shape is nothing like the training text.
    pub fn scan(&self, text: &str) -> ToxicityVerdict {
        let stripped = strip_placeholders(text);
        let text = stripped.as_ref();
        let lm = self.lexicon.scan(text);
        let cs = self.classifier.as_ref().map(|c| c.score(text));
        let score = noisy_or([lm.score, cs.unwrap_or(0.0)]);
        ToxicityVerdict {
            score,
            toxic: score >= self.threshold,
            threshold: self.threshold,
            lexicon_score: lm.score,
            classifier_score: cs,
            categories: lm.categories,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::NgramConfig;
    use crate::linear::LinearModel;

    fn cats(text: &str) -> Vec<Category> {
        Lexicon::new().scan(text).categories
    }

    #[test]
    fn finds_categories_through_obfuscation() {
        assert_eq!(cats("what the fuuuuck"), [Profanity]);
        assert_eq!(cats("you are such a sh!t"), [Profanity]);
        assert_eq!(cats("a$$"), [Profanity]);
        assert_eq!(cats("motherfuckers everywhere"), [Profanity]);
        assert_eq!(cats("you IDIOTS"), [Insult]);
        assert_eq!(cats("go kill yourself"), [Threat]);
        assert_eq!(cats("@someone that retard"), [Slur]);
    }

    #[test]
    fn quiet_on_innocent_words() {
        for text in [
            "I assess the class assignment as passable",
            "Scunthorpe is a town; shiitake is a mushroom",
            "That is as good as it gets!",
            "My score was 100 and I had 3 cups",
            "Cocktail hour at the cockpit",
            "visit http://fuck.example.com or @shitposter",
        ] {
            let m = Lexicon::new().scan(text);
            assert!(m.categories.is_empty(), "{text:?} → {m:?}");
        }
    }

    #[test]
    fn score_is_noisy_or_of_categories() {
        let m = Lexicon::new().scan("stupid fucking idiot");
        assert_eq!(m.categories, [Profanity, Insult]);
        let expected = 1.0 - (1.0 - Profanity.weight()) * (1.0 - Insult.weight());
        assert!((m.score - expected).abs() < 1e-6);
    }

    #[test]
    fn undoes_substitutions_only_inside_words() {
        assert_eq!(
            normalised_words("sh!t a$$ $hit b1tch"),
            ["shit", "ass", "shit", "bitch"]
        );
        assert_eq!(normalised_words("stupid! 100 4real"), ["stupid", "real"]);
        assert_eq!(normalised_words("@user http://x.y ok"), ["ok"]);
    }

    #[test]
    fn squeezes_runs() {
        assert_eq!(squeeze_runs("asssss", 2), "ass");
        assert_eq!(squeeze_runs("fuuuck", 1), "fuck");
        assert_eq!(squeeze_runs("book", 2), "book");
        assert!(has_run("fuuuck", 3) && !has_run("book", 3));
    }

    #[test]
    fn strips_every_placeholder_shape_and_nothing_else() {
        assert_eq!(
            strip_placeholders("thanks <PERSON_1>, mail [EMAIL] or <PHONE:1a2b3c4d>!"),
            "thanks  , mail   or  !"
        );
        assert_eq!(strip_placeholders("<STREET_ADDRESS_12>"), " ");
        for keep in [
            "a <b> tag",
            "[1] see note",
            "<PERSON>",
            "<PERSON_>",
            "[Email]",
            "x < y and Z_1 > w",
            "<A_1>",
            "<PHONE:xyz>",
            "plain text",
            "[EMAIL",
        ] {
            assert_eq!(strip_placeholders(keep), keep, "{keep:?}");
        }
        assert!(matches!(
            strip_placeholders("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_placeholder_never_counts_toward_toxicity() {
        // A classifier that reads every bucket as toxic evidence: only text in the n-grams
        // can move the score, so a placeholder that reached them would raise it.
        let d = ToxicityDetector::new(Some(toy_classifier(vec![0.5; 256], -1.0)), 0.5);
        for (masked, plain) in [
            ("Sure, <PERSON_1> can join.", "Sure,   can join."),
            ("[EMAIL]", " "),
            ("Call <PHONE_2> at <LOCATION_1>", "Call   at  "),
        ] {
            assert_eq!(d.scan(masked), d.scan(plain), "{masked:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn stripping_is_the_same_as_never_having_the_placeholder(
            before in "[a-z <\\[\\]_:>A-Z0-9]{0,30}",
            after in "[a-z <\\[\\]_:>A-Z0-9]{0,30}",
            kind in "[A-Z][A-Z_]{1,12}[A-Z]",
            n in 1u32..200,
            shape in 0u8..3,
        ) {
            let placeholder = match shape {
                0 => format!("<{kind}_{n}>"),
                1 => format!("[{kind}]"),
                _ => format!("<{kind}:{n:08x}>"),
            };
            // Separated by spaces, as the masker's replacement sits between words.
            let masked = format!("{before} {placeholder} {after}");
            let stripped = strip_placeholders(&masked);
            proptest::prop_assert!(!stripped.contains(&placeholder));
            let again = strip_placeholders(&stripped).into_owned();
            proptest::prop_assert_eq!(again.as_str(), stripped.as_ref(), "idempotent");
            let lexicon_only = ToxicityDetector::new(None, 0.5);
            proptest::prop_assert_eq!(
                lexicon_only.scan(&masked),
                lexicon_only.scan(&format!("{before}   {after}"))
            );
        }
    }

    /// A classifier over 2^8 buckets with the given weights, threshold 0.5.
    fn toy_classifier(weights: Vec<f32>, bias: f32) -> BinaryClassifier {
        let cfg = NgramConfig {
            buckets_log2: 8,
            ..NgramConfig::default()
        };
        BinaryClassifier::new(cfg, LinearModel { weights, bias }, 0.5)
    }

    #[test]
    fn detector_combines_tiers() {
        let d = ToxicityDetector::new(Some(toy_classifier(vec![], -2.0)), 0.5);
        let v = d.scan("you idiot");
        assert!(v.toxic && v.categories == [Insult], "{v:?}");
        let v = d.scan("have a lovely day");
        assert!(!v.toxic && v.categories.is_empty() && v.lexicon_score == 0.0);
    }
}
