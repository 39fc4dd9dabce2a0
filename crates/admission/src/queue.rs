//! One deployment's admission queue.
//!
//! 1. A ticket offered is admitted at once when capacity is free and no ticket of its class
//!    or a higher one waits; otherwise it waits in its class's queue.
//! 2. Capacity is free for a ticket when the holders are fewer than `max_concurrent` and its
//!    tokens fit under `max_tokens_in_flight`; an idle deployment always takes one ticket, so
//!    a ticket larger than the whole token capacity is slow, not impossible.
//! 3. When a holder releases (or is preempted and put back), waiting tickets are admitted
//!    highest class first, by deficit round robin between tenants within a class, until the
//!    next one chosen does not fit: a lower class never overtakes a higher one.
//! 4. A class whose room is full sheds: a newcomer takes the place of the newest ticket of the
//!    lowest class below its own that waits, and is shed itself only when none does.
//! 5. `expire` sheds the tickets that waited past their class's `max_wait`.
//! 6. When critical or interactive work waits and batch tickets hold capacity, the batch
//!    holder admitted last is named for preemption; the caller cancels it and `requeue`s it,
//!    ahead of newer batch work. A holder `pin`ned (its first byte went to the client) is
//!    never named.
//! 7. A waiting ticket whose request went away is `withdraw`n; what it blocked may then be
//!    admitted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::class::{Class, PerClass};
use crate::config::{Capacity, QueueConfig};
use crate::drr::{ClassQueue, Waiting};
use crate::rate::ReleaseRate;
use crate::ticket::{AdmissionError, Ticket, TicketId};

/// What became of an offered ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Offer {
    /// It holds capacity now; the caller releases it when done.
    Admitted,
    /// It waits; `evicted` is the lower-class ticket shed to make room for it.
    Queued { evicted: Option<Ticket> },
    /// Its class's room is full and no lower class waits: the ticket is shed.
    Shed(Ticket),
}

#[derive(Debug)]
struct Holder {
    ticket: Ticket,
    /// When it was offered, to keep its place if put back.
    offered: u64,
    /// When it was admitted, to preempt the last one first.
    admitted: u64,
    /// Its answer has begun: it is not preempted any more.
    pinned: bool,
}

/// The admission queue of one deployment (see the module's steps).
#[derive(Debug)]
pub struct Queue {
    config: QueueConfig,
    waiting: PerClass<ClassQueue>,
    waiting_ids: HashSet<TicketId>,
    holders: HashMap<TicketId, Holder>,
    tokens_in_flight: u64,
    seq: u64,
    rate: ReleaseRate,
}

