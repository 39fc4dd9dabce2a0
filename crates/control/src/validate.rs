//! Raw config → validated [`Config`], collecting every problem with its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use switchyard_resilience::{Backoff, BreakerPolicy};

use crate::locate::key_segment;
use crate::raw::*;
use crate::spec::*;

type Issues = Vec<(String, String)>;

struct Checker {
    issues: Issues,
    /// Valid, but probably not what the author meant.
    warnings: Issues,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push((path.into(), message.into()));
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((path.into(), message.into()));
    }

    /// Checks a condition and records `message` at `path` when it fails.
    fn ensure(&mut self, ok: bool, path: impl Into<String>, message: impl Into<String>) -> bool {
        if !ok {
            self.err(path, message);
        }
        ok
    }

    /// The option `value` names, or `fallback` after recording which names are allowed.
    fn one_of<T: Copy>(
        &mut self,
        path: String,
        value: &str,
        options: &[(&str, T)],
        fallback: T,
    ) -> T {
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == value) {
            return *v;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(
            path,
            format!("`{value}` is not one of {}", names.join(", ")),
        );
        fallback
    }

    /// `on_error`: whether a guard that fails lets the request through.
    fn fail_open(&mut self, path: String, value: &str) -> bool {
        self.one_of(path, value, &[("closed", false), ("open", true)], false)
    }
}

