//! Entry points for fuzz targets and property tests: untrusted upstream bytes in, chunks out,
//! through the same parsing the adapters use. Each piece is delivered as one network read, so
//! callers can split a body anywhere.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;

use crate::{ChunkStream, ProviderError};

fn events(
    pieces: Vec<Vec<u8>>,
) -> impl futures::Stream<Item = Result<eventsource_stream::Event, ProviderError>> + Send + 'static
{
    futures::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<Bytes, std::convert::Infallible>(Bytes::from(p))),
    )
    .eventsource()
    .map(|e| e.map_err(|e| ProviderError::Decode(e.to_string())))
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
