//! Text as tokens: words, numbers, line breaks and punctuation, with their places.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Shape {
    Word,
    Number,
    Punct,
    Newline,
}

#[derive(Debug, Clone)]
pub(super) struct Token<'t> {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: &'t str,
    pub(super) lower: Cow<'t, str>,
    pub(super) flags: u16,
    pub(super) shape: Shape,
}

impl<'t> Token<'t> {
    pub(super) fn new(text: &'t str, start: usize, shape: Shape) -> Token<'t> {
        Token {
            start,
            end: start + text.len(),
            text,
            // Most tokens are already lower case: borrow those instead of allocating.
            lower: if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(text.to_lowercase())
            },
            flags: 0,
            shape,
        }
    }

    pub(super) fn capitalised(&self) -> bool {
        self.shape == Shape::Word && self.text.chars().next().is_some_and(char::is_uppercase)
    }

    pub(super) fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub(super) fn is(&self, word: &str) -> bool {
        self.lower == word
    }
}

/// Splits text into words (letters and marks, with inner `'`, `’` or `-`), numbers (ASCII
/// digits and an optional letter: "221B"), line breaks and single punctuation characters.
/// Hand-written because it runs over every byte of every prompt and a regex with Unicode
/// classes was the scanner's slowest part.
pub(super) fn tokenize(text: &str) -> Vec<Token<'_>> {
    let letter = |c: char| c.is_alphabetic() || is_mark(c);
    let mut tokens = Vec::with_capacity(text.len() / 5);
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let shape = if letter(c) {
            let mut end = start + c.len_utf8();
            loop {
                match chars.peek().copied() {
                    Some((at, next)) if letter(next) => {
                        end = at + next.len_utf8();
                        chars.next();
                    }
                    Some((at, joiner @ ('\'' | '’' | '-'))) => {
                        let after = at + joiner.len_utf8();
                        // A possessive "'s" is not part of the name: "Emre's address".
                        let rest = &text[after..];
                        let possessive = joiner != '-'
                            && rest.starts_with('s')
                            && !rest[1..].chars().next().is_some_and(letter);
                        if !possessive && rest.chars().next().is_some_and(letter) {
                            end = after;
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            tokens.push(Token::new(&text[start..end], start, Shape::Word));
            continue;
        } else if c.is_ascii_digit() {
            let mut end = start + 1;
            while let Some((at, next)) = chars.peek().copied().filter(|(_, n)| n.is_ascii_digit()) {
                end = at + next.len_utf8();
                chars.next();
            }
            if let Some((at, next)) = chars
                .peek()
                .copied()
                .filter(|(_, n)| n.is_ascii_alphabetic())
            {
                let glued_word = text[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphabetic);
                if !glued_word {
                    end = at + next.len_utf8();
                    chars.next();
                }
            }
            tokens.push(Token::new(&text[start..end], start, Shape::Number));
            continue;
        } else if c == '\n' {
            Shape::Newline
        } else if c.is_whitespace() {
            continue;
        } else {
            Shape::Punct
        };
        tokens.push(Token::new(&text[start..start + c.len_utf8()], start, shape));
    }
    tokens
}

/// Combining marks (accents typed as separate code points) belong to the word they follow.
pub(super) fn is_mark(c: char) -> bool {
    matches!(u32::from(c), 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}
