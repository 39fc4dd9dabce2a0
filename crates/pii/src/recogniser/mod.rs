//! Person names, street addresses and locations by rules: context words ("my name is",
//! "Mr.", "lives at", "in <City>"), capitalisation, street-type words, and small embedded
//! word lists. This is a recogniser, not a trained NER model: it finds the common shapes and
//! misses names it has no cue for (see `eval/pii.md` for how often).

mod addresses;
pub(crate) mod context;
mod features;
mod lexicon;
mod persons;
mod places;
mod tokens;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use regex::Regex;

use crate::kind::{EntityKind, Span};
use crate::PiiError;
use context::{ContextModel, TextContext};
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

    /// Every candidate in `text` with its context features. With a model, a candidate's
    /// confidence is the model's; without one, the rule's (and the extra candidates that only
    /// the model can judge, rule `capitalised` and `address_line`, get 0.3).
    ///
    /// Features are kept only with `keep_features` (scanning needs just the confidence).
    pub(crate) fn candidates(
        &self,
        text: &str,
        kinds: &dyn Fn(EntityKind) -> bool,
        structured: &[Span],
        model: Option<&ContextModel>,
        keep_features: bool,
    ) -> Vec<(Span, Vec<u32>)> {
        let tokens = self.tokens(text);
        let mut spans = Vec::new();
        self.detect_tokens(text, &tokens, kinds, &mut spans);
        let context = TextContext::new(&tokens, structured);
        let mut features = Vec::with_capacity(128);
        let mut result = Vec::with_capacity(spans.len());
        for mut span in spans {
            let first = tokens.partition_point(|t| t.end <= span.start);
            let after = tokens.partition_point(|t| t.start < span.end);
            features.clear();
            // Without a model, features are only for a caller that keeps them.
            if first < after && (model.is_some() || keep_features) {
                self.features(&tokens, first, after - 1, &span, &context, &mut features);
            }
            if let Some(model) = model {
                span.confidence = model.confidence(span.kind, &features);
            }
            let kept = if keep_features {
                features.clone()
            } else {
                Vec::new()
            };
            result.push((span, kept));
        }
        result
    }

    /// The rules' findings alone, with the rules' confidences.
    #[cfg(test)]
    pub(crate) fn detect(
        &self,
        text: &str,
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
        let tokens = self.tokens(text);
        self.detect_tokens(text, &tokens, kinds, out);
    }

    fn tokens<'t>(&self, text: &'t str) -> Vec<Token<'t>> {
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
        tokens
    }

    fn detect_tokens(
        &self,
        text: &str,
        tokens: &[Token<'_>],
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
        if kinds(EntityKind::StreetAddress) {
            let first_address = out.len();
            self.addresses(tokens, out);
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
            self.address_extensions(tokens, first_address, out);
            self.address_lines(tokens, first_address, kinds, out);
            self.numbered_names(tokens, out);
        }
        if kinds(EntityKind::Location) {
            self.locations(tokens, out);
        }
        if kinds(EntityKind::Person) {
            self.persons(tokens, out);
        }
        self.capitalised_runs(tokens, kinds, out);
    }

    /// Every maximal run of capitalised name-like words, as a person and as a place: only
    /// the context model can tell which (if either) it is.
    fn capitalised_runs(
        &self,
        tokens: &[Token<'_>],
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
        let mut i = 0;
        while i < tokens.len() {
            let continues = i > 0 && tokens[i - 1].capitalised();
            if tokens[i].capitalised() && !continues {
                if let Some((first, last)) = self.name_run(tokens, i, false, 4) {
                    // Also without its first word: "Contact Maria Gonzalez", "Senator Ann Lee".
                    let variants = if last > first { 2 } else { 1 };
                    for start in [first, first + 1].into_iter().take(variants) {
                        for kind in [EntityKind::Person, EntityKind::Location] {
                            if kinds(kind) {
                                out.push(Span::new(
                                    tokens[start].start,
                                    tokens[last].end,
                                    kind,
                                    0.3,
                                    "capitalised",
                                ));
                            }
                        }
                    }
                    i = last + 1;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Every number, and every run of up to three words (the first capitalised) just before
    /// a number on the same line ("Dunajska 56", "Luite tee 87"), as an address or a part of
    /// one: house numbers, postcodes and streets without a street-type word. Only the
    /// context model can tell them from prices and years.
    fn numbered_names(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        for (i, token) in tokens.iter().enumerate() {
            if token.shape != Shape::Number || token.text.len() < 2 {
                continue;
            }
            out.push(Span::new(
                token.start,
                token.end,
                EntityKind::StreetAddress,
                0.3,
                "number",
            ));
            for words in 1..=3 {
                let Some(first) = i.checked_sub(words) else {
                    break;
                };
                if tokens[first..i].iter().any(|t| t.shape != Shape::Word) {
                    break;
                }
                if tokens[first].capitalised() {
                    out.push(Span::new(
                        tokens[first].start,
                        token.end,
                        EntityKind::StreetAddress,
                        0.3,
                        "name+number",
                    ));
                }
            }
        }
    }

    /// An address candidate continued over what usually follows it: ", City, Country", a
    /// postcode, the next short lines of a letter block (up to four lines, sixteen tokens).
    fn address_extensions(&self, tokens: &[Token<'_>], from: usize, out: &mut Vec<Span>) {
        let ends: Vec<(usize, usize)> = out[from..]
            .iter()
            .filter(|s| s.kind == EntityKind::StreetAddress)
            .map(|s| (s.start, s.end))
            .collect();
        for (start, end) in ends {
            let mut last = tokens.partition_point(|t| t.start < end);
            if last == 0 {
                continue;
            }
            last -= 1;
            let mut good_end = last;
            let mut lines = 0;
            let mut k = last + 1;
            while k < tokens.len() && k <= last + 16 {
                let t = &tokens[k];
                match t.shape {
                    Shape::Newline => {
                        if tokens.get(k + 1).is_none_or(|n| n.shape == Shape::Newline) {
                            break;
                        }
                        lines += 1;
                        if lines > 4 {
                            break;
                        }
                    }
                    Shape::Number => good_end = k,
                    Shape::Word if t.capitalised() || t.has(flag::UNIT) => good_end = k,
                    Shape::Punct if matches!(t.text, "," | "." | ">" | "?" | "*" | "-") => {}
                    _ => break,
                }
                k += 1;
            }
            if good_end > last {
                out.push(Span::new(
                    start,
                    tokens[good_end].end,
                    EntityKind::StreetAddress,
                    0.3,
                    "address_extended",
                ));
            }
        }
    }

    /// An address written over several lines is also proposed line by line (without the
    /// bullets or quote marks a line starts with), as an address part and as a place: a
    /// letter block's lines are separate fields.
    fn address_lines(
        &self,
        tokens: &[Token<'_>],
        from: usize,
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
        let multi_line: Vec<(usize, usize)> = out[from..]
            .iter()
            .filter(|s| s.kind == EntityKind::StreetAddress)
            .map(|s| (s.start, s.end))
            .collect();
        for (start, end) in multi_line {
            let first = tokens.partition_point(|t| t.end <= start);
            let after = tokens.partition_point(|t| t.start < end);
            let inside = &tokens[first..after];
            if !inside.iter().any(|t| t.shape == Shape::Newline) {
                continue;
            }
            for line in inside.split(|t| t.shape == Shape::Newline) {
                let line: Vec<&Token<'_>> = line
                    .iter()
                    .skip_while(|t| t.shape == Shape::Punct)
                    .collect();
                let (Some(a), Some(b)) = (line.first(), line.last()) else {
                    continue;
                };
                let mut pieces = vec![(*a, *b)];
                // A number opening or closing the line is often a field of its own (house
                // number, postcode): "Mongolia 34161".
                if line.len() > 1 {
                    if a.shape == Shape::Number {
                        pieces.push((line[1], *b));
                    }
                    if b.shape == Shape::Number {
                        pieces.push((*a, line[line.len() - 2]));
                    }
                }
                for (a, b) in pieces {
                    for kind in [EntityKind::StreetAddress, EntityKind::Location] {
                        if kinds(kind) {
                            out.push(Span::new(a.start, b.end, kind, 0.3, "address_line"));
                        }
                    }
                }
            }
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
