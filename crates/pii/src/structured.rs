//! Detectors for formats with a grammar or a checksum: e-mail, phone, card, IBAN, SSN, IP,
//! and dates of birth. A regex finds candidates; a validator (Luhn, mod-97, range rules, IP
//! parsing, context words) decides.

use std::net::Ipv6Addr;

use regex::Regex;

use crate::kind::{EntityKind, Span};
use crate::text::{after, before, contains_word, standalone};
use crate::PiiError;

const PHONE_CONTEXT: &[&str] = &[
    "phone",
    "call",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "fax",
    "contact",
    "reach",
    "number",
    "whatsapp",
    "text",
    "dial",
    "ring",
    "landline",
    "handy",
    "téléphone",
    "portable",
    "telefon",
    "telefono",
    "teléfono",
    "ph",
    "mob",
    "answering",
    "reached",
    "sms",
];
/// Words right after a number that say it is a phone ("555 1234 office").
const PHONE_AFTER: &[&str] = &[
    "office", "fax", "mobile", "cell", "home", "work", "tel", "phone", "landline",
];
/// Words before a number that say it is some other identifier, even if "number" is there too.
const NOT_PHONE_CONTEXT: &[&str] = &[
    "license",
    "licence",
    "passport",
    "account",
    "order",
    "invoice",
    "tracking",
    "ssn",
    "social security",
    "routing",
    "serial",
    "policy",
    "member",
    "customer",
    "case",
    "ticket",
    "reference",
    "iban",
    "card",
];
const CARD_CONTEXT: &[&str] = &[
    "card",
    "credit",
    "debit",
    "visa",
    "mastercard",
    "amex",
    "cc",
];
const SSN_CONTEXT: &[&str] = &["ssn", "social security", "social-security", "ss#", "ss no"];
const DOB_CONTEXT: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "d.o.b.",
    "birthday",
    "birthdate",
    "date of birth",
    "geboren",
    "né",
    "née",
    "nee",
    "geb",
    "fecha de nacimiento",
    "nacido",
    "nacida",
];

pub(crate) struct Structured {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban_start: Regex,
    ssn: Regex,
    ipv4: Regex,
    ipv6: Regex,
    date: Regex,
    context_window: usize,
}

fn compile(pattern: &str) -> Result<Regex, PiiError> {
    Regex::new(pattern).map_err(|err| PiiError::Pattern(err.to_string()))
}

