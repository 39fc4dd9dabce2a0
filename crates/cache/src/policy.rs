//! Policy helpers: what may be cached, per-route settings, and the caller's cache control.
//!
//! Kept apart from the store so the gateway can decide (and record why) before touching it.

use std::time::Duration;

use switchyard_api::{finish_reason, ChatCompletionRequest, ChatCompletionResponse};

/// Per-route cache settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePolicy {
    /// Cosine similarity a semantic candidate needs before the guard looks at it.
    pub threshold: f32,
    /// How long an entry may be served after it was stored.
    pub ttl: Duration,
    /// Serve and store requests whose temperature is above zero (or unset, which means the
    /// provider's default, 1.0 at OpenAI). Off by default: at temperature > 0 the caller asked
    /// for variety, and a cache would take it away.
    pub allow_temperature: bool,
    /// Whether the semantic tier runs at all; the exact tier always does.
    pub semantic: bool,
    /// Whether the false-hit guard checks semantic candidates. On by default; off only for
    /// the evaluation's comparison.
    pub guard: bool,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        RoutePolicy {
            threshold: 0.90,
            ttl: Duration::from_secs(3600),
            allow_temperature: false,
            semantic: true,
            guard: true,
        }
    }
}

/// The caller's `x-switchyard-cache-control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheControl {
    /// Look up, and store on a miss.
    #[default]
    Normal,
    /// Neither look up nor store.
    Bypass,
    /// Do not look up; store the fresh answer, replacing what was there.
    Refresh,
}

impl CacheControl {
    /// Parses the header value; unknown values are `None` so the gateway can answer 400.
    pub fn parse(v: &str) -> Option<CacheControl> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "normal" | "default" => Some(CacheControl::Normal),
            "bypass" | "no-cache" => Some(CacheControl::Bypass),
            "refresh" => Some(CacheControl::Refresh),
            _ => None,
        }
    }

    pub fn may_lookup(self) -> bool {
        self == CacheControl::Normal
    }

    pub fn may_store(self) -> bool {
        self != CacheControl::Bypass
    }
}

/// Why a request or response is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCacheable {
    #[error("temperature above zero and the route does not allow caching it")]
    Temperature,
    /// Log probabilities describe one sampling, and a cached answer is replayed as a stream
    /// in pieces they no longer match: such requests are neither served nor stored.
    #[error("the request asks for logprobs")]
    Logprobs,
    #[error("the caller sent cache-control: bypass")]
    Bypass,
    #[error("the response has no choices")]
    NoChoices,
    #[error("the response did not finish normally")]
    Unfinished,
}

/// Whether a request may use the cache under `policy`.
pub fn request_cacheable(
    req: &ChatCompletionRequest,
    policy: &RoutePolicy,
) -> Result<(), NotCacheable> {
    // An unset temperature is the provider's default, which is not zero.
    let t = req.temperature.unwrap_or(1.0);
    if t > 0.0 && !policy.allow_temperature {
        return Err(NotCacheable::Temperature);
    }
    if req.wants_logprobs() {
        return Err(NotCacheable::Logprobs);
    }
    Ok(())
}

/// Whether a response is a successful, complete answer worth storing: at least one choice,
/// and every choice stopped by itself, by its length cap, or to call tools (not by a content
/// filter, and not cut off with no reason).
pub fn response_cacheable(resp: &ChatCompletionResponse) -> Result<(), NotCacheable> {
    if resp.choices.is_empty() {
        return Err(NotCacheable::NoChoices);
    }
    let ok = resp.choices.iter().all(|c| {
        matches!(
            c.finish_reason.as_deref(),
            Some(finish_reason::STOP | finish_reason::LENGTH | finish_reason::TOOL_CALLS)
        )
    });
    if ok {
        Ok(())
    } else {
        Err(NotCacheable::Unfinished)
    }
}
