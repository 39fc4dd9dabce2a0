//! The web dashboard at `/dashboard/`: static pages built into the binary (no CDN, no build
//! step) that draw the admin API's KPIs, SLOs, rollouts, audit log and recent requests.
//!
//! Signing in trades the admin key for a session cookie (`HttpOnly`, `SameSite=Strict`, 12 h),
//! and the admin API's read endpoints (`GET`) accept that cookie as they accept the key. Every
//! change (`POST`, `PUT`, `DELETE`) still needs the key itself in a header, so a page on another
//! site can never make a signed-in browser change anything. Sessions live behind
//! `sessions::SessionStore`, today in this process: a restart, a sign-out or a new admin key
//! ends them.
//!
//! `SWITCHYARD_DASHBOARD_DIR` serves the assets from that folder instead, read on every
//! request, for working on the pages without rebuilding.
//!
//! Wrong admin keys are throttled per client address ([`SignInThrottle`], applied by
//! [`throttle_key_checks`] to the sign-in and to `/admin/v1/` requests that carry a key).

use std::sync::{Arc, OnceLock};

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::edge::access::AdminPath;
use crate::edge::sessions::{session_token, LOGIN_PATH, SESSION_COOKIE, SESSION_TTL};
use crate::edge::state::AppState;
use crate::error::{ErrorKind, GatewayError};

pub const ASSETS_DIR_ENV: &str = "SWITCHYARD_DASHBOARD_DIR";

/// Scripts only from the gateway itself: whatever an attacker gets into a model name or a
/// request record is text, never code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &str = "index.html";

const ASSETS: &[Asset] = &[
    Asset {
        name: INDEX,
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../dashboard/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/app.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/charts.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../dashboard/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../dashboard/favicon.svg"),
    },
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/dashboard",
            get(|| async { Redirect::permanent("/dashboard/") }),
        )
        .route("/dashboard/", get(index))
        .route("/dashboard/assets/{name}", get(asset))
        .route("/dashboard/session", get(session))
        .route(LOGIN_PATH, post(login))
        .route("/dashboard/logout", post(logout))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn index(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    serve(&app, INDEX, &headers)
}

async fn asset(
    State(app): State<Arc<AppState>>,
    AdminPath(name): AdminPath<String>,
    headers: HeaderMap,
) -> Response {
    serve(&app, &name, &headers)
}

fn serve(app: &AppState, name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return not_found(name).into_response();
    };
    let asset = &ASSETS[index];
    if let Some(dir) = (app.control.env)(ASSETS_DIR_ENV) {
        return match std::fs::read(std::path::Path::new(&dir).join(asset.name)) {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, asset.content_type),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response(),
            Err(e) => GatewayError::new(
                ErrorKind::Internal,
                "dashboard_asset_unreadable",
                format!("{ASSETS_DIR_ENV}: cannot read {}: {e}", asset.name),
            )
            .into_response(),
        };
    }
    // Revalidated on every load (a new binary may bring new pages), answered 304 when unchanged.
    let etag = &etags()[index];
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let headers = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, etag.as_str()),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..16]))
            .collect()
    })
}

fn not_found(name: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotFound,
        "not_found",
        format!("the dashboard has no asset `{name}`"),
    )
}

/// `GET /dashboard/session`: whether this browser is signed in. Always 200, so the sign-in
/// page's own check is not a failed request in the browser's console.
async fn session(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let admin = app.control.running.pipeline.load().keyring().admin_hash();
    let left = match session_token(&headers) {
        Some(token) => app.dashboard.check(token, admin).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the dashboard session; answering signed out");
            None
        }),
        None => None,
    };
    Json(serde_json::json!({
        "signed_in": left.is_some(),
        "expires_in_secs": left.map(|d| d.as_secs()),
        "admin_enabled": admin.is_some(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    key: String,
}

/// `POST /dashboard/login` with `{"key": "<admin key>"}`: opens a session and sets its cookie.
async fn login(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, GatewayError> {
    let body =
        body.map_err(|e| GatewayError::invalid(None, format!("cannot read the body: {e}")))?;
    let sign_in: SignIn = crate::data_plane::pipeline::parse_json(&body)?;
    let admin = app
        .control
        .running
        .pipeline
        .load()
        .keyring()
        .admit_admin_key(Some(&sign_in.key))
        .inspect_err(|_| tracing::warn!("dashboard sign-in refused: not the admin key"))?;
    let token = app
        .dashboard
        .open(admin)
        .await
        .map_err(crate::edge::access::store_error)?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if behind_https(&headers) {
            "; Secure"
        } else {
            ""
        }
    );
    tracing::info!("dashboard session opened");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"signed_in": true, "expires_in_secs": SESSION_TTL.as_secs()})),
    )
        .into_response())
}

/// `POST /dashboard/logout`: ends the session and clears its cookie.
async fn logout(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        // The cookie is cleared either way; a session the store failed to end expires.
        if let Err(e) = app.dashboard.close(token).await {
            tracing::warn!(error = %e, "cannot end the dashboard session");
        }
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"signed_in": false})),
    )
        .into_response()
}

/// A TLS-terminating proxy in front says so; the cookie then never travels in the clear.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_built_in() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        assert_eq!(etags().len(), ASSETS.len());
    }
}
