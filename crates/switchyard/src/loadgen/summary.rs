//! The summary: per kind, per priority class (with `--priority`) and overall, requests by
//! outcome (503 `overloaded` sheds apart), cache hits, latency percentiles,
//! time to first token, achieved rate, models served and feedback; as a table or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::args::{Args, Shape};
use super::send::{Class, Outcome};
use switchyard_admission::Class as Priority;

/// The value at quantile `q` (0 to 1) of `sorted` by the nearest-rank method: the smallest
/// value with at least `q` of the samples at or below it.
pub(super) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub(super) struct Latency {
    pub(super) p50: Option<f64>,
    pub(super) p95: Option<f64>,
    pub(super) p99: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct KindSummary {
    pub(super) kind: String,
    /// Sent (dropped ones are not).
    pub(super) requests: u64,
    pub(super) ok: u64,
    /// Guard refusals (400 `content_policy_violation`).
    pub(super) refused: u64,
    /// Other 4xx, 429 apart.
    pub(super) client_errors: u64,
    pub(super) rate_limited: u64,
    pub(super) server_errors: u64,
    /// 503 `overloaded`: shed by the gateway.
    pub(super) shed: u64,
    /// No answer: connection errors, timeouts, broken streams.
    pub(super) network_errors: u64,
    pub(super) dropped: u64,
    pub(super) cache_hits: u64,
    pub(super) cache_hits_semantic: u64,
    pub(super) streams: u64,
    /// Milliseconds, of answered requests (ok), from the due time in rate mode.
    pub(super) latency_ms: Latency,
    pub(super) ttft_ms_p50: Option<f64>,
    pub(super) ttft_ms_p95: Option<f64>,
    pub(super) ttft_ms_p99: Option<f64>,
    /// Requests sent per second of the run.
    pub(super) rate: f64,
    pub(super) models: BTreeMap<String, u64>,
    pub(super) feedback_sent: u64,
    pub(super) feedback_failed: u64,
}

impl KindSummary {
    /// Sent and not answered, sheds and guard refusals apart.
    pub(super) fn errors(&self) -> u64 {
        self.client_errors + self.rate_limited + self.server_errors + self.network_errors
    }

    /// `window`: how long requests were being sent (the run's duration), for the rate.
    pub(super) fn of<'a>(
        kind: &str,
        outcomes: impl Iterator<Item = &'a Outcome>,
        window: Duration,
    ) -> Self {
        let mut s = KindSummary {
            kind: kind.to_owned(),
            ..KindSummary::default()
        };
        let mut latencies = Vec::new();
        let mut ttfts = Vec::new();
        for o in outcomes {
            if o.class == Class::Dropped {
                s.dropped += 1;
                continue;
            }
            s.requests += 1;
            match o.class {
                Class::Ok => s.ok += 1,
                Class::Refused => s.refused += 1,
                Class::ClientError => s.client_errors += 1,
                Class::RateLimited => s.rate_limited += 1,
                Class::ServerError => s.server_errors += 1,
                Class::Shed => s.shed += 1,
                Class::Network | Class::Dropped => s.network_errors += 1,
            }
            if let Some(cache) = &o.cache {
                s.cache_hits += 1;
                s.cache_hits_semantic += u64::from(cache == "hit-semantic");
            }
            s.streams += u64::from(o.stream);
            if o.class == Class::Ok {
                latencies.push(o.latency.as_secs_f64() * 1000.0);
                if let Some(t) = o.ttft {
                    ttfts.push(t.as_secs_f64() * 1000.0);
                }
            }
            if let Some(m) = &o.model {
                *s.models.entry(m.clone()).or_default() += 1;
            }
            match o.feedback {
                Some(true) => s.feedback_sent += 1,
                Some(false) => s.feedback_failed += 1,
                None => {}
            }
        }
        latencies.sort_by(f64::total_cmp);
        ttfts.sort_by(f64::total_cmp);
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        s.latency_ms = Latency {
            p50: round(percentile(&latencies, 0.50)),
            p95: round(percentile(&latencies, 0.95)),
            p99: round(percentile(&latencies, 0.99)),
        };
        s.ttft_ms_p50 = round(percentile(&ttfts, 0.50));
        s.ttft_ms_p95 = round(percentile(&ttfts, 0.95));
        s.ttft_ms_p99 = round(percentile(&ttfts, 0.99));
        s.rate = (s.requests as f64 / window.as_secs_f64().max(1e-9) * 100.0).round() / 100.0;
        s
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) target: String,
    pub(super) model: String,
    pub(super) mode: &'static str,
    pub(super) rate: Option<f64>,
    pub(super) concurrency: Option<usize>,
    pub(super) duration_s: f64,
    pub(super) elapsed_s: f64,
    pub(super) seed: u64,
    pub(super) kinds: Vec<KindSummary>,
    /// Per priority class sent (`kind` names the class), with `--priority`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) priorities: Vec<KindSummary>,
    pub(super) overall: KindSummary,
}

