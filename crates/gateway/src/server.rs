//! The HTTP edge: routes, the middleware stack, handlers that frame pipeline outcomes as HTTP,
//! health and metrics, start-up and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use switchyard_control::Config;
use switchyard_store::telemetry::{TelemetrySender, TelemetryWriter, WriterSettings};
use switchyard_store::{SqliteStore, StoreError};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ErrorKind, GatewayError};
use crate::live::Live;
use crate::metrics as m;
use crate::pipeline::{BuildError, ChatOutcome, Pipeline};
use crate::record::RecordGuard;
use crate::stream::sse_body;
use crate::versions::{Env, Launch};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-switchyard-request-id");
const MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
const FALLBACK_FROM: HeaderName = HeaderName::from_static("x-switchyard-fallback-from");
const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
const CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
const GUARD: HeaderName = HeaderName::from_static("x-switchyard-guard");

pub struct AppState {
    pub pipeline: ArcSwap<Pipeline>,
    pub telemetry: TelemetrySender,
    pub store: Arc<SqliteStore>,
    prometheus: PrometheusHandle,
    /// What the process was started with: every version it builds gets the same overrides.
    pub launch: Launch,
    pub(crate) env: Env,
    /// Signed-in dashboard browsers.
    pub dashboard: crate::dashboard::Sessions,
    /// Wrong admin keys per client address.
    pub sign_in: crate::dashboard::SignInThrottle,
    /// Held while a config version is applied, so changes happen one at a time.
    pub applying: tokio::sync::Mutex<()>,
    /// Held while a rollout changes (the controller's tick, an admin action), so no change
    /// overwrites another.
    pub rolling: tokio::sync::Mutex<()>,
    /// The SLOs and their alerts.
    pub slos: Arc<crate::slos::SloRuntime>,
    /// The candidate pipeline of the config rollout in force, if any.
    pub candidate: arc_swap::ArcSwapOption<crate::rollouts::ConfigCandidate>,
    /// Flags and prompts in force, swapped whole when the store's control generation moves.
    pub live: ArcSwap<Live>,
    /// The control generation `live` was read at.
    control_generation: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// Reads flags and prompts again when the store's control generation moved (another
    /// replica, or an admin change here); returns whether they were reloaded.
    pub fn refresh_control(&self) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        let generation = self.store.control_generation()?;
        if generation == self.control_generation.load(Ordering::Acquire) {
            return Ok(false);
        }
        let stats = self.live.load().stats.clone();
        self.live.store(Arc::new(Live::load(&self.store, stats)?));
        self.control_generation.store(generation, Ordering::Release);
        Ok(true)
    }

    /// Builds the pipeline of a config version, with what was learnt before (route bars) and
    /// what was spent (budgets) restored from the store: the one path for start-up and apply.
    pub fn build_pipeline(
        &self,
        config: Arc<Config>,
        version: &str,
    ) -> Result<Pipeline, BuildError> {
        build_pipeline(&self.store, &self.env, config, version)
    }
}

fn build_pipeline(
    store: &SqliteStore,
    env: &Env,
    config: Arc<Config>,
    version: &str,
) -> Result<Pipeline, BuildError> {
    let spent = |key: &str, since: i64| store.spend_since(key, since).unwrap_or(0);
    let pipeline = Pipeline::build(config, env.as_ref(), &spent, version)?;
    crate::calibrate::restore(&pipeline, store).map_err(BuildError::Store)?;
    Ok(pipeline)
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(#[from] switchyard_control::ConfigError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the telemetry writer: {0}")]
    Telemetry(std::io::Error),
}

/// A gateway bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    writer: TelemetryWriter,
    config: Arc<Config>,
}

