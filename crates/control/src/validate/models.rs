//! `[models]`: deployments on providers, fallbacks, prices, limits and resilience overrides.

use std::collections::BTreeMap;

use super::checker::Checker;
use super::resilience::resilience;
use super::values::usd_to_nanos;
use crate::locate::key_segment;
use crate::name::{valid_name, NAME_RULE};
use crate::raw::RawCapacity;
use crate::raw::{RawConfig, RawModel, RawResilience};
use crate::spec::{Capacity, DeploymentSpec, ModelSpec, OnSaturation, Price, ProviderSpec};

pub(super) fn models(
    c: &mut Checker,
    raw: &RawConfig,
    providers: &BTreeMap<String, ProviderSpec>,
) -> BTreeMap<String, ModelSpec> {
    let mut models = BTreeMap::new();
    for (name, m) in &raw.models {
        let path = format!("models.{}", key_segment(name));
        c.ensure(valid_name(name), &path, NAME_RULE);
        models.insert(
            name.clone(),
            model(c, &path, name, m, raw, providers, &raw.resilience),
        );
    }
    one_capacity_per_deployment(c, &models);
    models
}

/// Models that share an upstream share its deployment (its breaker, load and queue), so they
/// must agree on its capacity.
fn one_capacity_per_deployment(c: &mut Checker, models: &BTreeMap<String, ModelSpec>) {
    let mut seen: BTreeMap<String, (String, Option<Capacity>)> = BTreeMap::new();
    for (name, model) in models {
        for (i, d) in model.deployments.iter().enumerate() {
            let label = d.label();
            match seen.get(&label) {
                Some((first, capacity)) if *capacity != d.capacity => c.err(
                    format!("models.{}.deployments[{i}].capacity", key_segment(name)),
                    format!(
                        "`{label}` is also a deployment of model `{first}` with another capacity; models sharing an upstream share its capacity, so give it the same one"
                    ),
                ),
                Some(_) => {}
                None => {
                    seen.insert(label, (name.clone(), d.capacity));
                }
            }
        }
    }
}

/// A deployment's capacity: at least one limit, each greater than 0.
fn capacity(c: &mut Checker, path: &str, raw: Option<&RawCapacity>) -> Option<Capacity> {
    let raw = raw?;
    c.ensure(
        raw.max_concurrent.is_some() || raw.max_tokens_in_flight.is_some(),
        path,
        "give `max_concurrent`, `max_tokens_in_flight` or both (omit `capacity` for no limit)",
    );
    c.ensure(
        raw.max_concurrent != Some(0),
        format!("{path}.max_concurrent"),
        "must be greater than 0 (omit it for no limit)",
    );
    c.ensure(
        raw.max_tokens_in_flight != Some(0),
        format!("{path}.max_tokens_in_flight"),
        "must be greater than 0 (omit it for no limit)",
    );
    Some(Capacity {
        max_concurrent: raw.max_concurrent,
        max_tokens_in_flight: raw.max_tokens_in_flight,
    })
}

fn model(
    c: &mut Checker,
    path: &str,
    name: &str,
    m: &RawModel,
    raw: &RawConfig,
    providers: &BTreeMap<String, ProviderSpec>,
    global: &RawResilience,
) -> ModelSpec {
    let deployments = deployments(c, path, name, m, raw, providers);
    for (i, f) in m.fallbacks.iter().enumerate() {
        let fpath = format!("{path}.fallbacks[{i}]");
        if f == name {
            c.err(fpath, "a model cannot fall back to itself");
        } else {
            c.ensure(
                raw.models.contains_key(f),
                fpath,
                format!("no model `{f}` is declared under [models]"),
            );
        }
    }
    let price = Price {
        input_nanos_per_mtok: usd_to_nanos(
            c,
            &format!("{path}.price.input_per_mtok"),
            Some(m.price.input_per_mtok),
        )
        .unwrap_or(0),
        output_nanos_per_mtok: usd_to_nanos(
            c,
            &format!("{path}.price.output_per_mtok"),
            Some(m.price.output_per_mtok),
        )
        .unwrap_or(0),
    };
    c.ensure(
        m.context_tokens > 0,
        format!("{path}.context_tokens"),
        "must be greater than 0",
    );
    c.ensure(
        m.max_output_tokens != Some(0),
        format!("{path}.max_output_tokens"),
        "must be greater than 0 (omit it when unknown)",
    );
    if let Some(r) = &m.resilience {
        let b = &r.breaker;
        let set = [
            b.consecutive_failures.is_some(),
            b.failure_rate.is_some(),
            b.min_requests.is_some(),
            b.window_secs.is_some(),
            b.open_secs.is_some(),
        ];
        c.ensure(
            !set.contains(&true),
            format!("{path}.resilience.breaker"),
            "breakers belong to deployments: set `breaker` under the provider (or [resilience.breaker] for all)",
        );
    }
    let resilience = resilience(
        c,
        &format!("{path}.resilience"),
        global,
        m.resilience.as_ref().unwrap_or(&RawResilience::default()),
    );
    let on_saturation = match m.on_saturation.as_str() {
        "wait" => OnSaturation::Wait,
        "fallback" => {
            c.ensure(
                !m.fallbacks.is_empty(),
                format!("{path}.on_saturation"),
                "`fallback` needs a model under `fallbacks` to go to",
            );
            OnSaturation::Fallback
        }
        other => {
            c.err(
                format!("{path}.on_saturation"),
                format!("`{other}` is not one of `wait`, `fallback`"),
            );
            OnSaturation::Wait
        }
    };
    ModelSpec {
        on_saturation,
        name: name.to_owned(),
        deployments,
        price,
        context_tokens: m.context_tokens,
        quality_tier: m.quality_tier,
        fallbacks: m.fallbacks.clone(),
        resilience,
        max_output_tokens: m.max_output_tokens,
    }
}

/// A model's deployments: each names a declared provider (a sim provider's model must exist),
/// and at least one has weight.
fn deployments(
    c: &mut Checker,
    path: &str,
    name: &str,
    m: &RawModel,
    raw: &RawConfig,
    providers: &BTreeMap<String, ProviderSpec>,
) -> Vec<DeploymentSpec> {
    c.ensure(
        !m.deployments.is_empty(),
        format!("{path}.deployments"),
        "a model needs at least one deployment",
    );
    let mut deployments = Vec::new();
    for (i, d) in m.deployments.iter().enumerate() {
        let dpath = format!("{path}.deployments[{i}]");
        let upstream_model = d.upstream_model.clone().unwrap_or_else(|| name.to_owned());
        match providers.get(&d.provider) {
            None if !raw.providers.contains_key(&d.provider) => c.err(
                format!("{dpath}.provider"),
                format!("no provider `{}` is declared under [providers]", d.provider),
            ),
            Some(ProviderSpec::Sim(sim)) => {
                c.ensure(
                    sim.models.contains_key(&upstream_model),
                    format!("{dpath}.upstream_model"),
                    format!(
                        "sim provider `{}` has no model `{upstream_model}` (it has: {})",
                        d.provider,
                        sim.models.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            _ => {}
        }
        deployments.push(DeploymentSpec {
            provider: d.provider.clone(),
            upstream_model,
            weight: d.weight,
            capacity: capacity(c, &format!("{dpath}.capacity"), d.capacity.as_ref()),
        });
    }
    c.ensure(
        m.deployments.is_empty() || m.deployments.iter().any(|d| d.weight > 0),
        format!("{path}.deployments"),
        "at least one deployment needs a weight greater than 0",
    );
    deployments
}
