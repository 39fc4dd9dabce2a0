//! Config versions: the gateway runs a stored, content-addressed version of a config text, and
//! start-up and the admin API apply versions through one function, [`apply`].
//!
//! 1. A version's id is the SHA-256 of its text (lower-case hex), so storing is idempotent and
//!    the same text is always the same version.
//! 2. At start-up ([`choose_at_start`]) a text never stored before becomes the applied version
//!    (the operator edited the file). A text stored before does not undo a version applied
//!    later through the admin API: the last applied version runs, and the log says so.
//! 3. Applying parses and validates the text, applies the launch's own overrides (`--listen`,
//!    the demo's cache without model files), refuses changes a running process cannot make
//!    (the listen address, the data folder), builds a whole new pipeline, then stores the
//!    version, marks it applied and appends the audit entry in one transaction, and only then
//!    swaps the pipeline. A text that fails anywhere before the swap changes nothing.
//! 4. Requests in flight keep the pipeline they loaded (`ArcSwap::load_full`), so a swap fails
//!    none of them; the next request runs on the new version.

use std::sync::Arc;

use switchyard_control::ConfigError;
use switchyard_rollout::{diff_lines, AuditEntry, AuditEvent};
use switchyard_store::{ConfigVersion, Store, StoreError, Transact};

pub use super::launch::{Env, Launch};
use super::state::ControlPlane;
use crate::data_plane::pipeline::{BuildError, Pipeline};
use crate::data_plane::running::short_version;

/// The id of a config text (its SHA-256).
pub fn version_id(text: &str) -> String {
    ConfigVersion::id_of(text)
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("{field} cannot change while the gateway runs (restart it with the new value)")]
    NeedsRestart { field: &'static str },
    #[error("no config version {0}")]
    NoSuchVersion(String),
    #[error(
        "rollout `{rollout}` in force sends requests to model `{model}`, which this version \
         does not have; finish or abort the rollout first"
    )]
    RolloutTarget { rollout: String, model: String },
    #[error("there is no earlier applied version to roll back to")]
    NothingToRollBack,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the change stopped before it finished (its task panicked); nothing was swapped")]
    Interrupted,
}

/// Who asks for a change, and why.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: String,
    pub message: String,
    /// `config.apply` or `config.rollback`.
    pub action: &'static str,
    pub reason: String,
}

/// Runs a change's blocking part (the store, building a pipeline) on the blocking pool: the
/// store blocks, and PostgreSQL's client refuses to run on the async threads.
async fn off_thread<T: Send + 'static>(
    state: &Arc<ControlPlane>,
    work: impl FnOnce(&ControlPlane) -> Result<T, ApplyError> + Send + 'static,
) -> Result<T, ApplyError> {
    let state = state.clone();
    crate::tasks::spawn_blocking(move || work(&state))
        .await
        .map_err(|_| ApplyError::Interrupted)?
}

/// What [`apply`] did.
#[derive(Debug, serde::Serialize)]
pub struct Applied {
    pub version: String,
    pub parent: Option<String>,
    /// False when the text is the version already running (nothing was swapped).
    pub changed: bool,
    /// Stored without being applied (a config rollout's candidate).
    pub staged: bool,
    pub diff: String,
    pub audit_seq: Option<u64>,
}

/// Which version to run at start-up (rule 2), as (text, origin, whether to record it as applied).
pub fn choose_at_start(
    launch: &Launch,
    store: &dyn Store,
) -> Result<(String, String, bool), StoreError> {
    let id = version_id(&launch.text);
    let known = store.config_version(&id)?.is_some();
    let current = store.current_config()?;
    match current {
        Some(c) if known && c.id != id => {
            tracing::warn!(
                file = %launch.origin,
                file_version = short_version(&id),
                running = short_version(&c.id),
                "the config file holds a version applied before; running the version applied \
                 since through the admin API"
            );
            let origin = format!("config version {}", short_version(&c.id));
            Ok((c.source, origin, false))
        }
        Some(c) if c.id == id => Ok((launch.text.clone(), launch.origin.clone(), false)),
        _ => Ok((launch.text.clone(), launch.origin.clone(), true)),
    }
}

