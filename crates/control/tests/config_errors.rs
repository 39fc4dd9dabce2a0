//! Config files in, diagnostics out: each names the file, the line and the field.

#![expect(clippy::panic, reason = "test code")]

use switchyard_control::{parse, ConfigError, ModelAccess, ProviderSpec};

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"

[providers.sim]
kind = "sim"
seed = 7
[providers.sim.models.sim-small]
ttft_ms = { p50 = 20, p99 = 80 }
output_tokens = { p50 = 30, p99 = 120, max = 512 }
[[providers.sim.models.sim-small.rules]]
pattern = "(?i)capital of france"
reply = "Paris."

[providers.upstream]
kind = "openai"
base_url = "http://127.0.0.1:9/v1/"
api_key_env = "UPSTREAM_KEY"
breaker = { open_secs = 1 }

[models.small]
deployments = [{ provider = "sim", upstream_model = "sim-small" }]
price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }
fallbacks = ["big"]

[models.big]
deployments = [{ provider = "upstream", upstream_model = "gpt-x", weight = 2 }]
resilience = { max_attempts = 5 }

[[keys]]
id = "team-a"
secret_sha256 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
models = ["small"]
budget_usd_daily = 2.5
"#;

#[test]
fn a_good_config_validates() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.models["small"].price.input_nanos_per_mtok, 150_000_000);
    assert_eq!(cfg.models["small"].fallbacks, vec!["big"]);
    assert_eq!(cfg.models["big"].resilience.max_attempts, 5);
    assert_eq!(cfg.models["small"].resilience.max_attempts, 3);
    assert_eq!(cfg.breakers["upstream"].open_for.as_secs(), 1);
    assert_eq!(cfg.breakers["sim"].open_for.as_secs(), 15, "the default");
    assert_eq!(cfg.keys[0].tenant, "team-a");
    assert_eq!(cfg.keys[0].budget_daily_nanos, Some(2_500_000_000));
    assert_eq!(cfg.keys[0].models, ModelAccess::Only(vec!["small".into()]));
    match &cfg.providers["upstream"] {
        ProviderSpec::OpenAi(o) => assert_eq!(o.base_url, "http://127.0.0.1:9/v1"),
        other => panic!("{other:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, "bad.toml") {
        Err(ConfigError::Invalid(d)) => d.iter().map(ToString::to_string).collect(),
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

#[test]
fn every_semantic_error_is_reported_with_line_and_path() {
    let bad = GOOD
        .replace(
            "upstream_model = \"sim-small\"",
            "upstream_model = \"sim-huge\"",
        )
        .replace("fallbacks = [\"big\"]", "fallbacks = [\"nope\"]")
        .replace("models = [\"small\"]", "models = [\"ghost\"]")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"localhost\"");
    let errs = errors(&bad);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(errs.contains(&"bad.toml:3:10: `server.listen`: `localhost` is not an address with a port, e.g. \"127.0.0.1:8080\"".to_owned()), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("bad.toml:22:") && e.contains("`models.small.deployments[0].upstream_model`: sim provider `sim` has no model `sim-huge`")), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("bad.toml:24:") && e.contains("`models.small.fallbacks[0]`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("bad.toml:33:") && e.contains("`keys[0].models[0]`")),
        "{errs:#?}"
    );
}

#[test]
fn unknown_field_names_the_line() {
    let bad = GOOD.replace("seed = 7", "seed = 7\nsede = 8");
    let errs = errors(&bad);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(
            "bad.toml:8:1: `providers.sim.sede`: unknown field `sede`; did you mean `seed`?"
        ),
        "{errs:#?}"
    );
}

#[test]
fn wrong_type_names_the_line() {
    let bad = GOOD.replace("budget_usd_daily = 2.5", "budget_usd_daily = \"lots\"");
    let errs = errors(&bad);
    assert!(errs[0].starts_with("bad.toml:34:"), "{errs:#?}");
}

#[test]
fn bad_secrets_and_rates() {
    let bad = GOOD
        .replace("secret_sha256 = \"6b86", "secret_sha256 = \"zz86")
        .replace("seed = 7", "seed = 7\n")
        .replace(
            "[[providers.sim.models.sim-small.rules]]",
            "error_rate = 1.5\n[[providers.sim.models.sim-small.rules]]",
        );
    let errs = errors(&bad);
    assert!(
        errs.iter()
            .any(|e| e.contains("`keys[0].secret_sha256`: must be 64 hex digits")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                .contains("`providers.sim.models.sim-small.error_rate`: must be between 0 and 1")),
        "{errs:#?}"
    );
}

