//! Sentence splitting for answers and contexts.
//!
//! [`segments`] cuts a text into consecutive byte ranges that together cover it exactly (no
//! byte lost, none counted twice); [`sentences`] trims them and drops the empty ones. Rules,
//! in the order they are checked:
//! 1. A fenced code block (a line starting with three backticks, up to the closing fence or
//!    the end) is one segment of kind [`Kind::Code`]; nothing inside it is split.
//! 2. A blank line ends a segment. So does a line break before a list item (`-`, `*`, `•`,
//!    `1.`, `2)`), a heading (`#`) or a table row (`|`), a line break after a heading or a
//!    table row, and a line break after a line that ends in `.`, `!`, `?` or `:`. Other line breaks are soft wrapping inside a sentence.
//! 3. Inside a line, `.`, `!` or `?` (with any closing quotes or brackets after it) ends a
//!    sentence when whitespace follows and the next word does not start in lower case.
//!    A `.` does not end one after a known abbreviation (`Dr.`, `e.g.`, `U.S.`), a single
//!    capital initial (`J. Smith`), or a list number at the start of a line (`1. First`);
//!    a `.` between digits (`3.14`) or inside a token (`a.b()`) is never followed by
//!    whitespace, so it never ends one.
//!
//! Pure and total: any string, however malformed, gives a covering that respects UTF-8
//! boundaries (a property test checks it).

use std::ops::Range;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prose: a sentence, a list item, a heading or a table row.
    Text,
    /// A fenced code block; not scored against the context.
    Code,
}

/// One piece of a text: its byte range and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub range: Range<usize>,
    pub kind: Kind,
}

/// Words after which a period does not end a sentence (compared lower-cased, without the
/// period). Single letters are handled apart (initials).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "eg",
    "ie", "cf", "al", "approx", "inc", "ltd", "co", "corp", "no", "nos", "vol", "fig", "figs", "p",
    "pp", "ed", "eds", "rev", "gen", "gov", "sen", "rep", "col", "lt", "sgt", "capt", "u.s", "u.k",
    "u.n", "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "est", "dept", "univ", "assn", "bros", "ca", "op",
];

/// Consecutive byte ranges covering `text` exactly, in order.
pub fn segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut line_start = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        // 1. A code fence at the start of a line.
        if i == line_start && starts_fence(&text[i..]) {
            if start < i {
                out.push(Segment {
                    range: start..i,
                    kind: Kind::Text,
                });
            }
            let end = fence_end(text, i);
            out.push(Segment {
                range: i..end,
                kind: Kind::Code,
            });
            start = end;
            i = end;
            line_start = end;
            continue;
        }
        let b = bytes[i];
        if b == b'\n' {
            let next = i + 1;
            // 2. Hard breaks.
            if hard_break(text, line_start, i)
                && start < next
                && !text[start..next].trim().is_empty()
            {
                out.push(Segment {
                    range: start..next,
                    kind: Kind::Text,
                });
                start = next;
            }
            i = next;
            line_start = next;
            continue;
        }
        // 3. Terminal punctuation inside a line.
        if matches!(b, b'.' | b'!' | b'?') {
            let (next, ends) = after_terminal(text, line_start, i);
            if ends {
                out.push(Segment {
                    range: start..next,
                    kind: Kind::Text,
                });
                start = next;
            }
            i = next;
            continue;
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    if start < text.len() {
        match out.last_mut() {
            // Trailing whitespace belongs to the last segment.
            Some(last) if text[start..].trim().is_empty() => last.range.end = text.len(),
            _ => out.push(Segment {
                range: start..text.len(),
                kind: Kind::Text,
            }),
        }
    }
    out
}

