//! What a request's guard verdicts mean for the KPIs ([`GuardFlags`], by
//! `switchyard_guards::Outcome`): the one definition, which the telemetry writer stores as
//! columns with each record and the KPIs (`kpi`) read, and the SQL that computes the same flags from a row's
//! JSON for rows written without the columns (the migration that added them, and older
//! replicas). It sits below both the writer (`sqlite`) and the KPIs, so they share it
//! without importing each other.

/// The guard flags of a row as computed from its JSON, over `requests r`: what the migration
/// that added the flag columns backfilled, and the fallback for rows a build older than them
/// writes later (a replica not yet upgraded leaves the columns NULL). `COALESCE` evaluates
/// these only for such rows, so the JSON is not parsed for the others. They must agree with
/// [`GuardFlags::of`] (a test checks): elements of an array (members of an object, or the
/// value itself), and a non-object has no outcome (reading a string element as JSON, as the
/// SQL before the columns did, would fail the whole migration on a string not JSON).
use switchyard_guards::Outcome;

macro_rules! legacy_verdict_sql {
    ($outcome_is:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(r.guards) THEN r.guards END) g \
             WHERE json_extract(CASE WHEN g.type = 'object' THEN g.value END, '$.outcome') ",
            $outcome_is,
            ")"
        )
    };
}

macro_rules! legacy_spoiled_sql {
    () => {
        $crate::verdicts::legacy_verdict_sql!(
            "IN ('failed', 'stopped', 'replaced', 'blocked', 'refused')"
        )
    };
}

macro_rules! legacy_refused_sql {
    () => {
        concat!(
            "(COALESCE(r.deployment, '') = 'guard' OR ",
            $crate::verdicts::legacy_verdict_sql!("IN ('blocked', 'refused')"),
            ")"
        )
    };
}

macro_rules! legacy_triggered_sql {
    () => {
        $crate::verdicts::legacy_verdict_sql!("IS NOT 'pass'")
    };
}

pub(crate) use {legacy_refused_sql, legacy_spoiled_sql, legacy_triggered_sql, legacy_verdict_sql};

/// What a request's guard verdicts mean for the KPIs: the one definition, computed by the
/// telemetry writer as it stores the record (the `guard_*` columns), so a KPI over a month
/// reads three integers a row instead of parsing every row's JSON three times.
///
/// `guards` is the verdicts' JSON as the gateway records it (an array of objects with an
/// `outcome`); text that is not JSON, or null, holds no verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardFlags {
    /// A guard refused the request: a `blocked` or `refused` verdict (a 400, or the topic
    /// filter's polite answer, recorded with the deployment `guard`).
    pub refused: bool,
    /// A guard triggered on the request: any verdict other than `pass` (one without an
    /// outcome included).
    pub triggered: bool,
    /// A verdict that keeps the request from being a successful interaction: `failed`,
    /// `stopped`, `replaced`, `blocked` or `refused`. A `flagged`, `masked` or `fixed` one, or
    /// a guard's own `error`, does not (when an erroring guard refuses, the request is a 4xx).
    pub spoiled: bool,
}

impl GuardFlags {
    /// The flags of a record with this deployment and guard verdicts' JSON.
    pub fn of(deployment: Option<&str>, guards: Option<&str>) -> Self {
        let parsed = parse(guards);
        Self::of_verdicts(deployment, &elements(parsed.as_ref()))
    }

    /// The flags and the verdicts themselves, parsed once: what the PostgreSQL writer stores
    /// beside the JSON text (a JSON array of [`GuardFlags::of`]'s elements; `None` when the
    /// text is null or not JSON), so its reports read the verdicts without parsing text.
    pub(crate) fn with_verdicts(
        deployment: Option<&str>,
        guards: Option<&str>,
    ) -> (Self, Option<serde_json::Value>) {
        let parsed = parse(guards);
        let verdicts = elements(parsed.as_ref());
        let flags = Self::of_verdicts(deployment, &verdicts);
        let array = parsed
            .is_some()
            .then(|| serde_json::Value::Array(verdicts.into_iter().cloned().collect()));
        (flags, array)
    }

    fn of_verdicts(deployment: Option<&str>, verdicts: &[&serde_json::Value]) -> Self {
        let mut flags = GuardFlags {
            refused: deployment == Some("guard"),
            ..GuardFlags::default()
        };
        for verdict in verdicts {
            // A non-string outcome is no known one, but still not `pass`.
            let name = verdict.get("outcome").and_then(serde_json::Value::as_str);
            let outcome = name.and_then(Outcome::parse);
            flags.triggered |= outcome != Some(Outcome::Pass);
            flags.refused |= outcome.is_some_and(Outcome::refuses);
            flags.spoiled |= outcome.is_some_and(Outcome::spoils);
        }
        flags
    }
}

/// The verdicts' JSON, when it is JSON.
fn parse(guards: Option<&str>) -> Option<serde_json::Value> {
    guards.and_then(|g| serde_json::from_str::<serde_json::Value>(g).ok())
}

/// The verdicts in parsed JSON: the elements of an array, the values of an object's members,
/// or the value itself (as SQLite's `json_each` reads them).
fn elements(parsed: Option<&serde_json::Value>) -> Vec<&serde_json::Value> {
    match parsed {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(serde_json::Value::Object(members)) => members.values().collect(),
        Some(value) => vec![value],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdicts_beside_the_flags_are_the_elements_the_flags_read() {
        let (flags, verdicts) = GuardFlags::with_verdicts(
            None,
            Some(r#"[{"guard":"pii","outcome":"pass"},{"guard":"x","outcome":"blocked"}]"#),
        );
        assert_eq!(
            flags,
            GuardFlags::of(
                None,
                Some(r#"[{"guard":"pii","outcome":"pass"},{"guard":"x","outcome":"blocked"}]"#)
            )
        );
        assert!(flags.refused && flags.triggered && flags.spoiled);
        assert_eq!(
            verdicts,
            Some(serde_json::json!([
                {"guard":"pii","outcome":"pass"},
                {"guard":"x","outcome":"blocked"}
            ]))
        );
        let members = GuardFlags::with_verdicts(None, Some(r#"{"a":{"outcome":"pass"}}"#)).1;
        assert_eq!(members, Some(serde_json::json!([{"outcome":"pass"}])));
        assert_eq!(
            GuardFlags::with_verdicts(None, Some("null")).1,
            Some(serde_json::json!([null]))
        );
        assert_eq!(GuardFlags::with_verdicts(None, Some("not json")).1, None);
        assert_eq!(
            GuardFlags::with_verdicts(Some("guard"), None),
            (
                GuardFlags {
                    refused: true,
                    ..GuardFlags::default()
                },
                None
            )
        );
    }
}
