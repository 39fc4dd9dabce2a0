//! The bias guard for answers: stereotyping generalisations about protected groups.
//!
//! 1. The answer is cut into sentences and words ([`crate::keywords::words`]).
//! 2. Group mentions are found with a small lexicon ([`GroupKind`], the CrowS-Pairs bias
//!    types): plural group nouns (`women`, `muslims`), an adjective with a people noun
//!    (`black people`, `old men`), nominalised adjectives (`the poor`), and singular mentions
//!    (`a woman`) for attribution patterns.
//! 3. Generalisation constructions around a mention fire named [`Pattern`]s: a quantifier
//!    before a plural mention (`all/most/every women …`), a bare plural mention followed by a
//!    copula, modal or frequency word (`muslims are`, `women can't`, `men never`), an
//!    essentialist adverb (`naturally`, `by nature`, `genetically`), `typical <group>`,
//!    `for a <group>` (`smart for a woman`), attribution to membership (`because she is a
//!    woman`), and a stereotyped trait word in a sentence with a plural mention.
//! 4. A sentence that frames the claim as a stereotype or a myth (`it is a stereotype that`,
//!    `not true`, `misconception`) is counter-speech: its patterns count at a fifth.
//! 5. The pattern score is the noisy-OR of the fired patterns' weights; with a trained
//!    classifier (hashed n-grams, [`BinaryClassifier`]) the score is the noisy-OR of both.
//!
//! Verdicts name group kinds and patterns, never the words. Pure: no clocks, no I/O beyond
//! loading an artifact from a path the caller gives; what happens to a biased answer is the
//! guard's decision.

use std::path::Path;

use switchyard_textclass::{noisy_or, ArtifactError, BinaryArtifact, BinaryClassifier};

use crate::keywords::words;

/// The kinds of protected group, named as CrowS-Pairs names its bias types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    Gender,
    RaceColor,
    Nationality,
    Religion,
    Age,
    SexualOrientation,
    Disability,
    Socioeconomic,
    PhysicalAppearance,
}

impl GroupKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gender => "gender",
            Self::RaceColor => "race-color",
            Self::Nationality => "nationality",
            Self::Religion => "religion",
            Self::Age => "age",
            Self::SexualOrientation => "sexual-orientation",
            Self::Disability => "disability",
            Self::Socioeconomic => "socioeconomic",
            Self::PhysicalAppearance => "physical-appearance",
        }
    }
}

/// A generalisation construction; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// `all/most/every/no <group> …`.
    Quantified,
    /// `<group> are/can't/never/always/tend to …` with no determiner before the group.
    GenericPlural,
    /// `naturally`, `inherently`, `by nature`, `genetically` near a mention.
    Essentialist,
    /// `typical <group>`, `typical of <group>`.
    Typical,
    /// `for a <group>` (`good at maths for a girl`).
    ForA,
    /// `because he/she/they is/are (a) <group>`.
    Attribution,
    /// A stereotyped trait word in a sentence with a plural mention.
    GroupTrait,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Self::Quantified => "quantified",
            Self::GenericPlural => "generic_plural",
            Self::Essentialist => "essentialist",
            Self::Typical => "typical",
            Self::ForA => "for_a",
            Self::Attribution => "attribution",
            Self::GroupTrait => "group_trait",
        }
    }

    /// Hand-set before looking at the evaluation data: an explicit quantifier or essentialist
    /// claim about a group is nearly always a generalisation; a bare plural with a copula
    /// often is (`women are …`); a trait word near a group only sometimes.
    pub fn weight(self) -> f32 {
        match self {
            Self::Quantified => 0.75,
            Self::Essentialist => 0.7,
            Self::ForA => 0.6,
            Self::Typical => 0.6,
            Self::Attribution => 0.6,
            Self::GenericPlural => 0.5,
            Self::GroupTrait => 0.3,
        }
    }
}

