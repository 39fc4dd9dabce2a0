//! Routing and caching through the gateway over real HTTP, against the simulator's tiered
//! fleet: the router's choices and the policy that changes them, exact and semantic hits (plain
//! and streamed), tenant isolation, the negation guard, cache control, and what the records
//! and headers say about it all.
//!
//! The semantic tier needs the static embedding model (`scripts/fetch-models.sh`, which
//! `scripts/test.sh` runs first).

#![expect(clippy::unwrap_used, reason = "test code")]

mod common;

use common::{start, user, TestGateway, KEY};
use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_testkit::{FakeUpstream, Flavor};

const OTHER_KEY: &str = "sk-test-other-tenant";

/// `[cache]` with the semantic tier at 0.85, and the test key, of tenant `acme`.
fn cache_and_key() -> String {
    format!(
        "[cache]\nembedder = \"{}\"\nthreshold = 0.85\n\n[[keys]]\nid = \"test\"\ntenant = \"acme\"\nsecret_sha256 = \"{{KEY}}\"\n",
        common::static_embedder()
    )
}

fn config() -> String {
    format!(
        r#"
[providers.sim]
kind = "sim"
seed = 7
[providers.sim.models.s]
ttft_ms = {{ p50 = 0 }}
tokens_per_second = {{ p50 = 100000 }}
output_tokens = {{ p50 = 12 }}
[providers.sim.models.m]
ttft_ms = {{ p50 = 0 }}
tokens_per_second = {{ p50 = 100000 }}
output_tokens = {{ p50 = 12 }}
[providers.sim.models.f]
ttft_ms = {{ p50 = 0 }}
tokens_per_second = {{ p50 = 100000 }}
output_tokens = {{ p50 = 30 }}

[models.small]
deployments = [{{ provider = "sim", upstream_model = "s" }}]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}
quality_tier = 1
[models.medium]
deployments = [{{ provider = "sim", upstream_model = "m" }}]
price = {{ input_per_mtok = 1.0, output_per_mtok = 4.0 }}
quality_tier = 2
[models.frontier]
deployments = [{{ provider = "sim", upstream_model = "f" }}]
price = {{ input_per_mtok = 5.0, output_per_mtok = 15.0 }}
quality_tier = 3

[routes.auto]
candidates = [
  {{ model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" }},
  {{ model = "frontier" }},
]
router = "builtin:routellm-mixtral-gpt4.v1"
[[routes.auto.rules]]
name = "code-review"
prompt_regex = "(?i)review this code"
model = "medium"

{cache_and_key}
[[keys]]
id = "other"
tenant = "globex"
secret_sha256 = "{other}"
route_policy = "best"
"#,
        other = common::hex_sha256(OTHER_KEY),
        cache_and_key = cache_and_key(),
    )
}

// The built-in router (RouteLLM data: Mixtral vs GPT-4) scores the first at ~0.90 and the
// second at ~0.62 for "the small model answers as well"; the balanced bar is 0.86.
const SIMPLE: &str = "Translate 'good morning' into Spanish.";
const HARD: &str =
    "Let f(x) = x^3 - 3x + 1. Find all real roots exactly and prove there are exactly three.";

/// A multi-step proof the neighbour router sends to the strongest model.
const PROOF: &str = "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain precisely why this is open, then derive the Hardy-Littlewood estimate step by step.";

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// What one answer said about itself.
struct Answer {
    status: u16,
    body: Value,
    model: String,
    route: String,
    cache: String,
}

/// The `x-switchyard-cache` outcome of asking `text` of `model` with `key`.
async fn outcome(gw: &TestGateway, key: &str, model: &str, text: &str) -> String {
    ask(gw, key, chat(model, text), &[]).await.cache
}

/// Sends one chat request; returns the response headers of interest and the body.
async fn ask(gw: &TestGateway, key: &str, body: Value, extra: &[(&str, &str)]) -> Answer {
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let model = header(&r, "x-switchyard-model");
    let route = header(&r, "x-switchyard-route");
    let cache = header(&r, "x-switchyard-cache");
    let body: Value = r.json().await.unwrap();
    Answer {
        status,
        body,
        model,
        route,
        cache,
    }
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": user(text), "temperature": 0})
}

#[tokio::test]
async fn the_router_sends_simple_prompts_small_and_hard_ones_large() {
    let mut gw = start(&config()).await;
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.model.starts_with("small;"), "{} / {}", a.model, a.route);
    assert!(
        a.route.contains("policy=balanced; model=small"),
        "{}",
        a.route
    );
    assert_eq!(a.body["model"], "small");
    let a = ask(&gw, KEY, chat("auto", HARD), &[]).await;
    assert!(
        a.model.starts_with("frontier;"),
        "{} / {}",
        a.model,
        a.route
    );

    // The caller's policy changes the choice: `best` always takes the strongest candidate,
    // whether named in the model or the header; the key's own default applies otherwise.
    let a = ask(&gw, KEY, chat("auto:best", SIMPLE), &[]).await;
    assert!(
        a.model.starts_with("frontier;") && a.route.contains("policy=best"),
        "{}",
        a.route
    );
    let best = [("x-switchyard-route-policy", "best")];
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &best).await;
    assert!(a.model.starts_with("frontier;"), "{}", a.model);
    let a = ask(&gw, OTHER_KEY, chat("auto", SIMPLE), &[]).await;
    assert!(
        a.model.starts_with("frontier;") && a.route.contains("policy=best"),
        "{}",
        a.route
    );
    // A bar of 0 takes the cheapest candidate even for the hard prompt.
    let a = ask(&gw, KEY, chat("auto:0", HARD), &[]).await;
    assert!(a.model.starts_with("small;"), "{}", a.model);

    // Rules run before the classifier.
    let a = ask(
        &gw,
        KEY,
        chat("auto", "Please review this code: fn main() {}"),
        &[],
    )
    .await;
    assert!(
        a.model.starts_with("medium;") && a.route.contains("rule=code-review"),
        "{}",
        a.route
    );

    // Bad policies are the caller's error, named.
    let bad = [("x-switchyard-route-policy", "fastest")];
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &bad).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("x-switchyard-route-policy"), "{message}");
    let a = ask(&gw, KEY, chat("auto:fastest", SIMPLE), &[]).await;
    assert_eq!(
        (a.status, a.body["error"]["param"].as_str()),
        (400, Some("model")),
        "{}",
        a.body
    );

    gw.stop().await;
    let records = gw.records();
    let first = &records[0];
    let decision: Value = serde_json::from_str(first.route.as_deref().unwrap()).unwrap();
    assert_eq!(decision["model"], "small");
    assert_eq!(decision["policy"], "balanced");
    assert!(
        decision["scores"][0]["score"].as_f64().unwrap() > 0.5,
        "{decision}"
    );
    // Routed to the small model: the baseline is the frontier price for the same tokens.
    assert!(first.baseline_cost_nanos > first.cost_nanos, "{first:?}");
}

