//! The SLI book the gateway keeps: every SLO's series over its whole window, a shorter one per
//! config version (what a rollout compares), and latency sketches, fed one request outcome at
//! a time and persisted as one serde value.
//!
//! 1. `observe` offers a request to every SLO whose scope matches its route and model;
//!    [`Sli::judge`] says whether the SLO counts it and whether it was good.
//! 2. A counted request goes to the SLO's series (retention: the SLO window) and to the
//!    series of its config version (retention: `version_retention_secs`, default one day;
//!    a rollout step looks at hours, and a version's history is not needed for the budget).
//! 3. Latency and time-to-first-token SLOs also record the measured value in a
//!    [`SketchSeries`] for percentiles.
//! 4. `set_specs` (a config reload) keeps the history of an SLO whose scope, objective and
//!    window are unchanged (a new target re-reads the same counts) and starts afresh otherwise.
//! 5. `regrade` changes the verdict on a request already counted when what it was judged on
//!    turns out otherwise later (negative feedback after the answer): only the objectives that
//!    judge the two outcomes differently move it, between good and bad, never the total.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::series::{Series, SeriesConfig, Sli};
use crate::sketch::SketchSeries;
use crate::spec::{Objective, SloSpec};

/// A day: how long a config version's own series is kept by default.
pub const DEFAULT_VERSION_RETENTION_SECS: i64 = 86_400;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Book {
    spec: SloSpec,
    all: Series,
    by_version: BTreeMap<String, Series>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<SketchSeries>,
}

impl Book {
    fn new(spec: SloSpec) -> Self {
        let values = matches!(
            spec.objective,
            Objective::Latency { .. } | Objective::Ttft { .. }
        )
        .then(SketchSeries::default);
        Book {
            all: Series::for_spec(&spec),
            by_version: BTreeMap::new(),
            values,
            spec,
        }
    }

    /// Same history meaning: scope, objective and window.
    fn compatible(&self, spec: &SloSpec) -> bool {
        self.spec.scope == spec.scope
            && self.spec.objective == spec.objective
            && self.spec.window_secs == spec.window_secs
    }
}

/// Every SLO's SLI history (see the module comment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ledger {
    books: BTreeMap<String, Book>,
    version_retention_secs: i64,
}

impl Ledger {
    /// A ledger for validated `specs` ([`crate::spec::validate_all`]).
    pub fn new(specs: &[SloSpec]) -> Self {
        let mut ledger = Ledger {
            books: BTreeMap::new(),
            version_retention_secs: DEFAULT_VERSION_RETENTION_SECS,
        };
        ledger.set_specs(specs);
        ledger
    }

    pub fn with_version_retention(mut self, secs: i64) -> Self {
        self.version_retention_secs = secs;
        self
    }

    /// Replaces the SLOs (point 4).
    pub fn set_specs(&mut self, specs: &[SloSpec]) {
        let mut books = BTreeMap::new();
        for spec in specs {
            let book = match self.books.remove(&spec.name) {
                Some(mut old) if old.compatible(spec) => {
                    old.spec = spec.clone();
                    old
                }
                _ => Book::new(spec.clone()),
            };
            books.insert(spec.name.clone(), book);
        }
        self.books = books;
    }

    pub fn specs(&self) -> impl Iterator<Item = &SloSpec> {
        self.books.values().map(|b| &b.spec)
    }

    /// Counts one request for every SLO that matches it (points 1-3).
    pub fn observe(
        &mut self,
        at_secs: i64,
        route: Option<&str>,
        model: &str,
        version: &str,
        sli: &Sli,
    ) {
        let retention = self.version_retention_secs;
        for book in self.books.values_mut() {
            if !book.spec.scope.matches(route, model) {
                continue;
            }
            let Some(good) = sli.judge(&book.spec.objective) else {
                continue;
            };
            book.all.record(at_secs, good);
            book.by_version
                .entry(version.to_owned())
                .or_insert_with(|| {
                    Series::new(SeriesConfig {
                        fine_span_secs: retention,
                        retention_secs: retention,
                        ..SeriesConfig::default()
                    })
                })
                .record(at_secs, good);
            let value = match book.spec.objective {
                Objective::Latency { .. } => Some(sli.latency_ms),
                Objective::Ttft { .. } => sli.ttft_ms,
                _ => None,
            };
            if let (Some(values), Some(v)) = (&mut book.values, value) {
                values.record(at_secs, v);
            }
        }
    }

