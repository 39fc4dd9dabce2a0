//! The gateway in front of the cloud provider kinds over real HTTP: Azure OpenAI (with an
//! Entra ID token), Gemini (with its key) and Vertex AI (Gemini and Anthropic models, with a
//! service account's token), each a fake that checks the credentials as the real service
//! does. Whole and streamed answers come back in OpenAI's shape, a Gemini 429's `RetryInfo`
//! wait is honoured, and no credential reaches an answer, a record or `/metrics`.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{sse_content, start_with_env, user, TestGateway};
use serde_json::{json, Value};
use switchyard_testkit::{service_account_key_file, Behavior, FakeUpstream, Flavor, Reply};

const AZURE_SECRET: &str = "azure-client-secret-value";
const GEMINI_KEY: &str = "gemini-key-value";

struct Cloud {
    azure: FakeUpstream,
    gemini: FakeUpstream,
    vertex: FakeUpstream,
    gw: TestGateway,
    _key_file: tempfile::NamedTempFile,
}

async fn cloud() -> Cloud {
    let azure = FakeUpstream::start(Flavor::Azure).await.unwrap();
    azure.require_client(
        "app-1",
        AZURE_SECRET,
        "https://cognitiveservices.azure.com/.default",
    );
    let gemini = FakeUpstream::start(Flavor::Gemini).await.unwrap();
    gemini.require_api_key(GEMINI_KEY);
    let vertex = FakeUpstream::start(Flavor::Vertex).await.unwrap();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key_file.path(),
        service_account_key_file(&vertex.token_url()),
    )
    .unwrap();
    let config = format!(
        r#"
[providers.azure]
kind = "azure"
endpoint = "{azure}"
api_version = "2024-10-21"
client_id = "app-1"
client_secret_env = "AZURE_CLIENT_SECRET"
token_url = "{azure_token}"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}"

[providers.vertex]
kind = "vertex"
project = "p"
location = "us-east5"
base_url = "{vertex}"

[models.az]
deployments = [{{ provider = "azure", upstream_model = "gpt-4o" }}]
[models.gem]
deployments = [{{ provider = "gemini", upstream_model = "gemini-2.5-flash" }}]
resilience = {{ max_attempts = 2, backoff_base_ms = 1, backoff_max_ms = 1 }}
[models.vx]
deployments = [{{ provider = "vertex", upstream_model = "gemini-2.5-pro" }}]
[models.claude]
deployments = [{{ provider = "vertex", upstream_model = "claude-sonnet-4-5@20250929" }}]

[cache]
semantic = false

[[keys]]
id = "test"
secret_sha256 = "{{KEY}}"
"#,
        azure = azure.base_url(),
        azure_token = azure.token_url(),
        gemini = gemini.base_url(),
        vertex = vertex.base_url(),
    );
    let path = key_file.path().display().to_string();
    let gw = start_with_env(
        &config,
        &[
            ("AZURE_CLIENT_SECRET", AZURE_SECRET),
            ("GEMINI_API_KEY", GEMINI_KEY),
            ("GOOGLE_APPLICATION_CREDENTIALS", &path),
        ],
    )
    .await;
    Cloud {
        azure,
        gemini,
        vertex,
        gw,
        _key_file: key_file,
    }
}

#[tokio::test]
async fn every_cloud_kind_answers_whole_and_streamed_without_showing_a_credential() {
    let mut c = cloud().await;
    for (model, up) in [
        ("az", &c.azure),
        ("gem", &c.gemini),
        ("vx", &c.vertex),
        ("claude", &c.vertex),
    ] {
        up.push(Reply::text("The answer is four."));
        let r =
            c.gw.chat(json!({"model": model, "messages": user("2+2?")}))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"], "The answer is four.",
            "{model}"
        );
        assert_eq!(body["object"], "chat.completion");

        up.push(Reply::text("Streamed four."));
        let r =
            c.gw.chat(json!({"model": model, "messages": user("2+2, streamed?"), "stream": true}))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        let body = r.text().await.unwrap();
        let (text, usage) = sse_content(&body);
        assert_eq!(text, "Streamed four.", "{model}");
        assert!(
            !usage && body.ends_with("data: [DONE]\n\n"),
            "{model}: {body}"
        );
    }
    // One token per provider, reused.
    assert_eq!(c.azure.tokens_granted(), 1);
    assert_eq!(c.vertex.tokens_granted(), 1);

    // Gemini's 429 names its wait in RetryInfo: retried, and answered.
    c.gemini.push(Behavior::rate_limited("0"));
    c.gemini.push(Reply::text("After the wait."));
    let r =
        c.gw.chat(json!({"model": "gem", "messages": user("again")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);

    // An image Gemini would have to fetch is the caller's 400, naming the field, and nothing
    // goes upstream.
    let before = c.gemini.requests().len();
    let image = json!([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]);
    let r =
        c.gw.chat(json!({"model": "gem", "messages": image}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["param"], "messages[0].content[0].image_url.url",
        "{body}"
    );
    assert_eq!(c.gemini.requests().len(), before);

    let metrics = c.gw.metrics().await;
    c.gw.stop().await;
    let records = format!("{:?}", c.gw.records());
    let key_file = std::fs::read_to_string(c._key_file.path()).unwrap();
    let key: Value = serde_json::from_str(&key_file).unwrap();
    let key_line = key["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    for secret in [
        AZURE_SECRET,
        GEMINI_KEY,
        key_line.as_str(),
        "fake-access-token-",
    ] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
        assert!(!records.contains(secret), "{secret} in records");
    }
}
