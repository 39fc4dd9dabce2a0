//! API keys and other secrets: provider key formats by their documented prefixes, JWTs,
//! PEM private key blocks, and otherwise unknown high-entropy tokens.

use regex::Regex;

use crate::config::SecretOptions;
use crate::kind::{EntityKind, Span};
use crate::text::standalone;
use crate::PiiError;

pub(crate) struct Secrets {
    formats: Vec<(&'static str, Regex)>,
    private_key: Regex,
    token: Regex,
    uuid: Regex,
    options: SecretOptions,
}

/// Provider formats, most specific first (Anthropic's `sk-ant-` before OpenAI's `sk-`).
const FORMATS: &[(&str, &str)] = &[
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai_key",
        r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        "aws_access_key",
        r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}",
    ),
    ("github_token", r"gh[pousr]_[A-Za-z0-9]{36,255}"),
    ("github_pat", r"github_pat_[A-Za-z0-9_]{22,255}"),
    ("slack_token", r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("google_api_key", r"AIza[0-9A-Za-z_\-]{35}"),
    ("stripe_key", r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}"),
    (
        "jwt",
        r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}",
    ),
];

impl Secrets {
    pub(crate) fn new(options: SecretOptions) -> Result<Secrets, PiiError> {
        let compile =
            |pattern: &str| Regex::new(pattern).map_err(|err| PiiError::Pattern(err.to_string()));
        let formats = FORMATS
            .iter()
            .map(|(rule, pattern)| Ok((*rule, compile(pattern)?)))
            .collect::<Result<Vec<_>, PiiError>>()?;
        Ok(Secrets {
            formats,
            // A block without its END line (a truncated paste) runs to the end of the text.
            private_key: compile(
                r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
            )?,
            token: compile(&format!(r"[A-Za-z0-9+/=_\-]{{{},}}", options.min_length))?,
            uuid: compile(
                r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            )?,
            options,
        })
    }

    pub(crate) fn detect(&self, text: &str, out: &mut Vec<Span>) {
        for found in self.private_key.find_iter(text) {
            out.push(Span::new(
                found.start(),
                found.end(),
                EntityKind::Secret,
                0.99,
                "private_key",
            ));
        }
        for (rule, regex) in &self.formats {
            for found in regex.find_iter(text) {
                if standalone(text, found.start(), found.end()) {
                    out.push(Span::new(
                        found.start(),
                        found.end(),
                        EntityKind::Secret,
                        0.95,
                        rule,
                    ));
                }
            }
        }
        if self.options.entropy {
            for found in self.token.find_iter(text) {
                let token = found.as_str().trim_end_matches('=');
                if self.looks_random(token) && standalone(text, found.start(), found.end()) {
                    out.push(Span::new(
                        found.start(),
                        found.end(),
                        EntityKind::Secret,
                        0.6,
                        "high_entropy",
                    ));
                }
            }
        }
    }

    /// A token is taken for a secret when it is long, mixes letter case and digits like
    /// generated keys do, and its characters are spread evenly (Shannon entropy per char).
    /// Hex-only strings (commit ids, digests) and UUIDs are common and harmless in prompts, so
    /// they count only when `options.hex` is on.
    fn looks_random(&self, token: &str) -> bool {
        if token.len() < self.options.min_length || token.len() > 4096 {
            return false;
        }
        let hex_only = token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !self.options.hex && (hex_only || self.uuid.is_match(token)) {
            return false;
        }
        let upper = token.bytes().filter(u8::is_ascii_uppercase).count();
        let lower = token.bytes().filter(u8::is_ascii_lowercase).count();
        let digits = token.bytes().filter(u8::is_ascii_digit).count();
        // Words joined by '-', '_' or '/' (slugs, paths, identifiers) are not keys.
        let longest_lower_run = token
            .split(|c: char| !c.is_ascii_lowercase())
            .map(str::len)
            .max()
            .unwrap_or(0);
        if longest_lower_run >= 9 {
            return false;
        }
        // CamelCase words glued together ("GoogleFinancialJobsCash15"): most capitals open a
        // run of three or more lower-case letters, which random keys rarely do.
        let bytes = token.as_bytes();
        let word_starts = (0..bytes.len())
            .filter(|&i| {
                bytes[i].is_ascii_uppercase()
                    && bytes
                        .get(i + 1..i + 4)
                        .is_some_and(|run| run.iter().all(u8::is_ascii_lowercase))
            })
            .count();
        if upper > 0 && word_starts * 2 > upper {
            return false;
        }
        let classes = [upper, lower, digits].iter().filter(|n| **n > 0).count();
        let digit_share = digits as f64 / token.len() as f64;
        if !hex_only && (classes < 3 || digit_share < 0.04) {
            return false;
        }
        shannon_entropy(token) >= self.options.min_entropy_bits
    }
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(token: &str) -> f64 {
    let mut counts = [0u32; 256];
    for byte in token.bytes() {
        counts[usize::from(byte)] += 1;
    }
    let total = token.len() as f64;
    if total == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|count| **count > 0)
        .map(|&count| {
            let p = f64::from(count) / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<(&'static str, String)> {
        let secrets = Secrets::new(SecretOptions::default()).unwrap();
        let mut out = Vec::new();
        secrets.detect(text, &mut out);
        out.iter()
            .map(|s| (s.rule, text[s.start..s.end].to_string()))
            .collect()
    }

    #[test]
    fn provider_formats() {
        let cases = [
            ("anthropic_key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"),
            ("openai_key", "sk-proj-Abcdefghijklmnopqrstuvwx0123456789"),
            ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
            ("github_token", "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"),
            ("github_pat", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
            ("slack_token", "xoxb-1234567890-abcdefghij"),
            ("google_api_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
            ("stripe_key", "sk_live_FAKE0fake0FAKE0fake0FAKE"),
            ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ];
        for (rule, key) in cases {
            let found = rules(&format!("my key is {key} ok"));
            assert!(
                found.iter().any(|(r, value)| *r == rule && value == key),
                "{rule}: {found:?}"
            );
        }
    }

    #[test]
    fn pem_blocks_even_truncated() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            rules(&format!("x\n{pem}\ny"))[0],
            ("private_key", pem.to_string())
        );
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC";
        assert_eq!(rules(cut)[0].1, cut);
        assert!(rules("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn entropy_tokens_but_not_words_hashes_or_uuids() {
        assert!(rules("token Zx8Qv2Lp9Rt4Wm7Ky3Nb6Hc1 end")
            .iter()
            .any(|(r, _)| *r == "high_entropy"));
        for benign in [
            "the-quick-brown-fox-jumps-over-2023",
            "commit 3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "Antidisestablishmentarianism1",
            "path/to/some/file_name_v2.rs",
            "//GoogleFinancialJobsCash15BuzzCard/GetPaid",
        ] {
            assert!(rules(benign).is_empty(), "{benign}: {:?}", rules(benign));
        }
        assert!(shannon_entropy("aaaa") < 0.01);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
