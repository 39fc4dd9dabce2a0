//! `[routes]`: aliases that pick a model per request, by rules first, then by the router's
//! classifier and the policy's bar; and each route's cache policy and recalibration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::cache::check_cache_policy;
use super::checker::Checker;
use crate::locate::key_segment;
use crate::name::valid_name;
use crate::raw::{RawConfig, RawRoute};
use crate::spec::{
    Bars, CachePolicySpec, CalibrationConfig, Candidate, ModelSpec, Policy, RecalibrateSpec,
    RouteSpec, RouterSpec, Rule,
};

pub(super) fn routes(
    c: &mut Checker,
    raw: &RawConfig,
    models: &BTreeMap<String, ModelSpec>,
    cache_defaults: Option<CachePolicySpec>,
) -> BTreeMap<String, RouteSpec> {
    let mut routes = BTreeMap::new();
    for (name, r) in &raw.routes {
        let path = format!("routes.{}", key_segment(name));
        if let Some(spec) = route(c, &path, name, r, raw, models, cache_defaults) {
            routes.insert(name.clone(), spec);
        }
    }
    routes
}

fn route(
    c: &mut Checker,
    path: &str,
    name: &str,
    r: &RawRoute,
    raw: &RawConfig,
    models: &BTreeMap<String, ModelSpec>,
    cache_defaults: Option<CachePolicySpec>,
) -> Option<RouteSpec> {
    let named_ok = c.ensure(
        valid_name(name) && !name.contains(':'),
        path,
        "route names use letters, digits, '-', '_' and '.' only (':' separates the policy, as in `auto:cheap`)",
    );
    c.ensure(
        !raw.models.contains_key(name),
        path,
        format!("a model named `{name}` exists; a route needs a name of its own"),
    );
    if !c.ensure(
        !r.candidates.is_empty(),
        format!("{path}.candidates"),
        "a route needs at least one candidate model",
    ) {
        return None;
    }
    let candidates = candidates(c, path, r, models);
    let router = router(c, path, r);
    c.ensure(
        !r.embedder.trim().is_empty(),
        format!("{path}.embedder"),
        "must name the folder of the static embedding model",
    );
    let default_policy = match r.default_policy.as_deref() {
        None => Policy::Balanced,
        Some(p) => p.parse().unwrap_or_else(|e: switchyard_route::BadPolicy| {
            c.err(format!("{path}.default_policy"), e.to_string());
            Policy::Balanced
        }),
    };
    let bars = bars(c, path, r, router.as_ref());
    let rules = rules(c, path, r, raw, models);
    check_heads(c, path, r, &candidates, router.as_ref(), bars);
    let cache = cache_policy(c, path, r, cache_defaults);
    let recalibrate = recalibrate(c, path, r, router.is_some());
    if let Some(gp) = &r.guard_policy {
        c.ensure(
            raw.guard_policies.contains_key(gp),
            format!("{path}.guard_policy"),
            format!("no guard policy `{gp}` is declared under [guard_policies]"),
        );
    }
    named_ok.then(|| RouteSpec {
        name: name.to_owned(),
        candidates,
        router,
        embedder: std::path::PathBuf::from(&r.embedder),
        default_policy,
        bars,
        rules,
        cache,
        recalibrate,
        guard_policy: r.guard_policy.clone(),
    })
}

/// The candidate models, each declared and listed once.
fn candidates(
    c: &mut Checker,
    path: &str,
    r: &RawRoute,
    models: &BTreeMap<String, ModelSpec>,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, cand) in r.candidates.iter().enumerate() {
        let cpath = format!("{path}.candidates[{i}].model");
        c.ensure(
            seen.insert(cand.model.clone()),
            &cpath,
            format!("`{}` is listed twice", cand.model),
        );
        match models.get(&cand.model) {
            Some(m) => {
                let mut candidate = Candidate::new(&cand.model, u32::from(m.quality_tier));
                candidate.head.clone_from(&cand.head);
                candidates.push(candidate);
            }
            None => c.err(
                cpath,
                format!("no model `{}` is declared under [models]", cand.model),
            ),
        }
    }
    candidates
}

