//! AWS credentials for signing, found in the order AWS's SDKs look:
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`), profile `AWS_PROFILE` (else the provider's `profile`, else
//!    `default`), read once at build;
//! 3. the container endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, or
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` under `169.254.170.2`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN`), as ECS and EKS Pod Identity serve them;
//! 4. the instance's role through IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
//!    `http://169.254.169.254`; off with `AWS_EC2_METADATA_DISABLED=true`): a session token
//!    by `PUT /latest/api/token`, then the role's name and its credentials.
//!
//! The last two give temporary credentials, kept by [`CredentialCache`]:
//! 1. a request takes the credentials held if they expire more than [`REFRESH_MARGIN`] from
//!    now;
//! 2. otherwise it waits for the one refresh lock, so one refresh is in flight at a time and
//!    the requests that queued behind it take what it fetched;
//! 3. a refresh that fails while the held credentials have not yet expired leaves them in use
//!    (the next request tries again); with none valid, the requests that needed them fail
//!    with [`CredentialError`], which never holds a secret.

use std::time::{Duration, SystemTime};

use chrono::DateTime;
use serde::Deserialize;
use switchyard_control::Secret;

/// Temporary credentials are renewed this long before they expire, so a request signed with
/// them never reaches AWS after they did.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long an IMDSv2 session token lives; one is taken per refresh.
const IMDS_TOKEN_TTL: &str = "21600";

/// The credentials a request is signed with. `Debug` shows only the access key id.
#[derive(Clone)]
pub(crate) struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    fn fresh_at(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| e > now + REFRESH_MARGIN)
    }

    fn valid_at(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// Why no credentials could be had. Messages name the source and what failed, never a value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not get AWS credentials from {source_name}: {message}")]
pub(crate) struct CredentialError {
    source_name: &'static str,
    message: String,
}

fn failure(source_name: &'static str, message: impl Into<String>) -> CredentialError {
    CredentialError {
        source_name,
        message: message.into(),
    }
}

/// Where credentials come from.
#[derive(Debug)]
pub(crate) enum Source {
    Static(AwsCredentials),
    Container {
        url: reqwest::Url,
        token: Option<Secret>,
    },
    Imds {
        endpoint: String,
    },
}

impl Source {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Source::Static(_) => "the environment or profile",
            Source::Container { .. } => "the container credentials endpoint",
            Source::Imds { .. } => "the instance metadata service (IMDSv2)",
        }
    }
}

/// Resolves the chain at build time. `env` reads an environment variable; `profile` is the
/// provider's configured profile. Only files are read here: endpoints are called on first
/// need.
pub(crate) fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    profile: Option<&str>,
) -> Result<Source, String> {
    let nonempty = |var: &str| env(var).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (
        nonempty("AWS_ACCESS_KEY_ID"),
        nonempty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Source::Static(AwsCredentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: nonempty("AWS_SESSION_TOKEN").map(Secret::new),
            expires: None,
        }));
    }
    let profile_name = nonempty("AWS_PROFILE").or_else(|| profile.map(str::to_owned));
    let file = nonempty("AWS_SHARED_CREDENTIALS_FILE")
        .or_else(|| nonempty("HOME").map(|h| format!("{h}/.aws/credentials")));
    if let Some(file) = file {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let name = profile_name.as_deref().unwrap_or("default");
                if let Some(creds) = profile_credentials(&text, name) {
                    return Ok(Source::Static(creds));
                }
                if profile_name.is_some() {
                    return Err(format!(
                        "the AWS profile `{name}` has no aws_access_key_id and \
                         aws_secret_access_key in {file}"
                    ));
                }
            }
            Err(_) if profile_name.is_some() => {
                return Err(format!(
                    "the AWS profile `{}` was asked for but {file} cannot be read",
                    profile_name.unwrap_or_default()
                ))
            }
            Err(_) => {}
        }
    }
    if let Some(full) = nonempty("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let url = reqwest::Url::parse(&full)
            .map_err(|_| "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL".to_owned())?;
        return Ok(Source::Container {
            url,
            token: nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
        });
    }
    if let Some(relative) = nonempty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let url = reqwest::Url::parse(&format!("http://169.254.170.2{relative}"))
            .map_err(|_| "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is not a path".to_owned())?;
        return Ok(Source::Container {
            url,
            token: nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
        });
    }
    if nonempty("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a \
                    profile, or a container endpoint (AWS_EC2_METADATA_DISABLED turns the \
                    instance role off)"
                .to_owned(),
        );
    }
    let endpoint = nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| "http://169.254.169.254".to_owned());
    Ok(Source::Imds {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
    })
}

