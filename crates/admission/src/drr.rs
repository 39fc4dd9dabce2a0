//! One class's waiting tickets, served by deficit round robin between tenants.
//!
//! 1. Each tenant with waiting tickets is in a round-robin ring; a tenant joins at the back
//!    when its first ticket arrives and leaves (its credit forgotten) when its last is served.
//! 2. When the ring's front tenant is visited it is credited its weight times the quantum,
//!    once per visit.
//! 3. While its oldest ticket costs no more than its credit it is served, and the cost is
//!    taken from the credit; when the next costs more, the visit ends and the tenant moves to
//!    the back, keeping what is left of its credit.
//! 4. When a whole round serves no one (every ticket costs more than a few quanta), the
//!    rounds it would take for the first tenant to afford its ticket are credited at once, so
//!    selection takes one pass whatever the costs.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::QueueConfig;
use crate::ticket::{Ticket, TicketId};

/// A waiting ticket and the order it was offered in (for "newest").
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub ticket: Ticket,
    pub seq: u64,
}

#[derive(Debug, Default)]
struct TenantQueue {
    tickets: VecDeque<Waiting>,
    deficit: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ClassQueue {
    tenants: HashMap<String, TenantQueue>,
    ring: VecDeque<String>,
    /// Whether the ring's front tenant has had its credit for this visit.
    credited: bool,
    len: usize,
}

impl ClassQueue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a newly offered ticket behind its tenant's others.
    pub fn push_back(&mut self, waiting: Waiting) {
        self.push(waiting, false);
    }

    /// Puts a preempted ticket back ahead of its tenant's others, and its tenant at the front
    /// of the ring if it had left it, so newer work of the class does not overtake it.
    pub fn push_front(&mut self, waiting: Waiting) {
        self.push(waiting, true);
    }

    fn push(&mut self, waiting: Waiting, front: bool) {
        let tenant = waiting.ticket.tenant.clone();
        if !self.tenants.contains_key(&tenant) {
            if front {
                self.ring.push_front(tenant.clone());
                self.credited = false;
            } else {
                self.ring.push_back(tenant.clone());
            }
        }
        let tickets = &mut self.tenants.entry(tenant).or_default().tickets;
        if front {
            tickets.push_front(waiting);
        } else {
            tickets.push_back(waiting);
        }
        self.len += 1;
    }

    /// Chooses the ticket to serve next (steps 2 to 4) and says its cost; the choice stays
    /// the same until [`ClassQueue::pop_selected`] or a change to the queue.
    pub fn select(&mut self, config: &QueueConfig) -> Option<u64> {
        let mut misses = 0;
        loop {
            let tenant = self.ring.front()?;
            let credit = config.credit(tenant);
            let queue = self.tenants.get_mut(tenant)?;
            let cost = queue.tickets.front()?.ticket.tokens;
            if !self.credited {
                queue.deficit = queue.deficit.saturating_add(credit);
                self.credited = true;
            }
            if cost <= queue.deficit {
                return Some(cost);
            }
            self.ring.rotate_left(1);
            self.credited = false;
            misses += 1;
            if misses >= self.ring.len() {
                self.skip_idle_rounds(config);
                misses = 0;
            }
        }
    }

    /// Step 4: credits every tenant the rounds after which the first of them can pay, less
    /// the one the next pass gives.
    fn skip_idle_rounds(&mut self, config: &QueueConfig) {
        let rounds = |tenant: &String, queue: &TenantQueue| {
            let cost = queue.tickets.front().map_or(0, |w| w.ticket.tokens);
            cost.saturating_sub(queue.deficit)
                .div_ceil(config.credit(tenant))
        };
        let skip = self
            .tenants
            .iter()
            .map(|(tenant, queue)| rounds(tenant, queue))
            .min()
            .unwrap_or(0)
            .saturating_sub(1);
        for (tenant, queue) in &mut self.tenants {
            let credit = config.credit(tenant).saturating_mul(skip);
            queue.deficit = queue.deficit.saturating_add(credit);
        }
    }

    /// Takes the ticket [`ClassQueue::select`] chose (step 3).
    pub fn pop_selected(&mut self) -> Option<Waiting> {
        let tenant = self.ring.front()?.clone();
        let queue = self.tenants.get_mut(&tenant)?;
        let waiting = queue.tickets.pop_front()?;
        queue.deficit = queue.deficit.saturating_sub(waiting.ticket.tokens);
        self.len -= 1;
        self.leave_if_done(&tenant);
        Some(waiting)
    }

    /// Removes the most recently offered ticket (the one shed to make room for a higher
    /// class).
    pub fn remove_newest(&mut self) -> Option<Ticket> {
        let (tenant, index) = self
            .tenants
            .iter()
            .flat_map(|(tenant, queue)| {
                queue
                    .tickets
                    .iter()
                    .enumerate()
                    .map(move |(index, w)| (w.seq, tenant, index))
            })
            .max_by_key(|(seq, _, _)| *seq)
            .map(|(_, tenant, index)| (tenant.clone(), index))?;
        let waiting = self.tenants.get_mut(&tenant)?.tickets.remove(index)?;
        self.len -= 1;
        self.leave_if_done(&tenant);
        Some(waiting.ticket)
    }

