//! The PII scanner, masker and streaming unmasker on arbitrary bytes (as lossy UTF-8): spans
//! on char boundaries and disjoint, pseudonyms restored exactly, streaming equal to one-shot
//! restoring for a fuzzer-chosen cut, and never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use switchyard_pii::{MaskPolicy, Masker, Scanner, ScannerConfig};

/// Built once: compiling the regexes and word lists per input would drown the fuzzer.
fn masker() -> Option<&'static Masker> {
    static MASKER: OnceLock<Option<Masker>> = OnceLock::new();
    MASKER
        .get_or_init(|| {
            let scanner = Scanner::new(ScannerConfig::default()).ok()?;
            Some(Masker::new(Arc::new(scanner), MaskPolicy::default()))
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(masker) = masker() else { return };
    // The first byte chooses where the masked text is cut for the streaming unmasker.
    let Some((&cut, body)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(body);

    let spans = masker.scanner().scan(&text);
    for pair in spans.windows(2) {
        assert!(pair[0].end <= pair[1].start, "overlapping findings");
    }
    for span in &spans {
        assert!(span.start < span.end, "empty finding");
        assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
    }

    let mut session = masker.session(b"fuzz");
    let masked = session.mask(&text);
    assert_eq!(session.unmask(&masked.text), text, "pseudonyms must restore exactly");

    let whole = masked.text;
    let mut at = usize::from(cut) * whole.len() / 256;
    while !whole.is_char_boundary(at) {
        at -= 1;
    }
    let mut stream = session.stream_unmasker();
    let mut streamed = stream.push(&whole[..at]);
    streamed.push_str(&stream.push(&whole[at..]));
    streamed.push_str(&stream.finish());
    assert_eq!(streamed, session.unmask(&whole));
});
