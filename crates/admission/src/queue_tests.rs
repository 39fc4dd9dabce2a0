use std::time::{Duration, Instant};

use super::*;
use crate::config::Capacity;

fn config(max_concurrent: u32) -> QueueConfig {
    QueueConfig::new(Capacity {
        max_concurrent: Some(max_concurrent),
        max_tokens_in_flight: None,
    })
}

fn ticket(id: u64, class: Class, tenant: &str, tokens: u64, at: Instant) -> Ticket {
    Ticket::new(TicketId(id), class, tenant, tokens, at)
}

fn ids(tickets: &[Ticket]) -> Vec<u64> {
    tickets.iter().map(|t| t.id.0).collect()
}

#[test]
fn admits_at_once_while_capacity_is_free_then_queues() {
    let now = Instant::now();
    let mut queue = Queue::new(config(1));
    assert_eq!(
        queue.offer(ticket(1, Class::Batch, "a", 10, now)),
        Ok(Offer::Admitted)
    );
    let offer = queue.offer(ticket(2, Class::Critical, "a", 10, now));
    assert_eq!(offer, Ok(Offer::Queued { evicted: None }));
    assert!(!queue.admit_now(Class::Critical, 1));
    assert_eq!(queue.depth(Class::Critical), 1);
    let admitted = queue.release(TicketId(1), now).unwrap();
    assert_eq!(ids(&admitted), [2]);
    assert!(queue.holds(TicketId(2)));
}

#[test]
fn a_newcomer_waits_behind_its_own_class_even_if_capacity_is_free() {
    let now = Instant::now();
    let mut config = config(2);
    config.capacity.max_tokens_in_flight = Some(100);
    let mut queue = Queue::new(config);
    assert_eq!(
        queue.offer(ticket(1, Class::Standard, "a", 60, now)),
        Ok(Offer::Admitted)
    );
    // 60 + 50 > 100: waits.
    assert!(matches!(
        queue.offer(ticket(2, Class::Standard, "a", 50, now)),
        Ok(Offer::Queued { .. })
    ));
    // Fits, but a standard ticket waits ahead of it.
    assert!(!queue.admit_now(Class::Standard, 10));
    assert!(!queue.admit_now(Class::Batch, 10));
    assert!(queue.admit_now(Class::Interactive, 10));
    assert_eq!(
        queue.offer(ticket(3, Class::Interactive, "a", 10, now)),
        Ok(Offer::Admitted)
    );
    assert_eq!(queue.tokens_in_flight(), 70);
}

#[test]
fn an_oversized_ticket_is_admitted_when_the_deployment_is_idle() {
    let now = Instant::now();
    let mut queue = Queue::new(QueueConfig::new(Capacity {
        max_concurrent: None,
        max_tokens_in_flight: Some(100),
    }));
    assert_eq!(
        queue.offer(ticket(1, Class::Batch, "a", 1_000, now)),
        Ok(Offer::Admitted)
    );
    assert!(matches!(
        queue.offer(ticket(2, Class::Batch, "a", 1, now)),
        Ok(Offer::Queued { .. })
    ));
}

#[test]
fn duplicate_and_unknown_ids_are_errors() {
    let now = Instant::now();
    let mut queue = Queue::new(config(1));
    let _ = queue.offer(ticket(1, Class::Batch, "a", 1, now)).unwrap();
    let _ = queue.offer(ticket(2, Class::Batch, "a", 1, now)).unwrap();
    for id in [1, 2] {
        let again = queue.offer(ticket(id, Class::Batch, "a", 1, now));
        assert_eq!(again, Err(AdmissionError::Duplicate(TicketId(id))));
    }
    assert_eq!(
        queue.release(TicketId(2), now),
        Err(AdmissionError::NotHeld(TicketId(2)))
    );
    assert_eq!(
        queue.requeue(TicketId(9)),
        Err(AdmissionError::NotHeld(TicketId(9)))
    );
}

/// A queue with one slot taken and room for `room` waiting tickets in every class.
fn full_queue(room: usize) -> Queue {
    let mut config = config(1);
    for class in Class::ASCENDING {
        config.classes[class].max_queue = room;
    }
    let mut queue = Queue::new(config);
    let _ = queue.offer(ticket(0, Class::Standard, "x", 1, Instant::now()));
    queue
}

