//! Person names, street addresses and locations by rules: context words ("my name is",
//! "Mr.", "lives at", "in <City>"), capitalisation, street-type words, and small embedded
//! word lists. This is a recogniser, not a trained NER model: it finds the common shapes and
//! misses names it has no cue for (see `eval/pii.md` for how often).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use regex::Regex;

use crate::kind::{EntityKind, Span};
use crate::PiiError;

/// What the word lists say about a word, looked up once per token.
mod flag {
    pub(super) const FIRST: u16 = 1;
    pub(super) const AMBIGUOUS: u16 = 1 << 1;
    pub(super) const SURNAME: u16 = 1 << 2;
    pub(super) const NON_NAME: u16 = 1 << 3;
    pub(super) const TITLE: u16 = 1 << 4;
    pub(super) const PARTICLE: u16 = 1 << 5;
    pub(super) const ORG: u16 = 1 << 6;
    pub(super) const STREET_AFTER: u16 = 1 << 7;
    pub(super) const CORE_STREET: u16 = 1 << 8;
    pub(super) const STREET_BEFORE: u16 = 1 << 9;
    pub(super) const UNIT: u16 = 1 << 10;
    /// The last word of some name cue ("is" of "my name is"): only then are cues checked.
    pub(super) const NAME_CUE_END: u16 = 1 << 11;
    pub(super) const ADDRESS_CUE_END: u16 = 1 << 12;
    /// The first word of a listed place.
    pub(super) const PLACE_START: u16 = 1 << 13;
    /// Ends like a family name ("-ski", "-sson"), five letters or more.
    pub(super) const SURNAME_ENDING: u16 = 1 << 14;
    /// Ends like a street name ("-straße", "-gatan"), longer than the ending itself.
    pub(super) const STREET_ENDING: u16 = 1 << 15;
}

const FIRST_NAMES: &str = include_str!("../data/first_names.txt");
const AMBIGUOUS_NAMES: &str = include_str!("../data/ambiguous_names.txt");
const SURNAMES: &str = include_str!("../data/surnames.txt");
const PLACES: &str = include_str!("../data/places.txt");
const NON_NAMES: &str = include_str!("../data/nonname_words.txt");

