//! The control plane: what changes what the data plane runs, and judges how it went.
//!
//! Config [`versions`] (apply, roll back), [`rollouts`] (canaries, the controller that
//! promotes or rolls back), [`slos`] (error budgets and the alerts that act), route
//! [`calibrate`]ion from feedback, [`feedback`] itself, content [`retention`], the
//! [`changes`] it hears of, and the [`background`] loops that run them. It publishes what runs now into the data plane's
//! [`Running`] and hears outcomes through the data plane's `OutcomeSink` (the SLOs).

pub mod background;
pub mod calibrate;
pub mod changes;
pub mod feedback;
pub mod retention;
pub mod rollouts;
pub mod slos;
pub mod versions;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use switchyard_control::Config;
use switchyard_store::telemetry::{TelemetrySender, TelemetryWriter, WriterSettings};
use switchyard_store::{SqliteStore, Store, StoreError};

use crate::data_plane::live::Live;
use crate::data_plane::pipeline::{BuildError, Pipeline};
use crate::data_plane::Running;
use changes::{ChangeFeed, PolledGeneration};
use versions::{Env, Launch};

/// How long a shutdown keeps retrying a store that fails to take the last records.
const CLOSE_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// The control plane of one replica: the store every change goes through, what runs now,
/// and the locks that keep changes one at a time.
pub struct ControlPlane {
    /// What runs now: published here, read by every request.
    pub running: Running,
    /// Where requests' records go.
    pub telemetry: TelemetrySender,
    pub store: Arc<dyn Store>,
    /// Where it hears that the control state moved (here or on another replica).
    pub changes: Box<dyn ChangeFeed>,
    /// What the process was started with: every version it builds gets the same overrides.
    pub launch: Launch,
    pub(crate) env: Env,
    /// Held while a config version is applied, so changes happen one at a time.
    pub applying: tokio::sync::Mutex<()>,
    /// Held while a rollout changes (the controller's tick, an admin action), so no change
    /// overwrites another.
    pub rolling: tokio::sync::Mutex<()>,
    /// The SLOs and their alerts; requests report to them as the data plane's outcome sink.
    pub slos: Arc<slos::SloRuntime>,
    /// The control generation `running.live` was read at.
    control_generation: AtomicU64,
}

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
}

impl ControlPlane {
    /// Opens the store, chooses the config version to run (`versions::choose_at_start`),
    /// builds its pipeline, and restores what was in force (rollouts, SLO state, route
    /// bars). Returns the records' writer, to be closed last, and the config in force.
    pub fn open(
        launch: Launch,
        env: Env,
    ) -> Result<(Self, TelemetryWriter, Arc<Config>), OpenError> {
        // The data folder comes from the launch text: where the versions are kept.
        let first = Arc::new(launch.config_of(&launch.text, &launch.origin)?);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&first.storage.data_dir)?);
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
        let pipeline = build_pipeline(&*store, &env, config.clone(), &version)?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if record {
            versions::record_start(&*store, &text, now_ms)?;
        }
        // One recalibration step on the feedback that came since the last run.
        calibrate::run_once(&pipeline, &*store, now_ms)?;
        let changes = Box::new(PolledGeneration::new(
            store.clone(),
            PolledGeneration::EVERY,
        ));
        let generation = changes.generation()?;
        let live = Live::load(&*store, Arc::default())?;
        let slos = Arc::new(slos::SloRuntime::load(&*store, &config.slos)?);
        let writer = TelemetryWriter::start(
            Box::new(SqliteStore::open_in(&config.storage.data_dir)?),
            WriterSettings {
                queue_capacity: config.telemetry.queue_capacity,
                batch_size: config.telemetry.batch_size,
                flush_interval: config.telemetry.flush_interval,
                close_retry: CLOSE_RETRY,
            },
        )
        .map_err(OpenError::Telemetry)?;
        let control = ControlPlane {
            running: Running::new(pipeline, live, slos.clone()),
            telemetry: writer.sender(),
            store,
            changes,
            launch,
            env,
            applying: tokio::sync::Mutex::new(()),
            rolling: tokio::sync::Mutex::new(()),
            slos,
            control_generation: AtomicU64::new(generation),
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

    /// Reads flags and prompts again when the control generation moved (another replica,
    /// or an admin change here); returns whether they were reloaded.
    pub fn refresh_control(&self) -> Result<bool, StoreError> {
        let generation = self.changes.generation()?;
        if generation == self.control_generation.load(Ordering::Acquire) {
            return Ok(false);
        }
        let stats = self.running.live.load().stats.clone();
        self.running
            .live
            .store(Arc::new(Live::load(&*self.store, stats)?));
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
        build_pipeline(&*self.store, &self.env, config, version)
    }
}

fn build_pipeline(
    store: &dyn Store,
    env: &Env,
    config: Arc<Config>,
    version: &str,
) -> Result<Pipeline, BuildError> {
    let spent = |key: &str, since: i64| store.spend_since(key, since).unwrap_or(0);
    let pipeline = Pipeline::build(config, env.as_ref(), &spent, version)?;
    calibrate::restore(&pipeline, store).map_err(BuildError::Store)?;
    Ok(pipeline)
}
