//! `GET /v1/models/{model}` (the SDKs' `models.retrieve`): 200 for a model or route the key
//! may use, named as a request's `model` names it; 404 in OpenAI's shape for anything else,
//! including names with `/` and `:` in them.

mod common;

use common::{start, KEY};
use serde_json::Value;

const CONFIG: &str = r#"
[providers.sim]
kind = "sim"
[providers.sim.models.fast]
ttft_ms = { p50 = 0 }

[models.small]
deployments = [{ provider = "sim", upstream_model = "fast" }]
[models."llama3:8b"]
deployments = [{ provider = "sim", upstream_model = "fast" }]
[models.frontier]
deployments = [{ provider = "sim", upstream_model = "fast" }]
[models.private]
deployments = [{ provider = "sim", upstream_model = "fast" }]

[routes.auto]
candidates = [
  { model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" },
  { model = "frontier" },
]
router = "builtin:routellm-mixtral-gpt4.v1"

[[keys]]
id = "test"
secret_sha256 = "{KEY}"
models = ["small", "llama3:8b", "frontier", "auto"]
"#;

#[tokio::test]
async fn retrieve_answers_for_usable_models_only() {
    let gw = start(CONFIG).await;
    let get = |path: String| {
        let r = gw.http.get(gw.url(&path)).bearer_auth(KEY).send();
        async move {
            let r = r.await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // (path after /v1/models/, expected id or None for a 404)
    let cases: &[(&str, Option<&str>)] = &[
        ("small", Some("small")),
        ("llama3:8b", Some("llama3:8b")),
        ("llama3%3A8b", Some("llama3:8b")),
        ("auto", Some("auto")),
        ("auto:cheap", Some("auto:cheap")),
        ("auto:0.8", Some("auto:0.8")),
        ("auto:sometimes", None),
        ("private", None),
        ("gpt-99", None),
        ("org/small", None),
        ("org%2Fsmall", None),
        ("small/", None),
        ("sm%C3%A5ll", None),
    ];
    for (path, id) in cases {
        let (status, body) = get(format!("/v1/models/{path}")).await;
        match id {
            Some(id) => {
                assert_eq!(status, 200, "{path}: {body}");
                assert_eq!(body["id"], *id, "{path}");
                assert_eq!(body["object"], "model");
                assert_eq!(body["owned_by"], "switchyard");
                assert!(body["created"].is_i64(), "{body}");
            }
            None => {
                assert_eq!(status, 404, "{path}: {body}");
                assert_eq!(body["error"]["code"], "model_not_found", "{path}: {body}");
                assert_eq!(body["error"]["type"], "invalid_request_error");
                assert_eq!(body["error"]["param"], "model");
            }
        }
    }
    // Every model the list shows can be retrieved.
    let (_, list) = get("/v1/models".into()).await;
    for m in list["data"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let (status, body) = get(format!("/v1/models/{id}")).await;
        assert_eq!((status, &body["id"]), (200, &m["id"]), "{id}");
    }
    // Without a key: the same 401 as the list.
    let r = gw
        .http
        .get(gw.url("/v1/models/small"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
