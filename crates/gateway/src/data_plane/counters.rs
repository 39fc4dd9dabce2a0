//! The counters behind a key's limits (requests and tokens per minute, spend per day and
//! month), behind one seam, [`Counters`], so that replicas can share them: today's
//! implementation, [`InProcessCounters`], counts in this process; a shared one (Redis, for a fleet)
//! replaces it per key set through `KeyState::with_counters`.
//!
//! 1. Admission calls [`Counters::reserve`] with the request's worst case
//!    (`keys::worst_case`). Every limit of the key is checked and taken in one atomic step, or
//!    none is (`switchyard_resilience::KeyLimits`); the answer states the rate limits as they
//!    stand after the step, for the `x-ratelimit-*` headers, admitted or refused.
//! 2. When the request ends, the record calls [`Counters::settle`] with the admission's
//!    [`Ticket`], what was reserved and what was really used. The ticket says where the
//!    reservation was counted, for an implementation that counts in more than one place (the
//!    shared counters, or this replica's own share of the limits while they are unreachable).
//!
//! Why `reserve` is async and `settle` is not:
//! - A shared implementation must check and take every replica's count in one step, so
//!   `reserve` costs it a network round trip (one atomic script), and the request must wait
//!   for the answer: a limit judged on a local copy is the limit times the replicas. The
//!   in-process implementation answers on the first poll.
//! - `settle` runs where the request's record is written, which includes `Drop` when a client
//!   hangs up: nothing can be awaited there. Nothing needs to be: the reservation already
//!   holds the room, so settling late only frees it late. A shared implementation queues the
//!   settlement and sends it from a background task; it must not block.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{HeaderName, HeaderValue};
use chrono::{Datelike, TimeZone, Utc};
use switchyard_control::KeySpec;
use switchyard_resilience::{Exceeded, KeyLimits, LimitSpec, Period};

pub use switchyard_resilience::Window;

/// A key's counters: what a replica shares with the others for that key.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Reserves `reservation` (and one request) on every limit of the key in one step, or
    /// takes nothing and says which limit refused. Either way with the rate limits as they
    /// stand after the step.
    async fn reserve(&self, reservation: Reservation) -> Result<Admitted, Refusal>;

    /// Replaces what a request `reserved` with what it `used` (tokens and cost), where its
    /// admission's `ticket` says it was counted. Must not block or wait: it runs where the
    /// request's record is written, also on `Drop`.
    fn settle(&self, ticket: Ticket, reserved: Reservation, used: Reservation);
}

/// What [`Counters::reserve`] took: the rate limits after it (for the headers) and the ticket
/// its settlement hands back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Admitted {
    pub limits: RateLimits,
    pub ticket: Ticket,
}

/// Where a reservation was counted, as its [`Counters`] implementation numbers the places;
/// opaque to everyone else. [`InProcessCounters`] has one place, `Ticket::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticket(pub u64);

/// What admission reserves for a request: the most it can use on any model it may reach.
/// Settling uses the same shape for what it really used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub tokens: u32,
    pub cost_nanos: u64,
}

/// Which of a key's limits refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    RequestsPerMinute,
    TokensPerMinute,
    DailyBudget,
    MonthlyBudget,
}

/// Why [`Counters::reserve`] admitted nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A limit is reached; the request fits again after `retry_after`.
    Limited {
        limit: Limit,
        retry_after: Duration,
        limits: RateLimits,
    },
    /// The counters cannot answer (their lock was poisoned by a panic).
    Unavailable,
    /// The shared counters cannot be reached and the key's limits are set to refuse then
    /// (fail closed); worth a retry after `retry_after`.
    SharedUnavailable { retry_after: Duration },
}

/// A key's rate limits right after a request was admitted (or refused), for the answer's
/// `x-ratelimit-*` headers; empty for a key without `rpm` and `tpm`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

impl RateLimits {
    fn of(l: &mut KeyLimits, now: Instant) -> RateLimits {
        RateLimits {
            requests: l.requests(now),
            tokens: l.tokens(now),
        }
    }