    /// Removes the ticket `id` wherever it waits (its request went away).
    pub fn remove(&mut self, id: TicketId) -> Option<Ticket> {
        let (tenant, index) = self.tenants.iter().find_map(|(tenant, queue)| {
            let index = queue.tickets.iter().position(|w| w.ticket.id == id)?;
            Some((tenant.clone(), index))
        })?;
        let waiting = self.tenants.get_mut(&tenant)?.tickets.remove(index)?;
        self.len -= 1;
        self.leave_if_done(&tenant);
        Some(waiting.ticket)
    }

    /// Removes the tickets that have waited longer than `max_wait` at `now`, oldest offer
    /// first.
    pub fn remove_expired(&mut self, now: Instant, max_wait: Duration) -> Vec<Ticket> {
        let mut expired = Vec::new();
        for queue in self.tenants.values_mut() {
            queue.tickets.retain(|w| {
                let waited = now.saturating_duration_since(w.ticket.enqueued_at);
                let keep = waited <= max_wait;
                if !keep {
                    expired.push(w.clone());
                }
                keep
            });
        }
        self.len -= expired.len();
        let emptied: Vec<String> = expired.iter().map(|w| w.ticket.tenant.clone()).collect();
        for tenant in emptied {
            self.leave_if_done(&tenant);
        }
        expired.sort_by_key(|w| w.seq);
        expired.into_iter().map(|w| w.ticket).collect()
    }

    /// Step 1: a tenant with nothing left leaves the ring and forgets its credit.
    fn leave_if_done(&mut self, tenant: &str) {
        if !self
            .tenants
            .get(tenant)
            .is_some_and(|queue| queue.tickets.is_empty())
        {
            return;
        }
        self.tenants.remove(tenant);
        if let Some(position) = self.ring.iter().position(|t| t == tenant) {
            self.ring.remove(position);
            if position == 0 {
                self.credited = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::Class;
    use crate::config::Capacity;
    use crate::ticket::TicketId;

    fn config(quantum: u64) -> QueueConfig {
        QueueConfig {
            quantum,
            ..QueueConfig::new(Capacity::default())
        }
    }

    fn waiting(seq: u64, tenant: &str, tokens: u64, at: Instant) -> Waiting {
        let ticket = Ticket::new(TicketId(seq), Class::Standard, tenant, tokens, at);
        Waiting { ticket, seq }
    }

    fn drain(queue: &mut ClassQueue, config: &QueueConfig) -> Vec<String> {
        let mut served = Vec::new();
        while queue.select(config).is_some() {
            served.push(queue.pop_selected().unwrap().ticket.tenant);
        }
        served
    }

    #[test]
    fn tenants_take_turns_of_one_quantum() {
        let now = Instant::now();
        let mut queue = ClassQueue::default();
        for seq in 0..4 {
            queue.push_back(waiting(seq, "a", 100, now));
        }
        for seq in 4..6 {
            queue.push_back(waiting(seq, "b", 100, now));
        }
        assert_eq!(
            drain(&mut queue, &config(200)),
            ["a", "a", "b", "b", "a", "a"]
        );
        assert!(queue.is_empty() && queue.tenants.is_empty() && queue.ring.is_empty());
    }

    #[test]
    fn tickets_costing_many_quanta_are_served_in_one_pass() {
        let now = Instant::now();
        let mut queue = ClassQueue::default();
        queue.push_back(waiting(0, "a", u64::MAX / 2, now));
        queue.push_back(waiting(1, "b", 1_000_000_000, now));
        assert_eq!(drain(&mut queue, &config(1)), ["b", "a"]);
    }

    #[test]
    fn newest_and_expired_tickets_are_removed_and_tenants_leave() {
        let start = Instant::now();
        let mut queue = ClassQueue::default();
        queue.push_back(waiting(0, "a", 1, start));
        queue.push_back(waiting(1, "b", 1, start + Duration::from_secs(5)));
        queue.push_back(waiting(2, "a", 1, start + Duration::from_secs(9)));
        assert_eq!(queue.remove_newest().unwrap().id, TicketId(2));
        let expired = queue.remove_expired(start + Duration::from_secs(8), Duration::from_secs(4));
        assert_eq!(
            expired.iter().map(|t| t.id).collect::<Vec<_>>(),
            [TicketId(0)]
        );
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.ring, ["b"]);
    }

    #[test]
    fn a_ticket_put_back_is_served_before_newer_work() {
        let now = Instant::now();
        let mut queue = ClassQueue::default();
        queue.push_back(waiting(5, "b", 1, now));
        queue.push_front(waiting(1, "a", 1, now));
        let config = config(10);
        queue.select(&config);
        assert_eq!(queue.pop_selected().unwrap().ticket.id, TicketId(1));
    }
}
