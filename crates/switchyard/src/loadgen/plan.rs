//! What to send: the embedded workload, the mix of kinds, the seeded plan of each request,
//! the open-loop schedule, and the parsers of the arguments that shape them.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_admission::{Class as Priority, ParseClassError};

/// The built-in workload: one request a line.
pub(super) const WORKLOAD: &str = include_str!("../../loadgen/workload.jsonl");

/// `90s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 90s, 2m or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{s}` (ms, s, m or h)")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("the duration `{s}` must be more than zero"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("the duration `{s}` is too long"))
}

pub(super) fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a share between 0 and 1")),
    }
}

/// Weights by kind, as given: `simple=40,hard=15`. Which kinds exist is the workload's
/// business ([`Mix::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mix(Vec<(String, f64)>);

pub(super) fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut weights: Vec<(String, f64)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not KIND=WEIGHT"))?;
        let kind = kind.trim();
        let weight: f64 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w: &f64| *w >= 0.0 && w.is_finite())
            .ok_or_else(|| format!("the weight of `{kind}` must be a number of at least 0"))?;
        if weights.iter().any(|(k, _)| k == kind) {
            return Err(format!("`{kind}` is given twice"));
        }
        weights.push((kind.to_owned(), weight));
    }
    if !weights.iter().any(|(_, w)| *w > 0.0) {
        return Err("give at least one kind a weight above 0".to_owned());
    }
    Ok(Mix(weights))
}

impl Mix {
    /// The kinds with a weight above 0, as indexes into the workload, with their cumulative
    /// share of 1; an unknown kind is an error naming the known ones.
    pub(super) fn resolve(&self, workload: &Workload) -> Result<Vec<(usize, f64)>, String> {
        let total: f64 = self.0.iter().map(|(_, w)| w).sum();
        let mut cumulative = 0.0;
        let mut out = Vec::new();
        for (kind, weight) in &self.0 {
            let index = workload.kind_index(kind).ok_or_else(|| {
                format!(
                    "--mix: no kind `{kind}` in the workload (kinds: {})",
                    workload.kind_names().join(", ")
                )
            })?;
            if *weight > 0.0 {
                cumulative += weight / total;
                out.push((index, cumulative));
            }
        }
        Ok(out)
    }
}

/// The kind whose cumulative share first exceeds `r` (in [0, 1)).
pub(super) fn pick_kind(cumulative: &[(usize, f64)], r: f64) -> usize {
    cumulative
        .iter()
        .find(|(_, c)| r < *c)
        .or(cumulative.last())
        .map_or(0, |(k, _)| *k)
}

#[derive(Deserialize)]
pub(super) struct Row {
    pub(super) kind: String,
    pub(super) prompt: String,
}

/// Prompts by kind, kinds in the order of their first appearance.
pub(super) struct Workload {
    pub(super) kinds: Vec<(String, Vec<String>)>,
}

impl Workload {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: Row =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            match kinds.iter_mut().find(|(k, _)| *k == row.kind) {
                Some((_, prompts)) => prompts.push(row.prompt),
                None => kinds.push((row.kind, vec![row.prompt])),
            }
        }
        Ok(Workload { kinds })
    }

    pub(super) fn kind_index(&self, kind: &str) -> Option<usize> {
        self.kinds.iter().position(|(k, _)| k == kind)
    }

    pub(super) fn kind_names(&self) -> Vec<&str> {
        self.kinds.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Shares of the priority classes, cumulative to 1: `interactive=70,batch=30`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PriorityMix(pub(super) Vec<(Priority, f64)>);

pub(super) fn parse_priorities(s: &str) -> Result<PriorityMix, String> {
    let weights = parse_mix(s)?.0;
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut cumulative = 0.0;
    let mut out = Vec::new();
    for (name, weight) in weights {
        let class: Priority = name.parse().map_err(|e: ParseClassError| e.to_string())?;
        if weight > 0.0 {
            cumulative += weight / total;
            out.push((class, cumulative));
        }
    }
    Ok(PriorityMix(out))
}

/// Kinds whose answers the cache may serve: they are asked at temperature 0.
pub(super) fn cacheable(kind: &str) -> bool {
    matches!(kind, "repeat" | "paraphrase")
}

/// One request to send.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) kind: usize,
    pub(super) kind_name: String,
    pub(super) body: Value,
    pub(super) stream: bool,
    pub(super) feedback: bool,
    /// Sent as `x-switchyard-priority`.
    pub(super) priority: Option<Priority>,
}