#[test]
fn output_limits_parse_and_zero_is_refused() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.limits.default_max_output_tokens, 4096, "the default");
    assert_eq!(cfg.models["small"].max_output_tokens, None);
    let set = GOOD.replace(
        "fallbacks = [\"big\"]",
        "fallbacks = [\"big\"]\nmax_output_tokens = 16384",
    ) + "\n[limits]\ndefault_max_output_tokens = 2048\n";
    let cfg = parse(&set, "good.toml").unwrap();
    assert_eq!(cfg.models["small"].max_output_tokens, Some(16_384));
    assert_eq!(cfg.limits.default_max_output_tokens, 2_048);
    let errs = errors(&set.replace("16384", "0").replace("= 2048", "= 0"));
    assert!(
        has_in(
            &errs,
            "`models.small.max_output_tokens`: must be greater than 0"
        ),
        "{errs:#?}"
    );
    assert!(
        has_in(
            &errs,
            "`limits.default_max_output_tokens`: must be greater than 0"
        ),
        "{errs:#?}"
    );
}

#[test]
fn syntax_error_has_a_line() {
    let errs = errors("[server\nlisten = 1");
    assert!(errs[0].starts_with("bad.toml:1:"), "{errs:#?}");
}

#[test]
fn breakers_are_set_per_provider_not_per_model() {
    let bad = GOOD.replace(
        "resilience = { max_attempts = 5 }",
        "resilience = { max_attempts = 5, breaker = { open_secs = 3 } }",
    );
    let errs = errors(&bad);
    assert!(
        errs.iter()
            .any(|e| e.contains("`models.big.resilience.breaker`: breakers belong to deployments")),
        "{errs:#?}"
    );
}

const ROUTED: &str = r#"
[routes.auto]
candidates = [
  { model = "small", head = "mistralai/Mixtral-8x7B-Instruct-v0.1" },
  { model = "big" },
]
router = "builtin:routellm-mixtral-gpt4.v1"
default_policy = "cheap"
[[routes.auto.rules]]
name = "code"
prompt_regex = "(?i)\\bcode\\b"
model = "big"
[routes.auto.cache]
threshold = 0.95

[cache]
embedder = "models/minilm-static-256"
ttl_secs = 60
"#;

#[test]
fn routes_and_cache_validate() {
    let cfg = parse(&format!("{GOOD}{ROUTED}"), "good.toml").unwrap();
    let route = &cfg.routes["auto"];
    assert_eq!(route.candidates.len(), 2);
    assert_eq!(route.default_policy, switchyard_control::Policy::Cheap);
    assert_eq!(route.rules.len(), 1);
    let artifact = &route.router.as_ref().unwrap().artifact;
    assert_eq!(
        route.bars, artifact.bars,
        "the artifact's bars unless overridden"
    );
    assert!(
        (route.cache.threshold - 0.95).abs() < 1e-6,
        "the route's own"
    );
    assert_eq!(route.cache.ttl.as_secs(), 60, "inherited from [cache]");
    let cache = cfg.cache.unwrap();
    assert!(cache.defaults.semantic && cache.defaults.enabled);
}