impl Server {
    /// Opens the store, chooses the config version to run (`versions::choose_at_start`),
    /// builds its pipeline and binds the listener. `env` reads environment variables
    /// (secrets); pass `|k| std::env::var(k).ok()` outside tests.
    pub async fn bind(launch: Launch, env: Env) -> Result<Self, StartError> {
        // The data folder comes from the launch text: where the versions are kept.
        let first = Arc::new(launch.config_of(&launch.text, &launch.origin)?);
        let store = Arc::new(SqliteStore::open_in(&first.storage.data_dir)?);
        let (text, origin, record) = crate::versions::choose_at_start(&launch, &store)?;
        let config = if text == launch.text {
            first
        } else {
            Arc::new(launch.config_of(&text, &origin)?)
        };
        // What `switchyard config check` prints as warnings, in the log at start-up.
        for warning in config.warnings() {
            tracing::warn!("config: {warning}");
        }
        let version = crate::versions::version_id(&text);
        let pipeline = build_pipeline(&store, &env, config.clone(), &version)?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if record {
            crate::versions::record_start(&store, &text, now_ms)?;
        }
        // One recalibration step on the feedback that came since the last run.
        crate::calibrate::run_once(&pipeline, &store, now_ms)?;
        let generation = store.control_generation()?;
        let live = Live::load(&store, Arc::default())?;
        let slos = Arc::new(crate::slos::SloRuntime::load(&store, &config.slos)?);
        let writer = TelemetryWriter::start(
            SqliteStore::open_in(&config.storage.data_dir)?,
            WriterSettings {
                queue_capacity: config.telemetry.queue_capacity,
                batch_size: config.telemetry.batch_size,
                flush_interval: config.telemetry.flush_interval,
            },
        )
        .map_err(StartError::Telemetry)?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        // Load the tokenizer now, not on the first request whose upstream reports no usage.
        std::thread::spawn(switchyard_providers::tokens::warm_up);
        let state = Arc::new(AppState {
            pipeline: ArcSwap::from_pointee(pipeline),
            telemetry: writer.sender(),
            store,
            prometheus: m::handle(),
            launch,
            env,
            dashboard: crate::dashboard::Sessions::default(),
            sign_in: crate::dashboard::SignInThrottle::default(),
            applying: tokio::sync::Mutex::new(()),
            rolling: tokio::sync::Mutex::new(()),
            candidate: arc_swap::ArcSwapOption::empty(),
            slos,
            live: ArcSwap::from_pointee(live),
            control_generation: std::sync::atomic::AtomicU64::new(generation),
        });
        // A config rollout in force gets its candidate pipeline back (or is aborted); a
        // blue-green one its reference window.
        crate::rollouts::restore_config(&state)?;
        {
            let live = state.live.load();
            crate::rollouts::restore_references(&state.store, &live.stats, &live.prompts)?;
        }
        state.refresh_control()?;
        Ok(Server {
            listener,
            state,
            writer,
            config,
        })
    }

