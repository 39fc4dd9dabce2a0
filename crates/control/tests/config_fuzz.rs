//! Arbitrary text into the config loader: it answers with diagnostics, never a panic.

use proptest::prelude::*;

const DEMO: &str = include_str!("../../../examples/demo.toml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        located_or_accepted(&text)?;
    }

    /// Text made of TOML's own pieces, so that most of it parses and the shape reader and
    /// validation see many kinds of wrong values.
    #[test]
    fn toml_like_text_is_accepted_or_located(lines in proptest::collection::vec(
        "\\[{1,2}[a-z_.]{1,24}\\]{1,2}|[a-z_]{1,14} = (-?[0-9]{1,12}|\"[a-z:0-9. ]{0,12}\"|true|\\[\"[a-z]{0,6}\"\\]|\\{ ?[a-z_]{1,8} = [0-9]{1,3} ?\\}|[0-9.e+-]{1,8})",
        0..24,
    )) {
        let text = lines.join("\n");
        located_or_accepted(&text)?;
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
        located_or_accepted(&text)?;
    }
}

/// The loader's contract on any text: a config, or at least one diagnostic, each with a line
/// and column inside the text, ordered by place.
fn located_or_accepted(text: &str) -> Result<(), TestCaseError> {
    match switchyard_control::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(switchyard_control::ConfigError::Invalid(diags)) => {
            prop_assert!(!diags.is_empty());
            let lines = text.split('\n').count();
            for d in &diags {
                let (Some(line), Some(column)) = (d.line, d.column) else {
                    return Err(TestCaseError::fail(format!("no place: {d}")));
                };
                prop_assert!(line >= 1 && line <= lines, "{d}");
                prop_assert!(column >= 1, "{d}");
            }
            let places: Vec<_> = diags.iter().map(|d| (d.line, d.column)).collect();
            prop_assert!(places.is_sorted(), "{places:?}");
        }
        Err(e) => return Err(TestCaseError::fail(format!("not a diagnostic: {e}"))),
    }
    Ok(())
}
