//! `[batch]`: the Batch API's limits and its worker.

use std::time::Duration;

use super::checker::Checker;
use crate::raw::RawBatch;
use crate::spec::BatchSpec;

pub(super) fn batch(c: &mut Checker, b: &RawBatch) -> BatchSpec {
    c.within(b.max_file_mb, 1..=2048, "batch.max_file_mb");
    c.within(b.max_lines, 1..=1_000_000, "batch.max_lines");
    c.ensure(
        b.concurrency <= 1024,
        "batch.concurrency",
        "must be at most 1024",
    );
    c.within(b.lease_secs, 1..=86_400, "batch.lease_secs");
    c.within(b.max_attempts, 1..=10, "batch.max_attempts");
    c.ensure(
        b.retry_backoff_ms <= 600_000,
        "batch.retry_backoff_ms",
        "must be at most 600000",
    );
    c.within(b.retention_days, 1..=3650, "batch.retention_days");
    let discount = if c.within(b.price_discount, 0.0..=1.0, "batch.price_discount") {
        b.price_discount
    } else {
        0.0
    };
    BatchSpec {
        max_file_bytes: b.max_file_mb.saturating_mul(1 << 20),
        max_lines: usize::try_from(b.max_lines).unwrap_or(usize::MAX),
        concurrency: usize::try_from(b.concurrency).unwrap_or(0),
        lease: Duration::from_secs(b.lease_secs),
        max_attempts: b.max_attempts,
        retry_backoff: Duration::from_millis(b.retry_backoff_ms),
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 to 1 000 000 after the check above"
        )]
        pay_ppm: ((1.0 - discount) * 1_000_000.0).round() as u64,
        retention: Duration::from_secs(u64::from(b.retention_days) * 86_400),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::BatchSpec;

    #[test]
    fn the_discount_is_exact_in_nanos() {
        let spec = |pay_ppm| BatchSpec {
            max_file_bytes: 1,
            max_lines: 1,
            concurrency: 1,
            lease: std::time::Duration::from_secs(1),
            max_attempts: 1,
            retry_backoff: std::time::Duration::ZERO,
            pay_ppm,
            retention: std::time::Duration::ZERO,
        };
        assert_eq!(spec(500_000).discounted(1_001), 500);
        assert_eq!(spec(1_000_000).discounted(u64::MAX), u64::MAX);
        assert_eq!(spec(0).discounted(7), 0);
    }
}