impl Summary {
    pub(super) fn build(
        args: &Args,
        shape: Shape,
        seed: u64,
        elapsed: Duration,
        kind_names: &[String],
        outcomes: &[Outcome],
    ) -> Self {
        let kinds = kind_names
            .iter()
            .enumerate()
            .filter(|(i, _)| outcomes.iter().any(|o| o.kind == *i))
            .map(|(i, name)| {
                KindSummary::of(name, outcomes.iter().filter(|o| o.kind == i), args.duration)
            })
            .collect();
        let priorities = Priority::DESCENDING
            .into_iter()
            .filter(|p| outcomes.iter().any(|o| o.priority == Some(*p)))
            .map(|p| {
                let of_class = outcomes.iter().filter(|o| o.priority == Some(p));
                KindSummary::of(p.as_str(), of_class, args.duration)
            })
            .collect();
        let (mode, rate, concurrency) = match shape {
            Shape::Rate(r) => ("rate", Some(r), None),
            Shape::Concurrency(n) => ("concurrency", None, Some(n)),
        };
        Summary {
            target: args.target.clone(),
            model: args.model.clone(),
            mode,
            rate,
            concurrency,
            duration_s: args.duration.as_secs_f64(),
            elapsed_s: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
            seed,
            kinds,
            priorities,
            overall: KindSummary::of("all", outcomes.iter(), args.duration),
        }
    }

    pub(super) fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let load = match (self.rate, self.concurrency) {
            (Some(r), _) => format!("{r} requests/s"),
            (_, Some(n)) => format!("concurrency {n}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{} requests to {} (model {}) over {} s at {load}, the last answered after {:.1} s; seed {}",
            self.overall.requests, self.target, self.model, self.duration_s, self.elapsed_s, self.seed
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>6} {:>7} {:>4} {:>4} {:>4} {:>4} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>6}",
            "kind",
            "sent",
            "ok",
            "refused",
            "4xx",
            "429",
            "5xx",
            "shed",
            "net",
            "cached",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "ttft p50",
            "req/s"
        );
        for k in self.kinds.iter().chain(std::iter::once(&self.overall)) {
            let _ = writeln!(
                out,
                "{:<11} {:>6} {:>6} {:>7} {:>4} {:>4} {:>4} {:>4} {:>4} {:>6} {:>7} {:>7} {:>7} {:>9} {:>6.2}",
                k.kind,
                k.requests,
                k.ok,
                k.refused,
                k.client_errors,
                k.rate_limited,
                k.server_errors,
                k.shed,
                k.network_errors,
                k.cache_hits,
                ms(k.latency_ms.p50),
                ms(k.latency_ms.p95),
                ms(k.latency_ms.p99),
                ms(k.ttft_ms_p50),
                k.rate
            );
        }
        self.priority_table(&mut out);
        let _ = writeln!(out);
        let models: Vec<String> = self
            .overall
            .models
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        let _ = writeln!(out, "models served:  {}", models.join(", "));
        let _ = writeln!(
            out,
            "cache hits:     {} ({} semantic)",
            self.overall.cache_hits, self.overall.cache_hits_semantic
        );
        let _ = writeln!(
            out,
            "feedback sent:  {} ({} failed)",
            self.overall.feedback_sent, self.overall.feedback_failed
        );
        if self.overall.dropped > 0 {
            let _ = writeln!(
                out,
                "dropped:        {} (due while --max-inflight were outstanding)",
                self.overall.dropped
            );
        }
        out
    }

    /// The block per priority class, with `--priority`.
    fn priority_table(&self, out: &mut String) {
        use std::fmt::Write;
        if self.priorities.is_empty() {
            return;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9}",
            "priority",
            "sent",
            "ok",
            "errors",
            "shed",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "ttft p50",
            "ttft p95",
            "ttft p99"
        );
        for p in &self.priorities {
            let _ = writeln!(
                out,
                "{:<11} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9}",
                p.kind,
                p.requests,
                p.ok,
                p.errors(),
                p.shed,
                ms(p.latency_ms.p50),
                ms(p.latency_ms.p95),
                ms(p.latency_ms.p99),
                ms(p.ttft_ms_p50),
                ms(p.ttft_ms_p95),
                ms(p.ttft_ms_p99)
            );
        }
    }
}