#[test]
fn route_and_cache_mistakes_are_located() {
    let bad = format!("{GOOD}{ROUTED}")
        .replace("{ model = \"big\" },", "{ model = \"giant\" },")
        .replace(
            "default_policy = \"cheap\"",
            "default_policy = \"cheapest\"",
        )
        .replace(
            "prompt_regex = \"(?i)\\\\bcode\\\\b\"",
            "prompt_regex = \"(unclosed\"",
        )
        .replace("threshold = 0.95", "threshold = 1.5")
        .replace("ttl_secs = 60", "ttl_secs = 0")
        .replace(
            "default_policy = \"cheapest\"",
            "default_policy = \"cheapest\"\nembedder = \" \"",
        );
    let errs = errors(&bad);
    let has = |prefix: &str| errs.iter().any(|e| e.contains(prefix));
    assert!(
        has("`routes.auto.candidates[1].model`: no model `giant`"),
        "{errs:#?}"
    );
    assert!(
        has("`routes.auto.default_policy`: unknown route policy \"cheapest\""),
        "{errs:#?}"
    );
    assert!(
        has("`routes.auto.rules[0].prompt_regex`: not a valid regex"),
        "{errs:#?}"
    );
    assert!(has("`routes.auto.cache.threshold`"), "{errs:#?}");
    assert!(has("`cache.ttl_secs`: must be greater than 0"), "{errs:#?}");
    assert!(
        has("`routes.auto.embedder`: must name the folder of the static embedding model"),
        "{errs:#?}"
    );
    // Every one has a line.
    assert!(
        errs.iter().all(|e| e.starts_with("bad.toml:")
            && e.split(':')
                .nth(1)
                .is_some_and(|l| l.parse::<u32>().is_ok())),
        "{errs:#?}"
    );

    // A candidate without a head, other than the last, cannot be scored.
    let errs = errors(&format!("{GOOD}{ROUTED}").replace(
        "{ model = \"small\", head = \"mistralai/Mixtral-8x7B-Instruct-v0.1\" },",
        "{ model = \"small\", head = \"gpt-99\" },",
    ));
    assert!(
        has_in(&errs, "`routes.auto.candidates[0].head`"),
        "{errs:#?}"
    );
    assert!(
        has_in(
            &errs,
            "the artifact's heads: mistralai/Mixtral-8x7B-Instruct-v0.1"
        ),
        "{errs:#?}"
    );
    let errs = errors(&format!("{GOOD}{ROUTED}").replace("builtin:routellm", "builtin:nope"));
    assert!(
        has_in(
            &errs,
            "`routes.auto.router`: no built-in router `nope-mixtral-gpt4.v1`"
        ),
        "{errs:#?}"
    );
    // A route may not shadow a model, and a key's route policy must parse.
    let errs = errors(
        &format!("{GOOD}{ROUTED}")
            .replace("[routes.auto]", "[routes.small]")
            .replace("routes.auto.", "routes.small."),
    );
    assert!(has_in(&errs, "a model named `small` exists"), "{errs:#?}");
    let errs = errors(
        &format!("{GOOD}{ROUTED}").replace("budget_usd_daily = 2.5", "route_policy = \"fast\""),
    );
    assert!(has_in(&errs, "`keys[0].route_policy`"), "{errs:#?}");
}

fn has_in(errs: &[String], needle: &str) -> bool {
    errs.iter().any(|e| e.contains(needle))
}

#[test]
fn guard_mistakes_are_located() {
    let guards = "\n[guards.pii]\naction = \"scramble\"\nkinds = [\"EMAIL\", \"SHOE_SIZE\"]\nactions = { SECRET = \"block\" }\n\n[guards.injection]\naction = \"warn\"\nthreshold = 2.0\nartifact = \"builtin:nope\"\n";
    let errs = errors(&format!("{GOOD}{guards}"));
    assert!(
        has_in(&errs, "`guards.pii.action`: `scramble` is not one of"),
        "{errs:#?}"
    );
    assert!(
        has_in(
            &errs,
            "`guards.pii.kinds[1]`: unknown entity kind `SHOE_SIZE`"
        ),
        "{errs:#?}"
    );
    assert!(has_in(&errs, "`guards.injection.action`"), "{errs:#?}");
    assert!(has_in(&errs, "`guards.injection.threshold`"), "{errs:#?}");
    assert!(
        has_in(
            &errs,
            "`guards.injection.artifact`: no built-in detector `nope`"
        ),
        "{errs:#?}"
    );
    let ok = parse(
        &format!("{GOOD}\n[guards.pii]\n[guards.injection]\n"),
        "ok.toml",
    )
    .unwrap();
    assert_eq!(ok.guards.pii.unwrap().kinds.len(), 7);
    assert!(ok.guards.injection.unwrap().block);
}

#[test]
fn topic_grounding_and_bias_mistakes_are_located() {
    let guards = r#"
[guards.topics]
action = "ignore"
allow_threshold = 3.0

[[guards.topics.allowed]]
name = "banking"
examples = ["What is my balance?"]

[[guards.topics.denied]]
name = "banking"

[guards.grounding]
action = "retry"
threshold = 1.5
context = ["field", "web"]

[guards.bias]
threshold = -1.0
"#;
    let errs = errors(&format!("{GOOD}{guards}"));
    for needle in [
        "`guards.topics.action`: `ignore` is not one of",
        "`guards.topics.allow_threshold`",
        "`guards.topics.denied[0].name`: topic `banking` is declared twice",
        "`guards.topics.denied[0]`: give the topic examples",
        "`guards.grounding.threshold`",
        "`guards.grounding.context[1]`: `web` is not one of",
        "`guards.bias.threshold`",
    ] {
        assert!(has_in(&errs, needle), "{needle}: {errs:#?}");
    }
    // Line numbers point into the file.
    assert!(has_in(&errs, "bad.toml:"), "{errs:#?}");

    let ok = parse(
        &format!("{GOOD}\n[guards.grounding]\n[guards.bias]\n[guards.topics]\n[[guards.topics.denied]]\nname = \"politics\"\nkeywords = [\"election\"]\n"),
        "ok.toml",
    )
    .unwrap();
    let g = ok.guards.grounding.unwrap();
    assert_eq!(g.action, switchyard_control::OutputAction::Flag);
    assert!(g.context.field && g.context.tools && !g.context.system);
    // The artifact's measured threshold unless one is configured.
    assert_eq!(g.threshold, None);
    assert_eq!(
        ok.guards.bias.unwrap().action,
        switchyard_control::OutputAction::Flag
    );
    let t = ok.guards.topics.unwrap();
    assert!(t.refuse);
    assert_eq!(t.topics.len(), 1);
}