pub(super) struct Planner {
    pub(super) rng: StdRng,
    pub(super) workload: Workload,
    pub(super) mix: Vec<(usize, f64)>,
    pub(super) users: u32,
    pub(super) stream_share: f64,
    pub(super) feedback_share: f64,
    pub(super) priorities: Option<PriorityMix>,
}

impl Planner {
    pub(super) fn next(&mut self, model: &str) -> Planned {
        let kind = pick_kind(&self.mix, self.rng.random::<f64>());
        let (name, prompts) = &self.workload.kinds[kind];
        let prompt =
            &prompts[popular_index(prompts.len(), self.rng.random::<f64>(), cacheable(name))];
        let user = self.rng.random_range(0..self.users);
        let stream = self.rng.random_bool(self.stream_share);
        let feedback = self.rng.random_bool(self.feedback_share);
        // Drawn only with a mix, so a seed plans the same requests as before without one.
        let priority = match &self.priorities {
            Some(PriorityMix(shares)) => {
                let r = self.rng.random::<f64>();
                shares
                    .iter()
                    .find(|(_, c)| r < *c)
                    .or(shares.last())
                    .map(|(p, _)| *p)
            }
            None => None,
        };
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "user": format!("loadgen-user-{user:04}"),
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        if cacheable(name) {
            body["temperature"] = json!(0);
        }
        Planned {
            kind,
            kind_name: name.clone(),
            body,
            stream,
            feedback,
            priority,
        }
    }
}

/// Which of `len` prompts to ask, from `u` in [0, 1): uniformly, or for the cacheable kinds
/// with a heavy head (the cube of `u`: the first of 40 questions is asked about 29% of the
/// time, as a few questions dominate real traffic), so repeats and paraphrases meet their
/// originals within a minute. The workload lists paraphrases in their originals' order, so
/// a popular paraphrase has a popular original.
pub(super) fn popular_index(len: usize, u: f64, skewed: bool) -> usize {
    let u = if skewed { u * u * u } else { u };
    ((u * len as f64) as usize).min(len.saturating_sub(1))
}

/// When request `i` of an open-loop run at `rate` per second is due, from the start.
pub(super) fn due_offset(i: u64, rate: f64) -> Duration {
    Duration::try_from_secs_f64(i as f64 / rate).unwrap_or(Duration::MAX)
}

