//! The HTTP edge: routes, the middleware stack, handlers that frame pipeline outcomes as HTTP,
//! health and metrics, start-up and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use switchyard_control::Config;
use switchyard_store::telemetry::{Closed, TelemetrySender, TelemetryWriter};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::control_plane::background::Background;
use crate::control_plane::versions::{Env, Launch};
use crate::control_plane::{ControlPlane, OpenError};
use crate::data_plane::pipeline::ChatOutcome;
use crate::data_plane::record::MAX_REQUEST_ID;
use crate::data_plane::stream::sse_body;
use crate::edge::access::body_error;
use crate::edge::answer::{
    answer_json, begin, escalate, event_stream, fail, served_headers, REQUEST_ID,
};
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};
use crate::metrics as m;
use crate::tasks::spawn_blocking;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("start-up panicked")]
    Panicked,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A gateway bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    writer: TelemetryWriter,
    config: Arc<Config>,
}

impl Server {
    /// Opens the control plane (`ControlPlane::open`: the store, the config version to run,
    /// its pipeline) and binds the listener. `env` reads environment variables (secrets);
    /// pass `|k| std::env::var(k).ok()` outside tests.
    pub async fn bind(launch: Launch, env: Env) -> Result<Self, StartError> {
        let first = launch
            .config_of(&launch.text, &launch.origin)
            .map_err(OpenError::from)?;
        Self::bind_parsed(launch, first, env).await
    }

    /// [`Server::bind`] with the launch config already parsed (`launch.config_of`), for a
    /// caller that checked it first: a parse holds every guard's and router's model, so a
    /// second one costs start-up time and a peak of memory (issue 18).
    pub async fn bind_parsed(launch: Launch, first: Config, env: Env) -> Result<Self, StartError> {
        let first = Arc::new(first);
        let link = ControlPlane::connect_shared(&first).await?;
        // Off the async threads: the store blocks (and PostgreSQL's client refuses to run on
        // them).
        let (control, writer, config) =
            tokio::task::spawn_blocking(move || ControlPlane::open(launch, env, first, link))
                .await
                .map_err(|_| StartError::Panicked)??;
        let dashboard: Box<dyn crate::edge::sessions::SessionStore> =
            if config.storage.postgres.is_some() {
                // Behind a load balancer a browser's next request may reach another replica.
                Box::new(crate::edge::sessions::StoredSessions::new(
                    control.store.clone(),
                ))
            } else {
                Box::new(crate::edge::sessions::MemorySessions::default())
            };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let state = Arc::new(AppState {
            control: Arc::new(control),
            prometheus: m::handle(),
            dashboard,
            sign_in: crate::edge::sessions::SignInThrottle::default(),
            file_transfers: Arc::new(tokio::sync::Semaphore::new(
                crate::edge::batches::FILE_TRANSFERS,
            )),
        });
        Ok(Server {
            listener,
            state,
            writer,
            config,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (`serve_connection` says
    /// how each connection ends): stops accepting, serves the connections already made (those
    /// waiting in the listen backlog included), lets requests in flight finish (up to
    /// `shutdown_grace`), and writes every queued record before returning what was written
    /// and what was lost.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Closed> {
        let background = Background::start(&self.state.control, &self.config);
        let Server {
            listener,
            state,
            writer,
            config,
        } = self;
        let app = router(state.clone(), config.server.max_body_bytes);
        let grace = config.server.shutdown_grace;
        let linger = IDLE_LINGER.min(grace);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Histogram samples wait in the recorder until upkeep folds them into buckets; without
        // it, memory grows with every request between two scrapes.
        let prometheus = state.prometheus.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "aborted below; it holds no state worth finishing"
        )]
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });
        // Every connection's task, joined (or aborted after the grace period) before returning.
        let mut connections = tokio::task::JoinSet::new();
        let serve = |connections: &mut tokio::task::JoinSet<()>,
                     tcp: tokio::net::TcpStream,
                     peer: SocketAddr| {
            connections.spawn(serve_connection(
                tcp,
                peer,
                app.clone(),
                stop_rx.clone(),
                linger,
            ));
        };
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                (tcp, peer) = accept(&listener) => serve(&mut connections, tcp, peer),
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Connections the kernel completed before the signal wait in the backlog with their
        // requests already sent: they are served too. Then nothing more is accepted.
        let backlog = listener.into_std()?;
        while let Ok((tcp, peer)) = backlog.accept() {
            let tcp = tcp
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(tcp));
            if let Ok(tcp) = tcp {
                serve(&mut connections, tcp, peer);
            }
        }
        drop(backlog);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "shutdown grace period over; closing connections still open"
            );
            connections.shutdown().await;
        }
        upkeep.abort();
        background.stop().await;
        // The spans of requests now finished, exported within a bound (the export thread
        // waits on this runtime's tasks, so it is waited for off the async threads).
        let control = state.control.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(traces) = &control.traces {
                traces.shutdown(TRACES_FLUSH);
            }
        })
        .await;
        let telemetry = state.control.telemetry.clone();
        drop(state);
        let closed = tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap_or_else(|_| Closed {
                written: telemetry.written(),
                lost: telemetry.lost(),
                spooled: telemetry.spooled() as u64,
            });
        count_lost_records(&telemetry);
        Ok(closed)
    }
}