#[test]
fn slo_mistakes_are_located() {
    let slos = r#"
[[slos]]
name = "fast"
objective = "latency"
target = 0.95

[[slos]]
name = "fast"
objective = "uptime"
target = 1.5
model = "nope"
[slos.on_page]
shed = "bulk"
route_policy = { nowhere = "cheap" }
"#;
    let errs = errors(&format!("{GOOD}{slos}"));
    for needle in [
        "`slos[1].on_page.shed`: unknown priority class \"bulk\"",
        "`slos[1].on_page.route_policy.nowhere`: no route `nowhere`",
        "`slos[0].threshold_ms`: a `latency` SLO needs threshold_ms",
        "`slos[1].objective`: `uptime` is not one of",
        "`slos[1].target`",
        "`slos[1].name`: SLO `fast` is declared twice",
        "`slos[1].model`: no model `nope`",
    ] {
        assert!(has_in(&errs, needle), "{needle}: {errs:#?}");
    }
    let ok = parse(
        &format!("{GOOD}\n[[slos]]\nname = \"chat-latency\"\nobjective = \"latency\"\nthreshold_ms = 2000\ntarget = 0.95\n"),
        "ok.toml",
    )
    .unwrap();
    assert_eq!(ok.slos.len(), 1);
    assert_eq!(ok.slos[0].window_secs, 30 * 86_400);
    assert!(ok.slo_actions.is_empty());
    let acting = parse(
        &format!("{GOOD}\n[[slos]]\nname = \"up\"\nobjective = \"availability\"\ntarget = 0.99\n[slos.on_page]\nshed = \"Standard\"\n"),
        "ok.toml",
    )
    .unwrap();
    assert_eq!(
        acting.slo_actions["up"].shed,
        Some(switchyard_admission::Class::Standard)
    );
}

/// The 1-based line of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in the text"))
        + 1
}

/// A file with mistakes of every kind in many sections: one run reports all of them, each
/// with its line, column and field path, ordered by line.
#[test]
fn every_mistake_of_a_file_is_reported_in_one_run() {
    let bad = r#"
[server]
listn = "127.0.0.1:0"

[telemetry]
log_format = "xml"
batch_size = -1

[providers.sim]
kind = "sim"
[providers.sim.models.sim-small]
error_rate = "high"

[providers.upstream]
kind = "opneai"
base_url = "http://127.0.0.1:9/v1/"

[models.small]
deployments = [{ provider = "sim", upstream_model = "sim-small" }]
fallbacks = ["nope"]

[models.big]
deployments = [{ upstream_model = "gpt-x" }]
quality_tier = 300

[[keys]]
id = "team-a"
secret_sha256 = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
rpm = -5
budget_usd_daily = "lots"

[cache]
ttl_secs = 0
"#;
    let diags = match parse(bad, "bad.toml") {
        Err(ConfigError::Invalid(d)) => d,
        other => panic!("expected diagnostics, got {other:?}"),
    };
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let expected = [
        (
            "listn =",
            "server.listn",
            "unknown field `listn`; did you mean `listen`?",
        ),
        ("log_format", "telemetry.log_format", "`xml` is not one of"),
        (
            "batch_size",
            "telemetry.batch_size",
            "must be a whole number from 0 to",
        ),
        (
            "error_rate",
            "providers.sim.models.sim-small.error_rate",
            "must be a number, not a string (\"high\")",
        ),
        (
            "opneai",
            "providers.upstream.kind",
            "`opneai` is not one of \"openai\", \"anthropic\", \"bedrock\", \"sim\"",
        ),
        ("fallbacks", "models.small.fallbacks[0]", "no model `nope`"),
        (
            "gpt-x",
            "models.big.deployments[0].provider",
            "missing field `provider`",
        ),
        (
            "quality_tier",
            "models.big.quality_tier",
            "must be a whole number from 0 to 255, not 300",
        ),
        (
            "rpm",
            "keys[0].rpm",
            "must be a whole number from 0 to 4294967295, not -5",
        ),
        (
            "budget_usd_daily",
            "keys[0].budget_usd_daily",
            "must be a number, not a string (\"lots\")",
        ),
        ("ttl_secs", "cache.ttl_secs", "must be greater than 0"),
    ];
    assert_eq!(diags.len(), expected.len(), "{shown:#?}");
    for ((needle, path, message), d) in expected.iter().zip(&diags) {
        assert_eq!(d.line, Some(line_of(bad, needle)), "{needle}: {shown:#?}");
        assert_eq!(&d.path, path, "{shown:#?}");
        assert!(d.message.contains(message), "{message}: {shown:#?}");
        assert!(d.column.is_some(), "{d}");
    }
    // file:line:column: `path`: message
    let rpm = line_of(bad, "rpm");
    assert!(
        shown.contains(&format!(
            "bad.toml:{rpm}:7: `keys[0].rpm`: must be a whole number from 0 to 4294967295, not -5"
        )),
        "{shown:#?}"
    );
}