/// Records the start-up version as applied (a new file, or the first start).
pub fn record_start(store: &dyn Store, text: &str, now_ms: i64) -> Result<AuditEntry, StoreError> {
    let current = store.current_config()?;
    let version = ConfigVersion::new(
        text,
        current.as_ref().map(|c| c.id.clone()),
        "startup",
        "the config the gateway was started with",
        now_ms,
    );
    let diff = diff_lines(current.as_ref().map_or("", |c| c.source.as_str()), text);
    let change = Change {
        actor: "startup".to_owned(),
        message: String::new(),
        action: "config.apply",
        reason: "start-up".to_owned(),
    };
    record_applied(store, &version, &change, &diff, now_ms)
}

/// Stores the version (if new), marks it applied and appends its audit entry, in one
/// transaction: an applied version never lacks its audit entry.
fn record_applied(
    store: &dyn Store,
    version: &ConfigVersion,
    change: &Change,
    diff: &str,
    now_ms: i64,
) -> Result<AuditEntry, StoreError> {
    store.transact(|c| {
        c.put_config_version(version)?;
        c.mark_applied(&version.id, now_ms, &change.actor, &change.reason)?;
        c.append_audit(AuditEvent {
            at_ms: u64::try_from(now_ms).unwrap_or(0),
            actor: change.actor.clone(),
            action: change.action.to_owned(),
            target: format!("config:{}", short_version(&version.id)),
            reason: change.reason.to_owned(),
            diff: diff.to_owned(),
        })
    })
}

/// Validates and builds a config text, then stores it as a version without applying it: the
/// candidate of a config rollout (`config.stage` in the audit log).
pub async fn stage(
    state: &Arc<ControlPlane>,
    text: &str,
    change: &Change,
) -> Result<(String, Arc<Pipeline>), ApplyError> {
    let (text, change) = (text.to_owned(), change.clone());
    off_thread(state, move |state| stage_now(state, &text, &change)).await
}

fn stage_now(
    state: &ControlPlane,
    text: &str,
    change: &Change,
) -> Result<(String, Arc<Pipeline>), ApplyError> {
    let running = state.running.pipeline.load_full();
    let id = version_id(text);
    let pipeline = Arc::new(build_checked(state, &running, text, &id)?);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let version = ConfigVersion::new(
        text,
        Some(running.version.clone()),
        &change.actor,
        &change.message,
        now_ms,
    );
    let old_text = state
        .store
        .config_version(&running.version)?
        .map(|v| v.source)
        .unwrap_or_default();
    let diff = diff_lines(&old_text, text);
    state.store.transact(|c| {
        c.put_config_version(&version)?;
        c.append_audit(AuditEvent {
            at_ms: u64::try_from(now_ms).unwrap_or(0),
            actor: change.actor.clone(),
            action: "config.stage".to_owned(),
            target: format!("config:{}", short_version(&id)),
            reason: change.reason.clone(),
            diff: diff.clone(),
        })
    })?;
    Ok((id, pipeline))
}

/// Builds the pipeline of a stored version, for a config rollout's candidate.
pub fn build_version(state: &ControlPlane, id: &str) -> Result<Pipeline, ApplyError> {
    let running = state.running.pipeline.load_full();
    let version = state
        .store
        .config_version(id)?
        .ok_or_else(|| ApplyError::NoSuchVersion(id.to_owned()))?;
    build_checked(state, &running, &version.source, &version.id)
}

