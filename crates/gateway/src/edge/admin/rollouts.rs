//! Rollouts: start, list, show, and act on (pause, resume, promote, roll back, abort).

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::control_plane::versions::{self};
use crate::edge::access::*;
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// Default: `r-` and 8 random hex digits.
    #[serde(default)]
    id: Option<String>,
    /// `model` or `prompt`.
    kind: String,
    /// A model name, or a prompt label `NAME@LABEL`.
    baseline: String,
    /// A model name, or a prompt version `NAME@VERSION` (or just the version number).
    candidate: String,
    #[serde(default)]
    spec: switchyard_rollout::RolloutSpec,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
pub(super) struct RolloutView {
    rollout: switchyard_rollout::Rollout,
    active: bool,
    traffic: switchyard_rollout::Traffic,
    /// The current step's windows, as this replica counted them.
    windows: serde_json::Value,
}

fn view(app: &AppState, stored: switchyard_store::StoredRollout) -> RolloutView {
    let windows = app
        .control
        .running
        .live
        .load()
        .stats
        .windows(stored.rollout.id());
    RolloutView {
        traffic: stored.rollout.traffic(),
        windows: crate::control_plane::rollouts::window_summary(&windows),
        rollout: stored.rollout,
        active: stored.active,
    }
}

/// The rollout's targets, checked against the running config and the stored prompts.
async fn targets(
    app: &AppState,
    body: &StartBody,
) -> Result<(switchyard_rollout::TargetRef, switchyard_rollout::TargetRef), GatewayError> {
    use switchyard_control::prompt::{PromptRef, Selector};
    use switchyard_rollout::{TargetKind, TargetRef};
    let bad = |m: String| GatewayError::invalid(Some("candidate"), m);
    match body.kind.as_str() {
        "model" => {
            let pipeline = app.control.running.pipeline.load();
            for (field, name) in [("baseline", &body.baseline), ("candidate", &body.candidate)] {
                if !pipeline.config.models.contains_key(name.as_str()) {
                    return Err(GatewayError::invalid(
                        Some(field),
                        format!("no model `{name}` in the running config"),
                    ));
                }
            }
            if body.baseline == body.candidate {
                return Err(bad("the candidate is the baseline".into()));
            }
            let t = |id: &str| TargetRef {
                kind: TargetKind::Model,
                id: id.to_owned(),
            };
            Ok((t(&body.baseline), t(&body.candidate)))
        }
        "prompt" => {
            let baseline = PromptRef::parse(&body.baseline)
                .map_err(|e| GatewayError::invalid(Some("baseline"), e.to_string()))?;
            if !matches!(baseline.selector, Selector::Label(_)) {
                return Err(GatewayError::invalid(
                    Some("baseline"),
                    "the baseline is a label, e.g. `support-answer@production`",
                ));
            }
            let candidate = if body.candidate.bytes().all(|b| b.is_ascii_digit()) {
                format!("{}@{}", baseline.name, body.candidate)
            } else {
                body.candidate.clone()
            };
            let candidate = PromptRef::parse(&candidate).map_err(|e| bad(e.to_string()))?;
            if candidate.name != baseline.name
                || !matches!(candidate.selector, Selector::Version(_))
            {
                return Err(bad(format!(
                    "the candidate is a version of `{}`, e.g. `{}@3`",
                    baseline.name, baseline.name
                )));
            }
            let live = app.control.running.live.load();
            live.prompts.resolve(&baseline)?;
            live.prompts.resolve(&candidate)?;
            let t = |r: &PromptRef| TargetRef {
                kind: TargetKind::Prompt,
                id: r.to_string(),
            };
            Ok((t(&baseline), t(&candidate)))
        }
        "config" => {
            let running = app.control.running.pipeline.load().version.clone();
            if body.baseline != "running" && !running.starts_with(&body.baseline.to_lowercase()) {
                return Err(GatewayError::invalid(
                    Some("baseline"),
                    format!(
                        "a config rollout's baseline is the running version ({}), or `running`",
                        crate::data_plane::running::short_version(&running)
                    ),
                ));
            }
            let (store, wanted) = (app.control.store.clone(), body.candidate.clone());
            let candidate = crate::tasks::spawn_blocking(move || store.config_version(&wanted))
                .await
                .map_err(|_| internal("the storage task failed"))?
                .map_err(|e| store_error(e).with_param("candidate"))?
                .ok_or_else(|| {
                    bad(format!(
                        "no stored config version `{}` (stage one: `switchyard config apply --stage`)",
                        body.candidate
                    ))
                })?;
            if candidate.id == running {
                return Err(bad("the candidate is the running version".into()));
            }
            let t = |id: String| TargetRef {
                kind: TargetKind::Config,
                id,
            };
            Ok((t(running), t(candidate.id)))
        }
        other => Err(GatewayError::invalid(
            Some("kind"),
            format!("`{other}` is not one of \"model\", \"prompt\", \"config\""),
        )),
    }
}

