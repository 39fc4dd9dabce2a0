//! The `bedrock` provider beyond the conformance suite: what AWS verifies of a request (the
//! fake Bedrock recomputes every SigV4 signature, and refuses a wrong one in AWS's 403 shape),
//! model ids as one escaped path segment, the session token of temporary credentials, and
//! the credentials chain: a profile file, and an instance role served by a fake IMDSv2 whose
//! credentials are refreshed before they expire without failing a request.

#![expect(clippy::expect_used, clippy::panic, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchyard_api::ChatCompletionRequest;
use switchyard_control::{BedrockSpec, ProviderSpec};
use switchyard_providers::{ChatProvider, ChatReply, ProviderError};
use switchyard_testkit::sigv4::AwsKey;
use switchyard_testkit::{
    FakeImds, FakeUpstream, Flavor, ImdsAnswer, Reply, CONTAINER_TOKEN, FAKE_AWS_ACCESS_KEY_ID,
    FAKE_AWS_REGION, FAKE_AWS_SECRET_ACCESS_KEY,
};

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn spec(base_url: &str) -> BedrockSpec {
    BedrockSpec {
        region: Some(FAKE_AWS_REGION.to_owned()),
        base_url: Some(base_url.to_owned()),
        profile: None,
        headers: vec![],
        connect_timeout: Duration::from_secs(2),
    }
}

fn build(spec: BedrockSpec, env: &[(&str, &str)]) -> Result<Arc<dyn ChatProvider>, String> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
    let http = switchyard_providers::http_client(Duration::from_secs(2)).expect("client");
    switchyard_providers::build("aws", &ProviderSpec::Bedrock(spec), &http, &lookup)
        .map_err(|e| e.to_string())
}

const FAKE_ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", FAKE_AWS_SECRET_ACCESS_KEY),
];

fn request(model: &str, stream: bool) -> ChatCompletionRequest {
    serde_json::from_value(json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "Hi"}]}))
    .expect("request")
}

/// The whole answer's text, or the error.
async fn ask(provider: &dyn ChatProvider, model: &str) -> Result<String, ProviderError> {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        provider.chat(request(model, false)),
    )
    .await
    .expect("the call ends")?;
    match reply {
        ChatReply::Complete(r) => Ok(r.text()),
        ChatReply::Stream(_) => panic!("asked for a whole answer"),
    }
}

fn signed_with(fake: &FakeUpstream) -> String {
    let r = fake.last_request().expect("a request");
    let auth = r.header("authorization").expect("signed").to_owned();
    let key = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .expect("a credential");
    key.to_owned()
}

#[tokio::test]
async fn model_ids_are_one_escaped_path_segment() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    let provider = build(spec(&fake.base_url()), &FAKE_ENV).expect("builds");
    let profile = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0";
    for (model, path) in [
        (MODEL, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
        (
            profile,
            "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.meta.llama3-3-70b-instruct-v1%3A0/converse",
        ),
    ] {
        fake.push(Reply::text("ok"));
        assert_eq!(ask(provider.as_ref(), model).await.expect("answer"), "ok");
        assert_eq!(fake.last_request().expect("request").path, path);
    }
}

