//! OAuth 2.0 access tokens for the providers that take a bearer token (Azure OpenAI with
//! Entra ID, Vertex AI): the two grants (client credentials; a service account's RS256 JWT
//! assertion) and the one cache both use.
//!
//! Tokens and the secrets that get them are [`Secret`]s and header values marked sensitive;
//! a failed exchange says which endpoint answered what, never a credential.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_control::Secret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{http, unix_now, ProviderError};

/// How long before its expiry a token is replaced: five minutes, or half the lifetime of a
/// shorter-lived token.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// What a token endpoint granted.
#[derive(Clone)]
pub(crate) struct Grant {
    pub token: Secret,
    pub lifetime: Duration,
}

/// One way of getting a token.
#[async_trait]
pub(crate) trait Grantor: Send + Sync + 'static {
    async fn grant(&self, http: &reqwest::Client) -> Result<Grant, ProviderError>;
}

/// A token in use: its `Authorization` value, when to replace it, and when it stops working.
#[derive(Clone)]
struct Held {
    bearer: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The access token of one provider, shared by all its requests:
/// 1. A token is used until its refresh time, [`REFRESH_MARGIN`] before it expires; reading
///    it never waits.
/// 2. After that, the first request to need it takes the refresh lock and refreshes it
///    (one refresh in flight, however many requests wait). Requests that come meanwhile go on
///    with the old token while it has not expired; without one they wait on the lock and
///    then use what the refresh got.
/// 3. A failed refresh fails only requests that cannot do without it: while the old token has
///    not expired, requests go on with it; once it has, the refresh's error (a retryable 502,
///    upstream authentication) goes to the requests that waited on that refresh, and the next
///    request to come tries again. A request dropped during a refresh cancels it; the next
///    one to need a token starts another.
pub(crate) struct TokenCache {
    grantor: Box<dyn Grantor>,
    http: reqwest::Client,
    /// The token in use. Never held across an await.
    held: std::sync::Mutex<Option<Held>>,
    /// Held by the refresh in flight; how the last refresh failed, if it did.
    refresh: Mutex<Option<ProviderError>>,
    /// Refreshes finished, read before waiting for the lock: one that finished meanwhile is
    /// the refresh this request waited on.
    refreshes: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(grantor: impl Grantor, http: reqwest::Client) -> Arc<TokenCache> {
        Arc::new(TokenCache {
            grantor: Box::new(grantor),
            http,
            held: std::sync::Mutex::new(None),
            refresh: Mutex::new(None),
            refreshes: AtomicU64::new(0),
        })
    }

    /// The token in use: fresh (before its refresh time), and still valid (before expiry).
    fn current(&self) -> (Option<HeaderValue>, Option<HeaderValue>) {
        let now = Instant::now();
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let fresh = held.as_ref().filter(|h| now < h.refresh_at);
        let valid = held.as_ref().filter(|h| now < h.expires_at);
        (
            fresh.map(|h| h.bearer.clone()),
            valid.map(|h| h.bearer.clone()),
        )
    }

    /// The `Authorization: Bearer …` value to send now.
    pub(crate) async fn bearer(&self) -> Result<HeaderValue, ProviderError> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let (fresh, valid) = self.current();
        if let Some(bearer) = fresh {
            return Ok(bearer);
        }
        let mut failed = match (valid, self.refresh.try_lock()) {
            (_, Ok(lock)) => lock,
            (Some(old), Err(_)) => return Ok(old),
            (None, Err(_)) => self.refresh.lock().await,
        };
        // The refresh this request waited for may have got one.
        let (fresh, valid) = self.current();
        if let Some(bearer) = fresh {
            return Ok(bearer);
        }
        if let Some(e) = failed.as_ref() {
            // A refresh that failed while this request waited: its answer is this request's.
            if self.refreshes.load(Ordering::Acquire) != seen {
                return valid.ok_or_else(|| e.clone());
            }
        }
        let result = self
            .grantor
            .grant(&self.http)
            .await
            .and_then(|grant| held_from(grant, Instant::now()));
        self.refreshes.fetch_add(1, Ordering::Release);
        match result {
            Ok(held) => {
                *failed = None;
                let bearer = held.bearer.clone();
                *self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(held);
                Ok(bearer)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh an upstream access token");
                *failed = Some(e.clone());
                valid.ok_or(e)
            }
        }
    }
}

fn held_from(grant: Grant, now: Instant) -> Result<Held, ProviderError> {
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", grant.token.expose()))
        .map_err(|_| auth_error("the token endpoint granted a token that is not a header value"))?;
    bearer.set_sensitive(true);
    let margin = REFRESH_MARGIN.min(grant.lifetime / 2);
    Ok(Held {
        bearer,
        refresh_at: now + (grant.lifetime - margin),
        expires_at: now + grant.lifetime,
    })
}

