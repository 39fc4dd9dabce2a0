//! Virtual keys: who is calling, what they may use, and how much (requests and tokens per
//! minute, dollars per day and month).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chrono::{Datelike, TimeZone, Utc};
use switchyard_control::{hash_key, KeySecret, KeySpec, ModelAccess};
use switchyard_resilience::{SpendBudget, TokenBucket};

use crate::error::{ErrorKind, GatewayError};

pub struct KeyState {
    pub id: String,
    pub tenant: String,
    pub models: ModelAccess,
    pub route_policy: Option<switchyard_control::Policy>,
    pub guard_policy: Option<String>,
    limits: Mutex<Limits>,
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

/// What a request reserved at admission, to be replaced by what it really used.
pub struct Admission {
    key: Arc<KeyState>,
    estimate_tokens: u32,
    estimate_nanos: u64,
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

    /// Admits a request estimated at `tokens` and `cost_nanos`, or says which limit stops it
    /// and when to retry. Nothing is taken when any limit refuses.
    pub fn admit(
        self: &Arc<Self>,
        tokens: u32,
        cost_nanos: u64,
    ) -> Result<Admission, GatewayError> {
        let now = now();
        let periods = Periods::now();
        let mut l = self.limits.lock().map_err(|_| {
            GatewayError::new(
                ErrorKind::Internal,
                "internal_error",
                "key limits unavailable",
            )
        })?;
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
        Ok(Admission {
            key: self.clone(),
            estimate_tokens: tokens,
            estimate_nanos: cost_nanos,
        })
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
        k.admit(1, 0).unwrap().settle(1, 0);
        k.admit(1, 0).unwrap().settle(1, 0);
        let e = k.admit(1, 0).err().unwrap();
        assert_eq!(e.status(), 429);
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(k.admit(1, 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_by_a_later_limit_takes_nothing() {
        let k = Arc::new(KeyState::new(
            &spec(Some(10), Some(100), Some(1_000)),
            &Periods::now(),
            &|_, _| 0,
        ));
        assert!(k.admit(10, 5_000).is_err(), "over budget");
        // The refused request did not consume rpm or tpm.
        for _ in 0..10 {
            k.admit(10, 0).unwrap().settle(10, 0);
        }
        assert!(k.admit(1, 0).is_err(), "11th request in the minute");
    }

    #[test]
    fn budget_counts_spend_already_stored() {
        let k = Arc::new(KeyState::new(
            &spec(None, None, Some(1_000)),
            &Periods::now(),
            &|_, _| 990,
        ));
        let e = k.admit(1, 20).err().unwrap();
        assert_eq!(e.code, Some("budget_exceeded"));
        assert!(k.admit(1, 10).is_ok());
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
