//! Places from the word list, after a location cue or unambiguous on their own.

use super::lexicon::{flag, LOCATION_CUES};
use super::tokens::{Shape, Token};
use super::Recogniser;
use crate::kind::{EntityKind, Span};

impl Recogniser {
    /// The last token index of a known place starting at `index`, if one does.
    pub(super) fn place_at(&self, tokens: &[Token<'_>], index: usize) -> Option<usize> {
        let first = tokens.get(index)?;
        if !first.has(flag::PLACE_START) {
            return None;
        }
        let entries = self.places.get(first.lower.as_ref())?;
        entries.iter().find_map(|(parts, _)| {
            let mut k = index;
            for part in parts {
                while tokens
                    .get(k)
                    .is_some_and(|t| t.shape == Shape::Punct && t.text == ".")
                {
                    k += 1;
                }
                if tokens.get(k).is_none_or(|t| &t.lower != part) {
                    return None;
                }
                k += 1;
            }
            Some(k - 1)
        })
    }

    fn place_is_ambiguous(&self, tokens: &[Token<'_>], index: usize, last: usize) -> bool {
        self.places
            .get(tokens[index].lower.as_ref())
            .is_some_and(|entries| {
                entries
                    .iter()
                    .any(|(parts, ambiguous)| *ambiguous && parts.len() == last - index + 1)
            })
    }

    pub(super) fn locations(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            if token.shape != Shape::Word {
                i += 1;
                continue;
            }
            let cue = i > 0 && LOCATION_CUES.contains(&tokens[i - 1].lower.as_ref());
            if let Some(last) = self.place_at(tokens, i) {
                let shaped = token.capitalised() || cue;
                let ambiguous = self.place_is_ambiguous(tokens, i, last);
                if shaped && (!ambiguous || cue && token.capitalised()) {
                    let confidence = if token.capitalised() { 0.8 } else { 0.6 };
                    out.push(Span::new(
                        token.start,
                        tokens[last].end,
                        EntityKind::Location,
                        confidence,
                        "place_list",
                    ));
                    i = last + 1;
                    continue;
                }
            }
            // "in Springfield", "from Tiszabög": an unknown capitalised run after a place cue.
            if cue
                && token.capitalised()
                && !self.is_non_name(token)
                && !token.has(flag::FIRST)
                && !Self::sentence_start(tokens, i - 1)
            {
                if let Some((first, last)) = self.name_run(tokens, i, false, 3) {
                    let multi_cap = tokens[first..=last]
                        .iter()
                        .all(|t| t.text.chars().all(|c| !c.is_lowercase()));
                    if !multi_cap {
                        out.push(Span::new(
                            tokens[first].start,
                            tokens[last].end,
                            EntityKind::Location,
                            0.5,
                            "cue+capitalised",
                        ));
                        i = last + 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
    }
}