impl Queue {
    pub fn new(config: QueueConfig) -> Self {
        Queue {
            config,
            waiting: PerClass::default(),
            waiting_ids: HashSet::new(),
            holders: HashMap::new(),
            tokens_in_flight: 0,
            seq: 0,
            rate: ReleaseRate::default(),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Steps 1 and 4: admits, queues or sheds a ticket.
    pub fn offer(&mut self, ticket: Ticket) -> Result<Offer, AdmissionError> {
        if self.waiting_ids.contains(&ticket.id) || self.holders.contains_key(&ticket.id) {
            return Err(AdmissionError::Duplicate(ticket.id));
        }
        let offered = self.next_seq();
        if self.admit_now(ticket.class, ticket.tokens) {
            self.hold(ticket, offered);
            return Ok(Offer::Admitted);
        }
        let class = ticket.class;
        let evicted = if self.has_room(class) {
            None
        } else {
            match self.evict_below(class) {
                Some(evicted) => Some(evicted),
                None => return Ok(Offer::Shed(ticket)),
            }
        };
        self.waiting_ids.insert(ticket.id);
        self.waiting[class].push_back(Waiting {
            ticket,
            seq: offered,
        });
        Ok(Offer::Queued { evicted })
    }

    /// Whether a ticket of `class` costing `tokens` would be admitted at once (step 1): a
    /// router may send it elsewhere when not.
    pub fn admit_now(&self, class: Class, tokens: u64) -> bool {
        let higher_waits = Class::ASCENDING
            .into_iter()
            .filter(|waiting| *waiting >= class)
            .any(|waiting| !self.waiting[waiting].is_empty());
        !higher_waits && self.fits(tokens)
    }

    /// A new capacity (a replica's share as the fleet grows or shrinks). Holders beyond a
    /// smaller one keep running; nothing is admitted until they fit. Returns the tickets a
    /// larger one admits now.
    pub fn set_capacity(&mut self, capacity: Capacity) -> Vec<Ticket> {
        self.config.capacity = capacity;
        self.drain()
    }

    /// Step 3: a holder is done. Returns the tickets admitted in its place, in order.
    pub fn release(&mut self, id: TicketId, now: Instant) -> Result<Vec<Ticket>, AdmissionError> {
        self.unhold(id)?;
        self.rate.observe(now);
        Ok(self.drain())
    }

    /// Step 6: puts a preempted holder back in its class's queue, ahead of the work of its
    /// class offered after it, and returns the tickets admitted in its place.
    pub fn requeue(&mut self, id: TicketId) -> Result<Vec<Ticket>, AdmissionError> {
        let holder = self.unhold(id)?;
        let class = holder.ticket.class;
        self.waiting_ids.insert(id);
        self.waiting[class].push_front(Waiting {
            ticket: holder.ticket,
            seq: holder.offered,
        });
        Ok(self.drain())
    }

    /// Step 5: sheds the tickets that waited past their class's limit, highest class first.
    pub fn expire(&mut self, now: Instant) -> Vec<Ticket> {
        let mut expired = Vec::new();
        for class in Class::DESCENDING {
            let max_wait = self.config.classes[class].max_wait;
            expired.extend(self.waiting[class].remove_expired(now, max_wait));
        }
        for ticket in &expired {
            self.waiting_ids.remove(&ticket.id);
        }
        expired
    }

    /// How long a request of `class` shed now should wait before trying again: the tickets
    /// that would be served before it, times the observed time between releases, within the
    /// configured floor and ceiling. Never shorter for a longer queue.
    pub fn retry_after(&self, class: Class) -> Duration {
        let ahead: usize = Class::ASCENDING
            .into_iter()
            .filter(|waiting| *waiting >= class)
            .map(|waiting| self.waiting[waiting].len())
            .sum();
        self.rate.estimate(
            ahead + 1,
            self.config.retry_after_floor,
            self.config.retry_after_ceiling,
        )
    }

    /// Step 6: the batch holder to preempt (the one admitted last) when critical or
    /// interactive work waits.
    pub fn preemption_candidate(&self) -> Option<&Ticket> {
        let urgent_waits = [Class::Critical, Class::Interactive]
            .into_iter()
            .any(|class| !self.waiting[class].is_empty());
        if !urgent_waits {
            return None;
        }
        self.holders
            .values()
            .filter(|holder| holder.ticket.class == Class::Batch && !holder.pinned)
            .max_by_key(|holder| holder.admitted)
            .map(|holder| &holder.ticket)
    }

    /// Step 6: the holder `id` may no longer be preempted (its answer has begun).
    pub fn pin(&mut self, id: TicketId) -> Result<(), AdmissionError> {
        let holder = self
            .holders
            .get_mut(&id)
            .ok_or(AdmissionError::NotHeld(id))?;
        holder.pinned = true;
        Ok(())
    }

    /// Step 7: removes the waiting ticket `id` (its request went away). Returns whether it
    /// waited, and the tickets admitted now that it no longer blocks them.
    pub fn withdraw(&mut self, id: TicketId) -> (bool, Vec<Ticket>) {
        if !self.waiting_ids.remove(&id) {
            return (false, Vec::new());
        }
        for class in Class::ASCENDING {
            if self.waiting[class].remove(id).is_some() {
                break;
            }
        }
        (true, self.drain())
    }

    /// Tickets of `class` waiting.
    pub fn depth(&self, class: Class) -> usize {
        self.waiting[class].len()
    }

    /// Tickets holding capacity.
    pub fn in_flight(&self) -> usize {
        self.holders.len()
    }

    pub fn tokens_in_flight(&self) -> u64 {
        self.tokens_in_flight
    }

    /// Whether `id` holds capacity.
    pub fn holds(&self, id: TicketId) -> bool {
        self.holders.contains_key(&id)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn fits(&self, tokens: u64) -> bool {
        let capacity = self.config.capacity;
        let concurrent_ok = capacity
            .max_concurrent
            .is_none_or(|max| self.holders.len() < max as usize);
        let tokens_ok = capacity
            .max_tokens_in_flight
            .is_none_or(|max| self.tokens_in_flight.saturating_add(tokens) <= max);
        self.holders.is_empty() || (concurrent_ok && tokens_ok)
    }

    fn has_room(&self, class: Class) -> bool {
        let total: usize = self.waiting.0.iter().map(ClassQueue::len).sum();
        self.waiting[class].len() < self.config.classes[class].max_queue
            && total < self.config.total_room()
    }

    fn evict_below(&mut self, class: Class) -> Option<Ticket> {
        let lower = Class::ASCENDING.into_iter().filter(|lower| *lower < class);
        for lower in lower {
            if let Some(evicted) = self.waiting[lower].remove_newest() {
                self.waiting_ids.remove(&evicted.id);
                return Some(evicted);
            }
        }
        None
    }

    fn hold(&mut self, ticket: Ticket, offered: u64) {
        let admitted = self.next_seq();
        self.tokens_in_flight = self.tokens_in_flight.saturating_add(ticket.tokens);
        let holder = Holder {
            ticket,
            offered,
            admitted,
            pinned: false,
        };
        self.holders.insert(holder.ticket.id, holder);
    }

    fn unhold(&mut self, id: TicketId) -> Result<Holder, AdmissionError> {
        let holder = self
            .holders
            .remove(&id)
            .ok_or(AdmissionError::NotHeld(id))?;
        self.tokens_in_flight = self.tokens_in_flight.saturating_sub(holder.ticket.tokens);
        Ok(holder)
    }

    /// Step 3.
    fn drain(&mut self) -> Vec<Ticket> {
        let mut admitted = Vec::new();
        for class in Class::DESCENDING {
            while let Some(tokens) = self.waiting[class].select(&self.config) {
                if !self.fits(tokens) {
                    return admitted;
                }
                let Some(waiting) = self.waiting[class].pop_selected() else {
                    break;
                };
                self.waiting_ids.remove(&waiting.ticket.id);
                admitted.push(waiting.ticket.clone());
                self.hold(waiting.ticket, waiting.seq);
            }
        }
        admitted
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
