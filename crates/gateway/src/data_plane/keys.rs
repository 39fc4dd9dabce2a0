//! Virtual keys: who is calling, what they may use, and how much (requests and tokens per
//! minute, dollars per day and month).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{Datelike, TimeZone, Utc};
use switchyard_control::{hash_key, KeySecret, KeySpec, ModelAccess, Price};
use switchyard_resilience::{SpendBudget, TokenBucket};

use crate::error::{ErrorKind, GatewayError};

pub struct KeyState {
    pub id: String,
    pub tenant: String,
    pub models: ModelAccess,
    pub route_policy: Option<switchyard_control::Policy>,
    pub guard_policy: Option<String>,
    limits: Mutex<Limits>,
    limits_output: bool,
}

struct Limits {
    rpm: Option<TokenBucket>,
    tpm: Option<TokenBucket>,
    daily: Option<SpendBudget>,
    monthly: Option<SpendBudget>,
}

/// The UTC calendar periods budgets are counted in, as keys (20261126, 202611) with their
/// start times and the time the current day and month end.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub day: u32,
    pub month: u32,
    pub day_start_ms: i64,
    pub month_start_ms: i64,
    pub until_next_day: Duration,
    pub until_next_month: Duration,
}

impl Periods {
    pub fn now() -> Self {
        Self::at(Utc::now())
    }

    pub fn at(now: chrono::DateTime<Utc>) -> Self {
        let day_start = Utc
            .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
            .single()
            .unwrap_or(now);
        let month_start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .unwrap_or(now);
        let next_month = if now.month() == 12 {
            Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0)
        } else {
            Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0)
        }
        .single()
        .unwrap_or(now);
        let until = |t: chrono::DateTime<Utc>| (t - now).to_std().unwrap_or_default();
        Periods {
            day: now.year() as u32 * 10_000 + now.month() * 100 + now.day(),
            month: now.year() as u32 * 100 + now.month(),
            day_start_ms: day_start.timestamp_millis(),
            month_start_ms: month_start.timestamp_millis(),
            until_next_day: until(day_start + chrono::Duration::days(1)),
            until_next_month: until(next_month),
        }
    }
}

/// What admission reserves for a request: the most it can use on any model it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub tokens: u32,
    pub cost_nanos: u64,
}

/// The worst case of a request, reserved at admission and settled with the truth after:
/// 1. the prompt counts at `prompt` tokens, an upper bound (`tokens::prompt_bound`);
/// 2. on each model it may reach (`models`: price and maximum output, if configured) the
///    output counts at the request's cap, else the model's maximum output, else
///    `default_cap`; the request's cap counts at most at the model's maximum, which the
///    provider enforces;
/// 3. the reservation is the largest of these over the models (a retry or a fallback may
///    land on any of them), times `answers`: the answers one request may pay for
///    (regenerations after a failed output guard).
pub fn worst_case(
    prompt: u32,
    cap: Option<u32>,
    models: impl IntoIterator<Item = (Price, Option<u32>)>,
    default_cap: u32,
    answers: u32,
) -> Reservation {
    let mut output = 0u32;
    let mut cost = 0u64;
    for (price, max_output) in models {
        let out = match (cap, max_output) {
            (Some(c), Some(m)) => c.min(m),
            (Some(c), None) => c,
            (None, Some(m)) => m,
            (None, None) => default_cap,
        };
        output = output.max(out);
        cost = cost.max(price.cost_nanos(u64::from(prompt), u64::from(out)));
    }
    Reservation {
        tokens: prompt.saturating_add(output).saturating_mul(answers.max(1)),
        cost_nanos: cost.saturating_mul(u64::from(answers.max(1))),
    }
}

/// One limit of a key as OpenAI's `x-ratelimit-*` headers state it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub limit: u32,
    pub remaining: u32,
    /// Until the limit is back to its full allowance.
    pub reset: Duration,
}

impl Window {
    fn of(bucket: &mut TokenBucket, now: Instant) -> Window {
        let level = bucket.level(now);
        Window {
            limit: bucket.capacity() as u32,
            remaining: level.clamp(0.0, bucket.capacity()) as u32,
            reset: bucket.until_full(now),
        }
    }
}

/// A key's rate limits right after a request was admitted (or refused), for the answer's
/// `x-ratelimit-*` headers; empty for a key without `rpm` and `tpm`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

impl RateLimits {
    fn of(l: &mut Limits, now: Instant) -> RateLimits {
        RateLimits {
            requests: l.rpm.as_mut().map(|b| Window::of(b, now)),
            tokens: l.tpm.as_mut().map(|b| Window::of(b, now)),
        }
    }