/// A value replaced because of a shape mistake is not reported again by validation.
#[test]
fn a_shape_mistake_is_reported_once() {
    let errs = errors(&GOOD.replace("models = [\"small\"]", "models = \"small\""));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("`keys[0].models`: must be an array, not a string (\"small\")"),
        "{errs:#?}"
    );
    // A provider of an unknown kind stands in whole: its fields are not judged, and the
    // models using it do not say it is missing.
    let errs = errors(&GOOD.replace("kind = \"openai\"", "kind = \"openia\""));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("`providers.upstream.kind`"), "{errs:#?}");
}

#[test]
fn several_syntax_errors_are_reported_with_places() {
    let errs = errors("[server]\nlisten = \"127.0.0.1:0\n\n[storage]\ndata_dir = = 3\n");
    assert!(errs.len() >= 2, "{errs:#?}");
    assert!(errs[0].starts_with("bad.toml:2:"), "{errs:#?}");
    assert!(
        errs.iter().any(|e| e.starts_with("bad.toml:5:")),
        "{errs:#?}"
    );
}

#[test]
fn request_content_is_off_by_default_and_its_settings_are_checked() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.telemetry.content, None, "privacy by default");
    assert_eq!(cfg.telemetry.content_retention.as_secs(), 7 * 86_400);
    let on = GOOD.replace(
        "[server]",
        "[telemetry]\ncontent = \"masked\"\ncontent_retention_days = 30\ncontent_max_bytes = 4096\n\n[server]",
    );
    let cfg = parse(&on, "good.toml").unwrap();
    assert_eq!(
        cfg.telemetry.content,
        Some(switchyard_control::ContentSpec { max_bytes: 4096 })
    );
    assert_eq!(cfg.telemetry.content_retention.as_secs(), 30 * 86_400);

    let bad = GOOD.replace(
        "[server]",
        "[telemetry]\ncontent = \"clear\"\ncontent_retention_days = 0\ncontent_max_bytes = 10\n\n[server]",
    );
    let errs = errors(&bad);
    assert_eq!(
        errs,
        [
            "bad.toml:3:11: `telemetry.content`: `clear` is not one of \"none\", \"masked\"",
            "bad.toml:4:26: `telemetry.content_retention_days`: must be between 1 and 3650",
            "bad.toml:5:21: `telemetry.content_max_bytes`: must be between 256 and 1048576",
        ],
        "{errs:#?}"
    );
}

#[test]
fn a_fleet_names_its_postgresql_and_redis_and_their_passwords_stay_out_of_errors() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.storage.postgres, None, "SQLite by default");
    assert_eq!(cfg.redis, None, "in-process counters by default");

    let fleet = GOOD.replace(
        "[server]",
        "[storage]\nurl = \"postgres://app:hunter2@db:5432/switchyard\"\n\n\
         [redis]\nurl = \"redis://:hunter2@cache:6379\"\non_failure = \"refuse\"\n\n[server]",
    );
    let cfg = parse(&fleet, "good.toml").unwrap();
    let postgres = cfg.storage.postgres.as_ref().unwrap();
    assert_eq!(
        postgres.expose(),
        "postgres://app:hunter2@db:5432/switchyard"
    );
    let redis = cfg.redis.as_ref().unwrap();
    assert_eq!(redis.on_failure, switchyard_control::RedisFailure::Refuse);
    assert!(
        !format!("{cfg:?}").contains("hunter2"),
        "Debug of the config shows no password"
    );

    let bad = GOOD.replace(
        "[server]",
        "[storage]\nurl = \"mysql://app:hunter2@db/x\"\n\n\
         [redis]\nurl = \"\"\non_failure = \"open\"\n\n[server]",
    );
    let errs = errors(&bad);
    assert_eq!(
        errs,
        [
            "bad.toml:3:7: `storage.url`: has the scheme `mysql`; expected postgres:// or postgresql://…",
            "bad.toml:6:7: `redis.url`: is not a URL (relative URL without a base); expected redis://…",
            "bad.toml:7:14: `redis.on_failure`: `open` is not one of `per_replica`, `refuse`",
        ],
        "{errs:#?}"
    );
}