/// Rule 2: whether the line break at byte `i` (its line starting at `line_start`) ends a
/// segment.
fn hard_break(text: &str, line_start: usize, i: usize) -> bool {
    let line = &text[line_start..i];
    let rest = &text[i + 1..];
    let blank_follows = rest.split('\n').next().is_some_and(|l| l.trim().is_empty());
    let ends_sentence = line
        .trim_end()
        .ends_with(['.', '!', '?', ':', '"', '\u{201d}']);
    line.trim().is_empty()
        || blank_follows
        || ends_sentence
        || starts_block(rest)
        || line.trim_start().starts_with(['#', '|'])
        || starts_fence(rest.trim_start_matches([' ', '\t']))
}

/// Rule 3, at the `.`, `!` or `?` at byte `i`: where the scan goes on, and whether a
/// sentence ends there (then the position is the next sentence's start, after the
/// whitespace).
fn after_terminal(text: &str, line_start: usize, i: usize) -> (usize, bool) {
    let bytes = text.as_bytes();
    let mut j = i + 1;
    // Runs of terminal marks ("?!", "...") and closing quotes or brackets.
    while j < bytes.len() {
        let rest = &text[j..];
        let Some(c) = rest.chars().next() else { break };
        if matches!(
            c,
            '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '\u{201d}' | '\u{2019}'
        ) {
            j += c.len_utf8();
        } else {
            break;
        }
    }
    let after = &text[j..];
    let ws = after.chars().next().is_some_and(|c| c == ' ' || c == '\t');
    if !ws || (bytes[i] == b'.' && !ends_sentence_at(text, line_start, i)) {
        return (j, false);
    }
    let next_word = after.trim_start_matches([' ', '\t']);
    let lower_next = next_word.chars().next().is_some_and(char::is_lowercase);
    if !lower_next && !next_word.is_empty() && !next_word.starts_with('\n') {
        (j + after.len() - next_word.len(), true)
    } else {
        (j, false)
    }
}

/// Trimmed, non-empty sentences of `text` as byte ranges, with their kind.
pub fn sentences(text: &str) -> Vec<Segment> {
    segments(text)
        .into_iter()
        .filter_map(|s| {
            let piece = &text[s.range.clone()];
            let lead = piece.len() - piece.trim_start().len();
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                return None;
            }
            let begin = s.range.start + lead;
            Some(Segment {
                range: begin..begin + trimmed.len(),
                kind: s.kind,
            })
        })
        .collect()
}

/// Does the line start a list item, a heading or a table row?
fn starts_block(rest: &str) -> bool {
    let t = rest.trim_start_matches([' ', '\t']);
    if t.starts_with("- ")
        || t.starts_with("* ")
        || t.starts_with("• ")
        || t.starts_with('#')
        || t.starts_with('|')
    {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && digits <= 3
        && matches!(t.as_bytes().get(digits), Some(b'.' | b')'))
        && matches!(t.as_bytes().get(digits + 1), Some(b' ' | b'\t'))
}

fn starts_fence(s: &str) -> bool {
    s.starts_with("```") || s.starts_with("~~~")
}

/// The byte just after the fence that opens at `open`: past the closing fence's line, or the
/// end of the text.
fn fence_end(text: &str, open: usize) -> usize {
    let mark = &text[open..open + 3];
    let after_open = text[open..].find('\n').map_or(text.len(), |n| open + n + 1);
    let mut pos = after_open;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |n| pos + n + 1);
        if text[pos..line_end].trim_start().starts_with(mark) {
            return line_end;
        }
        pos = line_end;
    }
    text.len()
}

