//! Person names, street addresses and locations by rules: context words ("my name is",
//! "Mr.", "lives at", "in <City>"), capitalisation, street-type words, and small embedded
//! word lists. This is a recogniser, not a trained NER model: it finds the common shapes and
//! misses names it has no cue for (see `eval/pii.md` for how often).

mod addresses;
mod lexicon;
mod persons;
mod places;
mod tokens;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use regex::Regex;

use crate::kind::{EntityKind, Span};
use crate::PiiError;
use lexicon::{flag, lexicon, Fnv, PlaceIndex, PLACES, STREET_ENDINGS, SURNAME_ENDINGS};
use tokens::{tokenize, Shape, Token};

pub(crate) struct Recogniser {
    /// Every listed word (lower case) and its [`flag`]s.
    lexicon: HashMap<String, u16, BuildHasherDefault<Fnv>>,
    places: PlaceIndex,
    zip: Regex,
    /// Post-office boxes and US military addresses, which have no house number or street.
    postal: Regex,
}

impl Recogniser {
    pub(crate) fn new() -> Result<Recogniser, PiiError> {
        let compile =
            |pattern: &str| Regex::new(pattern).map_err(|err| PiiError::Pattern(err.to_string()));
        let mut places = PlaceIndex::default();
        for line in PLACES
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        {
            let (ambiguous, name) = match line.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let parts: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
            if let Some(first) = parts.first() {
                places
                    .entry(first.clone())
                    .or_default()
                    .push((parts, ambiguous));
            }
        }
        for entries in places.values_mut() {
            // Longest first, so "new york city" wins over "new york".
            entries.sort_by_key(|(parts, _)| std::cmp::Reverse(parts.len()));
        }
        Ok(Recogniser {
            lexicon: {
                let mut lexicon = lexicon();
                for first in places.keys() {
                    *lexicon.entry(first.clone()).or_default() |= flag::PLACE_START;
                }
                lexicon
            },
            places,
            postal: compile(
                r"(?x)
                (?-u:\b)(?:[0-9]{1,6}\s+)?(?:
                    (?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box)\s+[0-9]{1,6}
                  | (?:PSC|Unit|CMR)\s+[0-9]{1,6},?\s*Box\s+[0-9]{1,6}
                  | (?:USNS|USNV|USS|USCGC)[\ ]+\p{Lu}\p{L}+(?:[\ ]+\p{Lu}\p{L}+)?[\s,]+(?:APO|FPO|DPO)[\ ]+A[AEP][\ ]+[0-9]{5}
                )
                (?:[\s,]+(?:APO|FPO|DPO)\s+A[AEP]\s+[0-9]{5})?",
            )?,
            zip: compile(
                r"^(?:[0-9]{3,6}|[0-9]{5}-[0-9]{3,4}|[0-9]{2}-[0-9]{3}|[A-Z]{1,2}[0-9][0-9A-Z]?)$",
            )?,
        })
    }

    pub(crate) fn detect(
        &self,
        text: &str,
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
        let mut tokens = tokenize(text);
        for token in tokens.iter_mut().filter(|t| t.shape != Shape::Number) {
            token.flags = self.lexicon.get(token.lower.as_ref()).copied().unwrap_or(0);
            if token.shape == Shape::Word && token.text.len() >= 5 {
                let lower = token.lower.as_ref();
                let letters = lower.chars().count();
                if letters >= 5 && SURNAME_ENDINGS.iter().any(|ending| lower.ends_with(ending)) {
                    token.flags |= flag::SURNAME_ENDING;
                }
                if letters > 4
                    && STREET_ENDINGS
                        .iter()
                        .any(|ending| lower.ends_with(ending) && lower != *ending)
                {
                    token.flags |= flag::STREET_ENDING;
                }
            }
        }
        if kinds(EntityKind::StreetAddress) {
            self.addresses(&tokens, out);
            for found in self.postal.find_iter(text) {
                let military = found.as_str().contains("PO ");
                let po_box = found.as_str().contains("Box");
                if military || po_box {
                    out.push(Span::new(
                        found.start(),
                        found.end(),
                        EntityKind::StreetAddress,
                        0.85,
                        "po_box_or_military",
                    ));
                }
            }
        }
        if kinds(EntityKind::Location) {
            self.locations(&tokens, out);
        }
        if kinds(EntityKind::Person) {
            self.persons(&tokens, out);
        }
    }

    fn is_non_name(&self, token: &Token<'_>) -> bool {
        token.has(flag::NON_NAME) && !token.has(flag::FIRST) || token.has(flag::ORG)
    }

    fn name_like(&self, token: &Token<'_>) -> bool {
        token.shape == Shape::Word && !token.has(flag::NON_NAME) && !token.has(flag::TITLE)
    }

    fn surname_like(&self, token: &Token<'_>) -> bool {
        token.has(flag::SURNAME | flag::SURNAME_ENDING)
    }

