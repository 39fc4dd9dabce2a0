use std::sync::Arc;

use crate::config::ScannerConfig;
use crate::kind::{EntityKind, Span};
use crate::recogniser::context::ContextModel;
use crate::recogniser::Recogniser;
use crate::secrets::Secrets;
use crate::structured::Structured;
use crate::PiiError;

/// The detectors for one configuration, regexes and word lists compiled once. Cheap to share
/// (`&Scanner` or `Arc<Scanner>`); scanning takes `&self` and allocates only its results.
pub struct Scanner {
    config: ScannerConfig,
    structured: Structured,
    secrets: Secrets,
    recogniser: Recogniser,
    /// Scores name, address and place candidates ([`ScannerConfig::context_model`]).
    model: Option<Arc<ContextModel>>,
}

/// A finding before thresholds and overlap resolution, with the context features it was
/// scored on (empty for the structured kinds, which are not scored). For training and
/// evaluating a [`ContextModel`].
#[derive(Debug, Clone)]
pub struct Candidate {
    pub span: Span,
    pub features: Vec<u32>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// With `config.context_model`, the built-in model scores names, addresses and places.
    pub fn new(config: ScannerConfig) -> Result<Scanner, PiiError> {
        let model = if config.context_model {
            Some(crate::recogniser::context::builtin()?)
        } else {
            None
        };
        Scanner::build(config, model)
    }

    /// With this context model instead of the built-in one (`config.context_model` ignored).
    pub fn with_model(config: ScannerConfig, model: ContextModel) -> Result<Scanner, PiiError> {
        Scanner::build(config, Some(Arc::new(model)))
    }

    fn build(config: ScannerConfig, model: Option<Arc<ContextModel>>) -> Result<Scanner, PiiError> {
        config.validate()?;
        Ok(Scanner {
            structured: Structured::new(config.context_window)?,
            secrets: Secrets::new(config.secrets.clone())?,
            recogniser: Recogniser::new()?,
            config,
            model,
        })
    }

    pub fn config(&self) -> &ScannerConfig {
        &self.config
    }

    /// Every finding in `text`, sorted by start, none overlapping (see [`resolve_overlaps`]).
    pub fn scan(&self, text: &str) -> Vec<Span> {
        let mut spans: Vec<Span> = self
            .find(text, false)
            .into_iter()
            .map(|candidate| candidate.span)
            .collect();
        spans
            .retain(|span| !span.is_empty() && span.confidence >= self.config.threshold(span.kind));
        if self.model.is_some() {
            resolve_overlaps_by_confidence(spans)
        } else {
            resolve_overlaps(spans)
        }
    }

    /// Every candidate in `text` of the kinds turned on, before thresholds and overlap
    /// resolution; names, addresses and places with their context features (and, with a
    /// context model, its confidence).
    pub fn candidates(&self, text: &str) -> Vec<Candidate> {
        self.find(text, true)
    }

    fn find(&self, text: &str, keep_features: bool) -> Vec<Candidate> {
        let on = |kind: EntityKind| self.config.kinds.contains(&kind);
        let mut candidates = Vec::new();
        if on(EntityKind::Email) {
            self.structured.emails(text, &mut candidates);
        }
        if on(EntityKind::Phone) {
            self.structured.phones(text, &mut candidates);
        }
        if on(EntityKind::CreditCard) {
            self.structured.cards(text, &mut candidates);
        }
        if on(EntityKind::Iban) {
            self.structured.ibans(text, &mut candidates);
        }
        if on(EntityKind::UsSsn) {
            self.structured.ssns(text, &mut candidates);
        }
        if on(EntityKind::IpAddress) {
            self.structured.ips(text, &mut candidates);
        }
        if on(EntityKind::DateOfBirth) {
            self.structured.dates_of_birth(text, &mut candidates);
        }
        if on(EntityKind::Secret) {
            self.secrets.detect(text, &mut candidates);
        }
        let recognised = if on(EntityKind::Person)
            || on(EntityKind::StreetAddress)
            || on(EntityKind::Location)
        {
            self.recogniser
                .candidates(text, &on, &candidates, self.model.as_deref(), keep_features)
        } else {
            Vec::new()
        };
        candidates
            .into_iter()
            .map(|span| Candidate {
                span,
                features: Vec::new(),
            })
            .chain(
                recognised
                    .into_iter()
                    .map(|(span, features)| Candidate { span, features }),
            )
            .collect()
    }
}

/// Picks non-overlapping findings deterministically.
///
/// 1. Each candidate gets a priority: its confidence plus up to 0.1 for length (full bonus at
///    20 chars or more), so a long street address at 0.8 beats the country name inside it at
///    0.85, while a Luhn-valid card at 0.95 beats a phone-shaped reading of the same digits.
/// 2. Candidates are taken in priority order (ties: longer, then earlier, then by kind); one
///    that overlaps an already taken finding is dropped.
/// 3. The result is sorted by start.
pub fn resolve_overlaps(candidates: Vec<Span>) -> Vec<Span> {
    resolve(candidates, |span: &Span| {
        span.confidence + 0.1 * (span.len() as f32 / 20.0).min(1.0)
    })
}

/// As [`resolve_overlaps`] but by confidence alone (length only breaks ties): what the
/// scanner does when the context model scored the candidates, since the model has already
/// weighed a whole address against its lines (out-of-fold F2 0.836 against 0.821 with the
/// length bonus, `eval/pii.md`).
pub fn resolve_overlaps_by_confidence(candidates: Vec<Span>) -> Vec<Span> {
    resolve(candidates, |span: &Span| span.confidence)
}

