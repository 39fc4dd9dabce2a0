//! SigV4 signing of one request, by AWS's own signer (`aws-sigv4`): its default settings are
//! what Bedrock verifies (the path escaped once more, the body's SHA-256, the session token
//! signed as `x-amz-security-token`).

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::credentials::AwsCredentials;

/// The headers to add to a request so that it is signed (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` for temporary credentials), for `service` in `region` at `time`.
/// `headers` are the request's own, all signed. Errors never hold a secret.
pub(crate) fn signature_headers(
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    request: (&str, &str, &[(&str, &str)], &[u8]),
) -> Result<Vec<(String, String)>, String> {
    let (method, url, headers, body) = request;
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_owned(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        creds.expires,
        "switchyard",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("the request cannot be signed: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("the request cannot be signed: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_control::Secret;
    use switchyard_testkit::sigv4::vectors;

    /// The signer gives AWS's own signatures for the reference vectors whose bodies are
    /// signed the default way (no `x-amz-content-sha256` header).
    #[test]
    fn signs_as_aws_reference_vectors_say() {
        let mut checked = Vec::new();
        for v in vectors().unwrap() {
            if v.name == "post-x-www-form-urlencoded" {
                continue; // signed with an x-amz-content-sha256 header, which Bedrock needs not
            }
            let r = &v.request;
            let host = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                .map(|(_, h)| h.clone())
                .unwrap();
            let query = if r.query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query)
            };
            let url = format!("https://{host}{}{query}", r.path);
            let headers: Vec<(&str, &str)> = r
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let c = &v.context.credentials;
            let creds = AwsCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: Secret::new(c.secret_access_key.clone()),
                session_token: c.session_token.clone().map(Secret::new),
                expires: None,
            };
            let time: chrono::DateTime<chrono::Utc> = v.context.timestamp.parse().unwrap();
            let time =
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(time.timestamp() as u64);
            let added = signature_headers(
                &creds,
                &v.context.region,
                &v.context.service,
                time,
                (&r.method, &url, &headers, &r.body),
            )
            .unwrap();
            let auth = added
                .iter()
                .find(|(n, _)| n == "authorization")
                .map(|(_, a)| a.clone())
                .unwrap();
            assert!(
                auth.ends_with(&format!("Signature={}", v.signature)),
                "{}: {auth}",
                v.name
            );
            if c.session_token.is_some() {
                assert!(added.iter().any(
                    |(n, t)| n == "x-amz-security-token" && Some(t) == c.session_token.as_ref()
                ));
            }
            checked.push(v.name);
        }
        assert_eq!(checked.len(), 4, "{checked:?}");
    }
}
