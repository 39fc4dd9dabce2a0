//! The control plane of one replica, as a value: the store every change goes through, what
//! runs now, and the locks that keep changes one at a time. `start` opens it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use switchyard_control::Config;
use switchyard_store::telemetry::TelemetrySender;
use switchyard_store::{Store, StoreError};

use super::changes::ChangeFeed;
use super::launch::{Env, Launch};
use super::{calibrate, slos};
use crate::data_plane::admission::Gates;
use crate::data_plane::live::Live;
use crate::data_plane::pipeline::{BuildError, Pipeline};
use crate::data_plane::running::short_version;
use crate::data_plane::shared::SharedState;
use crate::data_plane::Running;

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
    pub(super) control_generation: AtomicU64,
    /// The fleet's Redis, when the config has one: every pipeline's keys and cache use it.
    pub(crate) shared: Option<SharedState>,
    /// The admission gates every pipeline's deployments of finite capacity share.
    pub(crate) gates: Arc<Gates>,
    /// The fleet's judgement, when replicas share the store (PostgreSQL).
    pub fleet: Option<super::fleet::Fleet>,
    /// OTLP export of traces, when configured; flushed at shutdown (`Server::run`).
    pub traces: Option<crate::otel::Export>,
}

impl ControlPlane {
    /// The replicas alive: as this one's last Redis heartbeat counted them, else (a fleet on
    /// PostgreSQL alone) as the replicas' SLO publications do, else 1. What each replica's
    /// share of a deployment's capacity is divided by.
    pub fn live_replicas(&self) -> u32 {
        match (&self.shared, &self.fleet) {
            (Some(s), _) => s.link.replicas(),
            (None, Some(fleet)) => fleet.live(),
            (None, None) => 1,
        }
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
        self.follow_config()?;
        self.control_generation.store(generation, Ordering::Release);
        Ok(true)
    }

    /// Runs the config version applied last, when another replica applied it (or rolled
    /// back): the fleet runs one version. A version this replica cannot build (a secret its
    /// environment lacks) is logged and the running one kept. A change applied here is
    /// already running, or is being applied (`applying` is held): nothing to do.
    fn follow_config(&self) -> Result<(), StoreError> {
        let Ok(_one) = self.applying.try_lock() else {
            return Ok(());
        };
        let Some(current) = self.store.current_config()? else {
            return Ok(());
        };
        let running = self.running.pipeline.load_full();
        if current.id == running.version {
            return Ok(());
        }
        let origin = format!("config version {}", short_version(&current.id));
        let built = self
            .launch
            .config_of(&current.source, &origin)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                self.build_pipeline(Arc::new(config), &current.id)
                    .map_err(|e| e.to_string())
            });
        match built {
            Ok(pipeline) => {
                self.slos.set_specs(&pipeline.config.slos);
                self.running.pipeline.store(Arc::new(pipeline));
                tracing::info!(
                    version = short_version(&current.id),
                    "running the config version another replica applied"
                );
            }
            Err(e) => tracing::error!(
                version = short_version(&current.id),
                error = %e,
                "cannot run the config version another replica applied; keeping this one"
            ),
        }
        Ok(())
    }

    /// A change committed here (a flag, a prompt or its label, a rollout's step): tells the
    /// other replicas at once ([`ChangeFeed::announce`]) and reloads flags and prompts here.
    pub fn changed(&self) -> Result<bool, StoreError> {
        self.changes.announce();
        self.refresh_control()
    }

    /// Builds the pipeline of a config version, with what was learnt before (route bars) and
    /// what was spent (budgets) restored from the store: the one path for start-up and apply.
    pub fn build_pipeline(
        &self,
        config: Arc<Config>,
        version: &str,
    ) -> Result<Pipeline, BuildError> {
        build_pipeline(
            &*self.store,
            &self.env,
            config,
            version,
            self.shared.as_ref(),
            &self.gates,
        )
    }
}

pub(super) fn build_pipeline(
    store: &dyn Store,
    env: &Env,
    config: Arc<Config>,
    version: &str,
    shared: Option<&SharedState>,
    gates: &Gates,
) -> Result<Pipeline, BuildError> {
    let spent = |key: &str, since: i64| store.spend_since(key, since).unwrap_or(0);
    let pipeline = Pipeline::build(config, env.as_ref(), &spent, version, shared, gates)?;
    calibrate::restore(&pipeline, store).map_err(BuildError::Store)?;
    Ok(pipeline)
}
