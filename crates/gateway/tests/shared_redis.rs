//! The state replicas share through Redis, over the real types against a real Redis
//! (`switchyard_testkit::servers::RedisServer`): two links to one server stand for two
//! replicas. Limits and budgets (`RedisCounters`), Redis stopped and started again, the
//! cache's shared tier and the change feed.

#![expect(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use switchyard_control::{hash_key, KeySecret, KeySpec, ModelAccess};
use switchyard_gateway::data_plane::counters::{
    Admitted, Counters, Limit, Periods, Refusal, Reservation, Ticket,
};
use switchyard_gateway::data_plane::shared::{
    names::Names, RedisCounters, RedisSettings, Shared, SharedCounters, WhenDown,
};
use switchyard_store::{RecordStore, RequestRecord, SqliteStore, Store};
use switchyard_testkit::servers::RedisServer;

/// Long enough for anything here that waits on a signal; never a measured wait.
const DEADLINE: Duration = Duration::from_secs(20);

fn redis(test: &str) -> Option<RedisServer> {
    match RedisServer::start() {
        Ok(r) => Some(r),
        Err(e) => {
            e.skip(test);
            None
        }
    }
}

fn settings(when_down: WhenDown) -> RedisSettings {
    RedisSettings {
        when_down,
        // Outages are noticed and recoveries found quickly.
        heartbeat: Duration::from_millis(100),
        ..RedisSettings::default()
    }
}

fn spec(rpm: Option<u32>, tpm: Option<u32>, daily: Option<u64>, monthly: Option<u64>) -> KeySpec {
    KeySpec {
        id: "k".into(),
        tenant: "t".into(),
        secret: KeySecret::Sha256(hash_key("s")),
        models: ModelAccess::All,
        rpm,
        tpm,
        budget_daily_nanos: daily,
        budget_monthly_nanos: monthly,
        route_policy: None,
        guard_policy: None,
        priority: Default::default(),
    }
}

fn r(tokens: u32, cost_nanos: u64) -> Reservation {
    Reservation { tokens, cost_nanos }
}

/// A store in a temporary folder, with `spent` nano-USD already recorded for key `k` today.
fn store(spent: u64) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(dir.path()).unwrap();
    if spent > 0 {
        let record = RequestRecord {
            request_id: "earlier".into(),
            started_at_ms: chrono::Utc::now().timestamp_millis(),
            endpoint: "chat".into(),
            key_id: Some("k".into()),
            status: 200,
            cost_nanos: spent,
            ..RequestRecord::default()
        };
        store.write_batch(&[record]).unwrap();
    }
    (dir, Arc::new(store))
}

/// One replica's shared counters.
async fn replica(
    redis: &RedisServer,
    store: &Arc<dyn Store>,
    when_down: WhenDown,
) -> SharedCounters {
    let shared = Shared::connect(&redis_url(&redis.url()), settings(when_down))
        .await
        .unwrap();
    SharedCounters::new(&shared, store.clone())
}

/// Until `shared` answers again after Redis restarted. A link that was idle through the
/// restart learns of it only from its next command (which fails, and reconnects): one
/// heartbeat now makes that command this one, not a test's request.
async fn back(shared: &Shared) {
    shared.beat().await;
    shared.until_up().await;
}

/// Two replicas that fall back to their share when Redis is down.
async fn two_replicas(
    redis: &RedisServer,
    store: &Arc<dyn Store>,
) -> (SharedCounters, SharedCounters) {
    (
        replica(redis, store, WhenDown::PerReplica).await,
        replica(redis, store, WhenDown::PerReplica).await,
    )
}