fn resolve(mut candidates: Vec<Span>, priority: impl Fn(&Span) -> f32) -> Vec<Span> {
    candidates.sort_by(|a, b| {
        priority(b)
            .total_cmp(&priority(a))
            .then(b.len().cmp(&a.len()))
            .then(a.start.cmp(&b.start))
            .then(a.kind.cmp(&b.kind))
            .then(a.rule.cmp(b.rule))
    });
    let mut taken: Vec<Span> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        if !taken.iter().any(|span| span.overlaps(&candidate)) {
            taken.push(candidate);
        }
    }
    taken.sort_by_key(|span| (span.start, span.end));
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(EntityKind, String)> {
        let scanner = Scanner::new(ScannerConfig::default()).unwrap();
        scanner
            .scan(text)
            .into_iter()
            .map(|s| (s.kind, text[s.start..s.end].to_string()))
            .collect()
    }

    #[test]
    fn shareable_across_request_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Scanner>();
        send_sync::<crate::Masker>();
        send_sync::<crate::StreamUnmasker>();
    }

    #[test]
    fn a_card_is_not_also_a_phone() {
        assert_eq!(
            kinds("pay with 4111 1111 1111 1111"),
            [(EntityKind::CreditCard, "4111 1111 1111 1111".into())]
        );
    }

    #[test]
    fn the_longer_address_wins_over_the_country_inside() {
        let found = kinds("Ship to 12 Kent Street, Oslo, Norway 0150.");
        assert_eq!(
            found,
            [(
                EntityKind::StreetAddress,
                "12 Kent Street, Oslo, Norway 0150".into()
            )]
        );
    }

    #[test]
    fn disabled_kinds_are_not_reported() {
        let scanner = Scanner::new(ScannerConfig::only([EntityKind::Email])).unwrap();
        let text = "mail a@b.io or call +1 555 123 4567";
        let found = scanner.scan(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, EntityKind::Email);
    }

    #[test]
    fn the_context_model_keeps_personal_details_and_drops_news() {
        let found = kinds("My name is Ana Lee, write to ana@example.com");
        assert!(
            found.contains(&(EntityKind::Person, "Ana Lee".into())),
            "{found:?}"
        );
        // Public figures and places in a news sentence are not someone's personal data.
        assert_eq!(
            kinds("President Bush met Tony Blair in London on Tuesday."),
            []
        );
    }

    #[test]
    fn without_the_context_model_the_rules_decide() {
        let config = ScannerConfig {
            context_model: false,
            ..ScannerConfig::default()
        };
        let scanner = Scanner::new(config).unwrap();
        let text = "President Bush met Tony Blair in London on Tuesday.";
        let found: Vec<&str> = scanner
            .scan(text)
            .iter()
            .map(|s| &text[s.start..s.end])
            .collect();
        assert!(found.contains(&"London"), "{found:?}");
        // The candidates only the model can judge stay below the default threshold.
        assert!(scanner
            .candidates(text)
            .iter()
            .filter(|c| c.span.rule == "capitalised")
            .all(|c| c.span.confidence < 0.5));
    }

    #[test]
    fn every_name_candidate_has_features_and_structured_ones_none() {
        let scanner = Scanner::new(ScannerConfig::default()).unwrap();
        let candidates = scanner.candidates("Call Maria Gonzalez on +44 7700 900123");
        assert!(candidates
            .iter()
            .any(|c| c.span.kind == EntityKind::Phone && c.features.is_empty()));
        assert!(candidates
            .iter()
            .filter(|c| c.span.kind == EntityKind::Person)
            .all(|c| !c.features.is_empty() && (0.0..=1.0).contains(&c.span.confidence)));
    }

    #[test]
    fn resolution_is_deterministic_and_disjoint() {
        let spans = vec![
            Span::new(0, 10, EntityKind::Phone, 0.8, "a"),
            Span::new(0, 10, EntityKind::CreditCard, 0.95, "b"),
            Span::new(5, 30, EntityKind::StreetAddress, 0.8, "c"),
            Span::new(12, 18, EntityKind::Location, 0.85, "d"),
        ];
        let resolved = resolve_overlaps(spans.clone());
        let mut reversed = spans;
        reversed.reverse();
        assert_eq!(resolved, resolve_overlaps(reversed));
        assert!(resolved.windows(2).all(|w| w[0].end <= w[1].start));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("41 Via dalla Staziun 87\n> Apt. 033\n> Dozwil\n".to_string()),
            Just("Maria Gonzalez".to_string()),
            Just("ann@example.com".to_string()),
            Just("Mongolia 34161".to_string()),
            Just("\n".to_string()),
            "\\PC{0,16}",
            "[A-Za-zéü0-9 .,>?\n-]{0,16}",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.join(" "))
    }

    proptest! {
        #[test]
        fn candidates_lie_on_char_boundaries_with_bounded_confidence(text in text()) {
            let scanner = Scanner::new(ScannerConfig::default()).unwrap();
            for candidate in scanner.candidates(&text) {
                let span = &candidate.span;
                prop_assert!(span.start < span.end && span.end <= text.len());
                prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
                prop_assert!((0.0..=1.0).contains(&span.confidence));
                prop_assert!(candidate.features.iter().all(|f| *f < 1 << crate::FEATURE_BITS));
            }
            let found = scanner.scan(&text);
            prop_assert!(found.windows(2).all(|w| w[0].end <= w[1].start));
        }
    }
}