/// The trained router artifact the route names, if any.
fn router(c: &mut Checker, path: &str, r: &RawRoute) -> Option<RouterSpec> {
    r.router.as_deref().and_then(|source| {
        crate::builtin::load_router(source)
            .and_then(|artifact| {
                let estimator = artifact.estimator()?;
                Ok(RouterSpec {
                    source: source.to_owned(),
                    artifact: std::sync::Arc::new(artifact),
                    estimator,
                })
            })
            .map_err(|e| c.err(format!("{path}.router"), e))
            .ok()
    })
}

/// The policies' bars: the route's own, else the artifact's.
fn bars(c: &mut Checker, path: &str, r: &RawRoute, router: Option<&RouterSpec>) -> Bars {
    match (&r.bars, router) {
        (Some(b), _) => {
            c.ensure(
                (0.0..=1.0).contains(&b.cheap) && (0.0..=1.0).contains(&b.balanced),
                format!("{path}.bars"),
                "bars are probabilities in [0, 1]",
            );
            c.ensure(
                b.cheap <= b.balanced,
                format!("{path}.bars.cheap"),
                "the `cheap` bar must not be above the `balanced` one",
            );
            Bars {
                cheap: b.cheap,
                balanced: b.balanced,
            }
        }
        (None, Some(router)) => router.artifact.bars,
        (None, None) => Bars::default(),
    }
}

/// The rules, each with exactly one condition, naming declared models and keys.
fn rules(
    c: &mut Checker,
    path: &str,
    r: &RawRoute,
    raw: &RawConfig,
    models: &BTreeMap<String, ModelSpec>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{i}]");
        c.ensure(
            models.contains_key(&rule.model),
            format!("{rpath}.model"),
            format!("no model `{}` is declared under [models]", rule.model),
        );
        let set = usize::from(rule.prompt_regex.is_some())
            + usize::from(rule.key.is_some())
            + usize::from(rule.metadata.is_some());
        if !c.ensure(
            set == 1,
            &rpath,
            "a rule needs exactly one of `prompt_regex`, `key`, `metadata`",
        ) {
            continue;
        }
        if let Some(pattern) = &rule.prompt_regex {
            match Rule::regex(&rule.name, pattern, &rule.model) {
                Ok(built) => rules.push(built),
                Err(e) => c.err(
                    format!("{rpath}.prompt_regex"),
                    format!(
                        "not a valid regex: {}",
                        std::error::Error::source(&e)
                            .map_or_else(|| e.to_string(), ToString::to_string)
                    ),
                ),
            }
        } else if let Some(key) = &rule.key {
            c.ensure(
                raw.keys.iter().any(|k| &k.id == key),
                format!("{rpath}.key"),
                format!("no key with id `{key}` is declared under [[keys]]"),
            );
            rules.push(Rule::key(&rule.name, key, &rule.model));
        } else if let Some(meta) = &rule.metadata {
            match meta.iter().next() {
                Some((k, v)) if meta.len() == 1 => {
                    rules.push(Rule::metadata(&rule.name, k, v, &rule.model));
                }
                _ => c.err(
                    format!("{rpath}.metadata"),
                    "give exactly one `name = \"value\"` pair",
                ),
            }
        }
    }
    rules
}