/// The neighbour router (the demo's): the prompt's static embedding against RouteLLM's
/// labelled prompts. Its decision and its reasons reach the header and the record; a route
/// whose model folder is missing does not start, naming the route and the folder.
#[tokio::test]
async fn the_neighbour_router_decides_from_similar_labelled_prompts() {
    let neighbours = config().replace(
        "router = \"builtin:routellm-mixtral-gpt4.v1\"",
        &format!(
            "router = \"builtin:routellm-neighbours.v1\"\nembedder = \"{}\"",
            common::static_embedder()
        ),
    );
    let mut gw = start(&neighbours).await;
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &[]).await;
    assert!(a.model.starts_with("small;"), "{} / {}", a.model, a.route);
    let a = ask(&gw, KEY, chat("auto", "Say hello"), &[]).await;
    assert!(a.model.starts_with("small;"), "{} / {}", a.model, a.route);
    let a = ask(&gw, KEY, chat("auto", PROOF), &[]).await;
    assert!(
        a.model.starts_with("frontier;"),
        "{} / {}",
        a.model,
        a.route
    );
    // A low enough bar takes the cheap model even for the proof.
    let a = ask(&gw, KEY, chat("auto:0.5", PROOF), &[]).await;
    assert!(a.model.starts_with("small;"), "{} / {}", a.model, a.route);
    gw.stop().await;
    let records = gw.records();
    let decision: Value = serde_json::from_str(records[0].route.as_deref().unwrap()).unwrap();
    let evidence = &decision["evidence"][0];
    assert_eq!(evidence["model"], "mistralai/Mixtral-8x7B-Instruct-v0.1");
    assert_eq!(evidence["prompt_chars"], SIMPLE.chars().count());
    assert!(
        evidence["length_term"].as_f64().unwrap() > 0.0,
        "{evidence}"
    );
    assert!(
        evidence["kinds"][0][0].as_str().unwrap().contains("(MMLU)"),
        "{evidence}"
    );

    let missing = neighbours.replace(
        &format!("embedder = \"{}\"", common::static_embedder()),
        "embedder = \"/nonexistent/static-model\"",
    );
    let err = common::start_error(&missing).await;
    assert!(err.contains("auto"), "{err}");
    assert!(err.contains("/nonexistent/static-model"), "{err}");
}

