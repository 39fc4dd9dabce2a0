//! One attempt at a deployment for a request that asks for `n > 1` choices or `logprobs`.
//!
//! 1. A request asking for `logprobs` (or `top_logprobs`) of a provider that does not return
//!    them (`ChatProvider::logprobs`) is refused as `Unsupported` naming `logprobs`: a 400,
//!    not retried, rather than an answer silently without them.
//! 2. `n > 1` goes as it is to a provider that returns several choices per call
//!    (`ChatProvider::native_choices`: OpenAI-compatible upstreams).
//! 3. Otherwise it is fanned out: `n` calls of one choice each, at once, to the same
//!    deployment. The answers are merged into one: choices indexed 0..n-1 in call order, the
//!    first answer's id, and usage summed (left out when any call reported none, so the
//!    gateway counts the text of every choice instead). One failed call fails the attempt
//!    and drops the others, which cancels them; the dispatcher then retries or falls back
//!    as for any failed attempt.
//! 4. Streams are merged as they come: each chunk's choice gets its call's index and the
//!    first chunk's id, the calls' usage chunks are held back and summed into one usage
//!    chunk after the last call ends. The attempt has started once any call's first chunk is
//!    in hand: a call that breaks after that is the stream's error event, as for one call.
//!    (Every call has answered by then, whole or with its stream's headers.)

use futures::stream::{self, SelectAll, StreamExt};
use switchyard_api::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Usage};
use switchyard_providers::{CallOptions, ChatProvider, ChatReply, ChunkStream, ProviderError};

/// One attempt: as it is, or fanned out (module comment).
pub async fn call(
    provider: &dyn ChatProvider,
    mut request: ChatCompletionRequest,
    options: CallOptions,
) -> Result<ChatReply, ProviderError> {
    if request.wants_logprobs() && !provider.logprobs() {
        return Err(ProviderError::unsupported(
            Some("logprobs"),
            format!(
                "the model's `{}` provider does not return logprobs; send the request without \
                 `logprobs` and `top_logprobs`, or to a model served by an OpenAI-compatible \
                 provider",
                provider.kind()
            ),
        ));
    }
    let n = request.choices();
    if n == 1 || provider.native_choices() {
        return provider.chat_with(request, options).await;
    }
    request.n = None;
    let calls = (0..n).map(|_| provider.chat_with(request.clone(), options.clone()));
    let replies = futures::future::try_join_all(calls).await?;
    let mut whole = Vec::new();
    let mut streams = Vec::new();
    for reply in replies {
        match reply {
            ChatReply::Complete(r) => whole.push(r),
            ChatReply::Stream(s) => streams.push(s),
        }
    }
    if streams.is_empty() && !whole.is_empty() {
        let first = whole.remove(0);
        return Ok(ChatReply::Complete(merge_responses(first, whole)));
    }
    if whole.is_empty() {
        return Ok(ChatReply::Stream(merge_streams(streams)));
    }
    Err(ProviderError::Decode(
        "the provider answered some calls whole and some as streams".into(),
    ))
}

/// Whole answers as one: every choice, reindexed in order, and the summed usage.
pub fn merge_responses(
    mut merged: ChatCompletionResponse,
    rest: Vec<ChatCompletionResponse>,
) -> ChatCompletionResponse {
    let mut usage = merged.usage.take();
    for answer in rest {
        usage = add_usage(usage, answer.usage);
        merged.choices.extend(answer.choices);
    }
    for (i, c) in merged.choices.iter_mut().enumerate() {
        c.index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    merged.usage = usage;
    merged
}

/// The sum of two calls' usage; `None` when either reported none.
fn add_usage(a: Option<Usage>, b: Option<Usage>) -> Option<Usage> {
    let (a, b) = (a?, b?);
    Some(Usage::new(
        a.prompt_tokens.saturating_add(b.prompt_tokens),
        a.completion_tokens.saturating_add(b.completion_tokens),
    ))
}

/// What a merged stream carries between chunks.
struct Merge {
    calls: SelectAll<ChunkStream>,
    /// The first chunk's id and created time, given to every chunk.
    first: Option<(String, i64, String)>,
    /// Usage summed so far, and how many calls reported theirs.
    usage: Option<Usage>,
    reported: usize,
    expected: usize,
    ended: bool,
}

/// Streams as one (module comment, 4.).
pub fn merge_streams(streams: Vec<ChunkStream>) -> ChunkStream {
    let expected = streams.len();
    let tagged = streams.into_iter().enumerate().map(|(i, s)| {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let tagged = s.map(move |chunk| {
            chunk.map(|mut chunk| {
                for c in &mut chunk.choices {
                    c.index = index;
                }
                chunk
            })
        });
        Box::pin(tagged) as ChunkStream
    });
    let state = Merge {
        calls: stream::select_all(tagged),
        first: None,
        usage: None,
        reported: 0,
        expected,
        ended: false,
    };
    Box::pin(stream::unfold(state, |mut s| async move {
        while !s.ended {
            let Some(item) = s.calls.next().await else {
                s.ended = true;
                return s.usage_chunk().map(|chunk| (Ok(chunk), s));
            };
            let mut chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    s.ended = true;
                    return Some((Err(e), s));
                }
            };
            if let Some(u) = chunk.usage.take() {
                s.reported += 1;
                s.usage = Some(match s.usage.take() {
                    None => u,
                    Some(sum) => add_usage(Some(sum), Some(u)).unwrap_or_default(),
                });
            }
            let (id, created, _) = s
                .first
                .get_or_insert_with(|| (chunk.id.clone(), chunk.created, chunk.model.clone()));
            chunk.id.clone_from(id);
            chunk.created = *created;
            if !chunk.choices.is_empty() {
                return Some((Ok(chunk), s));
            }
        }
        None
    }))
}