    /// Recalibrates routes from feedback every `recalibrate.interval` (the shortest of the
    /// routes'), off the async threads; `None` when no route recalibrates.
    fn recalibration_loop(&self) -> Option<tokio::task::JoinHandle<()>> {
        let every = self
            .config
            .routes
            .values()
            .filter_map(|r| r.recalibrate.map(|rc| rc.interval))
            .min()?;
        let state = self.state.clone();
        #[allow(clippy::disallowed_methods)] // aborted at shutdown; each step is one transaction
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await; // the first tick is immediate; start-up already restored bars
            loop {
                tick.tick().await;
                let pipeline = state.pipeline.load_full();
                let store = state.store.clone();
                let step = tokio::task::spawn_blocking(move || {
                    crate::calibrate::run_once(
                        &pipeline,
                        &store,
                        chrono::Utc::now().timestamp_millis(),
                    )
                })
                .await;
                if let Ok(Err(e)) = step {
                    tracing::warn!(error = %e, "route recalibration failed; will retry");
                }
            }
        });
        Some(task)
    }

    /// Polls the store's control generation every second, so a flag flipped on another
    /// replica (or by a CLI writing the same store) takes effect here too.
    fn control_loop(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        #[allow(clippy::disallowed_methods)] // aborted at shutdown; it holds no state of its own
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let s = state.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.refresh_control()).await {
                    tracing::warn!(error = %e, "reading flags and prompts failed; keeping the ones in force");
                }
            }
        })
    }

    /// Evaluates the SLOs' alerts every 30 s, acts on each change (`slos::act`: log, webhook,
    /// rollouts paused or aborted on a page) and saves the state (`slos.rs`, 2.).
    fn slo_loop(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        #[allow(clippy::disallowed_methods)] // aborted at shutdown, which saves the state itself
        tokio::spawn(async move {
            // The providers' client: redirects are not followed.
            let client = match switchyard_providers::http_client(std::time::Duration::from_secs(5))
            {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the HTTP client for SLO alerts; SLOs are not evaluated");
                    return;
                }
            };
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                let s = state.clone();
                let events = tokio::task::spawn_blocking(move || {
                    let events = s.slos.evaluate(chrono::Utc::now().timestamp());
                    if let Err(e) = s.slos.save(&s.store) {
                        tracing::warn!(error = %e, "saving the SLO state failed; will retry");
                    }
                    events
                })
                .await
                .unwrap_or_default();
                crate::slos::act(&state, &events, &client).await;
            }
        })
    }

    /// The rollout controller (`rollouts::step`): on every outcome a rollout's arm reports,
    /// and every second.
    fn rollout_loop(&self) -> tokio::task::JoinHandle<()> {
        let state = self.state.clone();
        #[allow(clippy::disallowed_methods)] // aborted at shutdown; each step is one transaction
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                let stats = state.live.load().stats.clone();
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stats.wake.notified() => {}
                }
                if state.live.load().rollouts.is_empty() {
                    continue;
                }
                let _one = state.rolling.lock().await;
                let s = state.clone();
                let step = tokio::task::spawn_blocking(move || {
                    let now = chrono::Utc::now().timestamp_millis();
                    let made = crate::rollouts::step(&s.store, &stats, now)?;
                    if !made.is_empty() {
                        s.refresh_control()?;
                    }
                    Ok::<_, StoreError>(made)
                })
                .await;
                match step {
                    Ok(Ok(made)) => {
                        for rollout in made {
                            crate::rollouts::settle_config(&state, &rollout).await;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the rollout controller failed; will retry")
                    }
                    Err(_) => tracing::warn!("the rollout controller's task failed; will retry"),
                }
                // Under load every answer wakes the controller: looking at most every 10 ms
                // keeps it to one store read per batch of outcomes.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// (up to `shutdown_grace`), and writes every queued record before returning.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let recalibration = self.recalibration_loop();
        let control = self.control_loop();
        let rollouts = self.rollout_loop();
        let slos = self.slo_loop();
        let app = router(self.state.clone(), self.config.server.max_body_bytes);
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let grace = self.config.server.shutdown_grace;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        // Histogram samples wait in the recorder until upkeep folds them into buckets; without
        // it, memory grows with every request between two scrapes.
        let prometheus = self.state.prometheus.clone();
        #[allow(clippy::disallowed_methods)] // aborted below; it holds no state worth finishing
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });
        // The peer's address goes into each request (`ConnectInfo`): the sign-in throttle
        // counts wrong keys by it.
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let mut stopped = stop_rx.clone();
        let drained = async move {
            // The grace period starts when shutdown is asked for, not at start-up.
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result?,
            () = drained => tracing::warn!("shutdown grace period over; closing connections still open"),
        }
        upkeep.abort();
        if let Some(task) = recalibration {
            task.abort();
        }
        control.abort();
        rollouts.abort();
        slos.abort();
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || state.slos.save(&state.store)).await;
        drop(self.state);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        Ok(())
    }
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    // Every route that checks the admin key counts wrong ones per client address.
    let key_checks =
        axum::middleware::from_fn_with_state(state.clone(), crate::dashboard::throttle_key_checks);
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/feedback", post(feedback))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_metrics))
        .merge(
            crate::admin::routes()
                .merge(crate::kpis::routes())
                .merge(crate::dashboard::routes())
                .route_layer(key_checks),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    HeaderName::from_static("x-api-key"),
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                // Failures are logged where their cause is known (dispatch), not again here.
                .layer(TraceLayer::new_for_http().on_failure(()))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
        .unwrap_or_default()
}