/// The config, with the warnings found on the way; or every error.
pub(crate) fn validate(raw: RawConfig) -> Result<(Config, Issues), Issues> {
    let mut c = Checker {
        issues: Vec::new(),
        warnings: Vec::new(),
    };

    let listen = match raw.server.listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.err(
                "server.listen",
                format!(
                    "`{}` is not an address with a port, e.g. \"127.0.0.1:8080\"",
                    raw.server.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    c.ensure(
        raw.server.max_body_bytes > 0,
        "server.max_body_bytes",
        "must be greater than 0",
    );
    let server = ServerSpec {
        listen,
        max_body_bytes: usize::try_from(raw.server.max_body_bytes).unwrap_or(usize::MAX),
        shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_secs),
        demo: raw.server.demo,
    };

    c.ensure(
        !raw.storage.data_dir.trim().is_empty(),
        "storage.data_dir",
        "must not be empty",
    );
    let storage = StorageSpec {
        data_dir: PathBuf::from(&raw.storage.data_dir),
    };

    let t = &raw.telemetry;
    c.ensure(
        t.queue_capacity > 0,
        "telemetry.queue_capacity",
        "must be greater than 0",
    );
    c.ensure(
        t.batch_size > 0,
        "telemetry.batch_size",
        "must be greater than 0",
    );
    c.ensure(
        t.flush_interval_ms > 0,
        "telemetry.flush_interval_ms",
        "must be greater than 0",
    );
    let log_format = match t.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            c.err(
                "telemetry.log_format",
                format!("`{other}` is not one of \"json\", \"text\""),
            );
            LogFormat::Json
        }
    };
    let stores_content = c.one_of(
        "telemetry.content".to_owned(),
        &t.content,
        &[("none", false), ("masked", true)],
        false,
    );
    let (bytes, days) = (
        ContentSpec::MAX_BYTES_RANGE,
        ContentSpec::RETENTION_DAYS_RANGE,
    );
    c.ensure(
        bytes.contains(&t.content_max_bytes),
        "telemetry.content_max_bytes",
        format!("must be between {} and {}", bytes.start(), bytes.end()),
    );
    c.ensure(
        days.contains(&t.content_retention_days),
        "telemetry.content_retention_days",
        format!("must be between {} and {}", days.start(), days.end()),
    );
    let telemetry = TelemetrySpec {
        queue_capacity: t.queue_capacity,
        batch_size: t.batch_size,
        flush_interval: Duration::from_millis(t.flush_interval_ms),
        log_format,
        log_level: t.log_level.clone(),
        access_log: t.access_log,
        content: stores_content.then(|| ContentSpec {
            max_bytes: usize::try_from(t.content_max_bytes).unwrap_or(usize::MAX),
        }),
        content_retention: Duration::from_secs(u64::from(t.content_retention_days) * 86_400),
    };

    // The top level alone, so that its own mistakes are reported at its own lines; models
    // merge it with their overrides below.
    resilience(
        &mut c,
        "resilience",
        &RawResilience::default(),
        &raw.resilience,
    );
    let retry_budget = RetryBudgetSpec {
        percent: raw.resilience.retry_budget_percent.unwrap_or(20.0),
        min_per_sec: raw.resilience.retry_budget_min_per_sec.unwrap_or(10),
    };
    c.ensure(
        (0.0..=1000.0).contains(&retry_budget.percent),
        "resilience.retry_budget_percent",
        "must be between 0 and 1000",
    );

    // The top level alone, so that its own mistakes are reported at its own lines.
    breaker_policy(
        &mut c,
        "resilience.breaker",
        &RawBreaker::default(),
        &raw.resilience.breaker,
    );
    let mut providers = BTreeMap::new();
    let mut breakers = BTreeMap::new();
    for (name, p) in &raw.providers {
        let path = format!("providers.{}", key_segment(name));
        c.ensure(valid_name(name), &path, NAME_RULE);
        let own = match p {
            RawProvider::Openai(o) => &o.breaker,
            RawProvider::Anthropic(a) => &a.breaker,
            RawProvider::Sim(s) => &s.breaker,
        };
        breakers.insert(
            name.clone(),
            breaker_policy(
                &mut c,
                &format!("{path}.breaker"),
                &raw.resilience.breaker,
                own,
            ),
        );
        if let Some(spec) = provider(&mut c, &path, p) {
            providers.insert(name.clone(), spec);
        }
    }

    let mut models = BTreeMap::new();
    for (name, m) in &raw.models {
        let path = format!("models.{}", key_segment(name));
        c.ensure(valid_name(name), &path, NAME_RULE);
        models.insert(
            name.clone(),
            model(&mut c, &path, name, m, &raw, &providers, &raw.resilience),
        );
    }

    let guards_spec = guards(&mut c, "guards", &raw.guards, &raw.models);
    let mut guard_policies = BTreeMap::new();
    for (name, g) in &raw.guard_policies {
        let at = format!("guard_policies.{}", key_segment(name));
        c.ensure(valid_name(name), &at, NAME_RULE);
        guard_policies.insert(name.clone(), guards(&mut c, &at, g, &raw.models));
    }
    let cache = raw.cache.as_ref().map(|rc| cache_spec(&mut c, rc));
    let cache_defaults = cache.as_ref().map(|c| c.defaults);
    let mut routes = BTreeMap::new();
    for (name, r) in &raw.routes {
        let path = format!("routes.{}", key_segment(name));
        if let Some(spec) = route(&mut c, &path, name, r, &raw, &models, cache_defaults) {
            routes.insert(name.clone(), spec);
        }
    }
    let cache = cache.filter(|c| c.defaults.enabled || routes.values().any(|r| r.cache.enabled));

    let mut keys = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let mut seen_secrets = BTreeSet::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let path = format!("keys[{i}]");
        c.ensure(
            !k.id.trim().is_empty(),
            format!("{path}.id"),
            "must not be empty",
        );
        c.ensure(
            seen_ids.insert(k.id.clone()),
            format!("{path}.id"),
            format!("`{}` is used by another key", k.id),
        );
        let secret = key_secret(
            &mut c,
            &path,
            k.secret_sha256.as_deref(),
            k.secret_env.as_deref(),
        );
        if let Some(KeySecret::Sha256(h)) = &secret {
            c.ensure(
                seen_secrets.insert(*h),
                format!("{path}.secret_sha256"),
                "the same secret is used by another key",
            );
        }
        let access = if k.models.iter().any(|m| m == "*") {
            ModelAccess::All
        } else {
            for (j, m) in k.models.iter().enumerate() {
                c.ensure(
                    raw.models.contains_key(m) || raw.routes.contains_key(m),
                    format!("{path}.models[{j}]"),
                    format!("no model `{m}` is declared under [models] or [routes]"),
                );
            }
            ModelAccess::Only(k.models.clone())
        };
        for (field, v) in [("rpm", k.rpm), ("tpm", k.tpm)] {
            c.ensure(
                v != Some(0),
                format!("{path}.{field}"),
                "must be greater than 0 (omit it for no limit)",
            );
        }
        let daily = usd_to_nanos(
            &mut c,
            &format!("{path}.budget_usd_daily"),
            k.budget_usd_daily,
        );
        let monthly = usd_to_nanos(
            &mut c,
            &format!("{path}.budget_usd_monthly"),
            k.budget_usd_monthly,
        );
        let route_policy = k.route_policy.as_deref().and_then(|p| {
            p.parse::<Policy>()
                .map_err(|e| c.err(format!("{path}.route_policy"), e.to_string()))
                .ok()
        });
        if let Some(gp) = &k.guard_policy {
            c.ensure(
                raw.guard_policies.contains_key(gp),
                format!("{path}.guard_policy"),
                format!("no guard policy `{gp}` is declared under [guard_policies]"),
            );
        }
        if let Some(secret) = secret {
            keys.push(KeySpec {
                id: k.id.clone(),
                tenant: k.tenant.clone().unwrap_or_else(|| k.id.clone()),
                secret,
                models: access,
                rpm: k.rpm,
                tpm: k.tpm,
                budget_daily_nanos: daily,
                budget_monthly_nanos: monthly,
                route_policy,
                guard_policy: k.guard_policy.clone(),
            });
        }
    }

    let admin = raw.admin.as_ref().and_then(|a| {
        key_secret(
            &mut c,
            "admin",
            a.secret_sha256.as_deref(),
            a.secret_env.as_deref(),
        )
        .map(|secret| AdminSpec { secret })
    });

    let slos = slos(&mut c, &raw.slos, &raw.models, &raw.routes);
    let alerts = AlertsSpec {
        webhook: raw
            .alerts
            .webhook
            .as_ref()
            .map(|u| http_url(&mut c, "alerts.webhook", u)),
        timeout: Duration::from_millis(raw.alerts.timeout_ms),
        on_page: c.one_of(
            "alerts.on_page".to_owned(),
            &raw.alerts.on_page,
            &[
                ("none", OnPage::Nothing),
                ("pause", OnPage::Pause),
                ("abort", OnPage::Abort),
            ],
            OnPage::Pause,
        ),
    };
    for (field, value) in [
        ("max_rendered_bytes", raw.prompts.max_rendered_bytes),
        ("fuel", raw.prompts.fuel),
    ] {
        c.ensure(
            value > 0,
            format!("prompts.{field}"),
            "must be greater than 0",
        );
    }
    let prompts = crate::prompt::RenderLimits {
        max_bytes: usize::try_from(raw.prompts.max_rendered_bytes).unwrap_or(usize::MAX),
        fuel: raw.prompts.fuel,
    };
    c.ensure(
        raw.alerts.timeout_ms > 0,
        "alerts.timeout_ms",
        "must be greater than 0",
    );
    c.ensure(
        raw.limits.default_max_output_tokens > 0,
        "limits.default_max_output_tokens",
        "must be greater than 0",
    );
    let limits = LimitsSpec {
        default_max_output_tokens: raw.limits.default_max_output_tokens,
    };
    if c.issues.is_empty() {
        let config = Config {
            located_warnings: Vec::new(),
            slos,
            alerts,
            limits,
            prompts,
            server,
            storage,
            telemetry,
            retry_budget,
            providers,
            breakers,
            models,
            routes,
            cache,
            guards: guards_spec,
            guard_policies,
            keys,
            admin,
        };
        Ok((config, c.warnings))
    } else {
        Err(c.issues)
    }
}

const NAME_RULE: &str = "names use letters, digits, '-', '_', '.' and ':' only";

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | ':'))
}

fn resilience(
    c: &mut Checker,
    path: &str,
    base: &RawResilience,
    over: &RawResilience,
) -> ResilienceSpec {
    let pick_ms =
        |o: Option<u64>, b: Option<u64>, d: u64| Duration::from_millis(o.or(b).unwrap_or(d));
    let attempt_timeout = pick_ms(over.attempt_timeout_ms, base.attempt_timeout_ms, 60_000);
    let stream_idle_timeout = pick_ms(
        over.stream_idle_timeout_ms,
        base.stream_idle_timeout_ms,
        60_000,
    );
    let deadline = pick_ms(over.deadline_ms, base.deadline_ms, 180_000);
    let max_attempts = over.max_attempts.or(base.max_attempts).unwrap_or(3);
    let backoff = Backoff {
        base: pick_ms(over.backoff_base_ms, base.backoff_base_ms, 100),
        max: pick_ms(over.backoff_max_ms, base.backoff_max_ms, 5_000),
    };
    for (field, v) in [
        ("attempt_timeout_ms", attempt_timeout),
        ("stream_idle_timeout_ms", stream_idle_timeout),
        ("deadline_ms", deadline),
    ] {
        c.ensure(
            !v.is_zero(),
            format!("{path}.{field}"),
            "must be greater than 0",
        );
    }
    c.ensure(
        max_attempts >= 1,
        format!("{path}.max_attempts"),
        "must be at least 1",
    );
    c.ensure(
        backoff.base <= backoff.max,
        format!("{path}.backoff_base_ms"),
        "must not exceed backoff_max_ms",
    );
    ResilienceSpec {
        attempt_timeout,
        stream_idle_timeout,
        deadline,
        max_attempts,
        backoff,
    }
}

