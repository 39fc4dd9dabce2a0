//! Virtual keys: who is calling, what they may use, and how much (requests and tokens per
//! minute, dollars per day and month).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use switchyard_control::{hash_key, KeySecret, KeySpec, ModelAccess, Price};

pub use crate::data_plane::counters::{
    openai_duration, Admitted, Counters, Periods, RateLimits, Reservation, Ticket, Window,
};
use crate::data_plane::counters::{InProcessCounters, Limit, Refusal};
use crate::error::{ErrorKind, GatewayError};

pub struct KeyState {
    pub id: String,
    pub tenant: String,
    pub models: ModelAccess,
    pub route_policy: Option<switchyard_control::Policy>,
    pub guard_policy: Option<String>,
    /// The priority class of its requests without a header, and the highest they may take.
    pub priority: switchyard_control::KeyPriority,
    /// Its limits' counts, in this process or shared by the replicas.
    counters: Box<dyn Counters>,
    limits_output: bool,
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

/// A request the key's limits refused, with the limits' state for the answer's headers.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub limits: RateLimits,
}

/// What a request reserved at admission, to be replaced by what it really used.
pub struct Admission {
    key: Arc<KeyState>,
    reserved: Reservation,
    ticket: Ticket,
    /// The key's rate limits right after this request was admitted.
    pub limits: RateLimits,
}

impl Admission {
    pub fn settle(self, tokens: u32, cost_nanos: u64) {
        let used = Reservation { tokens, cost_nanos };
        self.key.counters.settle(self.ticket, self.reserved, used);
    }
}

impl KeyState {
    /// A key whose limits count in this process. `spent` gives what the key already spent
    /// since a time (from the store), so budgets survive restarts.
    pub fn new(spec: &KeySpec, periods: &Periods, spent: &dyn Fn(&str, i64) -> u64) -> Self {
        Self::with_counters(spec, Box::new(InProcessCounters::new(spec, periods, spent)))
    }

    /// A key whose limits count in `counters` (shared by replicas, for one).
    pub fn with_counters(spec: &KeySpec, counters: Box<dyn Counters>) -> Self {
        KeyState {
            id: spec.id.clone(),
            tenant: spec.tenant.clone(),
            models: spec.models.clone(),
            route_policy: spec.route_policy,
            guard_policy: spec.guard_policy.clone(),
            priority: spec.priority,
            limits_output: spec.tpm.is_some()
                || spec.budget_daily_nanos.is_some()
                || spec.budget_monthly_nanos.is_some(),
            counters,
        }
    }

    /// Whether the key's limits count tokens or money, so that a request's output must be
    /// capped to what admission reserved.
    pub fn limits_output(&self) -> bool {
        self.limits_output
    }

    /// Admits a request reserving `reservation` (its worst case, [`worst_case`]), or says
    /// which limit stops it and when to retry. Every limit of the key (rpm, tpm, daily and
    /// monthly spend) is checked and reserved in one step ([`Counters::reserve`]), and
    /// nothing is taken when any of them refuses.
    pub async fn reserve(
        self: &Arc<Self>,
        reservation: Reservation,
    ) -> Result<Admission, Box<Refused>> {
        let reserved = self.counters.reserve(reservation).await;
        self.admission(reservation, reserved)
    }

    fn admission(
        self: &Arc<Self>,
        reservation: Reservation,
        reserved: Result<Admitted, Refusal>,
    ) -> Result<Admission, Box<Refused>> {
        match reserved {
            Ok(Admitted { limits, ticket }) => Ok(Admission {
                key: self.clone(),
                reserved: reservation,
                ticket,
                limits,
            }),
            Err(refusal) => Err(Box::new(self.refused(refusal))),
        }
    }

