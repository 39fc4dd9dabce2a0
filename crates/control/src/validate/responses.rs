//! `[responses]`: the bound and the retention of stored responses.

use std::time::Duration;

use super::checker::Checker;
use crate::raw::RawResponses;
use crate::spec::ResponsesSpec;

pub(super) fn responses(c: &mut Checker, r: &RawResponses) -> ResponsesSpec {
    c.within(r.max_stored_kb, 16..=65_536, "responses.max_stored_kb");
    c.within(r.retention_days, 1..=3650, "responses.retention_days");
    ResponsesSpec {
        max_stored_bytes: usize::try_from(r.max_stored_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX),
        retention: Duration::from_secs(u64::from(r.retention_days) * 86_400),
    }
}