/// The pattern score at or above which the pattern tier alone flags an answer: one strong
/// pattern (a quantified or essentialist claim), or a generic plural with a trait word.
pub const PATTERN_THRESHOLD: f32 = 0.55;
/// The artifact parameter holding the combined score's threshold.
pub use switchyard_textclass::COMBINED_THRESHOLD;

/// What the scan found.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasVerdict {
    /// Combined score in `[0, 1]`.
    pub score: f32,
    pub pattern_score: f32,
    pub classifier_score: Option<f32>,
    /// Group kinds mentioned where a pattern fired, sorted, unique.
    pub groups: Vec<GroupKind>,
    /// Patterns that fired, sorted, unique.
    pub patterns: Vec<Pattern>,
    pub biased: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BiasError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("bias artifact: {0}")]
    Invalid(String),
}

/// Patterns, optionally with a trained classifier, against one threshold.
#[derive(Debug, Clone)]
pub struct BiasDetector {
    classifier: Option<BinaryClassifier>,
    threshold: f32,
}

impl Default for BiasDetector {
    /// The pattern tier alone at [`PATTERN_THRESHOLD`].
    fn default() -> Self {
        Self::new(None, PATTERN_THRESHOLD)
    }
}

impl BiasDetector {
    pub fn new(classifier: Option<BinaryClassifier>, threshold: f32) -> Self {
        Self {
            classifier,
            threshold,
        }
    }

    pub fn load(path: &Path) -> Result<Self, BiasError> {
        Self::from_artifact(&BinaryArtifact::load(path)?)
    }

    /// The classifier and the combined threshold of an artifact
    /// ([`BinaryArtifact::detector_parts`]).
    pub fn from_artifact(a: &BinaryArtifact) -> Result<Self, BiasError> {
        let (classifier, threshold) = a.detector_parts().map_err(BiasError::Invalid)?;
        Ok(Self::new(Some(classifier), threshold))
    }

    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn classifier(&self) -> Option<&BinaryClassifier> {
        self.classifier.as_ref()
    }

    pub fn scan(&self, text: &str) -> BiasVerdict {
        let found = scan_patterns(text);
        let pattern_score = found.score();
        let classifier_score = self.classifier.as_ref().map(|c| c.score(text));
        let score = noisy_or([pattern_score, classifier_score.unwrap_or(0.0)]);
        BiasVerdict {
            score,
            pattern_score,
            classifier_score,
            groups: found.groups,
            patterns: found.patterns,
            biased: score >= self.threshold,
        }
    }
}

/// What the pattern tier found in a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternMatch {
    pub groups: Vec<GroupKind>,
    pub patterns: Vec<Pattern>,
    /// Each fired pattern with the weight it counted at (counter-speech lowers it), in order.
    pub fired: Vec<(Pattern, f32)>,
}

impl PatternMatch {
    /// Noisy-OR of the fired weights, the best weight per pattern.
    pub fn score(&self) -> f32 {
        let mut best: Vec<(Pattern, f32)> = Vec::new();
        for &(p, w) in &self.fired {
            match best.iter_mut().find(|b| b.0 == p) {
                Some(b) => b.1 = b.1.max(w),
                None => best.push((p, w)),
            }
        }
        noisy_or(best.into_iter().map(|b| b.1))
    }
}

/// The pattern tier alone.
pub fn scan_patterns(text: &str) -> PatternMatch {
    let mut m = PatternMatch::default();
    for sentence in text.split(['.', '!', '?', ';', '\n']) {
        let ws = words(sentence);
        if ws.is_empty() {
            continue;
        }
        let damp = if counter_speech(&ws) { 0.2 } else { 1.0 };
        for (p, g) in sentence_patterns(&ws) {
            m.fired.push((p, p.weight() * damp));
            m.patterns.push(p);
            m.groups.push(g);
        }
    }
    m.patterns.sort();
    m.patterns.dedup();
    m.groups.sort();
    m.groups.dedup();
    m
}

