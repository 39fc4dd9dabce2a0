//! `[[slos]]` and `[alerts]`: the objectives and where their pages go.

use std::collections::BTreeMap;
use std::time::Duration;

use super::checker::Checker;
use super::values::http_url;
use crate::raw::{RawAlerts, RawModel, RawRoute, RawSlo, RawSloActions};
use crate::spec::{AlertsSpec, OnPage, SloActions};

/// `[[slos]]` into the SLO crate's specs, and each SLO's `on_page` actions by name; every
/// problem with its `slos[i].field` path.
pub(super) fn slos(
    c: &mut Checker,
    raw: &[RawSlo],
    models: &BTreeMap<String, RawModel>,
    routes: &BTreeMap<String, RawRoute>,
) -> (Vec<switchyard_slo::SloSpec>, BTreeMap<String, SloActions>) {
    use switchyard_slo::{Objective, Scope, SloSpec, SpecError};
    let mut out: Vec<SloSpec> = Vec::new();
    let mut actions = BTreeMap::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("slos[{i}]");
        if let Some(on_page) = &s.on_page {
            actions.insert(s.name.clone(), slo_actions(c, &at, on_page, routes));
        }
        let threshold = |c: &mut Checker| match s.threshold_ms {
            Some(t) => t,
            None => {
                c.err(
                    format!("{at}.threshold_ms"),
                    format!("a `{}` SLO needs threshold_ms", s.objective),
                );
                1
            }
        };
        let objective = match s.objective.as_str() {
            "availability" => Objective::Availability,
            "quality" => Objective::Quality,
            "latency" => Objective::Latency {
                threshold_ms: threshold(c),
            },
            "ttft" => Objective::Ttft {
                threshold_ms: threshold(c),
            },
            other => {
                c.err(
                    format!("{at}.objective"),
                    format!(
                        "`{other}` is not one of \"availability\", \"latency\", \"ttft\", \"quality\""
                    ),
                );
                Objective::Availability
            }
        };
        if let Some(m) = &s.model {
            c.ensure(
                models.contains_key(m),
                format!("{at}.model"),
                format!("no model `{m}` is declared under [models]"),
            );
        }
        if let Some(r) = &s.route {
            c.ensure(
                routes.contains_key(r),
                format!("{at}.route"),
                format!("no route `{r}` is declared under [routes]"),
            );
        }
        let spec = SloSpec::new(s.name.clone(), objective, s.target)
            .with_scope(Scope {
                route: s.route.clone(),
                model: s.model.clone(),
            })
            .with_window(i64::from(s.window_days) * 86_400);
        if let Err(errors) = spec.validate() {
            for e in errors.0 {
                let field = match &e {
                    SpecError::EmptyName | SpecError::Duplicate { .. } => "name",
                    SpecError::Target { .. } => "target",
                    SpecError::Threshold { .. } => "threshold_ms",
                    SpecError::Window { .. } => "window_days",
                };
                c.err(format!("{at}.{field}"), e.to_string());
            }
        }
        c.ensure(
            out.iter().all(|o| o.name != spec.name),
            format!("{at}.name"),
            format!("SLO `{}` is declared twice", spec.name),
        );
        out.push(spec);
    }
    (out, actions)
}

/// `slos[i].on_page`: a class to shed and route policies to move to.
fn slo_actions(
    c: &mut Checker,
    at: &str,
    raw: &RawSloActions,
    routes: &BTreeMap<String, RawRoute>,
) -> SloActions {
    let shed = raw.shed.as_deref().and_then(|v| match v.parse() {
        Ok(class) => Some(class),
        Err(e) => {
            c.err(format!("{at}.on_page.shed"), format!("{e}"));
            None
        }
    });
    for (route, policy) in &raw.route_policy {
        let path = format!("{at}.on_page.route_policy.{route}");
        c.ensure(
            routes.contains_key(route),
            path.clone(),
            format!("no route `{route}` is declared under [routes]"),
        );
        if let Err(e) = policy.parse::<switchyard_route::Policy>() {
            c.err(path, e.to_string());
        }
    }
    SloActions {
        shed,
        route_policy: raw.route_policy.clone(),
    }
}

pub(super) fn alerts(c: &mut Checker, a: &RawAlerts) -> AlertsSpec {
    let alerts = AlertsSpec {
        webhook: a.webhook.as_ref().map(|u| http_url(c, "alerts.webhook", u)),
        timeout: Duration::from_millis(a.timeout_ms),
        on_page: c.one_of(
            "alerts.on_page".to_owned(),
            &a.on_page,
            &[
                ("none", OnPage::Nothing),
                ("pause", OnPage::Pause),
                ("abort", OnPage::Abort),
            ],
            OnPage::Pause,
        ),
    };
    c.ensure(
        a.timeout_ms > 0,
        "alerts.timeout_ms",
        "must be greater than 0",
    );
    alerts
}