/// How long shutdown waits for the spans still queued to be exported.
const TRACES_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// After the shutdown signal, how long a connection may stay open for a request already on
/// its way (bounded by `shutdown_grace`): an idle keep-alive connection closed at once races
/// with the client's next request, which then fails without an answer.
const IDLE_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The next connection. An error of one connection (reset before it was accepted) is skipped;
/// others (out of file descriptors) are logged and retried after a pause, as axum::serve does.
async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    use std::io::ErrorKind as K;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e)
                if matches!(
                    e.kind(),
                    K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
                ) => {}
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed; trying again in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Serves one connection, HTTP/1.1 or HTTP/2, until it closes:
/// 1. Until shutdown is asked for (`stop`), as any server.
/// 2. From then on, every HTTP/1 answer carries `connection: close`: the connection closes
///    after the answer in progress, or after the next request's if it is idle.
/// 3. After `linger`, hyper's graceful shutdown: an idle connection closes now, a busy one
///    (a stream) after its answer; HTTP/2 gets a GOAWAY.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    linger: std::time::Duration,
) {
    use tower::ServiceExt;
    let _ = tcp.set_nodelay(true);
    let closing = stop.clone();
    let service = hyper::service::service_fn(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            let http1 = request.version() < axum::http::Version::HTTP_2;
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let answer = app.clone().oneshot(request);
            let closing = closing.clone();
            async move {
                let mut response = answer.await?;
                if http1 && *closing.borrow() {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        },
    );
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tcp), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        () = tokio::time::sleep(linger) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Records that will never be written, in `/metrics` by reason.
fn count_lost_records(telemetry: &TelemetrySender) {
    let lost = telemetry.lost();
    let reason = |why| [("reason", m::LabelValue::fixed(why))];
    m::counter(m::RECORDS_DROPPED, &reason("queue_full")).absolute(lost.queue_full);
    m::counter(m::RECORDS_DROPPED, &reason("shutdown")).absolute(lost.shutdown);
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    // Every route that checks the admin key counts wrong ones per client address.
    let key_checks = axum::middleware::from_fn_with_state(
        state.clone(),
        crate::edge::access::throttle_key_checks,
    );
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        // A wildcard: a name may hold `/` (sent as is or as %2F) and `:` (`auto:cheap`).
        .route("/v1/models/{*model}", get(model))
        .route("/v1/feedback", post(feedback))
        .merge(crate::edge::messages::routes())
        .merge(crate::edge::responses::routes())
        .merge(crate::edge::batches::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_metrics))
        .merge(
            crate::edge::admin::routes()
                .merge(crate::edge::kpis::routes())
                .merge(crate::edge::dashboard::routes())
                .route_layer(key_checks),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes));
    edge(app).with_state(state)
}

/// The tower stack every answer passes through, top to bottom.
fn edge<S: Clone + Send + Sync + 'static>(app: Router<S>) -> Router<S> {
    app.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
            ]))
            .layer(axum::middleware::from_fn(request_identity))
            // Failures are logged where their cause is known (dispatch), not again here.
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_failure(()),
            )
            // Inside the id and the span: a panic's answer has the id, its log the span.
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

