//! What every provider entry shares: its breaker fields and the defaults of its common
//! fields (apart from `raw.rs`, so the entries in `cloud.rs` use them without a cycle).

use serde::Deserialize;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub consecutive_failures: Option<u32>,
    pub failure_rate: Option<f64>,
    pub min_requests: Option<u32>,
    pub window_secs: Option<u64>,
    pub open_secs: Option<u64>,
}

pub(super) fn default_connect_timeout_ms() -> u64 {
    5_000
}

pub(super) fn default_max_tokens() -> u32 {
    4096
}