    /// OpenAI's headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        // Static names and integer values: these go on every answer of a limited key, and
        // building the names with `format!` and parsing them was 4% of a request (issue 18).
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
        ];
        let mut out = Vec::with_capacity(6);
        for ([limit, remaining, reset], window) in
            NAMES.into_iter().zip([self.requests, self.tokens])
        {
            let Some(w) = window else { continue };
            out.push((limit, HeaderValue::from(w.limit)));
            out.push((remaining, HeaderValue::from(w.remaining)));
            if let Ok(v) = HeaderValue::try_from(openai_duration(w.reset)) {
                out.push((reset, v));
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

    fn period(&self) -> Period {
        Period {
            day: self.day,
            month: self.month,
        }
    }
}

/// One key's counters in this process: its limits under one lock. Rate limits start full at
/// every build of a pipeline; budgets start from what the store says the key already spent.
pub struct InProcessCounters {
    limits: Mutex<KeyLimits>,
}

impl InProcessCounters {
    /// `spent` gives what the key already spent since a time (from the store), so budgets
    /// survive restarts; it is asked only for the budgets the key has.
    pub fn new(spec: &KeySpec, periods: &Periods, spent: &dyn Fn(&str, i64) -> u64) -> Self {
        let spent_since = |budget: Option<u64>, since: i64| match budget {
            Some(_) => spent(&spec.id, since),
            None => 0,
        };
        let limits = LimitSpec {
            rpm: spec.rpm,
            tpm: spec.tpm,
            daily_nanos: spec.budget_daily_nanos,
            monthly_nanos: spec.budget_monthly_nanos,
        };
        InProcessCounters {
            limits: Mutex::new(KeyLimits::new(
                &limits,
                now(),
                periods.period(),
                spent_since(spec.budget_daily_nanos, periods.day_start_ms),
                spent_since(spec.budget_monthly_nanos, periods.month_start_ms),
            )),
        }
    }

    /// The whole step under the lock; `reserve` only wraps it.
    fn reserve_now(&self, reservation: Reservation) -> Result<Admitted, Refusal> {
        let mut l = self.limits.lock().map_err(|_| Refusal::Unavailable)?;
        let now = now();
        let periods = Periods::now();
        let taken = l.reserve(
            reservation.tokens,
            reservation.cost_nanos,
            now,
            periods.period(),
        );
        let limits = RateLimits::of(&mut l, now);
        let (limit, retry_after) = match taken {
            Ok(()) => {
                return Ok(Admitted {
                    limits,
                    ticket: Ticket::default(),
                })
            }
            Err(Exceeded::Requests(after)) => (Limit::RequestsPerMinute, after),
            Err(Exceeded::Tokens(after)) => (Limit::TokensPerMinute, after),
            Err(Exceeded::Daily) => (Limit::DailyBudget, periods.until_next_day),
            Err(Exceeded::Monthly) => (Limit::MonthlyBudget, periods.until_next_month),
        };
        Err(Refusal::Limited {
            limit,
            retry_after,
            limits,
        })
    }
}

#[async_trait]
impl Counters for InProcessCounters {
    async fn reserve(&self, reservation: Reservation) -> Result<Admitted, Refusal> {
        self.reserve_now(reservation)
    }

    fn settle(&self, _: Ticket, reserved: Reservation, used: Reservation) {
        let now = now();
        let periods = Periods::now();
        // A poisoned lock refused every admission already; nothing is left to settle.
        let Ok(mut l) = self.limits.lock() else {
            return;
        };
        l.settle(
            (reserved.tokens, reserved.cost_nanos),
            (used.tokens, used.cost_nanos),
            now,
            periods.period(),
        );
    }
}

/// The runtime's clock, so tests that pause time control the buckets.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn periods_roll_at_utc_midnight_and_month_end() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        let p = Periods::at(t);
        assert_eq!((p.day, p.month), (20261231, 202612));
        assert_eq!(p.until_next_day, Duration::from_secs(3600));
        assert_eq!(p.until_next_month, Duration::from_secs(3600));
    }
}
