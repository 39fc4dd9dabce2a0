//! An AWS Signature Version 4 verifier, written from AWS's description of the algorithm with
//! hmac and sha2 and nothing of the SDK's signer, so the fake Bedrock checks a signature the
//! way AWS does: it recomputes it from the request as received (method, raw path, query,
//! signed headers, body hash, date, region, service) and compares.
//!
//! It is itself checked against AWS's reference vectors (`crates/testkit/sigv4/`, loaded by
//! [`vectors`]). What it does not do: normalise `.`/`..` path segments (Bedrock's paths have
//! none) or verify presigned query-string signatures.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub method: &'a str,
    /// As sent, percent-escapes kept.
    pub path: &'a str,
    /// As sent, without the `?`.
    pub query: &'a str,
    /// Names in any case, in arrival order.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Credentials the server accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AwsKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token, which must come as `x-amz-security-token`.
    #[serde(default, rename = "token")]
    pub session_token: Option<String>,
}

/// Why a signature was refused: AWS's error type (`x-amzn-ErrorType`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub error_type: &'static str,
    pub message: String,
}

fn reject(error_type: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        error_type,
        message: message.into(),
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `20150830`, the region, the service (the scope's parts before `aws4_request`).
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Authorization, Rejection> {
        let incomplete = |m: &str| reject("IncompleteSignatureException", m.to_owned());
        let rest = value
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or_else(|| incomplete("the Authorization header is not AWS4-HMAC-SHA256"))?;
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => return Err(incomplete("the Authorization header has an unknown part")),
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err(incomplete(
                "Authorization needs Credential, SignedHeaders and Signature",
            ));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(incomplete("the credential scope is malformed"));
        };
        Ok(Authorization {
            access_key_id: key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature.to_owned(),
        })
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `-_.~` and alphanumerics stay; every other byte is `%XX` (upper-case hex).
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The canonical request: method, the path encoded once more (services other than S3 sign
/// the path as sent, escapes and all, escaped again), the query sorted and encoded, the
/// signed headers (lower-case, values trimmed and inner spaces collapsed, repeated headers
/// joined by commas), their names, and the payload's hash.
pub fn canonical_request(
    req: &Received<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut params: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    params.sort();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        req.method,
        uri_encode(path.as_bytes(), true),
        query.join("&"),
        signed_headers.join(";"),
    )
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signature: the string to sign under the key derived from the secret, the date, the
/// region and the service.
pub fn signature(secret: &str, auth: &Authorization, string_to_sign: &str) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    let k_region = hmac(&k_date, &auth.region);
    let k_service = hmac(&k_region, &auth.service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign))
}

/// What AWS checks, in its order: a complete `Authorization`, a known access key, the scope
/// (date of `x-amz-date`, the region and service expected), the signed headers (`host` and
/// `x-amz-date` among them, each present), the body's hash (and `x-amz-content-sha256`, if
/// sent, equal to it), the signature, the session token of temporary credentials, and, when
/// `now` is given, a date within 15 minutes of it. Returns the key that signed.
pub fn verify<'k>(
    req: &Received<'_>,
    keys: &'k [AwsKey],
    region: &str,
    service: &str,
    now: Option<DateTime<Utc>>,
) -> Result<&'k AwsKey, Rejection> {
    let missing = || {
        reject(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    };
    let auth = Authorization::parse(header(req.headers, "authorization").ok_or_else(missing)?)?;
    let key = keys
        .iter()
        .find(|k| k.access_key_id == auth.access_key_id)
        .ok_or_else(|| {
            reject(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        })?;
    let amz_date = header(req.headers, "x-amz-date")
        .ok_or_else(|| reject("IncompleteSignatureException", "x-amz-date is missing"))?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| reject("IncompleteSignatureException", "x-amz-date is malformed"))?
        .and_utc();
    let scope_error = |what: String| reject("InvalidSignatureException", what);
    if !amz_date.starts_with(&auth.date) {
        return Err(scope_error(format!(
            "the credential's date {} is not x-amz-date's",
            auth.date
        )));
    }
    if auth.region != region || auth.service != service {
        return Err(scope_error(format!(
            "Credential should be scoped to a valid region and service ({region}/{service}), \
             not {}/{}",
            auth.region, auth.service
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(scope_error(format!("{required} must be a signed header")));
        }
    }
    if let Some(absent) = auth
        .signed_headers
        .iter()
        .find(|h| header(req.headers, h).is_none())
    {
        return Err(scope_error(format!(
            "the signed header {absent} is not in the request"
        )));
    }
    let payload_hash = hex::encode(Sha256::digest(req.body));
    if header(req.headers, "x-amz-content-sha256").is_some_and(|h| h != payload_hash) {
        return Err(scope_error(
            "x-amz-content-sha256 is not the body's hash".into(),
        ));
    }
    let canonical = canonical_request(req, &auth.signed_headers, &payload_hash);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let expected = signature(
        &key.secret_access_key,
        &auth,
        &string_to_sign(amz_date, &scope, &canonical),
    );
    if expected != auth.signature {
        return Err(reject(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    if key.session_token.as_deref() != header(req.headers, "x-amz-security-token") {
        return Err(reject(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if let Some(now) = now {
        if (now - signed_at).num_seconds().abs() > 15 * 60 {
            return Err(reject("InvalidSignatureException", "Signature expired"));
        }
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// AWS's reference vectors.

/// One case of AWS's SigV4 test suite (`crates/testkit/sigv4/<name>/`).
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: String,
    pub context: VectorContext,
    /// `request.txt`: the request before signing.
    pub request: RawRequest,
    /// `header-signed-request.txt`: the request with AWS's signature headers.
    pub signed: RawRequest,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VectorContext {
    pub credentials: AwsKey,
    pub region: String,
    pub service: String,
    /// `2015-08-30T12:36:00Z`.
    pub timestamp: String,
}

/// A request in the suite's text form: `METHOD target HTTP/1.1`, `Name:value` lines, a blank
/// line, the body.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn parse(text: &str) -> RawRequest {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        let mut words = first.split(' ');
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        RawRequest {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn received(&self) -> Received<'_> {
        Received {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sigv4")
}

/// Every vector in `crates/testkit/sigv4/`, by name.
pub fn vectors() -> std::io::Result<Vec<Vector>> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(vectors_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let read = |f: &str| std::fs::read_to_string(dir.join(f));
        let context: VectorContext = serde_json::from_str(&read("context.json")?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        out.push(Vector {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            context,
            request: RawRequest::parse(&read("request.txt")?),
            signed: RawRequest::parse(&read("header-signed-request.txt")?),
            canonical_request: read("header-canonical-request.txt")?,
            string_to_sign: read("header-string-to-sign.txt")?,
            signature: read("header-signature.txt")?.trim().to_owned(),
        });
    }
    Ok(out)
}
