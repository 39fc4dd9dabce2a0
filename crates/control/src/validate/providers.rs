//! `[providers]`: the upstream APIs and the simulator, each with its breaker policy.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use switchyard_resilience::BreakerPolicy;

use super::checker::Checker;
use super::cloud;
use super::resilience::breaker_policy;
use super::values::{env_name, http_url};
use crate::locate::key_segment;
use crate::name::{valid_name, NAME_RULE};
use crate::raw::{RawConfig, RawDist, RawOpenAi, RawProvider, RawSimEngine, RawSimModel};
use crate::spec::{
    AnthropicSpec, BedrockSpec, Distribution, EngineKind, EngineSpec, OpenAiSpec, ProviderSpec,
    SimModelSpec, SimRule, SimRuleAction, SimSpec,
};

/// Every provider by name, and its breaker policy (its own fields over the top level's).
pub(super) fn providers(
    c: &mut Checker,
    raw: &RawConfig,
) -> (
    BTreeMap<String, ProviderSpec>,
    BTreeMap<String, BreakerPolicy>,
) {
    let mut providers = BTreeMap::new();
    let mut breakers = BTreeMap::new();
    for (name, p) in &raw.providers {
        let path = format!("providers.{}", key_segment(name));
        c.ensure(valid_name(name), &path, NAME_RULE);
        let own = match p {
            RawProvider::Openai(o) => &o.breaker,
            RawProvider::Anthropic(a) => &a.breaker,
            RawProvider::Bedrock(b) => &b.breaker,
            RawProvider::Sim(s) => &s.breaker,
            RawProvider::Azure(a) => &a.breaker,
            RawProvider::Gemini(g) => &g.breaker,
            RawProvider::Vertex(v) => &v.breaker,
        };
        breakers.insert(
            name.clone(),
            breaker_policy(c, &format!("{path}.breaker"), &raw.resilience.breaker, own),
        );
        if let Some(spec) = provider(c, &path, p) {
            providers.insert(name.clone(), spec);
        }
    }
    (providers, breakers)
}

fn provider(c: &mut Checker, path: &str, p: &RawProvider) -> Option<ProviderSpec> {
    match p {
        RawProvider::Azure(a) => cloud::azure(c, path, a).map(ProviderSpec::Azure),
        RawProvider::Gemini(g) => Some(ProviderSpec::Gemini(cloud::gemini(c, path, g))),
        RawProvider::Vertex(v) => Some(ProviderSpec::Vertex(cloud::vertex(c, path, v))),
        RawProvider::Openai(o) => {
            env_name(c, &format!("{path}.api_key_env"), &o.api_key_env);
            let base_url = http_url(c, &format!("{path}.base_url"), &o.base_url);
            let engine = engine(c, path, o, &base_url);
            Some(ProviderSpec::OpenAi(OpenAiSpec {
                base_url,
                api_key_env: o.api_key_env.clone(),
                headers: o.headers.clone().into_iter().collect(),
                connect_timeout: Duration::from_millis(o.connect_timeout_ms),
                engine,
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
        RawProvider::Bedrock(b) => {
            if let Some(region) = &b.region {
                c.ensure(
                    !region.is_empty()
                        && region
                            .bytes()
                            .all(|x| x.is_ascii_alphanumeric() || x == b'-'),
                    format!("{path}.region"),
                    "an AWS region such as \"us-east-1\"",
                );
            }
            Some(ProviderSpec::Bedrock(BedrockSpec {
                region: b.region.clone(),
                base_url: b
                    .base_url
                    .as_ref()
                    .map(|u| http_url(c, &format!("{path}.base_url"), u)),
                profile: b.profile.clone(),
                headers: b.headers.clone().into_iter().collect(),
                connect_timeout: Duration::from_millis(b.connect_timeout_ms),
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

/// How often an engine's metrics may be read: no faster than every 50 ms (each read costs the
/// engine a scrape), no slower than every minute (older load is no guide).
const POLL_MS: std::ops::RangeInclusive<u64> = 50..=60_000;
const DEFAULT_POLL_MS: u64 = 250;

/// An `openai` provider's `engine`, `metrics_url` and `metrics_poll_ms`.
fn engine(c: &mut Checker, path: &str, o: &RawOpenAi, base_url: &str) -> Option<EngineSpec> {
    let Some(name) = &o.engine else {
        for (field, given) in [
            ("metrics_url", o.metrics_url.is_some()),
            ("metrics_poll_ms", o.metrics_poll_ms.is_some()),
            ("priority_scheduling", o.priority_scheduling.is_some()),
        ] {
            c.ensure(
                !given,
                format!("{path}.{field}"),
                "only read with `engine` (vllm, llamacpp, tgi or sglang): name the engine",
            );
        }
        return None;
    };
    let kind = EngineKind::parse(name);
    c.ensure(
        kind.is_some(),
        format!("{path}.engine"),
        format!("`{name}` is not one of \"vllm\", \"llamacpp\", \"tgi\", \"sglang\""),
    );
    let priority_scheduling = o.priority_scheduling.unwrap_or(false);
    c.ensure(
        !priority_scheduling || kind.is_none_or(|k| k == EngineKind::Vllm),
        format!("{path}.priority_scheduling"),
        "only vLLM takes a request priority (`engine = \"vllm\"`)",
    );
    let poll_ms = o.metrics_poll_ms.unwrap_or(DEFAULT_POLL_MS);
    c.within(poll_ms, POLL_MS, format!("{path}.metrics_poll_ms"));
    let metrics_url = match &o.metrics_url {
        Some(url) => http_url(c, &format!("{path}.metrics_url"), url),
        None => match url::Url::parse(base_url) {
            Ok(u) => format!("{}/metrics", u.origin().ascii_serialization()),
            // The base URL's own error is reported already.
            Err(_) => String::new(),
        },
    };
    Some(EngineSpec {
        kind: kind?,
        metrics_url,
        poll: Duration::from_millis(poll_ms),
        priority_scheduling,
    })
}

/// A simulated engine: positive slots and KV budget, finite non-negative times.
fn sim_engine(c: &mut Checker, path: &str, e: &RawSimEngine) -> switchyard_engine::Params {
    c.within(e.slots, 1..=4096, format!("{path}.slots"));
    c.ensure(
        e.kv_tokens > 0,
        format!("{path}.kv_tokens"),
        "must be greater than 0",
    );
    let mut ms = |field: &str, v: f64, per: f64| {
        let ok = v.is_finite() && (0.0..=3_600_000.0).contains(&v);
        c.ensure(
            ok,
            format!("{path}.{field}"),
            "must be a number of milliseconds >= 0",
        );
        if ok {
            Duration::from_secs_f64(v / per / 1000.0)
        } else {
            Duration::ZERO
        }
    };
    switchyard_engine::Params {
        slots: e.slots,
        kv_tokens: e.kv_tokens,
        prefill_base: ms("prefill_ms", e.prefill_ms, 1.0),
        prefill_per_token: ms(
            "prefill_ms_per_1k_tokens",
            e.prefill_ms_per_1k_tokens,
            1000.0,
        ),
        decode_base: ms("decode_ms", e.decode_ms, 1.0),
        decode_per_sequence: ms("decode_ms_per_sequence", e.decode_ms_per_sequence, 1.0),
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
        engine: m
            .engine
            .as_ref()
            .map(|e| sim_engine(c, &format!("{path}.engine"), e)),
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
