//! The fake Bedrock's SigV4 verifier held to AWS's own answers: for each reference vector, the
//! canonical request, the string to sign and the signature it computes are AWS's, the signed
//! request verifies, and a change to any signed part of it does not.

#![expect(clippy::expect_used, reason = "test code")]

use switchyard_testkit::sigv4::{self, Authorization, RawRequest, Vector};

fn vectors() -> Vec<Vector> {
    let v = sigv4::vectors().expect("the vectors load");
    let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "get-vanilla",
            "get-vanilla-query-order-key-case",
            "get-vanilla-with-session-token",
            "post-vanilla",
            "post-x-www-form-urlencoded",
        ]
    );
    v
}

fn auth_of(signed: &RawRequest) -> Authorization {
    let value = signed
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .expect("a signed request has Authorization");
    Authorization::parse(value).expect("AWS's Authorization parses")
}

#[test]
fn computes_aws_canonical_request_string_to_sign_and_signature() {
    for v in vectors() {
        let auth = auth_of(&v.signed);
        let received = v.signed.received();
        let body_hash = v
            .canonical_request
            .lines()
            .last()
            .expect("a hash line")
            .to_owned();
        let canonical = sigv4::canonical_request(&received, &auth.signed_headers, &body_hash);
        assert_eq!(canonical, v.canonical_request, "{}", v.name);
        let amz_date = v.string_to_sign.lines().nth(1).expect("date line");
        let scope = v.string_to_sign.lines().nth(2).expect("scope line");
        let to_sign = sigv4::string_to_sign(amz_date, scope, &canonical);
        assert_eq!(to_sign, v.string_to_sign, "{}", v.name);
        let signature = sigv4::signature(&v.context.credentials.secret_access_key, &auth, &to_sign);
        assert_eq!(signature, v.signature, "{}", v.name);
    }
}

#[test]
fn aws_signed_requests_verify() {
    for v in vectors() {
        let keys = [v.context.credentials.clone()];
        let key = sigv4::verify(
            &v.signed.received(),
            &keys,
            &v.context.region,
            &v.context.service,
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(key.access_key_id, "AKIDEXAMPLE");
    }
}

/// Every signed part changed, one at a time, is refused with AWS's error type.
#[test]
fn tampered_requests_are_refused() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "post-x-www-form-urlencoded")
        .expect("vector");
    let keys = [v.context.credentials.clone()];
    let check = |name: &str, change: &dyn Fn(&mut RawRequest), region: &str, error_type: &str| {
        let mut r = v.signed.clone();
        change(&mut r);
        let err = sigv4::verify(&r.received(), &keys, region, "service", None).expect_err(name);
        assert_eq!(err.error_type, error_type, "{name}: {err:?}");
    };
    let header = |name: &'static str, value: &'static str| {
        move |r: &mut RawRequest| {
            for (n, v) in &mut r.headers {
                if n.eq_ignore_ascii_case(name) {
                    *v = value.to_owned();
                }
            }
        }
    };
    let bad = "InvalidSignatureException";
    check("method", &|r| r.method = "PUT".into(), "us-east-1", bad);
    check("path", &|r| r.path = "/other".into(), "us-east-1", bad);
    check("query", &|r| r.query = "a=b".into(), "us-east-1", bad);
    check(
        "body",
        &|r| r.body = b"Param1=value2".to_vec(),
        "us-east-1",
        bad,
    );
    check(
        "signed header",
        &header("content-type", "text/plain"),
        "us-east-1",
        bad,
    );
    check(
        "date",
        &header("x-amz-date", "20150830T123601Z"),
        "us-east-1",
        bad,
    );
    check("region", &|_| {}, "eu-west-1", bad);
    check(
        "key",
        &header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        ),
        "us-east-1",
        "UnrecognizedClientException",
    );
    check(
        "no authorization",
        &|r| {
            r.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
        },
        "us-east-1",
        "MissingAuthenticationTokenException",
    );
    // An unsigned header may change: it is not part of the signature.
    let mut r = v.signed.clone();
    r.headers.push(("User-Agent".into(), "anything".into()));
    sigv4::verify(&r.received(), &keys, "us-east-1", "service", None).expect("still valid");
}

/// Temporary credentials: the token must come, and be the one issued with the key.
#[test]
fn session_tokens_are_checked() {
    let v = vectors()
        .into_iter()
        .find(|v| v.name == "get-vanilla-with-session-token")
        .expect("vector");
    let mut key = v.context.credentials.clone();
    key.session_token = Some("another-token".into());
    let err = sigv4::verify(&v.signed.received(), &[key], "us-east-1", "service", None)
        .expect_err("wrong token");
    assert_eq!(err.error_type, "UnrecognizedClientException");
}

#[test]
fn stale_signatures_are_refused() {
    let v = vectors().remove(0);
    let keys = [v.context.credentials.clone()];
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&chrono::Utc)
    };
    let r = v.signed.received();
    sigv4::verify(
        &r,
        &keys,
        "us-east-1",
        "service",
        Some(at("2015-08-30T12:46:00Z")),
    )
    .expect("ten minutes later is fine");
    let err = sigv4::verify(
        &r,
        &keys,
        "us-east-1",
        "service",
        Some(at("2015-08-30T13:00:00Z")),
    )
    .expect_err("24 minutes later is not");
    assert_eq!(err.message, "Signature expired");
}
