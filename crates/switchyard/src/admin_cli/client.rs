//! The HTTP side: where the gateway is and who is asking ([`Remote`]), one connection to its
//! admin API ([`Client`]), and why a command failed ([`Failure`], by exit code).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// For the `--help` of every command group that talks to the gateway.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the gateway refused (invalid config, unknown version, wrong admin key, ...) or a check failed (a diff with problems, a broken audit log)
  2  usage error (bad arguments, a file that cannot be read)
  3  the gateway could not be reached, or failed (connection error, timeout, 5xx)";

/// Where the gateway is and who is asking; flattened into every remote command.
#[derive(Args)]
pub struct Remote {
    /// The gateway's base URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin key (`[admin]` in the gateway's config). Never printed.
    #[arg(long, env = "SWITCHYARD_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Who is acting, recorded in the audit log [default: $USER, else `cli`].
    #[arg(long, env = "SWITCHYARD_ACTOR")]
    actor: Option<String>,
    /// Print the API's JSON response (pretty) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// Why a command did not succeed, by exit code.
#[derive(Debug)]
pub(super) enum Failure {
    /// 1: the gateway refused (a 4xx).
    Refused(String),
    /// 2: bad input on this side.
    Usage(String),
    /// 3: the gateway could not be reached, or failed.
    Unavailable(String),
}

impl Failure {
    pub(super) fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unavailable(m) => m,
        }
    }

    pub(super) fn code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unavailable(_) => 3,
        })
    }
}

/// A check that ran and failed (its report already printed).
pub(super) const CHECK_FAILED: u8 = 1;

pub(super) type Outcome = Result<ExitCode, Failure>;

/// A connection to one gateway's admin API.
pub(super) struct Client<'a> {
    http: reqwest::Client,
    base: Url,
    remote: &'a Remote,
    actor: String,
}

impl<'a> Client<'a> {
    pub(super) fn new(remote: &'a Remote) -> Result<Self, Failure> {
        let base = Url::parse(&remote.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--url `{}` is not an http:// or https:// URL",
                    remote.url
                ))
            })?;
        let http = reqwest::Client::builder()
            // The admin key goes to --url and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            // Applying a config builds its pipeline (models, classifiers) before answering.
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| Failure::Usage(format!("cannot build the HTTP client: {e}")))?;
        let actor = remote
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "cli".to_owned());
        Ok(Client {
            http,
            base,
            remote,
            actor,
        })
    }

    /// `/admin/v1/` then `segments`, each percent-encoded, then the query.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["admin", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends one request; the response body as JSON when the status is a success.
    pub(super) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = self.url(segments, query);
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.remote.admin_key)
            .header("x-switchyard-actor", &self.actor);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            return Err(Failure::Refused(format!(
                "{url} answered {status}, a redirect to `{to}`, which is not followed (the admin \
                 key goes to --url only): give --url the address that answers"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes, &url));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Unavailable(format!(
                "the answer from {url} is not JSON ({e}); is this a Switchyard gateway?"
            ))
        })
    }

    pub(super) async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, Failure> {
        self.call(Method::GET, segments, query, None).await
    }

    pub(super) async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Value,
    ) -> Result<Value, Failure> {
        self.call(method, segments, &[], Some(body)).await
    }

    fn transport_error(&self, e: &reqwest::Error) -> Failure {
        if e.is_builder() {
            // Not `e` itself: it could quote the key.
            return Failure::Usage(
                "cannot build the request: --admin-key and --actor must be printable ASCII"
                    .to_owned(),
            );
        }
        if e.is_timeout() {
            return Failure::Unavailable(format!(
                "the gateway at {} did not answer in time",
                self.base
            ));
        }
        // reqwest's own message names only the URL; the cause is at the bottom of the chain.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        Failure::Unavailable(format!(
            "cannot reach the gateway at {}: {cause}",
            self.base
        ))
    }

    /// The answer in the shape the text output needs, or `None` once `--json` has printed
    /// it as is.
    pub(super) fn text<T: DeserializeOwned>(&self, value: Value) -> Result<Option<T>, Failure> {
        if self.printed_json(&value) {
            Ok(None)
        } else {
            shape(value).map(Some)
        }
    }

    /// Prints `value` as pretty JSON when `--json` was given; says whether it did.
    pub(super) fn printed_json(&self, value: &Value) -> bool {
        if self.remote.json {
            println!("{}", pretty_json(value));
        }
        self.remote.json
    }
}