const TITLES: &[&str] = &[
    "dame",
    "dr",
    "frau",
    "herr",
    "lady",
    "lord",
    "madam",
    "miss",
    "mister",
    "mlle",
    "mme",
    "mr",
    "mrs",
    "ms",
    "mx",
    "prof",
    "professor",
    "señor",
    "señora",
    "signor",
    "signora",
    "sir",
    "sr",
    "sra",
];
/// Phrases after which a name follows ("my name is Ana"). The flag says whether a lower-case
/// name is accepted after it (people type "my name is ana lee").
const NAME_CUES: &[(&[&str], bool)] = &[
    (&["my", "name", "is"], true),
    (&["name", "is"], true),
    (&["name", ":"], true),
    (&["names", "are"], false),
    (&["i", "am"], false),
    (&["i", "'m"], false),
    (&["i", "’m"], false),
    (&["this", "is"], false),
    (&["called"], false),
    (&["named"], false),
    (&["dear"], false),
    (&["regards", ","], false),
    (&["sincerely", ","], false),
    (&["thanks", ","], false),
    (&["ask", "for"], false),
    (&["speak", "to"], false),
    (&["speak", "with"], false),
    (&["talk", "to"], false),
    (&["contact"], false),
    (&["directed", "by"], false),
    (&["written", "by"], false),
    (&["starring"], false),
    (&["signed"], false),
    (&["patient"], false),
    (&["says"], false),
    (&["said"], false),
    (&["with"], false),
    (&["and"], false),
    (&["by"], false),
    (&["to"], false),
    (&["from"], false),
    (&["hi"], false),
    (&["hello"], false),
];
/// Name particles that may sit inside a name ("Ludwig van Beethoven").
const PARTICLES: &[&str] = &[
    "al", "bin", "da", "de", "del", "della", "den", "der", "di", "du", "el", "la", "le", "ten",
    "ter", "van", "von",
];
/// Surname endings that mark a word as a family name in many languages.
const SURNAME_ENDINGS: &[&str] = &[
    "ski", "ska", "cki", "cka", "wicz", "vić", "vic", "ović", "ovic", "sson", "ssen", "escu",
    "opoulos", "akis", "enko", "chuk", "ström", "strom", "berg", "mann", "stein", "ova", "ová",
    "eva", "ov", "ev", "ini", "elli", "etti", "ez", "ian", "yan", "oglu", "oğlu", "ssi", "nen",
    "lä", "la",
];
const ORG_SUFFIXES: &[&str] = &[
    "ag",
    "association",
    "bank",
    "club",
    "co",
    "college",
    "company",
    "corp",
    "corporation",
    "foundation",
    "gmbh",
    "group",
    "holdings",
    "hospital",
    "inc",
    "institute",
    "labs",
    "llc",
    "ltd",
    "media",
    "museum",
    "orchestra",
    "partners",
    "plc",
    "sa",
    "school",
    "services",
    "solutions",
    "systems",
    "technologies",
    "university",
];
/// Street-type words that follow the street name ("Kent Street", "Main St.").
const STREET_AFTER: &[&str] = &[
    "allee",
    "alley",
    "av",
    "ave",
    "avenue",
    "blvd",
    "boulevard",
    "cir",
    "circle",
    "close",
    "court",
    "creek",
    "cres",
    "crescent",
    "crossing",
    "ct",
    "dr",
    "drive",
    "estates",
    "expressway",
    "fork",
    "forks",
    "gade",
    "gardens",
    "gasse",
    "gata",
    "gatan",
    "gate",
    "gracht",
    "green",
    "grove",
    "harbor",
    "harbour",
    "heights",
    "highway",
    "hill",
    "hwy",
    "isle",
    "junction",
    "katu",
    "laan",
    "lane",
    "ln",
    "loop",
    "manor",
    "meadow",
    "meadows",
    "mews",
    "mill",
    "mills",
    "mount",
    "orchard",
    "park",
    "parkway",
    "pass",
    "path",
    "pike",
    "pkwy",
    "pl",
    "place",
    "platz",
    "plaza",
    "plein",
    "point",
    "port",
    "rd",
    "ridge",
    "road",
    "route",
    "row",
    "run",
    "shore",
    "shores",
    "spring",
    "springs",
    "sq",
    "square",
    "st",
    "station",
    "str",
    "straat",
    "strasse",
    "straße",
    "street",
    "summit",
    "terrace",
    "tie",
    "trail",
    "trl",
    "turnpike",
    "u",
    "union",
    "utca",
    "valley",
    "vegen",
    "veien",
    "vej",
    "view",
    "village",
    "ville",
    "vista",
    "walk",
    "wall",
    "way",
    "weg",
    "wells",
    "út",
];
/// Street-type words that come before the name ("rue de la Paix", "Via Roma", "ul. Polna").
const STREET_BEFORE: &[&str] = &[
    "aleja",
    "allée",
    "av",
    "avda",
    "avenida",
    "avenue",
    "boulevard",
    "calle",
    "camino",
    "carrer",
    "chemin",
    "corso",
    "estrada",
    "impasse",
    "largo",
    "odos",
    "paseo",
    "piazza",
    "place",
    "plaza",
    "praça",
    "quai",
    "ronda",
    "route",
    "rua",
    "rue",
    "strada",
    "travessa",
    "ul",
    "ulica",
    "via",
    "viale",
    "λ",
    "οδός",
];
/// Street-type endings glued to the name ("Hauptstraße", "Keizersgracht", "Storgatan").
/// Street words that make "Name Street 12" an address on their own (unlike "Station 54").
const CORE_STREET_AFTER: &[&str] = &[
    "ave",
    "avenue",
    "blvd",
    "boulevard",
    "gade",
    "gata",
    "gatan",
    "gate",
    "katu",
    "laan",
    "lane",
    "ln",
    "rd",
    "road",
    "st",
    "straat",
    "street",
    "tie",
    "u",
    "utca",
    "veien",
    "vej",
    "weg",
    "út",
];
const STREET_ENDINGS: &[&str] = &[
    "straße", "strasse", "str", "weg", "gasse", "allee", "platz", "damm", "ufer", "straat", "laan",
    "plein", "gracht", "kade", "singel", "vej", "gade", "gata", "gatan", "vägen", "vegen", "veien",
    "gate", "katu", "tie", "utca", "ulica", "street", "road", "plaats", "veg", "gränd", "stig",
    "stræti", "vegur",
];
const UNIT_WORDS: &[&str] = &[
    "#",
    "apartment",
    "apt",
    "bldg",
    "building",
    "fl",
    "flat",
    "floor",
    "no",
    "nr",
    "rm",
    "room",
    "ste",
    "suite",
    "unit",
];
const ADDRESS_CUES: &[&[&str]] = &[
    &["lives", "at"],
    &["live", "at"],
    &["living", "at"],
    &["address", "is"],
    &["address", ":"],
    &["located", "at"],
    &["ship", "to"],
    &["deliver", "to"],
    &["send", "it", "to"],
    &["sent", "to"],
    &["moved", "to"],
    &["address", "to"],
    &["address", "with"],
    &["taxi", "to"],
    &["office", "is", "at"],
    &["offices", "are", "located", "at"],
    &["is", "at"],
];
const LOCATION_CUES: &[&str] = &[
    "in", "from", "to", "near", "at", "visit", "visiting", "visited", "of", "around", "outside",
    "across",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Word,
    Number,
    Punct,
    Newline,
}