fn body_error(rejection: BytesRejection) -> GatewayError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            "request_too_large",
            "the request body is larger than this gateway accepts (server.max_body_bytes)",
        )
    } else {
        GatewayError::invalid(None, format!("cannot read the request body: {rejection}"))
    }
}

fn fail(record: RecordGuard, e: GatewayError) -> Response {
    // A refusal says which guard refused, as an answer would.
    let guard = record
        .guard_header()
        .and_then(|g| HeaderValue::from_str(g).ok());
    record.finish(e.status().as_u16(), Some(e.label()));
    let mut response = e.into_response();
    if let Some(g) = guard {
        response.headers_mut().insert(GUARD, g);
    }
    response
}

/// Headers that say who answered and how, taken from the record before it is finished.
fn served_headers(guard: &RecordGuard) -> Vec<(HeaderName, HeaderValue)> {
    let record = guard.record_ref();
    let mut out = Vec::with_capacity(5);
    let mut add = |name: HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            if !v.is_empty() {
                out.push((name, v));
            }
        }
    };
    add(
        MODEL,
        format!(
            "{}; deployment={}",
            record.model.as_deref().unwrap_or(""),
            record.deployment.as_deref().unwrap_or("")
        ),
    );
    add(ATTEMPTS, record.attempts.to_string());
    add(
        FALLBACK_FROM,
        record.fallback_from.clone().unwrap_or_default(),
    );
    add(ROUTE, guard.route_header().unwrap_or_default().to_owned());
    add(CACHE, record.cache.clone().unwrap_or_default());
    add(GUARD, guard.guard_header().unwrap_or_default().to_owned());
    out
}

fn with_headers(mut response: Response, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    response.headers_mut().extend(headers);
    response
}

/// What every model endpoint starts with: the pipeline this request keeps to its end, and
/// its record.
fn begin(
    app: &AppState,
    headers: &HeaderMap,
    endpoint: &'static str,
) -> (Arc<Pipeline>, RecordGuard) {
    let pipeline = app.pipeline.load_full();
    let mut record = RecordGuard::new(
        app.telemetry.clone(),
        request_id(headers),
        endpoint,
        pipeline.config.telemetry.access_log,
        pipeline.labels().clone(),
    );
    record.record().config_version = Some(crate::versions::short(&pipeline.version).to_owned());
    (pipeline, record)
}

/// The pipeline a chat request runs on: the candidate's when a config rollout is in force
/// and the request's user falls in its arm (`rollouts.rs`, 1.).
fn config_arm(
    app: &AppState,
    running: Arc<Pipeline>,
    live: &Live,
    headers: &HeaderMap,
    body: &Bytes,
    record: &mut RecordGuard,
) -> Arc<Pipeline> {
    let Some(candidate) = app.candidate.load_full() else {
        return running;
    };
    if candidate.baseline != running.version {
        return running;
    }
    /// Only the `user` field, read before the request is parsed for real.
    #[derive(serde::Deserialize)]
    struct UserOnly {
        #[serde(default)]
        user: Option<String>,
    }
    let user_field = serde_json::from_slice::<UserOnly>(body)
        .ok()
        .and_then(|u| u.user);
    let key_id = running
        .authenticate(headers)
        .map(|k| k.id.clone())
        .unwrap_or_default();
    let user = crate::flags::user_key_of(headers, user_field.as_deref(), &key_id);
    let Some(taken) = live.rollouts.take(
        switchyard_rollout::TargetKind::Config,
        &running.version,
        &user,
    ) else {
        return running;
    };
    let chosen = if taken.candidate.is_some() {
        candidate.pipeline.clone()
    } else {
        running
    };
    record.record().config_version = Some(crate::versions::short(&chosen.version).to_owned());
    record.set_labels(chosen.labels().clone());
    record.take_arm(taken, live.stats.clone());
    chosen
}

