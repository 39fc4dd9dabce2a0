//! The topic filter: allowed and denied topics, each declared by a few example phrases, an
//! optional description and optional keywords; a text is embedded once and compared.
//!
//! 1. At build time every example phrase and the description of a topic are embedded once
//!    (the caller's [`Embedder`]) and normalised; the topic also keeps the centroid of those
//!    vectors. A topic's similarity to a text is the larger of the best single example's
//!    cosine and the centroid's cosine ([`Scoring::MaxOrCentroid`], the default), or one of
//!    the two alone.
//! 2. Keywords are matched as whole words or phrases on the lower-cased alphanumeric words of
//!    the text ([`Keywords`]), so `loan` does not match `sloane`.
//! 3. A denied topic refuses when its keyword matches or its similarity reaches
//!    `thresholds.deny`; refusals win over acceptance.
//! 4. When allowed topics are declared, a text passes only if an allowed topic's keyword
//!    matches or its similarity reaches `thresholds.allow`; otherwise it is off topic. With
//!    no allowed topics everything not denied passes.
//! 5. An empty text (nothing but whitespace) passes with [`Reason::Empty`]: there is nothing
//!    to judge, and the gateway decides which text it hands over.
//!
//! Pure: no clocks, no I/O, no model. The verdict names the topic, never the text.

use crate::keywords::Keywords;

/// Turns text into a vector. Any `Fn(&str) -> Vec<f32>` is one, so the gateway can pass a
/// closure over its static embedder and tests a toy one.
pub trait Embedder: Send + Sync {
    fn embed(&self, text: &str) -> Vec<f32>;
}

impl<F> Embedder for F
where
    F: Fn(&str) -> Vec<f32> + Send + Sync,
{
    fn embed(&self, text: &str) -> Vec<f32> {
        self(text)
    }
}

/// Whether matching a topic lets a text through or refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    Allowed,
    Denied,
}

/// One topic as declared in config.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    /// A few example phrases (3 to 10 is the intended size).
    pub examples: Vec<String>,
    /// A sentence describing the topic, embedded like one more example.
    pub description: Option<String>,
    /// Words or phrases that match the topic outright.
    pub keywords: Vec<String>,
    pub kind: TopicKind,
}

/// How a topic's similarity is computed from its example vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scoring {
    /// Cosine to the nearest example.
    MaxExample,
    /// Cosine to the centroid of the examples.
    Centroid,
    /// The larger of the two.
    #[default]
    MaxOrCentroid,
}

/// Similarity bars, cosine in `[-1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// An allowed topic accepts a text at or above this.
    pub allow: f32,
    /// A denied topic refuses a text at or above this.
    pub deny: f32,
    pub scoring: Scoring,
}

impl Default for Thresholds {
    /// Near the bars chosen on the tune part in `eval/topics.md` for the static 256-d
    /// embedder with five examples a topic (allowed intents 0.69, domains 0.67; denied 0.63).
    /// Measure your own topics: the right bar moves with the topics and the embedder.
    fn default() -> Self {
        Self {
            allow: 0.68,
            deny: 0.64,
            scoring: Scoring::MaxOrCentroid,
        }
    }
}

/// Why a text passed or was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Close enough to an allowed topic.
    AllowedSimilar,
    /// An allowed topic's keyword matched.
    AllowedKeyword,
    /// No allowed topics are declared and no denied topic matched.
    NoAllowedTopics,
    /// Nothing to judge.
    Empty,
    /// Not close enough to any allowed topic.
    OffTopic,
    /// A denied topic was close enough (its name).
    DeniedSimilar(String),
    /// A denied topic's keyword matched (its name).
    DeniedKeyword(String),
}

impl Reason {
    /// A short label for records and headers.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AllowedSimilar => "allowed_similar",
            Self::AllowedKeyword => "allowed_keyword",
            Self::NoAllowedTopics => "no_allowed_topics",
            Self::Empty => "empty",
            Self::OffTopic => "off_topic",
            Self::DeniedSimilar(_) => "denied_similar",
            Self::DeniedKeyword(_) => "denied_keyword",
        }
    }
}

/// The outcome of [`TopicFilter::classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopicVerdict {
    /// The most similar topic of any kind and its similarity.
    pub best: Option<(String, f32)>,
    pub allowed: bool,
    pub reason: Reason,
}