/// Parses, validates and builds a text's pipeline, refusing what a running process cannot
/// change.
fn build_checked(
    state: &ControlPlane,
    running: &Pipeline,
    text: &str,
    id: &str,
) -> Result<Pipeline, ApplyError> {
    let origin = format!("config version {}", short_version(id));
    let config = state.launch.config_of(text, &origin)?;
    if config.server.listen != running.config.server.listen {
        return Err(ApplyError::NeedsRestart {
            field: "server.listen",
        });
    }
    if config.storage.data_dir != running.config.storage.data_dir {
        return Err(ApplyError::NeedsRestart {
            field: "storage.data_dir",
        });
    }
    // Trace export starts with the process (`otel.rs`).
    if config.telemetry.otlp != running.config.telemetry.otlp {
        return Err(ApplyError::NeedsRestart {
            field: "telemetry.otlp",
        });
    }
    // A model rollout's arms must stay servable: no request may find its model missing.
    let live = state.running.live.load();
    if let Some((rollout, model)) = live
        .rollouts
        .missing_model(|m| config.models.contains_key(m))
    {
        return Err(ApplyError::RolloutTarget {
            rollout: rollout.to_owned(),
            model: model.to_owned(),
        });
    }
    Ok(state.build_pipeline(Arc::new(config), id)?)
}

/// Applies a config text: see the module documentation.
pub async fn apply(
    state: &Arc<ControlPlane>,
    text: &str,
    change: &Change,
) -> Result<Applied, ApplyError> {
    // One change at a time: two applies racing would each diff against the same parent.
    let _one = state.applying.lock().await;
    let (text, change) = (text.to_owned(), change.clone());
    off_thread(state, move |state| apply_now(state, &text, &change)).await
}

/// [`apply`]'s work, holding `applying`.
fn apply_now(state: &ControlPlane, text: &str, change: &Change) -> Result<Applied, ApplyError> {
    let running = state.running.pipeline.load_full();
    let id = version_id(text);
    let parent = running.version.clone();
    if id == parent {
        return Ok(Applied {
            version: id,
            parent: None,
            changed: false,
            staged: false,
            diff: String::new(),
            audit_seq: None,
        });
    }
    let pipeline = build_checked(state, &running, text, &id)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let old_text = state
        .store
        .config_version(&parent)?
        .map(|v| v.source)
        .unwrap_or_default();
    let diff = diff_lines(&old_text, text);
    let version = ConfigVersion::new(
        text,
        Some(parent.clone()),
        &change.actor,
        &change.message,
        now_ms,
    );
    let entry = record_applied(&*state.store, &version, change, &diff, now_ms)?;
    state.slos.set_specs(&pipeline.config.slos);
    state.running.pipeline.store(Arc::new(pipeline));
    // Committed: the other replicas hear of it at once (their control loops read the store).
    state.changes.announce();
    use crate::metrics::{self as m, LabelValue};
    m::counter(
        m::CONFIG_APPLIED,
        &[("action", LabelValue::fixed(change.action))],
    )
    .increment(1);
    tracing::info!(
        version = short_version(&id),
        parent = short_version(&parent),
        actor = %change.actor,
        action = change.action,
        "config version applied"
    );
    Ok(Applied {
        version: id,
        parent: Some(parent),
        changed: true,
        staged: false,
        diff,
        audit_seq: Some(entry.seq),
    })
}

/// Applies a stored version again: `to`, or the version applied before the running one.
pub async fn rollback(
    state: &Arc<ControlPlane>,
    to: Option<&str>,
    actor: &str,
    reason: &str,
) -> Result<Applied, ApplyError> {
    let to = to.map(str::to_owned);
    let target = off_thread(state, move |state| {
        let running = state.running.pipeline.load_full().version.clone();
        Ok(match to {
            Some(id) => state
                .store
                .config_version(&id)?
                .ok_or(ApplyError::NoSuchVersion(id))?,
            None => {
                let previous = state
                    .store
                    .applied_history(64)?
                    .into_iter()
                    .map(|row| row.version_id)
                    .find(|v| *v != running)
                    .ok_or(ApplyError::NothingToRollBack)?;
                state
                    .store
                    .config_version(&previous)?
                    .ok_or(ApplyError::NoSuchVersion(previous))?
            }
        })
    })
    .await?;
    let change = Change {
        actor: actor.to_owned(),
        message: format!("rollback to {}", short_version(&target.id)),
        action: "config.rollback",
        reason: reason.to_owned(),
    };
    apply(state, &target.source, &change).await
}