#[test]
fn the_batch_section_has_defaults_and_bounds() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.batch.max_file_bytes, 100 << 20);
    assert_eq!(cfg.batch.max_lines, 50_000);
    assert_eq!(cfg.batch.concurrency, 8);
    assert_eq!(cfg.batch.pay_ppm, 500_000, "OpenAI's half price");
    assert_eq!(cfg.batch.discounted(1_000), 500);
    let free = parse(
        &format!("{GOOD}\n[batch]\nprice_discount = 1.0\nconcurrency = 0\n"),
        "good.toml",
    )
    .unwrap();
    assert_eq!((free.batch.pay_ppm, free.batch.concurrency), (0, 0));
    let errs = errors(&format!(
        "{GOOD}\n[batch]\nmax_file_mb = 0\nprice_discount = 1.5\nlease_secs = 0\nmax_attempts = 0\n"
    ));
    for field in [
        "batch.max_file_mb",
        "batch.price_discount",
        "batch.lease_secs",
        "batch.max_attempts",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(&format!("`{field}`"))),
            "{field}: {errs:#?}"
        );
    }
}

#[test]
fn engines_are_read_with_their_defaults_and_checked() {
    let good = GOOD
        .replace(
            "breaker = { open_secs = 1 }",
            "breaker = { open_secs = 1 }\nengine = \"vllm\"\npriority_scheduling = true",
        )
        .replace(
            "reply = \"Paris.\"",
            "reply = \"Paris.\"\n[providers.sim.models.sim-small.engine]\nslots = 4\nprefill_ms_per_1k_tokens = 40\ndecode_ms = 12\ndecode_ms_per_sequence = 2",
        );
    let cfg = parse(&good, "good.toml").unwrap();
    let ProviderSpec::OpenAi(o) = &cfg.providers["upstream"] else {
        panic!("openai expected");
    };
    let engine = o.engine.as_ref().unwrap();
    assert_eq!(engine.kind, switchyard_control::EngineKind::Vllm);
    assert_eq!(engine.metrics_url, "http://127.0.0.1:9/metrics");
    assert_eq!(engine.poll.as_millis(), 250);
    assert!(engine.priority_scheduling);
    let ProviderSpec::Sim(s) = &cfg.providers["sim"] else {
        panic!("sim expected");
    };
    let params = s.models["sim-small"].engine.unwrap();
    assert_eq!(params.slots, 4);
    assert_eq!(params.kv_tokens, 65_536);
    assert_eq!(params.prefill(1000).as_millis(), 40);
    assert_eq!(params.step(3).as_millis(), 16);

    let bad = GOOD
        .replace(
            "breaker = { open_secs = 1 }",
            "breaker = { open_secs = 1 }\nengine = \"tgi\"\nmetrics_poll_ms = 5\npriority_scheduling = true",
        )
        .replace(
            "[models.small]",
            "[providers.plain]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmetrics_url = \"http://127.0.0.1:9/metrics\"\n[providers.typo]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nengine = \"vlm\"\n[models.small]",
        )
        .replace(
            "reply = \"Paris.\"",
            "reply = \"Paris.\"\n[providers.sim.models.sim-small.engine]\nslots = 0\ndecode_ms = -1",
        );
    let errs = errors(&bad);
    let line = |field: &str| 1 + bad.lines().position(|l| l.starts_with(field)).unwrap();
    for (line, text) in [
        (line("priority_scheduling"), "`providers.upstream.priority_scheduling`: only vLLM takes a request priority"),
        (line("metrics_poll_ms"), "`providers.upstream.metrics_poll_ms`: must be between 50 and 60000"),
        (line("metrics_url"), "`providers.plain.metrics_url`: only read with `engine`"),
        (line("engine = \"vlm\""), "`providers.typo.engine`: `vlm` is not one of \"vllm\", \"llamacpp\", \"tgi\", \"sglang\""),
        (line("slots = 0"), "`providers.sim.models.sim-small.engine.slots`: must be between 1 and 4096"),
        (line("decode_ms = -1"), "`providers.sim.models.sim-small.engine.decode_ms`: must be a number of milliseconds >= 0"),
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("bad.toml:{line}:")) && e.contains(text)),
            "{line} {text}: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn capacity_priorities_and_admission_validate_and_their_mistakes_name_line_and_field() {
    let good = GOOD
        .replace(
            "deployments = [{ provider = \"sim\", upstream_model = \"sim-small\" }]",
            "deployments = [{ provider = \"sim\", upstream_model = \"sim-small\", capacity = { max_concurrent = 4, max_tokens_in_flight = 64000 } }]\non_saturation = \"fallback\"",
        )
        .replace(
            "budget_usd_daily = 2.5",
            "budget_usd_daily = 2.5\npriority = \"batch\"\nmax_priority = \"standard\"",
        )
        + "\n[admission]\ntarget_utilization = 0.7\n[admission.classes.batch]\nmax_wait_ms = 5000\nmax_queue = 3\n";
    let cfg = parse(&good, "good.toml").unwrap();
    let small = &cfg.models["small"];
    assert_eq!(
        small.deployments[0].capacity,
        Some(switchyard_control::Capacity {
            max_concurrent: Some(4),
            max_tokens_in_flight: Some(64_000)
        })
    );
    assert_eq!(
        small.on_saturation,
        switchyard_control::OnSaturation::Fallback
    );
    assert_eq!(cfg.models["big"].deployments[0].capacity, None);
    use switchyard_control::Class;
    assert_eq!(cfg.keys[0].priority.default, Class::Batch);
    assert_eq!(cfg.keys[0].priority.max, Class::Standard);
    assert_eq!(
        cfg.keys[0].priority.effective(Some(Class::Critical)),
        Class::Standard
    );
    assert_eq!(cfg.keys[0].priority.effective(None), Class::Batch);
    assert_eq!(cfg.admission.target_utilization, 0.7);
    let batch = cfg.admission.classes[Class::Batch];
    assert_eq!(batch.max_wait, std::time::Duration::from_millis(5000));
    assert_eq!(batch.max_queue, 3);
    // Classes not named keep the admission crate's defaults.
    assert_eq!(
        cfg.admission.classes[Class::Interactive],
        switchyard_admission::QueueConfig::new(Default::default()).classes[Class::Interactive]
    );

    let bad = good
        .replace("max_concurrent = 4", "max_concurrent = 0")
        .replace("\"fallback\"", "\"hurry\"")
        .replace("priority = \"batch\"", "priority = \"urgent\"")
        .replace("max_priority = \"standard\"", "max_priority = \"batch\"")
        .replace("target_utilization = 0.7", "target_utilization = 1.5")
        .replace("[admission.classes.batch]", "[admission.classes.bulk]");
    let errs = errors(&bad);
    for (line, field) in [
        (22, "models.small.deployments[0].capacity.max_concurrent"),
        (23, "models.small.on_saturation"),
        (36, "keys[0].priority"),
        (40, "admission.target_utilization"),
        (41, "admission.classes.bulk"),
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("bad.toml:{line}:"))
                    && e.contains(&format!("`{field}`"))),
            "{line} {field}: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 5, "{errs:#?}");
    // A default above the maximum is refused.
    let above = good
        .replace("\npriority = \"batch\"", "\npriority = \"standard\"")
        .replace("max_priority = \"standard\"", "max_priority = \"batch\"");
    let errs = errors(&above);
    assert!(
        errs.iter()
            .any(|e| e.contains("`keys[0].priority`") && e.contains("above")),
        "{errs:#?}"
    );
}