/// How many requests an open-loop run schedules: those due before `duration` ends.
pub(super) fn scheduled_count(rate: f64, duration: Duration) -> u64 {
    let exact = rate * duration.as_secs_f64();
    // Due times are i / rate for i < count; a product that lands on a whole number to within
    // rounding error (3 per second for 1 s) must not gain or lose one.
    let rounded = exact.round();
    if (exact - rounded).abs() < 1e-9 {
        rounded as u64
    } else {
        exact.ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mix_parses_weights_and_refuses_nonsense() {
        let mix = parse_mix("simple=40, hard=15,pii=0").unwrap();
        assert_eq!(
            mix,
            Mix(vec![
                ("simple".into(), 40.0),
                ("hard".into(), 15.0),
                ("pii".into(), 0.0)
            ])
        );
        for bad in ["simple", "simple=-1", "simple=x", "simple=0", "a=1,a=2", ""] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mix_resolves_against_the_workload() {
        let workload = Workload::parse(WORKLOAD).unwrap();
        assert_eq!(
            workload.kind_names(),
            ["simple", "hard", "pii", "injection", "repeat", "paraphrase"]
        );
        let cumulative = parse_mix("hard=1,pii=0,repeat=3")
            .unwrap()
            .resolve(&workload)
            .unwrap();
        assert_eq!(cumulative, vec![(1, 0.25), (4, 1.0)]);
        assert_eq!(pick_kind(&cumulative, 0.0), 1);
        assert_eq!(pick_kind(&cumulative, 0.2499), 1);
        assert_eq!(pick_kind(&cumulative, 0.25), 4);
        assert_eq!(pick_kind(&cumulative, 0.9999), 4);
        let err = parse_mix("nope=1").unwrap().resolve(&workload).unwrap_err();
        assert!(err.contains("kinds: simple, hard"), "{err}");
    }

    #[test]
    fn the_plan_follows_the_mix_and_the_seed() {
        let planner = |seed| Planner {
            rng: StdRng::seed_from_u64(seed),
            workload: Workload::parse(WORKLOAD).unwrap(),
            mix: parse_mix("simple=1,repeat=1")
                .unwrap()
                .resolve(&Workload::parse(WORKLOAD).unwrap())
                .unwrap(),
            users: 3,
            stream_share: 0.5,
            feedback_share: 0.0,
            priorities: None,
        };
        let (mut a, mut b) = (planner(7), planner(7));
        let plans: Vec<Planned> = (0..400).map(|_| a.next("auto")).collect();
        for p in &plans {
            assert_eq!(p.body, b.next("auto").body);
            assert!(!p.feedback);
            assert_eq!(p.body["model"], "auto");
            assert_eq!(p.body["stream"].as_bool().unwrap_or(false), p.stream);
            // Only the cacheable kind is asked at temperature 0.
            assert_eq!(p.body.get("temperature").is_some(), p.kind == 4);
        }
        let repeats = plans.iter().filter(|p| p.kind == 4).count();
        assert!((150..250).contains(&repeats), "{repeats}");
        let users: std::collections::BTreeSet<&str> = plans
            .iter()
            .filter_map(|p| p.body["user"].as_str())
            .collect();
        assert_eq!(users.len(), 3);
    }

    #[test]
    fn priorities_parse_and_are_drawn_by_their_shares() {
        let mix = parse_priorities("interactive=3, batch=1,critical=0").unwrap();
        assert_eq!(
            mix,
            PriorityMix(vec![(Priority::Interactive, 0.75), (Priority::Batch, 1.0)])
        );
        for bad in ["interactive", "urgent=1", "batch=0", "batch=1,batch=2"] {
            assert!(parse_priorities(bad).is_err(), "{bad}");
        }
        let workload = Workload::parse(WORKLOAD).unwrap();
        let planner = |priorities| Planner {
            rng: StdRng::seed_from_u64(3),
            mix: parse_mix("simple=1").unwrap().resolve(&workload).unwrap(),
            workload: Workload::parse(WORKLOAD).unwrap(),
            users: 3,
            stream_share: 0.5,
            feedback_share: 0.5,
            priorities,
        };
        let mut with = planner(Some(mix));
        let plans: Vec<Planned> = (0..400).map(|_| with.next("m")).collect();
        let batch = plans
            .iter()
            .filter(|p| p.priority == Some(Priority::Batch))
            .count();
        assert!((60..140).contains(&batch), "{batch}");
        assert!(plans.iter().all(|p| p.priority.is_some()));
        // Without a mix nothing is drawn for it: the first plan is the same as ever.
        let first = planner(None).next("m");
        assert_eq!(first.priority, None);
        assert_eq!(first.body, planner(None).next("m").body);
    }

    #[test]
    fn the_schedule_is_evenly_spaced_and_ends_with_the_duration() {
        assert_eq!(scheduled_count(4.0, Duration::from_secs(1)), 4);
        assert_eq!(scheduled_count(3.0, Duration::from_secs(1)), 3);
        assert_eq!(scheduled_count(0.1 + 0.2, Duration::from_secs(10)), 3);
        assert_eq!(scheduled_count(2.5, Duration::from_secs(1)), 3);
        assert_eq!(scheduled_count(5.0, Duration::from_secs(60)), 300);
        let dues: Vec<u128> = (0..4).map(|i| due_offset(i, 4.0).as_millis()).collect();
        assert_eq!(dues, [0, 250, 500, 750]);
        // The last one scheduled is due before the end.
        assert!(due_offset(2, 2.5) < Duration::from_secs(1));
    }

    #[test]
    fn cacheable_kinds_favour_their_first_questions() {
        assert_eq!(popular_index(40, 0.0, true), 0);
        assert_eq!(popular_index(40, 0.29, true), 0);
        assert_eq!(popular_index(40, 0.29, false), 11);
        assert_eq!(popular_index(40, 0.999_999, true), 39);
        assert_eq!(popular_index(40, 0.999_999, false), 39);
        assert_eq!(popular_index(1, 0.5, true), 0);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "0s",
            "s",
            "5 parsecs",
            "-1s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
