//! Feature flags at request time: which flags the gateway's stages read, and the set in force.
//!
//! Flags are data in the store (`PUT /admin/v1/flags/KEY`), evaluated per request for the
//! request's user ([`user_key`]) by `switchyard_rollout::evaluate`, so a user keeps their value
//! on every replica. The running set is swapped whole when the store's control generation
//! moves (polled every second, and at once after an admin change on this replica): a flip
//! takes effect on the next request, with no restart.
//!
//! The stages read these keys, and only these are accepted, so a typo is an error rather than
//! a flag nothing reads:
//! - `cache`: off bypasses the response cache (no lookup, no store);
//! - `cache.semantic`: off keeps the exact tier only;
//! - `guards.policy`: a variant flag whose variant names the guard policy to use
//!   (`default` for `[guards]`, or a `[guard_policies.NAME]`), over the key's and the route's;
//! - `routes.NAME.policy`: a variant flag whose variant is the router policy (`cheap`,
//!   `balanced`, `best` or a bar such as `0.8`) when the caller gave none;
//! - `admission.shed`: a variant flag whose variant names a priority class: requests of it
//!   and every lower class are shed (503 `overloaded`). An SLO's page sets it
//!   (`[slos.on_page] shed`), and an operator may.

use std::collections::HashMap;

use axum::http::HeaderMap;
use switchyard_api::ChatCompletionRequest;
use switchyard_rollout::{evaluate, Flag, FlagKind, FlagValue};

pub const CACHE: &str = "cache";
pub const SEMANTIC_CACHE: &str = "cache.semantic";
pub const GUARD_POLICY: &str = "guards.policy";
pub const SHED: &str = "admission.shed";
/// The header that names the user for sticky flags and rollouts (else the request's `user`,
/// else the key).
pub const USER_HEADER: &str = "x-switchyard-user";

/// The flag that switches a route's default router policy.
pub fn route_policy(route: &str) -> String {
    format!("routes.{route}.policy")
}

/// The flags in force, by key.
#[derive(Debug, Default)]
pub struct FlagSet {
    by_key: HashMap<String, Flag>,
}

impl FlagSet {
    pub fn new(flags: Vec<Flag>) -> Self {
        FlagSet {
            by_key: flags.into_iter().map(|f| (f.key.clone(), f)).collect(),
        }
    }

    /// The flag's value for `user`; `None` when no such flag is set.
    pub fn value(&self, key: &str, user: &str) -> Option<FlagValue> {
        self.by_key.get(key).map(|f| evaluate(f, user))
    }

    /// Whether a switch flag is set and off for `user` (an unset flag changes nothing).
    pub fn is_off(&self, key: &str, user: &str) -> bool {
        self.value(key, user) == Some(FlagValue::Off)
    }

    /// The variant a variant flag gives `user`.
    pub fn variant(&self, key: &str, user: &str) -> Option<String> {
        match self.value(key, user)? {
            FlagValue::Variant(v) => Some(v),
            _ => None,
        }
    }
}

/// A flag as the audit trail's diffs show it (empty for none).
pub fn audit_json(flag: Option<&Flag>) -> String {
    flag.and_then(|f| serde_json::to_string_pretty(f).ok())
        .unwrap_or_default()
}

/// Who the request is for, for sticky splits: the `x-switchyard-user` header, else the
/// request's `user`, else the key.
pub fn user_key(headers: &HeaderMap, request: &ChatCompletionRequest, key_id: &str) -> String {
    user_key_of(headers, request.user.as_deref(), key_id)
}

/// [`user_key`] from its parts, for callers that have not parsed the whole request.
pub fn user_key_of(headers: &HeaderMap, user: Option<&str>, key_id: &str) -> String {
    headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| user.filter(|u| !u.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| format!("key:{key_id}"))
}