impl Structured {
    pub(crate) fn new(context_window: usize) -> Result<Structured, PiiError> {
        Ok(Structured {
            email: compile(
                r"(?i)[a-z0-9](?:[a-z0-9._%+\-]{0,63})@[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}",
            )?,
            // An optional +CC or 00CC, then 2-6 groups of digits split by one space, dash or
            // dot, any group possibly in parentheses, and an optional extension.
            phone: compile(
                r"(?:\+|(?-u:\b)00)?\(?[0-9]{1,5}\)?(?:[ .\-]?\(?[0-9]{1,5}\)?){1,6}(?:\s?(?:x|ext\.?|#)\s?[0-9]{1,6})?",
            )?,
            card: compile(r"[0-9](?:[ \-]?[0-9]){11,18}")?,
            iban_start: compile(r"(?-u:\b)[a-zA-Z]{2}[0-9]{2}")?,
            ssn: compile(r"(?-u:\b)[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}(?-u:\b)")?,
            ipv4: compile(
                r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
            )?,
            ipv6: compile(r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?")?,
            date: compile(
                r"(?ix-u)
                (?-u:\b)(?:
                    [0-9]{1,2}[/.\-][0-9]{1,2}[/.\-](?:[0-9]{4}|[0-9]{2})
                  | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}
                  | [0-9]{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+[0-9]{4}
                  | (?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+[0-9]{1,2}(?:st|nd|rd|th)?,?\s+[0-9]{4}
                )(?-u:\b)",
            )?,
            context_window,
        })
    }

    pub(crate) fn emails(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.email.find_iter(text) {
            if standalone(text, found.start(), found.end()) || text[found.end()..].starts_with('.')
            {
                out.push(Span::new(
                    found.start(),
                    found.end(),
                    EntityKind::Email,
                    0.95,
                    "email",
                ));
            }
        }
    }

    /// Phone numbers: strong shapes (+CC, a bracketed area code, NANP 3-3-4, a national
    /// trunk `0`) stand alone; bare digit groups need a context word such as "call" or "tel".
    /// Dates, versions, IPs and long unbroken digit runs are not phones.
    pub(crate) fn phones(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.phone.find_iter(text) {
            let (mut start, mut end) = (found.start(), found.end());
            // The regex may swallow a trailing separator or an unbalanced bracket.
            let raw = &text[start..end];
            let trimmed_end = raw.trim_end_matches([' ', '.', '-', '(']).len();
            end = start + trimmed_end;
            if text[start..end].starts_with('(') && !text[start..end].contains(')') {
                start += 1;
            }
            if end <= start {
                continue;
            }
            let candidate = &text[start..end];
            if let Some(confidence) = self.phone_confidence(text, start, end, candidate) {
                out.push(Span::new(
                    start,
                    end,
                    EntityKind::Phone,
                    confidence,
                    "phone",
                ));
            }
        }
    }

    fn phone_confidence(
        &self,
        text: &str,
        start: usize,
        end: usize,
        candidate: &str,
    ) -> Option<f32> {
        if !standalone(text, start, end) {
            return None;
        }
        // Glued to a '/', ':' or '.' followed by a digit: part of a path, a time or a version.
        let next = text[end..].chars().next();
        let after_next = text[end..].chars().nth(1);
        if matches!(next, Some('/' | ':' | ',' | '.'))
            && after_next.is_some_and(|c| c.is_ascii_digit())
        {
            return None;
        }
        if matches!(
            crate::text::char_before(text, start),
            Some('/' | ':' | '.' | '-' | '$' | '€' | '£')
        ) {
            return None;
        }
        let main = candidate
            .split(['x', '#'])
            .next()
            .unwrap_or(candidate)
            .trim_end_matches("ext.")
            .trim_end_matches("ext");
        let digits: String = main.chars().filter(char::is_ascii_digit).collect();
        if !(7..=15).contains(&digits.len()) {
            return None;
        }
        let groups: Vec<&str> = main
            .split([' ', '-', '.', '(', ')'])
            .filter(|group| !group.is_empty() && *group != "+")
            .collect();
        if self.date.is_match(candidate) && candidate.len() <= 10 {
            return None;
        }
        if main.chars().filter(|c| *c == '.').count() == 3 && groups.len() == 4 {
            // Looks like an IPv4 address or a version number.
            return None;
        }
        let separators_used: std::collections::BTreeSet<char> = main
            .chars()
            .filter(|c| matches!(c, ' ' | '-' | '.'))
            .collect();
        let before_text = before(text, start, self.context_window);
        let context = (contains_word(&before_text, PHONE_CONTEXT)
            || contains_word(&after(text, end, 12), PHONE_AFTER))
            && !contains_word(&before_text, NOT_PHONE_CONTEXT);
        let international = candidate.starts_with('+') || candidate.starts_with("00");
        let bracketed = main.contains('(') && main.contains(')');
        let nanp = groups.len() >= 3
            && groups[groups.len() - 3..]
                .iter()
                .map(|g| g.len())
                .eq([3, 3, 4])
            && separators_used.len() == 1;
        let trunk = digits.starts_with('0') && groups.len() >= 2 && !digits.starts_with("00");
        // A money amount or a count like "1 000 000" is grouped in threes after a short head.
        let thousands =
            groups.len() >= 2 && groups[1..].iter().all(|g| g.len() == 3) && groups[0].len() <= 3;
        let mixed_separators = separators_used.len() > 1 && !bracketed;
        let ssn_shape = groups.len() == 3 && groups.iter().map(|g| g.len()).eq([3, 2, 4]);
        if ssn_shape && !international {
            return None;
        }
        let base: f32 = if international && (groups.len() >= 2 || digits.len() >= 10) {
            0.9
        } else if bracketed || nanp {
            0.8
        } else if trunk && !mixed_separators {
            0.65
        } else if groups.len() >= 2 && !thousands && !mixed_separators {
            0.35
        } else if groups.len() >= 2 {
            0.25
        } else {
            0.2
        };
        let confidence = if context {
            (base + 0.35).min(0.95)
        } else {
            base
        };
        Some(confidence)
    }

    /// Card numbers: 13-19 digits (12 for Maestro with a card word nearby), one kind of
    /// separator at most, and a valid Luhn checksum. A known issuer prefix raises the
    /// confidence; an unknown one does not exclude the number, since networks keep adding
    /// ranges (Mir, RuPay, Verve, Troy...) and a card that leaks because its prefix is new is
    /// the worst failure. Without a card word or card-style groups of four, such a number is
    /// kept only just above the default threshold, where a stricter `min_confidence` for
    /// `CREDIT_CARD` drops it.
    pub(crate) fn cards(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.card.find_iter(text) {
            let (start, end) = (found.start(), found.end());
            if !standalone(text, start, end) {
                continue;
            }
            let candidate = found.as_str();
            let separators: std::collections::BTreeSet<char> =
                candidate.chars().filter(|c| !c.is_ascii_digit()).collect();
            if separators.len() > 1 {
                continue;
            }
            let digits: Vec<u8> = candidate
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            if !luhn_valid(&digits) {
                continue;
            }
            let issuer = card_issuer(&digits);
            let context = contains_word(&before(text, start, self.context_window), CARD_CONTEXT);
            if digits.len() < 13 && !(context && issuer == Some("maestro")) {
                continue;
            }
            let confidence = match issuer {
                Some(_) if context => 0.95,
                Some("maestro") => 0.8,
                Some(_) => 0.95,
                None if context => 0.9,
                None if grouped_in_fours(candidate) => 0.75,
                None => 0.55,
            };
            out.push(Span::new(
                start,
                end,
                EntityKind::CreditCard,
                confidence,
                "luhn",
            ));
        }
    }

    /// IBANs: a country code with a known length, then exactly that many characters (single
    /// spaces allowed between them), and the ISO 13616 mod-97 check.
    pub(crate) fn ibans(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.iban_start.find_iter(text) {
            let start = found.start();
            let country = text[start..start + 2].to_ascii_uppercase();
            let Some(length) = iban_length(&country) else {
                continue;
            };
            let mut compact = String::with_capacity(length);
            let mut end = start;
            let mut previous_space = false;
            for (offset, c) in text[start..].char_indices() {
                if compact.len() == length {
                    break;
                }
                if c.is_ascii_alphanumeric() {
                    compact.push(c.to_ascii_uppercase());
                    end = start + offset + 1;
                    previous_space = false;
                } else if c == ' ' && !previous_space && !compact.is_empty() {
                    previous_space = true;
                } else {
                    break;
                }
            }
            if compact.len() == length
                && standalone(text, start, end)
                && iban_checksum_valid(&compact)
            {
                out.push(Span::new(start, end, EntityKind::Iban, 0.97, "mod97"));
            }
        }
    }

    /// US social security numbers. Dashed numbers stand alone; spaced or bare nine digits
    /// need "SSN" or "social security" nearby. Never issued: area 000, 666 or 900-999,
    /// group 00, serial 0000.
    pub(crate) fn ssns(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.ssn.find_iter(text) {
            let candidate = found.as_str();
            let dashes = candidate.matches('-').count();
            let spaces = candidate.matches(' ').count();
            if !(dashes == 2 || spaces == 2 || dashes + spaces == 0) {
                continue;
            }
            let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
            if !ssn_valid(&digits) || !standalone(text, found.start(), found.end()) {
                continue;
            }
            let context = contains_word(
                &before(text, found.start(), self.context_window),
                SSN_CONTEXT,
            );
            let confidence = match (dashes, context) {
                (_, true) => 0.95,
                (2, false) => 0.85,
                _ => continue,
            };
            out.push(Span::new(
                found.start(),
                found.end(),
                EntityKind::UsSsn,
                confidence,
                "ssn",
            ));
        }
    }

    pub(crate) fn ips(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.ipv4.find_iter(text) {
            let (start, end) = (found.start(), found.end());
            // "1.2.3.4.5" or "v1.2.3.4" is a version, not an address.
            let glued_dot = text[end..].starts_with('.')
                && text[end + 1..].starts_with(|c: char| c.is_ascii_digit());
            if !standalone(text, start, end) || glued_dot || text[..start].ends_with('.') {
                continue;
            }
            let version = contains_word(&before(text, start, 12), &["version", "v", "ver"]);
            let confidence = if version { 0.4 } else { 0.9 };
            out.push(Span::new(
                start,
                end,
                EntityKind::IpAddress,
                confidence,
                "ipv4",
            ));
        }
        for found in self.ipv6.find_iter(text) {
            let candidate = found.as_str().trim_end_matches(':');
            let (start, end) = (found.start(), found.start() + candidate.len());
            if !standalone(text, start, end) || text[end..].starts_with(':') {
                continue;
            }
            let groups = candidate
                .split(':')
                .filter(|group| !group.is_empty())
                .count();
            if groups < 2 || candidate.parse::<Ipv6Addr>().is_err() {
                continue;
            }
            // "12:30:45" never parses; "a::b" does, so insist on a little substance.
            let hex_digits = candidate.chars().filter(char::is_ascii_hexdigit).count();
            if hex_digits < 6 {
                continue;
            }
            out.push(Span::new(start, end, EntityKind::IpAddress, 0.9, "ipv6"));
        }
    }

    /// Dates of birth: a date with a birth word shortly before it (or "born" right after).
    /// A plain date elsewhere is not personal data and is left alone.
    pub(crate) fn dates_of_birth(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.date.find_iter(text) {
            let (start, end) = (found.start(), found.end());
            let before_text = before(text, start, self.context_window.max(40));
            let after_text = after(text, end, 20);
            if contains_word(&before_text, DOB_CONTEXT) || contains_word(&after_text, &["born"]) {
                out.push(Span::new(
                    start,
                    end,
                    EntityKind::DateOfBirth,
                    0.85,
                    "date+birth_context",
                ));
            }
        }
    }
}

/// The Luhn checksum over decimal digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, &digit)| {
            let digit = u32::from(digit);
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Whether a number is written in groups of four digits (the last may be shorter), as card
/// numbers are printed: `1234 5678 9012 3456`.
fn grouped_in_fours(candidate: &str) -> bool {
    let groups: Vec<&str> = candidate.split([' ', '-']).collect();
    groups.len() >= 3
        && groups
            .iter()
            .enumerate()
            .all(|(i, g)| g.len() == 4 || (i + 1 == groups.len() && (1..=4).contains(&g.len())))
}

/// The issuer network for a card number by its prefix (IIN) and length, if known.
fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let prefix = |n: usize| -> u32 {
        digits
            .iter()
            .take(n)
            .fold(0, |acc, &d| acc * 10 + u32::from(d))
    };
    let len = digits.len();
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let issuer = if p1 == 4 && matches!(len, 13 | 16 | 19) {
        "visa"
    } else if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        "mastercard"
    } else if matches!(p2, 34 | 37) && len == 15 {
        "amex"
    } else if (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&len) {
        "discover"
    } else if (3528..=3589).contains(&p4) && (16..=19).contains(&len)
        || matches!(p4, 2131 | 1800) && len == 15
    {
        "jcb"
    } else if ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len)
    {
        "diners"
    } else if p2 == 62 && (16..=19).contains(&len) {
        "unionpay"
    } else if (p2 == 50 || (56..=69).contains(&p2)) && (12..=19).contains(&len) {
        "maestro"
    } else {
        return None;
    };
    Some(issuer)
}