#[derive(Debug, Clone)]
struct Token<'t> {
    start: usize,
    end: usize,
    text: &'t str,
    lower: Cow<'t, str>,
    flags: u16,
    shape: Shape,
}

impl<'t> Token<'t> {
    fn new(text: &'t str, start: usize, shape: Shape) -> Token<'t> {
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

    fn capitalised(&self) -> bool {
        self.shape == Shape::Word && self.text.chars().next().is_some_and(char::is_uppercase)
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn is(&self, word: &str) -> bool {
        self.lower == word
    }
}

/// Splits text into words (letters and marks, with inner `'`, `’` or `-`), numbers (ASCII
/// digits and an optional letter: "221B"), line breaks and single punctuation characters.
/// Hand-written because it runs over every byte of every prompt and a regex with Unicode
/// classes was the scanner's slowest part.
fn tokenize(text: &str) -> Vec<Token<'_>> {
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
fn is_mark(c: char) -> bool {
    matches!(u32::from(c), 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

pub(crate) struct Recogniser {
    /// Every listed word (lower case) and its [`flag`]s.
    lexicon: HashMap<String, u16, BuildHasherDefault<Fnv>>,
    places: PlaceIndex,
    zip: Regex,
    /// Post-office boxes and US military addresses, which have no house number or street.
    postal: Regex,
}

/// FNV-1a: the word lists are fixed and small, so a DoS-resistant hash buys nothing here and
/// SipHash was a visible share of scan time.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type WordSet = HashSet<String, BuildHasherDefault<Fnv>>;
/// Places by their first word: each entry is the whole place as words, and whether it is
/// ambiguous ("Jordan", "Turkey").
type PlaceIndex = HashMap<String, Vec<(Vec<String>, bool)>, BuildHasherDefault<Fnv>>;

fn words(list: &str) -> WordSet {
    list.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(str::to_lowercase)
        .collect()
}

fn lexicon() -> HashMap<String, u16, BuildHasherDefault<Fnv>> {
    let mut lexicon: HashMap<String, u16, BuildHasherDefault<Fnv>> = HashMap::default();
    let mut mark = |word: &str, bit: u16| *lexicon.entry(word.to_lowercase()).or_default() |= bit;
    let lists = [
        (FIRST_NAMES, flag::FIRST),
        (AMBIGUOUS_NAMES, flag::AMBIGUOUS),
        (SURNAMES, flag::SURNAME),
        (NON_NAMES, flag::NON_NAME),
    ];
    for (list, bit) in lists {
        for word in words(list) {
            mark(&word, bit);
        }
    }
    let fixed: [(&[&str], u16); 7] = [
        (TITLES, flag::TITLE),
        (PARTICLES, flag::PARTICLE),
        (ORG_SUFFIXES, flag::ORG),
        (STREET_AFTER, flag::STREET_AFTER),
        (CORE_STREET_AFTER, flag::CORE_STREET),
        (STREET_BEFORE, flag::STREET_BEFORE),
        (UNIT_WORDS, flag::UNIT),
    ];
    for (list, bit) in fixed {
        for word in list {
            mark(word, bit);
        }
    }
    for (cue, _) in NAME_CUES {
        if let Some(last) = cue.last() {
            mark(last, flag::NAME_CUE_END);
        }
    }
    for cue in ADDRESS_CUES {
        if let Some(last) = cue.last() {
            mark(last, flag::ADDRESS_CUE_END);
        }
    }
    lexicon
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

    pub(crate) fn detect(
        &self,
        text: &str,
        kinds: &dyn Fn(EntityKind) -> bool,
        out: &mut Vec<Span>,
    ) {
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
        if kinds(EntityKind::StreetAddress) {
            self.addresses(&tokens, out);
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
        }
        if kinds(EntityKind::Location) {
            self.locations(&tokens, out);
        }
        if kinds(EntityKind::Person) {
            self.persons(&tokens, out);
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

    /// The run of name words starting at `index`: capitalised words, initials ("K."), and
    /// particles between capitalised words; lower-case words only when `lower_ok`.
    fn name_run(
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

    fn cue_before(tokens: &[Token<'_>], index: usize, cue: &[&str]) -> bool {
        index >= cue.len()
            && tokens[index - cue.len()..index]
                .iter()
                .zip(cue)
                .all(|(token, word)| token.is(word))
    }

    fn persons(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
        let first_new = out.len();
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            if token.shape != Shape::Word {
                i += 1;
                continue;
            }
            // 1. A title: "Mr. John Smith", "dr. lee".
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
                    i = last + 1;
                    continue;
                }
            }
            // 2. A cue phrase: "my name is Ana Lee", "directed by Alice Hasti".
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
                        i = last + 1;
                        continue;
                    }
                }
            }
            // 3. Word lists: a known given name or family name in a run of capitalised words.
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
                            if !Self::sentence_start(tokens, first)
                                && run[0].has(flag::SURNAME) =>
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
                        i = last + 1;
                        continue;
                    }
                }
            }
            // 4. Lower-case text: a known, unambiguous given name followed by another word.
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
                i += if end > token.end { 2 } else { 1 };
                continue;
            }
            i += 1;
        }
        self.signature_lines(tokens, first_new, out);
        self.list_neighbours(tokens, out);
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