    /// A request counted at `at_secs` was judged on `before` and is now known to be `after`
    /// (point 5): every SLO that matches it and judges the two differently turns its event
    /// from good to bad (or back) in its whole series and its version's. Returns how many
    /// SLOs changed.
    ///
    /// Nothing is recorded: the totals stay, and an event that is no longer there (aged out,
    /// never counted) changes nothing. [`Self::advance`] to the present first, so an event
    /// older than a series' retention is ignored however long the series went without traffic.
    pub fn regrade(
        &mut self,
        at_secs: i64,
        route: Option<&str>,
        model: &str,
        version: &str,
        before: &Sli,
        after: &Sli,
    ) -> usize {
        let mut changed = 0;
        for book in self.books.values_mut() {
            if !book.spec.scope.matches(route, model) {
                continue;
            }
            let (Some(was), Some(is)) = (
                before.judge(&book.spec.objective),
                after.judge(&book.spec.objective),
            ) else {
                continue;
            };
            if was == is {
                continue;
            }
            let delta = if is { 1 } else { -1 };
            if book.all.regrade(at_secs, delta) != 0 {
                changed += 1;
            }
            if let Some(v) = book.by_version.get_mut(version) {
                v.regrade(at_secs, delta);
            }
        }
        changed
    }

    /// Adds another ledger's events (another replica's): the fleet's view of an SLO is the sum
    /// of its replicas' ledgers. An SLO counts the other's events only when the other ledger
    /// has it with the same history meaning (scope, objective, window: a replica still on
    /// an older config version is left out of the SLOs it judges differently).
    pub fn merge(&mut self, other: &Ledger) {
        for (name, book) in &mut self.books {
            let Some(theirs) = other.books.get(name) else {
                continue;
            };
            if !book.compatible(&theirs.spec) {
                continue;
            }
            book.all.merge(&theirs.all);
            for (version, series) in &theirs.by_version {
                match book.by_version.get_mut(version) {
                    Some(mine) => mine.merge(series),
                    None => {
                        book.by_version.insert(version.clone(), series.clone());
                    }
                }
            }
            if let (Some(mine), Some(values)) = (&mut book.values, &theirs.values) {
                // Both made by this crate with the same accuracy: merging cannot fail.
                let _ = mine.merge(values);
            }
        }
    }

    /// Moves every series' clock to `now` (drops what aged out, and versions left empty).
    pub fn advance(&mut self, now: i64) {
        for book in self.books.values_mut() {
            book.all.advance(now);
            book.by_version.retain(|_, s| {
                s.advance(now);
                s.bucket_counts() != (0, 0)
            });
        }
    }

    /// An SLO's series over all versions.
    pub fn series(&self, slo: &str) -> Option<&Series> {
        self.books.get(slo).map(|b| &b.all)
    }

    /// An SLO's series for one config version (recent history only).
    pub fn version_series(&self, slo: &str, version: &str) -> Option<&Series> {
        self.books.get(slo)?.by_version.get(version)
    }

