//! `[[keys]]`, `[admin]` and `[limits]`: who may call, with what limits and budgets.

use std::collections::BTreeSet;

use switchyard_route::Policy;

use super::checker::Checker;
use super::values::{env_name, usd_to_nanos};
use crate::raw::{RawAdmin, RawConfig, RawKey, RawLimits};
use crate::spec::{AdminSpec, Class, KeyPriority, KeySecret, KeySpec, LimitsSpec, ModelAccess};

/// Every key, each id and each hashed secret used once.
pub(super) fn keys(c: &mut Checker, raw: &RawConfig) -> Vec<KeySpec> {
    let mut keys = Vec::new();
    let mut seen_ids = BTreeSet::new();
    let mut seen_secrets = BTreeSet::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let path = format!("keys[{i}]");
        c.ensure(
            !k.id.trim().is_empty(),
            format!("{path}.id"),
            "must not be empty",
        );
        c.ensure(
            seen_ids.insert(k.id.clone()),
            format!("{path}.id"),
            format!("`{}` is used by another key", k.id),
        );
        let secret = key_secret(
            c,
            &path,
            k.secret_sha256.as_deref(),
            k.secret_env.as_deref(),
        );
        if let Some(KeySecret::Sha256(h)) = &secret {
            c.ensure(
                seen_secrets.insert(*h),
                format!("{path}.secret_sha256"),
                "the same secret is used by another key",
            );
        }
        keys.extend(key(c, &path, k, raw, secret));
    }
    keys
}

/// One key's models, limits, budgets and policies; its secret is checked by the caller, and
/// without one there is no key.
fn key(
    c: &mut Checker,
    path: &str,
    k: &RawKey,
    raw: &RawConfig,
    secret: Option<KeySecret>,
) -> Option<KeySpec> {
    let access = if k.models.iter().any(|m| m == "*") {
        ModelAccess::All
    } else {
        for (j, m) in k.models.iter().enumerate() {
            c.ensure(
                raw.models.contains_key(m) || raw.routes.contains_key(m),
                format!("{path}.models[{j}]"),
                format!("no model `{m}` is declared under [models] or [routes]"),
            );
        }
        ModelAccess::Only(k.models.clone())
    };
    for (field, v) in [("rpm", k.rpm), ("tpm", k.tpm)] {
        c.ensure(
            v != Some(0),
            format!("{path}.{field}"),
            "must be greater than 0 (omit it for no limit)",
        );
    }
    let daily = usd_to_nanos(c, &format!("{path}.budget_usd_daily"), k.budget_usd_daily);
    let monthly = usd_to_nanos(
        c,
        &format!("{path}.budget_usd_monthly"),
        k.budget_usd_monthly,
    );
    let route_policy = k.route_policy.as_deref().and_then(|p| {
        p.parse::<Policy>()
            .map_err(|e| c.err(format!("{path}.route_policy"), e.to_string()))
            .ok()
    });
    if let Some(gp) = &k.guard_policy {
        c.ensure(
            raw.guard_policies.contains_key(gp),
            format!("{path}.guard_policy"),
            format!("no guard policy `{gp}` is declared under [guard_policies]"),
        );
    }
    let priority = key_priority(c, path, k);
    secret.map(|secret| KeySpec {
        priority,
        id: k.id.clone(),
        tenant: k.tenant.clone().unwrap_or_else(|| k.id.clone()),
        secret,
        models: access,
        rpm: k.rpm,
        tpm: k.tpm,
        budget_daily_nanos: daily,
        budget_monthly_nanos: monthly,
        route_policy,
        guard_policy: k.guard_policy.clone(),
    })
}

/// A key's default and maximum class. Without a maximum, the key may ask for up to its
/// default or `interactive`, whichever is higher; a default above the maximum is an error.
fn key_priority(c: &mut Checker, path: &str, k: &RawKey) -> KeyPriority {
    let mut class = |field: &str, value: Option<&str>| {
        value.and_then(|v| {
            v.parse::<Class>()
                .map_err(|e| c.err(format!("{path}.{field}"), e.to_string()))
                .ok()
        })
    };
    let asked = class("priority", k.priority.as_deref());
    let max = class("max_priority", k.max_priority.as_deref());
    let unreadable = asked.is_none() != k.priority.is_none();
    let default = asked.unwrap_or(Class::Interactive);
    let max = max.unwrap_or(default.max(Class::Interactive));
    c.ensure(
        unreadable || default <= max,
        format!("{path}.priority"),
        format!("`{default}` is above the key's `max_priority` (`{max}`)"),
    );
    KeyPriority { default, max }
}

pub(super) fn admin(c: &mut Checker, admin: Option<&RawAdmin>) -> Option<AdminSpec> {
    admin.and_then(|a| {
        key_secret(
            c,
            "admin",
            a.secret_sha256.as_deref(),
            a.secret_env.as_deref(),
        )
        .map(|secret| AdminSpec { secret })
    })
}

pub(super) fn limits(c: &mut Checker, l: &RawLimits) -> LimitsSpec {
    c.ensure(
        l.default_max_output_tokens > 0,
        "limits.default_max_output_tokens",
        "must be greater than 0",
    );
    LimitsSpec {
        default_max_output_tokens: l.default_max_output_tokens,
    }
}

fn key_secret(
    c: &mut Checker,
    path: &str,
    sha: Option<&str>,
    env: Option<&str>,
) -> Option<KeySecret> {
    match (sha, env) {
        (Some(h), None) => match hex::decode(h) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&bytes);
                Some(KeySecret::Sha256(out))
            }
            _ => {
                c.err(
                    format!("{path}.secret_sha256"),
                    "must be 64 hex digits (`switchyard keys hash` prints it for a key)",
                );
                None
            }
        },
        (None, Some(e)) => {
            env_name(c, &format!("{path}.secret_env"), &Some(e.to_owned()));
            Some(KeySecret::Env(e.to_owned()))
        }
        _ => {
            c.err(path, "give exactly one of `secret_sha256`, `secret_env`");
            None
        }
    }
}