/// A whole JSON answer: headers from the record, then the record finished as a success.
fn answer_json<T: serde::Serialize>(record: RecordGuard, value: T) -> Response {
    let headers = served_headers(&record);
    record.finish(200, None);
    with_headers(Json(value).into_response(), headers)
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
    let live = app.live.load_full();
    let pipeline = config_arm(&app, pipeline, &live, &headers, &body, &mut record);
    record.count_for(app.slos.clone());
    let outcome = pipeline.chat(&mut record, &headers, &body, &live).await;
    if let Some(escalation) = crate::feedback::escalation_from_header(&headers, record.record_ref())
    {
        let store = app.store.clone();
        // Rare, and the client asked for it: stored before the answer, like feedback.
        let stored = tokio::task::spawn_blocking(move || store.add_feedback(&escalation)).await;
        if !matches!(stored, Ok(Ok(_))) {
            tracing::warn!("storing the escalation from the header failed");
        }
    }
    match outcome {
        Ok(ChatOutcome::Complete(response)) => answer_json(record, response),
        Ok(ChatOutcome::Stream(answer)) => {
            let served = served_headers(&record);
            let model = record.record_ref().model.clone().unwrap_or_default();
            let body = Body::from_stream(sse_body(*answer, record, model));
            let response = (
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response();
            with_headers(response, served)
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
        let key = app.pipeline.load().authenticate(&headers)?;
        let body = body.map_err(body_error)?;
        let request = crate::pipeline::parse_json(&body)?;
        let entry =
            crate::feedback::validate(request, &key, chrono::Utc::now().timestamp_millis())?;
        let store = app.store.clone();
        let request_id = entry.request_id.clone();
        let tenant = entry.tenant.clone();
        let score = entry.score;
        // Feedback is rare and must be durable when we say so: written now, not queued.
        let first_negative = tokio::task::spawn_blocking(move || store.add_feedback(&entry))
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
                GatewayError::new(
                    ErrorKind::Internal,
                    "store_unavailable",
                    "feedback could not be stored; retry",
                )
            })?;
        // The request's quality turns bad in the SLOs and metrics, once (`slos.rs`, 4.).
        if first_negative {
            crate::slos::dislike(&app, &request_id, &tenant).await;
        }
        // A rollout's arm that answered the request is judged on its feedback too.
        if let Some(score) = score {
            app.live.load().stats.feedback(&request_id, score);
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
    match app.pipeline.load().models(&headers) {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when a config is loaded (always, once serving) and the store takes writes.
async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let store = app.store.clone();
    let writable = tokio::task::spawn_blocking(move || store.check_writable()).await;
    match writable {
        Ok(Ok(())) if app.telemetry.healthy() => "ready".into_response(),
        Ok(Ok(())) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the last telemetry write failed",
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the store is not writable: {e}"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response(),
    }
}

async fn prometheus_metrics(State(app): State<Arc<AppState>>) -> Response {
    let pipeline = app.pipeline.load();
    for d in pipeline.deployments() {
        let deployment = [("deployment", pipeline.labels().deployment(&d.label))];
        m::gauge(m::BREAKER_STATE, &deployment).set(d.breaker_state().gauge());
        m::gauge(m::INFLIGHT, &deployment).set(f64::from(d.outstanding()));
    }
    m::gauge(m::QUEUE_DEPTH, &[]).set(app.telemetry.queue_depth() as f64);
    if let Some(cache) = pipeline.cache() {
        let stats = cache.stats();
        m::gauge(m::CACHE_ENTRIES, &[]).set(stats.entries as f64);
        m::gauge(m::CACHE_BYTES, &[]).set(stats.bytes as f64);
    }
    m::counter(m::RECORDS_DROPPED, &[]).absolute(app.telemetry.dropped());
    m::counter(m::RECORDS_WRITTEN, &[]).absolute(app.telemetry.written());
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
        "no such endpoint; this gateway serves /v1/chat/completions, /v1/embeddings and /v1/models",
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
