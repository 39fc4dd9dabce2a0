//! `switchyard-mock-upstream`: the cheapest OpenAI-shaped upstream that still answers like a
//! model server (an id, the model, `usage`, a streamed answer in several chunks ending with
//! `finish_reason` and, when asked, a usage chunk), for `bench/run.sh`.
//!
//! `switchyard sim` simulates a model (tokenizer, token timing, batching) and costs tens of
//! microseconds per request; on the load generator's CPU that cost caps what the floor (nginx)
//! and the gateway can be shown to do. This server does next to nothing per request, so the
//! ratio between nginx and the gateway measures the proxies, not the upstream.
//!
//! ```text
//! switchyard-mock-upstream --listen 127.0.0.1:9100 [--tokens 8]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-mock-upstream",
    about = "A minimal OpenAI-shaped upstream for benchmarks"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Output tokens per answer (one word each; one chunk each when streamed).
    #[arg(long, default_value_t = 8)]
    tokens: usize,
}

/// The answers, built once: the server's per-request work is reading the body and writing
/// one of these.
struct Answers {
    completion: Bytes,
    stream: Bytes,
    stream_with_usage: Bytes,
    models: Bytes,
}

impl Answers {
    fn new(tokens: usize) -> Self {
        let words: Vec<&str> = ["hello"].iter().cycle().take(tokens).copied().collect();
        let usage = serde_json::json!({
            "prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens
        });
        let completion = serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "fast",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": words.join(" ")}}],
            "usage": usage,
        });
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            let c = serde_json::json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
                "model": "fast",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            format!("data: {c}\n\n")
        };
        let mut stream = chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        );
        for (i, w) in words.iter().enumerate() {
            let text = if i == 0 {
                (*w).to_owned()
            } else {
                format!(" {w}")
            };
            stream.push_str(&chunk(serde_json::json!({ "content": text }), None));
        }
        stream.push_str(&chunk(serde_json::json!({}), Some("stop")));
        let usage_chunk = serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
            "model": "fast", "choices": [], "usage": usage,
        });
        let with_usage = format!("{stream}data: {usage_chunk}\n\ndata: [DONE]\n\n");
        stream.push_str("data: [DONE]\n\n");
        let models = serde_json::json!({
            "object": "list", "data": [{"id": "fast", "object": "model", "owned_by": "mock"}]
        });
        Answers {
            completion: Bytes::from(completion.to_string()),
            stream: Bytes::from(stream),
            stream_with_usage: Bytes::from(with_usage),
            models: Bytes::from(models.to_string()),
        }
    }
}

/// The only fields of a request this server looks at.
#[derive(Deserialize)]
struct Asked {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let answers: &'static Answers = Box::leak(Box::new(Answers::new(args.tokens)));
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("switchyard-mock-upstream listening on {}", args.listen);
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        #[expect(
            clippy::disallowed_methods,
            reason = "a benchmark's upstream: its connections end with the process"
        )]
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, answers));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    answers: &'static Answers,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path().ends_with("/models") || req.uri().path() == "/healthz" {
        return Ok(respond(
            StatusCode::OK,
            "application/json",
            answers.models.clone(),
        ));
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(respond(StatusCode::BAD_REQUEST, "text/plain", Bytes::new()));
    };
    let Ok(asked) = serde_json::from_slice::<Asked>(&body) else {
        let error = Bytes::from_static(br#"{"error":{"message":"not a JSON chat request"}}"#);
        return Ok(respond(StatusCode::BAD_REQUEST, "application/json", error));
    };
    Ok(match (asked.stream, asked.stream_options) {
        (false, _) => respond(
            StatusCode::OK,
            "application/json",
            answers.completion.clone(),
        ),
        (
            true,
            Some(StreamOptions {
                include_usage: true,
            }),
        ) => respond(
            StatusCode::OK,
            "text/event-stream",
            answers.stream_with_usage.clone(),
        ),
        (true, _) => respond(StatusCode::OK, "text/event-stream", answers.stream.clone()),
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
