//! Raw config → validated [`Config`], collecting every problem with its field path.
//!
//! One file per section of the config; [`validate`] runs them in the order below, which is
//! the order problems of the same place and warnings are reported in.

mod admission;
mod batch;
mod cache;
mod checker;
mod cloud;
mod guards;
mod keys;
mod models;
mod prompts;
mod providers;
mod resilience;
mod responses;
mod routes;
mod server;
mod slos;
mod values;

use checker::{Checker, Issues};

use crate::raw::RawConfig;
use crate::spec::Config;

/// The config, with the warnings found on the way; or every error.
pub(crate) fn validate(raw: RawConfig) -> Result<(Config, Issues), Issues> {
    let mut c = Checker::default();
    let server = server::server(&mut c, &raw.server);
    let storage = server::storage(&mut c, &raw.storage);
    let redis = server::redis(&mut c, raw.redis.as_ref());
    let telemetry = server::telemetry(&mut c, &raw.telemetry);
    let retry_budget = resilience::top_level(&mut c, &raw.resilience);
    let (providers, breakers) = providers::providers(&mut c, &raw);
    let models = models::models(&mut c, &raw, &providers);
    let (guards, guard_policies) = guards::guard_sections(&mut c, &raw);
    let cache = raw.cache.as_ref().map(|rc| cache::cache_spec(&mut c, rc));
    let routes = routes::routes(&mut c, &raw, &models, cache.as_ref().map(|c| c.defaults));
    // No cache at all when neither `[cache]` nor any route turns it on.
    let cache = cache.filter(|c| c.defaults.enabled || routes.values().any(|r| r.cache.enabled));
    let keys = keys::keys(&mut c, &raw);
    let admin = keys::admin(&mut c, raw.admin.as_ref());
    let (slos, slo_actions) = slos::slos(&mut c, &raw.slos, &raw.models, &raw.routes);
    let alerts = slos::alerts(&mut c, &raw.alerts);
    let prompts = prompts::render_limits(&mut c, &raw.prompts);
    let limits = keys::limits(&mut c, &raw.limits);
    let batch = batch::batch(&mut c, &raw.batch);
    let responses = responses::responses(&mut c, &raw.responses);
    let admission = admission::admission(&mut c, &raw.admission);
    if !c.issues.is_empty() {
        return Err(c.issues);
    }
    let config = Config {
        located_warnings: Vec::new(),
        admission,
        slos,
        slo_actions,
        alerts,
        limits,
        prompts,
        batch,
        responses,
        server,
        storage,
        redis,
        telemetry,
        retry_budget,
        providers,
        breakers,
        models,
        routes,
        cache,
        guards,
        guard_policies,
        keys,
        admin,
    };
    Ok((config, c.warnings))
}
