//! The engine in paused tokio time: every duration below is exact.
#![expect(
    clippy::disallowed_methods,
    reason = "test tasks end within each test, in paused time"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use crate::{Ask, Engine, EngineError, Load, Params, Scheduler};

const MS: Duration = Duration::from_millis(1);

fn params(slots: u32, kv_tokens: u64) -> Params {
    Params {
        slots,
        kv_tokens,
        prefill_base: 10 * MS,
        prefill_per_token: MS,
        decode_base: 20 * MS,
        decode_per_sequence: 5 * MS,
    }
}

fn ask(prompt_tokens: u32, output_tokens: u32, priority: Option<i64>) -> Ask {
    Ask {
        prompt_tokens,
        output_tokens,
        priority,
    }
}

/// Runs one request through the engine: (time to first token, time to the end).
async fn run(engine: Arc<Engine>, a: Ask) -> (Duration, Duration) {
    let start = Instant::now();
    let slot = engine.admit(a).await.unwrap();
    slot.prefill().await;
    let ttft = start.elapsed();
    for _ in 1..a.output_tokens {
        slot.decode(1).await;
    }
    (ttft, start.elapsed())
}

/// Lets every task that can run do so, without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn prefill_grows_with_the_prompt_and_decode_with_the_batch() {
    let p = params(4, 1000);
    assert_eq!(p.prefill(0), 10 * MS);
    assert_eq!(p.prefill(100), 110 * MS);
    assert_eq!(p.step(1), 20 * MS);
    assert_eq!(p.step(4), 35 * MS);
    assert_eq!(p.step(0), 20 * MS);
}

#[tokio::test(start_paused = true)]
async fn no_more_sequences_run_than_there_are_slots() {
    let engine = Engine::new(params(2, 10_000));
    let tasks: Vec<_> = (0..5)
        .map(|_| tokio::spawn(run(engine.clone(), ask(10, 100, None))))
        .collect();
    settle().await;
    assert_eq!(
        engine.load(),
        Load {
            waiting: 3,
            running: 2,
            kv_used_tokens: 220,
            kv_capacity_tokens: 10_000
        }
    );
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(engine.load().running, 0);
    assert_eq!(engine.load().kv_used_tokens, 0);
}

/// Starts requests one at a time on a one-slot engine held busy, and records the order in
/// which they start.
async fn start_order(priorities: &[Option<i64>]) -> Vec<usize> {
    let engine = Engine::new(params(1, 10_000));
    let busy = engine.admit(ask(1, 1, None)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, p) in priorities.iter().enumerate() {
        let (engine, order, p) = (engine.clone(), order.clone(), *p);
        tasks.push(tokio::spawn(async move {
            let slot = engine.admit(ask(1, 1, p)).await.unwrap();
            order.lock().unwrap().push(i);
            slot.decode(1).await;
        }));
        settle().await;
    }
    assert_eq!(engine.load().waiting as usize, priorities.len());
    drop(busy);
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    order
}