    /// A refusal as the client reads it: which limit, and when to retry.
    fn refused(&self, refusal: Refusal) -> Refused {
        let (limit, after, limits) = match refusal {
            Refusal::Limited {
                limit,
                retry_after,
                limits,
            } => (limit, retry_after, limits),
            Refusal::Unavailable => {
                return Refused {
                    error: GatewayError::new(
                        ErrorKind::Internal,
                        "internal_error",
                        "key limits unavailable",
                    ),
                    limits: RateLimits::default(),
                }
            }
            Refusal::SharedUnavailable { retry_after } => {
                let message = format!(
                    "the limits of key `{}` cannot be checked now (their shared counters are \
                     unreachable); retry in {:.1}s",
                    self.id,
                    retry_after.as_secs_f64()
                );
                return Refused {
                    error: GatewayError::new(ErrorKind::Unavailable, "limits_unavailable", message)
                        .with_retry_after(retry_after),
                    limits: RateLimits::default(),
                };
            }
        };
        let limited = |what: &str| {
            GatewayError::new(
                ErrorKind::RateLimited,
                "rate_limit_exceeded",
                format!(
                    "rate limit reached for key `{}`: {what}; retry in {:.1}s",
                    self.id,
                    after.as_secs_f64()
                ),
            )
        };
        let over_budget = |period: &str| {
            GatewayError::new(
                ErrorKind::BudgetExceeded,
                "budget_exceeded",
                format!("the {period} spend budget of key `{}` is used up", self.id),
            )
        };
        let error = match limit {
            Limit::RequestsPerMinute => limited("requests per minute"),
            Limit::TokensPerMinute => limited("tokens per minute"),
            Limit::DailyBudget => over_budget("daily"),
            Limit::MonthlyBudget => over_budget("monthly"),
        };
        Refused {
            error: error.with_retry_after(after),
            limits,
        }
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
        self.by_hash(&hash)
    }