/// What is wrong with a set of topics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic has an empty name")]
    EmptyName,
    #[error("topic {0:?} is declared twice")]
    Duplicate(String),
    #[error("topic {0:?} has no examples, description or keywords")]
    Nothing(String),
    #[error("topic {0:?}: the embedder returned vectors of different lengths")]
    Dimension(String),
    #[error("threshold {name} = {value} is outside [-1, 1]")]
    Threshold { name: &'static str, value: f32 },
}

#[derive(Debug, Clone)]
struct Topic {
    name: String,
    kind: TopicKind,
    examples: Vec<Vec<f32>>,
    centroid: Option<Vec<f32>>,
    keywords: Keywords,
}

/// Allowed and denied topics with their vectors, built once; see the module doc.
pub struct TopicFilter<E> {
    topics: Vec<Topic>,
    thresholds: Thresholds,
    embedder: E,
    dim: Option<usize>,
}

impl<E: Embedder> TopicFilter<E> {
    /// Embeds every example and description once. Fails on an empty or repeated name, a topic
    /// with nothing to match, vectors of different lengths, or a threshold outside `[-1, 1]`.
    pub fn new(
        topics: Vec<TopicSpec>,
        embedder: E,
        thresholds: Thresholds,
    ) -> Result<Self, TopicError> {
        for (name, value) in [("allow", thresholds.allow), ("deny", thresholds.deny)] {
            if !(-1.0..=1.0).contains(&value) {
                return Err(TopicError::Threshold { name, value });
            }
        }
        let mut built: Vec<Topic> = Vec::with_capacity(topics.len());
        let mut dim = None;
        for spec in topics {
            let name = spec.name.trim().to_owned();
            if name.is_empty() {
                return Err(TopicError::EmptyName);
            }
            if built.iter().any(|t| t.name == name) {
                return Err(TopicError::Duplicate(name));
            }
            let phrases: Vec<&str> = spec
                .examples
                .iter()
                .map(String::as_str)
                .chain(spec.description.as_deref())
                .filter(|p| !p.trim().is_empty())
                .collect();
            let keywords = Keywords::new(&spec.keywords);
            if phrases.is_empty() && keywords.is_empty() {
                return Err(TopicError::Nothing(name));
            }
            let mut examples = Vec::with_capacity(phrases.len());
            for p in phrases {
                let mut v = embedder.embed(p);
                if *dim.get_or_insert(v.len()) != v.len() {
                    return Err(TopicError::Dimension(name));
                }
                normalise(&mut v);
                examples.push(v);
            }
            let centroid = centroid(&examples);
            built.push(Topic {
                name,
                kind: spec.kind,
                examples,
                centroid,
                keywords,
            });
        }
        Ok(Self {
            topics: built,
            thresholds,
            embedder,
            dim,
        })
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The same topics and vectors under other bars (for sweeps).
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Whether any allowed topic is declared.
    pub fn has_allowed(&self) -> bool {
        self.topics.iter().any(|t| t.kind == TopicKind::Allowed)
    }

    /// Embeds `text` and judges it.
    pub fn classify(&self, text: &str) -> TopicVerdict {
        if text.trim().is_empty() {
            return self.empty();
        }
        let v = self.embedder.embed(text);
        self.classify_embedded(text, &v)
    }

    /// Judges `text` whose embedding the caller already has (the cache stage embeds the same
    /// conversation with the same model); `vector` need not be normalised.
    pub fn classify_embedded(&self, text: &str, vector: &[f32]) -> TopicVerdict {
        if text.trim().is_empty() {
            return self.empty();
        }
        let scores = self.similarities(vector);
        let words = crate::keywords::words(text);
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .and_then(|(i, s)| self.topics.get(i).map(|t| (t.name.clone(), *s)));
        let denied = |reason: Reason| TopicVerdict {
            best: best.clone(),
            allowed: false,
            reason,
        };
        // 3. Denied topics first: a keyword, then similarity (the most similar one named).
        for t in self.topics.iter().filter(|t| t.kind == TopicKind::Denied) {
            if t.keywords.matches(&words) {
                return denied(Reason::DeniedKeyword(t.name.clone()));
            }
        }
        let worst_denied = self
            .topics
            .iter()
            .zip(&scores)
            .filter(|(t, s)| t.kind == TopicKind::Denied && **s >= self.thresholds.deny)
            .max_by(|a, b| a.1.total_cmp(b.1));
        if let Some((t, _)) = worst_denied {
            return denied(Reason::DeniedSimilar(t.name.clone()));
        }
        // 4. Allowed topics, when declared.
        if !self.has_allowed() {
            return TopicVerdict {
                best,
                allowed: true,
                reason: Reason::NoAllowedTopics,
            };
        }
        let allowed = |reason: Reason| TopicVerdict {
            best: best.clone(),
            allowed: true,
            reason,
        };
        let mut allowed_topics = self
            .topics
            .iter()
            .zip(&scores)
            .filter(|(t, _)| t.kind == TopicKind::Allowed);
        if allowed_topics
            .clone()
            .any(|(_, s)| *s >= self.thresholds.allow)
        {
            return allowed(Reason::AllowedSimilar);
        }
        if allowed_topics.any(|(t, _)| t.keywords.matches(&words)) {
            return allowed(Reason::AllowedKeyword);
        }
        denied(Reason::OffTopic)
    }

    /// Each topic's similarity to `vector`, in declaration order (topics with keywords only
    /// score -1).
    pub fn similarities(&self, vector: &[f32]) -> Vec<f32> {
        let mut v = vector.to_vec();
        normalise(&mut v);
        let usable = self.dim.is_none_or(|d| d == v.len());
        self.topics
            .iter()
            .map(|t| {
                if !usable || t.examples.is_empty() {
                    return -1.0;
                }
                let nearest = t
                    .examples
                    .iter()
                    .map(|e| dot(e, &v))
                    .fold(-1.0f32, f32::max);
                let centre = t.centroid.as_ref().map_or(-1.0, |c| dot(c, &v));
                match self.thresholds.scoring {
                    Scoring::MaxExample => nearest,
                    Scoring::Centroid => centre,
                    Scoring::MaxOrCentroid => nearest.max(centre),
                }
            })
            .collect()
    }

    /// Topic names in declaration order, with their kinds.
    pub fn topics(&self) -> impl Iterator<Item = (&str, TopicKind)> {
        self.topics.iter().map(|t| (t.name.as_str(), t.kind))
    }

    fn empty(&self) -> TopicVerdict {
        TopicVerdict {
            best: None,
            allowed: true,
            reason: Reason::Empty,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Unit length in place; an all-zero (or non-finite) vector becomes all zeros, which is
/// similar to nothing.
fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
}

/// The normalised mean of unit vectors; `None` for none.
fn centroid(vs: &[Vec<f32>]) -> Option<Vec<f32>> {
    let first = vs.first()?;
    let mut c = vec![0.0f32; first.len()];
    for v in vs {
        c.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    }
    normalise(&mut c);
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy embedder: one dimension per known word.
    fn toy(text: &str) -> Vec<f32> {
        const VOCAB: [&str; 6] = ["bank", "card", "weather", "football", "recipe", "money"];
        let lower = text.to_lowercase();
        VOCAB
            .iter()
            .map(|w| if lower.contains(w) { 1.0 } else { 0.0 })
            .collect()
    }

    fn spec(name: &str, examples: &[&str], keywords: &[&str], kind: TopicKind) -> TopicSpec {
        TopicSpec {
            name: name.to_owned(),
            examples: examples.iter().map(|s| (*s).to_owned()).collect(),
            description: None,
            keywords: keywords.iter().map(|s| (*s).to_owned()).collect(),
            kind,
        }
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            allow: 0.6,
            deny: 0.6,
            scoring: Scoring::MaxOrCentroid,
        }
    }

    fn filter() -> TopicFilter<fn(&str) -> Vec<f32>> {
        TopicFilter::new(
            vec![
                spec(
                    "banking",
                    &["my bank account", "bank money transfer"],
                    &["iban"],
                    TopicKind::Allowed,
                ),
                spec("cards", &["lost my card"], &[], TopicKind::Allowed),
                spec(
                    "sports",
                    &["football scores"],
                    &["world cup"],
                    TopicKind::Denied,
                ),
            ],
            toy as fn(&str) -> Vec<f32>,
            thresholds(),
        )
        .unwrap()
    }

    #[test]
    fn allowed_topics_accept_close_texts_and_refuse_others() {
        let f = filter();
        let v = f.classify("what is in my bank");
        assert!(v.allowed);
        assert_eq!(v.reason, Reason::AllowedSimilar);
        assert_eq!(v.best.as_ref().map(|b| b.0.as_str()), Some("banking"));
        let v = f.classify("give me a recipe");
        assert!(!v.allowed);
        assert_eq!(v.reason, Reason::OffTopic);
    }

    #[test]
    fn keywords_accept_and_deny_outright() {
        let f = filter();
        let v = f.classify("what is an IBAN?");
        assert_eq!(v.reason, Reason::AllowedKeyword);
        let v = f.classify("who won the World  Cup, and my bank?");
        assert!(!v.allowed);
        assert_eq!(v.reason, Reason::DeniedKeyword("sports".to_owned()));
    }

    #[test]
    fn denied_similarity_wins_over_allowed() {
        let f = filter();
        // Both the bank example and the football example are 0.71 away: denied wins.
        let v = f.classify("football at my bank");
        assert_eq!(v.reason, Reason::DeniedSimilar("sports".to_owned()));
        let v = f.classify("football tonight");
        assert_eq!(v.reason, Reason::DeniedSimilar("sports".to_owned()));
    }

    #[test]
    fn only_denied_topics_let_everything_else_through() {
        let f = TopicFilter::new(
            vec![spec("sports", &["football"], &[], TopicKind::Denied)],
            toy,
            thresholds(),
        )
        .unwrap();
        assert_eq!(f.classify("recipe please").reason, Reason::NoAllowedTopics);
        assert!(!f.classify("football").allowed);
        assert_eq!(f.classify("  ").reason, Reason::Empty);
    }

    #[test]
    fn scoring_modes_differ_as_documented() {
        let f = filter().with_thresholds(Thresholds {
            scoring: Scoring::Centroid,
            ..thresholds()
        });
        // The banking centroid leans on "bank"; "money" alone is sin(22.5°) from it.
        let s = f.similarities(&toy("money"))[0];
        assert!((s - 0.382_683_4).abs() < 1e-5, "{s}");
        let f = f.with_thresholds(Thresholds {
            scoring: Scoring::MaxExample,
            ..thresholds()
        });
        let s = f.similarities(&toy("money"))[0];
        assert!((s - (1.0 / 2.0f32.sqrt())).abs() < 1e-5, "{s}");
    }

    #[test]
    fn bad_specs_are_rejected() {
        let e = |topics, t| TopicFilter::new(topics, toy, t).err();
        assert_eq!(
            e(
                vec![spec(" ", &["a"], &[], TopicKind::Allowed)],
                thresholds()
            ),
            Some(TopicError::EmptyName)
        );
        assert_eq!(
            e(
                vec![
                    spec("a", &["bank"], &[], TopicKind::Allowed),
                    spec("a", &["card"], &[], TopicKind::Denied)
                ],
                thresholds()
            ),
            Some(TopicError::Duplicate("a".to_owned()))
        );
        assert_eq!(
            e(
                vec![spec("a", &[" "], &[], TopicKind::Allowed)],
                thresholds()
            ),
            Some(TopicError::Nothing("a".to_owned()))
        );
        assert!(matches!(
            e(
                vec![spec("a", &["bank"], &[], TopicKind::Allowed)],
                Thresholds {
                    allow: 1.5,
                    ..thresholds()
                }
            ),
            Some(TopicError::Threshold { name: "allow", .. })
        ));
        let uneven = |t: &str| vec![0.5; t.len()];
        assert!(matches!(
            TopicFilter::new(
                vec![spec("a", &["x", "yy"], &[], TopicKind::Allowed)],
                uneven,
                thresholds()
            )
            .err(),
            Some(TopicError::Dimension(_))
        ));
    }

    #[test]
    fn a_vector_of_the_wrong_length_matches_nothing() {
        let f = filter();
        let v = f.classify_embedded("bank", &[1.0, 0.0]);
        assert_eq!(v.reason, Reason::OffTopic);
        let v = f.classify_embedded("bank", &[0.0; 6]);
        assert_eq!(v.reason, Reason::OffTopic);
    }
}
