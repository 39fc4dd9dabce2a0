//! Entry points for fuzz targets and property tests: untrusted upstream bytes in, chunks out,
//! through the same parsing the adapters use. Each piece is delivered as one network read, so
//! callers can split a body anywhere.

use bytes::Bytes;
use futures::StreamExt;

use crate::{ChunkStream, ProviderError};

fn events(
    pieces: Vec<Vec<u8>>,
) -> impl futures::Stream<Item = Result<crate::sse::Event, ProviderError>> + Send + 'static {
    crate::sse::events(futures::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<Bytes, ProviderError>(Bytes::from(p))),
    ))
}

/// An OpenAI-compatible SSE body as the OpenAI adapter reads it.
pub fn openai_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
    crate::openai::chunk_stream(events(pieces))
}

/// An Anthropic Messages SSE body as the Anthropic adapter translates it.
pub fn anthropic_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
    crate::anthropic::chunk_stream(events(pieces), 0)
}

/// A Gemini `streamGenerateContent?alt=sse` body as the Gemini (and Vertex) adapter reads it.
pub fn gemini_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
    crate::gemini::chunk_stream(events(pieces), "gemini".to_owned(), 0)
}

/// A Bedrock ConverseStream body (AWS event-stream binary frames, each with two CRCs) as the
/// Bedrock adapter decodes and translates it; the first byte says whether the answer was
/// asked for as structured output (a forced tool turned back into content).
pub fn bedrock_stream(pieces: Vec<Vec<u8>>) -> ChunkStream {
    let structured = pieces
        .first()
        .and_then(|p| p.first())
        .is_some_and(|b| b & 1 == 1);
    let bytes = futures::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<Bytes, reqwest::Error>(Bytes::from(p))),
    );
    let translator = crate::bedrock::stream::Translator::new(
        "bedrock-fuzz".to_owned(),
        "model".to_owned(),
        0,
        structured,
    );
    crate::translate::chunk_stream(crate::bedrock::stream::frames(bytes), translator)
}

/// A fuzz target's input read by `parse` to its end: the first byte chooses where the rest is
/// split into two network reads. Chunks or errors, never a panic.
pub fn drain_split(data: &[u8], parse: fn(Vec<Vec<u8>>) -> ChunkStream) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) % (body.len() + 1);
    let pieces = vec![body[..at].to_vec(), body[at..].to_vec()];
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    rt.block_on(async {
        let mut stream = parse(pieces);
        while stream.next().await.is_some() {}
    });
}
