//! A tiny OpenAI-shaped upstream on `127.0.0.1:0` for the tests: a fixed completion, or a
//! two-chunk SSE stream when the request asks for one, after an optional delay.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub struct TestServer {
    pub addr: SocketAddr,
    // Dropping the server aborts its accept loop and connections.
    _tasks: JoinSet<()>,
}

pub async fn start(delay: Duration) -> TestServer {
    serve(delay, StatusCode::OK).await
}

pub async fn start_failing(status: u16) -> TestServer {
    serve(Duration::ZERO, StatusCode::from_u16(status).unwrap()).await
}

async fn serve(delay: Duration, status: StatusCode) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            conns.spawn(async move {
                let svc = service_fn(move |req| handle(req, delay, status));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    TestServer {
        addr,
        _tasks: tasks,
    }
}

async fn handle(
    req: Request<Incoming>,
    delay: Duration,
    status: StatusCode,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    tokio::time::sleep(delay).await;
    let (ctype, text) = if !status.is_success() {
        (
            "application/json",
            r#"{"error":{"message":"no"}}"#.to_owned(),
        )
    } else if v["stream"] == true {
        (
            "text/event-stream",
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n".to_owned(),
        )
    } else {
        (
            "application/json",
            r#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#.to_owned(),
        )
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}
