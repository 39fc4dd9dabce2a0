use serde::{Deserialize, Serialize};

/// The kinds of personal or secret data the scanner looks for.
///
/// The order of the variants is the tie-break order when two findings are equally confident
/// and equally long: checksummed and prefixed kinds first, guessed kinds last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntityKind {
    Email,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    Secret,
    Phone,
    DateOfBirth,
    StreetAddress,
    Person,
    Location,
}

impl EntityKind {
    pub const ALL: [EntityKind; 11] = [
        EntityKind::Email,
        EntityKind::CreditCard,
        EntityKind::Iban,
        EntityKind::UsSsn,
        EntityKind::IpAddress,
        EntityKind::Secret,
        EntityKind::Phone,
        EntityKind::DateOfBirth,
        EntityKind::StreetAddress,
        EntityKind::Person,
        EntityKind::Location,
    ];

    /// The label used in placeholders (`[EMAIL]`, `<EMAIL_1>`, `<EMAIL:3f2a9c1b>`): upper case
    /// letters and underscores only, so a placeholder is easy to find again in an answer.
    pub fn label(self) -> &'static str {
        match self {
            EntityKind::Email => "EMAIL",
            EntityKind::Phone => "PHONE",
            EntityKind::CreditCard => "CREDIT_CARD",
            EntityKind::Iban => "IBAN",
            EntityKind::UsSsn => "US_SSN",
            EntityKind::IpAddress => "IP_ADDRESS",
            EntityKind::DateOfBirth => "DATE_OF_BIRTH",
            EntityKind::Secret => "SECRET",
            EntityKind::Person => "PERSON",
            EntityKind::StreetAddress => "STREET_ADDRESS",
            EntityKind::Location => "LOCATION",
        }
    }

    pub fn from_label(label: &str) -> Option<EntityKind> {
        EntityKind::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One finding: `text[start..end]` (byte offsets, end exclusive, always on char boundaries)
/// is probably an entity of `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: EntityKind,
    /// How sure the rule is, in 0..=1. Checksummed formats score near 1, guesses from
    /// capitalisation and word lists score 0.5-0.8.
    pub confidence: f32,
    /// The rule that fired (e.g. `"luhn"`, `"aws_access_key"`, `"title+name"`), for
    /// explaining a verdict; not part of any placeholder.
    pub rule: &'static str,
}

impl Span {
    pub fn new(
        start: usize,
        end: usize,
        kind: EntityKind,
        confidence: f32,
        rule: &'static str,
    ) -> Span {
        Span {
            start,
            end,
            kind,
            confidence,
            rule,
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}
