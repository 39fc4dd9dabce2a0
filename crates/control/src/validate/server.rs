//! `[server]`, `[storage]` and `[telemetry]`: how the process listens, where it keeps its data
//! and what it logs and stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::checker::Checker;
use super::values::{env_name, http_url};
use crate::raw::{RawOtlp, RawRedis, RawServer, RawStorage, RawTelemetry};
use crate::spec::{
    ContentSpec, LogFormat, OtlpSpec, RedisFailure, RedisSpec, ServerSpec, StorageSpec,
    TelemetrySpec,
};
use crate::SecretUrl;

pub(super) fn server(c: &mut Checker, s: &RawServer) -> ServerSpec {
    let listen = match s.listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.err(
                "server.listen",
                format!(
                    "`{}` is not an address with a port, e.g. \"127.0.0.1:8080\"",
                    s.listen
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    c.ensure(
        s.max_body_bytes > 0,
        "server.max_body_bytes",
        "must be greater than 0",
    );
    ServerSpec {
        listen,
        max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
        demo: s.demo,
    }
}

pub(super) fn storage(c: &mut Checker, s: &RawStorage) -> StorageSpec {
    c.ensure(
        !s.data_dir.trim().is_empty(),
        "storage.data_dir",
        "must not be empty",
    );
    let postgres = s.url.as_deref().and_then(|url| {
        SecretUrl::postgres(url)
            .map_err(|e| c.err("storage.url", e))
            .ok()
    });
    c.ensure(
        s.spool_max_mb > 0 && s.spool_max_mb <= 1 << 20,
        "storage.spool_max_mb",
        "must be between 1 and 1048576",
    );
    StorageSpec {
        data_dir: PathBuf::from(&s.data_dir),
        postgres,
        spool_max_bytes: s.spool_max_mb.saturating_mul(1 << 20),
    }
}

pub(super) fn redis(c: &mut Checker, r: Option<&RawRedis>) -> Option<RedisSpec> {
    let r = r?;
    let url = SecretUrl::redis(&r.url)
        .map_err(|e| c.err("redis.url", e))
        .ok();
    let on_failure = match r.on_failure.as_str() {
        "per_replica" => RedisFailure::PerReplica,
        "refuse" => RedisFailure::Refuse,
        other => {
            c.err(
                "redis.on_failure",
                format!("`{other}` is not one of `per_replica`, `refuse`"),
            );
            return None;
        }
    };
    Some(RedisSpec {
        url: url?,
        on_failure,
    })
}

pub(super) fn telemetry(c: &mut Checker, t: &RawTelemetry) -> TelemetrySpec {
    c.ensure(
        t.queue_capacity > 0,
        "telemetry.queue_capacity",
        "must be greater than 0",
    );
    c.ensure(
        t.batch_size > 0,
        "telemetry.batch_size",
        "must be greater than 0",
    );
    c.ensure(
        t.flush_interval_ms > 0,
        "telemetry.flush_interval_ms",
        "must be greater than 0",
    );
    let log_format = match t.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            c.err(
                "telemetry.log_format",
                format!("`{other}` is not one of \"json\", \"text\""),
            );
            LogFormat::Json
        }
    };
    let stores_content = c.one_of(
        "telemetry.content".to_owned(),
        &t.content,
        &[("none", false), ("masked", true)],
        false,
    );
    let (bytes, days) = (
        ContentSpec::MAX_BYTES_RANGE,
        ContentSpec::RETENTION_DAYS_RANGE,
    );
    c.ensure(
        bytes.contains(&t.content_max_bytes),
        "telemetry.content_max_bytes",
        format!("must be between {} and {}", bytes.start(), bytes.end()),
    );
    c.ensure(
        days.contains(&t.content_retention_days),
        "telemetry.content_retention_days",
        format!("must be between {} and {}", days.start(), days.end()),
    );
    TelemetrySpec {
        queue_capacity: t.queue_capacity,
        batch_size: t.batch_size,
        flush_interval: Duration::from_millis(t.flush_interval_ms),
        log_format,
        log_level: t.log_level.clone(),
        access_log: t.access_log,
        content: stores_content.then(|| ContentSpec {
            max_bytes: usize::try_from(t.content_max_bytes).unwrap_or(usize::MAX),
        }),
        content_retention: Duration::from_secs(u64::from(t.content_retention_days) * 86_400),
        otlp: t.otlp.as_ref().map(|o| otlp(c, o)),
    }
}

fn otlp(c: &mut Checker, o: &RawOtlp) -> OtlpSpec {
    let endpoint =
        (!o.endpoint.is_empty()).then(|| http_url(c, "telemetry.otlp.endpoint", &o.endpoint));
    env_name(c, "telemetry.otlp.headers_env", &o.headers_env);
    c.ensure(
        (0.0..=1.0).contains(&o.sampling_ratio),
        "telemetry.otlp.sampling_ratio",
        "must be between 0 and 1",
    );
    let (timeouts, queues) = (OtlpSpec::TIMEOUT_MS_RANGE, OtlpSpec::QUEUE_RANGE);
    c.ensure(
        timeouts.contains(&o.timeout_ms),
        "telemetry.otlp.timeout_ms",
        format!(
            "must be between {} and {}",
            timeouts.start(),
            timeouts.end()
        ),
    );
    c.ensure(
        queues.contains(&o.queue_size),
        "telemetry.otlp.queue_size",
        format!("must be between {} and {}", queues.start(), queues.end()),
    );
    OtlpSpec {
        endpoint,
        headers_env: o.headers_env.clone(),
        service_name: (!o.service_name.is_empty()).then(|| o.service_name.clone()),
        sampling_ratio: o.sampling_ratio.clamp(0.0, 1.0),
        timeout: Duration::from_millis(o.timeout_ms),
        queue_size: o.queue_size,
        metrics: o.metrics,
    }
}