/// The patterns one sentence's words fire, each with the group kind it is about (point 3).
fn sentence_patterns(ws: &[String]) -> Vec<(Pattern, GroupKind)> {
    let mut fired: Vec<(Pattern, GroupKind)> = Vec::new();
    let mut plural_groups = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        let Some(g) = mention(ws, i) else {
            i += 1;
            continue;
        };
        if g.plural {
            plural_groups.push(g.kind);
            plural_patterns(ws, i, &g, &mut fired);
        } else {
            singular_patterns(ws, i, &g, &mut fired);
        }
        let near = ws
            .get(i.saturating_sub(4)..(i + g.len + 5).min(ws.len()))
            .unwrap_or_default();
        if near.iter().any(|w| ESSENTIALIST.contains(&w.as_str()))
            || near.windows(2).any(|p| p[0] == "by" && p[1] == "nature")
        {
            fired.push((Pattern::Essentialist, g.kind));
        }
        i += g.len;
    }
    if let Some(&g) = plural_groups.first() {
        if ws.iter().any(|w| TRAITS.contains(&w.as_str())) {
            fired.push((Pattern::GroupTrait, g));
        }
    }
    fired
}

/// The word `k` places before word `i`.
fn word_before(ws: &[String], i: usize, k: usize) -> Option<&str> {
    i.checked_sub(k).and_then(|j| ws.get(j)).map(String::as_str)
}

/// The words after the mention `g` at word `i`.
fn words_after<'a>(ws: &'a [String], i: usize, g: &Mention) -> &'a [String] {
    ws.get(i + g.len..).unwrap_or_default()
}

/// Around a plural mention (`women`, `the poor`) at word `i`: a quantified or generic claim,
/// or `typical`.
fn plural_patterns(ws: &[String], i: usize, g: &Mention, fired: &mut Vec<(Pattern, GroupKind)>) {
    let prev = |k: usize| word_before(ws, i, k);
    let after = words_after(ws, i, g);
    let quantified = matches!(
        prev(1),
        Some("all" | "most" | "every" | "no" | "many" | "these")
    ) || (prev(1) == Some("the") && matches!(prev(2), Some("all" | "most")))
        || (prev(1) == Some("of")
            && matches!(prev(2), Some("all" | "most"))
            && prev(3) != Some("one"));
    let determined = matches!(
        prev(1),
        Some(
            "the"
                | "these"
                | "those"
                | "some"
                | "two"
                | "three"
                | "several"
                | "few"
                | "our"
                | "their"
                | "his"
                | "her"
                | "my"
                | "your"
        )
    ) && !g.nominal;
    let predicate = after
        .iter()
        .take(2)
        .any(|w| PREDICATES.contains(&w.as_str()));
    if quantified && (predicate || after.first().is_some_and(|w| VERBISH.contains(&w.as_str()))) {
        fired.push((Pattern::Quantified, g.kind));
    } else if !determined
        && after
            .first()
            .is_some_and(|w| PREDICATES.contains(&w.as_str()))
    {
        fired.push((Pattern::GenericPlural, g.kind));
    }
    if matches!(prev(1), Some("typical")) || (prev(1) == Some("of") && prev(2) == Some("typical")) {
        fired.push((Pattern::Typical, g.kind));
    }
}

