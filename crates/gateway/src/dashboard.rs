//! The web dashboard at `/dashboard/`: static pages built into the binary (no CDN, no build
//! step) that draw the admin API's KPIs, SLOs, rollouts, audit log and recent requests.
//!
//! Signing in trades the admin key for a session cookie (`HttpOnly`, `SameSite=Strict`, 12 h),
//! and the admin API's read endpoints (`GET`) accept that cookie as they accept the key. Every
//! change (`POST`, `PUT`, `DELETE`) still needs the key itself in a header, so a page on another
//! site can never make a signed-in browser change anything. Sessions live in this process:
//! a restart, a sign-out or a new admin key ends them.
//!
//! `SWITCHYARD_DASHBOARD_DIR` serves the assets from that folder instead, read on every
//! request, for working on the pages without rebuilding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::admin::AdminPath;
use crate::error::{ErrorKind, GatewayError};
use crate::keys::Keyring;
use crate::server::AppState;

pub const SESSION_COOKIE: &str = "switchyard_dashboard";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);
/// Beyond this many live sessions the oldest is ended: sign-ins cannot grow memory unbounded.
const MAX_SESSIONS: usize = 1_024;
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
        body: include_bytes!("../dashboard/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/app.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/charts.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../dashboard/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../dashboard/favicon.svg"),
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
        .route("/dashboard/login", post(login))
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

/// Sessions by the SHA-256 of their token, each bound to the admin key it was opened with.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone, Copy)]
struct Session {
    admin: [u8; 32],
    expires: Instant,
}

impl Sessions {
    /// A new session for the admin whose key hashes to `admin`; returns its token.
    fn open(&self, admin: [u8; 32], now: Instant) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&oldest);
            }
        }
        open.insert(
            digest(&token),
            Session {
                admin,
                expires: now + SESSION_TTL,
            },
        );
        token
    }

    /// How long the session has left, when `token` names one that is live and was opened with
    /// the admin key in force now.
    fn check(&self, token: &str, admin: Option<[u8; 32]>, now: Instant) -> Option<Duration> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let session = open.get(&digest(token))?;
        (Some(session.admin) == admin && session.expires > now)
            .then(|| session.expires.saturating_duration_since(now))
    }

    fn close(&self, token: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&digest(token));
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// Authenticates a read of the admin API: the admin key in a header, or else a dashboard
/// session. A request that presents a key is judged by the key alone.
pub fn authenticate_read(app: &AppState, headers: &HeaderMap) -> Result<(), GatewayError> {
    let pipeline = app.pipeline.load();
    if !Keyring::presents_key(headers) {
        if let Some(token) = session_token(headers) {
            let admin = pipeline.keyring().admin_hash();
            if app.dashboard.check(token, admin, Instant::now()).is_some() {
                return Ok(());
            }
        }
    }
    pipeline.authenticate_admin(headers)
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
    if let Some(dir) = (app.env)(ASSETS_DIR_ENV) {
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
    let admin = app.pipeline.load().keyring().admin_hash();
    let left =
        session_token(&headers).and_then(|token| app.dashboard.check(token, admin, Instant::now()));
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
    let sign_in: SignIn = crate::pipeline::parse_json(&body)?;
    let admin = app
        .pipeline
        .load()
        .keyring()
        .admit_admin_key(Some(&sign_in.key))
        .inspect_err(|_| tracing::warn!("dashboard sign-in refused: not the admin key"))?;
    let token = app.dashboard.open(admin, Instant::now());
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
        app.dashboard.close(token);
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
    fn a_session_lasts_its_ttl_for_its_admin_key_only() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let (admin, other) = ([1; 32], [2; 32]);
        let token = sessions.open(admin, t0);
        assert_eq!(token.len(), 64);
        assert!(sessions.check(&token, Some(admin), t0).is_some());
        assert!(sessions.check(&token, Some(other), t0).is_none());
        assert!(sessions.check(&token, None, t0).is_none());
        assert!(sessions.check("forged", Some(admin), t0).is_none());
        let late = t0 + SESSION_TTL + Duration::from_secs(1);
        assert!(sessions.check(&token, Some(admin), late).is_none());
        sessions.close(&token);
        assert!(sessions.check(&token, Some(admin), t0).is_none());
    }

    #[test]
    fn sign_ins_beyond_the_cap_end_the_oldest_session() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.open([1; 32], t0);
        for i in 1..MAX_SESSIONS {
            sessions.open([1; 32], t0 + Duration::from_millis(i as u64));
        }
        assert!(sessions.check(&first, Some([1; 32]), t0).is_some());
        let newest = sessions.open([1; 32], t0 + Duration::from_secs(5));
        assert!(sessions.check(&first, Some([1; 32]), t0).is_none());
        assert!(sessions.check(&newest, Some([1; 32]), t0).is_some());
        assert_eq!(sessions.open.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchyard_dashboard=abc; b=2"),
        );
        assert_eq!(session_token(&h), Some("abc"));
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("switchyard_dashboard="),
        );
        assert_eq!(session_token(&empty), None);
    }

    #[test]
    fn every_asset_is_built_in() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
        }
        assert_eq!(etags().len(), ASSETS.len());
    }
}