/// IBAN lengths by country (ISO 13616 registry, SWIFT release of 2024).
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BI", 27),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DJ", 27),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FK", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("LY", 25),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MN", 20),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NI", 28),
        ("NL", 18),
        ("NO", 15),
        ("OM", 23),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("RU", 33),
        ("SA", 24),
        ("SC", 31),
        ("SD", 18),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("SO", 23),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
        ("YE", 30),
    ];
    LENGTHS
        .iter()
        .find(|(code, _)| *code == country)
        .map(|(_, len)| *len)
}

/// ISO 13616: move the first four characters to the end, letters to 10..35, and the number
/// mod 97 must be 1. `compact` is upper-case alphanumeric without spaces.
pub fn iban_checksum_valid(compact: &str) -> bool {
    if compact.len() < 5 || !compact.is_ascii() {
        return false;
    }
    let rotated = compact[4..].chars().chain(compact[..4].chars());
    let mut remainder: u32 = 0;
    for c in rotated {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// The SSA's never-issued ranges: area 000, 666, 900-999; group 00; serial 0000.
pub fn ssn_valid(digits: &str) -> bool {
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (area, group, serial) = (&digits[..3], &digits[3..5], &digits[5..]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, detect: fn(&Structured, &str, &mut Vec<Span>)) -> Vec<String> {
        let structured = Structured::new(40).unwrap();
        let mut out = Vec::new();
        detect(&structured, text, &mut out);
        out.iter()
            .filter(|s| s.confidence >= 0.5)
            .map(|s| text[s.start..s.end].to_string())
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            found(
                "write to Jane.Doe+x@mail.example.co.uk.",
                Structured::emails
            ),
            ["Jane.Doe+x@mail.example.co.uk"]
        );
        assert!(found("not an email: foo@bar or @handle", Structured::emails).is_empty());
    }

    #[test]
    fn phones_in_many_formats() {
        for (text, phone) in [
            ("call me at (555) 123-4567 today", "(555) 123-4567"),
            ("US: 555-123-4567", "555-123-4567"),
            ("mobile +44 7700 900123", "+44 7700 900123"),
            ("ring 07700 900123 please", "07700 900123"),
            ("Tel. 030 12345678", "030 12345678"),
            ("+49 30 12345678", "+49 30 12345678"),
            ("appelez le 01 23 45 67 89", "01 23 45 67 89"),
            ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
            ("phone: 151.081.7740x2347", "151.081.7740x2347"),
        ] {
            assert_eq!(found(text, Structured::phones), [phone], "{text}");
        }
    }

    #[test]
    fn phones_not_dates_ids_or_plain_numbers() {
        for text in [
            "on 2023-01-15 we met",
            "order 12345678 shipped",
            "it costs 1 000 000 dollars",
            "version 1.2.3.4",
            "from 10/12/2023 to 11/12/2023",
            "the population was 38837 in 1977",
            "see 3.14159265",
        ] {
            assert!(
                found(text, Structured::phones).is_empty(),
                "{text}: {:?}",
                found(text, Structured::phones)
            );
        }
    }

    #[test]
    fn cards_need_luhn_whatever_the_issuer() {
        assert_eq!(
            found("card 4111 1111 1111 1111", Structured::cards),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("5500-0000-0000-0004", Structured::cards),
            ["5500-0000-0000-0004"]
        );
        assert_eq!(
            found("amex 378282246310005", Structured::cards),
            ["378282246310005"]
        );
        assert!(
            found("card 4111 1111 1111 1112", Structured::cards).is_empty(),
            "Luhn-invalid"
        );
        // An issuer range the table does not know (Mir's 2200-2204) is still a card.
        assert_eq!(
            found("my card 2200 1234 5678 9019", Structured::cards),
            ["2200 1234 5678 9019"]
        );
        assert_eq!(
            found("id 1234567812345670", Structured::cards),
            ["1234567812345670"]
        );
        assert!(
            found("id 1234567812345671", Structured::cards).is_empty(),
            "Luhn-invalid without a known issuer"
        );
        assert!(
            found("order 123456789012", Structured::cards).is_empty(),
            "12 digits are a card only for Maestro with a card word"
        );
        assert!(
            found("4111-1111 1111-1111", Structured::cards).is_empty(),
            "mixed separators"
        );
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }

    #[test]
    fn ibans_need_length_and_mod97() {
        assert_eq!(
            found("IBAN GB82 WEST 1234 5698 7654 32 ok", Structured::ibans),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert_eq!(
            found("de89370400440532013000", Structured::ibans),
            ["de89370400440532013000"]
        );
        assert!(
            found("GB82 WEST 1234 5698 7654 33", Structured::ibans).is_empty(),
            "bad checksum"
        );
        assert!(
            found("GB82WEST12345698765", Structured::ibans).is_empty(),
            "too short"
        );
        assert!(
            found("ZZ82WEST12345698765432", Structured::ibans).is_empty(),
            "no such country"
        );
    }

    #[test]
    fn ssns_and_their_invalid_ranges() {
        assert_eq!(
            found("my SSN is 123-45-6789", Structured::ssns),
            ["123-45-6789"]
        );
        assert_eq!(found("ssn 123456789", Structured::ssns), ["123456789"]);
        assert!(
            found("id 123456789", Structured::ssns).is_empty(),
            "bare digits need context"
        );
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(
                found(&format!("SSN {bad}"), Structured::ssns).is_empty(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            found("from 192.168.1.20 and", Structured::ips),
            ["192.168.1.20"]
        );
        assert_eq!(
            found("host 2001:db8::8a2e:370:7334.", Structured::ips),
            ["2001:db8::8a2e:370:7334"]
        );
        assert_eq!(
            found("fe80:0:0:0:202:b3ff:fe1e:8329", Structured::ips),
            ["fe80:0:0:0:202:b3ff:fe1e:8329"]
        );
        assert_eq!(found("::ffff:192.0.2.128", Structured::ips).len(), 2);
        assert!(found(
            "256.1.1.1 and 1.2.3.4.5 and 12:30:45 and std::vec",
            Structured::ips
        )
        .is_empty());
    }

    #[test]
    fn dates_of_birth_need_context() {
        assert_eq!(
            found("She was born on 7/14/1995.", Structured::dates_of_birth),
            ["7/14/1995"]
        );
        assert_eq!(
            found("DOB: 1980-02-29", Structured::dates_of_birth),
            ["1980-02-29"]
        );
        assert_eq!(
            found("birthday March 3, 1990", Structured::dates_of_birth),
            ["March 3, 1990"]
        );
        assert!(found("The meeting is on 7/14/1995.", Structured::dates_of_birth).is_empty());
    }
}