/// OpenAI's name for the request id (its SDKs read it into `request_id`).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request its id, and every answer (errors, 404s, streams, panics) that id as
/// both `x-switchyard-request-id` and `x-request-id`. A client's own id
/// (`x-switchyard-request-id`, else `x-request-id`) is kept when it is 1 to
/// [`MAX_REQUEST_ID`] of `A-Z a-z 0-9 - _ . :`, so it goes into logs and records as it is;
/// anything else is replaced by a fresh UUID. Reuse is the client's choice: records and
/// feedback are kept per tenant, so a reused id confuses only the caller's own data.
async fn request_identity(mut request: axum::extract::Request, next: Next) -> Response {
    let id = [REQUEST_ID, X_REQUEST_ID]
        .iter()
        .find_map(|name| request.headers().get(name).filter(|v| acceptable_id(v)))
        .cloned()
        .unwrap_or_else(fresh_id);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id.clone());
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

fn acceptable_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A time-ordered id (UUID v7: milliseconds, then 74 random bits). Every record's id goes
/// into an index; random v4 ids put each insert on a different page of it, which made the
/// records' writer a third of the gateway's CPU (bench/RESULTS.md, issue 18).
fn fresh_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unidentified"))
}

/// The span of a request, named by its id: every line logged while serving it (warnings of
/// dispatch, the panic handler, a stream's body polled after the handler returned) carries
/// the id. At ERROR level so it is on whatever `log_level` says: a filter that drops the
/// span would drop the id from the warnings inside it.
fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path = request.uri().path();
    // Written with Display, not Debug: the text log's Debug of a `str` escapes it char by
    // char. Nothing here needs it to keep a log line one line: the id is checked or made
    // here (`acceptable_id`), and a method or a path that reached a handler holds no control
    // character (http's parsers refuse them).
    tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %path.get(..200).unwrap_or(path),
    )
}

async fn chat_completions(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (pipeline, mut record) = begin(&app, &headers, "chat");
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return fail(record, body_error(rejection)),
    };
    let running = &app.control.running;
    let outcome = running.chat(pipeline, &mut record, &headers, &body).await;
    escalate(&app, &headers, &record).await;
    match outcome {
        Ok(ChatOutcome::Complete(response)) => answer_json(record, response),
        Ok(ChatOutcome::Stream(answer)) => {
            let served = served_headers(&record);
            let model = record.record_ref().model.clone().unwrap_or_default();
            event_stream(sse_body(*answer, record, model), served)
        }
        Err(e) => fail(record, e),
    }
}

async fn embeddings(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (pipeline, mut record) = begin(&app, &headers, "embeddings");
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return fail(record, body_error(rejection)),
    };
    match pipeline.embed(&mut record, &headers, &body).await {
        Ok(response) => answer_json(record, response),
        Err(e) => fail(record, e),
    }
}

async fn feedback(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let key = app.control.running.pipeline.load().authenticate(&headers)?;
        let body = body.map_err(body_error)?;
        let request = crate::data_plane::pipeline::parse_json(&body)?;
        let entry = crate::control_plane::feedback::validate(
            request,
            &key,
            chrono::Utc::now().timestamp_millis(),
        )?;
        let store = app.control.store.clone();
        let request_id = entry.request_id.clone();
        let tenant = entry.tenant.clone();
        let score = entry.score;
        let negative = entry.is_negative();
        // Feedback is rare and must be durable when we say so: written now, not queued.
        let first_negative = spawn_blocking(move || store.add_feedback(&entry))
            .await
            .map_err(|_| {
                GatewayError::new(
                    ErrorKind::Internal,
                    "internal_error",
                    "feedback could not be stored",
                )
            })?
            .map_err(|e| {
                tracing::error!(error = %e, "storing feedback failed");
                GatewayError::store_unavailable("feedback could not be stored; retry")
            })?;
        // The request's quality turns bad in the SLOs and metrics, once (`control_plane/slos.rs`, 4.).
        if first_negative {
            crate::control_plane::alerts::dislike(&app.control, &request_id, &tenant).await;
        }
        // A disliked semantic hit leaves the cache, and its scope gets stricter
        // (`data_plane/cache.rs`, 7.).
        if negative {
            if let Some(cache) = app.control.running.pipeline.load().cache() {
                cache.disliked(&tenant, &request_id);
            }
        }
        // A rollout's arm that answered the request is judged on its feedback too.
        if let Some(score) = score {
            app.control
                .running
                .live
                .load()
                .stats
                .feedback(&request_id, score);
        }
        Ok::<_, GatewayError>(switchyard_api::FeedbackAccepted {
            object: "feedback".to_owned(),
            request_id,
        })
    }
    .await;
    match result {
        Ok(accepted) => Json(accepted).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn models(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match app.control.running.pipeline.load().models(&headers) {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    name: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let answer = name
        .map_err(|e| GatewayError::invalid(Some("model"), format!("invalid model name: {e}")))
        .and_then(|axum::extract::Path(name)| {
            app.control.running.pipeline.load().model(&headers, &name)
        });
    match answer {
        Ok(model) => Json(model).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when a config is loaded (always, once serving) and the store takes writes.
async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let store = app.control.store.clone();
    let writable = spawn_blocking(move || store.check_writable()).await;
    // A 503 like any other: it says when to look again.
    let not_ready = |why: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(
                header::RETRY_AFTER,
                crate::error::retry_after_value(crate::error::DEFAULT_RETRY_AFTER),
            )],
            why,
        )
            .into_response()
    };
    let telemetry = &app.control.telemetry;
    match writable {
        Ok(Ok(())) if telemetry.healthy() => "ready".into_response(),
        // The store is unreachable, but records wait on disk: requests go on, and the body
        // says so for whoever looks.
        _ if telemetry.spool_open() => format!(
            "ready, degraded: the store cannot be written; {} request records wait in the spool \
             and are written when it returns",
            telemetry.spooled()
        )
        .into_response(),
        Ok(Ok(())) => not_ready("not ready: the last telemetry write failed".to_owned()),
        Ok(Err(e)) => not_ready(format!("not ready: the store is not writable: {e}")),
        Err(_) => not_ready("not ready".to_owned()),
    }
}