/// `POST /admin/v1/rollouts`: creates a rollout and starts it at its first step.
pub(super) async fn rollout_start(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<RolloutView> {
    let body: StartBody = admit(&app, &headers, body)?;
    let (baseline, candidate) = targets(&app, &body).await?;
    let id = body
        .id
        .clone()
        .unwrap_or_else(|| format!("r-{}", hex::encode(rand::random::<[u8; 4]>())));
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(GatewayError::invalid(
            Some("id"),
            "a rollout id is letters, digits, `-`, `_` and `.`",
        ));
    }
    let mut rollout =
        switchyard_rollout::Rollout::new(id.clone(), baseline.clone(), candidate, body.spec)
            .map_err(|errors| {
                let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                GatewayError::invalid(Some("spec"), all.join("; "))
            })?;
    let _one = app.control.rolling.lock().await;
    let store = app.control.store.clone();
    let existing = blocking(move || store.rollouts(true)).await?;
    if let Some(other) = existing.iter().find(|s| {
        s.rollout.id() == id
            || (s.rollout.baseline() == &baseline && !s.rollout.state().is_finished())
    }) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "rollout_conflict",
            format!(
                "rollout `{}` is already in force over `{}`",
                other.rollout.id(),
                other.rollout.baseline().id
            ),
        )
        .with_param("baseline"));
    }
    // A config rollout's candidate pipeline is built before any request can take its arm.
    let candidate = match rollout.candidate().kind {
        switchyard_rollout::TargetKind::Config => {
            Some(Arc::new(crate::data_plane::running::ConfigCandidate {
                rollout: id.clone(),
                baseline: rollout.baseline().id.clone(),
                pipeline: {
                    let (control, id) = (app.control.clone(), rollout.candidate().id.clone());
                    crate::tasks::spawn_blocking(move || versions::build_version(&control, &id))
                        .await
                        .map_err(|_| internal("building the candidate stopped"))??
                        .into()
                },
            }))
        }
        _ => None,
    };
    if let Some(c) = candidate {
        app.control.running.candidate.store(Some(c));
    }
    let now = now_ms();
    let mut start = rollout
        .start(u64::try_from(now).unwrap_or(0))
        .map_err(|e| GatewayError::invalid(None, e.to_string()))?;
    if !body.reason.is_empty() {
        start.reason = format!("{} ({})", start.reason, body.reason);
    }
    if rollout.spec().kind == switchyard_rollout::RolloutKind::BlueGreen {
        let version = crate::control_plane::rollouts::prompt_version_of(
            &app.control.running.live.load().prompts,
            &rollout,
        );
        let (store, r) = (app.control.store.clone(), rollout.clone());
        let reference = blocking(move || {
            crate::control_plane::rollouts::reference_window(&*store, &r, version.as_deref())
        })
        .await?;
        app.control
            .running
            .live
            .load()
            .stats
            .set_reference(rollout.id(), reference);
    }
    let (store, who, saved) = (app.control.store.clone(), actor(&headers), rollout.clone());
    blocking(move || crate::control_plane::rollouts::save(&*store, &saved, &[start], &who, now))
        .await?;
    let state = app.clone();
    blocking(move || state.control.changed()).await?;
    let store = app.control.store.clone();
    let stored = blocking(move || store.rollout(&id))
        .await?
        .ok_or_else(|| internal("the rollout was not stored"))?;
    Ok(Json(view(&app, stored)))
}