#[test]
fn a_full_class_sheds_the_newest_ticket_of_the_lowest_class_waiting() {
    let now = Instant::now();
    let mut queue = full_queue(1);
    for (id, class) in [
        (1, Class::Batch),
        (2, Class::Standard),
        (3, Class::Interactive),
    ] {
        let _ = queue.offer(ticket(id, class, "a", 1, now)).unwrap();
    }
    // Interactive is full: the newcomer takes the batch ticket's place.
    let offer = queue
        .offer(ticket(4, Class::Interactive, "a", 1, now))
        .unwrap();
    assert_eq!(
        offer,
        Offer::Queued {
            evicted: Some(ticket(1, Class::Batch, "a", 1, now))
        }
    );
    // Then the standard one's, the lowest class left.
    let offer = queue
        .offer(ticket(5, Class::Critical, "a", 1, now))
        .unwrap();
    assert_eq!(offer, Offer::Queued { evicted: None });
    let offer = queue
        .offer(ticket(6, Class::Critical, "a", 1, now))
        .unwrap();
    assert_eq!(
        offer,
        Offer::Queued {
            evicted: Some(ticket(2, Class::Standard, "a", 1, now))
        }
    );
    // Nothing lower than interactive waits: an interactive newcomer is shed itself.
    let offer = queue
        .offer(ticket(7, Class::Interactive, "a", 1, now))
        .unwrap();
    assert_eq!(
        offer,
        Offer::Shed(ticket(7, Class::Interactive, "a", 1, now))
    );
    // A batch newcomer finds the queue's whole room taken by higher classes: shed.
    let offer = queue.offer(ticket(8, Class::Batch, "a", 1, now)).unwrap();
    assert_eq!(offer, Offer::Shed(ticket(8, Class::Batch, "a", 1, now)));
}

#[test]
fn the_newest_batch_ticket_is_the_one_evicted() {
    let now = Instant::now();
    let mut queue = full_queue(2);
    let _ = queue.offer(ticket(1, Class::Batch, "a", 1, now)).unwrap();
    let _ = queue.offer(ticket(2, Class::Batch, "b", 1, now)).unwrap();
    let _ = queue
        .offer(ticket(3, Class::Interactive, "a", 1, now))
        .unwrap();
    let _ = queue
        .offer(ticket(4, Class::Interactive, "a", 1, now))
        .unwrap();
    let offer = queue
        .offer(ticket(5, Class::Interactive, "a", 1, now))
        .unwrap();
    assert_eq!(
        offer,
        Offer::Queued {
            evicted: Some(ticket(2, Class::Batch, "b", 1, now))
        }
    );
}

#[test]
fn tickets_waiting_past_their_class_limit_expire() {
    let start = Instant::now();
    let mut config = config(1);
    config.classes[Class::Interactive].max_wait = Duration::from_secs(10);
    config.classes[Class::Batch].max_wait = Duration::from_secs(100);
    let mut queue = Queue::new(config);
    let _ = queue.offer(ticket(0, Class::Standard, "x", 1, start));
    let _ = queue.offer(ticket(1, Class::Interactive, "a", 1, start));
    let _ = queue.offer(ticket(2, Class::Batch, "a", 1, start));
    let late = start + Duration::from_secs(11);
    let _ = queue.offer(ticket(3, Class::Interactive, "a", 1, late));
    assert!(queue.expire(start + Duration::from_secs(10)).is_empty());
    assert_eq!(ids(&queue.expire(late)), [1]);
    assert_eq!(ids(&queue.expire(start + Duration::from_secs(101))), [3, 2]);
    // An expired ticket's id may be offered again.
    assert!(queue.offer(ticket(1, Class::Batch, "a", 1, late)).is_ok());
}

#[test]
fn the_batch_holder_admitted_last_is_preempted_and_keeps_its_place() {
    let now = Instant::now();
    let mut queue = Queue::new(config(3));
    let _ = queue.offer(ticket(1, Class::Batch, "a", 1, now));
    let _ = queue.offer(ticket(2, Class::Standard, "a", 1, now));
    let _ = queue.offer(ticket(3, Class::Batch, "b", 1, now));
    let _ = queue.offer(ticket(4, Class::Batch, "c", 1, now));
    // Only batch work waits: nothing to preempt.
    assert_eq!(queue.preemption_candidate(), None);
    let _ = queue.offer(ticket(5, Class::Standard, "a", 1, now));
    assert_eq!(queue.preemption_candidate(), None);
    let _ = queue.offer(ticket(6, Class::Interactive, "a", 1, now));
    assert_eq!(
        queue.preemption_candidate().map(|t| t.id),
        Some(TicketId(3))
    );
    let admitted = queue.requeue(TicketId(3)).unwrap();
    assert_eq!(ids(&admitted), [6]);
    assert_eq!(queue.preemption_candidate(), None);
    // The preempted ticket is served before the batch work offered after it.
    assert_eq!(ids(&queue.release(TicketId(6), now).unwrap()), [5]);
    assert_eq!(ids(&queue.release(TicketId(5), now).unwrap()), [3]);
    assert_eq!(ids(&queue.release(TicketId(3), now).unwrap()), [4]);
}

