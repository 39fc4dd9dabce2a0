//! The dashboard's HTTP contract: its pages and assets (with their security headers and
//! revalidation), signing in with the admin key for a session cookie, what that cookie opens
//! (admin reads) and what it never opens (admin changes, `/v1/`), and signing out. The pages
//! themselves are driven in a real browser by `crates/switchyard/tests/dashboard.rs`.

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{start, user, TestGateway, ADMIN, KEY};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, SET_COOKIE};
use serde_json::{json, Value};

fn config() -> String {
    common::admin_fast_config()
        + r#"
[[slos]]
name = "availability"
objective = "availability"
target = 0.99
"#
}

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(gw: &TestGateway, key: &str) -> reqwest::Response {
    browser()
        .post(gw.url("/dashboard/login"))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap()
}

async fn get_with_cookie(gw: &TestGateway, path: &str, cookie: &str) -> (u16, Value) {
    let r = browser()
        .get(gw.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn pages_and_assets_are_built_in_with_their_security_headers() {
    let gw = start(&config()).await;
    let http = browser();
    let r = http.get(gw.url("/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/dashboard/");

    let r = http.get(gw.url("/dashboard/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains("/dashboard/assets/app.js"), "{html}");

    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = http
            .get(gw.url(&format!("/dashboard/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let etag = r.headers()[ETAG].clone();
        // Unchanged since the browser's copy: 304 and no body.
        let again = http
            .get(gw.url(&format!("/dashboard/assets/{asset}")))
            .header(IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{asset}");
    }
    let r = http
        .get(gw.url("/dashboard/assets/../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(gw.url("/dashboard/assets/secrets.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_session_cookie_opens_admin_reads_and_nothing_else() {
    let gw = start(&config()).await;
    for _ in 0..3 {
        let r = gw
            .chat(json!({"model": "fast", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Records reach the store a moment after the answers.
    for _ in 0..200 {
        if gw.records_written() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Not signed in: the page's check says so with a 200 (no failed request in the console).
    let r = browser()
        .get(gw.url("/dashboard/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["signed_in"], false);

    // Only the admin key signs in; a virtual key or a wrong one is refused, OpenAI-shaped.
    for wrong in [KEY, "sk-nope", ""] {
        let r = sign_in(&gw, wrong).await;
        assert_eq!(r.status(), 401, "{wrong}");
        assert!(r.headers().get(SET_COOKIE).is_none());
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let r = browser()
        .post(gw.url("/dashboard/login"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = sign_in(&gw, ADMIN).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    let (status, body) = get_with_cookie(&gw, "/dashboard/session", &cookie).await;
    assert_eq!((status, body["signed_in"].clone()), (200, json!(true)));
    let (status, summary) = get_with_cookie(&gw, "/admin/v1/kpis/summary?hours=1", &cookie).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["requests"], 3, "{summary}");
    let (status, slos) = get_with_cookie(&gw, "/admin/v1/slos?history_hours=2", &cookie).await;
    assert_eq!(status, 200, "{slos}");
    let history = &slos["slos"][0]["history"];
    assert_eq!(history["step_secs"], 60, "{history}");
    let counted: u64 = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 3, "{history}");
    let (status, body) = get_with_cookie(&gw, "/admin/v1/slos?history_hours=0", &cookie).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "history_hours");
    let (status, body) = get_with_cookie(&gw, "/admin/v1/audit?latest=true&after=3", &cookie).await;
    assert_eq!(
        (status, body["error"]["param"].clone()),
        (400, json!("after"))
    );
    let (status, body) = get_with_cookie(&gw, "/admin/v1/audit?latest=true&limit=1", &cookie).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"].as_array().unwrap().len(), 1, "{body}");
    for path in ["/admin/v1/audit", "/admin/v1/config", "/admin/v1/rollouts"] {
        let (status, body) = get_with_cookie(&gw, path, &cookie).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // Changes need the key itself: a page on another site cannot ride the cookie.
    let r = browser()
        .put(gw.url("/admin/v1/flags/cache"))
        .header("cookie", &cookie)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A request presenting a key is judged by the key alone.
    let r = browser()
        .get(gw.url("/admin/v1/audit"))
        .header("cookie", &cookie)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // And the cookie is nothing on the model API.
    let r = browser()
        .post(gw.url("/v1/chat/completions"))
        .header("cookie", &cookie)
        .json(&json!({"model": "fast", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Signing out ends the session on the server, not only in the browser.
    let r = browser()
        .post(gw.url("/dashboard/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _) = get_with_cookie(&gw, "/admin/v1/audit", &cookie).await;
    assert_eq!(status, 401);

    // Behind a TLS-terminating proxy the cookie is marked Secure.
    let r = browser()
        .post(gw.url("/dashboard/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"key": ADMIN}))
        .send()
        .await
        .unwrap();
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("; Secure"));
}

/// A client that connects from `127.0.0.N` (every loopback address reaches the gateway).
fn from_address(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, n]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn wrong_keys_from_one_address_are_throttled_and_other_addresses_still_sign_in() {
    let gw = start(&config()).await;
    let guesser = from_address(7);
    let guess = |key: String| {
        guesser
            .post(gw.url("/dashboard/login"))
            .json(&json!({ "key": key }))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..14 {
        statuses.push(
            guess(format!("sk-guess-{i}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 4], "{statuses:?}");
    let r = guess(ADMIN.to_owned()).await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "a throttled address is refused before its key is looked at"
    );
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_sign_ins", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    // The same guesses through the admin API's header are the same throttle.
    let r = guesser
        .get(gw.url("/admin/v1/audit"))
        .bearer_auth("sk-guess-header")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);

    // Another address signs in with the right key, and its own wrong key is a plain 401.
    let admin = from_address(8);
    let r = admin
        .post(gw.url("/dashboard/login"))
        .json(&json!({ "key": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .post(gw.url("/dashboard/login"))
        .json(&json!({ "key": "sk-typo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admin_api_guesses_are_throttled_and_requests_without_a_key_are_not_guesses() {
    let gw = start(&config()).await;
    let client = from_address(9);
    // A browser whose session ended asks without a key: refused, never throttled.
    for _ in 0..20 {
        let r = client.get(gw.url("/admin/v1/audit")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = client
            .get(gw.url("/admin/v1/kpis/summary"))
            .header("x-api-key", format!("sk-guess-{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 2], "{statuses:?}");
    // The right key from an address that never guessed.
    let r = from_address(10)
        .get(gw.url("/admin/v1/audit"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