/// A provider's breaker policy: its own `breaker` fields over the top level's.
fn breaker_policy(c: &mut Checker, path: &str, bb: &RawBreaker, ob: &RawBreaker) -> BreakerPolicy {
    let d = BreakerPolicy::default();
    let breaker = BreakerPolicy {
        consecutive_failures: ob
            .consecutive_failures
            .or(bb.consecutive_failures)
            .unwrap_or(d.consecutive_failures),
        failure_rate: ob
            .failure_rate
            .or(bb.failure_rate)
            .unwrap_or(d.failure_rate),
        min_requests: ob
            .min_requests
            .or(bb.min_requests)
            .unwrap_or(d.min_requests),
        window: ob
            .window_secs
            .or(bb.window_secs)
            .map(Duration::from_secs)
            .unwrap_or(d.window),
        open_for: ob
            .open_secs
            .or(bb.open_secs)
            .map(Duration::from_secs)
            .unwrap_or(d.open_for),
    };
    c.ensure(
        breaker.consecutive_failures >= 1,
        format!("{path}.breaker.consecutive_failures"),
        "must be at least 1",
    );
    c.ensure(
        breaker.failure_rate > 0.0 && breaker.failure_rate <= 1.0,
        format!("{path}.breaker.failure_rate"),
        "must be in (0, 1]",
    );
    c.ensure(
        !breaker.window.is_zero(),
        format!("{path}.breaker.window_secs"),
        "must be greater than 0",
    );
    breaker
}

fn http_url(c: &mut Checker, path: &str, url: &str) -> String {
    let web = c.ensure(
        url.starts_with("http://") || url.starts_with("https://"),
        path,
        format!("`{url}` is not an http:// or https:// URL"),
    );
    if web {
        if let Some(why) = url::Url::parse(url).ok().and_then(|u| internal_host(&u)) {
            c.warn(
                path,
                format!(
                    "`{url}` points at {why}: requests (with their API key and prompts) would go \
                     to this machine's cloud metadata service or its own network link, not a model \
                     provider; check the address"
                ),
            );
        }
    }
    url.trim_end_matches('/').to_owned()
}

/// Cloud metadata services by name and by address (AWS, GCP, Azure and OpenStack use
/// 169.254.169.254, which the link-local rule covers; AWS's IPv6 one is not link-local).
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog"];
const METADATA_ADDRS: &[std::net::IpAddr] = &[
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254)),
    std::net::IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    // Alibaba Cloud's.
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 100, 100, 200)),
];

/// What is wrong with a URL's host for an upstream: a cloud metadata service, or a
/// link-local address (169.254.0.0/16, fe80::/10; an IPv4-mapped IPv6 address counts as its
/// IPv4 address). `None` for any other host.
fn internal_host(url: &url::Url) -> Option<&'static str> {
    let ip = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return METADATA_HOSTS
                .contains(&name.as_str())
                .then_some("a cloud metadata service");
        }
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => std::net::IpAddr::V4(v4),
            None => std::net::IpAddr::V6(v6),
        },
    };
    if METADATA_ADDRS.contains(&ip) {
        return Some("a cloud metadata service");
    }
    let link_local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    link_local.then_some("a link-local address")
}

fn env_name(c: &mut Checker, path: &str, name: &Option<String>) {
    if let Some(n) = name {
        c.ensure(
            !n.is_empty() && n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'),
            path,
            format!("`{n}` is not an environment variable name"),
        );
    }
}

fn provider(c: &mut Checker, path: &str, p: &RawProvider) -> Option<ProviderSpec> {
    match p {
        RawProvider::Openai(o) => {
            env_name(c, &format!("{path}.api_key_env"), &o.api_key_env);
            Some(ProviderSpec::OpenAi(OpenAiSpec {
                base_url: http_url(c, &format!("{path}.base_url"), &o.base_url),
                api_key_env: o.api_key_env.clone(),
                headers: o.headers.clone().into_iter().collect(),
                connect_timeout: Duration::from_millis(o.connect_timeout_ms),
            }))
        }
        RawProvider::Anthropic(a) => {
            env_name(c, &format!("{path}.api_key_env"), &a.api_key_env);
            c.ensure(
                a.default_max_tokens > 0,
                format!("{path}.default_max_tokens"),
                "must be greater than 0",
            );
            Some(ProviderSpec::Anthropic(AnthropicSpec {
                base_url: http_url(c, &format!("{path}.base_url"), &a.base_url),
                api_key_env: a.api_key_env.clone(),
                version: a.version.clone(),
                headers: a.headers.clone().into_iter().collect(),
                connect_timeout: Duration::from_millis(a.connect_timeout_ms),
                default_max_tokens: a.default_max_tokens,
            }))
        }
        RawProvider::Sim(s) => {
            let mut models = BTreeMap::new();
            for (name, m) in &s.models {
                let mpath = format!("{path}.models.{}", key_segment(name));
                models.insert(name.clone(), sim_model(c, &mpath, m));
            }
            c.ensure(
                !s.models.is_empty(),
                format!("{path}.models"),
                "a sim provider needs at least one model",
            );
            Some(ProviderSpec::Sim(SimSpec {
                seed: s.seed,
                models,
            }))
        }
    }
}