#[test]
fn no_batch_holder_means_no_candidate() {
    let now = Instant::now();
    let mut queue = Queue::new(config(1));
    let _ = queue.offer(ticket(1, Class::Standard, "a", 1, now));
    let _ = queue.offer(ticket(2, Class::Critical, "a", 1, now));
    assert_eq!(queue.preemption_candidate(), None);
}

#[test]
fn retry_after_counts_the_queue_ahead_at_the_observed_release_rate() {
    let start = Instant::now();
    let mut queue = Queue::new(config(1));
    let _ = queue.offer(ticket(0, Class::Batch, "a", 1, start));
    for id in 1..=5 {
        let _ = queue.offer(ticket(id, Class::Batch, "a", 1, start));
    }
    for id in 0..3 {
        let _ = queue
            .release(TicketId(id), start + Duration::from_secs(4 * id))
            .unwrap();
    }
    // Releases every 4 s; 2 batch tickets wait, and a newcomer is the third.
    assert_eq!(queue.retry_after(Class::Batch), Duration::from_secs(12));
    // Batch work does not delay a critical request.
    assert_eq!(queue.retry_after(Class::Critical), Duration::from_secs(4));
}

#[test]
fn a_pinned_batch_holder_is_not_preempted() {
    let now = Instant::now();
    let mut queue = Queue::new(config(2));
    let _ = queue.offer(ticket(1, Class::Batch, "a", 1, now));
    let _ = queue.offer(ticket(2, Class::Batch, "a", 1, now));
    queue.pin(TicketId(2)).unwrap();
    let _ = queue.offer(ticket(3, Class::Interactive, "a", 1, now));
    // The holder admitted last is pinned: the one before it is named.
    assert_eq!(
        queue.preemption_candidate().map(|t| t.id),
        Some(TicketId(1))
    );
    queue.pin(TicketId(1)).unwrap();
    assert_eq!(queue.preemption_candidate(), None);
    assert_eq!(
        queue.pin(TicketId(3)),
        Err(AdmissionError::NotHeld(TicketId(3)))
    );
}

#[test]
fn a_withdrawn_ticket_leaves_the_queue_and_unblocks_what_it_held_back() {
    let now = Instant::now();
    let mut queue = Queue::new(QueueConfig::new(Capacity {
        max_concurrent: Some(2),
        max_tokens_in_flight: Some(100),
    }));
    assert_eq!(
        queue.offer(ticket(1, Class::Batch, "a", 60, now)),
        Ok(Offer::Admitted)
    );
    // 2 does not fit beside 1; 3 would, but waits behind 2 (its class first).
    let _ = queue.offer(ticket(2, Class::Standard, "a", 60, now));
    let _ = queue.offer(ticket(3, Class::Standard, "b", 10, now));
    assert_eq!(queue.depth(Class::Standard), 2);
    let (waited, admitted) = queue.withdraw(TicketId(2));
    assert!(waited);
    assert_eq!(ids(&admitted), [3]);
    assert_eq!(queue.depth(Class::Standard), 0);
    assert_eq!(queue.withdraw(TicketId(2)), (false, Vec::new()));
    // A holder is not withdrawn.
    assert_eq!(queue.withdraw(TicketId(1)), (false, Vec::new()));
    assert!(queue.holds(TicketId(1)));
}

#[test]
fn a_changed_capacity_admits_what_now_fits_and_never_evicts_holders() {
    let now = Instant::now();
    let mut queue = Queue::new(config(2));
    let _ = queue.offer(ticket(1, Class::Standard, "a", 1, now));
    let _ = queue.offer(ticket(2, Class::Standard, "a", 1, now));
    let _ = queue.offer(ticket(3, Class::Standard, "a", 1, now));
    let _ = queue.offer(ticket(4, Class::Standard, "a", 1, now));
    assert_eq!(queue.depth(Class::Standard), 2);
    let one = Capacity {
        max_concurrent: Some(1),
        max_tokens_in_flight: None,
    };
    assert!(queue.set_capacity(one).is_empty());
    assert_eq!(queue.in_flight(), 2, "holders keep running");
    assert!(queue.release(TicketId(1), now).unwrap().is_empty());
    assert_eq!(ids(&queue.release(TicketId(2), now).unwrap()), [3]);
    let three = Capacity {
        max_concurrent: Some(3),
        max_tokens_in_flight: None,
    };
    assert_eq!(ids(&queue.set_capacity(three)), [4]);
    assert_eq!(queue.in_flight(), 2);
}
