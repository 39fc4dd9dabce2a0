//! Feature flags: list, set, delete.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchyard_store::Transact;

use crate::edge::access::*;
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};

#[derive(Serialize)]
pub(super) struct FlagsView {
    flags: Vec<switchyard_rollout::Flag>,
}

/// `GET /admin/v1/flags`.
pub(super) async fn flag_list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<FlagsView> {
    let flags = admin_read(&app, &headers, move |store| store.flags()).await?;
    Ok(Json(FlagsView { flags }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FlagBody {
    kind: switchyard_rollout::FlagKind,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    reason: String,
}

fn enabled() -> bool {
    true
}

#[derive(Serialize)]
pub(super) struct FlagChange {
    flag: Option<switchyard_rollout::Flag>,
    previous: Option<switchyard_rollout::Flag>,
    audit_seq: u64,
}

/// Sets (`Some`) or deletes (`None`) a flag with its audit entry in one transaction, then
/// makes this replica read the flags again at once; returns the flag it replaced.
pub(super) async fn change_flag(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    key: &str,
    flag: Option<switchyard_rollout::Flag>,
    reason: &str,
) -> Result<FlagChange, GatewayError> {
    let action = if flag.is_some() {
        "flag.set"
    } else {
        "flag.delete"
    };
    let mut event = audit_event(
        headers,
        action,
        format!("flag:{key}"),
        reason,
        String::new(),
    );
    let store = app.control.store.clone();
    let (k, f, at) = (key.to_owned(), flag.clone(), now_ms());
    let (previous, audit_seq) = blocking(move || {
        store.transact(|c| {
            let previous = match &f {
                Some(f) => c.put_flag(f, at)?,
                None => c.delete_flag(&k)?,
            };
            if f.is_none() && previous.is_none() {
                return Ok((None, 0));
            }
            event.diff = switchyard_rollout::diff_lines(
                &crate::data_plane::flags::audit_json(previous.as_ref()),
                &crate::data_plane::flags::audit_json(f.as_ref()),
            );
            Ok((previous, c.append_audit(event)?.seq))
        })
    })
    .await?;
    if flag.is_none() && previous.is_none() {
        return Err(GatewayError::new(
            ErrorKind::NotFound,
            "no_such_flag",
            format!("no flag `{key}` is set"),
        ));
    }
    let state = app.clone();
    blocking(move || state.control.changed()).await?;
    Ok(FlagChange {
        flag,
        previous,
        audit_seq,
    })
}

/// `PUT /admin/v1/flags/KEY`: sets a flag; the next request on every replica sees it.
pub(super) async fn flag_set(
    State(app): State<Arc<AppState>>,
    AdminPath(key): AdminPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<FlagChange> {
    let body: FlagBody = admit(&app, &headers, body)?;
    let flag = switchyard_rollout::Flag {
        key: key.clone(),
        kind: body.kind,
        enabled: body.enabled,
    };
    let pipeline = app.control.running.pipeline.load_full();
    let routes: Vec<&str> = pipeline.config.routes.keys().map(String::as_str).collect();
    let policies: Vec<&str> = pipeline
        .config
        .guard_policies
        .keys()
        .map(String::as_str)
        .collect();
    let problems = crate::data_plane::flags::problems(&flag, &routes, &policies);
    if !problems.is_empty() {
        return Err(GatewayError::invalid(
            Some("kind"),
            format!("flag `{key}`: {}", problems.join("; ")),
        ));
    }
    Ok(Json(
        change_flag(&app, &headers, &key, Some(flag), &body.reason).await?,
    ))
}

/// `DELETE /admin/v1/flags/KEY`: the stages behave as if it was never set.
pub(super) async fn flag_delete(
    State(app): State<Arc<AppState>>,
    AdminPath(key): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<FlagChange> {
    app.control
        .running
        .pipeline
        .load()
        .authenticate_admin(&headers)?;
    Ok(Json(change_flag(&app, &headers, &key, None, "").await?))
}