async fn prometheus_metrics(State(app): State<Arc<AppState>>) -> Response {
    let pipeline = app.control.running.pipeline.load();
    for d in pipeline.deployments() {
        let deployment = [("deployment", pipeline.labels().deployment(&d.label))];
        m::gauge(m::BREAKER_STATE, &deployment).set(d.breaker_state().gauge());
        m::gauge(m::INFLIGHT, &deployment).set(f64::from(d.outstanding()));
    }
    pipeline.publish_desired_replicas();
    m::gauge(m::QUEUE_DEPTH, &[]).set(app.control.telemetry.queue_depth() as f64);
    if let Some(cache) = pipeline.cache() {
        let stats = cache.stats();
        m::gauge(m::CACHE_ENTRIES, &[]).set(stats.entries as f64);
        m::gauge(m::CACHE_BYTES, &[]).set(stats.bytes as f64);
    }
    count_lost_records(&app.control.telemetry);
    m::counter(m::RECORDS_WRITTEN, &[]).absolute(app.control.telemetry.written());
    m::counter(m::CONTENT_SHED, &[]).absolute(app.control.telemetry.content_shed());
    app.prometheus.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    GatewayError::new(
        ErrorKind::NotFound,
        "unknown_url",
        "no such endpoint; this gateway serves /v1/chat/completions, /v1/responses, \
         /v1/messages, /v1/embeddings and /v1/models",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    GatewayError::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        "this endpoint does not accept that HTTP method",
    )
    .into_response()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    GatewayError::new(
        ErrorKind::Internal,
        "internal_error",
        "the gateway failed on this request; it has been logged",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn answer(app: Router, id: Option<(&str, &str)>) -> Response {
        let mut request = axum::http::Request::get("/boom");
        if let Some((name, value)) = id {
            request = request.header(name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_panic_is_answered_with_the_request_id() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = edge(Router::new().route("/boom", get(boom)));
        let r = answer(app, Some(("x-request-id", "client-1"))).await;
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-request-id"], "client-1");
        assert_eq!(r.headers()["x-switchyard-request-id"], "client-1");
    }

    #[tokio::test]
    async fn client_ids_are_kept_only_when_plausible() {
        let app = edge(Router::new().route("/boom", get(|| async { "ok" })));
        let id_of = |r: &Response| {
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(r.headers()["x-switchyard-request-id"], id.as_str());
            id
        };
        for kept in ["req_7:a.b-c", &"a".repeat(MAX_REQUEST_ID)] {
            let r = answer(app.clone(), Some(("x-switchyard-request-id", kept))).await;
            assert_eq!(id_of(&r), kept);
        }
        for refused in [
            "",
            "two words",
            "quote\"",
            "caf\u{e9}",
            &"a".repeat(MAX_REQUEST_ID + 1),
        ] {
            let r = answer(app.clone(), Some(("x-request-id", refused))).await;
            let id = id_of(&r);
            assert_ne!(id, refused);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        let r = answer(app, None).await;
        assert!(uuid::Uuid::parse_str(&id_of(&r)).is_ok());
    }
}
