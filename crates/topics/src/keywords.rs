//! Keyword and phrase matching on words: lower-cased maximal runs of alphanumeric characters
//! (apostrophes inside a word kept, so `can't` is one word). A keyword phrase matches when its
//! words appear consecutively in the text; its last word also matches with a plural `s` or
//! `es` (`loan` matches `loans`), nothing else, so `loan` never matches `sloane`.

/// The lower-cased words of `text`.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let inner_apostrophe = (c == '\'' || c == '’')
            && !cur.is_empty()
            && chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if inner_apostrophe {
            cur.push('\'');
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A set of keyword phrases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keywords {
    phrases: Vec<Vec<String>>,
}

impl Keywords {
    /// Phrases with no words are dropped.
    pub fn new(phrases: &[String]) -> Self {
        Self {
            phrases: phrases
                .iter()
                .map(|p| words(p))
                .filter(|w| !w.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Whether any phrase occurs in `text_words` (from [`words`]).
    pub fn matches(&self, text_words: &[String]) -> bool {
        self.phrases.iter().any(|p| occurs(p, text_words))
    }
}

fn occurs(phrase: &[String], text: &[String]) -> bool {
    let Some((last, head)) = phrase.split_last() else {
        return false;
    };
    if text.len() < phrase.len() {
        return false;
    }
    (0..=text.len() - phrase.len()).any(|i| {
        head.iter().zip(&text[i..]).all(|(a, b)| a == b)
            && text.get(i + head.len()).is_some_and(|w| plural_of(w, last))
    })
}

fn plural_of(word: &str, stem: &str) -> bool {
    word == stem
        || word
            .strip_prefix(stem)
            .is_some_and(|rest| rest == "s" || rest == "es")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw(p: &[&str]) -> Keywords {
        Keywords::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn words_split_on_non_alphanumerics_and_keep_inner_apostrophes() {
        assert_eq!(
            words("Can't I  wire $500 to 'Bob'? Ünïcode-OK"),
            ["can't", "i", "wire", "500", "to", "bob", "ünïcode", "ok"]
        );
        assert_eq!(words("  ''  "), Vec::<String>::new());
    }

    #[test]
    fn phrases_match_whole_words_in_order_with_plurals() {
        let k = kw(&["world cup", "loan"]);
        assert!(k.matches(&words("Who wins the World Cup?")));
        assert!(k.matches(&words("two loans please")));
        assert!(!k.matches(&words("cup of the world")));
        assert!(!k.matches(&words("Sloane square")));
        assert!(!k.matches(&words("loaned")));
        assert!(!kw(&["", " - "]).matches(&words("anything")));
        assert!(kw(&["", " - "]).is_empty());
    }

    proptest! {
        #[test]
        fn words_are_lowercase_nonempty_and_alphanumeric(s in "\\PC{0,64}") {
            for w in words(&s) {
                prop_assert!(!w.is_empty());
                prop_assert!(!w.chars().any(char::is_whitespace));
                prop_assert!(!w.starts_with('\''));
                prop_assert_eq!(w.to_lowercase(), w.clone());
            }
        }

        #[test]
        fn a_text_contains_its_own_phrases(s in "[a-zA-Z ,.!?']{0,60}", start in 0usize..8, len in 1usize..4) {
            let ws = words(&s);
            if start + len <= ws.len() {
                let phrase = ws[start..start + len].join(" ");
                prop_assert!(kw(&[&phrase]).matches(&ws));
            }
        }

        #[test]
        fn padding_does_not_change_words(s in "[a-z0-9 ]{0,40}") {
            prop_assert_eq!(words(&s), words(&format!("  {s}!? ")));
        }
    }
}
