//! The dashboard in a real browser: the embedded demo filled by `switchyard loadgen` and the
//! admin CLI (a running canary, an aborted one, prompt versions), then Debian's chromium,
//! driven over WebDriver by chromedriver, signs in with the admin key and opens every page.
//! Each page must reach its `ready` state with data on it and log nothing at error level to
//! the console; a screenshot of each is kept in `target/tmp/dashboard-screenshots/`. A
//! request's detail must show its stored conversation and answer, masked, and the last hour's
//! sparklines a point a minute.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Without them the test fails, saying so, unless
//! `SWITCHYARD_SKIP_BROWSER_TESTS=1` is set.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_demo, stdout_of, switchyard};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const ADMIN_KEY: &str = "sk-switchyard-admin";
/// A prompt with an address in it: the demo masks it (`<EMAIL_1>`) and stores it so.
const PII_PROMPT: &str = "Please email ana.lima@example.com about the invoice.";

/// What each page must show once its data is in: (CSS selector, at least this many).
const PAGES: &[(&str, &[(&str, usize)])] = &[
    (
        "overview",
        &[
            (".kpi-tile", 4),
            (".slo-card", 1),
            ("svg.chart:not([data-series='0'])", 1),
        ],
    ),
    (
        "slos",
        &[
            (".slo-card", 1),
            ("svg.chart:not([data-series='0'])", 1),
            ("table.data.alerts", 1),
        ],
    ),
    (
        "routing",
        &[
            ("svg.chart:not([data-series='0'])", 2),
            ("table.data.classes tbody tr:not(.empty)", 1),
        ],
    ),
    (
        "guards",
        &[
            ("svg.chart:not([data-series='0'])", 1),
            ("table.data.guards tbody tr:not(.empty)", 1),
        ],
    ),
    (
        "rollouts",
        &[
            ("table.data.rollouts tbody tr:not(.empty)", 2),
            ("table.data.audit tbody tr:not(.empty)", 3),
        ],
    ),
    (
        "requests",
        &[("table.data.requests tbody tr:not(.empty)", 20)],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_loads_with_data_and_no_console_errors() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let (_server, base) = spawn_demo(cwd.path());
    tokio::task::spawn_blocking({
        let base = base.clone();
        move || fill(&base)
    })
    .await
    .unwrap();
    let pii_request = masked_request(&base).await;

    let driver = browser.start_driver().await;
    let client = driver.session().await;
    let shots = screenshot_dir();

    client.goto(&format!("{base}/dashboard/")).await.unwrap();
    wait_for(&client, None, "login").await;
    client
        .find(Locator::Css("#login input[name=key]"))
        .await
        .unwrap()
        .send_keys(ADMIN_KEY)
        .await
        .unwrap();
    client
        .find(Locator::Css("#login [type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, Some("overview"), "ready").await;

    let mut console_errors = Vec::new();
    for (page, expected) in PAGES {
        client
            .goto(&format!("{base}/dashboard/#/{page}?hours=24"))
            .await
            .unwrap();
        let state = wait_for(&client, Some(page), "ready").await;
        let banners = count(&client, ".error-banner").await;
        for (selector, at_least) in *expected {
            let found = count(&client, selector).await;
            assert!(
                found >= *at_least,
                "page {page}: {found} of `{selector}`, expected at least {at_least} (state {state})"
            );
        }
        assert_eq!(banners, 0, "page {page} shows an error banner");
        let png = client.screenshot().await.unwrap();
        std::fs::write(shots.join(format!("{page}.png")), png).unwrap();
        console_errors.extend(
            browser_log(&client)
                .await
                .into_iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| format!("{page}: {}", e["message"])),
        );
    }

    // The requests page is open: the PII request's detail shows its conversation and answer,
    // with the PII guard's placeholder marked, never the address.
    client
        .find(Locator::Css(&format!("td.id[title='{pii_request}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = wait_for_js(
        &client,
        "const c = document.querySelector('tr.detail .conversation'); \
         return c && c.dataset.state !== 'loading' ? c.dataset.state : '';",
    )
    .await;
    assert_eq!(state, "ready");
    let text = client
        .execute(
            "return document.querySelector('tr.detail .conversation').textContent;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("Please email <EMAIL_1> about the invoice."),
        "{text}"
    );
    assert!(
        text.contains("I'll draft that email to <EMAIL_1> right away."),
        "{text}"
    );
    assert!(!text.contains("ana.lima@example.com"), "{text}");
    assert_eq!(
        count(&client, "tr.detail .conversation .msg.answer").await,
        1
    );
    assert!(count(&client, "tr.detail .conversation mark.ph").await >= 2);
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots.join("request-detail.png"), png).unwrap();

    // The last hour is drawn in minutes: a tile's sparkline has a point a minute, not two.
    client
        .goto(&format!("{base}/dashboard/#/overview?hours=1"))
        .await
        .unwrap();
    wait_for(&client, Some("overview"), "ready").await;
    let points = client
        .execute(
            "return Math.max(0, ...[...document.querySelectorAll('svg.chart.spark')] \
             .map((s) => Number(s.dataset.series)));",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        points >= 60,
        "a sparkline of the last hour has {points} points"
    );
    console_errors.extend(
        browser_log(&client)
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| format!("request detail, last hour: {}", e["message"])),
    );

    // Signing out ends the session: the admin API refuses the cookie and the page asks again.
    client
        .find(Locator::Css("#signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, None, "login").await;
    console_errors.extend(
        browser_log(&client)
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| format!("after sign-out: {}", e["message"])),
    );
    client.close().await.unwrap();
    assert!(
        console_errors.is_empty(),
        "console errors:\n{}",
        console_errors.join("\n")
    );
}

/// Traffic, rollouts and versions, as someone trying the demo would make them.
fn fill(base: &str) {
    let summary = stdout_of(switchyard().args([
        "loadgen",
        "--json",
        "--target",
        base,
        // The demo's simulated models pace their tokens in real time (seconds for a
        // frontier answer), so many users at once make the traffic, not a long run.
        "--duration",
        "8s",
        "--concurrency",
        "32",
        "--seed",
        "11",
    ]));
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert!(
        summary["overall"]["requests"].as_u64().unwrap() >= 30,
        "{summary:#}"
    );
    let admin = |args: &[&str]| {
        stdout_of(
            switchyard()
                .args(args)
                .env("SWITCHYARD_URL", base)
                .env("SWITCHYARD_ADMIN_KEY", ADMIN_KEY),
        )
    };
    admin(&[
        "prompt",
        "push",
        common::repo_file("examples/prompts/support-answer.toml")
            .to_str()
            .unwrap(),
        "--label",
        "production",
        "-m",
        "first version",
    ]);
    admin(&[
        "rollout", "start", "model", "medium", "frontier", "--id", "tried", "--reason", "a try",
    ]);
    admin(&["rollout", "abort", "tried", "--reason", "changed our minds"]);
    // Stays at its first step: it needs more requests than the test sends.
    admin(&[
        "rollout",
        "start",
        "model",
        "small",
        "medium",
        "--id",
        "canary",
        "--steps",
        "5,50,100",
        "--min-step-requests",
        "100000",
        "--reason",
        "is medium worth it?",
    ]);
}

/// Sends [`PII_PROMPT`] as the demo's client and waits until its record is written; returns
/// its request id.
async fn masked_request(base: &str) -> String {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(switchyard_control::DEMO_KEY)
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": PII_PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let id = r.headers()["x-switchyard-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let detail = http
            .get(format!("{base}/admin/v1/requests/{id}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        if detail.status() == 200 {
            return id;
        }
        assert!(Instant::now() < deadline, "request {id} was never written");
        // Written by the telemetry writer within its flush interval.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `script` until it returns a non-empty string (at most 30 s), and returns that.
async fn wait_for_js(client: &Client, script: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = client.execute(script, vec![]).await.unwrap();
        if let Some(s) = got.as_str().filter(|s| !s.is_empty()) {
            return s.to_owned();
        }
        assert!(Instant::now() < deadline, "waited 30 s for `{script}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Browser {
    /// Debian's chromium and chromedriver; `None` (the test passes, saying why) only when
    /// they are missing and `SWITCHYARD_SKIP_BROWSER_TESTS=1`.
    fn find() -> Option<Browser> {
        let on_path = |names: &[&str]| {
            names.iter().find_map(|n| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join(n))
                        .find(|p| p.is_file())
                })
            })
        };
        match (
            on_path(&["chromium", "chromium-browser"]),
            on_path(&["chromedriver"]),
        ) {
            (Some(chromium), Some(chromedriver)) => Some(Browser {
                chromium,
                chromedriver,
            }),
            _ if std::env::var("SWITCHYARD_SKIP_BROWSER_TESTS").as_deref() == Ok("1") => {
                eprintln!("skipped: no chromium/chromedriver and SWITCHYARD_SKIP_BROWSER_TESTS=1");
                None
            }
            _ => panic!(
                "the dashboard test needs chromium and chromedriver \
                 (apt-get install chromium chromium-driver), \
                 or SWITCHYARD_SKIP_BROWSER_TESTS=1 to skip it"
            ),
        }
    }

    async fn start_driver(&self) -> Driver {
        let port = free_port();
        let child = Command::new(&self.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: self.chromium.clone(),
            profile: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }
}

struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    profile: tempfile::TempDir,
}

impl Driver {
    async fn session(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                // The flags a closed network and a root user need: no sandbox, and no
                // background connections that would only be refused.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1366,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the page says it is `page` (when given) in `state`, or has failed; returns the
/// state it reached.
async fn wait_for(client: &Client, page: Option<&str>, state: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = client
            .execute(
                "return [document.body.dataset.page || '', document.body.dataset.state || ''];",
                vec![],
            )
            .await
            .unwrap();
        let (at, reached) = (now[0].as_str().unwrap(), now[1].as_str().unwrap());
        if page.is_none_or(|p| p == at) && (reached == state || reached == "error") {
            assert_eq!(reached, state, "page {at}: {}", banner_text(client).await);
            return reached.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "waited 30 s for page {page:?} to be {state}; it is {at:?} {reached:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn banner_text(client: &Client) -> String {
    client
        .execute(
            "const b = document.querySelector('.error-banner'); return b ? b.textContent : '';",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn count(client: &Client, selector: &str) -> usize {
    client
        .execute(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(selector)],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap() as usize
}

/// chromedriver's browser log since the last read (`goog:loggingPrefs` turns it on): console
/// messages, uncaught exceptions and failed loads, each with a `level`.
async fn browser_log(client: &Client) -> Vec<Value> {
    #[derive(Debug)]
    struct ReadBrowserLog;
    impl fantoccini::wd::WebDriverCompatibleCommand for ReadBrowserLog {
        fn endpoint(
            &self,
            base: &url::Url,
            session: Option<&str>,
        ) -> Result<url::Url, url::ParseError> {
            base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
        }
        fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
            (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
        }
    }
    match client.issue_cmd(ReadBrowserLog).await.unwrap() {
        Value::Array(entries) => entries,
        other => panic!("unexpected browser log: {other}"),
    }
}