    /// The versions an SLO has recent history for.
    pub fn versions(&self, slo: &str) -> Vec<&str> {
        self.books
            .get(slo)
            .map(|b| b.by_version.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Latency (or time to first token) sketches of a latency SLO's counted requests.
    pub fn values(&self, slo: &str) -> Option<&SketchSeries> {
        self.books.get(slo)?.values.as_ref()
    }

    /// Each SLO with its whole series, for evaluation and status.
    pub fn iter(&self) -> impl Iterator<Item = (&SloSpec, &Series)> {
        self.books.values().map(|b| (&b.spec, &b.all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Counts;
    use crate::spec::Scope;

    fn ok(latency_ms: f64) -> Sli {
        Sli::answered(latency_ms)
    }

    fn specs() -> Vec<SloSpec> {
        vec![
            SloSpec::new("avail", Objective::Availability, 0.999),
            SloSpec::new(
                "small-latency",
                Objective::Latency { threshold_ms: 1000 },
                0.9,
            )
            .with_scope(Scope {
                route: None,
                model: Some("small".into()),
            }),
        ]
    }

    #[test]
    fn outcomes_go_to_matching_slos_and_their_versions() {
        let mut l = Ledger::new(&specs());
        l.observe(0, Some("auto"), "small", "v1", &ok(500.0));
        l.observe(10, Some("auto"), "small", "v2", &ok(1500.0));
        l.observe(20, None, "large", "v2", &ok(3000.0));
        l.observe(
            30,
            None,
            "large",
            "v2",
            &Sli {
                status: 503,
                ..ok(10.0)
            },
        );
        let all = l.series("avail").unwrap().window_counts(59, 60);
        assert_eq!(all, Counts { good: 3, total: 4 });
        let lat = l.series("small-latency").unwrap().window_counts(59, 60);
        assert_eq!(lat, Counts { good: 1, total: 2 });
        assert_eq!(l.versions("small-latency"), vec!["v1", "v2"]);
        let v2 = l
            .version_series("avail", "v2")
            .unwrap()
            .window_counts(59, 60);
        assert_eq!(v2, Counts { good: 2, total: 3 });
        let values = l.values("small-latency").unwrap().window(59, 300);
        assert_eq!(values.count(), 2);
        assert!(l.values("avail").is_none());
    }

    #[test]
    fn replicas_ledgers_merge_into_the_fleets_counts_values_and_versions() {
        // Three replicas, each with its share of the same minute's traffic.
        let mut replicas: Vec<Ledger> = (0..3).map(|_| Ledger::new(&specs())).collect();
        for i in 0..30 {
            let latency = if i % 10 == 0 { 1500.0 } else { 200.0 };
            let version = if i < 15 { "v1" } else { "v2" };
            replicas[i % 3].observe(i as i64, None, "small", version, &ok(latency));
        }
        let mut fleet = Ledger::new(&specs());
        for r in &replicas {
            fleet.merge(r);
        }
        let lat = fleet.series("small-latency").unwrap().window_counts(59, 60);
        assert_eq!(
            lat,
            Counts {
                good: 27,
                total: 30
            }
        );
        let v2 = fleet
            .version_series("small-latency", "v2")
            .unwrap()
            .window_counts(59, 60);
        assert_eq!(v2.total, 15);
        let values = fleet.values("small-latency").unwrap().window(59, 300);
        assert_eq!(values.count(), 30);
        assert_eq!(values.max(), Some(1500.0));
        // The same merged into one replica's own copy gives the same fleet.
        let mut again = replicas[0].clone();
        again.merge(&replicas[1]);
        again.merge(&replicas[2]);
        assert_eq!(
            again.series("avail").unwrap().window_counts(59, 60),
            fleet.series("avail").unwrap().window_counts(59, 60)
        );
    }

    #[test]
    fn a_replica_judging_an_slo_differently_is_left_out_of_it() {
        let mut mine = Ledger::new(&specs());
        mine.observe(0, None, "small", "v1", &ok(1500.0));
        let mut older = specs();
        older[1].objective = Objective::Latency { threshold_ms: 2000 };
        let mut theirs = Ledger::new(&older);
        theirs.observe(0, None, "small", "v1", &ok(1500.0));
        mine.merge(&theirs);
        let lat = mine.series("small-latency").unwrap().window_counts(59, 60);
        assert_eq!(lat, Counts { good: 0, total: 1 }, "only its own event");
        let avail = mine.series("avail").unwrap().window_counts(59, 60);
        assert_eq!(avail.total, 2, "the SLO both judge alike counts both");
    }

    #[test]
    fn versions_age_out_and_reloads_keep_compatible_history() {
        let mut l = Ledger::new(&specs());
        l.observe(0, None, "small", "v1", &ok(1.0));
        l.advance(2 * DEFAULT_VERSION_RETENTION_SECS);
        assert!(l.versions("avail").is_empty());
        assert_eq!(
            l.series("avail")
                .unwrap()
                .window_counts(2 * DEFAULT_VERSION_RETENTION_SECS, 30 * 86_400)
                .total,
            1
        );
        // A new target keeps history; a new objective starts afresh; removed SLOs go.
        let mut next = specs();
        next[0].target = 0.99;
        next[1].objective = Objective::Latency { threshold_ms: 2000 };
        l.observe(100, None, "small", "v1", &ok(1.0));
        l.set_specs(&next);
        assert_eq!(l.series("avail").unwrap().window_counts(100, 60).total, 1);
        assert_eq!(
            l.series("small-latency")
                .unwrap()
                .window_counts(100, 60)
                .total,
            0
        );
        l.set_specs(&next[..1]);
        assert!(l.series("small-latency").is_none());
        assert_eq!(l.specs().count(), 1);
        assert_eq!(l.iter().count(), 1);
    }

    #[test]
    fn late_feedback_regrades_only_quality_in_matching_slos_and_versions() {
        let mut specs = specs();
        specs.push(SloSpec::new("quality", Objective::Quality, 0.9));
        specs.push(
            SloSpec::new("auto-quality", Objective::Quality, 0.9).with_scope(Scope {
                route: Some("auto".into()),
                model: None,
            }),
        );
        let mut l = Ledger::new(&specs);
        let answered = ok(100.0);
        let disliked = Sli {
            feedback_negative: true,
            ..answered
        };
        l.observe(0, None, "small", "v1", &answered);
        l.observe(70, Some("auto"), "small", "v1", &answered);
        l.advance(600);
        assert_eq!(
            l.regrade(70, Some("auto"), "small", "v1", &answered, &disliked),
            2
        );
        let q = |l: &Ledger, slo: &str| l.series(slo).unwrap().window_counts(600, 3600);
        assert_eq!(q(&l, "quality"), Counts { good: 1, total: 2 });
        assert_eq!(q(&l, "auto-quality"), Counts { good: 0, total: 1 });
        assert_eq!(q(&l, "avail"), Counts { good: 2, total: 2 });
        assert_eq!(q(&l, "small-latency"), Counts { good: 2, total: 2 });
        let v1 = l.version_series("quality", "v1").unwrap();
        assert_eq!(v1.window_counts(600, 3600), Counts { good: 1, total: 2 });
        // A request without a route is not the route's; an unanswered one is no quality event.
        assert_eq!(l.regrade(0, None, "small", "v1", &answered, &disliked), 1);
        assert_eq!(q(&l, "auto-quality"), Counts { good: 0, total: 1 });
        let failed = Sli {
            status: 502,
            ..answered
        };
        let failed_disliked = Sli {
            feedback_negative: true,
            ..failed
        };
        assert_eq!(
            l.regrade(0, None, "small", "v1", &failed, &failed_disliked),
            0
        );
        // Back to good, once; a third turn finds nothing bad left in the bucket.
        assert_eq!(
            l.regrade(70, Some("auto"), "small", "v1", &disliked, &answered),
            2
        );
        assert_eq!(q(&l, "quality"), Counts { good: 1, total: 2 });
        // Beyond the window the event is gone.
        l.advance(31 * 86_400);
        assert_eq!(
            l.regrade(70, Some("auto"), "small", "v1", &answered, &disliked),
            0
        );
    }

    proptest::proptest! {
        #[test]
        fn regrades_never_change_totals_or_overdraw_good(
            requests in proptest::collection::vec(
                (0i64..7_200, proptest::bool::ANY, proptest::bool::ANY, 100u16..600),
                1..60,
            ),
            turns in proptest::collection::vec((0usize..60, proptest::bool::ANY), 0..80),
        ) {
            let mut specs = specs();
            specs.push(SloSpec::new("quality", Objective::Quality, 0.9));
            let mut l = Ledger::new(&specs);
            let mut sorted = requests.clone();
            sorted.sort_by_key(|r| r.0);
            let slis: Vec<Sli> = sorted
                .iter()
                .map(|&(_, guard_passed, slow, status)| Sli {
                    status,
                    guard_passed,
                    ..ok(if slow { 5_000.0 } else { 10.0 })
                })
                .collect();
            for (&(at, _, _, _), sli) in sorted.iter().zip(&slis) {
                l.observe(at, None, "small", "v1", sli);
            }
            let now = 7_200;
            let counts = |l: &Ledger| -> Vec<Counts> {
                l.iter().map(|(_, s)| s.window_counts(now, 86_400)).collect()
            };
            let before = counts(&l);
            for &(i, negative) in &turns {
                let Some((&(at, _, _, _), sli)) = sorted.iter().zip(&slis).nth(i) else {
                    continue;
                };
                let disliked = Sli { feedback_negative: true, ..*sli };
                let (from, to) = if negative { (sli, &disliked) } else { (&disliked, sli) };
                l.regrade(at, None, "small", "v1", from, to);
            }
            let after = counts(&l);
            for ((b, a), (spec, _)) in before.iter().zip(&after).zip(l.iter()) {
                proptest::prop_assert_eq!(a.total, b.total, "{}", spec.name);
                proptest::prop_assert!(a.good <= a.total);
                if spec.objective != Objective::Quality {
                    proptest::prop_assert_eq!(a, b, "{}", spec.name);
                }
            }
        }
    }

    #[test]
    fn serde_round_trip() {
        let mut l = Ledger::new(&specs());
        l.observe(0, None, "small", "v1", &ok(800.0));
        let json = serde_json::to_string(&l).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        assert_eq!(back.series("avail"), l.series("avail"));
        assert_eq!(
            back.version_series("small-latency", "v1"),
            l.version_series("small-latency", "v1")
        );
        assert_eq!(
            back.values("small-latency").unwrap().window(0, 300).count(),
            1
        );
    }
}