/// Milliseconds as the table shows them: whole, or `-` for none.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summaries_count_by_class_and_cache() {
        let ok = |ms: u64, cache: Option<&str>| Outcome {
            kind: 0,
            class: Class::Ok,
            stream: false,
            latency: Duration::from_millis(ms),
            ttft: None,
            cache: cache.map(str::to_owned),
            model: Some("small".into()),
            feedback: Some(true),
            priority: None,
        };
        let mut outcomes = vec![
            ok(10, None),
            ok(20, Some("hit-exact")),
            ok(30, Some("hit-semantic")),
        ];
        outcomes.push(Outcome {
            class: Class::Refused,
            model: None,
            feedback: None,
            ..ok(1, None)
        });
        for class in [Class::Dropped, Class::Shed] {
            outcomes.push(Outcome {
                class,
                model: None,
                feedback: None,
                ..ok(0, None)
            });
        }
        let s = KindSummary::of("simple", outcomes.iter(), Duration::from_secs(2));
        assert_eq!((s.requests, s.ok, s.refused, s.dropped), (5, 3, 1, 1));
        assert_eq!((s.shed, s.errors()), (1, 0));
        assert_eq!((s.cache_hits, s.cache_hits_semantic), (2, 1));
        assert_eq!(s.latency_ms.p50, Some(20.0));
        assert_eq!(s.latency_ms.p99, Some(30.0));
        assert_eq!(s.models["small"], 3);
        assert_eq!(s.feedback_sent, 3);
        assert_eq!(s.rate, 2.5);
    }

    #[test]
    fn with_priorities_each_class_gets_its_line() {
        let one = |priority, class, ttft_ms| Outcome {
            kind: 0,
            class,
            stream: true,
            latency: Duration::from_millis(100),
            ttft: Some(Duration::from_millis(ttft_ms)),
            cache: None,
            model: None,
            feedback: None,
            priority: Some(priority),
        };
        let outcomes = vec![
            one(Priority::Batch, Class::Shed, 0),
            one(Priority::Interactive, Class::Ok, 10),
            one(Priority::Batch, Class::Ok, 40),
            one(Priority::Interactive, Class::Ok, 20),
            one(Priority::Batch, Class::ServerError, 0),
        ];
        let args = <crate::Cli as clap::Parser>::try_parse_from([
            "switchyard",
            "loadgen",
            "--priority",
            "interactive=1,batch=1",
        ]);
        let Ok(crate::Cli {
            command: Some(crate::Command::Loadgen(args)),
            ..
        }) = args
        else {
            panic!("loadgen arguments");
        };
        let s = Summary::build(
            &args,
            Shape::Rate(1.0),
            1,
            Duration::ZERO,
            &["k".into()],
            &outcomes,
        );
        let lines: Vec<(&str, u64, u64, u64, Option<f64>)> = s
            .priorities
            .iter()
            .map(|p| {
                (
                    p.kind.as_str(),
                    p.requests,
                    p.shed,
                    p.errors(),
                    p.ttft_ms_p99,
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("interactive", 2, 0, 0, Some(20.0)),
                ("batch", 3, 1, 1, Some(40.0))
            ]
        );
        let table = s.table();
        assert!(table.contains("priority"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("batch")), "{table}");
    }
}
