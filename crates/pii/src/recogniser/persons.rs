//! Person names: after a title or a cue phrase, from the word lists, on a line of their own,
//! and in lists of names.

use super::lexicon::{flag, NAME_CUES};
use super::tokens::{Shape, Token};
use super::Recogniser;
use crate::kind::{EntityKind, Span};

impl Recogniser {
    /// The run of name words starting at `index`: capitalised words, initials ("K."), and
    /// particles between capitalised words; lower-case words only when `lower_ok`.
    pub(super) fn name_run(
        &self,
        tokens: &[Token<'_>],
        index: usize,
        lower_ok: bool,
        max_words: usize,
    ) -> Option<(usize, usize)> {
        let mut end_index = index;
        let mut words_taken = 0;
        let mut i = index;
        while i < tokens.len() && words_taken < max_words {
            let token = &tokens[i];
            if token.shape != Shape::Word
                || self.is_non_name(token)
                    && !(lower_ok && words_taken > 0 && !token.has(flag::NON_NAME))
            {
                break;
            }
            let initial = token.text.chars().count() == 1 && token.capitalised();
            if initial {
                // "K." inside a name.
                if tokens.get(i + 1).is_some_and(|t| t.text == ".") && i + 2 < tokens.len() {
                    i += 2;
                    continue;
                }
                // "Ruth R Montez": a middle initial without its full stop.
                if words_taken > 0 && tokens.get(i + 1).is_some_and(Token::capitalised) {
                    i += 1;
                    continue;
                }
                break;
            }
            // "van de Noort": particles count when a capitalised word follows them.
            let particle = token.has(flag::PARTICLE)
                && words_taken > 0
                && tokens[i + 1..]
                    .iter()
                    .find(|t| !t.has(flag::PARTICLE))
                    .is_some_and(Token::capitalised);
            if !(token.capitalised() || particle || lower_ok && self.name_like(token)) {
                break;
            }
            if !particle {
                words_taken += 1;
                end_index = i;
            }
            i += 1;
        }
        if words_taken == 0 {
            return None;
        }
        // A run followed by "Inc", "LLC", "University"... is an organisation.
        if tokens.get(end_index + 1).is_some_and(|t| t.has(flag::ORG)) {
            return None;
        }
        Some((index, end_index))
    }

    pub(super) fn persons(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        let first_new = out.len();
        let mut i = 0;
        while i < tokens.len() {
            if tokens[i].shape != Shape::Word {
                i += 1;
                continue;
            }
            // Each rule, in order, may take a name starting at `i` and say where to go on.
            i = self
                .titled_name(tokens, i, out)
                .or_else(|| self.cued_name(tokens, i, out))
                .or_else(|| self.listed_name(tokens, i, out))
                .or_else(|| self.lowercase_name(tokens, i, out))
                .unwrap_or(i + 1);
        }
        self.signature_lines(tokens, first_new, out);
        self.list_neighbours(tokens, out);
    }

    /// 1. A title: "Mr. John Smith", "dr. lee".
    fn titled_name(&self, tokens: &[Token<'_>], i: usize, out: &mut Vec<Span>) -> Option<usize> {
        let token = &tokens[i];
        if token.has(flag::TITLE) {
            let next = if tokens.get(i + 1).is_some_and(|t| t.text == ".") {
                i + 2
            } else {
                i + 1
            };
            let lower_ok = !token.capitalised();
            if let Some((first, last)) = tokens
                .get(next)
                .and_then(|_| self.name_run(tokens, next, lower_ok, 3))
            {
                out.push(Span::new(
                    tokens[first].start,
                    tokens[last].end,
                    EntityKind::Person,
                    0.9,
                    "title+name",
                ));
                return Some(last + 1);
            }
        }
        None
    }

    /// 2. A cue phrase: "my name is Ana Lee", "directed by Alice Hasti".
    fn cued_name(&self, tokens: &[Token<'_>], i: usize, out: &mut Vec<Span>) -> Option<usize> {
        let cue_possible = i > 0 && tokens[i - 1].has(flag::NAME_CUE_END);
        if let Some(lower_ok) = cue_possible
            .then_some(NAME_CUES)
            .into_iter()
            .flatten()
            .find(|(cue, _)| Self::cue_before(tokens, i, cue))
            .map(|(_, lower_ok)| *lower_ok)
        {
            let weak_cue = !lower_ok;
            if let Some((first, last)) = self.name_run(tokens, i, lower_ok, 3) {
                let known = (first..=last)
                    .any(|k| tokens[k].has(flag::FIRST) || self.surname_like(&tokens[k]));
                let strong = lower_ok || known;
                let place = self.place_at(tokens, first).is_some();
                if strong && !place
                    || weak_cue && last > first && !place && self.cue_is_personal(tokens, i)
                {
                    let confidence = if lower_ok {
                        0.85
                    } else if known {
                        0.8
                    } else {
                        0.6
                    };
                    out.push(Span::new(
                        tokens[first].start,
                        tokens[last].end,
                        EntityKind::Person,
                        confidence,
                        "cue+name",
                    ));
                    return Some(last + 1);
                }
            }
        }
        None
    }

    /// 3. Word lists: a known given name or family name in a run of capitalised words.
    fn listed_name(&self, tokens: &[Token<'_>], i: usize, out: &mut Vec<Span>) -> Option<usize> {
        let token = &tokens[i];
        if token.capitalised() && !self.is_non_name(token) {
            if let Some((first, last)) = self.name_run(tokens, i, false, 3) {
                let run = &tokens[first..=last];
                let given = run[0].has(flag::FIRST);
                let ambiguous = run[0].has(flag::AMBIGUOUS);
                let family = run.iter().skip(1).any(|t| self.surname_like(t))
                    || run.len() == 1 && self.surname_like(&run[0]);
                let all_caps = run
                    .iter()
                    .all(|t| t.text.chars().all(|c| !c.is_lowercase()));
                let place = self.place_at(tokens, first).is_some_and(|end| end >= last);
                let confidence = match (run.len(), given && !ambiguous, family) {
                    _ if place || all_caps && run.len() == 1 => None,
                    (n, true, _) if n >= 2 => Some(0.85),
                    (n, false, true) if n >= 2 && given => Some(0.75),
                    (n, false, true) if n >= 2 => Some(0.7),
                    (1, true, _) => Some(0.7),
                    (1, false, true)
                        if !Self::sentence_start(tokens, first) && run[0].has(flag::SURNAME) =>
                    {
                        Some(0.6)
                    }
                    (1, false, true) if !Self::sentence_start(tokens, first) => Some(0.5),
                    _ => None,
                };
                if let Some(confidence) = confidence {
                    out.push(Span::new(
                        run[0].start,
                        run[run.len() - 1].end,
                        EntityKind::Person,
                        confidence,
                        "gazetteer",
                    ));
                    return Some(last + 1);
                }
            }
        }
        None
    }

    /// 4. Lower-case text: a known, unambiguous given name followed by another word.
    fn lowercase_name(&self, tokens: &[Token<'_>], i: usize, out: &mut Vec<Span>) -> Option<usize> {
        let token = &tokens[i];
        if !token.capitalised()
            && token.has(flag::FIRST)
            && !token.has(flag::AMBIGUOUS)
            && !token.has(flag::NON_NAME)
            && !self.places.contains_key(token.lower.as_ref())
        {
            let next = tokens
                .get(i + 1)
                .filter(|t| t.shape == Shape::Word && !t.capitalised() && self.name_like(t));
            let end = match next {
                Some(next)
                    if self.surname_like(next)
                        || !next.has(flag::FIRST) && next.lower.chars().count() >= 3 =>
                {
                    next.end
                }
                _ => token.end,
            };
            let confidence = if end > token.end { 0.55 } else { 0.5 };
            out.push(Span::new(
                token.start,
                end,
                EntityKind::Person,
                confidence,
                "lowercase_name",
            ));
            return Some(i + if end > token.end { 2 } else { 1 });
        }
        None
    }

    /// A line holding only two or three capitalised words ("Maika van de Noort" above an
    /// address or a job title) is a name, weakly: headings look the same.
    fn signature_lines(&self, tokens: &[Token<'_>], first_new: usize, out: &mut Vec<Span>) {
        let mut line_start = 0;
        while line_start < tokens.len() {
            let mut k = line_start;
            while tokens.get(k).is_some_and(|t| {
                t.shape == Shape::Punct && matches!(t.text, ">" | "?" | "*" | "-" | "•" | "|")
            }) {
                k += 1;
            }
            let line_end = (k..tokens.len())
                .find(|&m| tokens[m].shape == Shape::Newline)
                .unwrap_or(tokens.len());
            if let Some((first, last)) = self.name_run(tokens, k, false, 3) {
                let words = &tokens[first..=last];
                let covered = out[first_new..]
                    .iter()
                    .any(|s| s.start < words[words.len() - 1].end && words[0].start < s.end);
                let caps = words
                    .iter()
                    .all(|t| t.text.chars().all(|c| !c.is_lowercase()));
                let place = self.place_at(tokens, first).is_some();
                if last + 1 == line_end && last > first && !covered && !caps && !place {
                    let known = words
                        .iter()
                        .any(|t| t.has(flag::FIRST) || self.surname_like(t));
                    let confidence = if known { 0.75 } else { 0.55 };
                    out.push(Span::new(
                        words[0].start,
                        words[words.len() - 1].end,
                        EntityKind::Person,
                        confidence,
                        "name_line",
                    ));
                }
            }
            line_start = line_end + 1;
        }
    }

    /// Names come in lists: "Urías and Mclaughlin", "Nadbath, Smith and Stanton". A lone
    /// capitalised word joined by "and", "or", "&" or a comma to a name already found is a
    /// name too. Repeats until nothing changes (bounded).
    fn list_neighbours(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        let joiner = |t: &Token<'_>| {
            matches!(
                t.lower.as_ref(),
                "and" | "or" | "&" | "," | "und" | "et" | "y" | "e"
            )
        };
        // Tokens already inside any finding, so a neighbour is never taken twice.
        let mut covered = vec![false; tokens.len()];
        let token_at = |byte: usize| tokens.binary_search_by_key(&byte, |t| t.start).ok();
        let token_ending = |byte: usize| tokens.binary_search_by_key(&byte, |t| t.end).ok();
        let mut frontier: Vec<(usize, usize)> = Vec::new();
        for span in out.iter() {
            if let (Some(first), Some(last)) = (token_at(span.start), token_ending(span.end)) {
                covered[first..=last].iter_mut().for_each(|c| *c = true);
                if span.kind == EntityKind::Person {
                    frontier.push((first, last));
                }
            }
        }
        let candidate = |index: usize, covered: &[bool]| {
            let t = &tokens[index];
            t.capitalised()
                && !covered[index]
                && !self.is_non_name(t)
                && !t.text.chars().all(|c| !c.is_lowercase())
                && self.place_at(tokens, index).is_none()
        };
        for _round in 0..8 {
            let mut next = Vec::new();
            for (first, last) in frontier {
                if tokens.get(last + 1).is_some_and(joiner)
                    && last + 2 < tokens.len()
                    && candidate(last + 2, &covered)
                {
                    covered[last + 2] = true;
                    next.push((last + 2, last + 2));
                }
                if first >= 2 && joiner(&tokens[first - 1]) && candidate(first - 2, &covered) {
                    covered[first - 2] = true;
                    next.push((first - 2, first - 2));
                }
            }
            for (index, _) in &next {
                let t = &tokens[*index];
                out.push(Span::new(
                    t.start,
                    t.end,
                    EntityKind::Person,
                    0.55,
                    "name_list",
                ));
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
    }

    /// Weak cues ("with", "and", "to") only count when the name is two capitalised words that
    /// do not start a sentence; stronger cues stand on their own.
    fn cue_is_personal(&self, tokens: &[Token<'_>], index: usize) -> bool {
        !Self::sentence_start(tokens, index)
            && tokens
                .get(index + 1)
                .is_some_and(|t| t.capitalised() && !self.is_non_name(t))
            && tokens.get(index).is_some_and(|t| !self.is_non_name(t))
    }
}
