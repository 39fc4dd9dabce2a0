//! Stored prompt templates are code, and their rendering is bounded: a template that loops
//! or repeats past `[prompts]`' limits is refused when it is stored, and one that goes past
//! them only with a caller's values is refused on that request, naming the prompt and the
//! limit, in OpenAI's error shape.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{start, TestGateway};
use serde_json::{json, Value};

fn config(prompts: &str) -> String {
    format!("{}\n{prompts}\n", common::admin_fast_config())
}

/// A prompt named `name` of one user message whose template is `content`; `n` and `text`
/// are variables with small defaults.
fn prompt_file(name: &str, content: &str) -> String {
    format!(
        "name = \"{name}\"\nmodel = \"fast\"\n[variables]\nn = {{ default = 2 }}\ntext = {{ default = \"ab\" }}\n[[messages]]\nrole = \"user\"\ncontent = '''{content}'''\n"
    )
}

async fn push(gw: &TestGateway, name: &str, content: &str) -> (u16, Value) {
    gw.admin(
        reqwest::Method::POST,
        "/admin/v1/prompts",
        Some(json!({"source": prompt_file(name, content), "label": "production"})),
    )
    .await
}

async fn call(gw: &TestGateway, name: &str, variables: Value) -> (u16, Value) {
    let r = gw
        .chat(json!({"model": format!("prompt:{name}"), "prompt": {"variables": variables}}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn templates_that_loop_or_repeat_past_the_limits_are_refused_when_stored() {
    let gw = start(&config("")).await;
    for (name, content) in [
        (
            "nested",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
        ),
        ("repeated", "{{ 'x' * 100000000 }}"),
        (
            "silent",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% set k = j %}{% endfor %}{% endfor %}",
        ),
    ] {
        let (status, body) = push(&gw, name, content).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_prompt", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("prompt `{name}`")), "{message}");
        assert!(message.contains("`prompts."), "{message}");
    }
    let (_, list) = gw
        .admin(reqwest::Method::GET, "/admin/v1/prompts", None)
        .await;
    assert_eq!(list["prompts"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_render_past_the_limits_with_the_callers_values_is_a_clear_400() {
    let gw = start(&config(
        "[prompts]\nmax_rendered_bytes = 100000\nfuel = 500000\n",
    ))
    .await;
    // Harmless with their defaults, so they are stored.
    let (status, body) = push(
        &gw,
        "grid",
        "{% for i in range(n) %}{% for j in range(n) %}{{ text }}{% endfor %}{% endfor %}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = push(&gw, "echo", "{{ text * n }}").await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = call(&gw, "grid", json!({"n": 3})).await;
    assert_eq!(status, 200, "{body}");

    for (name, variables, limit) in [
        // 10^10 steps writing nothing much: the fuel stops it.
        ("grid", json!({"n": 100000, "text": ""}), "`prompts.fuel`"),
        // A million copies of the caller's text: the size stops it.
        (
            "grid",
            json!({"n": 1000, "text": "many words"}),
            "`prompts.max_rendered_bytes`",
        ),
        (
            "echo",
            json!({"n": 1000000}),
            "`prompts.max_rendered_bytes`",
        ),
    ] {
        let (status, body) = call(&gw, name, variables).await;
        assert_eq!(status, 400, "{name}: {body}");
        let error = &body["error"];
        assert_eq!(error["code"], "prompt_render_limit", "{body}");
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], "prompt", "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("prompt `{name}@1`: ")),
            "{message}"
        );
        assert!(message.contains(limit), "{message}");
    }
    let r = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