/// A failure to get a token: the upstream cannot be called, which another deployment (with
/// its own credentials) may not share, so 502 and retryable.
fn auth_error(message: impl std::fmt::Display) -> ProviderError {
    ProviderError::Status {
        status: 502,
        message: format!("upstream authentication failed: {message}"),
        retry_after: None,
    }
}

/// A token endpoint's answer. `expires_in` is seconds, a number (or a string, as some
/// endpoints write it).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Posts a token request form and reads the grant.
async fn exchange(
    http: &reqwest::Client,
    url: &reqwest::Url,
    form: &[(&str, &str)],
) -> Result<Grant, ProviderError> {
    let response = http
        .post(url.clone())
        .form(form)
        .send()
        .await
        .map_err(|e| {
            auth_error(format!(
                "the token endpoint {url}: {}",
                http::transport_error(&e)
            ))
        })?;
    let status = response.status();
    // A token answer is a few kilobytes: the cap keeps a misbehaving endpoint from making
    // the gateway buffer more.
    let body = http::read_capped(response).await;
    if !status.is_success() {
        // OAuth's error body: `error` is a fixed code; its description may quote the request,
        // so only the code is repeated.
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        return Err(auth_error(format!(
            "the token endpoint {url} answered {} {code}",
            status.as_u16()
        )));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|_| auth_error(format!("the token endpoint {url} answered no access_token")))?;
    let seconds = match &answer.expires_in {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    // Without a lifetime, the common one (an hour); never less than a minute.
    .unwrap_or(3600)
    .max(60);
    Ok(Grant {
        token: Secret::new(answer.access_token),
        lifetime: Duration::from_secs(seconds),
    })
}

fn token_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("token URL `{url}` is not valid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("token URL `{url}` must be http or https"));
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------------
// Client credentials (Entra ID).

/// An application's client credentials grant.
pub(crate) struct ClientCredentials {
    url: reqwest::Url,
    client_id: String,
    secret: Secret,
    scope: String,
}

impl ClientCredentials {
    pub(crate) fn new(
        url: &str,
        client_id: &str,
        secret: Secret,
        scope: &str,
    ) -> Result<Self, String> {
        Ok(ClientCredentials {
            url: token_url(url)?,
            client_id: client_id.to_owned(),
            secret,
            scope: scope.to_owned(),
        })
    }
}

#[async_trait]
impl Grantor for ClientCredentials {
    async fn grant(&self, http: &reqwest::Client) -> Result<Grant, ProviderError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", self.scope.as_str()),
        ];
        exchange(http, &self.url, &form).await
    }
}

// ---------------------------------------------------------------------------------------------
// Service account (Google): an RS256-signed JWT assertion.

/// The scope of a Vertex AI token.
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service account key file that are used.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

/// A service account: it signs a JWT assertion with its private key and exchanges it at its
/// key file's `token_uri`.
pub(crate) struct ServiceAccount {
    email: String,
    key_id: Option<String>,
    key: ring::signature::RsaKeyPair,
    url: reqwest::Url,
    rng: ring::rand::SystemRandom,
}

impl ServiceAccount {
    /// From a key file's text. Errors say what is wrong with the file, never quote it.
    pub(crate) fn from_key_file(text: &str) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_str(text).map_err(|_| {
            "the credentials file is not a service account key (JSON with client_email, \
             private_key and token_uri)"
                .to_owned()
        })?;
        if file.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err("the credentials file is not a service account key \
                        (its type is not \"service_account\")"
                .to_owned());
        }
        let der = pem_body(&file.private_key, "PRIVATE KEY").ok_or_else(|| {
            "the credentials file's private_key is not a PEM \"PRIVATE KEY\"".to_owned()
        })?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| "the credentials file's private_key is not a PKCS#8 RSA key".to_owned())?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id,
            key,
            url: token_url(&file.token_uri)?,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// The signed assertion: `{header}.{claims}.{signature}`, each base64url.
    fn assertion(&self, now: i64) -> Result<String, ProviderError> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.email,
            "scope": CLOUD_PLATFORM_SCOPE,
            "aud": self.url.as_str(),
            "iat": now,
            "exp": now + 3600,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &self.rng,
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| auth_error("could not sign the service account's JWT assertion"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[async_trait]
impl Grantor for ServiceAccount {
    async fn grant(&self, http: &reqwest::Client) -> Result<Grant, ProviderError> {
        let assertion = self.assertion(unix_now())?;
        let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)];
        exchange(http, &self.url, &form).await
    }
}

