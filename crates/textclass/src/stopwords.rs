//! English word lists for telling content words from the rest: the function words
//! (articles, auxiliaries, pronouns, the commonest conjunctions and prepositions) and the
//! question words. They are shared so that every content-word filter in the project starts
//! from the same list; a filter that must drop more (the grounding check's connectives and
//! negations, the cache verifier's request filler) keeps its additions beside its use.

/// Words that carry neither a topic nor a claim of their own.
pub const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "then", "than", "so", "as", "of", "to", "in", "on",
    "at", "by", "for", "with", "from", "into", "onto", "about", "is", "are", "was", "were", "be",
    "been", "being", "am", "do", "does", "did", "have", "has", "had", "having", "it", "its",
    "this", "that", "these", "those", "there", "here", "he", "she", "they", "them", "his", "her",
    "their", "him", "we", "us", "our", "you", "your", "i", "me", "my", "also", "some", "any",
    "all", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "very",
    "just", "s", "t", "one",
];

/// The question words, in the order a caller that reports "the" question word of a text
/// looks for them.
pub const QUESTION_WORDS: &[&str] = &[
    "what", "how", "why", "when", "where", "who", "whom", "whose", "which",
];

/// `word` (lower case) is one of [`FUNCTION_WORDS`].
#[must_use]
pub fn is_function_word(word: &str) -> bool {
    FUNCTION_WORDS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_lower_case_and_apart() {
        for w in FUNCTION_WORDS.iter().chain(QUESTION_WORDS) {
            assert_eq!(*w, w.to_lowercase());
        }
        assert!(QUESTION_WORDS.iter().all(|q| !is_function_word(q)));
        assert!(is_function_word("the"));
        assert!(!is_function_word("password"));
    }
}
