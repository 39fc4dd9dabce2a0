//! The context model's features of one candidate: hashed (see [`super::context`]) from the
//! proposing rule, the candidate's shape and word-list flags (never its words), the words
//! around it, the layout, and what the whole text says ([`TextContext`]).

use std::borrow::Cow;

use super::context::{hash, TextContext};
use super::tokens::{Shape, Token};
use super::Recogniser;
use crate::kind::{EntityKind, Span};

/// Structured PII this close (bytes) to a candidate counts as "near".
const NEAR_BYTES: usize = 80;

/// A feature for this kind and the same feature for every kind (the kinds share evidence:
/// a phone number nearby is personal context for a name and an address alike).
fn both(out: &mut Vec<u32>, kind: &[u8], name: &[u8], value: &[u8]) {
    out.push(hash(&[kind, name, value]));
    out.push(hash(&[b"*", name, value]));
}

fn kind_code(kind: EntityKind) -> &'static [u8] {
    match kind {
        EntityKind::Person => b"P",
        EntityKind::StreetAddress => b"A",
        EntityKind::Location => b"L",
        _ => b"O",
    }
}

/// A context token as a feature value: words lower case, numbers by digit count, line breaks
/// and the text's edges by name.
fn norm<'a>(tokens: &'a [Token<'_>], index: Option<usize>) -> Cow<'a, [u8]> {
    let Some(token) = index.and_then(|i| tokens.get(i)) else {
        return Cow::Borrowed(b"<edge>");
    };
    match token.shape {
        Shape::Word => Cow::Borrowed(token.lower.as_bytes()),
        Shape::Punct => Cow::Borrowed(token.text.as_bytes()),
        Shape::Newline => Cow::Borrowed(b"<nl>"),
        Shape::Number => {
            const DIGITS: [&[u8]; 7] = [
                b"<d0>", b"<d1>", b"<d2>", b"<d3>", b"<d4>", b"<d5>", b"<d6>",
            ];
            let digits = token.text.bytes().filter(u8::is_ascii_digit).count().min(6);
            Cow::Borrowed(DIGITS[digits])
        }
    }
}

fn shape_code(token: &Token<'_>) -> &'static [u8] {
    match token.shape {
        Shape::Number => b"9",
        Shape::Newline => b"n",
        Shape::Punct => b".",
        Shape::Word => {
            if token.text.chars().all(|c| !c.is_lowercase()) {
                if token.text.chars().count() == 1 {
                    b"I"
                } else {
                    b"X"
                }
            } else if token.capitalised() {
                b"C"
            } else {
                b"x"
            }
        }
    }
}

impl Recogniser {
    /// The hashed features of the candidate `span` (tokens `first..=last`).
    pub(super) fn features(
        &self,
        tokens: &[Token<'_>],
        first: usize,
        last: usize,
        span: &Span,
        context: &TextContext,
        out: &mut Vec<u32>,
    ) {
        let (shape, line) = self.own_features(tokens, first, last, span, out);
        Self::surrounding_features(tokens, first, last, span, &shape, line, out);
        text_features(span, context, out);
    }

    /// What the candidate itself is: rule, confidence, size, shape, word-list flags, ending,
    /// position. Returns its shape code and whether a line break (or the text's edge) comes
    /// before and after it.
    fn own_features(
        &self,
        tokens: &[Token<'_>],
        first: usize,
        last: usize,
        span: &Span,
        out: &mut Vec<u32>,
    ) -> (Vec<u8>, (bool, bool)) {
        let k = kind_code(span.kind);
        both(out, k, b"bias", b"");
        both(out, k, b"rule", span.rule.as_bytes());
        let bucket = [b'0' + (span.confidence * 10.0).clamp(0.0, 9.0) as u8];
        both(out, k, b"conf", &bucket);
        let span_tokens = &tokens[first..=last];
        let words = span_tokens
            .iter()
            .filter(|t| t.shape == Shape::Word)
            .count();
        both(out, k, b"words", &[b'0' + words.min(6) as u8]);
        let numbers = span_tokens
            .iter()
            .filter(|t| t.shape == Shape::Number)
            .count();
        both(out, k, b"numbers", &[b'0' + numbers.min(4) as u8]);
        let mut shape = Vec::with_capacity(6);
        for token in span_tokens.iter().take(6) {
            shape.extend_from_slice(shape_code(token));
        }
        both(out, k, b"shape", &shape);
        for (position, token) in span_tokens.iter().enumerate() {
            let place: &[u8] = if position == 0 {
                b"first"
            } else if position + 1 == span_tokens.len() {
                b"last"
            } else {
                b"inner"
            };
            for bit in 0..16u8 {
                if token.flags & (1 << bit) != 0 {
                    both(out, k, b"flag", &[bit]);
                    both(out, k, place, &[bit]);
                }
            }
            if token.shape == Shape::Word && self.place_at(tokens, first + position).is_some() {
                both(out, k, b"place", place);
            }
        }
        if let Some(token) = span_tokens.iter().rev().find(|t| t.shape == Shape::Word) {
            let lower = token.lower.as_ref();
            if let Some((at, _)) = lower.char_indices().rev().nth(2) {
                if lower.chars().count() > 4 {
                    both(out, k, b"suffix", &lower.as_bytes()[at..]);
                }
            }
        }
        if Self::sentence_start(tokens, first) {
            both(out, k, b"sentence_start", b"");
        }
        let line_before = first == 0 || tokens[first - 1].shape == Shape::Newline;
        let line_after = tokens
            .get(last + 1)
            .is_none_or(|t| t.shape == Shape::Newline);
        both(
            out,
            k,
            b"line",
            match (line_before, line_after) {
                (true, true) => b"alone",
                (true, false) => b"starts",
                (false, true) => b"ends",
                (false, false) => b"inside",
            },
        );
        (shape, (line_before, line_after))
    }

    /// The words around it: one and two either side exactly, three or four more as a bag,
    /// and conjunctions the linear model cannot make itself.
    fn surrounding_features(
        tokens: &[Token<'_>],
        first: usize,
        last: usize,
        span: &Span,
        shape: &[u8],
        (line_before, line_after): (bool, bool),
        out: &mut Vec<u32>,
    ) {
        let k = kind_code(span.kind);
        let before = |d: usize| first.checked_sub(d);
        let after = |d: usize| Some(last + d);
        let l1 = norm(tokens, before(1));
        let l2 = norm(tokens, before(2));
        let r1 = norm(tokens, after(1));
        let r2 = norm(tokens, after(2));
        both(out, k, b"l1", &l1);
        both(out, k, b"l2", &l2);
        out.push(hash(&[k, b"l21", &l2, &l1]));
        both(out, k, b"r1", &r1);
        out.push(hash(&[k, b"l1r1", &l1, &r1]));
        out.push(hash(&[k, b"l1shape", &l1, shape]));
        out.push(hash(&[k, b"r1shape", &r1, shape]));
        let first_flags = tokens[first].flags.to_le_bytes();
        out.push(hash(&[k, b"l1flags", &l1, &first_flags]));
        out.push(hash(&[k, b"rule_l1", span.rule.as_bytes(), &l1]));
        out.push(hash(&[
            k,
            b"rule_line",
            span.rule.as_bytes(),
            &[u8::from(line_before), u8::from(line_after)],
        ]));
        both(out, k, b"r2", &r2);
        out.push(hash(&[k, b"r12", &r1, &r2]));
        for d in 3..=6 {
            if before(d).is_some() {
                out.push(hash(&[k, b"lbag", &norm(tokens, before(d))]));
            }
        }
        for d in 3..=5 {
            if last + d < tokens.len() {
                out.push(hash(&[k, b"rbag", &norm(tokens, after(d))]));
            }
        }
    }
}

/// What the whole text says around the candidate: structured PII (anywhere, and within
/// [`NEAR_BYTES`]), first- and second-person words, capitalisation, line breaks, size.
fn text_features(span: &Span, context: &TextContext, out: &mut Vec<u32>) {
    let k = kind_code(span.kind);
    if !context.structured.is_empty() {
        both(out, k, b"structured", b"any");
        let near = context
            .structured
            .iter()
            .any(|(s, e)| span.start.saturating_sub(NEAR_BYTES) < *e && *s < span.end + NEAR_BYTES);
        if near {
            both(out, k, b"structured", b"near");
        }
    }
    if context.first_person {
        both(out, k, b"first_person", b"");
    }
    if context.second_person {
        both(out, k, b"second_person", b"");
    }
    both(out, k, b"capitalised", &[b'0' + context.capitalised_tenths]);
    if context.newline {
        both(out, k, b"newline", b"");
    }
    both(out, k, b"size", &[b'0' + context.size.min(12)]);
}