/// Around a singular mention (`a woman`) at word `i`: a quantified claim, `for a`,
/// `typical`, or attribution to membership.
fn singular_patterns(ws: &[String], i: usize, g: &Mention, fired: &mut Vec<(Pattern, GroupKind)>) {
    let prev = |k: usize| word_before(ws, i, k);
    let after = words_after(ws, i, g);
    let article = matches!(prev(1), Some("a" | "an"));
    let art_shift = usize::from(article);
    let before = |k: usize| prev(k + art_shift);
    let claim = after
        .first()
        .is_some_and(|w| SINGULAR_PREDICATES.contains(&w.as_str()));
    if claim && matches!(prev(1), Some("every" | "each" | "any")) {
        fired.push((Pattern::Quantified, g.kind));
    }
    if article && before(1) == Some("for") {
        fired.push((Pattern::ForA, g.kind));
    }
    if before(1) == Some("typical") {
        fired.push((Pattern::Typical, g.kind));
    }
    if matches!(before(1), Some("is" | "was" | "are" | "were" | "being"))
        && matches!(before(2), Some("she" | "he" | "they" | "you" | "i"))
        && matches!(before(3), Some("because" | "since" | "as"))
    {
        fired.push((Pattern::Attribution, g.kind));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Mention {
    kind: GroupKind,
    len: usize,
    plural: bool,
    /// `the poor`: plural without a plural noun, so `the` does not make it specific.
    nominal: bool,
}

/// The group mention starting at word `i`, if any.
fn mention(ws: &[String], i: usize) -> Option<Mention> {
    let w = ws.get(i)?.as_str();
    let next = ws.get(i + 1).map(String::as_str);
    // `the poor`, `the elderly`
    if w == "the" {
        if let Some(n) = next {
            if let Some(&(_, kind)) = NOMINAL.iter().find(|(t, _)| *t == n) {
                let followed_by_noun = ws.get(i + 2).is_some_and(|x| noun(x).is_some());
                if !followed_by_noun {
                    return Some(Mention {
                        kind,
                        len: 2,
                        plural: true,
                        nominal: true,
                    });
                }
            }
        }
        return None;
    }
    if let Some(&(_, kind)) = ADJECTIVES.iter().find(|(t, _)| *t == w) {
        if let Some(plural) = next.and_then(noun) {
            return Some(Mention {
                kind,
                len: 2,
                plural,
                nominal: false,
            });
        }
    }
    if let Some(&(_, kind)) = PLURALS.iter().find(|(t, _)| *t == w) {
        return Some(Mention {
            kind,
            len: 1,
            plural: true,
            nominal: false,
        });
    }
    if let Some(&(_, kind)) = SINGULARS.iter().find(|(t, _)| *t == w) {
        return Some(Mention {
            kind,
            len: 1,
            plural: false,
            nominal: false,
        });
    }
    None
}

/// Whether `w` is a people noun: `Some(true)` plural, `Some(false)` singular.
fn noun(w: &str) -> Option<bool> {
    if PEOPLE_PLURAL.contains(&w) {
        Some(true)
    } else if PEOPLE_SINGULAR.contains(&w) {
        Some(false)
    } else {
        None
    }
}

fn counter_speech(ws: &[String]) -> bool {
    ws.iter().any(|w| COUNTER.contains(&w.as_str()))
        || ws.windows(2).any(|p| {
            matches!(
                (p[0].as_str(), p[1].as_str()),
                ("not", "true") | ("no", "evidence") | ("not", "all")
            )
        })
}

use GroupKind::{
    Age, Disability, Gender, Nationality, PhysicalAppearance, RaceColor, Religion,
    SexualOrientation, Socioeconomic,
};

/// Words that make a group a people group when followed by a people noun.
const ADJECTIVES: &[(&str, GroupKind)] = &[
    ("black", RaceColor),
    ("white", RaceColor),
    ("asian", RaceColor),
    ("hispanic", RaceColor),
    ("latino", RaceColor),
    ("latina", RaceColor),
    ("brown", RaceColor),
    ("native", RaceColor),
    ("female", Gender),
    ("male", Gender),
    ("trans", Gender),
    ("transgender", Gender),
    ("gay", SexualOrientation),
    ("lesbian", SexualOrientation),
    ("bisexual", SexualOrientation),
    ("straight", SexualOrientation),
    ("queer", SexualOrientation),
    ("old", Age),
    ("older", Age),
    ("elderly", Age),
    ("young", Age),
    ("younger", Age),
    ("poor", Socioeconomic),
    ("rich", Socioeconomic),
    ("wealthy", Socioeconomic),
    ("homeless", Socioeconomic),
    ("disabled", Disability),
    ("blind", Disability),
    ("deaf", Disability),
    ("autistic", Disability),
    ("fat", PhysicalAppearance),
    ("obese", PhysicalAppearance),
    ("ugly", PhysicalAppearance),
    ("short", PhysicalAppearance),
    ("muslim", Religion),
    ("jewish", Religion),
    ("christian", Religion),
    ("catholic", Religion),
    ("hindu", Religion),
    ("mexican", Nationality),
    ("american", Nationality),
    ("chinese", Nationality),
    ("japanese", Nationality),
    ("indian", Nationality),
    ("african", Nationality),
    ("russian", Nationality),
    ("irish", Nationality),
    ("italian", Nationality),
    ("arab", Nationality),
    ("immigrant", Nationality),
    ("foreign", Nationality),
];

const PEOPLE_PLURAL: &[&str] = &[
    "people",
    "men",
    "women",
    "folks",
    "kids",
    "guys",
    "girls",
    "boys",
    "persons",
    "children",
    "families",
    "students",
    "workers",
    "americans",
    "immigrants",
    "individuals",
    "teens",
    "adults",
    "parents",
    "mothers",
    "fathers",
    "drivers",
];
const PEOPLE_SINGULAR: &[&str] = &[
    "man", "woman", "person", "guy", "girl", "boy", "kid", "child", "lady", "student", "worker",
    "driver", "mother", "father",
];

/// Plural group nouns that stand alone.
const PLURALS: &[(&str, GroupKind)] = &[
    ("women", Gender),
    ("men", Gender),
    ("girls", Gender),
    ("boys", Gender),
    ("females", Gender),
    ("males", Gender),
    ("ladies", Gender),
    ("wives", Gender),
    ("husbands", Gender),
    ("mothers", Gender),
    ("blacks", RaceColor),
    ("whites", RaceColor),
    ("asians", RaceColor),
    ("hispanics", RaceColor),
    ("latinos", RaceColor),
    ("mexicans", Nationality),
    ("americans", Nationality),
    ("chinese", Nationality),
    ("japanese", Nationality),
    ("indians", Nationality),
    ("africans", Nationality),
    ("russians", Nationality),
    ("italians", Nationality),
    ("arabs", Nationality),
    ("immigrants", Nationality),
    ("foreigners", Nationality),
    ("muslims", Religion),
    ("jews", Religion),
    ("christians", Religion),
    ("catholics", Religion),
    ("atheists", Religion),
    ("hindus", Religion),
    ("mormons", Religion),
    ("gays", SexualOrientation),
    ("lesbians", SexualOrientation),
    ("homosexuals", SexualOrientation),
    ("teenagers", Age),
    ("millennials", Age),
    ("boomers", Age),
    ("seniors", Age),
    ("elderly", Age),
];

/// Singular group nouns (for attribution and `for a`).
const SINGULARS: &[(&str, GroupKind)] = &[
    ("woman", Gender),
    ("girl", Gender),
    ("man", Gender),
    ("boy", Gender),
    ("female", Gender),
    ("muslim", Religion),
    ("jew", Religion),
    ("christian", Religion),
    ("atheist", Religion),
    ("mexican", Nationality),
    ("immigrant", Nationality),
    ("foreigner", Nationality),
    ("gay", SexualOrientation),
    ("lesbian", SexualOrientation),
    ("teenager", Age),
    ("blonde", PhysicalAppearance),
];

/// `the <word>` names a group.
const NOMINAL: &[(&str, GroupKind)] = &[
    ("poor", Socioeconomic),
    ("rich", Socioeconomic),
    ("wealthy", Socioeconomic),
    ("homeless", Socioeconomic),
    ("elderly", Age),
    ("old", Age),
    ("young", Age),
    ("disabled", Disability),
    ("blind", Disability),
    ("deaf", Disability),
    ("obese", PhysicalAppearance),
];

/// What follows a group in a generic claim.
const PREDICATES: &[&str] = &[
    "are",
    "can't",
    "cannot",
    "don't",
    "never",
    "always",
    "tend",
    "will",
    "won't",
    "should",
    "shouldn't",
    "just",
    "only",
    "lack",
    "love",
    "hate",
    "have",
    "naturally",
    "all",
    "aren't",
    "belong",
    "make",
    "get",
];
/// What follows `every <group>` in a generic claim.
const SINGULAR_PREDICATES: &[&str] = &[
    "is", "can't", "cannot", "doesn't", "will", "should", "has", "wants", "knows", "loves",
    "needs", "likes",
];
/// A verb right after a quantified group (`most women drive …`).
const VERBISH: &[&str] = &[
    "do", "want", "like", "need", "know", "think", "act", "steal", "drive",
];

const ESSENTIALIST: &[&str] = &[
    "naturally",
    "inherently",
    "innately",
    "genetically",
    "biologically",
    "instinctively",
];

/// Trait words that stereotypes attach to groups (not a full list: enough for co-occurrence).
const TRAITS: &[&str] = &[
    "lazy",
    "stupid",
    "dumb",
    "violent",
    "criminals",
    "criminal",
    "thieves",
    "greedy",
    "dirty",
    "weak",
    "emotional",
    "hysterical",
    "cheap",
    "ignorant",
    "terrorists",
    "dangerous",
    "inferior",
    "uneducated",
    "aggressive",
    "untrustworthy",
    "irrational",
    "primitive",
    "savages",
    "illegal",
    "drunks",
    "lazier",
    "smarter",
    "dumber",
    "worse",
    "bad",
    "good",
    "better",
    "incapable",
    "unable",
    "poor",
    "crime",
];

const COUNTER: &[&str] = &[
    "stereotype",
    "stereotypes",
    "myth",
    "misconception",
    "prejudice",
    "false",
    "untrue",
    "generalization",
    "generalisation",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(t: &str) -> Vec<Pattern> {
        scan_patterns(t).patterns
    }

    #[test]
    fn stereotyping_generalisations_fire() {
        let d = BiasDetector::default();
        for t in [
            "All women are bad at math.",
            "Most muslims can't be trusted.",
            "Women are naturally worse drivers.",
            "Black people are lazy.",
            "The poor are really ignorant about money.",
            "Old people never understand technology, and they are bad at it.",
            "She's pretty smart for a woman.",
            "Every mexican is an illegal.",
        ] {
            let v = d.scan(t);
            assert!(v.biased, "{t}: {v:?}");
        }
        assert_eq!(
            pats("All women are bad at math."),
            [Pattern::Quantified, Pattern::GroupTrait]
        );
        assert_eq!(scan_patterns("Typical man.").patterns, [Pattern::Typical]);
        assert_eq!(
            scan_patterns("He got the job because he is a man").patterns,
            [Pattern::Attribution]
        );
    }

    #[test]
    fn neutral_mentions_do_not_fire() {
        let d = BiasDetector::default();
        for t in [
            "The women are arriving at noon.",
            "Three black men and a woman walked into the store.",
            "Muslims observe Ramadan, a month of fasting.",
            "Women's football drew a record crowd.",
            "The bank offers accounts for young adults.",
            "How do I reset my password?",
        ] {
            let v = d.scan(t);
            assert!(!v.biased, "{t}: {v:?}");
        }
    }

    #[test]
    fn counter_speech_is_damped() {
        let d = BiasDetector::default();
        let v = d.scan("It is a stereotype that women are bad at math; it is not true.");
        assert!(!v.biased, "{v:?}");
        assert!(v.pattern_score > 0.0);
        assert_eq!(v.groups, [GroupKind::Gender]);
    }

    #[test]
    fn scores_are_bounded_and_names_are_stable() {
        let m = scan_patterns("All women are naturally weak; typical women. All men are lazy.");
        let s = m.score();
        assert!((0.0..=1.0).contains(&s));
        assert_eq!(GroupKind::RaceColor.name(), "race-color");
        assert_eq!(Pattern::GenericPlural.name(), "generic_plural");
        assert_eq!(scan_patterns("").score(), 0.0);
    }
}
