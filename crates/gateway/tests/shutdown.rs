//! Graceful shutdown under load: many keep-alive clients sending back to back, some of them
//! streams from a slow upstream, and shutdown asked for mid-way. Every request that reached
//! the gateway before the signal gets its whole answer, and every request the gateway recorded
//! was answered.

#![expect(clippy::unwrap_used, clippy::disallowed_methods, reason = "test code")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{start_with_env, user, KEY};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use switchyard_testkit::{FakeUpstream, Flavor, Reply};

const CLIENTS: usize = 32;
const ROUNDS: usize = 4;

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Requests written before the signal that did not get a whole answer, with what went wrong.
    failed_before: Vec<String>,
    answered: usize,
}

/// A client's TCP stream that notes, at every write, whether shutdown had been asked for yet:
/// a request whose last byte was written before the signal had reached the gateway before it.
struct Marked {
    tcp: tokio::net::TcpStream,
    fired: Arc<AtomicBool>,
    before: Arc<AtomicBool>,
}

impl tokio::io::AsyncRead for Marked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Marked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = written {
            self.before
                .store(!self.fired.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Sends requests one after another on one keep-alive connection until the gateway closes it
/// (after the signal). `fired` is set just before shutdown is asked for.
async fn client(
    n: usize,
    addr: std::net::SocketAddr,
    fired: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    warm: Arc<tokio::sync::Notify>,
) -> Seen {
    let before = Arc::new(AtomicBool::new(false));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = Marked {
        tcp,
        fired: fired.clone(),
        before: before.clone(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let mut seen = Seen::default();
    for i in 0.. {
        if sender.ready().await.is_err() {
            break;
        }
        before.store(false, Ordering::SeqCst);
        let stream = (n + i).is_multiple_of(3);
        let body = json!({"model": "m", "messages": user(&format!("client {n} request {i}")), "stream": stream});
        let request = hyper::Request::post("/v1/chat/completions")
            .header("host", addr.to_string())
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let result = async {
            let r = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e:?}"))?;
            let status = r.status();
            let close = r
                .headers()
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let body = r
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_bytes();
            let body = String::from_utf8_lossy(&body);
            let whole = if stream {
                body.trim_end().ends_with("data: [DONE]")
            } else {
                serde_json::from_str::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["choices"][0]["message"]["content"].is_string())
            };
            if status != 200 || !whole {
                return Err(format!("status {status}, body {body:?}"));
            }
            Ok(close)
        }
        .await;
        let sent_before = before.load(Ordering::SeqCst);
        match result {
            Ok(close) => {
                seen.answered += 1;
                if done.fetch_add(1, Ordering::SeqCst) + 1 == CLIENTS * 3 {
                    warm.notify_one();
                }
                if close {
                    break;
                }
            }
            Err(e) if sent_before => {
                seen.failed_before
                    .push(format!("client {n} request {i}: {e}"));
                break;
            }
            Err(_) => break,
        }
    }
    drop(sender);
    let _ = driver.await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_answers_every_request_that_reached_the_gateway() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let config = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"UPSTREAM_TEST_KEY\"\n\
         [models.m]\ndeployments = [{{ provider = \"up\" }}]\n\
         [[keys]]\nid = \"test\"\nsecret_sha256 = \"{{KEY}}\"\n",
        up.base_url()
    );
    let mut failures = Vec::new();
    for _ in 0..ROUNDS {
        // Streams pace their chunks, so some are mid-way when the signal comes.
        for _ in 0..4000 {
            up.push(
                Reply::text("one two three four five six seven eight")
                    .with_delay(Duration::from_millis(15)),
            );
        }
        let mut gw = start_with_env(&config, &[("UPSTREAM_TEST_KEY", "sk-up")]).await;
        let fired = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let warm = Arc::new(tokio::sync::Notify::new());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                tokio::spawn(client(
                    n,
                    gw.addr,
                    fired.clone(),
                    done.clone(),
                    warm.clone(),
                ))
            })
            .collect();
        // Every client has a connection and the traffic is steady: now the signal.
        warm.notified().await;
        fired.store(true, Ordering::SeqCst);
        gw.stop().await;
        let mut answered = 0;
        for c in clients {
            let seen = c.await.unwrap();
            answered += seen.answered;
            failures.extend(seen.failed_before);
        }
        let records = gw.records();
        assert!(
            records.iter().all(|r| r.status == 200),
            "every request the gateway took was answered: {:?}",
            records
                .iter()
                .filter(|r| r.status != 200)
                .map(|r| (r.status, r.error_kind.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(records.len(), answered, "one record per answer");
    }
    assert!(
        failures.is_empty(),
        "{} requests sent before the signal got no whole answer:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