    /// The last token index of a known place starting at `index`, if one does.
    fn place_at(&self, tokens: &[Token<'_>], index: usize) -> Option<usize> {
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

    fn locations(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
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
    fn addresses(&self, tokens: &[Token<'_>], out: &mut Vec<Span>) {
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

    fn address_core(
        &self,
        tokens: &[Token<'_>],
        i: usize,
        all_lower: bool,
    ) -> Option<(usize, usize, f32, &'static str)> {
        let token = tokens.get(i)?;
        let cued = i > 0
            && tokens[i - 1].has(flag::ADDRESS_CUE_END)
            && ADDRESS_CUES
                .iter()
                .any(|cue| Self::cue_before(tokens, i, cue));
        if token.shape == Shape::Number && token.text.len() <= 6 {
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
            let opens_name = tokens.get(k).is_some_and(|t| {
                name_word(t) && !t.has(flag::NON_NAME) || t.has(flag::STREET_BEFORE)
            });
            let mut street_at = None;
            let mut j = k;
            let mut words = 0;
            while opens_name && words < 5 {
                let Some(t) = tokens.get(j) else { break };
                match t.shape {
                    Shape::Word if name_word(t) => {
                        words += 1;
                        let glued = self.is_street_word(t, all_lower) && !t.has(flag::STREET_AFTER);
                        if j == k && (t.has(flag::STREET_BEFORE) || glued)
                            || j > k && self.is_street_word(t, all_lower)
                        {
                            street_at = Some(j);
                            break;
                        }
                    }
                    Shape::Punct if t.text == "." || t.text == "'" => {}
                    _ => break,
                }
                j += 1;
            }
            if let Some(street) = street_at {
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
                if last > i {
                    return Some((i, last, if cued { 0.9 } else { 0.8 }, "number+street"));
                }
            }
            // "692 Kuuse 53, Grubbenvorst": a name between two numbers, kept only when the
            // address goes on with a unit, city or postcode (checked by the caller).
            if street_at.is_none() && opens_name {
                let mut m = k;
                while tokens.get(m).is_some_and(|t| {
                    t.shape == Shape::Word && t.capitalised() && !self.is_non_name(t)
                }) && m - k < 3
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
        }
        // "Hauptstraße 5", "Kent Street 12".
        if token.shape == Shape::Word && token.capitalised() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unwrap_used, reason = "test code")]
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
