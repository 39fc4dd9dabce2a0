//! Street addresses: a house number and a street, a street and a number, or a number after an
//! address cue; extended over units, city, region, postcode and country.

use super::lexicon::{flag, ADDRESS_CUES};
use super::tokens::{Shape, Token};
use super::Recogniser;
use crate::kind::{EntityKind, Span};

/// Where an address starts and its core ends, its confidence and the rule that found it.
type Core = (usize, usize, f32, &'static str);

impl Recogniser {
    /// "Street", "Ave", or a name with a street ending glued on ("Hauptstraße"); glued
    /// endings count only on capitalised words, since "during" ends in "ring" too.
    fn is_street_word(&self, token: &Token<'_>, all_lower: bool) -> bool {
        token.shape == Shape::Word
            && (token.has(flag::STREET_AFTER)
                || (token.capitalised() || all_lower) && token.has(flag::STREET_ENDING))
    }

    /// Street addresses:
    /// 1. a house number (one or two numbers) then up to five words containing a street-type
    ///    word ("12 Kent Street", "6889 ul. Jarzębinowa 5", "12 rue de la Paix");
    /// 2. or a street word glued to its name then a number ("Hauptstraße 5");
    /// 3. or a number after an address cue ("lives at 44 ..."), taken to the end of the line;
    /// 4. then extended over units ("Apt. 4"), city, state, postcode and country segments;
    /// 5. a unit alone ("Suite 616") counts too, weakly.
    pub(super) fn addresses(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        let all_lower = !tokens.iter().any(Token::capitalised);
        let mut i = 0;
        while i < tokens.len() {
            let core = self.address_core(tokens, i, all_lower);
            if let Some((first, core_last, confidence, rule)) = core {
                let last = self.extend_address(tokens, core_last);
                if rule == "number+name+number" && last == core_last {
                    i += 1;
                    continue;
                }
                out.push(Span::new(
                    tokens[first].start,
                    tokens[last].end,
                    EntityKind::StreetAddress,
                    confidence,
                    rule,
                ));
                i = last + 1;
                continue;
            }
            if tokens[i].has(flag::UNIT) && tokens[i].lower != "no" && tokens[i].lower != "#" {
                let mut k = i + 1;
                if tokens.get(k).is_some_and(|t| t.text == ".") {
                    k += 1;
                }
                if tokens.get(k).is_some_and(|t| t.shape == Shape::Number)
                    && tokens[i].capitalised()
                {
                    out.push(Span::new(
                        tokens[i].start,
                        tokens[k].end,
                        EntityKind::StreetAddress,
                        0.55,
                        "unit",
                    ));
                    i = k + 1;
                    continue;
                }
            }
            i += 1;
        }
    }

    fn address_core(&self, tokens: &[Token<'_>], i: usize, all_lower: bool) -> Option<Core> {
        let token = tokens.get(i)?;
        let cued = i > 0
            && tokens[i - 1].has(flag::ADDRESS_CUE_END)
            && ADDRESS_CUES
                .iter()
                .any(|cue| Self::cue_before(tokens, i, cue));
        if token.shape == Shape::Number && token.text.len() <= 6 {
            if let Some(core) = self.numbered_address(tokens, i, all_lower, cued) {
                return Some(core);
            }
        }
        if token.shape == Shape::Word && token.capitalised() {
            return self.street_then_number(tokens, i, all_lower);
        }
        None
    }

    /// An address that starts with a house number at `i`: rules 1 and 3.
    fn numbered_address(
        &self,
        tokens: &[Token<'_>],
        i: usize,
        all_lower: bool,
        cued: bool,
    ) -> Option<Core> {
        let mut k = i + 1;
        if tokens
            .get(k)
            .is_some_and(|t| t.shape == Shape::Number && t.text.len() <= 5)
        {
            k += 1;
        }
        // The words after the number must look like a name: capitalised, a street-type
        // word, or anything in an all-lower-case text. "1945 during", "58 square miles"
        // and "3 C" are not addresses.
        let name_word = |t: &Token<'_>| {
            t.shape == Shape::Word
                && (t.capitalised() && t.text.chars().count() > 1
                    || all_lower
                    || t.has(flag::PARTICLE)
                    || t.has(flag::STREET_BEFORE)
                    || self.is_street_word(t, all_lower))
        };
        let opens_name = tokens
            .get(k)
            .is_some_and(|t| name_word(t) && !t.has(flag::NON_NAME) || t.has(flag::STREET_BEFORE));
        let street_at = opens_name
            .then(|| self.street_word_at(tokens, k, all_lower, &name_word))
            .flatten();
        if let Some(street) = street_at {
            let last = Self::street_end(tokens, k, street, &name_word);
            if last > i {
                return Some((i, last, if cued { 0.9 } else { 0.8 }, "number+street"));
            }
        }
        // "692 Kuuse 53, Grubbenvorst": a name between two numbers, kept only when the
        // address goes on with a unit, city or postcode (checked by the caller).
        if street_at.is_none() && opens_name {
            let mut m = k;
            while tokens
                .get(m)
                .is_some_and(|t| t.shape == Shape::Word && t.capitalised() && !self.is_non_name(t))
                && m - k < 3
            {
                m += 1;
            }
            if m > k
                && tokens
                    .get(m)
                    .is_some_and(|t| t.shape == Shape::Number && t.text.len() <= 4)
            {
                return Some((i, m, 0.65, "number+name+number"));
            }
        }
        let next_is_name = tokens.get(i + 1).is_some_and(|t| {
            t.shape == Shape::Number || t.capitalised() && t.text.chars().count() > 1
        });
        if cued && next_is_name {
            let mut last = i;
            let mut m = i + 1;
            while let Some(t) = tokens.get(m) {
                if matches!(t.shape, Shape::Newline)
                    || matches!(t.text, "." | "?" | "!" | ";")
                    || m - i > 8
                {
                    break;
                }
                last = m;
                m += 1;
            }
            if last > i {
                return Some((i, last, 0.75, "cue+number"));
            }
        }
        None
    }

    /// The street-type word among the (at most five) name words from `k`, if there is one.
    fn street_word_at(
        &self,
        tokens: &[Token<'_>],
        k: usize,
        all_lower: bool,
        name_word: &dyn Fn(&Token<'_>) -> bool,
    ) -> Option<usize> {
        let mut j = k;
        let mut words = 0;
        while words < 5 {
            let Some(t) = tokens.get(j) else { break };
            match t.shape {
                Shape::Word if name_word(t) => {
                    words += 1;
                    let glued = self.is_street_word(t, all_lower) && !t.has(flag::STREET_AFTER);
                    if j == k && (t.has(flag::STREET_BEFORE) || glued)
                        || j > k && self.is_street_word(t, all_lower)
                    {
                        return Some(j);
                    }
                }
                Shape::Punct if t.text == "." || t.text == "'" => {}
                _ => break,
            }
            j += 1;
        }
        None
    }

    /// The last token of a street whose street word is at `street`: the name words after a
    /// street word that comes first, a dot, and a number right after the name.
    fn street_end(
        tokens: &[Token<'_>],
        k: usize,
        street: usize,
        name_word: &dyn Fn(&Token<'_>) -> bool,
    ) -> usize {
        let mut last = street;
        // "rue de la Paix": the street word first, so take the name words after it.
        if street == k && tokens[street].has(flag::STREET_BEFORE) {
            let mut m = street + 1;
            while let Some(t) = tokens.get(m) {
                if m - street > 5 {
                    break;
                }
                if t.shape == Shape::Word && name_word(t) && !t.has(flag::NON_NAME)
                    || t.shape == Shape::Word && t.has(flag::PARTICLE)
                {
                    last = m;
                } else if !(t.text == "." && m == street + 1) {
                    break;
                }
                m += 1;
            }
        }
        if tokens.get(last + 1).is_some_and(|t| t.text == ".") {
            last += 1;
        }
        // "Jarzębinowa 5": a number right after the street name.
        if tokens
            .get(last + 1)
            .is_some_and(|t| t.shape == Shape::Number && t.text.len() <= 4)
        {
            last += 1;
        }
        last
    }

    /// Rule 2: "Hauptstraße 5", "Kent Street 12".
    fn street_then_number(&self, tokens: &[Token<'_>], i: usize, all_lower: bool) -> Option<Core> {
        let mut k = i;
        while tokens
            .get(k)
            .is_some_and(|t| t.shape == Shape::Word && t.capitalised())
            && k - i < 3
        {
            k += 1;
        }
        let street = k
            .checked_sub(1)
            .filter(|s| *s >= i && self.is_street_word(&tokens[*s], all_lower))?;
        let glued = tokens[street].has(flag::STREET_ENDING);
        let house_number = tokens
            .get(k)
            .is_some_and(|t| t.shape == Shape::Number && t.text.len() <= 4);
        let core_word = tokens[street].has(flag::CORE_STREET) && street > i;
        // "Kent Street 12:" or "Road 66-" is a heading or a range, not a house number.
        let trailing_punct = tokens
            .get(k + 1)
            .is_some_and(|t| t.text == ":" || t.text == "-");
        if house_number && (glued || core_word) && !trailing_punct {
            return Some((i, k, 0.7, "street+number"));
        }
        None
    }

    /// Extends a street address over what usually follows it: a unit ("Apt. 4", "Suite
    /// 200"), then up to four segments split by commas or line breaks that look like a city,
    /// a state or region code, a postcode or a country. Stops at a sentence end.
    fn extend_address(&self, tokens: &[Token<'_>], mut last: usize) -> usize {
        let mut segments = 0;
        let mut k = last + 1;
        while segments < 5 {
            // Skip separators.
            let mut m = k;
            while tokens
                .get(m)
                .is_some_and(|t| t.shape == Shape::Newline || t.text == "," || t.text == ">")
            {
                m += 1;
            }
            let Some(t) = tokens.get(m) else { break };
            // A unit.
            if t.has(flag::UNIT) {
                let mut n = m + 1;
                if tokens.get(n).is_some_and(|t| t.text == ".") {
                    n += 1;
                }
                if tokens.get(n).is_some_and(|t| t.shape == Shape::Number) {
                    last = n;
                    k = n + 1;
                    segments += 1;
                    continue;
                }
                break;
            }
            // A postcode.
            if t.shape == Shape::Number
                && (self.zip.is_match(t.text) || tokens.get(m + 1).is_some_and(|n| n.text == "-"))
            {
                let mut n = m;
                if tokens.get(n + 1).is_some_and(|x| x.text == "-")
                    && tokens.get(n + 2).is_some_and(|x| x.shape == Shape::Number)
                {
                    n += 2;
                }
                last = n;
                k = n + 1;
                segments += 1;
                continue;
            }
            // A city, region or country: one to four capitalised (or all-caps) words, possibly
            // followed by a postcode or "(Greek)".
            if t.shape == Shape::Word
                && (t.capitalised() || t.lower == "nan")
                && !self.is_non_name(t)
            {
                let mut n = m;
                let mut taken = 0;
                while let Some(w) = tokens.get(n) {
                    let ok = w.shape == Shape::Word
                        && (w.capitalised() || w.has(flag::PARTICLE) || w.lower == "nan")
                        || w.text == "'"
                        || w.text == "-"
                        || w.text == "."
                        || w.text == "("
                        || w.text == ")";
                    if !ok || taken >= 6 {
                        break;
                    }
                    if w.shape == Shape::Word {
                        taken += 1;
                    }
                    n += 1;
                }
                let mut end = n - 1;
                while end > m && tokens[end].shape != Shape::Word && tokens[end].text != ")" {
                    end -= 1;
                }
                // Only continue when what follows the words is a separator, a postcode, or the end.
                let next = tokens.get(end + 1);
                let separated = next.is_none_or(|x| {
                    x.shape == Shape::Newline
                        || x.text == ","
                        || x.shape == Shape::Number
                        || x.text == "."
                        || x.text == "?"
                        || x.text == "!"
                });
                let previous_was_separator = tokens
                    .get(m.wrapping_sub(1))
                    .is_some_and(|x| x.shape == Shape::Newline || x.text == ",");
                if separated && previous_was_separator {
                    last = end;
                    k = end + 1;
                    segments += 1;
                    continue;
                }
            }
            break;
        }
        last
    }
}