fn sim_model(c: &mut Checker, path: &str, m: &RawSimModel) -> SimModelSpec {
    for (field, rate) in [
        ("error_rate", m.error_rate),
        ("rate_limit_rate", m.rate_limit_rate),
        ("timeout_rate", m.timeout_rate),
        ("spike_rate", m.spike_rate),
    ] {
        c.ensure(
            (0.0..=1.0).contains(&rate),
            format!("{path}.{field}"),
            "must be between 0 and 1",
        );
    }
    c.ensure(
        m.error_rate + m.rate_limit_rate + m.timeout_rate <= 1.0,
        format!("{path}.error_rate"),
        "error_rate + rate_limit_rate + timeout_rate must not exceed 1",
    );
    c.ensure(
        (400..=599).contains(&m.error_status),
        format!("{path}.error_status"),
        "must be an HTTP error status (400-599)",
    );
    c.ensure(
        (1..=4096).contains(&m.embedding_dims),
        format!("{path}.embedding_dims"),
        "must be between 1 and 4096",
    );
    let mut rules = Vec::new();
    for (i, r) in m.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{i}]");
        let pattern = match Regex::new(&r.pattern) {
            Ok(p) => Some(p),
            Err(e) => {
                c.err(
                    format!("{rpath}.pattern"),
                    format!("not a valid regex: {e}"),
                );
                None
            }
        };
        let action = match (&r.reply, r.error_status, &r.tool_call) {
            (Some(text), None, None) => Some(SimRuleAction::Reply(text.clone())),
            (None, Some(status), None) => {
                c.ensure(
                    (400..=599).contains(&status),
                    format!("{rpath}.error_status"),
                    "must be an HTTP error status (400-599)",
                );
                Some(SimRuleAction::Error(status))
            }
            (None, None, Some(tool)) => Some(SimRuleAction::ToolCall(tool.clone())),
            _ => {
                c.err(
                    &rpath,
                    "give exactly one of `reply`, `error_status`, `tool_call`",
                );
                None
            }
        };
        if let (Some(pattern), Some(action)) = (pattern, action) {
            rules.push(SimRule { pattern, action });
        }
    }
    SimModelSpec {
        ttft_ms: distribution(c, &format!("{path}.ttft_ms"), &m.ttft_ms, true),
        tokens_per_second: distribution(
            c,
            &format!("{path}.tokens_per_second"),
            &m.tokens_per_second,
            false,
        ),
        output_tokens: distribution(c, &format!("{path}.output_tokens"), &m.output_tokens, false),
        error_rate: m.error_rate,
        error_status: m.error_status,
        rate_limit_rate: m.rate_limit_rate,
        timeout_rate: m.timeout_rate,
        spike_rate: m.spike_rate,
        spike: Duration::from_millis(m.spike_ms),
        echo: m.echo,
        rules,
        embedding_dims: m.embedding_dims,
    }
}

fn distribution(c: &mut Checker, path: &str, d: &RawDist, zero_ok: bool) -> Distribution {
    let finite = d.p50.is_finite() && d.p99.is_none_or(f64::is_finite);
    let positive = if zero_ok { d.p50 >= 0.0 } else { d.p50 > 0.0 };
    if !c.ensure(
        finite && positive,
        format!("{path}.p50"),
        if zero_ok {
            "must be a number >= 0"
        } else {
            "must be a number > 0"
        },
    ) {
        return Distribution::fixed(1.0);
    }
    let mut dist = match d.p99 {
        None => Distribution::fixed(d.p50),
        Some(p99) if d.p50 > 0.0 && p99 >= d.p50 => Distribution::from_percentiles(d.p50, p99),
        Some(_) => {
            c.err(
                format!("{path}.p99"),
                "must be at least p50 (and p50 greater than 0)",
            );
            Distribution::fixed(d.p50)
        }
    };
    if let Some(min) = d.min {
        dist.min = min;
    }
    if let Some(max) = d.max {
        dist.max = max;
    }
    c.ensure(
        dist.min <= dist.max,
        format!("{path}.min"),
        "must not exceed max",
    );
    dist
}