/// A request signed with the wrong secret is refused as AWS refuses it, and the error says
/// so without repeating the secret; so is an unsigned one.
#[tokio::test]
async fn a_wrong_signature_is_refused_in_aws_shape() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    let wrong = [
        ("AWS_ACCESS_KEY_ID", FAKE_AWS_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
    ];
    let provider = build(spec(&fake.base_url()), &wrong).expect("builds");
    let err = ask(provider.as_ref(), MODEL).await.expect_err("refused");
    match &err {
        ProviderError::Status {
            status, message, ..
        } => {
            assert_eq!(*status, 403);
            assert!(
                message.contains("signature we calculated does not match"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.retryable());
    assert!(!err.to_string().contains("not-the-secret"));

    let response = reqwest::Client::new()
        .post(format!("{}/model/m/converse", fake.base_url()))
        .header("authorization", format!("AWS4-HMAC-SHA256 Credential={FAKE_AWS_ACCESS_KEY_ID}/20260101/{FAKE_AWS_REGION}/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"))
        .header("x-amz-date", Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 403);
    let kind = response.headers()["x-amzn-errortype"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(kind.starts_with("InvalidSignatureException:"), "{kind}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn a_session_token_is_sent_as_x_amz_security_token() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    fake.allow_aws_key(AwsKey {
        access_key_id: "ASIATEMPORARY".into(),
        secret_access_key: "temporary-secret".into(),
        session_token: Some("the-session-token".into()),
    });
    let env = |token: &'static str| {
        [
            ("AWS_ACCESS_KEY_ID", "ASIATEMPORARY"),
            ("AWS_SECRET_ACCESS_KEY", "temporary-secret"),
            ("AWS_SESSION_TOKEN", token),
        ]
    };
    let provider = build(spec(&fake.base_url()), &env("the-session-token")).expect("builds");
    ask(provider.as_ref(), MODEL).await.expect("answer");
    let r = fake.last_request().expect("request");
    assert_eq!(r.header("x-amz-security-token"), Some("the-session-token"));
    assert!(r
        .header("authorization")
        .expect("signed")
        .contains("x-amz-security-token"));
    let provider = build(spec(&fake.base_url()), &env("another-token")).expect("builds");
    let err = ask(provider.as_ref(), MODEL)
        .await
        .expect_err("wrong token");
    assert!(
        matches!(err, ProviderError::Status { status: 403, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("another-token"));
}

#[tokio::test]
async fn the_region_comes_from_the_config_or_the_environment() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    let mut no_region = spec(&fake.base_url());
    no_region.region = None;
    let mut env = FAKE_ENV.to_vec();
    env.push(("AWS_DEFAULT_REGION", FAKE_AWS_REGION));
    let provider = build(no_region.clone(), &env).expect("builds");
    ask(provider.as_ref(), MODEL)
        .await
        .expect("signed for the fake's region");
    let err = build(no_region, &FAKE_ENV).err().expect("no region");
    assert!(err.contains("AWS_REGION"), "{err}");
    // Signed for another region, the request is refused.
    let mut other = spec(&fake.base_url());
    other.region = Some("eu-west-1".into());
    let provider = build(other, &FAKE_ENV).expect("builds");
    let err = ask(provider.as_ref(), MODEL)
        .await
        .expect_err("wrong region");
    assert!(
        matches!(err, ProviderError::Status { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn credentials_from_a_profile_file() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    fake.allow_aws_key(AwsKey {
        access_key_id: "AKIDWORKPROFILE".into(),
        secret_access_key: "work-secret".into(),
        session_token: None,
    });
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIDNOTTHISONE\naws_secret_access_key = nope\n\n\
         [work]\naws_access_key_id = AKIDWORKPROFILE\naws_secret_access_key = work-secret\n",
    )
    .expect("write");
    let file = file.to_string_lossy().into_owned();
    let by_env = [
        ("AWS_SHARED_CREDENTIALS_FILE", file.as_str()),
        ("AWS_PROFILE", "work"),
    ];
    let provider = build(spec(&fake.base_url()), &by_env).expect("builds");
    ask(provider.as_ref(), MODEL).await.expect("answer");
    assert_eq!(signed_with(&fake), "AKIDWORKPROFILE");
    let mut by_config = spec(&fake.base_url());
    by_config.profile = Some("work".into());
    let provider = build(by_config, &by_env[..1]).expect("builds");
    ask(provider.as_ref(), MODEL).await.expect("answer");
    assert_eq!(signed_with(&fake), "AKIDWORKPROFILE");
}

fn temporary(id: &str, minutes: i64) -> ImdsAnswer {
    ImdsAnswer::Credentials {
        key: AwsKey {
            access_key_id: id.into(),
            secret_access_key: format!("{id}-secret"),
            session_token: Some(format!("{id}-token")),
        },
        expires: Utc::now() + chrono::Duration::minutes(minutes),
    }
}

fn allow(fake: &FakeUpstream, answer: &ImdsAnswer) {
    if let ImdsAnswer::Credentials { key, .. } = answer {
        fake.allow_aws_key(key.clone());
    }
}

async fn with_imds() -> (FakeUpstream, FakeImds, Arc<dyn ChatProvider>) {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    let imds = FakeImds::start().await.expect("imds");
    let endpoint = imds.endpoint();
    let env = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.as_str())];
    let provider = build(spec(&fake.base_url()), &env).expect("builds");
    (fake, imds, provider)
}

/// 1. The first credentials expire within the refresh margin: used (still valid), and the
///    next request refreshes first. 2. The second last an hour: used without asking again.
#[tokio::test]
async fn instance_role_credentials_are_refreshed_before_they_expire() {
    let (fake, imds, provider) = with_imds().await;
    let (first, second) = (temporary("ASIAFIRST", 2), temporary("ASIASECOND", 60));
    for a in [&first, &second] {
        allow(&fake, a);
        imds.push(a.clone());
    }
    ask(provider.as_ref(), MODEL).await.expect("first answer");
    assert_eq!(signed_with(&fake), "ASIAFIRST");
    let r = fake.last_request().expect("request");
    assert_eq!(r.header("x-amz-security-token"), Some("ASIAFIRST-token"));
    ask(provider.as_ref(), MODEL).await.expect("second answer");
    assert_eq!(signed_with(&fake), "ASIASECOND");
    ask(provider.as_ref(), MODEL).await.expect("third answer");
    assert_eq!(signed_with(&fake), "ASIASECOND");
    assert_eq!(imds.credential_requests(), 2);
    assert_eq!(
        imds.token_requests(),
        2,
        "one IMDSv2 session token per refresh"
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let (fake, imds, provider) = with_imds().await;
    let creds = temporary("ASIASHARED", 60);
    allow(&fake, &creds);
    imds.push(creds);
    let calls = (0..8).map(|_| ask(provider.as_ref(), MODEL));
    for result in futures::future::join_all(calls).await {
        result.expect("answer");
    }
    assert_eq!(imds.credential_requests(), 1);
}

/// A refresh that fails fails the request that needed it, clearly and retryably, and
/// nothing after it; while the credentials held are still valid, it fails no request.
#[tokio::test]
async fn a_failed_refresh_fails_only_the_requests_that_needed_it() {
    let (fake, imds, provider) = with_imds().await;
    imds.push(ImdsAnswer::Fail(500));
    let err = ask(provider.as_ref(), MODEL)
        .await
        .expect_err("no credentials");
    assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
    assert!(err.retryable());
    let text = err.to_string();
    assert!(
        text.contains("instance metadata service") && text.contains("500"),
        "{text}"
    );
    assert!(fake.requests().is_empty(), "nothing unsigned was sent");

    let soon = temporary("ASIASOON", 2);
    allow(&fake, &soon);
    imds.push(soon);
    ask(provider.as_ref(), MODEL)
        .await
        .expect("credentials now");
    // Within the margin: a refresh is due and fails, and the held ones still sign.
    imds.push(ImdsAnswer::Fail(503));
    ask(provider.as_ref(), MODEL)
        .await
        .expect("the held credentials still sign");
    assert_eq!(signed_with(&fake), "ASIASOON");
    assert_eq!(imds.credential_requests(), 3);
}

/// ECS and EKS Pod Identity: the container endpoint, with its authorization token.
#[tokio::test]
async fn credentials_from_the_container_endpoint() {
    let fake = FakeUpstream::start(Flavor::Bedrock).await.expect("fake");
    let endpoint = FakeImds::start().await.expect("endpoint");
    let creds = temporary("ASIACONTAINER", 60);
    allow(&fake, &creds);
    endpoint.push(creds);
    let url = endpoint.container_url();
    let env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN),
    ];
    let provider = build(spec(&fake.base_url()), &env).expect("builds");
    ask(provider.as_ref(), MODEL).await.expect("answer");
    assert_eq!(signed_with(&fake), "ASIACONTAINER");
    assert_eq!(endpoint.credential_requests(), 1);
    // A wrong token is refused by the endpoint: the request fails, naming where.
    let env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"),
    ];
    let provider = build(spec(&fake.base_url()), &env).expect("builds");
    let err = ask(provider.as_ref(), MODEL)
        .await
        .expect_err("no credentials");
    assert!(
        err.to_string().contains("container credentials endpoint"),
        "{err}"
    );
    assert!(err.to_string().contains("401"), "{err}");
}
