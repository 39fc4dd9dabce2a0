//! Properties of the admission queue under random sequences of offers, releases, expiries and
//! preemptions.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard_admission::{Capacity, Class, Offer, Queue, QueueConfig, Ticket, TicketId};

#[derive(Debug, Clone)]
enum Op {
    Offer {
        class: Class,
        tenant: u8,
        tokens: u64,
    },
    Release(usize),
    Advance(u64),
    Expire,
    Preempt,
}

fn class() -> impl Strategy<Value = Class> {
    prop::sample::select(Class::ASCENDING.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (class(), 0..3u8, 1..=60u64)
            .prop_map(|(class, tenant, tokens)| Op::Offer { class, tenant, tokens }),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (1..20u64).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => Just(Op::Preempt),
    ]
}

fn ticket(id: u64, class: Class, tenant: &str, tokens: u64, at: Instant) -> Ticket {
    Ticket::new(TicketId(id), class, tenant, tokens, at)
}

/// What the test knows of the queue, checked against it after every step.
#[derive(Default)]
struct Model {
    waiting: HashMap<TicketId, Class>,
    held: HashSet<TicketId>,
    /// Every offered ticket's end: "done", "shed" or "expired", set exactly once.
    ends: HashMap<TicketId, &'static str>,
    offered: u64,
}

impl Model {
    fn admitted(&mut self, ticket: &Ticket) {
        self.waiting.remove(&ticket.id);
        let higher = self.waiting.values().find(|class| **class > ticket.class);
        assert!(
            higher.is_none(),
            "{:?} admitted while {higher:?} waits",
            ticket.class
        );
        assert!(
            self.held.insert(ticket.id),
            "{:?} admitted twice",
            ticket.id
        );
    }

    fn end(&mut self, id: TicketId, how: &'static str) {
        self.waiting.remove(&id);
        assert!(self.ends.insert(id, how).is_none(), "{id:?} ended twice");
    }

    fn check(&self, queue: &Queue, capacity: Capacity) {
        let max = capacity.max_concurrent.unwrap_or(u32::MAX) as usize;
        assert!(queue.in_flight() <= max);
        let tokens = capacity.max_tokens_in_flight.unwrap_or(u64::MAX);
        assert!(queue.tokens_in_flight() <= tokens || queue.in_flight() == 1);
        assert_eq!(queue.in_flight(), self.held.len());
        let depth: usize = Class::ASCENDING.iter().map(|c| queue.depth(*c)).sum();
        assert_eq!(depth, self.waiting.len());
    }
}

fn step(queue: &mut Queue, model: &mut Model, op: Op, now: &mut Instant) {
    match op {
        Op::Offer {
            class,
            tenant,
            tokens,
        } => {
            model.offered += 1;
            let t = ticket(model.offered, class, &format!("t{tenant}"), tokens, *now);
            match queue.offer(t.clone()).unwrap() {
                Offer::Admitted => model.admitted(&t),
                Offer::Queued { evicted } => {
                    if let Some(evicted) = evicted {
                        assert!(evicted.class < class, "evicted {evicted:?} for {class:?}");
                        model.end(evicted.id, "shed");
                    }
                    model.waiting.insert(t.id, class);
                }
                Offer::Shed(shed) => {
                    let lower = model.waiting.values().find(|c| **c < class);
                    assert!(lower.is_none(), "{class:?} shed while {lower:?} waits");
                    model.end(shed.id, "shed");
                }
            }
        }
        Op::Release(pick) => {
            let mut held: Vec<_> = model.held.iter().copied().collect();
            held.sort();
            if let Some(id) = held.get(pick % held.len().max(1)).copied() {
                model.held.remove(&id);
                model.end(id, "done");
                for t in queue.release(id, *now).unwrap() {
                    model.admitted(&t);
                }
            }
        }
        Op::Advance(secs) => *now += Duration::from_secs(secs),
        Op::Expire => {
            for t in queue.expire(*now) {
                model.end(t.id, "expired");
            }
        }
        Op::Preempt => {
            if let Some(victim) = queue.preemption_candidate().cloned() {
                assert_eq!(victim.class, Class::Batch);
                model.held.remove(&victim.id);
                let admitted = queue.requeue(victim.id).unwrap();
                model.waiting.insert(victim.id, victim.class);
                for t in admitted {
                    model.admitted(&t);
                }
            }
        }
    }
}

fn small_config(max_concurrent: Option<u32>, max_tokens: Option<u64>, room: usize) -> QueueConfig {
    let mut config = QueueConfig::new(Capacity {
        max_concurrent,
        max_tokens_in_flight: max_tokens,
    });
    config.quantum = 50;
    for class in Class::ASCENDING {
        config.classes[class].max_queue = room;
        config.classes[class].max_wait = Duration::from_secs(30 + 20 * class as u64);
    }
    config
}

