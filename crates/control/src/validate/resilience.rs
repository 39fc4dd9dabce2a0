//! `[resilience]`: timeouts, attempts, backoff and the retry budget, and the circuit breaker
//! policy (`[resilience.breaker]`, a provider's `breaker`).

use std::time::Duration;

use switchyard_resilience::{Backoff, BreakerPolicy};

use super::checker::Checker;
use crate::raw::{RawBreaker, RawResilience};
use crate::spec::{ResilienceSpec, RetryBudgetSpec};

/// The top level alone, so that its own mistakes are reported at its own lines; models merge
/// it with their overrides, providers' breakers with theirs.
pub(super) fn top_level(c: &mut Checker, raw: &RawResilience) -> RetryBudgetSpec {
    resilience(c, "resilience", &RawResilience::default(), raw);
    let retry_budget = RetryBudgetSpec {
        percent: raw.retry_budget_percent.unwrap_or(20.0),
        min_per_sec: raw.retry_budget_min_per_sec.unwrap_or(10),
    };
    c.ensure(
        (0.0..=1000.0).contains(&retry_budget.percent),
        "resilience.retry_budget_percent",
        "must be between 0 and 1000",
    );
    breaker_policy(
        c,
        "resilience.breaker",
        &RawBreaker::default(),
        &raw.breaker,
    );
    retry_budget
}

pub(super) fn resilience(
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
pub(super) fn breaker_policy(
    c: &mut Checker,
    path: &str,
    bb: &RawBreaker,
    ob: &RawBreaker,
) -> BreakerPolicy {
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
