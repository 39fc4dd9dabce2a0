//! `[cache]` and the cache policy a route adjusts.

use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use crate::raw::RawCache;
use crate::spec::{CachePolicySpec, CacheSpec, PairCheckSpec};

pub(super) fn cache_spec(c: &mut Checker, rc: &RawCache) -> CacheSpec {
    c.ensure(rc.max_mb > 0, "cache.max_mb", "must be greater than 0");
    c.ensure(rc.top_k > 0, "cache.top_k", "must be at least 1");
    c.ensure(
        !rc.embedder.trim().is_empty(),
        "cache.embedder",
        "must name the folder of the static embedding model",
    );
    let pair_check = rc.pair_check.as_ref().and_then(|source| {
        c.ensure(
            !rc.minilm.trim().is_empty(),
            "cache.minilm",
            "must name the folder of MiniLM when pair_check is set",
        );
        let check = crate::builtin::load_pair_check(source)
            .map_err(|e| c.err("cache.pair_check", e))
            .ok()?;
        Some(PairCheckSpec {
            source: source.clone(),
            check: std::sync::Arc::new(check),
            minilm: PathBuf::from(&rc.minilm),
        })
    });
    let defaults = CachePolicySpec {
        enabled: rc.enabled,
        semantic: rc.semantic,
        threshold: rc.threshold,
        ttl: Duration::from_secs(rc.ttl_secs),
        allow_temperature: rc.allow_temperature,
    };
    check_cache_policy(c, "cache", &defaults);
    CacheSpec {
        max_bytes: usize::try_from(rc.max_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        embedder: PathBuf::from(&rc.embedder),
        top_k: rc.top_k,
        defaults,
        pair_check,
    }
}

pub(super) fn check_cache_policy(c: &mut Checker, path: &str, p: &CachePolicySpec) {
    c.ensure(
        p.threshold > 0.0 && p.threshold <= 1.0,
        format!("{path}.threshold"),
        "must be a cosine similarity in (0, 1]",
    );
    c.ensure(
        !p.ttl.is_zero(),
        format!("{path}.ttl_secs"),
        "must be greater than 0",
    );
}
