//! Arbitrary text into the config loader: it answers with diagnostics, never a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test code"
)]

use proptest::prelude::*;

const DEMO: &str = include_str!("../../../examples/demo.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = switchyard_control::parse(&text, "fuzz.toml");
    }

    /// Lines of a real config deleted, duplicated or mangled: still only diagnostics, and
    /// every diagnostic that has a line points inside the file.
    #[test]
    fn mangled_real_config_gives_located_diagnostics(ops in proptest::collection::vec((0usize..120, 0u8..3, "[a-z=\\[\\]\" 0-9.]{0,12}"), 1..6)) {
        let mut lines: Vec<String> = DEMO.lines().map(str::to_owned).collect();
        for (at, op, junk) in ops {
            let i = at % lines.len().max(1);
            match op {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                _ => { lines[i] = junk; }
            }
            if lines.is_empty() { lines.push(String::new()); }
        }
        let text = lines.join("\n");
        if let Err(switchyard_control::ConfigError::Invalid(diags)) = switchyard_control::parse(&text, "m.toml") {
            prop_assert!(!diags.is_empty());
            for d in diags {
                if let Some(line) = d.line {
                    prop_assert!(line >= 1 && line <= lines.len() + 1, "{d}");
                }
            }
        }
    }
}