#[derive(Serialize)]
pub(super) struct RolloutsView {
    rollouts: Vec<RolloutView>,
}

/// `GET /admin/v1/rollouts`: every rollout, oldest first.
pub(super) async fn rollout_list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<RolloutsView> {
    let all = admin_read(&app, &headers, move |store| store.rollouts(false)).await?;
    Ok(Json(RolloutsView {
        rollouts: all.into_iter().map(|s| view(&app, s)).collect(),
    }))
}

fn no_rollout(id: &str) -> GatewayError {
    not_found("rollout_not_found", format!("no rollout `{id}`"))
}

/// `GET /admin/v1/rollouts/ID`: its state, traffic, timeline and current windows.
pub(super) async fn rollout_show(
    State(app): State<Arc<AppState>>,
    AdminPath(id): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<RolloutView> {
    let i = id.clone();
    let stored = admin_read(&app, &headers, move |store| store.rollout(&i))
        .await?
        .ok_or_else(|| no_rollout(&id))?;
    Ok(Json(view(&app, stored)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ActBody {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/v1/rollouts/ID/ACTION`: `promote`, `pause`, `resume`, `rollback` or `abort`,
/// at once.
pub(super) async fn rollout_act(
    State(app): State<Arc<AppState>>,
    AdminPath((id, action)): AdminPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<RolloutView> {
    let body: ActBody = match &body {
        Ok(b) if b.is_empty() => {
            app.control
                .running
                .pipeline
                .load()
                .authenticate_admin(&headers)?;
            ActBody::default()
        }
        _ => admit(&app, &headers, body)?,
    };
    let _one = app.control.rolling.lock().await;
    let store = app.control.store.clone();
    let i = id.clone();
    let stored = blocking(move || store.rollout(&i))
        .await?
        .ok_or_else(|| no_rollout(&id))?;
    let mut rollout = stored.rollout;
    let now = now_ms();
    let at = u64::try_from(now).unwrap_or(0);
    let reason = if body.reason.is_empty() {
        format!("by {}", actor(&headers))
    } else {
        body.reason.clone()
    };
    let transition = match action.as_str() {
        "promote" => rollout.promote(at),
        "pause" => rollout.pause(at),
        "resume" => rollout.resume(at),
        "rollback" => rollout.rollback(at, &reason),
        "abort" => rollout.abort(at, &reason),
        other => {
            return Err(GatewayError::new(
                ErrorKind::NotFound,
                "no_such_action",
                format!("`{other}` is not one of promote, pause, resume, rollback, abort"),
            ))
        }
    }
    .map_err(|e| GatewayError::new(ErrorKind::InvalidRequest, "rollout_state", e.to_string()))?;
    let stats = app.control.running.live.load().stats.clone();
    if transition.starts_window() {
        stats.reset_window(&id);
    }
    let (store, who, saved) = (app.control.store.clone(), actor(&headers), rollout.clone());
    blocking(move || {
        crate::control_plane::rollouts::save(&*store, &saved, &[transition], &who, now)
    })
    .await?;
    let state = app.clone();
    blocking(move || state.control.changed()).await?;
    crate::control_plane::rollouts::settle_config(&app.control, &rollout).await;
    let store = app.control.store.clone();
    let stored = blocking(move || store.rollout(&id))
        .await?
        .ok_or_else(|| internal("the rollout was not stored"))?;
    Ok(Json(view(&app, stored)))
}
