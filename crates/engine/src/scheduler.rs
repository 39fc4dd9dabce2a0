//! Who runs and who waits, without time.
//!
//! 1. A sequence arrives into the waiting queue, ordered by priority (lower first), then by
//!    arrival.
//! 2. The head of the queue starts when a slot is free and the KV cache has room for its
//!    prompt and output; then the next head, and so on. A head that does not fit blocks the
//!    ones behind it (as vLLM's scheduler does), so a large request is never starved by
//!    smaller ones slipping past.
//! 3. A sequence that ends (or leaves the queue) frees what it held, and step 2 runs again.

use std::collections::{BTreeMap, HashMap};

/// A sequence's place in an engine: unique per engine, increasing with arrival.
pub type SeqId = u64;

#[derive(Debug)]
pub struct Scheduler {
    slots: u32,
    kv_budget: u64,
    kv_used: u64,
    /// Running sequences and the KV tokens each holds.
    running: HashMap<SeqId, u64>,
    /// Waiting sequences by (priority, arrival), with the KV tokens each needs.
    waiting: BTreeMap<(i64, SeqId), u64>,
    /// Where each waiting sequence is in `waiting`.
    priorities: HashMap<SeqId, i64>,
    next: SeqId,
}

impl Scheduler {
    pub fn new(slots: u32, kv_budget: u64) -> Self {
        Scheduler {
            slots,
            kv_budget,
            kv_used: 0,
            running: HashMap::new(),
            waiting: BTreeMap::new(),
            priorities: HashMap::new(),
            next: 0,
        }
    }

    /// A sequence needing `kv` tokens arrives: its id, and whether it started at once.
    /// No other sequence starts on an arrival (the queue's head was already blocked).
    pub fn arrive(&mut self, kv: u64, priority: Option<i64>) -> (SeqId, bool) {
        let id = self.next;
        self.next += 1;
        let priority = priority.unwrap_or(0);
        self.waiting.insert((priority, id), kv);
        self.priorities.insert(id, priority);
        let started = self.start_heads();
        (id, started.contains(&id))
    }

    /// A sequence ends, running or waiting: the waiting sequences that start because of it.
    pub fn remove(&mut self, id: SeqId) -> Vec<SeqId> {
        if let Some(kv) = self.running.remove(&id) {
            self.kv_used = self.kv_used.saturating_sub(kv);
        } else if let Some(priority) = self.priorities.remove(&id) {
            self.waiting.remove(&(priority, id));
        } else {
            return Vec::new();
        }
        self.start_heads()
    }

    pub fn load(&self) -> Load {
        Load {
            waiting: u32::try_from(self.waiting.len()).unwrap_or(u32::MAX),
            running: u32::try_from(self.running.len()).unwrap_or(u32::MAX),
            kv_used_tokens: self.kv_used,
            kv_capacity_tokens: self.kv_budget,
        }
    }

    /// Step 2 of the module comment.
    fn start_heads(&mut self) -> Vec<SeqId> {
        let mut started = Vec::new();
        while let Some((&(priority, id), &kv)) = self.waiting.first_key_value() {
            let free_slot = self.running.len() < self.slots as usize;
            if !free_slot || self.kv_used + kv > self.kv_budget {
                break;
            }
            self.waiting.remove(&(priority, id));
            self.priorities.remove(&id);
            self.running.insert(id, kv);
            self.kv_used += kv;
            started.push(id);
        }
        started
    }
}

/// What an engine reports about itself: what vLLM's `/metrics` calls
/// `num_requests_waiting`, `num_requests_running` and `kv_cache_usage_perc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub waiting: u32,
    pub running: u32,
    pub kv_used_tokens: u64,
    pub kv_capacity_tokens: u64,
}

impl Load {
    /// KV-cache use, 0 to 1.
    pub fn kv_usage(&self) -> f64 {
        if self.kv_capacity_tokens == 0 {
            return 0.0;
        }
        self.kv_used_tokens as f64 / self.kv_capacity_tokens as f64
    }
}