    /// The key whose secret has SHA-256 `hash`: a Batch API line runs as the key that created
    /// its batch, checked again against the keys in force (a key removed since is refused).
    pub fn by_hash(&self, hash: &[u8; 32]) -> Result<Arc<KeyState>, GatewayError> {
        self.keys.get(hash).cloned().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Unauthorized,
                "invalid_api_key",
                "the API key is not valid",
            )
        })
    }

    /// The SHA-256 of the key a request presents, as the config holds keys.
    pub fn presented_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
        presented_key(headers).map(hash_key)
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
    use std::time::Duration;

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
            priority: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_limit_refuses_with_retry_after() {
        let k = Arc::new(KeyState::new(
            &spec(Some(2), None, None),
            &Periods::now(),
            &|_, _| 0,
        ));
        k.reserve(r(1, 0)).await.unwrap().settle(1, 0);
        k.reserve(r(1, 0)).await.unwrap().settle(1, 0);
        let refused = k.reserve(r(1, 0)).await.err().unwrap();
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
        assert!(k.reserve(r(1, 0)).await.is_ok());
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
            let refused = k.reserve(r(40, 5)).await.err().unwrap();
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
        k.reserve(r(100, 0)).await.unwrap();
        let refused = k.reserve(r(50, 0)).await.err().unwrap();
        assert_eq!(refused.limits.requests.unwrap().remaining, 9);
    }

    /// Counters that refuse with a given limit, or answer only after a wait, and note what
    /// they are asked to settle: what another implementation of the seam could do.
    struct Scripted {
        refuse: Option<Limit>,
        wait: bool,
        settled: Settled,
    }

    type Settled = Arc<std::sync::Mutex<Vec<(Reservation, Reservation)>>>;

    #[async_trait::async_trait]
    impl Counters for Scripted {
        async fn reserve(&self, _: Reservation) -> Result<Admitted, Refusal> {
            if self.wait {
                tokio::task::yield_now().await;
            }
            match self.refuse {
                Some(limit) => Err(Refusal::Limited {
                    limit,
                    retry_after: Duration::from_secs(7),
                    limits: RateLimits::default(),
                }),
                None => Ok(Admitted::default()),
            }
        }

        fn settle(&self, _: Ticket, reserved: Reservation, used: Reservation) {
            self.settled.lock().unwrap().push((reserved, used));
        }
    }

    fn scripted(refuse: Option<Limit>, wait: bool) -> (Arc<KeyState>, Settled) {
        let settled = Settled::default();
        let counters = Scripted {
            refuse,
            wait,
            settled: settled.clone(),
        };
        let key = KeyState::with_counters(&spec(None, Some(1), None), Box::new(counters));
        (Arc::new(key), settled)
    }

    #[tokio::test]
    async fn any_counters_refuse_in_the_clients_words_and_settle_what_was_reserved() {
        for (limit, status, text) in [
            (
                Limit::RequestsPerMinute,
                429,
                "rate limit reached for key `k`: requests per minute; retry in 7.0s",
            ),
            (
                Limit::TokensPerMinute,
                429,
                "rate limit reached for key `k`: tokens per minute; retry in 7.0s",
            ),
            (
                Limit::DailyBudget,
                429,
                "the daily spend budget of key `k` is used up",
            ),
            (
                Limit::MonthlyBudget,
                429,
                "the monthly spend budget of key `k` is used up",
            ),
        ] {
            let e = scripted(Some(limit), true)
                .0
                .reserve(r(1, 1))
                .await
                .err()
                .unwrap()
                .error;
            assert_eq!(e.status(), status);
            assert_eq!(e.message, text);
            assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        }
        let (k, settled) = scripted(None, true);
        k.reserve(r(40, 9)).await.unwrap().settle(12, 3);
        assert_eq!(*settled.lock().unwrap(), [(r(40, 9), r(12, 3))]);
    }

    #[tokio::test(start_paused = true)]
    async fn in_process_reserves_refuses_and_settles_through_the_seam() {
        let periods = Periods::now();
        let asked = std::cell::Cell::new(0);
        let spent = |_: &str, since: i64| {
            asked.set(asked.get() + 1);
            assert_eq!(
                since, periods.day_start_ms,
                "only the day's budget is asked"
            );
            900
        };
        let c: Box<dyn Counters> = Box::new(InProcessCounters::new(
            &spec(Some(2), Some(100), Some(1_000)),
            &periods,
            &spent,
        ));
        assert_eq!(asked.get(), 1);
        let limits = c.reserve(r(80, 50)).await.unwrap().limits;
        assert_eq!(limits.requests.map(|w| w.remaining), Some(1));
        assert_eq!(limits.tokens.map(|w| w.remaining), Some(20));
        // Tokens refuse: 80 of 100 are reserved; nothing else is taken.
        let Err(Refusal::Limited {
            limit,
            retry_after,
            limits,
        }) = c.reserve(r(30, 1)).await
        else {
            panic!("tokens per minute refuse");
        };
        assert_eq!(limit, Limit::TokensPerMinute);
        assert_eq!(retry_after, Duration::from_secs(6));
        assert_eq!(limits.requests.map(|w| w.remaining), Some(1));
        // Settled at 10 tokens and 100 nano-USD: the day has 1,000 of 1,000 spent.
        c.settle(Ticket::default(), r(80, 50), r(10, 100));
        let Err(Refusal::Limited { limit, limits, .. }) = c.reserve(r(1, 1)).await else {
            panic!("the day's budget refuses");
        };
        assert_eq!(limit, Limit::DailyBudget);
        assert_eq!(limits.tokens.map(|w| w.remaining), Some(90));
    }

    #[tokio::test]
    async fn budget_counts_spend_already_stored() {
        let spent = |already: u64| {
            Arc::new(KeyState::new(
                &spec(None, None, Some(1_000)),
                &Periods::now(),
                &move |_, _| already,
            ))
        };
        let e = spent(1_000).reserve(r(1, 20)).await.err().unwrap().error;
        assert_eq!(e.code, Some("budget_exceeded"));
        // While something is left, a request is admitted whole, however large its worst case.
        let k = spent(990);
        assert!(k.reserve(r(1, 5_000)).await.is_ok());
        assert!(
            k.reserve(r(1, 1)).await.is_err(),
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
        let a = k.reserve(r(600, 0)).await.unwrap();
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
        assert!(k
            .reserve(r(1, 0))
            .await
            .unwrap()
            .limits
            .headers()
            .is_empty());
        assert!(k.limits_output());
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