fn model(
    c: &mut Checker,
    path: &str,
    name: &str,
    m: &RawModel,
    raw: &RawConfig,
    providers: &BTreeMap<String, ProviderSpec>,
    global: &RawResilience,
) -> ModelSpec {
    c.ensure(
        !m.deployments.is_empty(),
        format!("{path}.deployments"),
        "a model needs at least one deployment",
    );
    let mut deployments = Vec::new();
    for (i, d) in m.deployments.iter().enumerate() {
        let dpath = format!("{path}.deployments[{i}]");
        let upstream_model = d.upstream_model.clone().unwrap_or_else(|| name.to_owned());
        match providers.get(&d.provider) {
            None if !raw.providers.contains_key(&d.provider) => c.err(
                format!("{dpath}.provider"),
                format!("no provider `{}` is declared under [providers]", d.provider),
            ),
            Some(ProviderSpec::Sim(sim)) => {
                c.ensure(
                    sim.models.contains_key(&upstream_model),
                    format!("{dpath}.upstream_model"),
                    format!(
                        "sim provider `{}` has no model `{upstream_model}` (it has: {})",
                        d.provider,
                        sim.models.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            _ => {}
        }
        deployments.push(DeploymentSpec {
            provider: d.provider.clone(),
            upstream_model,
            weight: d.weight,
        });
    }
    c.ensure(
        m.deployments.is_empty() || m.deployments.iter().any(|d| d.weight > 0),
        format!("{path}.deployments"),
        "at least one deployment needs a weight greater than 0",
    );
    for (i, f) in m.fallbacks.iter().enumerate() {
        let fpath = format!("{path}.fallbacks[{i}]");
        if f == name {
            c.err(fpath, "a model cannot fall back to itself");
        } else {
            c.ensure(
                raw.models.contains_key(f),
                fpath,
                format!("no model `{f}` is declared under [models]"),
            );
        }
    }
    let price = Price {
        input_nanos_per_mtok: usd_to_nanos(
            c,
            &format!("{path}.price.input_per_mtok"),
            Some(m.price.input_per_mtok),
        )
        .unwrap_or(0),
        output_nanos_per_mtok: usd_to_nanos(
            c,
            &format!("{path}.price.output_per_mtok"),
            Some(m.price.output_per_mtok),
        )
        .unwrap_or(0),
    };
    c.ensure(
        m.context_tokens > 0,
        format!("{path}.context_tokens"),
        "must be greater than 0",
    );
    c.ensure(
        m.max_output_tokens != Some(0),
        format!("{path}.max_output_tokens"),
        "must be greater than 0 (omit it when unknown)",
    );
    if let Some(r) = &m.resilience {
        let b = &r.breaker;
        let set = [
            b.consecutive_failures.is_some(),
            b.failure_rate.is_some(),
            b.min_requests.is_some(),
            b.window_secs.is_some(),
            b.open_secs.is_some(),
        ];
        c.ensure(
            !set.contains(&true),
            format!("{path}.resilience.breaker"),
            "breakers belong to deployments: set `breaker` under the provider (or [resilience.breaker] for all)",
        );
    }
    let resilience = resilience(
        c,
        &format!("{path}.resilience"),
        global,
        m.resilience.as_ref().unwrap_or(&RawResilience::default()),
    );
    ModelSpec {
        name: name.to_owned(),
        deployments,
        price,
        context_tokens: m.context_tokens,
        quality_tier: m.quality_tier,
        fallbacks: m.fallbacks.clone(),
        resilience,
        max_output_tokens: m.max_output_tokens,
    }
}

fn pii_action(c: &mut Checker, path: &str, name: &str) -> switchyard_pii::Action {
    use switchyard_pii::Action;
    match name {
        "pseudonymize" => Action::Pseudonymize,
        "redact" => Action::Redact,
        "hash" => Action::Hash,
        "block" => Action::Block,
        "flag" => Action::Allow,
        other => {
            c.err(
                path,
                format!("`{other}` is not one of \"pseudonymize\", \"redact\", \"hash\", \"block\", \"flag\""),
            );
            Action::Pseudonymize
        }
    }
}

fn entity_kind(c: &mut Checker, path: &str, label: &str) -> Option<switchyard_pii::EntityKind> {
    let kind = switchyard_pii::EntityKind::from_label(label);
    if kind.is_none() {
        let all: Vec<&str> = switchyard_pii::EntityKind::ALL
            .iter()
            .map(|k| k.label())
            .collect();
        c.err(
            path,
            format!("unknown entity kind `{label}`; kinds: {}", all.join(", ")),
        );
    }
    kind
}

/// The kinds on when the config names none: the ones a checksum or a fixed format makes
/// precise (eval/pii.md: F1 ≥ 0.99), not the name and place recognisers, which flag much
/// benign text.
pub(crate) const DEFAULT_PII_KINDS: [switchyard_pii::EntityKind; 7] = [
    switchyard_pii::EntityKind::Email,
    switchyard_pii::EntityKind::Phone,
    switchyard_pii::EntityKind::CreditCard,
    switchyard_pii::EntityKind::Iban,
    switchyard_pii::EntityKind::UsSsn,
    switchyard_pii::EntityKind::IpAddress,
    switchyard_pii::EntityKind::Secret,
];

fn guards(
    c: &mut Checker,
    at: &str,
    g: &RawGuards,
    models: &BTreeMap<String, RawModel>,
) -> GuardsSpec {
    let pii = g.pii.as_ref().map(|p| {
        let action = pii_action(c, &format!("{at}.pii.action"), &p.action);
        let kinds: BTreeSet<switchyard_pii::EntityKind> = match &p.kinds {
            None => DEFAULT_PII_KINDS.into_iter().collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, k)| entity_kind(c, &format!("{at}.pii.kinds[{i}]"), k))
                .collect(),
        };
        let mut policy = switchyard_pii::MaskPolicy::uniform(action);
        for (label, a) in &p.actions {
            let path = format!("{at}.pii.actions.{}", key_segment(label));
            if let Some(kind) = entity_kind(c, &path, label) {
                policy = policy.with(kind, pii_action(c, &path, a));
            }
        }
        env_name(c, &format!("{at}.pii.hash_salt_env"), &p.hash_salt_env);
        PiiGuardSpec {
            kinds,
            policy,
            hash_salt_env: p.hash_salt_env.clone(),
        }
    });
    let injection = g.injection.as_ref().and_then(|i| {
        let block = c.one_of(
            format!("{at}.injection.action"),
            &i.action,
            &[("block", true), ("flag", false)],
            true,
        );
        let fail_open = c.fail_open(format!("{at}.injection.on_error"), &i.on_error);
        if let Some(t) = i.threshold {
            c.ensure(
                (0.0..=1.0).contains(&t),
                format!("{at}.injection.threshold"),
                "must be between 0 and 1",
            );
        }
        let artifact =
            crate::builtin::load_classifier(&i.artifact, crate::builtin::INJECTION_DETECTORS)
                .map_err(|e| c.err(format!("{at}.injection.artifact"), e))
                .ok()?;
        Some(InjectionGuardSpec {
            block,
            threshold: i.threshold,
            source: i.artifact.clone(),
            artifact: std::sync::Arc::new(artifact),
            scan_tool_results: i.scan_tool_results,
            fail_open,
        })
    });
    let output_action = |c: &mut Checker, path: &str, a: &str| {
        c.one_of(
            path.to_owned(),
            a,
            &[
                ("retry", OutputAction::Retry),
                ("block", OutputAction::Block),
                ("flag", OutputAction::Flag),
            ],
            OutputAction::Retry,
        )
    };
    let toxicity = g.toxicity.as_ref().and_then(|t| {
        let action = output_action(c, &format!("{at}.toxicity.action"), &t.action);
        if let Some(v) = t.threshold {
            c.ensure(
                (0.0..=1.0).contains(&v),
                format!("{at}.toxicity.threshold"),
                "must be between 0 and 1",
            );
        }
        let artifact =
            crate::builtin::load_classifier(&t.artifact, crate::builtin::TOXICITY_DETECTORS)
                .map_err(|e| c.err(format!("{at}.toxicity.artifact"), e))
                .ok()?;
        Some(ToxicityGuardSpec {
            action,
            threshold: t.threshold,
            source: t.artifact.clone(),
            artifact: std::sync::Arc::new(artifact),
        })
    });
    let compliance = g.compliance.as_ref().map(|r| {
        let action = output_action(c, &format!("{at}.compliance.action"), &r.action);
        let regex = |c: &mut Checker, path: String, pattern: &str| {
            Regex::new(pattern)
                .map_err(|e| c.err(path, format!("not a valid regex: {e}")))
                .ok()
        };
        let forbidden = r
            .forbidden
            .iter()
            .enumerate()
            .filter_map(|(i, p)| regex(c, format!("{at}.compliance.forbidden[{i}]"), p))
            .collect();
        let disclaimers = r
            .disclaimers
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                c.ensure(
                    !d.text.trim().is_empty(),
                    format!("{at}.compliance.disclaimers[{i}].text"),
                    "must not be empty",
                );
                regex(c, format!("{at}.compliance.disclaimers[{i}].when"), &d.when)
                    .map(|re| (re, d.text.clone()))
            })
            .collect();
        c.ensure(
            r.max_chars != Some(0),
            format!("{at}.compliance.max_chars"),
            "must be greater than 0 (omit it for no limit)",
        );
        ComplianceGuardSpec {
            action,
            forbidden,
            disclaimers,
            max_chars: r.max_chars,
            json: r.json,
        }
    });
    c.ensure(
        !g.output.safe_answer.trim().is_empty(),
        format!("{at}.output.safe_answer"),
        "must not be empty",
    );
    c.ensure(
        g.output.retries <= 5,
        format!("{at}.output.retries"),
        "at most 5: each retry is a paid call",
    );
    let webhook = g.webhook.as_ref().map(|w| {
        let url = http_url(c, &format!("{at}.webhook.url"), &w.url);
        c.ensure(
            w.timeout_ms > 0,
            format!("{at}.webhook.timeout_ms"),
            "must be greater than 0",
        );
        let fail_open = c.fail_open(format!("{at}.webhook.on_error"), &w.on_error);
        WebhookGuardSpec {
            url,
            timeout: Duration::from_millis(w.timeout_ms),
            fail_open,
        }
    });
    let judge = g.judge.as_ref().and_then(|j| {
        c.ensure(
            models.contains_key(&j.model),
            format!("{at}.judge.model"),
            format!("no model `{}` is declared under [models]", j.model),
        );
        let template = j
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_JUDGE_TEMPLATE.to_owned());
        if let Err(e) = minijinja::Environment::new().template_from_str(&template) {
            c.err(
                format!("{at}.judge.template"),
                format!("not a valid template: {e}"),
            );
        }
        let action = output_action(c, &format!("{at}.judge.action"), &j.action);
        let unsafe_pattern = Regex::new(&j.unsafe_pattern)
            .map_err(|e| {
                c.err(
                    format!("{at}.judge.unsafe_pattern"),
                    format!("not a valid regex: {e}"),
                )
            })
            .ok()?;
        Some(JudgeGuardSpec {
            model: j.model.clone(),
            template,
            unsafe_pattern,
            action,
        })
    });
    let screen_first = c.one_of(
        format!("{at}.screen"),
        g.screen.as_deref().unwrap_or("alongside"),
        &[("alongside", false), ("first", true)],
        false,
    );
    let topics = g.topics.as_ref().map(|t| topics_guard(c, at, t));
    let grounding = g.grounding.as_ref().map(|r| {
        let action = output_action(c, &format!("{at}.grounding.action"), &r.action);
        c.ensure(
            (0.0..=1.0).contains(&r.threshold),
            format!("{at}.grounding.threshold"),
            "must be between 0 and 1",
        );
        let mut context = ContextSources::default();
        for (i, source) in r.context.iter().enumerate() {
            match source.as_str() {
                "field" => context.field = true,
                "tools" => context.tools = true,
                "system" => context.system = true,
                other => c.err(
                    format!("{at}.grounding.context[{i}]"),
                    format!("`{other}` is not one of \"field\", \"tools\", \"system\""),
                ),
            }
        }
        c.ensure(
            context != ContextSources::default(),
            format!("{at}.grounding.context"),
            "name at least one place to read the context from",
        );
        GroundingGuardSpec {
            action,
            threshold: r.threshold,
            context,
        }
    });
    let bias = g.bias.as_ref().map(|b| {
        let action = output_action(c, &format!("{at}.bias.action"), &b.action);
        if let Some(v) = b.threshold {
            c.ensure(
                (0.0..=1.0).contains(&v),
                format!("{at}.bias.threshold"),
                "must be between 0 and 1",
            );
        }
        BiasGuardSpec {
            action,
            threshold: b.threshold,
        }
    });
    GuardsSpec {
        screen_first,
        pii,
        injection,
        toxicity,
        compliance,
        webhook,
        judge,
        topics,
        grounding,
        bias,
        output: OutputPolicySpec {
            retries: g.output.retries,
            corrective_note: g.output.corrective_note,
            safe_answer: g.output.safe_answer.clone(),
        },
    }
}

