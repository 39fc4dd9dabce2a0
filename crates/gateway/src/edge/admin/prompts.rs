//! Prompt versions and labels: list, push, show, label.

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
pub(super) struct PromptsView {
    prompts: Vec<switchyard_store::PromptSummary>,
}

/// `GET /admin/v1/prompts`: every prompt, its latest version and its labels.
pub(super) async fn prompt_list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Reply<PromptsView> {
    let prompts = admin_read(&app, &headers, move |store| store.prompt_names()).await?;
    Ok(Json(PromptsView { prompts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushBody {
    /// A prompt file's text (TOML; docs/configuration.md, "Prompt files").
    source: String,
    #[serde(default)]
    message: String,
    /// Point this label at the pushed version too (e.g. `staging`).
    #[serde(default)]
    label: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Pushed {
    name: String,
    version: u32,
    /// False when the text is the latest version already.
    created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

fn checked_label(name: &str, label: &str) -> Result<(), GatewayError> {
    match switchyard_control::prompt::PromptRef::parse(&format!("{name}@{label}")) {
        Ok(r) if matches!(r.selector, switchyard_control::prompt::Selector::Label(_)) => Ok(()),
        _ => Err(GatewayError::invalid(
            Some("label"),
            format!("`{label}` is not a label: lower-case letters, digits, `-` and `_`"),
        )),
    }
}

/// The pretty JSON of a stored body, for diffs.
fn pretty(body: Option<&str>) -> String {
    body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default()
}

/// `POST /admin/v1/prompts`: a new version of a prompt (none when the text is unchanged).
pub(super) async fn prompt_push(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<Pushed> {
    let body: PushBody = admit(&app, &headers, body)?;
    let template = switchyard_control::prompt::PromptTemplate::parse(&body.source, "prompt")
        .map_err(|e| {
            GatewayError::new(ErrorKind::InvalidRequest, "invalid_prompt", e.to_string())
                .with_param("source")
        })?;
    if let Some(label) = &body.label {
        checked_label(&template.name, label)?;
    }
    // A template that breaks the render limits with sample values would fail every request
    // that names it: refused now. The render is bounded by those limits, and off the async
    // threads like every render.
    let limits = app.control.running.pipeline.load().config.prompts;
    let template = Arc::new(template);
    let checked = template.clone();
    let within = tokio::task::spawn_blocking(move || checked.check_limits(&limits))
        .await
        .map_err(|_| internal("the prompt check failed"))?;
    if let Err(e) = within {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            "invalid_prompt",
            format!("prompt `{}` with sample values: {e}", template.name),
        ));
    }
    let json = template
        .to_json()
        .map_err(|e| internal(&format!("cannot encode the prompt: {e}")))?;
    let name = template.name.clone();
    let (who, at) = (actor(&headers), now_ms());
    let events = (
        audit_event(
            &headers,
            "prompt.push",
            format!("prompt:{name}"),
            &body.message,
            String::new(),
        ),
        body.label.as_ref().map(|l| {
            audit_event(
                &headers,
                "prompt.label",
                format!("prompt:{name}@{l}"),
                &body.message,
                String::new(),
            )
        }),
    );
    let store = app.control.store.clone();
    let (n, label) = (name.clone(), body.label.clone());
    let (version, created) = blocking(move || {
        store.transact(|c| {
            let latest = c.read().latest_prompt(&n)?;
            let version = c.push_prompt(&n, &json, &who, &body.message, at)?;
            let created = latest.as_ref().is_none_or(|l| l.version != version);
            let (mut push, relabel) = events;
            if created {
                push.diff = switchyard_rollout::diff_lines(
                    &pretty(latest.as_ref().map(|l| l.body.as_str())),
                    &pretty(Some(&json)),
                );
                push.target = format!("prompt:{n}@{version}");
                c.append_audit(push)?;
            }
            if let (Some(label), Some(mut event)) = (&label, relabel) {
                let before = c.set_prompt_label(&n, label, version, at)?;
                if before != Some(version) {
                    event.diff = label_diff(label, before, version);
                    c.append_audit(event)?;
                }
            }
            Ok((version, created))
        })
    })
    .await?;
    let state = app.clone();
    blocking(move || state.control.changed()).await?;
    Ok(Json(Pushed {
        name,
        version,
        created,
        label: body.label,
    }))
}

fn label_diff(label: &str, before: Option<u32>, after: u32) -> String {
    match before {
        Some(b) => format!("-{label}: {b}\n+{label}: {after}\n"),
        None => format!("+{label}: {after}\n"),
    }
}

#[derive(Serialize)]
pub(super) struct PromptView {
    name: String,
    labels: std::collections::BTreeMap<String, u32>,
    versions: Vec<PromptVersionView>,
}

#[derive(Serialize)]
pub(super) struct PromptVersionView {
    version: u32,
    author: String,
    message: String,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<serde_json::Value>,
}

fn no_prompt(name: &str) -> GatewayError {
    not_found("prompt_not_found", format!("no prompt `{name}` is stored"))
}

/// `GET /admin/v1/prompts/NAME`: its versions (newest first) and labels.
pub(super) async fn prompt_show(
    State(app): State<Arc<AppState>>,
    AdminPath(name): AdminPath<String>,
    headers: HeaderMap,
) -> Reply<PromptView> {
    crate::edge::access::authenticate_read(&app, &headers).await?;
    let store = app.control.store.clone();
    let n = name.clone();
    let (rows, summary) = blocking(move || {
        let summary = store.prompt_names()?.into_iter().find(|p| p.name == n);
        Ok((store.prompt_versions(&n)?, summary))
    })
    .await?;
    let summary = summary.ok_or_else(|| no_prompt(&name))?;
    Ok(Json(PromptView {
        name,
        labels: summary.labels,
        versions: rows
            .into_iter()
            .map(|r| PromptVersionView {
                version: r.version,
                author: r.author,
                message: r.message,
                created_at_ms: r.created_at_ms,
                template: None,
            })
            .collect(),
    }))
}

/// `GET /admin/v1/prompts/NAME/versions/N`: one version with its template.
pub(super) async fn prompt_version(
    State(app): State<Arc<AppState>>,
    AdminPath((name, version)): AdminPath<(String, u32)>,
    headers: HeaderMap,
) -> Reply<PromptVersionView> {
    let n = name.clone();
    let row = admin_read(&app, &headers, move |store| store.prompt(&n, version))
        .await?
        .ok_or_else(|| {
            not_found(
                "prompt_not_found",
                format!("prompt `{name}` has no version {version}"),
            )
        })?;
    Ok(Json(PromptVersionView {
        version: row.version,
        author: row.author,
        message: row.message,
        created_at_ms: row.created_at_ms,
        template: serde_json::from_str(&row.body).ok(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LabelBody {
    version: u32,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize)]
pub(super) struct Labelled {
    name: String,
    label: String,
    version: u32,
    previous: Option<u32>,
}

/// `PUT /admin/v1/prompts/NAME/labels/LABEL`: moves a label; requests naming it get that
/// version from the next one on.
pub(super) async fn prompt_label(
    State(app): State<Arc<AppState>>,
    AdminPath((name, label)): AdminPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply<Labelled> {
    let body: LabelBody = admit(&app, &headers, body)?;
    checked_label(&name, &label)?;
    let mut event = audit_event(
        &headers,
        "prompt.label",
        format!("prompt:{name}@{label}"),
        &body.reason,
        String::new(),
    );
    let store = app.control.store.clone();
    let (n, l, version, at) = (name.clone(), label.clone(), body.version, now_ms());
    let previous = blocking(move || {
        store.transact(|c| {
            let before = c.set_prompt_label(&n, &l, version, at)?;
            if before != Some(version) {
                event.diff = label_diff(&l, before, version);
                c.append_audit(event)?;
            }
            Ok(before)
        })
    })
    .await?;
    let state = app.clone();
    blocking(move || state.control.changed()).await?;
    Ok(Json(Labelled {
        name,
        label,
        version: body.version,
        previous,
    }))
}