#[tokio::test(start_paused = true)]
async fn without_priorities_the_queue_is_first_come_first_served() {
    assert_eq!(start_order(&[None, None, None, None]).await, [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn lower_priority_values_start_first_and_ties_keep_their_order() {
    let order = start_order(&[Some(5), Some(1), None, Some(1), Some(-2)]).await;
    assert_eq!(order, [4, 2, 1, 3, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_full_kv_cache_defers_requests_despite_free_slots() {
    let engine = Engine::new(params(4, 100));
    let first = engine.admit(ask(30, 30, None)).await.unwrap();
    let second = tokio::spawn({
        let engine = engine.clone();
        async move { engine.admit(ask(30, 30, None)).await.map(drop) }
    });
    settle().await;
    assert_eq!(
        engine.load(),
        Load {
            waiting: 1,
            running: 1,
            kv_used_tokens: 60,
            kv_capacity_tokens: 100
        }
    );
    assert!((engine.load().kv_usage() - 0.6).abs() < 1e-9);
    drop(first);
    second.await.unwrap().unwrap();
    assert_eq!(
        engine.load(),
        Load {
            kv_capacity_tokens: 100,
            ..Load::default()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_the_kv_cache_is_refused() {
    let engine = Engine::new(params(4, 100));
    let refused = engine.admit(ask(90, 20, None)).await.err();
    assert_eq!(
        refused,
        Some(EngineError::TooLarge {
            needed: 110,
            budget: 100
        })
    );
}

#[tokio::test(start_paused = true)]
async fn time_to_first_token_grows_with_the_queue_and_the_prompt() {
    let engine = Engine::new(params(1, 10_000));
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(run(engine.clone(), ask(40, 5, None))))
        .collect();
    let mut ttfts = Vec::new();
    for t in tasks {
        ttfts.push(t.await.unwrap().0);
    }
    // Each runs alone: prefill 10 + 40 ms, then 4 more tokens of 20 ms.
    let one = 50 * MS + 4 * 20 * MS;
    assert_eq!(ttfts, [50 * MS, one + 50 * MS, 2 * one + 50 * MS]);

    let short = run(engine.clone(), ask(10, 1, None)).await.0;
    let long = run(engine, ask(500, 1, None)).await.0;
    assert_eq!((short, long), (20 * MS, 510 * MS));
}

#[tokio::test(start_paused = true)]
async fn decoding_slows_as_the_batch_grows() {
    let alone = run(Engine::new(params(4, 10_000)), ask(0, 11, None)).await;
    assert_eq!(alone.1 - alone.0, 10 * 20 * MS);

    let engine = Engine::new(params(4, 10_000));
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(run(engine.clone(), ask(0, 11, None))))
        .collect();
    for t in tasks {
        let (ttft, end) = t.await.unwrap();
        assert_eq!(end - ttft, 10 * 35 * MS);
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_gives_up_waiting_leaves_the_queue() {
    let engine = Engine::new(params(1, 10_000));
    let busy = engine.admit(ask(1, 1, None)).await.unwrap();
    let waiting = tokio::spawn({
        let engine = engine.clone();
        async move { engine.admit(ask(1, 1, None)).await.map(drop) }
    });
    settle().await;
    assert_eq!(engine.load().waiting, 1);
    waiting.abort();
    settle().await;
    assert_eq!(engine.load().waiting, 0);
    drop(busy);
    assert_eq!(engine.load().running, 0);
}

proptest! {
    /// Whatever arrives and ends, in any order: slots and the KV budget hold, every sequence
    /// ends exactly once, and nothing waits in an idle engine.
    #[test]
    fn the_scheduler_keeps_its_limits(
        slots in 1u32..5,
        ops in proptest::collection::vec((0u64..60, proptest::option::of(-3i64..3), any::<bool>(), any::<prop::sample::Index>()), 1..80),
    ) {
        let budget = 100;
        let mut s = Scheduler::new(slots, budget);
        let mut live: Vec<u64> = Vec::new();
        for (kv, priority, arrive, pick) in ops {
            if arrive || live.is_empty() {
                let (id, _) = s.arrive(kv, priority);
                live.push(id);
            } else {
                let id = live.remove(pick.index(live.len()));
                s.remove(id);
                prop_assert!(s.remove(id).is_empty());
            }
            let load = s.load();
            prop_assert!(load.running <= slots);
            prop_assert!(load.kv_used_tokens <= budget);
            prop_assert_eq!((load.running + load.waiting) as usize, live.len());
            // Something waits only behind a full engine: all slots taken, or work running
            // that holds the KV cache the head needs.
            prop_assert!(load.waiting == 0 || load.running > 0);
        }
        for id in live {
            s.remove(id);
        }
        prop_assert_eq!(s.load(), Load { kv_capacity_tokens: budget, ..Load::default() });
    }
}