proptest! {
    /// Capacity is never exceeded (concurrency and tokens); no ticket is admitted while one of a
    /// higher class waits; shedding never takes a class while a lower one waits; no ticket is
    /// admitted twice, and every offered ticket ends done, shed or expired exactly once.
    #[test]
    fn no_ticket_is_lost_or_admitted_twice_and_capacity_holds(
        max_concurrent in prop::option::of(1..4u32),
        max_tokens in prop::option::of(20..150u64),
        room in 0..5usize,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let capacity = Capacity { max_concurrent, max_tokens_in_flight: max_tokens };
        let mut queue = Queue::new(small_config(max_concurrent, max_tokens, room));
        let mut model = Model::default();
        let mut now = Instant::now();
        for op in ops {
            step(&mut queue, &mut model, op, &mut now);
            model.check(&queue, capacity);
            // An idle deployment has nothing waiting.
            prop_assert!(queue.in_flight() > 0 || model.waiting.is_empty());
        }
        // Finish every holder; what is still waiting is admitted in turn.
        while !model.held.is_empty() {
            step(&mut queue, &mut model, Op::Release(0), &mut now);
            model.check(&queue, capacity);
        }
        prop_assert!(model.waiting.is_empty());
        prop_assert_eq!(model.ends.len() as u64, model.offered);
    }

    /// Two tenants of equal weight flooding one class: while both wait, neither is served
    /// more than one quantum plus one ticket ahead of the other.
    #[test]
    fn equal_tenants_share_within_a_quantum(
        quantum in 1..200u64,
        costs in prop::collection::vec(1..100u64, 2..60),
    ) {
        let mut config = small_config(Some(1), None, 1000);
        config.quantum = quantum;
        let served = flood(config, &costs);
        let max_cost = costs.iter().max().copied().unwrap_or(0);
        for (a, b) in served {
            prop_assert!(a.abs_diff(b) <= quantum + max_cost, "{a} vs {b}");
        }
    }

    /// A tenant of weight 2 gets twice the share of one of weight 1, within a round.
    #[test]
    fn a_tenant_of_weight_two_gets_twice_the_share(
        quantum in 1..200u64,
        cost in 1..100u64,
        n in 4..60usize,
    ) {
        let mut config = small_config(Some(1), None, 1000);
        config.quantum = quantum;
        config.tenant_weights.insert("a".to_owned(), 2);
        let served = flood(config, &vec![cost; n]);
        let round = 2 * quantum + 2 * cost;
        for (a, b) in served {
            prop_assert!((a as i128 - 2 * b as i128).unsigned_abs() <= u128::from(round), "{a} vs {b}");
        }
    }

    /// A longer queue ahead never shortens `retry_after`.
    #[test]
    fn retry_after_is_monotone_in_queue_length(
        gaps in prop::collection::vec(0..30u64, 0..10),
        classes in prop::collection::vec(class(), 1..80),
        asked in class(),
    ) {
        let mut queue = Queue::new(small_config(Some(1), None, 1000));
        let mut now = Instant::now();
        for (id, gap) in gaps.iter().enumerate() {
            let _ = queue.offer(ticket(id as u64, Class::Batch, "x", 1, now)).unwrap();
            now += Duration::from_secs(*gap);
            let _ = queue.release(TicketId(id as u64), now).unwrap();
        }
        let _ = queue.offer(ticket(1_000, Class::Batch, "x", 1, now)).unwrap();
        let mut last = queue.retry_after(asked);
        for (id, class) in classes.into_iter().enumerate() {
            let _ = queue.offer(ticket(2_000 + id as u64, class, "y", 1, now)).unwrap();
            let next = queue.retry_after(asked);
            prop_assert!(next >= last, "{next:?} < {last:?}");
            if class < asked {
                prop_assert_eq!(next, last);
            }
            last = next;
        }
    }
}

/// Tenant "a" then tenant "b" offer one ticket per cost into one class of a deployment of one
/// slot; returns the tokens served to each after every admission while both still wait.
fn flood(config: QueueConfig, costs: &[u64]) -> Vec<(u64, u64)> {
    let now = Instant::now();
    let mut queue = Queue::new(config);
    let _ = queue.offer(ticket(0, Class::Batch, "x", 1, now)).unwrap();
    let mut id = 0;
    for tenant in ["a", "b"] {
        for cost in costs {
            id += 1;
            let _ = queue
                .offer(ticket(id, Class::Batch, tenant, *cost, now))
                .unwrap();
        }
    }
    let (mut left_a, mut left_b) = (costs.len(), costs.len());
    let (mut served_a, mut served_b) = (0, 0);
    let mut holder = TicketId(0);
    let mut served = Vec::new();
    while left_a > 0 && left_b > 0 {
        let admitted = queue.release(holder, now).unwrap();
        let [next] = admitted.as_slice() else {
            panic!("one slot admits one ticket: {admitted:?}");
        };
        if next.tenant == "a" {
            served_a += next.tokens;
            left_a -= 1;
        } else {
            served_b += next.tokens;
            left_b -= 1;
        }
        served.push((served_a, served_b));
        holder = next.id;
    }
    served
}

#[test]
fn equal_tenants_alternate_when_a_ticket_costs_a_quantum() {
    let mut config = small_config(Some(1), None, 1000);
    config.quantum = 10;
    let order = admission_order(config, 4);
    assert_eq!(order, "abababab");
}

#[test]
fn a_tenant_of_weight_two_is_served_twice_per_round() {
    let mut config = small_config(Some(1), None, 1000);
    config.quantum = 10;
    config.tenant_weights.insert("a".to_owned(), 2);
    let order = admission_order(config, 6);
    assert_eq!(&order[..9], "aabaabaab");
}

/// The tenants admitted, in order, when "a" then "b" offer `n` tickets of 10 tokens each.
fn admission_order(config: QueueConfig, n: u64) -> String {
    let now = Instant::now();
    let mut queue = Queue::new(config);
    let _ = queue
        .offer(ticket(0, Class::Standard, "x", 10, now))
        .unwrap();
    for id in 1..=2 * n {
        let tenant = if id <= n { "a" } else { "b" };
        let _ = queue
            .offer(ticket(id, Class::Standard, tenant, 10, now))
            .unwrap();
    }
    let mut holder = TicketId(0);
    let mut order = String::new();
    while let Some(next) = queue.release(holder, now).unwrap().pop() {
        order.push_str(&next.tenant);
        holder = next.id;
    }
    order
}