#[test]
fn the_cache_pair_check_is_a_builtin_or_a_file_and_names_its_mistakes() {
    let errs = errors(&format!(
        "{GOOD}\n[cache]\npair_check = \"builtin:nope\"\nminilm = \"\"\n"
    ));
    assert!(
        has_in(&errs, "`cache.pair_check`: no built-in pair check `nope`"),
        "{errs:#?}"
    );
    assert!(has_in(&errs, "`cache.minilm`"), "{errs:#?}");
    let errs = errors(&format!(
        "{GOOD}\n[cache]\npair_check = \"/nonexistent/check.json\"\n"
    ));
    assert!(
        has_in(&errs, "`cache.pair_check`: reading /nonexistent/check.json"),
        "{errs:#?}"
    );
    let ok = parse(
        &format!("{GOOD}\n[cache]\npair_check = \"builtin:cache-pair-check.v1\"\n"),
        "ok.toml",
    )
    .unwrap();
    let p = ok.cache.unwrap().pair_check.unwrap();
    assert_eq!(
        p.minilm,
        std::path::PathBuf::from("models/all-MiniLM-L6-v2")
    );
    assert!(p.check.threshold > 0.5, "{}", p.check.threshold);
    // Off unless named.
    let ok = parse(&format!("{GOOD}\n[cache]\n"), "ok.toml").unwrap();
    assert!(ok.cache.unwrap().pair_check.is_none());
}

