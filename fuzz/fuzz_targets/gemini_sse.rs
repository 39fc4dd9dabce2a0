//! Gemini (and Vertex AI) upstream SSE bodies, split into reads at the fuzzer's choice: chunks
//! or errors, never a panic.
#![no_main]

use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the body is split into two network reads.
    let Some((&cut, body)) = data.split_first() else { return };
    let at = usize::from(cut) % (body.len() + 1);
    let pieces = vec![body[..at].to_vec(), body[at..].to_vec()];
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    rt.block_on(async {
        let mut stream = switchyard_providers::fuzzing::gemini_stream(pieces);
        while stream.next().await.is_some() {}
    });
});
