//! Config files: a config or diagnostics, never a panic; every diagnostic has a line and a
//! column inside the text, and they come ordered by place.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match switchyard_control::parse(text, "fuzz.toml") {
        Ok(_) => {}
        Err(switchyard_control::ConfigError::Invalid(diags)) => {
            assert!(!diags.is_empty());
            let lines = text.split('\n').count();
            for d in &diags {
                assert!(d.line.is_some_and(|l| l >= 1 && l <= lines), "{d}");
                assert!(d.column.is_some_and(|c| c >= 1), "{d}");
            }
            assert!(diags.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
        }
        Err(e) => panic!("not a diagnostic: {e}"),
    }
});