    fn sentence_start(tokens: &[Token<'_>], index: usize) -> bool {
        index == 0
            || matches!(tokens[index - 1].shape, Shape::Newline)
            || matches!(
                tokens[index - 1].text,
                "." | "!" | "?" | ":" | "\"" | "“" | ">" | "(" | "-" | "*"
            )
    }

    fn cue_before(tokens: &[Token<'_>], index: usize, cue: &[&str]) -> bool {
        index >= cue.len()
            && tokens[index - cue.len()..index]
                .iter()
                .zip(cue)
                .all(|(token, word)| token.is(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, kind: EntityKind) -> Vec<String> {
        let recogniser = Recogniser::new().unwrap();
        let mut out = Vec::new();
        recogniser.detect(text, &|k| k == kind, &mut out);
        out.iter()
            .filter(|s| s.confidence >= 0.5)
            .map(|s| text[s.start..s.end].to_string())
            .collect()
    }

    #[test]
    fn person_names_by_cue_title_and_list() {
        assert_eq!(
            found("Hello, my name is ana lee.", EntityKind::Person),
            ["ana lee"]
        );
        assert_eq!(
            found(
                "Please ask Dr. Hannelore Quast about it",
                EntityKind::Person
            ),
            ["Hannelore Quast"]
        );
        assert_eq!(
            found("We met Thomas Müller yesterday", EntityKind::Person),
            ["Thomas Müller"]
        );
        assert_eq!(
            found("The film was directed by Alice Hasti", EntityKind::Person),
            ["Alice Hasti"]
        );
        assert!(found("The United Nations met in May.", EntityKind::Person).is_empty());
        assert!(found("Palantir Technologies and Acme Inc", EntityKind::Person).is_empty());
    }

    #[test]
    fn names_in_lists_and_on_their_own_line() {
        assert_eq!(
            found(
                "The founders were Anna Berg, Kadiev and Stanton.",
                EntityKind::Person
            ),
            ["Anna Berg", "Kadiev", "Stanton"]
        );
        assert_eq!(
            found("Maika van de Noort\nEmployment manager", EntityKind::Person),
            ["Maika van de Noort"]
        );
        assert!(found("Table Of Contents\nIntroduction", EntityKind::Person).is_empty());
        assert_eq!(
            found("As promised, here's Emre's address", EntityKind::Person),
            ["Emre"]
        );
        assert_eq!(
            found("Thomas's bike", EntityKind::Person),
            ["Thomas"],
            "possessive split off"
        );
    }

    #[test]
    fn post_boxes_military_addresses_and_names_between_numbers() {
        assert_eq!(
            found("send it to PO Box 1234 please", EntityKind::StreetAddress),
            ["PO Box 1234"]
        );
        assert_eq!(
            found("USNS Miller\nFPO AE 12345", EntityKind::StreetAddress),
            ["USNS Miller\nFPO AE 12345"]
        );
        assert_eq!(
            found(
                "I live at 692 Kuuse 53 Apt. 641, Grubbenvorst",
                EntityKind::StreetAddress
            ),
            ["692 Kuuse 53 Apt. 641, Grubbenvorst"]
        );
        // Without a unit, city or postcode after it, a name between numbers is not enough.
        assert!(found("Chapter 3 Results 4 were bad", EntityKind::StreetAddress).is_empty());
        assert!(found(
            "It rained for 500 days during 1990",
            EntityKind::StreetAddress
        )
        .is_empty());
    }

    #[test]
    fn street_addresses() {
        assert_eq!(
            found(
                "She lives at 221B Baker Street, London.",
                EntityKind::StreetAddress
            ),
            ["221B Baker Street, London"]
        );
        assert_eq!(
            found(
                "send it to 61076 32 Kent Street Apt. 681\nDRAMMEN\n 06079 please",
                EntityKind::StreetAddress
            ),
            ["61076 32 Kent Street Apt. 681\nDRAMMEN\n 06079"]
        );
        assert_eq!(
            found(
                "Wir wohnen in der Hauptstraße 5 in Berlin",
                EntityKind::StreetAddress
            ),
            ["Hauptstraße 5"]
        );
        assert_eq!(
            found("12 rue de la Paix, Paris", EntityKind::StreetAddress),
            ["12 rue de la Paix, Paris"]
        );
        assert!(found(
            "I have 3 cats and 2 dogs on the street",
            EntityKind::StreetAddress
        )
        .is_empty());
    }

    #[test]
    fn locations_from_the_list_and_cues() {
        assert_eq!(
            found(
                "I will be travelling to Sweden next week",
                EntityKind::Location
            ),
            ["Sweden"]
        );
        assert_eq!(
            found("She moved from Tiszabög last year", EntityKind::Location),
            ["Tiszabög"]
        );
        assert_eq!(
            found("flights to New Zealand", EntityKind::Location),
            ["New Zealand"]
        );
        assert!(found("Written in Python in March", EntityKind::Location).is_empty());
        assert!(found("Turkey is a good dish", EntityKind::Location).is_empty());
    }
}
