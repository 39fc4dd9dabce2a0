//! The embedded word lists and what they say about a word ([`flag`]s), looked up once per
//! token.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// What the word lists say about a word, looked up once per token.
pub(super) mod flag {
    pub(in crate::recogniser) const FIRST: u16 = 1;
    pub(in crate::recogniser) const AMBIGUOUS: u16 = 1 << 1;
    pub(in crate::recogniser) const SURNAME: u16 = 1 << 2;
    pub(in crate::recogniser) const NON_NAME: u16 = 1 << 3;
    pub(in crate::recogniser) const TITLE: u16 = 1 << 4;
    pub(in crate::recogniser) const PARTICLE: u16 = 1 << 5;
    pub(in crate::recogniser) const ORG: u16 = 1 << 6;
    pub(in crate::recogniser) const STREET_AFTER: u16 = 1 << 7;
    pub(in crate::recogniser) const CORE_STREET: u16 = 1 << 8;
    pub(in crate::recogniser) const STREET_BEFORE: u16 = 1 << 9;
    pub(in crate::recogniser) const UNIT: u16 = 1 << 10;
    /// The last word of some name cue ("is" of "my name is"): only then are cues checked.
    pub(in crate::recogniser) const NAME_CUE_END: u16 = 1 << 11;
    pub(in crate::recogniser) const ADDRESS_CUE_END: u16 = 1 << 12;
    /// The first word of a listed place.
    pub(in crate::recogniser) const PLACE_START: u16 = 1 << 13;
    /// Ends like a family name ("-ski", "-sson"), five letters or more.
    pub(in crate::recogniser) const SURNAME_ENDING: u16 = 1 << 14;
    /// Ends like a street name ("-straße", "-gatan"), longer than the ending itself.
    pub(in crate::recogniser) const STREET_ENDING: u16 = 1 << 15;
}

pub(super) const FIRST_NAMES: &str = include_str!("../../data/first_names.txt");
pub(super) const AMBIGUOUS_NAMES: &str = include_str!("../../data/ambiguous_names.txt");
pub(super) const SURNAMES: &str = include_str!("../../data/surnames.txt");
pub(super) const PLACES: &str = include_str!("../../data/places.txt");
pub(super) const NON_NAMES: &str = include_str!("../../data/nonname_words.txt");

pub(super) const TITLES: &[&str] = &[
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
pub(super) const NAME_CUES: &[(&[&str], bool)] = &[
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
pub(super) const PARTICLES: &[&str] = &[
    "al", "bin", "da", "de", "del", "della", "den", "der", "di", "du", "el", "la", "le", "ten",
    "ter", "van", "von",
];
/// Surname endings that mark a word as a family name in many languages.
pub(super) const SURNAME_ENDINGS: &[&str] = &[
    "ski", "ska", "cki", "cka", "wicz", "vić", "vic", "ović", "ovic", "sson", "ssen", "escu",
    "opoulos", "akis", "enko", "chuk", "ström", "strom", "berg", "mann", "stein", "ova", "ová",
    "eva", "ov", "ev", "ini", "elli", "etti", "ez", "ian", "yan", "oglu", "oğlu", "ssi", "nen",
    "lä", "la",
];
pub(super) const ORG_SUFFIXES: &[&str] = &[
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
pub(super) const STREET_AFTER: &[&str] = &[
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
pub(super) const STREET_BEFORE: &[&str] = &[
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
pub(super) const CORE_STREET_AFTER: &[&str] = &[
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
pub(super) const STREET_ENDINGS: &[&str] = &[
    "straße", "strasse", "str", "weg", "gasse", "allee", "platz", "damm", "ufer", "straat", "laan",
    "plein", "gracht", "kade", "singel", "vej", "gade", "gata", "gatan", "vägen", "vegen", "veien",
    "gate", "katu", "tie", "utca", "ulica", "street", "road", "plaats", "veg", "gränd", "stig",
    "stræti", "vegur",
];
pub(super) const UNIT_WORDS: &[&str] = &[
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
pub(super) const ADDRESS_CUES: &[&[&str]] = &[
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
pub(super) const LOCATION_CUES: &[&str] = &[
    "in", "from", "to", "near", "at", "visit", "visiting", "visited", "of", "around", "outside",
    "across",
];

/// FNV-1a: the word lists are fixed and small, so a DoS-resistant hash buys nothing here and
/// SipHash was a visible share of scan time.
#[derive(Default)]
pub(super) struct Fnv(u64);

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

pub(super) type WordSet = HashSet<String, BuildHasherDefault<Fnv>>;
/// Places by their first word: each entry is the whole place as words, and whether it is
/// ambiguous ("Jordan", "Turkey").
pub(super) type PlaceIndex = HashMap<String, Vec<(Vec<String>, bool)>, BuildHasherDefault<Fnv>>;

pub(super) fn words(list: &str) -> WordSet {
    list.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(str::to_lowercase)
        .collect()
}

pub(super) fn lexicon() -> HashMap<String, u16, BuildHasherDefault<Fnv>> {
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