/// Runs `n` reservations of `each` at once, alternating between the counters; returns the
/// answers in order.
async fn reserve_all(
    counters: &[Arc<RedisCounters>],
    n: usize,
    each: Reservation,
) -> Vec<Result<Admitted, Refusal>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = counters[i % counters.len()].clone();
            #[expect(
                clippy::disallowed_methods,
                reason = "joined below: in parallel on purpose"
            )]
            tokio::spawn(async move { c.reserve(each).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn admitted(answers: &[Result<Admitted, Refusal>]) -> usize {
    answers.iter().filter(|a| a.is_ok()).count()
}

/// A raw connection to look at what the fleet wrote.
async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn field(redis: &RedisServer, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(&mut raw(redis).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_admit_exactly_the_rpm_between_them() {
    let Some(redis) = redis("two_replicas_admit_exactly_the_rpm_between_them") else {
        return;
    };
    let (_dir, store) = store(0);
    let (a, b) = two_replicas(&redis, &store).await;
    let key = spec(Some(10), None, None, None);
    let both = [Arc::new(a.counters(&key)), Arc::new(b.counters(&key))];
    let answers = reserve_all(&both, 40, r(1, 0)).await;
    assert_eq!(admitted(&answers), 10, "{answers:?}");
    for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
        let Refusal::Limited {
            limit,
            retry_after,
            limits,
        } = refused
        else {
            panic!("{refused:?}");
        };
        assert_eq!(*limit, Limit::RequestsPerMinute);
        // One request refills in 6 s; a little of it has passed on Redis's clock (the bounds
        // leave room for a slow machine, not a measurement).
        assert!(*retry_after <= Duration::from_secs(6), "{retry_after:?}");
        assert!(*retry_after > Duration::from_secs(3), "{retry_after:?}");
        let w = limits.requests.unwrap();
        assert_eq!((w.limit, w.remaining), (10, 0));
    }
    // The headers of an admission state the fleet's count: one replica sees the other's.
    let fresh = spec(Some(60), None, None, None);
    let mut fresh = fresh.clone();
    fresh.id = "other".into();
    let (ka, kb) = (a.counters(&fresh), b.counters(&fresh));
    assert_eq!(
        ka.reserve(r(1, 0))
            .await
            .unwrap()
            .limits
            .requests
            .unwrap()
            .remaining,
        59
    );
    let w = kb.reserve(r(1, 0)).await.unwrap().limits.requests.unwrap();
    assert_eq!((w.limit, w.remaining), (60, 58));
    assert!(
        w.reset > Duration::from_secs(1) && w.reset <= Duration::from_secs(2),
        "{w:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_are_shared_and_settled() {
    let Some(redis) = redis("tokens_per_minute_are_shared_and_settled") else {
        return;
    };
    let (_dir, store) = store(0);
    let (a, b) = two_replicas(&redis, &store).await;
    let key = spec(None, Some(1_000), None, None);
    let both = [Arc::new(a.counters(&key)), Arc::new(b.counters(&key))];
    let answers = reserve_all(&both, 8, r(300, 0)).await;
    assert_eq!(admitted(&answers), 3, "{answers:?}");
    let refused = answers.iter().find_map(|a| a.as_ref().err()).unwrap();
    let Refusal::Limited { limit, limits, .. } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(*limit, Limit::TokensPerMinute);
    // 100 left, and what refilled since (16.7 a second).
    let left = limits.tokens.unwrap().remaining;
    assert!((100..150).contains(&left), "{left}");
    // Each used 100 of its 300: 600 come back, on whichever replica settles.
    for c in [&both[0], &both[0], &both[1]] {
        c.settle(Ticket::default(), r(300, 0), r(100, 0));
    }
    a.flush().await;
    b.flush().await;
    let after = both[1].reserve(r(600, 0)).await.unwrap();
    let left = after.limits.tokens.unwrap().remaining;
    assert!((100..150).contains(&left), "{left}");
    assert!(both[0].reserve(r(300, 0)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_split_over_two_replicas_overshoots_by_at_most_one_worst_case() {
    let Some(redis) =
        redis("a_budget_split_over_two_replicas_overshoots_by_at_most_one_worst_case")
    else {
        return;
    };
    let (_dir, store) = store(0);
    let (a, b) = two_replicas(&redis, &store).await;
    const LIMIT: u64 = 1_000;
    const WORST: u64 = 100;
    let key = spec(None, None, Some(LIMIT), None);
    let both = [Arc::new(a.counters(&key)), Arc::new(b.counters(&key))];
    // 64 requests at once, each settling (at 60 to 100 nano-USD) as soon as it is admitted,
    // so reservations and settlements interleave across the replicas.
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let c = both[(i % 2) as usize].clone();
            #[expect(
                clippy::disallowed_methods,
                reason = "joined below: in parallel on purpose"
            )]
            tokio::spawn(async move {
                let admitted = c.reserve(r(1, WORST)).await.ok()?;
                tokio::task::yield_now().await;
                let cost = WORST - (i % 5) * 10;
                c.settle(admitted.ticket, r(1, WORST), r(1, cost));
                Some(cost)
            })
        })
        .collect();
    let mut spent = 0;
    let mut served = 0;
    for t in tasks {
        if let Some(cost) = t.await.unwrap() {
            spent += cost;
            served += 1;
        }
    }
    a.flush().await;
    b.flush().await;
    assert!(served >= LIMIT / WORST, "{served} served");
    assert!(spent <= LIMIT + WORST, "spent {spent} of {LIMIT}");
    let names = Names::new("switchyard");
    let stored: u64 = field(&redis, &names.limits("k"), "day_spent")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored, spent, "Redis holds what the requests cost");
    assert_eq!(
        field(&redis, &names.limits("k"), "day_reserved")
            .await
            .as_deref(),
        Some("0"),
        "every reservation was settled"
    );
    let over = both[0].reserve(r(1, 1)).await;
    assert_eq!(spent >= LIMIT, over.is_err(), "{over:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_dropped_while_redis_answers_is_given_back() {
    let Some(redis) = redis("a_reservation_dropped_while_redis_answers_is_given_back") else {
        return;
    };
    let (_dir, store) = store(0);
    let a = replica(&redis, &store, WhenDown::PerReplica).await;
    let key = a.counters(&spec(None, None, Some(1_000), None));
    let k = Names::new("switchyard").limits("k");
    // A client hangs up after Redis took the reservation and before the request read the
    // answer. The answer may beat the look at Redis: then that request settles and it is
    // tried again.
    let mut dropped_after_redis_took_it = false;
    for _ in 0..200 {
        let mut request = Box::pin(key.reserve(r(1, 1_000)));
        let mut answered = None;
        while answered.is_none() {
            if let std::task::Poll::Ready(a) = futures::poll!(&mut request) {
                answered = Some(a);
            } else if field(&redis, &k, "day_reserved").await.as_deref() == Some("1000") {
                break;
            }
        }
        match answered {
            Some(a) => key.settle(a.unwrap().ticket, r(1, 1_000), r(1, 0)),
            None => {
                drop(request);
                dropped_after_redis_took_it = true;
            }
        }
        tokio::time::timeout(DEADLINE, async {
            while field(&redis, &k, "day_reserved").await.as_deref() != Some("0") {
                a.flush().await;
            }
        })
        .await
        .unwrap();
        if dropped_after_redis_took_it {
            break;
        }
    }
    assert!(dropped_after_redis_took_it);
    // The whole budget is there for the next request.
    assert!(key.reserve(r(1, 1_000)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_is_seeded_from_the_store_once_when_two_replicas_seed_together() {
    let Some(redis) = redis("spend_is_seeded_from_the_store_once_when_two_replicas_seed_together")
    else {
        return;
    };
    let (_dir, store) = store(600);
    let (a, b) = two_replicas(&redis, &store).await;
    let key = spec(None, None, Some(1_000), Some(10_000));
    let both = [Arc::new(a.counters(&key)), Arc::new(b.counters(&key))];
    // Both find nothing in Redis and seed at once; 600 counted once leaves room for 4.
    let answers = reserve_all(&both, 8, r(1, 100)).await;
    assert_eq!(admitted(&answers), 4, "{answers:?}");
    let refused = answers.iter().find_map(|a| a.as_ref().err()).unwrap();
    let Refusal::Limited {
        limit, retry_after, ..
    } = refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(*limit, Limit::DailyBudget);
    let until_midnight = Periods::now().until_next_day;
    assert!(
        *retry_after <= until_midnight + Duration::from_secs(1)
            && *retry_after + Duration::from_secs(5) >= until_midnight,
        "{retry_after:?} against {until_midnight:?}"
    );
    let names = Names::new("switchyard");
    let k = names.limits("k");
    assert_eq!(field(&redis, &k, "day_spent").await.as_deref(), Some("600"));
    assert_eq!(
        field(&redis, &k, "month_spent").await.as_deref(),
        Some("600")
    );
    assert_eq!(
        field(&redis, &k, "day_reserved").await.as_deref(),
        Some("400")
    );

    // Redis loses everything: the next reservation seeds again from the store.
    drop(answers);
    let mut redis = redis;
    redis.stop();
    redis.start_again().unwrap();
    tokio::time::timeout(DEADLINE, back(a.shared()))
        .await
        .unwrap();
    assert_eq!(
        field(&redis, &k, "day").await,
        None,
        "Redis came back empty"
    );
    let again = both[0].reserve(r(1, 100)).await.unwrap();
    assert_eq!(again.ticket, Ticket::default(), "counted in Redis");
    assert_eq!(field(&redis, &k, "day_spent").await.as_deref(), Some("600"));
    assert_eq!(
        field(&redis, &k, "day_reserved").await.as_deref(),
        Some("100")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_each_replica_admits_its_share_or_refuses_then_shares_again() {
    let Some(mut redis) =
        redis("with_redis_stopped_each_replica_admits_its_share_or_refuses_then_shares_again")
    else {
        return;
    };
    switchyard_gateway::metrics::handle();
    let (_dir, store) = store(0);
    let a = replica(&redis, &store, WhenDown::PerReplica).await;
    let b = replica(&redis, &store, WhenDown::PerReplica).await;
    let closed = replica(&redis, &store, WhenDown::Refuse).await;
    a.shared().beat().await;
    assert_eq!(a.shared().replicas(), 3, "every link writes its heartbeat");
    let key = spec(Some(12), None, Some(1_000_000), None);
    let (ka, kb, kc) = (
        Arc::new(a.counters(&key)),
        Arc::new(b.counters(&key)),
        Arc::new(closed.counters(&key)),
    );
    // Before the outage Redis has stated the budget (nothing spent yet).
    ka.reserve(r(1, 10)).await.unwrap();

    redis.stop();
    // 12 a minute over 3 replicas: this one admits 4 (a fresh share of its own), and tells
    // the client when one fits again on its own count.
    let answers = reserve_all(std::slice::from_ref(&ka), 10, r(1, 0)).await;
    assert_eq!(admitted(&answers), 4, "{answers:?}");
    let link = a.shared().link();
    assert!(!link.up);
    assert_eq!(
        link.outage, 1,
        "one outage, however many requests noticed it"
    );
    let refused = answers.iter().find_map(|a| a.as_ref().err()).unwrap();
    assert!(matches!(
        refused,
        Refusal::Limited {
            limit: Limit::RequestsPerMinute,
            ..
        }
    ));
    // Fail closed: every request of a key with limits is refused, retryable.
    match kc.reserve(r(1, 0)).await {
        Err(Refusal::SharedUnavailable { retry_after }) => {
            assert_eq!(retry_after, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    let rendered = switchyard_gateway::metrics::handle().render();
    assert!(
        rendered.contains("switchyard_redis_outages_total"),
        "{rendered}"
    );
    assert!(rendered.contains("switchyard_redis_fallback_total{mode=\"refused\"}"));

    redis.start_again().unwrap();
    for link in [&a, &b, &closed] {
        tokio::time::timeout(DEADLINE, back(link.shared()))
            .await
            .expect("the heartbeat finds Redis back");
    }
    // Shared again (Redis came back empty: a full minute's 12 between the replicas).
    let answers = reserve_all(&[ka.clone(), kb.clone(), kc.clone()], 30, r(1, 0)).await;
    assert_eq!(admitted(&answers), 12, "{answers:?}");
    assert!(answers
        .iter()
        .all(|a| a.as_ref().map_or(true, |a| a.ticket == Ticket::default())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_reservations_are_given_back_and_never_freed_twice() {
    let Some(redis) = redis("a_dead_replicas_reservations_are_given_back_and_never_freed_twice")
    else {
        return;
    };
    let (_dir, store) = store(0);
    // A beats once, at connect, and counts as alive for 300 ms: then it is as a replica
    // killed with its reservations taken.
    let dying = RedisSettings {
        heartbeat: Duration::from_secs(3_600),
        replica_ttl: Duration::from_millis(300),
        ..settings(WhenDown::PerReplica)
    };
    let a = SharedCounters::new(
        &Shared::connect(&redis_url(&redis.url()), dying)
            .await
            .unwrap(),
        store.clone(),
    );
    let b = replica(&redis, &store, WhenDown::PerReplica).await;
    let key = spec(None, None, Some(1_000), Some(10_000));
    let (ka, kb) = (a.counters(&key), b.counters(&key));
    let k = Names::new("switchyard").limits("k");
    let today = Periods::now().day;
    let held_by_a = format!("day_held:{}", a.shared().replica());

    // A holds the day's whole budget while its request runs.
    let taken = ka.reserve(r(1, 1_000)).await.unwrap();
    assert_eq!(
        field(&redis, &k, &held_by_a).await,
        Some(format!("{today}:1000"))
    );
    let refused = kb.reserve(r(1, 100)).await;
    assert!(
        matches!(
            refused,
            Err(Refusal::Limited {
                limit: Limit::DailyBudget,
                ..
            })
        ),
        "{refused:?}"
    );

    // Once A's heartbeat has expired, B's next reservation gives back what A held.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let admitted = loop {
        if let Ok(a) = kb.reserve(r(1, 100)).await {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "A's holding stays");
        tokio::task::yield_now().await;
    };
    assert_eq!(
        field(&redis, &k, "day_reserved").await.as_deref(),
        Some("100")
    );
    assert_eq!(
        field(&redis, &k, "month_reserved").await.as_deref(),
        Some("100")
    );
    assert_eq!(field(&redis, &k, &held_by_a).await, None);

    // A was only cut off, and settles late: its cost counts, and it frees nothing of what B
    // holds.
    ka.settle(taken.ticket, r(1, 1_000), r(1, 700));
    a.flush().await;
    assert_eq!(field(&redis, &k, "day_spent").await.as_deref(), Some("700"));
    assert_eq!(
        field(&redis, &k, "day_reserved").await.as_deref(),
        Some("100")
    );
    kb.settle(admitted.ticket, r(1, 100), r(1, 60));
    b.flush().await;
    assert_eq!(field(&redis, &k, "day_spent").await.as_deref(), Some("760"));
    assert_eq!(
        field(&redis, &k, "day_reserved").await.as_deref(),
        Some("0")
    );
    assert_eq!(
        field(&redis, &k, "month_reserved").await.as_deref(),
        Some("0")
    );
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(&k)
        .query_async(&mut raw(&redis).await)
        .await
        .unwrap();
    assert!(
        fields.iter().all(|f| !f.contains("_held:")),
        "nothing held once everything is settled: {fields:?}"
    );
}

mod cache {
    use super::*;
    use serde_json::json;
    use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
    use switchyard_cache::{CacheControl, Entries, ExactKey, NewEntry, Scope, Shape};
    use switchyard_control::{CachePolicySpec, CacheSpec};
    use switchyard_gateway::data_plane::cache::{CacheOutcome, CacheStage, StaticModels};
    use switchyard_gateway::data_plane::shared::SharedCache;

    const TTL: Duration = Duration::from_millis(600);

    fn policy() -> CachePolicySpec {
        CachePolicySpec {
            enabled: true,
            semantic: false,
            threshold: 0.9,
            ttl: TTL,
            allow_temperature: false,
        }
    }

    /// One replica's cache stage over its shared tier (exact tier only: no model files).
    async fn replica(redis: &RedisServer) -> (CacheStage, Arc<SharedCache>) {
        let shared = Shared::connect(&redis_url(&redis.url()), settings(WhenDown::PerReplica))
            .await
            .unwrap();
        let tier = SharedCache::new(&shared, 1 << 20);
        let spec = CacheSpec {
            max_bytes: 1 << 20,
            embedder: "unused".into(),
            top_k: 4,
            defaults: policy(),
            pair_check: None,
        };
        let stage =
            CacheStage::build_shared(&spec, false, &mut StaticModels::default(), tier.clone())
                .unwrap();
        (stage, tier)
    }

    fn request(text: &str) -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": "m",
            "temperature": 0,
            "messages": [{"role": "user", "content": text}]
        }))
        .unwrap()
    }

    fn answer(text: &str) -> ChatCompletionResponse {
        serde_json::from_value(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
        .unwrap()
    }

    async fn look(stage: &CacheStage, tenant: &str, req: &ChatCompletionRequest) -> CacheOutcome {
        stage
            .lookup(tenant, "m", &policy(), CacheControl::Normal, req)
            .finish()
            .await
    }

    fn hit_text(outcome: &CacheOutcome) -> Option<String> {
        match outcome {
            CacheOutcome::Hit { response, .. } => {
                Some(response.choices[0].message.text().to_string())
            }
            CacheOutcome::Miss { .. } => None,
        }
    }

    async fn exists(redis: &RedisServer) -> usize {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("switchyard:v1:cache:*")
            .query_async(&mut raw(redis).await)
            .await
            .unwrap();
        keys.len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exact_entry_stored_on_one_replica_is_a_hit_on_another_for_its_tenant_only() {
        let Some(redis) =
            redis("an_exact_entry_stored_on_one_replica_is_a_hit_on_another_for_its_tenant_only")
        else {
            return;
        };
        let (a, _ta) = replica(&redis).await;
        let (b, _tb) = replica(&redis).await;
        let req = request("what is the capital of France?");
        let CacheOutcome::Miss {
            fill: Some(fill), ..
        } = look(&a, "acme", &req).await
        else {
            panic!("a first lookup misses and may be stored");
        };
        fill.store(&req, answer("Paris"));
        // Written in the background: wait for it in Redis, then look for its TTL.
        tokio::time::timeout(DEADLINE, async {
            while exists(&redis).await == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("switchyard:v1:cache:*")
            .query_async(&mut raw(&redis).await)
            .await
            .unwrap();
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut raw(&redis).await)
            .await
            .unwrap();
        assert!(pttl > 0 && pttl <= 600, "{pttl}");

        assert_eq!(
            hit_text(&look(&b, "acme", &req).await).as_deref(),
            Some("Paris")
        );
        // Another tenant asking the same, on either replica, gets nothing of acme's.
        assert_eq!(hit_text(&look(&b, "globex", &req).await), None);
        assert_eq!(hit_text(&look(&a, "globex", &req).await), None);

        // Expired in Redis: gone there and here (B kept it no longer than Redis had left).
        tokio::time::timeout(DEADLINE, async {
            while exists(&redis).await > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(hit_text(&look(&b, "acme", &req).await), None);
        let (c, _tc) = replica(&redis).await;
        assert_eq!(hit_text(&look(&c, "acme", &req).await), None);
    }

    fn semantic_entry(answer: &str, v: Vec<f32>) -> NewEntry {
        NewEntry {
            response: Arc::from(answer.as_bytes()),
            question: Arc::from("a question"),
            embedding: Some(v),
            expires: std::time::Instant::now() + Duration::from_secs(60),
        }
    }

    fn scope(tenant: &str) -> Scope {
        Scope {
            tenant: tenant.into(),
            route: "auto".into(),
            shape: Shape([1; 32]),
        }
    }

    /// Waits until `tier` has received `n` entries from other replicas.
    async fn received(tier: &SharedCache, n: u64) {
        let mut rx = tier.received();
        tokio::time::timeout(DEADLINE, rx.wait_for(|got| *got >= n))
            .await
            .unwrap()
            .unwrap();
    }

    async fn subscribed(tier: &SharedCache, n: u64) {
        let mut rx = tier.subscriptions();
        tokio::time::timeout(DEADLINE, rx.wait_for(|got| *got >= n))
            .await
            .unwrap()
            .unwrap();
    }

    /// Replicas A (its tier) and B over `redis`; A's semantic entry `key` with vector `v` for
    /// acme, received by B.
    async fn sharing(
        redis: &RedisServer,
        key: ExactKey,
        v: &[f32],
    ) -> (Arc<SharedCache>, (CacheStage, Arc<SharedCache>)) {
        let (_a, ta) = replica(redis).await;
        let (b, tb) = replica(redis).await;
        subscribed(&tb, 1).await;
        ta.write(
            &scope("acme"),
            key,
            &semantic_entry("{}", v.to_vec()),
            TTL * 100,
        );
        received(&tb, 1).await;
        (ta, (b, tb))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_semantic_entry_reaches_the_other_replicas_index_and_again_after_redis_restarts() {
        let Some(mut redis) = redis(
            "a_semantic_entry_reaches_the_other_replicas_index_and_again_after_redis_restarts",
        ) else {
            return;
        };
        switchyard_gateway::metrics::handle();
        let v = vec![0.6, 0.8];
        let key = ExactKey([4; 32]);
        let (ta, (b, tb)) = sharing(&redis, key, &v).await;
        let near = tb.local().nearest(&scope("acme"), &v, 1).unwrap();
        assert_eq!(near[0].key, key);
        assert!(near[0].similarity > 0.99);
        assert_eq!(tb.local().nearest(&scope("globex"), &v, 1), None);
        // A's own entry is not added to A again (it stores its own).
        assert_eq!(*ta.received().borrow(), 0);

        // Redis stops: lookups go on locally, the tier is bypassed after the first failure.
        redis.stop();
        let req = request("never asked before");
        assert_eq!(hit_text(&look(&b, "acme", &req).await), None);
        assert_eq!(hit_text(&look(&b, "acme", &req).await), None);
        let rendered = switchyard_gateway::metrics::handle().render();
        assert!(
            rendered.contains("switchyard_cache_shared_total{outcome=\"bypassed\"}"),
            "{rendered}"
        );

        // Back: subscribed again, and entries flow again.
        redis.start_again().unwrap();
        subscribed(&tb, 2).await;
        tokio::time::timeout(DEADLINE, ta_up(&ta)).await.unwrap();
        let key2 = ExactKey([5; 32]);
        ta.write(
            &scope("acme"),
            key2,
            &semantic_entry("{}", vec![0.8, 0.6]),
            TTL * 100,
        );
        received(&tb, 2).await;
        let near = tb.local().nearest(&scope("acme"), &[0.8, 0.6], 1).unwrap();
        assert_eq!(near[0].key, key2);
    }

    /// A thumbs down removes an entry on the replica that served it; the others' copies and
    /// the exact entry in Redis go too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_entry_leaves_redis_and_the_other_replicas() {
        let Some(redis) = redis("a_removed_entry_leaves_redis_and_the_other_replicas") else {
            return;
        };
        let v = vec![0.6, 0.8];
        let key = ExactKey([6; 32]);
        let (ta, (_b, tb)) = sharing(&redis, key, &v).await;
        assert_eq!(exists(&redis).await, 1);
        assert!(tb.local().nearest(&scope("acme"), &v, 1).is_some());

        ta.remove(&scope("acme"), key);
        received(&tb, 2).await;
        assert!(
            tb.local()
                .nearest(&scope("acme"), &v, 1)
                .is_none_or(|found| found.is_empty()),
            "B's copy is gone"
        );
        // Deleted in the same round trip that published the removal.
        assert_eq!(exists(&redis).await, 0);
        // A removal of another tenant's slot touches nothing of acme's.
        ta.write(
            &scope("acme"),
            key,
            &semantic_entry("{}", v.clone()),
            TTL * 100,
        );
        received(&tb, 3).await;
        ta.remove(&scope("globex"), key);
        received(&tb, 4).await;
        assert!(tb.local().nearest(&scope("acme"), &v, 1).is_some());
    }

    /// Until A's link answers again (its writes are skipped while it is down).
    async fn ta_up(tier: &SharedCache) {
        back(tier.shared()).await;
    }
}

mod feed {
    use super::*;
    use futures::StreamExt;
    use switchyard_gateway::control_plane::changes::{ChangeFeed, RedisFeed};
    use switchyard_rollout::{Flag, FlagKind};
    use switchyard_store::Transact;

    /// No poll within a test: every wake-up after the first comes from Redis.
    const NEVER: Duration = Duration::from_secs(3_600);

    async fn next(wakeups: &mut futures::stream::BoxStream<'static, ()>) {
        tokio::time::timeout(DEADLINE, wakeups.next())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_wakes_on_another_replicas_change_and_again_after_redis_restarts() {
        let Some(mut redis) =
            redis("the_feed_wakes_on_another_replicas_change_and_again_after_redis_restarts")
        else {
            return;
        };
        let (_dir, store) = store(0);
        let url = redis_url(&redis.url());
        let link = || Shared::connect(&url, settings(WhenDown::PerReplica));
        let (a, b) = (link().await.unwrap(), link().await.unwrap());
        let (feed_a, feed_b) = (
            RedisFeed::new(store.clone(), &a, NEVER),
            RedisFeed::new(store.clone(), &b, NEVER),
        );
        let mut wakeups = feed_b.wakeups();
        // The poll's first tick, and the subscription made: B listens.
        next(&mut wakeups).await;
        next(&mut wakeups).await;

        // A commits a change and announces it: B wakes and reads the new generation.
        let before = feed_b.generation().unwrap();
        let flag = Flag {
            key: "f".into(),
            kind: FlagKind::Boolean { on: true },
            enabled: true,
        };
        store.transact(|c| c.put_flag(&flag, 1)).unwrap();
        feed_a.announce();
        next(&mut wakeups).await;
        assert_eq!(feed_b.generation().unwrap(), before + 1);
        // Redis restarts: B subscribes again (and wakes, to read what it may have missed),
        // then hears A again.
        redis.stop();
        redis.start_again().unwrap();
        next(&mut wakeups).await;
        back(&a).await;
        feed_a.announce();
        next(&mut wakeups).await;
    }
}

/// A Redis URL as the config gives it.
fn redis_url(url: &str) -> switchyard_control::SecretUrl {
    switchyard_control::SecretUrl::redis(url).unwrap()
}