/// The bytes of a PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let text: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A grantor playing a script: each grant takes the next answer (`None` fails), and
    /// counts.
    struct Scripted {
        answers: std::sync::Mutex<Vec<Option<u64>>>,
        calls: Arc<AtomicUsize>,
        /// Holds each grant until a permit is given.
        gate: Arc<tokio::sync::Semaphore>,
    }

    #[async_trait]
    impl Grantor for Scripted {
        async fn grant(&self, _http: &reqwest::Client) -> Result<Grant, ProviderError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            match self.answers.lock().unwrap().remove(0) {
                Some(lifetime) => Ok(Grant {
                    token: Secret::new(format!("tok-{n}")),
                    lifetime: Duration::from_secs(lifetime),
                }),
                None => Err(auth_error("the token endpoint answered 500")),
            }
        }
    }

    fn cache(
        answers: Vec<Option<u64>>,
        open: bool,
    ) -> (
        Arc<TokenCache>,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Semaphore>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(if open { 1000 } else { 0 }));
        let grantor = Scripted {
            answers: std::sync::Mutex::new(answers),
            calls: calls.clone(),
            gate: gate.clone(),
        };
        (
            TokenCache::new(grantor, reqwest::Client::new()),
            calls,
            gate,
        )
    }

    fn text(v: HeaderValue) -> String {
        v.to_str().unwrap().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn refreshed_before_expiry_and_cached_until_then() {
        let (cache, calls, _gate) = cache(vec![Some(3600), Some(3600)], true);
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-0");
        tokio::time::advance(Duration::from_secs(3200)).await;
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Five minutes before expiry (the old token still valid), a new one is fetched.
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_go_on_with_the_old_token_while_it_is_refreshed() {
        let (cache, calls, gate) = cache(vec![Some(3600), Some(3600)], false);
        gate.add_permits(1);
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-0");
        tokio::time::advance(Duration::from_secs(3400)).await;
        // The first request refreshes (held at the gate); the second does not wait for it.
        let refreshing = cache.bearer();
        let meanwhile = async {
            tokio::task::yield_now().await;
            let old = cache.bearer().await;
            gate.add_permits(1);
            old
        };
        let both = async { tokio::join!(refreshing, meanwhile) };
        let (refreshed, old) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("the second request did not wait for the refresh");
        assert_eq!(text(old.unwrap()), "Bearer tok-0");
        assert_eq!(text(refreshed.unwrap()), "Bearer tok-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn one_refresh_however_many_wait() {
        let (cache, calls, gate) = cache(vec![Some(3600)], false);
        let waiters = futures::future::join_all((0..20).map(|_| cache.bearer()));
        let open = async {
            tokio::task::yield_now().await;
            gate.add_permits(1);
        };
        let (results, ()) = tokio::join!(waiters, open);
        for r in results {
            assert_eq!(text(r.unwrap()), "Bearer tok-0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_fails_only_who_needed_it() {
        // No token yet: the failure goes to the callers waiting on that refresh, as a
        // retryable 502 without credentials; the next caller tries again.
        let (cache, calls, gate) = cache(vec![None, Some(3600), None], false);
        let waiters = futures::future::join_all((0..5).map(|_| cache.bearer()));
        let open = async {
            tokio::task::yield_now().await;
            gate.add_permits(1);
        };
        let (results, ()) = tokio::join!(waiters, open);
        for r in results {
            let e = r.unwrap_err();
            assert!(
                matches!(e, ProviderError::Status { status: 502, .. }),
                "{e:?}"
            );
            assert!(e.retryable());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        gate.add_permits(10);
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-1");
        // A failed refresh while the old token still works: requests go on with it.
        tokio::time::advance(Duration::from_secs(3400)).await;
        assert_eq!(text(cache.bearer().await.unwrap()), "Bearer tok-1");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn key_file_errors_never_quote_it() {
        let cases = [
            "not json",
            r#"{"type": "authorized_user", "client_email": "a", "private_key": "k", "token_uri": "http://t"}"#,
            r#"{"client_email": "a", "private_key": "SECRETSECRET", "token_uri": "http://t"}"#,
            r#"{"client_email": "a", "private_key": "-----BEGIN PRIVATE KEY-----\nU0VDUkVU\n-----END PRIVATE KEY-----", "token_uri": "http://t"}"#,
        ];
        for text in cases {
            let err = ServiceAccount::from_key_file(text).err().unwrap();
            assert!(
                !err.contains("SECRET") && !err.contains("U0VDUkVU"),
                "{err}"
            );
        }
    }
}
