//! A fake EC2 instance metadata service (IMDSv2) handing out an instance role's temporary
//! credentials, as AWS's does: a session token for `PUT /latest/api/token` (with
//! `x-aws-ec2-metadata-token-ttl-seconds`), then, with that token in
//! `x-aws-ec2-metadata-token`, the role's name and its credentials. Each credentials request
//! takes the next scripted answer; a request without a valid token is refused with 401, as
//! IMDSv2 refuses IMDSv1-style calls. It also serves the container credentials endpoint
//! (ECS, EKS Pod Identity) at [`FakeImds::container_url`], whose `Authorization` must be
//! [`CONTAINER_TOKEN`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::sigv4::AwsKey;

const ROLE: &str = "switchyard-test-role";
const TOKEN: &str = "imds-session-token-1";
/// What the container endpoint wants in `Authorization` (`AWS_CONTAINER_AUTHORIZATION_TOKEN`).
pub const CONTAINER_TOKEN: &str = "container-authorization-token";
const CONTAINER_PATH: &str = "/v2/credentials/switchyard-test";

/// What the next credentials request gets.
#[derive(Debug, Clone)]
pub enum ImdsAnswer {
    /// The key (its session token set) valid until `expires`.
    Credentials { key: AwsKey, expires: DateTime<Utc> },
    /// An error status.
    Fail(u16),
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<ImdsAnswer>>,
    credential_requests: AtomicUsize,
    token_requests: AtomicUsize,
}

/// A running fake IMDS; stops when dropped.
pub struct FakeImds {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeImds {
    pub async fn start() -> std::io::Result<FakeImds> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = crate::server::serve(listener, app);
        Ok(FakeImds { addr, shared, task })
    }

    /// What `AWS_EC2_METADATA_SERVICE_ENDPOINT` is set to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What `AWS_CONTAINER_CREDENTIALS_FULL_URI` is set to.
    pub fn container_url(&self) -> String {
        format!("http://{}{CONTAINER_PATH}", self.addr)
    }

    /// Queues the answer to a credentials request (first in, first out). With an empty
    /// queue, a credentials request gets 404.
    pub fn push(&self, answer: ImdsAnswer) {
        self.shared
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(answer);
    }

    /// How many times the role's credentials were asked for.
    pub fn credential_requests(&self) -> usize {
        self.shared.credential_requests.load(Ordering::SeqCst)
    }

    /// How many session tokens were asked for.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let roles = "/latest/meta-data/iam/security-credentials/";
    if uri.path() == "/latest/api/token" {
        if method != Method::PUT || header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
            return StatusCode::BAD_REQUEST.into_response();
        }
        shared.token_requests.fetch_add(1, Ordering::SeqCst);
        return TOKEN.into_response();
    }
    let container = uri.path() == CONTAINER_PATH;
    let authorized = if container {
        header("authorization") == Some(CONTAINER_TOKEN)
    } else {
        header("x-aws-ec2-metadata-token") == Some(TOKEN)
    };
    if method != Method::GET || !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if uri.path() == roles {
        return ROLE.into_response();
    }
    if !container && uri.path() != format!("{roles}{ROLE}") {
        return StatusCode::NOT_FOUND.into_response();
    }
    shared.credential_requests.fetch_add(1, Ordering::SeqCst);
    let next = shared
        .script
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    match next {
        Some(ImdsAnswer::Credentials { key, expires }) => axum::Json(json!({
            "Code": "Success",
            "LastUpdated": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "Type": "AWS-HMAC",
            "AccessKeyId": key.access_key_id,
            "SecretAccessKey": key.secret_access_key,
            "Token": key.session_token,
            "Expiration": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))
        .into_response(),
        Some(ImdsAnswer::Fail(status)) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
