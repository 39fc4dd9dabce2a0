//! SLOs that act: while a page alert of an SLO fires, the actions its `[slos.on_page]` names
//! are in force; when every page of the SLO has resolved, they are undone.
//!
//! The actions are feature flags, so they reach every replica the way any flag does (the
//! store's control generation), are audited like any flag change (actor `slo`), and an
//! operator can see and override them with the admin API:
//! - `shed = "batch"` sets [`flags::SHED`] to the class: requests of it and every lower class
//!   are answered 503 `overloaded`;
//! - `route_policy = { auto = "cheap" }` sets `routes.auto.policy` ([`flags::route_policy`]).
//!
//! Numbered:
//! 1. After each evaluation (on the fleet's judge only), the flags wanted are worked out from
//!    the SLOs whose page fires ([`wanted`]): where several want one flag, the strictest shed
//!    class wins, and for a route the first SLO by name.
//! 2. [`plan`] compares them with the flags the SLOs hold (kept in the SLO state, so a
//!    restart or a new judge carries on): a wanted flag not held is set, remembering the flag
//!    it replaced; a held flag no longer wanted is restored to what it replaced.
//! 3. A held flag someone changed meanwhile (its value is not the one set) is left as they
//!    made it, and forgotten: the operator's word stands.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use switchyard_control::SloActions;
use switchyard_rollout::{AuditEvent, Flag, FlagKind, WeightedVariant};
use switchyard_store::{StoreError, Transact};

use super::slos::Held;
use super::state::ControlPlane;
use crate::data_plane::flags;

/// One change [`plan`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Set `flag` for `slos` (a new flag, or a held one whose wanted value moved).
    Set { flag: Flag, slos: BTreeSet<String> },
    /// Put back what `held` replaced, if the flag is still the one set.
    Restore { key: String, held: Held },
}

/// A variant flag giving everyone `variant`.
fn everyone(key: String, variant: &str) -> Flag {
    Flag {
        key,
        kind: FlagKind::Variant {
            variants: vec![WeightedVariant {
                name: variant.to_owned(),
                weight: 1,
            }],
        },
        enabled: true,
    }
}

/// The flags the SLOs in `paging` want (point 1), by key, with the SLOs that want each.
pub fn wanted(
    paging: &BTreeSet<String>,
    actions: &BTreeMap<String, SloActions>,
) -> BTreeMap<String, (Flag, BTreeSet<String>)> {
    let mut shed: Option<(switchyard_admission::Class, BTreeSet<String>)> = None;
    let mut routes: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (slo, a) in actions.iter().filter(|(slo, _)| paging.contains(*slo)) {
        if let Some(class) = a.shed {
            let (strictest, by) = shed.get_or_insert_with(|| (class, BTreeSet::new()));
            *strictest = (*strictest).max(class);
            by.insert(slo.clone());
        }
        for (route, policy) in &a.route_policy {
            let (_, by) = routes
                .entry(route.clone())
                .or_insert_with(|| (policy.clone(), BTreeSet::new()));
            by.insert(slo.clone());
        }
    }
    let mut out = BTreeMap::new();
    if let Some((class, by)) = shed {
        out.insert(
            flags::SHED.to_owned(),
            (everyone(flags::SHED.to_owned(), class.as_str()), by),
        );
    }
    for (route, (policy, by)) in routes {
        let key = flags::route_policy(&route);
        out.insert(key.clone(), (everyone(key, &policy), by));
    }
    out
}

/// What to change so that the held flags become the wanted ones (point 2).
pub fn plan(
    wanted: &BTreeMap<String, (Flag, BTreeSet<String>)>,
    held: &BTreeMap<String, Held>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (key, (flag, slos)) in wanted {
        let same = held
            .get(key)
            .is_some_and(|h| h.set == *flag && h.slos == *slos);
        if !same {
            steps.push(Step::Set {
                flag: flag.clone(),
                slos: slos.clone(),
            });
        }
    }
    for (key, h) in held {
        if !wanted.contains_key(key) {
            steps.push(Step::Restore {
                key: key.clone(),
                held: h.clone(),
            });
        }
    }
    steps
}