/// `[[slos]]` into the SLO crate's specs; every problem with its `slos[i].field` path.
fn slos(
    c: &mut Checker,
    raw: &[RawSlo],
    models: &BTreeMap<String, RawModel>,
    routes: &BTreeMap<String, RawRoute>,
) -> Vec<switchyard_slo::SloSpec> {
    use switchyard_slo::{Objective, Scope, SloSpec, SpecError};
    let mut out: Vec<SloSpec> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("slos[{i}]");
        let threshold = |c: &mut Checker| match s.threshold_ms {
            Some(t) => t,
            None => {
                c.err(
                    format!("{at}.threshold_ms"),
                    format!("a `{}` SLO needs threshold_ms", s.objective),
                );
                1
            }
        };
        let objective = match s.objective.as_str() {
            "availability" => Objective::Availability,
            "quality" => Objective::Quality,
            "latency" => Objective::Latency {
                threshold_ms: threshold(c),
            },
            "ttft" => Objective::Ttft {
                threshold_ms: threshold(c),
            },
            other => {
                c.err(
                    format!("{at}.objective"),
                    format!(
                        "`{other}` is not one of \"availability\", \"latency\", \"ttft\", \"quality\""
                    ),
                );
                Objective::Availability
            }
        };
        if let Some(m) = &s.model {
            c.ensure(
                models.contains_key(m),
                format!("{at}.model"),
                format!("no model `{m}` is declared under [models]"),
            );
        }
        if let Some(r) = &s.route {
            c.ensure(
                routes.contains_key(r),
                format!("{at}.route"),
                format!("no route `{r}` is declared under [routes]"),
            );
        }
        let spec = SloSpec::new(s.name.clone(), objective, s.target)
            .with_scope(Scope {
                route: s.route.clone(),
                model: s.model.clone(),
            })
            .with_window(i64::from(s.window_days) * 86_400);
        if let Err(errors) = spec.validate() {
            for e in errors.0 {
                let field = match &e {
                    SpecError::EmptyName | SpecError::Duplicate { .. } => "name",
                    SpecError::Target { .. } => "target",
                    SpecError::Threshold { .. } => "threshold_ms",
                    SpecError::Window { .. } => "window_days",
                };
                c.err(format!("{at}.{field}"), e.to_string());
            }
        }
        c.ensure(
            out.iter().all(|o| o.name != spec.name),
            format!("{at}.name"),
            format!("SLO `{}` is declared twice", spec.name),
        );
        out.push(spec);
    }
    out
}