/// Why a flag cannot be set: its own problems, and whether a stage reads it with that kind.
/// `routes` and `guard_policies` are the names the running config declares.
pub fn problems(flag: &Flag, routes: &[&str], guard_policies: &[&str]) -> Vec<String> {
    let mut out = flag.problems();
    let variants: Vec<&str> = match &flag.kind {
        FlagKind::Variant { variants } => variants.iter().map(|v| v.name.as_str()).collect(),
        _ => Vec::new(),
    };
    let is_variant = matches!(flag.kind, FlagKind::Variant { .. });
    let key = flag.key.as_str();
    if key == CACHE || key == SEMANTIC_CACHE {
        if is_variant {
            out.push(format!("`{key}` is a switch: boolean or percentage"));
        }
    } else if key == GUARD_POLICY {
        if !is_variant {
            out.push(format!("`{key}` is a variant flag naming guard policies"));
        }
        for v in &variants {
            if *v != "default" && !guard_policies.contains(v) {
                out.push(format!(
                    "variant `{v}` names no [guard_policies.{v}] (or `default` for [guards])"
                ));
            }
        }
    } else if let Some(route) = key
        .strip_prefix("routes.")
        .and_then(|r| r.strip_suffix(".policy"))
    {
        if !routes.contains(&route) {
            out.push(format!("no route `{route}` is declared"));
        }
        if !is_variant {
            out.push(format!("`{key}` is a variant flag naming router policies"));
        }
        for v in &variants {
            if v.parse::<switchyard_route::Policy>().is_err() {
                out.push(format!(
                    "variant `{v}` is not a router policy (cheap, balanced, best or a bar like 0.8)"
                ));
            }
        }
    } else if key == SHED {
        if !is_variant {
            out.push(format!("`{key}` is a variant flag naming a priority class"));
        }
        for v in &variants {
            if let Err(e) = v.parse::<switchyard_admission::Class>() {
                out.push(format!("variant `{v}`: {e}"));
            }
        }
    } else {
        out.push(format!(
            "no stage reads `{key}`; the gateway reads `{CACHE}`, `{SEMANTIC_CACHE}`, \
             `{GUARD_POLICY}`, `{SHED}` and `routes.NAME.policy`"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_rollout::WeightedVariant;

    fn flag(key: &str, kind: FlagKind) -> Flag {
        Flag {
            key: key.into(),
            kind,
            enabled: true,
        }
    }

    fn variants(names: &[&str]) -> FlagKind {
        FlagKind::Variant {
            variants: names
                .iter()
                .map(|n| WeightedVariant {
                    name: (*n).into(),
                    weight: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn only_flags_a_stage_reads_are_accepted() {
        let off = FlagKind::Boolean { on: false };
        assert!(problems(&flag(CACHE, off.clone()), &[], &[]).is_empty());
        assert!(!problems(&flag("cache.smantic", off.clone()), &[], &[]).is_empty());
        assert!(!problems(&flag(CACHE, variants(&["a"])), &[], &[]).is_empty());
        let ok = flag(GUARD_POLICY, variants(&["default", "strict"]));
        assert!(problems(&ok, &[], &["strict"]).is_empty());
        assert_eq!(problems(&ok, &[], &[]).len(), 1);
        let route = flag(&route_policy("auto"), variants(&["cheap", "0.8"]));
        assert!(problems(&route, &["auto"], &[]).is_empty());
        let bad = flag(&route_policy("auto"), variants(&["fastest"]));
        assert_eq!(problems(&bad, &["auto"], &[]).len(), 1);
        assert_eq!(problems(&route, &["other"], &[]).len(), 1);
        assert!(problems(&flag(SHED, variants(&["batch"])), &[], &[]).is_empty());
        assert_eq!(
            problems(&flag(SHED, variants(&["bulk"])), &[], &[]).len(),
            1
        );
        assert_eq!(problems(&flag(SHED, off), &[], &[]).len(), 1);
    }

    #[test]
    fn an_unset_flag_changes_nothing() {
        let set = FlagSet::new(vec![flag(CACHE, FlagKind::Boolean { on: false })]);
        assert!(set.is_off(CACHE, "u"));
        assert!(!set.is_off(SEMANTIC_CACHE, "u"));
        assert_eq!(set.variant(GUARD_POLICY, "u"), None);
    }
}