#[test]
fn harmful_guard_mistakes_name_file_line_and_field() {
    let guards = "\n[guards.harmful]\naction = \"refuse\"\nthreshold = 1.5\ncategories = [\"malicious_uses\", \"weather\"]\non_error = \"maybe\"\n";
    let text = format!("{GOOD}{guards}");
    let errs = errors(&text);
    for (field, needle, message) in [
        (
            "action",
            "action = \"refuse\"",
            "`refuse` is not one of \"block\", \"flag\"",
        ),
        ("threshold", "threshold = 1.5", "must be between 0 and 1"),
        (
            "categories[1]",
            "categories = [",
            "unknown category `weather`; categories: information_hazard, malicious_uses",
        ),
        ("on_error", "on_error = \"maybe\"", ""),
    ] {
        let at = format!("bad.toml:{}:", line_of(&text, needle));
        let path = format!("`guards.harmful.{field}`: {message}");
        assert!(
            errs.iter().any(|e| e.starts_with(&at) && e.contains(&path)),
            "{at} {path}: {errs:#?}"
        );
    }
    let errs = errors(&format!(
        "{GOOD}\n[guards.harmful]\nartifact = \"builtin:nope\"\n"
    ));
    assert!(
        has_in(
            &errs,
            "`guards.harmful.artifact`: no built-in harmful-request classifier `nope`"
        ),
        "{errs:#?}"
    );
    let errs = errors(&format!("{GOOD}\n[guards.harmful]\ncategories = []\n"));
    assert!(
        has_in(&errs, "`guards.harmful.categories`: must name"),
        "{errs:#?}"
    );

    let ok = parse(&format!("{GOOD}\n[guards.harmful]\n"), "ok.toml").unwrap();
    let h = ok.guards.harmful.unwrap();
    assert!(h.block && !h.fail_open && h.threshold.is_none());
    assert_eq!(h.categories.len(), 5, "every category by default");
    assert_eq!(h.source, "builtin:harmful.v1");
}

#[test]
fn otlp_export_is_off_by_default_and_its_mistakes_name_line_and_field() {
    let cfg = parse(GOOD, "good.toml").unwrap();
    assert_eq!(cfg.telemetry.otlp, None, "no [telemetry.otlp]: off");
    let on = GOOD.replace(
        "[server]",
        "[telemetry.otlp]\nendpoint = \"http://collector:4318/\"\nheaders_env = \"VENDOR_HEADERS\"\n\
         sampling_ratio = 0.25\nmetrics = true\n\n[server]",
    );
    let otlp = parse(&on, "good.toml").unwrap().telemetry.otlp.unwrap();
    assert!(otlp.metrics);
    assert_eq!(otlp.endpoint.as_deref(), Some("http://collector:4318"));
    assert_eq!(otlp.headers_env.as_deref(), Some("VENDOR_HEADERS"));
    assert_eq!(otlp.sampling_ratio, 0.25);
    assert_eq!(otlp.service_name, None, "from OTEL_SERVICE_NAME at start");
    assert_eq!(otlp.timeout.as_millis(), 10_000);

    let bad = GOOD.replace(
        "[server]",
        "[telemetry.otlp]\nendpoint = \"collector:4318\"\nheaders_env = \"x-api-key=abc\"\n\
         sampling_ratio = 2.0\ntimeout_ms = 0\nqueue_size = 1\nheaders = \"k=v\"\n\n[server]",
    );
    let errs = errors(&bad);
    assert_eq!(errs.len(), 6, "{errs:#?}");
    for (line, field) in [
        (3, "telemetry.otlp.endpoint"),
        (4, "telemetry.otlp.headers_env"),
        (5, "telemetry.otlp.sampling_ratio"),
        (6, "telemetry.otlp.timeout_ms"),
        (7, "telemetry.otlp.queue_size"),
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("bad.toml:{line}:")) && e.contains(field)),
            "{field} at line {line}: {errs:#?}"
        );
    }
    assert!(
        errs.iter()
            .any(|e| e.starts_with("bad.toml:8:") && e.contains("headers")),
        "header values are refused in the file: {errs:#?}"
    );
}