fn topics_guard(c: &mut Checker, at: &str, t: &RawTopicsGuard) -> TopicsGuardSpec {
    let refuse = c.one_of(
        format!("{at}.topics.action"),
        &t.action,
        &[("refuse", true), ("flag", false)],
        true,
    );
    let fail_open = c.fail_open(format!("{at}.topics.on_error"), &t.on_error);
    c.ensure(
        !t.allowed.is_empty() || !t.denied.is_empty(),
        format!("{at}.topics"),
        "declare at least one [[...topics.allowed]] or [[...topics.denied]] topic",
    );
    c.ensure(
        !t.refusal.trim().is_empty(),
        format!("{at}.topics.refusal"),
        "must not be empty",
    );
    c.ensure(
        !t.embedder.trim().is_empty(),
        format!("{at}.topics.embedder"),
        "must name the static model's folder",
    );
    let defaults = switchyard_topics::Thresholds::default();
    let mut thresholds = defaults;
    for (field, value, slot) in [
        ("allow_threshold", t.allow_threshold, &mut thresholds.allow),
        ("deny_threshold", t.deny_threshold, &mut thresholds.deny),
    ] {
        if let Some(v) = value {
            c.ensure(
                (-1.0..=1.0).contains(&v),
                format!("{at}.topics.{field}"),
                "a cosine: between -1 and 1",
            );
            *slot = v;
        }
    }
    let mut topics = Vec::new();
    let mut names = BTreeSet::new();
    for (list, kind, raw) in [
        ("allowed", switchyard_topics::TopicKind::Allowed, &t.allowed),
        ("denied", switchyard_topics::TopicKind::Denied, &t.denied),
    ] {
        for (i, topic) in raw.iter().enumerate() {
            let path = format!("{at}.topics.{list}[{i}]");
            let name = topic.name.trim();
            c.ensure(
                !name.is_empty(),
                format!("{path}.name"),
                "must not be empty",
            );
            c.ensure(
                name.is_empty() || names.insert(name.to_owned()),
                format!("{path}.name"),
                format!("topic `{name}` is declared twice"),
            );
            let has_phrase = topic.examples.iter().any(|e| !e.trim().is_empty())
                || topic
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.trim().is_empty())
                || topic.keywords.iter().any(|k| !k.trim().is_empty());
            c.ensure(
                has_phrase,
                path.clone(),
                "give the topic examples, a description or keywords",
            );
            topics.push(switchyard_topics::TopicSpec {
                name: name.to_owned(),
                examples: topic.examples.clone(),
                description: topic.description.clone(),
                keywords: topic.keywords.clone(),
                kind,
            });
        }
    }
    TopicsGuardSpec {
        topics,
        thresholds,
        refuse,
        refusal: t.refusal.clone(),
        embedder: PathBuf::from(&t.embedder),
        fail_open,
    }
}

