//! Opening the control plane at start-up: the store, the config version to run, its
//! pipeline, and what was in force before (rollouts, SLO state, route bars).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use switchyard_control::{Config, RedisFailure};
use switchyard_store::telemetry::{SpoolSettings, TelemetryWriter, WriterSettings};
use switchyard_store::{PostgresStore, RecordStore, SqliteStore, Store, StoreError};

use super::changes::{ChangeFeed, PolledGeneration, RedisFeed};
use super::fleet::Fleet;
use super::launch::{Env, Launch};
use super::state::{build_pipeline, ControlPlane};
use super::{calibrate, rollouts, slos, versions};
use crate::data_plane::admission::Gates;
use crate::data_plane::live::Live;
use crate::data_plane::pipeline::BuildError;
use crate::data_plane::shared::{RedisSettings, Shared, SharedCounters, SharedState, WhenDown};
use crate::data_plane::Running;

/// The records' writer's connections to PostgreSQL: it writes one batch at a time.
const WRITER_CONNECTIONS: usize = 1;

/// How long a shutdown keeps retrying a store that fails to take the last records.
const CLOSE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(#[from] switchyard_control::ConfigError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("cannot start the telemetry writer: {0}")]
    Telemetry(std::io::Error),
    #[error("redis: {0}")]
    Redis(crate::data_plane::shared::SharedError),
    #[error("{0}")]
    Otlp(#[from] crate::otel::OtlpError),
}

/// The store, the records' writer's own handle on it, and the writer's spool.
type Opened = (
    Arc<dyn Store>,
    Box<dyn RecordStore + Send>,
    Option<SpoolSettings>,
);

/// The store a config names, and the records' writer's own handle on it (a connection of its
/// own, so readers never wait for its batches): SQLite in `data_dir`, or PostgreSQL with the
/// spool in `data_dir` for when it is unreachable.
fn open_store(config: &Config) -> Result<Opened, OpenError> {
    let storage = &config.storage;
    Ok(match &storage.postgres {
        None => (
            Arc::new(SqliteStore::open_in(&storage.data_dir)?),
            Box::new(SqliteStore::open_in(&storage.data_dir)?),
            None,
        ),
        Some(url) => {
            let store = PostgresStore::connect(url.expose())?;
            tracing::info!(database = %url, "storage: PostgreSQL");
            (
                Arc::new(store),
                Box::new(PostgresStore::connect_with(
                    url.expose(),
                    WRITER_CONNECTIONS,
                )?),
                Some(SpoolSettings {
                    dir: storage.data_dir.join("spool"),
                    max_bytes: storage.spool_max_bytes,
                }),
            )
        }
    })
}

impl ControlPlane {
    /// The link to the fleet's Redis that the launch config names (`[redis]`, or
    /// `SWITCHYARD_REDIS_URL` through the launch's overrides); `None` without one. A Redis
    /// that is down at start gives a link that is down and comes up on its own.
    pub async fn connect_shared(config: &Config) -> Result<Option<Arc<Shared>>, OpenError> {
        let Some(redis) = &config.redis else {
            return Ok(None);
        };
        let settings = RedisSettings {
            when_down: match redis.on_failure {
                RedisFailure::PerReplica => WhenDown::PerReplica,
                RedisFailure::Refuse => WhenDown::Refuse,
            },
            ..RedisSettings::default()
        };
        let link = Shared::connect(&redis.url, settings)
            .await
            .map_err(OpenError::Redis)?;
        tracing::info!(redis = %redis.url, "limits and cache shared through Redis");
        Ok(Some(link))
    }

    /// Opens the store, chooses the config version to run (`versions::choose_at_start`),
    /// builds its pipeline, and restores what was in force (rollouts, SLO state, route
    /// bars). Returns the records' writer, to be closed last, and the config in force.
    ///
    /// Blocks on the store: call it off the async threads (PostgreSQL's client refuses to
    /// run on them).
    ///
    /// `first` is the launch text's config, parsed once by the caller ([`Launch::config_of`]):
    /// a parsed config holds every guard's and router's model, so each parse kept alive is
    /// megabytes of resident memory. `link` is the fleet's Redis (made by
    /// [`ControlPlane::connect_shared`] from `first`, on the async side), when the config has
    /// one.
    pub fn open(
        launch: Launch,
        env: Env,
        first: Arc<Config>,
        link: Option<Arc<Shared>>,
    ) -> Result<(Self, TelemetryWriter, Arc<Config>), OpenError> {
        // The data folder comes from the launch text: where the versions are kept.
        let (store, writer_store, spool) = open_store(&first)?;
        let (text, origin, record) = versions::choose_at_start(&launch, &*store)?;
        let config = if text == launch.text {
            first
        } else {
            Arc::new(launch.config_of(&text, &origin)?)
        };
        // What `switchyard config check` prints as warnings, in the log at start-up.
        for warning in config.warnings() {
            tracing::warn!("config: {warning}");
        }
        let version = versions::version_id(&text);
        let shared = link.map(|link| SharedState {
            counters: SharedCounters::new(&link, store.clone()),
            link,
        });
        let (fleet, gates) = fleet_and_gates(&config, shared.as_ref());
        let pipeline = build_pipeline(
            &*store,
            &env,
            config.clone(),
            &version,
            shared.as_ref(),
            &gates,
        )?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if record {
            versions::record_start(&*store, &text, now_ms)?;
        }
        // One recalibration step on the feedback that came since the last run.
        calibrate::run_once(&pipeline, &*store, now_ms)?;
        let changes: Box<dyn ChangeFeed> = match &shared {
            Some(s) => Box::new(RedisFeed::new(
                store.clone(),
                &s.link,
                PolledGeneration::EVERY,
            )),
            None => Box::new(PolledGeneration::new(
                store.clone(),
                PolledGeneration::EVERY,
            )),
        };
        let generation = changes.generation()?;
        let live = Live::load(&*store, Arc::default())?;
        let slos = Arc::new(slos::SloRuntime::load(
            &*store,
            &config.slos,
            fleet.is_some(),
        )?);
        let writer = TelemetryWriter::start(
            writer_store,
            WriterSettings {
                queue_capacity: config.telemetry.queue_capacity,
                batch_size: config.telemetry.batch_size,
                flush_interval: config.telemetry.flush_interval,
                close_retry: CLOSE_RETRY,
                spool,
            },
        )
        .map_err(OpenError::Telemetry)?;
        let started = start_traces(&config, &env)?;
        let (traces, tracer, gen_ai) = match started {
            Some(s) => (Some(s.export), Some(s.tracer), s.gen_ai),
            None => (None, None, None),
        };
        let control = ControlPlane {
            running: Running::new(pipeline, live, slos.clone(), tracer, gen_ai),
            traces,
            telemetry: writer.sender(),
            store,
            changes,
            launch,
            env,
            applying: tokio::sync::Mutex::new(()),
            rolling: tokio::sync::Mutex::new(()),
            slos,
            control_generation: AtomicU64::new(generation),
            fleet,
            shared,
            gates,
        };
        // A config rollout in force gets its candidate pipeline back (or is aborted); a
        // blue-green one its reference window.
        rollouts::restore_config(&control)?;
        {
            let live = control.running.live.load();
            rollouts::restore_references(&*control.store, &live.stats, &live.prompts)?;
        }
        control.refresh_control()?;
        Ok((control, writer, config))
    }
}

/// OTLP export of traces, when `[telemetry.otlp]` or the environment asks for it. It sends on
/// the runtime this is called from (`open` runs on its blocking pool); without one (a command
/// that serves nothing) there is nothing to trace.
fn start_traces(config: &Config, env: &Env) -> Result<Option<crate::otel::Started>, OpenError> {
    let Some(settings) = crate::otel::Settings::resolve(config.telemetry.otlp.as_ref(), &**env)?
    else {
        return Ok(None);
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Ok(None);
    };
    tracing::info!(
        endpoint = %settings.endpoint,
        metrics = settings.metrics_endpoint.as_deref().unwrap_or("off"),
        headers = settings.header_count(),
        sampling_ratio = settings.sampling_ratio,
        "traces exported over OTLP"
    );
    Ok(Some(crate::otel::Export::start(settings, runtime)?))
}

/// The fleet's judgement, when replicas share the store (PostgreSQL), and the admission gates,
/// which count the fleet's live replicas through it when no Redis link does.
fn fleet_and_gates(config: &Config, shared: Option<&SharedState>) -> (Option<Fleet>, Arc<Gates>) {
    let fleet = config.storage.postgres.is_some().then(|| {
        let replica = match shared {
            Some(s) => s.link.replica().to_owned(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        Fleet::new(replica)
    });
    let gates = Arc::new(match (shared, &fleet) {
        (None, Some(fleet)) => Gates::counting(fleet.live_counter()),
        _ => Gates::default(),
    });
    (fleet, gates)
}