/// Brings the flags in line with the SLOs paging now (points 1-3), saving what is held in
/// the SLO state. Call after an evaluation, on the judge only. Blocks.
pub fn reconcile(state: &Arc<ControlPlane>) -> Result<(), StoreError> {
    let actions = state.running.pipeline.load().config.slo_actions.clone();
    let mut held = state.slos.held_flags();
    let steps = plan(&wanted(&state.slos.paging(), &actions), &held);
    if steps.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().timestamp_millis();
    for step in steps {
        match step {
            Step::Set { flag, slos } => {
                let previous = match held.get(&flag.key) {
                    // Held already with this value: only who wants it changed.
                    Some(h) if h.set == flag => h.previous.clone(),
                    Some(h) => {
                        let reason = format!("SLO {} paging", names(&slos));
                        write(state, &flag.key, Some(&flag), &reason, now)?;
                        h.previous.clone()
                    }
                    None => {
                        let reason = format!("SLO {} paging", names(&slos));
                        write(state, &flag.key, Some(&flag), &reason, now)?
                    }
                };
                tracing::warn!(flag = %flag.key, slos = %names(&slos), "an SLO's page action is in force");
                held.insert(
                    flag.key.clone(),
                    Held {
                        set: flag,
                        previous,
                        slos,
                    },
                );
            }
            Step::Restore { key, held: h } => {
                let current = state.store.flag(&key)?;
                if current.as_ref() == Some(&h.set) {
                    let reason = format!("SLO {} page resolved: restored", names(&h.slos));
                    write(state, &key, h.previous.as_ref(), &reason, now)?;
                    tracing::info!(flag = %key, "an SLO's page action ended");
                } else {
                    tracing::info!(flag = %key, "an SLO's page action ended; the flag was changed since, so it is left as it is");
                }
                held.remove(&key);
            }
        }
    }
    state.slos.set_held_flags(held);
    state.slos.save_all(&*state.store)?;
    state.changed().map(|_| ())
}

/// `` `a`, `b` ``.
fn names(slos: &BTreeSet<String>) -> String {
    slos.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets (`Some`) or deletes (`None`) the flag `key` with its audit entry (actor `slo`) in one
/// transaction; returns the flag it replaced.
fn write(
    state: &ControlPlane,
    key: &str,
    flag: Option<&Flag>,
    reason: &str,
    now_ms: i64,
) -> Result<Option<Flag>, StoreError> {
    state.store.transact(|c| {
        let previous = match flag {
            Some(f) => c.put_flag(f, now_ms)?,
            None => c.delete_flag(key)?,
        };
        if flag.is_some() || previous.is_some() {
            c.append_audit(AuditEvent {
                at_ms: u64::try_from(now_ms).unwrap_or(0),
                actor: "slo".to_owned(),
                action: if flag.is_some() {
                    "flag.set"
                } else {
                    "flag.delete"
                }
                .to_owned(),
                target: format!("flag:{key}"),
                reason: reason.to_owned(),
                diff: switchyard_rollout::diff_lines(
                    &flags::audit_json(previous.as_ref()),
                    &flags::audit_json(flag),
                ),
            })?;
        }
        Ok(previous)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_admission::Class;

    fn actions(shed: Option<Class>, routes: &[(&str, &str)]) -> SloActions {
        SloActions {
            shed,
            route_policy: routes
                .iter()
                .map(|(r, p)| ((*r).to_owned(), (*p).to_owned()))
                .collect(),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn only_paging_slos_want_flags_and_the_strictest_shed_wins() {
        let all = BTreeMap::from([
            (
                "a".to_owned(),
                actions(Some(Class::Batch), &[("auto", "cheap")]),
            ),
            (
                "b".to_owned(),
                actions(Some(Class::Standard), &[("auto", "best")]),
            ),
            ("c".to_owned(), actions(None, &[("other", "0.8")])),
        ]);
        assert!(wanted(&set(&[]), &all).is_empty());
        let w = wanted(&set(&["a", "b"]), &all);
        assert_eq!(w.len(), 2);
        let (shed, by) = &w[flags::SHED];
        assert_eq!(*shed, everyone(flags::SHED.to_owned(), "standard"));
        assert_eq!(*by, set(&["a", "b"]));
        // The first SLO by name decides a route both want.
        let (route, _) = &w[&flags::route_policy("auto")];
        assert_eq!(*route, everyone(flags::route_policy("auto"), "cheap"));
        let w = wanted(&set(&["c"]), &all);
        assert_eq!(w.keys().collect::<Vec<_>>(), vec!["routes.other.policy"]);
    }

    #[test]
    fn the_plan_sets_what_is_wanted_and_restores_what_is_not() {
        let all = BTreeMap::from([("a".to_owned(), actions(Some(Class::Batch), &[]))]);
        let w = wanted(&set(&["a"]), &all);
        let steps = plan(&w, &BTreeMap::new());
        assert_eq!(steps.len(), 1);
        let Step::Set { flag, slos } = &steps[0] else {
            panic!("expected a set, got {steps:?}");
        };
        let held = BTreeMap::from([(
            flag.key.clone(),
            Held {
                set: flag.clone(),
                previous: None,
                slos: slos.clone(),
            },
        )]);
        // Held as wanted: nothing to do.
        assert!(plan(&w, &held).is_empty());
        // No longer paging: restored.
        let steps = plan(&BTreeMap::new(), &held);
        assert!(matches!(&steps[..], [Step::Restore { key, .. }] if key == flags::SHED));
        // Wanted by one more SLO: the same flag, set again for both.
        let all = BTreeMap::from([
            ("a".to_owned(), actions(Some(Class::Batch), &[])),
            ("b".to_owned(), actions(Some(Class::Batch), &[])),
        ]);
        let steps = plan(&wanted(&set(&["a", "b"]), &all), &held);
        assert!(matches!(&steps[..], [Step::Set { slos, .. }] if *slos == set(&["a", "b"])));
    }
}
