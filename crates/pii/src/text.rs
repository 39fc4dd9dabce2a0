//! Small text helpers shared by the detectors. Every offset handed out is a char boundary.

/// The largest char boundary at or below `index`.
pub(crate) fn floor_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// The smallest char boundary at or above `index`.
pub(crate) fn ceil_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// Up to `window` bytes of text just before `start`, lower-cased.
pub(crate) fn before(text: &str, start: usize, window: usize) -> String {
    let from = ceil_boundary(text, start.saturating_sub(window));
    let start = floor_boundary(text, start);
    text.get(from..start).unwrap_or("").to_lowercase()
}

/// Up to `window` bytes of text just after `end`, lower-cased.
pub(crate) fn after(text: &str, end: usize, window: usize) -> String {
    let end = ceil_boundary(text, end);
    let to = floor_boundary(text, end.saturating_add(window));
    text.get(end..to).unwrap_or("").to_lowercase()
}

/// Whether any of `words` appears in `haystack` (already lower-cased) as a whole word.
pub(crate) fn contains_word(haystack: &str, words: &[&str]) -> bool {
    words.iter().any(|word| {
        haystack.match_indices(word).any(|(at, found)| {
            let left_ok = haystack[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            let right_ok = haystack[at + found.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            left_ok && right_ok
        })
    })
}

/// The char just before `index`, if any.
pub(crate) fn char_before(text: &str, index: usize) -> Option<char> {
    text.get(..floor_boundary(text, index))?.chars().next_back()
}

/// The char at `index`, if any.
pub(crate) fn char_at(text: &str, index: usize) -> Option<char> {
    text.get(ceil_boundary(text, index)..)?.chars().next()
}

/// True when the match `text[start..end]` is not glued to letters, digits or `_` on either
/// side, so `a1.2.3.4b` or `xAKIA...` are not taken as findings.
pub(crate) fn standalone(text: &str, start: usize, end: usize) -> bool {
    let glued = |c: char| c.is_alphanumeric() || c == '_';
    !char_before(text, start).is_some_and(glued) && !char_at(text, end).is_some_and(glued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_respect_char_boundaries() {
        let text = "né le 3 mars é";
        assert_eq!(before(text, 3, 2), "é");
        assert_eq!(after(text, 15, 1), "");
        assert_eq!(after(text, 12, 1), "s");
        assert!(contains_word("she was born on", &["born"]));
        assert!(!contains_word("newborn", &["born"]));
    }

    #[test]
    fn standalone_checks_neighbours() {
        assert!(standalone("ip 1.2.3.4.", 3, 10));
        assert!(!standalone("x1.2.3.4", 1, 8));
    }
}