fn cache_spec(c: &mut Checker, rc: &RawCache) -> CacheSpec {
    c.ensure(rc.max_mb > 0, "cache.max_mb", "must be greater than 0");
    c.ensure(rc.top_k > 0, "cache.top_k", "must be at least 1");
    c.ensure(
        !rc.embedder.trim().is_empty(),
        "cache.embedder",
        "must name the folder of the static embedding model",
    );
    let defaults = CachePolicySpec {
        enabled: rc.enabled,
        semantic: rc.semantic,
        threshold: rc.threshold,
        ttl: Duration::from_secs(rc.ttl_secs),
        allow_temperature: rc.allow_temperature,
    };
    check_cache_policy(c, "cache", &defaults);
    CacheSpec {
        max_bytes: usize::try_from(rc.max_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        embedder: PathBuf::from(&rc.embedder),
        top_k: rc.top_k,
        defaults,
    }
}

fn check_cache_policy(c: &mut Checker, path: &str, p: &CachePolicySpec) {
    c.ensure(
        p.threshold > 0.0 && p.threshold <= 1.0,
        format!("{path}.threshold"),
        "must be a cosine similarity in (0, 1]",
    );
    c.ensure(
        !p.ttl.is_zero(),
        format!("{path}.ttl_secs"),
        "must be greater than 0",
    );
}

fn route(
    c: &mut Checker,
    path: &str,
    name: &str,
    r: &RawRoute,
    raw: &RawConfig,
    models: &BTreeMap<String, ModelSpec>,
    cache_defaults: Option<CachePolicySpec>,
) -> Option<RouteSpec> {
    let named_ok = c.ensure(
        valid_name(name) && !name.contains(':'),
        path,
        "route names use letters, digits, '-', '_' and '.' only (':' separates the policy, as in `auto:cheap`)",
    );
    c.ensure(
        !raw.models.contains_key(name),
        path,
        format!("a model named `{name}` exists; a route needs a name of its own"),
    );
    if !c.ensure(
        !r.candidates.is_empty(),
        format!("{path}.candidates"),
        "a route needs at least one candidate model",
    ) {
        return None;
    }
    let mut candidates = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, cand) in r.candidates.iter().enumerate() {
        let cpath = format!("{path}.candidates[{i}].model");
        c.ensure(
            seen.insert(cand.model.clone()),
            &cpath,
            format!("`{}` is listed twice", cand.model),
        );
        match models.get(&cand.model) {
            Some(m) => {
                let mut candidate = Candidate::new(&cand.model, u32::from(m.quality_tier));
                candidate.head.clone_from(&cand.head);
                candidates.push(candidate);
            }
            None => c.err(
                cpath,
                format!("no model `{}` is declared under [models]", cand.model),
            ),
        }
    }
    let router = r.router.as_deref().and_then(|source| {
        crate::builtin::load_router(source)
            .map(|artifact| RouterSpec {
                source: source.to_owned(),
                artifact: std::sync::Arc::new(artifact),
            })
            .map_err(|e| c.err(format!("{path}.router"), e))
            .ok()
    });
    let default_policy = match r.default_policy.as_deref() {
        None => Policy::Balanced,
        Some(p) => p.parse().unwrap_or_else(|e: switchyard_route::BadPolicy| {
            c.err(format!("{path}.default_policy"), e.to_string());
            Policy::Balanced
        }),
    };
    let bars = match (&r.bars, &router) {
        (Some(b), _) => {
            c.ensure(
                (0.0..=1.0).contains(&b.cheap) && (0.0..=1.0).contains(&b.balanced),
                format!("{path}.bars"),
                "bars are probabilities in [0, 1]",
            );
            c.ensure(
                b.cheap <= b.balanced,
                format!("{path}.bars.cheap"),
                "the `cheap` bar must not be above the `balanced` one",
            );
            Bars {
                cheap: b.cheap,
                balanced: b.balanced,
            }
        }
        (None, Some(router)) => router.artifact.bars,
        (None, None) => Bars::default(),
    };
    let mut rules = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{i}]");
        c.ensure(
            models.contains_key(&rule.model),
            format!("{rpath}.model"),
            format!("no model `{}` is declared under [models]", rule.model),
        );
        let set = usize::from(rule.prompt_regex.is_some())
            + usize::from(rule.key.is_some())
            + usize::from(rule.metadata.is_some());
        if !c.ensure(
            set == 1,
            &rpath,
            "a rule needs exactly one of `prompt_regex`, `key`, `metadata`",
        ) {
            continue;
        }
        if let Some(pattern) = &rule.prompt_regex {
            match Rule::regex(&rule.name, pattern, &rule.model) {
                Ok(built) => rules.push(built),
                Err(e) => c.err(
                    format!("{rpath}.prompt_regex"),
                    format!(
                        "not a valid regex: {}",
                        std::error::Error::source(&e)
                            .map_or_else(|| e.to_string(), ToString::to_string)
                    ),
                ),
            }
        } else if let Some(key) = &rule.key {
            c.ensure(
                raw.keys.iter().any(|k| &k.id == key),
                format!("{rpath}.key"),
                format!("no key with id `{key}` is declared under [[keys]]"),
            );
            rules.push(Rule::key(&rule.name, key, &rule.model));
        } else if let Some(meta) = &rule.metadata {
            match meta.iter().next() {
                Some((k, v)) if meta.len() == 1 => {
                    rules.push(Rule::metadata(&rule.name, k, v, &rule.model));
                }
                _ => c.err(
                    format!("{rpath}.metadata"),
                    "give exactly one `name = \"value\"` pair",
                ),
            }
        }
    }
    // Building the router checks that every candidate but the last has a head to score it.
    if candidates.len() == r.candidates.len() {
        let classifier = router
            .as_ref()
            .map(|r| r.artifact.classifier())
            .unwrap_or_else(|| switchyard_route::Classifier::new(Default::default(), Vec::new()));
        if let Err(e) =
            switchyard_route::Router::new(candidates.clone(), Vec::new(), classifier, bars)
        {
            let at = r
                .candidates
                .iter()
                .position(|cand| matches!(&e, switchyard_route::RouteError::MissingHead { model, .. } if model == &cand.model))
                .map_or_else(|| format!("{path}.candidates"), |i| format!("{path}.candidates[{i}].head"));
            let heads: Vec<String> = router
                .as_ref()
                .map(|r| r.artifact.heads.iter().map(|h| h.model.clone()).collect())
                .unwrap_or_default();
            let hint = if router.is_none() {
                "; set `router` to a trained artifact, or route with rules only by listing one candidate".to_owned()
            } else {
                format!("; the artifact's heads: {}", heads.join(", "))
            };
            c.err(at, format!("{e}{hint}"));
        }
    }
    let own = r.cache.as_ref();
    let base = cache_defaults.unwrap_or(CachePolicySpec {
        enabled: false,
        semantic: false,
        threshold: 0.9,
        ttl: Duration::from_secs(3600),
        allow_temperature: false,
    });
    if own.is_some() && cache_defaults.is_none() {
        c.err(
            format!("{path}.cache"),
            "add a [cache] section to turn the cache on; routes only adjust it",
        );
    }
    let cache = CachePolicySpec {
        enabled: own.and_then(|o| o.enabled).unwrap_or(base.enabled),
        semantic: own.and_then(|o| o.semantic).unwrap_or(base.semantic),
        threshold: own.and_then(|o| o.threshold).unwrap_or(base.threshold),
        ttl: own
            .and_then(|o| o.ttl_secs)
            .map_or(base.ttl, Duration::from_secs),
        allow_temperature: own
            .and_then(|o| o.allow_temperature)
            .unwrap_or(base.allow_temperature),
    };
    check_cache_policy(c, &format!("{path}.cache"), &cache);
    let rc = &r.recalibrate;
    let rpath = format!("{path}.recalibrate");
    c.ensure(
        rc.interval_secs > 0,
        format!("{rpath}.interval_secs"),
        "must be greater than 0",
    );
    c.ensure(
        rc.window_hours > 0,
        format!("{rpath}.window_hours"),
        "must be greater than 0",
    );
    c.ensure(
        rc.min_feedback > 0,
        format!("{rpath}.min_feedback"),
        "must be at least 1",
    );
    for (field, v) in [
        ("step", rc.step),
        ("max_shift", rc.max_shift),
        ("target_cheap", rc.target_cheap),
        ("target_balanced", rc.target_balanced),
        ("margin", rc.margin),
    ] {
        c.ensure(
            (0.0..=1.0).contains(&v),
            format!("{rpath}.{field}"),
            "must be between 0 and 1",
        );
    }
    let recalibrate = (rc.enabled && router.is_some()).then(|| RecalibrateSpec {
        interval: Duration::from_secs(rc.interval_secs),
        window: Duration::from_secs(rc.window_hours.saturating_mul(3600)),
        calibration: CalibrationConfig {
            min_feedback: rc.min_feedback,
            step: rc.step,
            max_shift: rc.max_shift,
            target_cheap: rc.target_cheap,
            target_balanced: rc.target_balanced,
            margin: rc.margin,
        },
    });
    if let Some(gp) = &r.guard_policy {
        c.ensure(
            raw.guard_policies.contains_key(gp),
            format!("{path}.guard_policy"),
            format!("no guard policy `{gp}` is declared under [guard_policies]"),
        );
    }
    named_ok.then(|| RouteSpec {
        name: name.to_owned(),
        candidates,
        router,
        default_policy,
        bars,
        rules,
        cache,
        recalibrate,
        guard_policy: r.guard_policy.clone(),
    })
}

fn usd_to_nanos(c: &mut Checker, path: &str, usd: Option<f64>) -> Option<u64> {
    let usd = usd?;
    if !c.ensure(
        (0.0..1e9).contains(&usd),
        path,
        "must be a dollar amount >= 0",
    ) {
        return None;
    }
    Some((usd * 1e9).round() as u64)
}

fn key_secret(
    c: &mut Checker,
    path: &str,
    sha: Option<&str>,
    env: Option<&str>,
) -> Option<KeySecret> {
    match (sha, env) {
        (Some(h), None) => match hex::decode(h) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&bytes);
                Some(KeySecret::Sha256(out))
            }
            _ => {
                c.err(
                    format!("{path}.secret_sha256"),
                    "must be 64 hex digits (`switchyard keys hash` prints it for a key)",
                );
                None
            }
        },
        (None, Some(e)) => {
            env_name(c, &format!("{path}.secret_env"), &Some(e.to_owned()));
            Some(KeySecret::Env(e.to_owned()))
        }
        _ => {
            c.err(path, "give exactly one of `secret_sha256`, `secret_env`");
            None
        }
    }
}
