//! What the fake upstream checks of its callers, as the cloud APIs do: an API key, or a bearer
//! token its own OAuth token endpoint (`POST /token`) granted, for client credentials (Entra
//! ID's grant) or for a service account's JWT assertion, whose RS256 signature is checked
//! against the test-only key's public half (`keys/`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

/// The service account of [`service_account_key_file`].
pub const FAKE_SERVICE_ACCOUNT: &str = "conformance@switchyard-test.iam.gserviceaccount.com";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A key made for tests only (see `keys/README.md`).
const TEST_ONLY_PRIVATE_KEY: &str = include_str!("../keys/test-only-service-account.pem");
const TEST_ONLY_PUBLIC_KEY: &str = include_str!("../keys/test-only-service-account.pub.pem");
/// Another test-only key, not the account's.
const TEST_ONLY_FOREIGN_KEY: &str = include_str!("../keys/test-only-foreign-key.pem");

/// A service account key file, in Google's layout, for [`FAKE_SERVICE_ACCOUNT`] with the
/// test-only key, whose tokens come from `token_uri`.
pub fn service_account_key_file(token_uri: &str) -> String {
    key_file(token_uri, TEST_ONLY_PRIVATE_KEY)
}

/// As [`service_account_key_file`], but holding a key that is not the account's: its
/// assertions must be refused.
pub fn foreign_service_account_key_file(token_uri: &str) -> String {
    key_file(token_uri, TEST_ONLY_FOREIGN_KEY)
}

fn key_file(token_uri: &str, private_key: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "switchyard-test",
        "private_key_id": "test-only-key-1",
        "private_key": private_key,
        "client_email": FAKE_SERVICE_ACCOUNT,
        "client_id": "1",
        "token_uri": token_uri,
    })
    .to_string()
}

/// Who may call: set by the test, and the tokens granted so far.
#[derive(Debug, Default)]
pub(crate) struct Authority {
    pub api_key: Option<String>,
    /// An application's (client id, client secret).
    pub client: Option<(String, String)>,
    pub granted: Vec<String>,
    /// What a grant is scoped to; checked for client credentials.
    pub scope: Option<String>,
}

impl Authority {
    /// Whether the `Authorization` header carries a token this endpoint granted.
    pub(crate) fn bearer_ok(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| self.granted.iter().any(|g| g == t))
    }

    pub(crate) fn key_ok(&self, key: Option<&str>) -> bool {
        key.is_some() && key == self.api_key.as_deref()
    }

    /// Answers a token request (a form body) made to `token_url`: the grant, or the OAuth
    /// error body.
    pub(crate) fn grant(&mut self, token_url: &str, form: &str) -> Result<Value, Value> {
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let refused = |error: &str| json!({"error": error});
        match field("grant_type") {
            Some("client_credentials") => {
                let given = (field("client_id"), field("client_secret"));
                let ok = self
                    .client
                    .as_ref()
                    .is_some_and(|(id, secret)| given == (Some(id), Some(secret)));
                if !ok {
                    return Err(refused("invalid_client"));
                }
                if field("scope") != self.scope.as_deref() {
                    return Err(refused("invalid_scope"));
                }
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let assertion = field("assertion").unwrap_or_default();
                if verify_assertion(assertion, token_url).is_err() {
                    return Err(refused("invalid_grant"));
                }
            }
            _ => return Err(refused("unsupported_grant_type")),
        }
        let token = format!("fake-access-token-{}", self.granted.len() + 1);
        self.granted.push(token.clone());
        Ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
    }
}

/// Checks a service account's JWT assertion as Google's token endpoint does: RS256 over
/// `header.claims` by the account's key, issued by the account, for this endpoint, for the
/// cloud platform scope, valid now for at most an hour.
fn verify_assertion(jwt: &str, token_url: &str) -> Result<(), &'static str> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let json_of = |part: &str| -> Result<Value, &'static str> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "not JSON")
    };
    if json_of(header)?["alg"] != "RS256" {
        return Err("not RS256");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature not base64url")?;
    let public = public_key_der().ok_or("bad test key")?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let claims = json_of(claims)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (iat, exp) = (
        claims["iat"].as_i64().ok_or("no iat")?,
        claims["exp"].as_i64().ok_or("no exp")?,
    );
    let ok = claims["iss"] == FAKE_SERVICE_ACCOUNT
        && claims["aud"] == token_url
        && claims["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE))
        && iat <= now + 60
        && exp > now
        && exp - iat <= 3600;
    ok.then_some(()).ok_or("wrong claims")
}

/// The DER of the test-only public key (PKCS#1 `RSAPublicKey`, what ring verifies with).
fn public_key_der() -> Option<Vec<u8>> {
    let body: String = TEST_ONLY_PUBLIC_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body).ok()
}