fn check_heads(
    c: &mut Checker,
    path: &str,
    r: &RawRoute,
    candidates: &[Candidate],
    router: Option<&RouterSpec>,
    bars: Bars,
) {
    // Building the router checks that every candidate but the last has a head to score it.
    if candidates.len() == r.candidates.len() {
        let estimator = router.map(|r| r.estimator.clone()).unwrap_or_else(|| {
            switchyard_route::Estimator::Linear(switchyard_route::Classifier::new(
                Default::default(),
                Vec::new(),
            ))
        });
        if let Err(e) =
            switchyard_route::Router::new(candidates.to_vec(), Vec::new(), estimator, bars)
        {
            let at = r
                .candidates
                .iter()
                .position(|cand| matches!(&e, switchyard_route::RouteError::MissingHead { model, .. } if model == &cand.model))
                .map_or_else(|| format!("{path}.candidates"), |i| format!("{path}.candidates[{i}].head"));
            let heads: Vec<String> = router
                .map(|r| match r.estimator.neighbours() {
                    Some(n) => n.head_names().map(str::to_owned).collect(),
                    None => r.artifact.heads.iter().map(|h| h.model.clone()).collect(),
                })
                .unwrap_or_default();
            let hint = if router.is_none() {
                "; set `router` to a trained artifact, or route with rules only by listing one candidate".to_owned()
            } else {
                format!("; the artifact's heads: {}", heads.join(", "))
            };
            c.err(at, format!("{e}{hint}"));
        }
    }
}

/// The route's cache policy: its own fields over `[cache]`'s.
fn cache_policy(
    c: &mut Checker,
    path: &str,
    r: &RawRoute,
    cache_defaults: Option<CachePolicySpec>,
) -> CachePolicySpec {
    let own = r.cache.as_ref();
    let base = cache_defaults.unwrap_or(CachePolicySpec {
        enabled: false,
        semantic: false,
        threshold: 0.9,
        ttl: Duration::from_secs(3600),
        allow_temperature: false,
    });
    if own.is_some() && cache_defaults.is_none() {
        c.err(
            format!("{path}.cache"),
            "add a [cache] section to turn the cache on; routes only adjust it",
        );
    }
    let cache = CachePolicySpec {
        enabled: own.and_then(|o| o.enabled).unwrap_or(base.enabled),
        semantic: own.and_then(|o| o.semantic).unwrap_or(base.semantic),
        threshold: own.and_then(|o| o.threshold).unwrap_or(base.threshold),
        ttl: own
            .and_then(|o| o.ttl_secs)
            .map_or(base.ttl, Duration::from_secs),
        allow_temperature: own
            .and_then(|o| o.allow_temperature)
            .unwrap_or(base.allow_temperature),
    };
    check_cache_policy(c, &format!("{path}.cache"), &cache);
    cache
}

/// Recalibration of the bars from feedback: on only with a router to recalibrate.
fn recalibrate(
    c: &mut Checker,
    path: &str,
    r: &RawRoute,
    has_router: bool,
) -> Option<RecalibrateSpec> {
    let rc = &r.recalibrate;
    let rpath = format!("{path}.recalibrate");
    c.ensure(
        rc.interval_secs > 0,
        format!("{rpath}.interval_secs"),
        "must be greater than 0",
    );
    c.ensure(
        rc.window_hours > 0,
        format!("{rpath}.window_hours"),
        "must be greater than 0",
    );
    c.ensure(
        rc.min_feedback > 0,
        format!("{rpath}.min_feedback"),
        "must be at least 1",
    );
    for (field, v) in [
        ("step", rc.step),
        ("max_shift", rc.max_shift),
        ("target_cheap", rc.target_cheap),
        ("target_balanced", rc.target_balanced),
        ("margin", rc.margin),
    ] {
        c.ensure(
            (0.0..=1.0).contains(&v),
            format!("{rpath}.{field}"),
            "must be between 0 and 1",
        );
    }
    (rc.enabled && has_router).then(|| RecalibrateSpec {
        interval: Duration::from_secs(rc.interval_secs),
        window: Duration::from_secs(rc.window_hours.saturating_mul(3600)),
        calibration: CalibrationConfig {
            min_feedback: rc.min_feedback,
            step: rc.step,
            max_shift: rc.max_shift,
            target_cheap: rc.target_cheap,
            target_balanced: rc.target_balanced,
            margin: rc.margin,
        },
    })
}