impl Merge {
    /// The summed usage as the stream's last chunk, when every call reported its own.
    fn usage_chunk(&mut self) -> Option<ChatCompletionChunk> {
        let usage = self
            .usage
            .take()
            .filter(|_| self.reported == self.expected)?;
        let (id, created, model) = self.first.clone()?;
        Some(ChatCompletionChunk {
            id,
            object: "chat.completion.chunk".to_owned(),
            created,
            model,
            choices: Vec::new(),
            usage: Some(usage),
            system_fingerprint: None,
            extra: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(id: &str, text: &str, usage: Option<(u32, u32)>) -> ChatCompletionResponse {
        serde_json::from_value(json!({
            "id": id, "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage.map(|(p, c)| json!({"prompt_tokens": p, "completion_tokens": c,
                                               "total_tokens": p + c})),
        }))
        .unwrap()
    }

    #[test]
    fn merged_answers_are_reindexed_and_their_usage_summed() {
        let merged = merge_responses(
            answer("a", "one", Some((5, 2))),
            vec![
                answer("b", "two", Some((5, 3))),
                answer("c", "three", Some((5, 4))),
            ],
        );
        assert_eq!(merged.id, "a");
        let indexes: Vec<u32> = merged.choices.iter().map(|c| c.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        assert_eq!(merged.choices[2].message.text(), "three");
        let usage = merged.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (15, 9));
        assert_eq!(usage.total_tokens, 24);
        // One call without usage: the gateway counts every choice's text instead.
        let merged = merge_responses(
            answer("a", "one", Some((5, 2))),
            vec![answer("b", "two", None)],
        );
        assert!(merged.usage.is_none());
    }

    fn chunk(id: &str, text: Option<&str>, usage: Option<(u32, u32)>) -> ChatCompletionChunk {
        let choices = match text {
            Some(t) => json!([{"index": 0, "delta": {"content": t}, "finish_reason": null}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "id": id, "created": 1, "model": "m", "choices": choices,
            "usage": usage.map(|(p, c)| json!({"prompt_tokens": p, "completion_tokens": c,
                                               "total_tokens": p + c})),
        }))
        .unwrap()
    }

    fn stream_of(chunks: Vec<ChatCompletionChunk>) -> ChunkStream {
        Box::pin(stream::iter(chunks.into_iter().map(Ok)))
    }

    #[tokio::test]
    async fn merged_streams_tag_each_call_and_sum_usage_once_at_the_end() {
        let merged = merge_streams(vec![
            stream_of(vec![
                chunk("a", Some("x"), None),
                chunk("a", None, Some((4, 1))),
            ]),
            stream_of(vec![
                chunk("b", Some("y"), None),
                chunk("b", None, Some((4, 2))),
            ]),
        ]);
        let chunks: Vec<ChatCompletionChunk> = merged.map(|c| c.unwrap()).collect::<Vec<_>>().await;
        let usage_chunks: Vec<&ChatCompletionChunk> =
            chunks.iter().filter(|c| c.usage.is_some()).collect();
        assert_eq!(usage_chunks.len(), 1, "one usage chunk: {chunks:?}");
        assert!(std::ptr::eq(usage_chunks[0], chunks.last().unwrap()));
        let usage = usage_chunks[0].usage.clone().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (8, 3));
        assert!(chunks.iter().all(|c| c.id == chunks[0].id));
        let mut texts: Vec<(u32, String)> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .map(|c| (c.index, c.delta.content.clone().unwrap_or_default()))
            .collect();
        texts.sort();
        assert_eq!(texts, [(0, "x".to_owned()), (1, "y".to_owned())]);
    }
}
