//! What an engine's `/metrics` says about its load, per engine.
//!
//! | engine | waiting | running | KV-cache use (0 to 1) |
//! |---|---|---|---|
//! | vLLM | `vllm:num_requests_waiting` | `vllm:num_requests_running` | `vllm:kv_cache_usage_perc`, before v0.10 `vllm:gpu_cache_usage_perc` |
//! | llama.cpp | `llamacpp:requests_deferred` | `llamacpp:requests_processing` | `llamacpp:kv_cache_usage_ratio` (older servers) |
//! | TGI | `tgi_queue_size` | `tgi_batch_current_size` | none |
//! | SGLang | `sglang:num_queue_reqs` | `sglang:num_running_reqs` | `sglang:token_usage` |
//!
//! A server with several engines (vLLM's data parallel ranks, one series per `engine` label)
//! reports each: counts are summed, KV-cache use is the fullest one's.

use crate::exposition;

/// The self-hosted engines whose metrics the gateway reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Vllm,
    LlamaCpp,
    Tgi,
    Sglang,
}

impl EngineKind {
    pub const ALL: [EngineKind; 4] = [
        EngineKind::Vllm,
        EngineKind::LlamaCpp,
        EngineKind::Tgi,
        EngineKind::Sglang,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vllm",
            EngineKind::LlamaCpp => "llamacpp",
            EngineKind::Tgi => "tgi",
            EngineKind::Sglang => "sglang",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The gauges of the table above: waiting, running, then KV-cache use in order of
    /// preference.
    fn gauges(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            EngineKind::Vllm => (
                "vllm:num_requests_waiting",
                "vllm:num_requests_running",
                &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
            ),
            EngineKind::LlamaCpp => (
                "llamacpp:requests_deferred",
                "llamacpp:requests_processing",
                &["llamacpp:kv_cache_usage_ratio"],
            ),
            EngineKind::Tgi => ("tgi_queue_size", "tgi_batch_current_size", &[]),
            EngineKind::Sglang => (
                "sglang:num_queue_reqs",
                "sglang:num_running_reqs",
                &["sglang:token_usage"],
            ),
        }
    }
}

/// An engine's load as its metrics tell it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub waiting: u32,
    pub running: u32,
    /// 0 to 1; `None` when the engine does not say.
    pub kv_usage: Option<f64>,
}

/// What was missing from an engine's metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {engine} metrics have no `{missing}` gauge")]
pub struct MissingGauge {
    pub engine: &'static str,
    pub missing: &'static str,
}

/// Reads `kind`'s load from its metrics text.
pub fn read(kind: EngineKind, text: &str) -> Result<Reading, MissingGauge> {
    let (waiting_name, running_name, kv_names) = kind.gauges();
    let mut waiting = None;
    let mut running = None;
    // By preference: the first name of `kv_names` that appears wins.
    let mut kv: Option<(usize, f64)> = None;
    for s in exposition::samples(text) {
        if !s.value.is_finite() {
            continue;
        }
        if s.name == waiting_name {
            *waiting.get_or_insert(0.0) += s.value;
        } else if s.name == running_name {
            *running.get_or_insert(0.0) += s.value;
        } else if let Some(rank) = kv_names.iter().position(|n| *n == s.name) {
            kv = match kv {
                Some((r, v)) if r < rank => Some((r, v)),
                Some((r, v)) if r == rank => Some((r, v.max(s.value))),
                _ => Some((rank, s.value)),
            };
        }
    }
    let missing = |name| MissingGauge {
        engine: kind.as_str(),
        missing: name,
    };
    Ok(Reading {
        waiting: count(waiting.ok_or_else(|| missing(waiting_name))?),
        running: count(running.ok_or_else(|| missing(running_name))?),
        kv_usage: kv.map(|(_, v)| v.clamp(0.0, 1.0)),
    })
}

/// A gauge as a count: rounded, negative as 0, huge as `u32::MAX` (`as` saturates).
fn count(v: f64) -> u32 {
    v.round().max(0.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_is_read_from_its_own_gauges() {
        let cases = [
            (
                EngineKind::Vllm,
                "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2\n\
                 vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 3\n\
                 vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 4\n\
                 vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n\
                 vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n\
                 vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.5\n",
                Reading { waiting: 5, running: 4, kv_usage: Some(0.5) },
            ),
            (
                EngineKind::Vllm,
                "vllm:num_requests_waiting{model_name=\"m\"} 0.0\n\
                 vllm:num_requests_running{model_name=\"m\"} 1.0\n\
                 vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.125\n",
                Reading { waiting: 0, running: 1, kv_usage: Some(0.125) },
            ),
            (
                EngineKind::LlamaCpp,
                "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n\
                 llamacpp:requests_deferred 7\n",
                Reading { waiting: 7, running: 2, kv_usage: None },
            ),
            (
                EngineKind::Tgi,
                "tgi_queue_size 1\ntgi_batch_current_size 8\n",
                Reading { waiting: 1, running: 8, kv_usage: None },
            ),
            (
                EngineKind::Sglang,
                "sglang:num_queue_reqs{model_name=\"m\"} 4\nsglang:num_running_reqs{model_name=\"m\"} 16\n\
                 sglang:token_usage{model_name=\"m\"} 0.7\n",
                Reading { waiting: 4, running: 16, kv_usage: Some(0.7) },
            ),
        ];
        for (kind, text, want) in cases {
            assert_eq!(read(kind, text), Ok(want), "{kind:?}");
        }
    }

    #[test]
    fn missing_or_nonsense_gauges_are_errors_not_zeros() {
        let err = read(EngineKind::Vllm, "vllm:num_requests_running 1\n").unwrap_err();
        assert_eq!(err.missing, "vllm:num_requests_waiting");
        assert!(read(
            EngineKind::Tgi,
            "tgi_queue_size NaN\ntgi_batch_current_size 1\n"
        )
        .is_err());
        assert!(read(EngineKind::LlamaCpp, "<html>not metrics</html>").is_err());
        let huge = read(
            EngineKind::Tgi,
            "tgi_queue_size 1e30\ntgi_batch_current_size -4\n",
        );
        assert_eq!(huge.map(|r| (r.waiting, r.running)), Ok((u32::MAX, 0)));
    }
}