pub(super) fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The API's OpenAI-shaped error as `code: message`, with the exit code its status calls for.
pub(super) fn api_error(status: StatusCode, body: &[u8], url: &Url) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .map(|v| &v["error"])
        .filter(|e| e.is_object());
    let text = match error {
        Some(e) => {
            let message = e["message"].as_str().unwrap_or("(no message)");
            match e["code"].as_str().or_else(|| e["type"].as_str()) {
                Some(code) => format!("{code}: {message}"),
                None => message.to_owned(),
            }
        }
        None => {
            format!("HTTP {status} from {url}; is this a Switchyard gateway with the admin API?")
        }
    };
    if status.is_server_error() {
        Failure::Unavailable(text)
    } else if status == StatusCode::UNAUTHORIZED {
        Failure::Refused(format!(
            "{text} (check --admin-key or SWITCHYARD_ADMIN_KEY)"
        ))
    } else {
        Failure::Refused(text)
    }
}

/// Reads a response into the shape the text output needs.
pub(super) fn shape<T: DeserializeOwned>(value: Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(|e| {
        Failure::Unavailable(format!(
            "unexpected answer from the gateway ({e}); is it the same version as this CLI?"
        ))
    })
}

pub(super) fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_exit_codes() {
        let url = Url::parse("http://127.0.0.1:8080/admin/v1/config").unwrap();
        let body = br#"{"error": {"message": "config version 3f2a: bad.toml:4: oops", "type": "invalid_request_error", "param": null, "code": "invalid_config"}}"#;
        let refused = api_error(StatusCode::BAD_REQUEST, body, &url);
        assert!(
            matches!(&refused, Failure::Refused(m) if m == "invalid_config: config version 3f2a: bad.toml:4: oops")
        );
        assert!(matches!(
            api_error(StatusCode::SERVICE_UNAVAILABLE, body, &url),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            api_error(StatusCode::NOT_FOUND, b"", &url),
            Failure::Refused(m) if m.contains("HTTP 404")
        ));
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let remote = Remote {
            url: "http://gw.internal/switchyard/".to_owned(),
            admin_key: "k".to_owned(),
            actor: None,
            json: false,
        };
        let client = Client::new(&remote).unwrap();
        assert_eq!(
            client
                .url(&["flags", "a b/c"], &[("limit", "5".to_owned())])
                .as_str(),
            "http://gw.internal/switchyard/admin/v1/flags/a%20b%2Fc?limit=5"
        );
    }

    /// Serves `app` on a free loopback port until the test's runtime ends; its base URL.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        #[expect(
            clippy::disallowed_methods,
            reason = "test server: ends with the test's runtime"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_redirect_is_refused_and_the_admin_key_goes_nowhere_else() {
        let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = reached.clone();
        let elsewhere = serve(axum::Router::new().fallback(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "{}" }
        }))
        .await;
        let to = format!("{elsewhere}/admin/v1/flags");
        let gateway = serve(axum::Router::new().fallback(move || {
            let to = to.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(reqwest::header::LOCATION, to)],
                )
            }
        }))
        .await;
        let remote = Remote {
            url: gateway,
            admin_key: "sk-admin".to_owned(),
            actor: None,
            json: false,
        };
        let err = Client::new(&remote)
            .unwrap()
            .get(&["flags"], &[])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Refused(m) if m.contains("307") && m.contains("not followed")),
            "{err:?}"
        );
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