    /// OpenAI's headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for (what, window) in [("requests", self.requests), ("tokens", self.tokens)] {
            let Some(w) = window else { continue };
            for (name, value) in [
                ("limit", w.limit.to_string()),
                ("remaining", w.remaining.to_string()),
                ("reset", openai_duration(w.reset)),
            ] {
                let name = HeaderName::try_from(format!("x-ratelimit-{name}-{what}"));
                if let (Ok(n), Ok(v)) = (name, HeaderValue::try_from(value)) {
                    out.push((n, v));
                }
            }
        }
        out
    }
}

/// A duration as OpenAI writes its resets (Go's format, to the millisecond, rounded up):
/// `20ms`, `1s`, `8.64s`, `6m0s`, `1h2m3.5s`.
pub fn openai_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (secs, frac) = (ms / 1_000, ms % 1_000);
    let (h, m, s) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    let mut seconds = s.to_string();
    if frac > 0 {
        let digits = format!("{frac:03}");
        seconds.push('.');
        seconds.push_str(digits.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// A request the key's limits refused, with the limits' state for the answer's headers.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub limits: RateLimits,
}

/// What a request reserved at admission, to be replaced by what it really used.
pub struct Admission {
    key: Arc<KeyState>,
    estimate_tokens: u32,
    estimate_nanos: u64,
    /// The key's rate limits right after this request was admitted.
    pub limits: RateLimits,
}

impl Admission {
    pub fn settle(self, tokens: u32, cost_nanos: u64) {
        let now = now();
        let periods = Periods::now();
        let Ok(mut l) = self.key.limits.lock() else {
            return;
        };
        if let Some(b) = &mut l.tpm {
            b.settle(f64::from(self.estimate_tokens), f64::from(tokens), now);
        }
        if let Some(b) = &mut l.daily {
            b.settle(self.estimate_nanos, cost_nanos, periods.day);
        }
        if let Some(b) = &mut l.monthly {
            b.settle(self.estimate_nanos, cost_nanos, periods.month);
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl KeyState {
    /// `spent` gives what the key already spent since a time (from the store), so budgets
    /// survive restarts.
    pub fn new(spec: &KeySpec, periods: &Periods, spent: &dyn Fn(&str, i64) -> u64) -> Self {
        let now = now();
        KeyState {
            id: spec.id.clone(),
            tenant: spec.tenant.clone(),
            models: spec.models.clone(),
            route_policy: spec.route_policy,
            guard_policy: spec.guard_policy.clone(),
            limits_output: spec.tpm.is_some()
                || spec.budget_daily_nanos.is_some()
                || spec.budget_monthly_nanos.is_some(),
            limits: Mutex::new(Limits {
                rpm: spec.rpm.map(|l| TokenBucket::per_minute(l, now)),
                tpm: spec.tpm.map(|l| TokenBucket::per_minute(l, now)),
                daily: spec.budget_daily_nanos.map(|l| {
                    SpendBudget::new(l, periods.day, spent(&spec.id, periods.day_start_ms))
                }),
                monthly: spec.budget_monthly_nanos.map(|l| {
                    SpendBudget::new(l, periods.month, spent(&spec.id, periods.month_start_ms))
                }),
            }),
        }
    }

    /// Whether the key's limits count tokens or money, so that a request's output must be
    /// capped to what admission reserved.
    pub fn limits_output(&self) -> bool {
        self.limits_output
    }

    /// Admits a request reserving `reservation` (its worst case, [`worst_case`]), or says
    /// which limit stops it and when to retry. Every limit of the key (rpm, tpm, daily and
    /// monthly spend) is checked and reserved in one step under one lock, and nothing is
    /// taken when any of them refuses.
    pub fn admit(self: &Arc<Self>, reservation: Reservation) -> Result<Admission, Box<Refused>> {
        let mut l = self.limits.lock().map_err(|_| {
            Box::new(Refused {
                error: GatewayError::new(
                    ErrorKind::Internal,
                    "internal_error",
                    "key limits unavailable",
                ),
                limits: RateLimits::default(),
            })
        })?;
        let now = now();
        match self.admit_locked(&mut l, reservation.tokens, reservation.cost_nanos, now) {
            Ok(()) => Ok(Admission {
                key: self.clone(),
                estimate_tokens: reservation.tokens,
                estimate_nanos: reservation.cost_nanos,
                limits: RateLimits::of(&mut l, now),
            }),
            Err(error) => Err(Box::new(Refused {
                error,
                limits: RateLimits::of(&mut l, now),
            })),
        }
    }

    fn admit_locked(
        &self,
        l: &mut Limits,
        tokens: u32,
        cost_nanos: u64,
        now: Instant,
    ) -> Result<(), GatewayError> {
        let periods = Periods::now();
        let limited = |what: &str, after: Duration| {
            GatewayError::new(
                ErrorKind::RateLimited,
                "rate_limit_exceeded",
                format!(
                    "rate limit reached for key `{}`: {what}; retry in {:.1}s",
                    self.id,
                    after.as_secs_f64()
                ),
            )
            .with_retry_after(after)
        };
        if let Some(b) = &mut l.rpm {
            b.try_take(1.0, now)
                .map_err(|after| limited("requests per minute", after))?;
        }
        if let Some(b) = &mut l.tpm {
            if let Err(after) = b.try_take(f64::from(tokens), now) {
                if let Some(r) = &mut l.rpm {
                    r.settle(1.0, 0.0, now);
                }
                return Err(limited("tokens per minute", after));
            }
        }
        let over_budget = |period: &str, after: Duration| {
            GatewayError::new(
                ErrorKind::BudgetExceeded,
                "budget_exceeded",
                format!("the {period} spend budget of key `{}` is used up", self.id),
            )
            .with_retry_after(after)
        };
        let mut refusal = None;
        if let Some(b) = &mut l.daily {
            if b.admit(cost_nanos, periods.day).is_err() {
                refusal = Some(over_budget("daily", periods.until_next_day));
            }
        }
        if refusal.is_none() {
            if let Some(b) = &mut l.monthly {
                if b.admit(cost_nanos, periods.month).is_err() {
                    if let Some(d) = &mut l.daily {
                        d.settle(cost_nanos, 0, periods.day);
                    }
                    refusal = Some(over_budget("monthly", periods.until_next_month));
                }
            }
        }
        if let Some(e) = refusal {
            if let Some(r) = &mut l.rpm {
                r.settle(1.0, 0.0, now);
            }
            if let Some(t) = &mut l.tpm {
                t.settle(f64::from(tokens), 0.0, now);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Keys by the SHA-256 of their secret.
pub struct Keyring {
    keys: HashMap<[u8; 32], Arc<KeyState>>,
    admin: Option<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: environment variable {var} (named by secret_env) is not set")]
pub struct MissingKeySecret {
    pub key: String,
    pub var: String,
}

pub fn resolve_secret(
    owner: &str,
    secret: &KeySecret,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<[u8; 32], MissingKeySecret> {
    match secret {
        KeySecret::Sha256(h) => Ok(*h),
        KeySecret::Env(var) => env(var)
            .map(|v| hash_key(&v))
            .ok_or_else(|| MissingKeySecret {
                key: owner.to_owned(),
                var: var.clone(),
            }),
    }
}

impl Keyring {
    pub fn new(keys: HashMap<[u8; 32], Arc<KeyState>>, admin: Option<[u8; 32]>) -> Self {
        Keyring { keys, admin }
    }

    /// The key a request presents as `Authorization: Bearer <key>` (or `x-api-key`).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<KeyState>, GatewayError> {
        let presented = presented_key(headers).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                "missing_api_key",
                "no API key: send `Authorization: Bearer <key>`",
            )
        })?;
        let hash = hash_key(presented);
        if Some(hash) == self.admin {
            return Err(GatewayError::new(
                ErrorKind::Unauthorized,
                "invalid_api_key",
                "the admin key is not accepted on /v1/; use a virtual key",
            ));
        }
        self.keys.get(&hash).cloned().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                "invalid_api_key",
                "the API key is not valid",
            )
        })
    }
}

impl Keyring {
    /// The admin key, for `/admin/v1/`: only the configured admin key is accepted there, never
    /// a virtual key.
    pub fn authenticate_admin(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        self.admit_admin_key(presented_key(headers)).map(|_| ())
    }

    /// Checks a presented admin key (a header's, or the dashboard's sign-in form's); returns
    /// the admin key's hash, which a dashboard session is bound to.
    pub fn admit_admin_key(&self, presented: Option<&str>) -> Result<[u8; 32], GatewayError> {
        let Some(admin) = self.admin else {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                "admin_disabled",
                "this gateway has no admin key ([admin] in the config), so the admin API is off",
            ));
        };
        let presented = presented.map(str::trim).filter(|k| !k.is_empty());
        let presented = presented.ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                "missing_api_key",
                "no admin key: send `Authorization: Bearer <admin key>`",
            )
        })?;
        if hash_key(presented) == admin {
            return Ok(admin);
        }
        Err(GatewayError::new(
            ErrorKind::Unauthorized,
            "invalid_api_key",
            "the admin API accepts only the admin key",
        ))
    }

    /// The admin key's hash; `None` when the admin API is off.
    pub fn admin_hash(&self) -> Option<[u8; 32]> {
        self.admin
    }

    /// Whether the request presents any key (so a dashboard cookie beside it is not consulted).
    pub fn presents_key(headers: &HeaderMap) -> bool {
        presented_key(headers).is_some()
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim())
            .filter(|k| !k.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(tokens: u32, cost_nanos: u64) -> Reservation {
        Reservation { tokens, cost_nanos }
    }

    fn spec(rpm: Option<u32>, tpm: Option<u32>, daily: Option<u64>) -> KeySpec {
        KeySpec {
            id: "k".into(),
            tenant: "t".into(),
            secret: KeySecret::Sha256(hash_key("s")),
            models: ModelAccess::All,
            rpm,
            tpm,
            budget_daily_nanos: daily,
            budget_monthly_nanos: None,
            route_policy: None,
            guard_policy: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_limit_refuses_with_retry_after() {
        let k = Arc::new(KeyState::new(
            &spec(Some(2), None, None),
            &Periods::now(),
            &|_, _| 0,
        ));
        k.admit(r(1, 0)).unwrap().settle(1, 0);
        k.admit(r(1, 0)).unwrap().settle(1, 0);
        let refused = k.admit(r(1, 0)).err().unwrap();
        let e = &refused.error;
        assert_eq!(e.status(), 429);
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        // The refusal states the limit as OpenAI's headers do.
        let w = refused.limits.requests.unwrap();
        assert_eq!(
            (w.limit, w.remaining, w.reset),
            (2, 0, Duration::from_secs(60))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(k.admit(r(1, 0)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_by_a_later_limit_takes_nothing() {
        // The day's budget is already spent: the budget, checked after rpm and tpm, refuses.
        let k = Arc::new(KeyState::new(
            &spec(Some(10), Some(100), Some(1_000)),
            &Periods::now(),
            &|_, _| 1_000,
        ));
        for _ in 0..3 {
            let refused = k.admit(r(40, 5)).err().unwrap();
            assert_eq!(refused.error.code, Some("budget_exceeded"));
            // Nothing was taken from rpm or tpm.
            let (requests, tokens) = (
                refused.limits.requests.unwrap(),
                refused.limits.tokens.unwrap(),
            );
            assert_eq!((requests.remaining, tokens.remaining), (10, 100));
        }
        // A refusal by tpm gives back the request rpm had taken.
        let k = Arc::new(KeyState::new(
            &spec(Some(10), Some(100), None),
            &Periods::now(),
            &|_, _| 0,
        ));
        k.admit(r(100, 0)).unwrap();
        let refused = k.admit(r(50, 0)).err().unwrap();
        assert_eq!(refused.limits.requests.unwrap().remaining, 9);
    }

    #[test]
    fn budget_counts_spend_already_stored() {
        let spent = |already: u64| {
            Arc::new(KeyState::new(
                &spec(None, None, Some(1_000)),
                &Periods::now(),
                &move |_, _| already,
            ))
        };
        let e = spent(1_000).admit(r(1, 20)).err().unwrap().error;
        assert_eq!(e.code, Some("budget_exceeded"));
        // While something is left, a request is admitted whole, however large its worst case.
        let k = spent(990);
        assert!(k.admit(r(1, 5_000)).is_ok());
        assert!(
            k.admit(r(1, 1)).is_err(),
            "the first reservation took the rest"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn admission_states_the_limits_after_this_request() {
        let k = Arc::new(KeyState::new(
            &spec(Some(60), Some(6_000), None),
            &Periods::now(),
            &|_, _| 0,
        ));
        let a = k.admit(r(600, 0)).unwrap();
        let requests = a.limits.requests.unwrap();
        let tokens = a.limits.tokens.unwrap();
        assert_eq!((requests.limit, requests.remaining), (60, 59));
        assert_eq!(requests.reset, Duration::from_secs(1));
        assert_eq!((tokens.limit, tokens.remaining), (6_000, 5_400));
        assert_eq!(tokens.reset, Duration::from_secs(6));
        let names: Vec<String> = a
            .limits
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "x-ratelimit-limit-requests: 60",
                "x-ratelimit-remaining-requests: 59",
                "x-ratelimit-reset-requests: 1s",
                "x-ratelimit-limit-tokens: 6000",
                "x-ratelimit-remaining-tokens: 5400",
                "x-ratelimit-reset-tokens: 6s",
            ]
        );
        // A key without rpm and tpm states nothing.
        let k = Arc::new(KeyState::new(
            &spec(None, None, Some(10)),
            &Periods::now(),
            &|_, _| 0,
        ));
        assert!(k.admit(r(1, 0)).unwrap().limits.headers().is_empty());
        assert!(k.limits_output());
    }

    #[test]
    fn durations_as_openai_writes_them() {
        for (ms, text) in [
            (0, "0s"),
            (20, "20ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (8_640, "8.64s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (3_723_500, "1h2m3.5s"),
        ] {
            assert_eq!(openai_duration(Duration::from_millis(ms)), text);
        }
        assert_eq!(
            openai_duration(Duration::from_micros(1)),
            "1ms",
            "rounded up"
        );
    }

    fn price(input: u64, output: u64) -> Price {
        Price {
            input_nanos_per_mtok: input,
            output_nanos_per_mtok: output,
        }
    }

    #[test]
    fn the_worst_case_takes_the_dearest_model_and_the_largest_output() {
        let cheap = (price(1_000, 2_000), Some(16_000));
        let dear = (price(5_000, 15_000), Some(1_000));
        let unknown = (price(1_000, 4_000), None);
        // No cap from the caller: each model's maximum, else the default.
        let w = worst_case(100, None, [cheap, dear, unknown], 4_096, 1);
        assert_eq!(w.tokens, 100 + 16_000);
        // 100 * 1,000 + 16,000 * 2,000 nano-USD per million tokens on the cheap model is the
        // largest (32,100 against 15,500 and 16,484).
        assert_eq!(w.cost_nanos, 32);
        // The caller's cap, never above what a model can produce.
        let w = worst_case(100, Some(2_000), [cheap, dear], 4_096, 1);
        assert_eq!(w.tokens, 2_100);
        // The dear model's 1,000 tokens (15,500) against the cheap one's 2,000 (4,100).
        assert_eq!(w.cost_nanos, 16);
        // Two answers paid for (an output guard's regeneration): twice the worst case.
        let twice = worst_case(100, Some(2_000), [cheap, dear], 4_096, 2);
        assert_eq!(
            (twice.tokens, twice.cost_nanos),
            (2 * w.tokens, 2 * w.cost_nanos)
        );
    }

    proptest! {
        /// Whatever model of the set answers, with whatever usage it may produce (a prompt up
        /// to the bound, an output up to the cap it enforces), the cost and the tokens are
        /// within the reservation.
        #[test]
        fn no_reachable_outcome_costs_more_than_the_reservation(
            prompt in 0u32..200_000,
            cap in proptest::option::of(1u32..100_000),
            models in proptest::collection::vec((0u64..100_000_000, 0u64..100_000_000, proptest::option::of(1u32..100_000)), 1..6),
            default_cap in 1u32..100_000,
            pick in any::<proptest::sample::Index>(),
            used in (0.0f64..=1.0, 0.0f64..=1.0),
        ) {
            let set: Vec<(Price, Option<u32>)> = models.iter().map(|(i, o, m)| (price(*i, *o), *m)).collect();
            let w = worst_case(prompt, cap, set.clone(), default_cap, 1);
            let (p, max_output) = set[pick.index(set.len())];
            let limit = match (cap, max_output) {
                (Some(c), Some(m)) => c.min(m),
                (Some(c), None) => c,
                (None, Some(m)) => m,
                (None, None) => default_cap,
            };
            let prompt_used = (f64::from(prompt) * used.0) as u32;
            let output_used = (f64::from(limit) * used.1) as u32;
            prop_assert!(p.cost_nanos(u64::from(prompt_used), u64::from(output_used)) <= w.cost_nanos);
            prop_assert!(prompt_used + output_used <= w.tokens);
        }
    }

    #[test]
    fn periods_roll_at_utc_midnight_and_month_end() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        let p = Periods::at(t);
        assert_eq!((p.day, p.month), (20261231, 202612));
        assert_eq!(p.until_next_day, Duration::from_secs(3600));
        assert_eq!(p.until_next_month, Duration::from_secs(3600));
    }

    #[test]
    fn bearer_and_x_api_key() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer  sk-1 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-1"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "sk-2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("sk-2"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }
}