/// Does the `.` at `dot` end a sentence, judged by the word before it?
fn ends_sentence_at(text: &str, line_start: usize, dot: usize) -> bool {
    let before = &text[line_start..dot];
    let word_start = before
        .rfind(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .map_or(0, |n| {
            n + before[n..].chars().next().map_or(1, char::len_utf8)
        });
    let word = &before[word_start..];
    if word.is_empty() {
        // " . " as in tokenised text: a sentence end.
        return true;
    }
    // A list number at the start of the line: "1. First".
    if before[..word_start].trim().is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut chars = word.chars();
    // A single capital initial: "J. Smith".
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_uppercase() {
            return false;
        }
    }
    let lower = word.to_lowercase();
    let lower = lower.trim_start_matches(['(', '[', '"', '\'']);
    !ABBREVIATIONS.contains(&lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(text: &str) -> Vec<&str> {
        sentences(text)
            .into_iter()
            .map(|s| &text[s.range])
            .collect()
    }

    #[test]
    fn plain_sentences() {
        assert_eq!(
            split("The cat sat. The dog ran! Did it? Yes."),
            ["The cat sat.", "The dog ran!", "Did it?", "Yes."]
        );
    }

    #[test]
    fn abbreviations_initials_and_decimals() {
        assert_eq!(
            split("Dr. Smith paid $3.50 to J. R. Tolkien in the U.S. yesterday. It was 2.5 times more."),
            [
                "Dr. Smith paid $3.50 to J. R. Tolkien in the U.S. yesterday.",
                "It was 2.5 times more."
            ]
        );
        assert_eq!(
            split("Use a tool, e.g. Cargo. Then stop."),
            ["Use a tool, e.g. Cargo.", "Then stop."]
        );
    }

    #[test]
    fn lowercase_after_period_is_not_a_break() {
        assert_eq!(
            split("It grew approx. ten times."),
            ["It grew approx. ten times."]
        );
        assert_eq!(
            split("See fig. three and more."),
            ["See fig. three and more."]
        );
    }

    #[test]
    fn lists_and_headings() {
        let text = "Key points:\n1. First point is here\n2. Second point\n- a dash item\n# Title\nMore text.";
        assert_eq!(
            split(text),
            [
                "Key points:",
                "1. First point is here",
                "2. Second point",
                "- a dash item",
                "# Title",
                "More text."
            ]
        );
        // "1. First" alone on a line is not split after the number.
        assert_eq!(split("1. First. Second."), ["1. First.", "Second."]);
    }

    #[test]
    fn soft_wrapped_lines_join() {
        assert_eq!(
            split("This sentence is wrapped\nover two lines. Next one."),
            ["This sentence is wrapped\nover two lines.", "Next one."]
        );
    }

    #[test]
    fn code_blocks_are_one_segment() {
        let text = "Run this:\n```rust\nlet x = a.b(); x.c();\nfn f() {}\n```\nDone. Bye.";
        let segs = sentences(text);
        let kinds: Vec<Kind> = segs.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [Kind::Text, Kind::Code, Kind::Text, Kind::Text]);
        assert!(text[segs[1].range.clone()].contains("x.c();"));
        // Inline code and method calls do not split.
        assert_eq!(
            split("Call `foo.bar()` now. Ok."),
            ["Call `foo.bar()` now.", "Ok."]
        );
    }

    #[test]
    fn quotes_and_tokenised_text() {
        assert_eq!(
            split("He said \"Stop.\" Then he left."),
            ["He said \"Stop.\"", "Then he left."]
        );
        assert_eq!(
            split("Poseidon (film) . Poseidon grossed $ 181,674,817 ."),
            ["Poseidon (film) .", "Poseidon grossed $ 181,674,817 ."]
        );
    }

    proptest! {
        #[test]
        fn covers_the_text(text in "(?s)[a-zA-Z0-9 .!?\\n\"'()`~#|*•é1-]{0,200}") {
            let segs = segments(&text);
            let mut pos = 0;
            for s in &segs {
                prop_assert_eq!(s.range.start, pos);
                prop_assert!(s.range.end > s.range.start);
                prop_assert!(text.is_char_boundary(s.range.end));
                pos = s.range.end;
            }
            prop_assert_eq!(pos, text.len());
            for s in sentences(&text) {
                prop_assert!(!text[s.range].trim().is_empty());
            }
        }

        #[test]
        fn never_panics_on_any_string(text in any::<String>()) {
            let segs = segments(&text);
            let total: usize = segs.iter().map(|s| s.range.len()).sum();
            prop_assert_eq!(total, text.len());
        }
    }
}