#[tokio::test]
async fn repeated_questions_are_served_from_the_cache_plain_and_streamed() {
    let mut gw = start(&config()).await;
    let q = chat("small", "How many moons does Jupiter have?");
    let first = ask(&gw, KEY, q.clone(), &[]).await;
    assert_eq!(first.cache, "miss");
    let second = ask(&gw, KEY, q.clone(), &[]).await;
    assert_eq!(second.cache, "hit-exact");
    assert_eq!(second.model, "small; deployment=cache");
    let content = |a: &Answer| {
        a.body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(content(&second), content(&first));
    assert_ne!(second.body["id"], first.body["id"]);

    // The same question streamed: replayed from the cache as chunks, with usage if asked.
    let mut streamed = q.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = gw.chat(streamed).send().await.unwrap();
    assert_eq!(header(&r, "x-switchyard-cache"), "hit-exact");
    let text = String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap();
    let (replayed, saw_usage) = common::sse_content(&text);
    assert_eq!(replayed, content(&first));
    assert!(saw_usage && text.ends_with("data: [DONE]\n\n"));

    // A streamed miss is stored once the stream ends, and then answers a plain request.
    let rivers = "Name three rivers in Africa.";
    let mut s = chat("small", rivers);
    s["stream"] = json!(true);
    let r = gw.chat(s).send().await.unwrap();
    assert_eq!(header(&r, "x-switchyard-cache"), "miss");
    let mut body = r.bytes_stream();
    while body.next().await.is_some() {}
    assert_eq!(outcome(&gw, KEY, "small", rivers).await, "hit-exact");

    // Caller control: bypass neither reads nor writes; refresh writes without reading.
    let with = |v: &'static str| [("x-switchyard-cache-control", v)];
    assert_eq!(
        ask(&gw, KEY, q.clone(), &with("bypass")).await.cache,
        "bypass"
    );
    assert_eq!(
        ask(&gw, KEY, q.clone(), &with("refresh")).await.cache,
        "miss"
    );
    let a = ask(&gw, KEY, q.clone(), &with("sometimes")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    // Temperature above zero (or unset) asks for variety: not cached by default.
    let unset = json!({"model": "small", "messages": user("How many moons does Jupiter have?")});
    assert_eq!(ask(&gw, KEY, unset, &[]).await.cache, "bypass");

    gw.stop().await;
    let records = gw.records();
    let hit = &records[1];
    assert_eq!(hit.cache.as_deref(), Some("hit-exact"));
    assert_eq!(hit.cost_nanos, 0);
    assert_eq!(
        hit.baseline_cost_nanos, records[0].cost_nanos,
        "a hit saves what the answer cost"
    );
}

#[tokio::test]
async fn paraphrases_hit_within_a_tenant_but_not_across_or_when_negated() {
    let mut gw = start(&config()).await;
    let first = ask(
        &gw,
        KEY,
        chat("auto:cheap", "How do I reset my password?"),
        &[],
    )
    .await;
    assert_eq!(first.cache, "miss");
    let again = ask(
        &gw,
        KEY,
        chat("auto:cheap", "How can I reset my password?"),
        &[],
    )
    .await;
    assert_eq!(again.cache, "hit-semantic");
    assert_eq!(
        again.body["choices"][0]["message"]["content"],
        first.body["choices"][0]["message"]["content"]
    );

    // Another tenant never sees acme's answers, even for the same words.
    let paraphrase = "How can I reset my password?";
    assert_eq!(
        outcome(&gw, OTHER_KEY, "auto:cheap", paraphrase).await,
        "miss"
    );
    // Another policy of the same route is another scope: `best` must not get a cheap answer.
    assert_eq!(outcome(&gw, KEY, "auto:best", paraphrase).await, "miss");

    // The opposite question is close in embedding space and must still miss.
    let enable = "How do I enable two-factor authentication?";
    let disable = "How do I disable two-factor authentication?";
    assert_eq!(outcome(&gw, KEY, "auto:cheap", enable).await, "miss");
    assert_eq!(outcome(&gw, KEY, "auto:cheap", disable).await, "miss");

    gw.stop().await;
    let records = gw.records();
    assert_eq!(records[1].cache.as_deref(), Some("hit-semantic"));
    assert!(records[1].cache_similarity.unwrap() >= 0.85);
    // It was close enough to be a candidate: the guard, not the threshold, refused it.
    let negated = records.last().unwrap();
    assert_eq!(negated.cache.as_deref(), Some("miss"));
    assert!(negated.cache_similarity.unwrap() >= 0.85, "{negated:?}");
}

#[tokio::test]
async fn feedback_recalibrates_the_bar_within_bounds_and_survives_a_restart() {
    let config = config().replace(
        "[[routes.auto.rules]]",
        "[routes.auto.recalibrate]\nmin_feedback = 2\nstep = 0.05\n\n[[routes.auto.rules]]",
    );
    let gw = start(&config).await;
    let bypass = [("x-switchyard-cache-control", "bypass")];
    let mut scored = Vec::new();
    for (prompt, score) in [(SIMPLE, 0.2), (SIMPLE, 0.3), (HARD, 1.0), (HARD, 0.9)] {
        let r = gw
            .chat(chat("auto", prompt))
            .header(bypass[0].0, bypass[0].1)
            .send()
            .await
            .unwrap();
        let id = header(&r, "x-switchyard-request-id");
        scored.push((id, score));
    }
    for (id, score) in &scored {
        let r = gw
            .http
            .post(gw.url("/v1/feedback"))
            .bearer_auth(KEY)
            .json(&json!({"request_id": id, "score": score}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The small model's answers kept 0.25 / 0.95 of the quality: the balanced bar goes up one
    // step at the next recalibration (start-up runs one).
    let gw = gw.restart(&config).await;
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &bypass).await;
    assert!(a.route.contains("bar=0.91"), "{}", a.route);
    // The stored step is kept by the next restart, and each start takes one more step, never
    // beyond the trained bar + max_shift (0.86 + 0.10).
    let mut gw = gw;
    for _ in 0..4 {
        gw = gw.restart(&config).await;
    }
    let a = ask(&gw, KEY, chat("auto", SIMPLE), &bypass).await;
    assert!(a.route.contains("bar=0.96"), "{}", a.route);
    // With the bar above its score (0.90), the simple prompt now goes to the large model.
    assert!(a.model.starts_with("frontier;"), "{}", a.model);
    let store = switchyard_store::SqliteStore::open_in(gw.dir.path()).unwrap();
    let history = store.calibrations("auto", 10).unwrap();
    assert_eq!(
        history.len(),
        2,
        "two steps, then held at the bound: {history:?}"
    );
    assert!(
        history[0].report.contains("raise the bar"),
        "{}",
        history[0].report
    );
}

#[tokio::test]
async fn without_the_model_files_only_a_config_that_needs_them_fails_and_says_how() {
    let missing = config().replace(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/minilm-static-256"
        ),
        "/nonexistent/minilm-static-256",
    );
    let err = common::start_error(&missing).await;
    assert!(err.contains("cache.embedder"), "{err}");
    assert!(err.contains("scripts/fetch-models.sh"), "{err}");
    assert!(err.contains("/nonexistent/minilm-static-256"), "{err}");

    // The same config with the semantic tier off needs no model files.
    let gw = start(&missing.replace("threshold = 0.85", "semantic = false")).await;
    let q = chat("small", "How many moons does Jupiter have?");
    assert_eq!(ask(&gw, KEY, q.clone(), &[]).await.cache, "miss");
    assert_eq!(ask(&gw, KEY, q, &[]).await.cache, "hit-exact");
}

/// A gateway with one model `m` on a fake OpenAI upstream and the semantic cache on.
async fn cached_upstream(up: &switchyard_testkit::FakeUpstream) -> TestGateway {
    start(&format!(
        "{}\n{}",
        common::openai_model(up),
        cache_and_key()
    ))
    .await
}

/// A semantic hit never answers with another kind of answer than a miss would: plain text
/// is not served where a tool call is forced, other tools are offered or a JSON schema is
/// asked for, and a tool call is not served to a request without tools; a true paraphrase of
/// the same shape still hits.
#[tokio::test]
async fn a_semantic_hit_keeps_the_shape_of_the_answer() {
    use switchyard_testkit::Reply;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let gw = cached_upstream(&up).await;
    let body_of = |text: &str, shape: Value| {
        let mut body = json!({"model": "m", "messages": user(text), "temperature": 0});
        for (k, v) in shape.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let tool = |name: &str| json!([{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]);
    let forced = json!({"tools": tool("reset_password"), "tool_choice": "required"});
    let other_tools = json!({"tools": tool("lookup_account")});
    let schema = json!({"response_format": {"type": "json_schema", "json_schema": {
        "name": "steps", "schema": {"type": "object"}}}});

    up.push(Reply::text("Click 'Forgot password' on the sign-in page."));
    let first = ask(
        &gw,
        KEY,
        body_of("How do I reset my password?", json!({})),
        &[],
    )
    .await;
    assert_eq!(first.cache, "miss");
    let paraphrase = "How can I reset my password?";

    up.push(Reply::tool_call("reset_password", json!({})));
    let a = ask(&gw, KEY, body_of(paraphrase, forced.clone()), &[]).await;
    assert_eq!(
        a.cache, "miss",
        "plain text served for a forced tool call: {}",
        a.body
    );
    assert_eq!(a.body["choices"][0]["finish_reason"], "tool_calls");

    up.push(Reply::text("I can look your account up."));
    let a = ask(&gw, KEY, body_of(paraphrase, other_tools), &[]).await;
    assert_eq!(a.cache, "miss", "an answer for other tools: {}", a.body);

    up.push(Reply::text("{\"steps\": [\"Click 'Forgot password'\"]}"));
    let a = ask(&gw, KEY, body_of(paraphrase, schema), &[]).await;
    assert_eq!(
        a.cache, "miss",
        "plain text served for a JSON schema: {}",
        a.body
    );

    // The same shape: the paraphrase hits, both ways.
    let a = ask(&gw, KEY, body_of(paraphrase, json!({})), &[]).await;
    assert_eq!(a.cache, "hit-semantic", "{}", a.body);
    assert_eq!(
        a.body["choices"][0]["message"]["content"],
        first.body["choices"][0]["message"]["content"]
    );
    let a = ask(
        &gw,
        KEY,
        body_of("How could I reset my password?", forced),
        &[],
    )
    .await;
    assert_eq!(a.cache, "hit-semantic", "{}", a.body);
    assert_eq!(
        a.body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "reset_password"
    );

    // And the other way: a stored tool call is not served to a request without tools.
    up.push(Reply::tool_call("get_weather", json!({"city": "Paris"})));
    let forecast = json!({"tools": tool("get_weather"), "tool_choice": "required"});
    let a = ask(
        &gw,
        KEY,
        body_of("What's the weather in Paris today?", forecast),
        &[],
    )
    .await;
    assert_eq!(a.cache, "miss");
    up.push(Reply::text("Sunny, 21C."));
    let a = ask(
        &gw,
        KEY,
        body_of("What is the weather in Paris today?", json!({})),
        &[],
    )
    .await;
    assert_eq!(
        a.cache, "miss",
        "a tool call served to a request with no tools: {}",
        a.body
    );
    assert_eq!(a.body["choices"][0]["message"]["content"], "Sunny, 21C.");
    assert_eq!(
        up.requests().len(),
        6,
        "every miss went upstream, every hit did not"
    );
}

/// MiniLM's folder, for configs with a `pair_check` (`scripts/fetch-models.sh`).
fn minilm() -> &'static str {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/all-MiniLM-L6-v2");
    assert!(
        std::path::Path::new(dir)
            .join("model.safetensors")
            .is_file(),
        "MiniLM is missing at {dir}: run scripts/fetch-models.sh"
    );
    dir
}

/// A gateway with one model `m` on a fake upstream, the semantic cache at `threshold` and the
/// pair check on.
async fn pair_checked(up: &switchyard_testkit::FakeUpstream, threshold: f32) -> TestGateway {
    let cache = cache_and_key().replace(
        "threshold = 0.85",
        &format!(
            "threshold = {threshold}\npair_check = \"builtin:cache-pair-check.v1\"\nminilm = \"{}\"",
            minilm()
        ),
    );
    start(&format!("{}\n{cache}", common::openai_model(up))).await
}

/// With the pair check, a paraphrase is served; the same question with its subjects swapped,
/// or its conversion reversed, is not, though the static model puts them at ~1.0.
#[tokio::test]
async fn the_pair_check_serves_paraphrases_and_refuses_swapped_roles() {
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = pair_checked(&up, 0.85).await;
    let ask_m = |text: &'static str| {
        let gw = &gw;
        async move { ask(gw, KEY, chat("m", text), &[]).await.cache }
    };
    assert_eq!(ask_m("How do I reset my password?").await, "miss");
    assert_eq!(ask_m("How can I reset my password?").await, "hit-semantic");
    assert_eq!(ask_m("Is Python faster than Java?").await, "miss");
    assert_eq!(ask_m("Is Java faster than Python?").await, "miss");
    assert_eq!(ask_m("How do I convert dollars to euros?").await, "miss");
    assert_eq!(ask_m("How do I convert euros to dollars?").await, "miss");
    gw.stop().await;
    let records = gw.records();
    // The swapped questions were candidates (the static model cannot tell them apart): the
    // pair check, not the threshold, refused them.
    for r in [&records[3], &records[5]] {
        assert_eq!(r.cache.as_deref(), Some("miss"));
        assert!(r.cache_similarity.unwrap() >= 0.85, "{r:?}");
    }
}

/// A thumbs down on a semantic hit removes the entry it came from and raises its scope's
/// threshold a notch: a question as close as the disliked one is then refused.
#[tokio::test]
async fn a_thumbs_down_on_a_semantic_hit_removes_it_and_tightens_the_scope() {
    let (cached, paraphrase) = (
        "How do I reset my password?",
        "How can I reset my password?",
    );
    // The threshold sits just under the pair's similarity, so one notch (0.02) lifts it above.
    let model = switchyard_embed::StaticEmbedder::load(common::static_embedder()).unwrap();
    let v: Vec<Vec<f32>> = [cached, paraphrase]
        .iter()
        .map(|t| {
            let mut v = model.embed(t).unwrap();
            switchyard_cache::index::normalise(&mut v);
            v
        })
        .collect();
    let similarity = switchyard_cache::index::dot(&v[0], &v[1]);
    let threshold = ((similarity - 0.01) * 1000.0).floor() / 1000.0;
    let up = FakeUpstream::start(Flavor::OpenAi).await.unwrap();
    let mut gw = pair_checked(&up, threshold).await;

    assert_eq!(outcome(&gw, KEY, "m", cached).await, "miss");
    let r = gw.chat(chat("m", paraphrase)).send().await.unwrap();
    assert_eq!(header(&r, "x-switchyard-cache"), "hit-semantic");
    let hit = common::request_id(&r);
    gw.feedback(json!({"request_id": hit, "thumbs": "down"}))
        .await;

    // The entry is gone: the same question misses (and is stored again).
    assert_eq!(outcome(&gw, KEY, "m", cached).await, "miss");
    // As close as before, but the scope now needs one notch more.
    assert_eq!(outcome(&gw, KEY, "m", paraphrase).await, "miss");
    gw.stop().await;
    let last = gw.records().pop().unwrap();
    assert!(
        last.cache_similarity.unwrap() >= f64::from(threshold),
        "{last:?}"
    );
}