/// A profile's keys in a shared credentials file (INI: `[name]`, then `key = value` lines;
/// `#` and `;` start comments).
pub(crate) fn profile_credentials(text: &str, profile: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_profile = section == profile || section == format!("profile {profile}");
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_owned();
            match key.trim() {
                "aws_access_key_id" => id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: Secret::new(secret?),
        session_token: token.map(Secret::new),
        expires: None,
    })
}

/// The JSON the container endpoint and IMDS answer with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Served {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

fn served_credentials(
    body: &[u8],
    source_name: &'static str,
) -> Result<AwsCredentials, CredentialError> {
    // The body holds secrets: an error says only that it did not parse.
    let served: Served = serde_json::from_slice(body).map_err(|_| {
        failure(
            source_name,
            "the answer is not the expected credentials JSON",
        )
    })?;
    let expires = match served.expiration {
        None => None,
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(&text)
                .map_err(|_| failure(source_name, format!("Expiration `{text}` is not a time")))?;
            let secs = u64::try_from(at.timestamp()).unwrap_or(0);
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }
    };
    Ok(AwsCredentials {
        access_key_id: served.access_key_id,
        secret_access_key: Secret::new(served.secret_access_key),
        session_token: served.token.map(Secret::new),
        expires,
    })
}

/// A body read whole, after checking the status; errors name the step.
async fn fetch(
    request: reqwest::RequestBuilder,
    source_name: &'static str,
    step: &str,
) -> Result<Vec<u8>, CredentialError> {
    let response = request
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| failure(source_name, format!("{step}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failure(source_name, format!("{step}: answered {status}")));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| failure(source_name, format!("{step}: {e}")))?;
    Ok(body.to_vec())
}

impl Source {
    async fn load(&self, http: &reqwest::Client) -> Result<AwsCredentials, CredentialError> {
        let name = self.name();
        match self {
            Source::Static(creds) => Ok(creds.clone()),
            Source::Container { url, token } => {
                let mut request = http.get(url.clone());
                if let Some(token) = token {
                    let mut value = reqwest::header::HeaderValue::from_str(token.expose())
                        .map_err(|_| failure(name, "the authorization token cannot be sent"))?;
                    value.set_sensitive(true);
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
                let body = fetch(request, name, "GET credentials").await?;
                served_credentials(&body, name)
            }
            Source::Imds { endpoint } => {
                let token = fetch(
                    http.put(format!("{endpoint}/latest/api/token"))
                        .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL),
                    name,
                    "PUT /latest/api/token",
                )
                .await?;
                let token = String::from_utf8(token)
                    .map_err(|_| failure(name, "the session token is not text"))?;
                let roles_url = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
                let get = |url: String| {
                    http.get(url)
                        .header("x-aws-ec2-metadata-token", token.trim())
                };
                let roles = fetch(get(roles_url.clone()), name, "GET the role").await?;
                let roles = String::from_utf8_lossy(&roles);
                let role = roles
                    .lines()
                    .next()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| failure(name, "the instance has no IAM role"))?;
                let body = fetch(
                    get(format!("{roles_url}{role}")),
                    name,
                    "GET the role's credentials",
                )
                .await?;
                served_credentials(&body, name)
            }
        }
    }
}

/// The credentials in use and their refresh (the numbered steps at the top of this file).
#[derive(Debug)]
pub(crate) struct CredentialCache {
    source: Source,
    http: reqwest::Client,
    held: std::sync::Mutex<Option<AwsCredentials>>,
    refresh: tokio::sync::Mutex<()>,
}

impl CredentialCache {
    pub(crate) fn new(source: Source, http: reqwest::Client) -> Self {
        let held = match &source {
            Source::Static(creds) => Some(creds.clone()),
            _ => None,
        };
        CredentialCache {
            source,
            http,
            held: std::sync::Mutex::new(held),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn held(&self) -> Option<AwsCredentials> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Credentials good for a request now.
    pub(crate) async fn get(&self) -> Result<AwsCredentials, CredentialError> {
        let fresh = |c: &Option<AwsCredentials>| {
            c.as_ref()
                .filter(|c| c.fresh_at(SystemTime::now()))
                .cloned()
        };
        if let Some(creds) = fresh(&self.held()) {
            return Ok(creds);
        }
        let _one_at_a_time = self.refresh.lock().await;
        let held = self.held();
        // Another request refreshed while this one waited.
        if let Some(creds) = fresh(&held) {
            return Ok(creds);
        }
        match self.source.load(&self.http).await {
            Ok(creds) => {
                *self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(creds.clone());
                Ok(creds)
            }
            Err(e) => match held.filter(|c| c.valid_at(SystemTime::now())) {
                Some(still_good) => {
                    tracing::warn!(error = %e, "refreshing AWS credentials failed; the current ones are used until they expire");
                    Ok(still_good)
                }
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_the_shared_file() {
        let text = "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n\
                    [profile work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=s2\naws_session_token = t2\n\
                    [empty]\nregion = us-east-1\n";
        let d = profile_credentials(text, "default").unwrap();
        assert_eq!(d.access_key_id, "AKIDDEFAULT");
        assert!(d.session_token.is_none());
        let w = profile_credentials(text, "work").unwrap();
        assert_eq!(
            (
                w.secret_access_key.expose(),
                w.session_token.unwrap().expose()
            ),
            ("s2", "t2")
        );
        assert!(profile_credentials(text, "empty").is_none());
        assert!(profile_credentials(text, "missing").is_none());
    }

    #[test]
    fn the_chain_prefers_the_environment_then_the_profile_then_the_container_then_imds() {
        let dir = std::env::temp_dir().join(format!("sy-bedrock-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[p]\naws_access_key_id=AKIDFILE\naws_secret_access_key=x\n",
        )
        .unwrap();
        let file = file.to_string_lossy().into_owned();
        let source = |vars: &[(&str, &str)], profile: Option<&str>| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            resolve(&env, profile)
        };
        let key_of = |s: Result<Source, String>| match s.unwrap() {
            Source::Static(c) => c.access_key_id,
            other => format!("{other:?}"),
        };
        let env_keys = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("AWS_SHARED_CREDENTIALS_FILE", file.as_str()),
        ];
        assert_eq!(key_of(source(&env_keys, Some("p"))), "AKIDENV");
        let file_only = [
            ("AWS_SHARED_CREDENTIALS_FILE", file.as_str()),
            ("AWS_PROFILE", "p"),
        ];
        assert_eq!(key_of(source(&file_only, None)), "AKIDFILE");
        assert_eq!(
            key_of(source(
                &[("AWS_SHARED_CREDENTIALS_FILE", file.as_str())],
                Some("p")
            )),
            "AKIDFILE"
        );
        // A profile asked for by name that is not there is a configuration error.
        let err = source(&file_only[..1], Some("nope")).unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
        let container = [
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"),
        ];
        let s = source(&container, None).unwrap();
        assert!(
            matches!(&s, Source::Container { url, token: Some(_) } if url.as_str() == "http://169.254.170.2/v2/credentials/abc"),
            "{s:?}"
        );
        assert!(!format!("{s:?}").contains("tok\""));
        let s = source(
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")],
            None,
        )
        .unwrap();
        assert!(matches!(&s, Source::Imds { endpoint } if endpoint == "http://127.0.0.1:9"));
        let s = source(&[], None).unwrap();
        assert!(matches!(&s, Source::Imds { endpoint } if endpoint == "http://169.254.169.254"));
        let err = source(&[("AWS_EC2_METADATA_DISABLED", "true")], None).unwrap_err();
        assert!(err.contains("no AWS credentials"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let c = AwsCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("very-secret"),
            session_token: Some(Secret::new("token-secret")),
            expires: None,
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AKID") && !shown.contains("secret"),
            "{shown}"
        );
        let err = served_credentials(
            br#"{"AccessKeyId":"A","SecretAccessKey":"very-secret","Token":1}"#,
            "x",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("very-secret"));
    }
}
