//! The fake upstream's HTTP server: one axum handler that records each request, takes the
//! next scripted [`Behavior`] and plays it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::behavior::{Behavior, Gate, Reply};
use crate::frames::{self, Frame};
use crate::oauth::Authority;
use crate::sigv4::{AwsKey, Received};
use crate::wire::{self, Flavor};
use crate::wire_bedrock;

/// One request as the fake upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query string, if any (`api-version=…`, `alt=sse`).
    pub query: Option<String>,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body, or the raw text as a JSON string when it was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    flavor: Flavor,
    script: Mutex<VecDeque<Behavior>>,
    requests: Mutex<Vec<RecordedRequest>>,
    disconnects: AtomicUsize,
    disconnected: Notify,
    next_id: AtomicU64,
    /// The credentials a Bedrock fake accepts.
    aws_keys: Mutex<Vec<AwsKey>>,
    /// The API key and OAuth clients the Azure, Gemini and Vertex fakes accept.
    authority: Mutex<Authority>,
}

/// Test code only ever holds these locks for a push or a copy, so a poisoned lock (a test
/// thread panicked) still holds consistent data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake upstream. The server stops when this handle is dropped (connections already
/// open end with the test's runtime).
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts a server on `127.0.0.1:0`.
    pub async fn start(flavor: Flavor) -> std::io::Result<FakeUpstream> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            flavor,
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            disconnects: AtomicUsize::new(0),
            disconnected: Notify::new(),
            next_id: AtomicU64::new(1),
            aws_keys: Mutex::new(wire_bedrock::default_keys()),
            authority: Mutex::default(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = serve(listener, app);
        Ok(FakeUpstream { addr, shared, task })
    }

    pub fn flavor(&self) -> Flavor {
        self.shared.flavor
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a provider is configured with: `http://127.0.0.1:PORT/v1` for OpenAI,
    /// `http://127.0.0.1:PORT` for the others (whose adapters append their API's paths:
    /// Anthropic's `/v1/messages`, Bedrock's `/model/{id}/converse`, …).
    pub fn base_url(&self) -> String {
        match self.shared.flavor {
            Flavor::OpenAi => format!("http://{}/v1", self.addr),
            Flavor::Anthropic
            | Flavor::Bedrock
            | Flavor::Azure
            | Flavor::Gemini
            | Flavor::Vertex => format!("http://{}", self.addr),
        }
    }

    /// Lets a Bedrock fake accept requests signed with `key` too (temporary credentials from
    /// an instance role, a rotated key).
    pub fn allow_aws_key(&self, key: AwsKey) {
        lock(&self.shared.aws_keys).push(key);
    }

    /// The OAuth token endpoint (Azure and Vertex flavors): `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The API key the Azure (`api-key`) and Gemini (`x-goog-api-key`) flavors take.
    pub fn require_api_key(&self, key: &str) {
        lock(&self.shared.authority).api_key = Some(key.to_owned());
    }

    /// The application whose client credentials `/token` takes, for `scope`.
    pub fn require_client(&self, client_id: &str, client_secret: &str, scope: &str) {
        let mut authority = lock(&self.shared.authority);
        authority.client = Some((client_id.to_owned(), client_secret.to_owned()));
        authority.scope = Some(scope.to_owned());
    }

    /// How many tokens `/token` has granted.
    pub fn tokens_granted(&self) -> usize {
        lock(&self.shared.authority).granted.len()
    }

    /// Queues how the next request is answered (first in, first out).
    pub fn push(&self, behavior: impl Into<Behavior>) {
        lock(&self.shared.script).push_back(behavior.into());
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.requests).last().cloned()
    }

    /// How many answers the client abandoned: streams dropped before their end, and hung
    /// requests whose connection closed.
    pub fn disconnects(&self) -> usize {
        self.shared.disconnects.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` disconnects have been seen. Never returns if they do not
    /// happen: wrap it in `tokio::time::timeout`.
    pub async fn wait_for_disconnects(&self, n: usize) {
        loop {
            let notified = self.shared.disconnected.notified();
            tokio::pin!(notified);
            // Registered before the check, so a disconnect in between still wakes us.
            notified.as_mut().enable();
            if self.disconnects() >= n {
                return;
            }
            notified.await;
        }
    }
}

/// Serves `app` on `listener` in a task, which the test server's handle aborts when dropped.
pub(crate) fn serve(listener: TcpListener, app: Router) -> JoinHandle<()> {
    #[expect(
        clippy::disallowed_methods,
        reason = "test server: aborted when the handle drops, and ends with the test runtime"
    )]
    tokio::spawn(async move {
        // An accept error ends the server; the test then fails on connecting, which says
        // more than a panic here would.
        let _ = axum::serve(listener, app).await;
    })
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a disconnect when dropped while armed: the response (or the wait for one) was
/// abandoned by the client before the server finished it.
struct DisconnectGuard {
    shared: Arc<Shared>,
    armed: bool,
}

impl DisconnectGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shared.disconnects.fetch_add(1, Ordering::SeqCst);
            self.shared.disconnected.notify_waiters();
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let post = method == Method::POST;
    if post && uri.path() == "/token" && matches!(shared.flavor, Flavor::Azure | Flavor::Vertex) {
        let token_url = format!(
            "http://{}/token",
            header_text(&headers, "host").unwrap_or("")
        );
        let form = String::from_utf8_lossy(&raw);
        return match lock(&shared.authority).grant(&token_url, &form) {
            Ok(grant) => axum::Json(grant).into_response(),
            Err(refusal) => (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response(),
        };
    }
    let body: Value = serde_json::from_slice(&raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
    let recorded_headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    lock(&shared.requests).push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: recorded_headers.clone(),
        body: body.clone(),
    });
    if shared.flavor == Flavor::Bedrock {
        let received = Received {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: &recorded_headers,
            body: &raw,
        };
        let keys = lock(&shared.aws_keys).clone();
        if let Err(rejection) = wire_bedrock::check_signature(&received, &keys) {
            return bedrock_error(403, rejection.error_type, None, &rejection.message);
        }
    }

    let Some(call) = Call::of(shared.flavor, post, uri.path(), uri.query()) else {
        return error(
            shared.flavor,
            404,
            None,
            "no such route on the fake upstream",
        );
    };
    if !body.is_object() {
        return error(shared.flavor, 400, None, "the body is not a JSON object");
    }
    if let Some((status, message)) = refusal(&shared, &call, &headers, uri.query(), &body) {
        return error(shared.flavor, status, None, message);
    }
    let behavior = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| Behavior::Reply(Reply::default()));
    play(&shared, behavior, &call, &body).await
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What the real service refuses before looking at the request: Azure without `api-version`
/// or credentials, Gemini without its key, Vertex without a granted token, Anthropic on
/// Vertex without `anthropic_version` or with a `model` in the body.
fn refusal(
    shared: &Shared,
    call: &Call,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Value,
) -> Option<(u16, &'static str)> {
    let authority = lock(&shared.authority);
    let bearer = authority.bearer_ok(header_text(headers, "authorization"));
    match shared.flavor {
        // Bedrock's signature is checked before the route, as AWS does.
        Flavor::OpenAi | Flavor::Anthropic | Flavor::Bedrock => None,
        Flavor::Azure => {
            let version = query.is_some_and(|q| {
                q.split('&').any(|p| {
                    p.strip_prefix("api-version=")
                        .is_some_and(|v| !v.is_empty())
                })
            });
            if !version {
                Some((404, "Resource not found"))
            } else if !(bearer || authority.key_ok(header_text(headers, "api-key"))) {
                Some((
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint.",
                ))
            } else {
                None
            }
        }
        Flavor::Gemini => (!authority.key_ok(header_text(headers, "x-goog-api-key")))
            .then_some((400, "API key not valid. Please pass a valid API key.")),
        Flavor::Vertex if !bearer => Some((401, "Request had invalid authentication credentials.")),
        Flavor::Vertex if call.wire == Flavor::Anthropic => {
            if body.get("anthropic_version") != Some(&Value::from("vertex-2023-10-16")) {
                Some((400, "anthropic_version: vertex-2023-10-16 is required"))
            } else if body.get("model").is_some() {
                Some((400, "model: Extra inputs are not permitted"))
            } else {
                None
            }
        }
        Flavor::Vertex => None,
    }
}

/// What a request asks for, read from its route.
struct Call {
    route: Route,
    /// Whose bodies answer it.
    wire: Flavor,
    /// The model named by the path, where the API puts it there.
    model: Option<String>,
    /// Streamed or not, where the path says.
    stream: Option<bool>,
}

impl Call {
    fn of(flavor: Flavor, post: bool, path: &str, query: Option<&str>) -> Option<Call> {
        if !post {
            return None;
        }
        let plain = |route, wire| Call {
            route,
            wire,
            model: None,
            stream: None,
        };
        let sse = query.is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
        match flavor {
            Flavor::OpenAi => match path {
                "/v1/chat/completions" => Some(plain(Route::Chat, flavor)),
                "/v1/embeddings" => Some(plain(Route::Embeddings, flavor)),
                _ => None,
            },
            Flavor::Anthropic => (path == "/v1/messages").then(|| plain(Route::Chat, flavor)),
            Flavor::Bedrock => {
                let bedrock = wire_bedrock::route(path)?;
                Some(Call {
                    model: Some(bedrock.model),
                    stream: Some(bedrock.stream),
                    ..plain(Route::Chat, flavor)
                })
            }
            Flavor::Azure => {
                let (deployment, operation) =
                    path.strip_prefix("/openai/deployments/")?.split_once('/')?;
                let route = match operation {
                    "chat/completions" => Route::Chat,
                    "embeddings" => Route::Embeddings,
                    _ => return None,
                };
                Some(Call {
                    model: Some(deployment.to_owned()),
                    ..plain(route, flavor)
                })
            }
            Flavor::Gemini => {
                let (model, method) = path.strip_prefix("/v1beta/models/")?.split_once(':')?;
                gemini_call(model, method, sse, Flavor::Gemini)
            }
            Flavor::Vertex => {
                let segments: Vec<&str> = path.strip_prefix("/v1/projects/")?.split('/').collect();
                let [_project, "locations", _location, "publishers", publisher, "models", rest] =
                    segments[..]
                else {
                    return None;
                };
                let (model, method) = rest.split_once(':')?;
                match (publisher, method) {
                    ("google", _) => gemini_call(model, method, sse, Flavor::Vertex),
                    ("anthropic", "rawPredict" | "streamRawPredict") => Some(Call {
                        model: Some(model.to_owned()),
                        stream: Some(method == "streamRawPredict"),
                        ..plain(Route::Chat, Flavor::Anthropic)
                    }),
                    _ => None,
                }
            }
        }
    }
}

/// `generateContent`, or `streamGenerateContent` with `alt=sse` (the fake speaks only SSE).
fn gemini_call(model: &str, method: &str, sse: bool, wire: Flavor) -> Option<Call> {
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" if sse => true,
        _ => return None,
    };
    Some(Call {
        route: Route::Chat,
        wire,
        model: Some(model.to_owned()),
        stream: Some(stream),
    })
}

/// Plays one behavior (and, for a gated one, what it holds once the gate opens).
async fn play(shared: &Arc<Shared>, behavior: Behavior, call: &Call, body: &Value) -> Response {
    match behavior {
        Behavior::Status {
            status,
            message,
            retry_after,
        } => error(shared.flavor, status, retry_after.as_deref(), &message),
        Behavior::Redirect { status, location } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
            let mut response = status.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Behavior::Hang => {
            let _guard = DisconnectGuard {
                shared: shared.clone(),
                armed: true,
            };
            std::future::pending::<Response>().await
        }
        Behavior::Gated { gate, then } => {
            let mut guard = DisconnectGuard {
                shared: shared.clone(),
                armed: true,
            };
            gate.passed().await;
            guard.disarm();
            Box::pin(play(shared, *then, call, body)).await
        }
        Behavior::Reply(reply) => match call.route {
            Route::Embeddings => {
                let mut body = body.clone();
                if let Some(model) = &call.model {
                    body["model"] = Value::from(model.as_str());
                }
                axum::Json(wire::embeddings_body(&body)).into_response()
            }
            Route::Chat => chat(shared, &reply, call, body),
        },
    }
}

enum Route {
    Chat,
    Embeddings,
}

fn error(flavor: Flavor, status: u16, retry_after: Option<&str>, message: &str) -> Response {
    if flavor == Flavor::Bedrock {
        return bedrock_error(
            status,
            wire_bedrock::error_type(status),
            retry_after,
            message,
        );
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if matches!(flavor, Flavor::Gemini | Flavor::Vertex) {
        // Google says how long to wait in the body's `RetryInfo`, never in a header.
        let body = crate::wire_gemini::error_body(status.as_u16(), message, retry_after);
        return (status, axum::Json(body)).into_response();
    }
    let mut response = (
        status,
        axum::Json(wire::error_body(flavor, status.as_u16(), message)),
    )
        .into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Bedrock's error shape: `{"message"}`, the type in `x-amzn-ErrorType`.
fn bedrock_error(
    status: u16,
    error_type: &str,
    retry_after: Option<&str>,
    message: &str,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        axum::Json(wire::error_body(Flavor::Bedrock, status.as_u16(), message)),
    )
        .into_response();
    let kind = format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(value) = HeaderValue::from_str(&kind) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn chat(shared: &Arc<Shared>, reply: &Reply, call: &Call, request: &Value) -> Response {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let model = match &call.model {
        Some(model) => model.as_str(),
        None => request.get("model").and_then(Value::as_str).unwrap_or(""),
    };
    let streaming = call
        .stream
        .unwrap_or(request.get("stream") == Some(&Value::Bool(true)));
    let flavor = call.wire;
    let ask = wire::Ask::of(request);
    let (frames, content_type) = if streaming {
        (
            wire::chat_stream(flavor, reply, model, id, &ask),
            wire::stream_content_type(flavor),
        )
    } else {
        (
            frames::chat_body_frames(reply, &wire::chat_body(flavor, reply, model, id, &ask)),
            "application/json",
        )
    };
    let body = paced(frames, reply.delay, reply.hold.clone(), shared.clone());
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if streaming {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// The frames as a body, `delay` apart. The body stream holds an armed [`DisconnectGuard`]:
/// if hyper drops it before the last frame (the client went away), that is a disconnect. An
/// `Abort` frame yields an error, which makes hyper cut the connection.
fn paced(frames: Vec<Frame>, delay: Duration, hold: Option<Gate>, shared: Arc<Shared>) -> Body {
    struct State {
        frames: std::vec::IntoIter<Frame>,
        first: bool,
        delay: Duration,
        hold: Option<Gate>,
        guard: DisconnectGuard,
    }
    let state = State {
        frames: frames.into_iter(),
        first: true,
        delay,
        hold,
        guard: DisconnectGuard {
            shared,
            armed: true,
        },
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let frame = st.frames.next();
        // No pause before the end of the body: a client that hangs up right after the last
        // frame has not abandoned anything.
        if frame.is_some() && !st.first && !st.delay.is_zero() {
            tokio::time::sleep(st.delay).await;
        }
        if !st.first {
            if let Some(gate) = st.hold.take() {
                gate.passed().await;
            }
        }
        st.first = false;
        if matches!(frame, Some(Frame::Abort)) {
            // Returning Pending once lets hyper flush what came before, so the client really
            // receives the content before the connection breaks.
            tokio::task::yield_now().await;
        }
        match frame {
            Some(Frame::Bytes(b)) => Some((Ok::<Bytes, std::io::Error>(b), st)),
            Some(Frame::Abort) => {
                // The server ends this one: not a client disconnect.
                st.guard.disarm();
                let e =
                    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "scripted abort");
                Some((Err(e), st))
            }
            None => {
                st.guard.disarm();
                None
            }
        }
    });
    Body::from_stream(stream)
}
