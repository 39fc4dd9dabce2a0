//! The admin API under `/admin/v1/`: config versions (apply, diff, history, rollback), feature
//! flags, prompt versions and labels, rollouts, and the audit log. Every change and its audit entry
//! commit in one transaction. Only the admin key is accepted here, and the admin key nowhere else;
//! reads (`GET`) also accept a dashboard session (`crate::edge::dashboard`).
//!
//! Every handler authenticates first, then does its work through [`crate::control_plane::versions`] or the
//! store on a blocking thread; errors are OpenAI-shaped like the rest of the gateway, so one
//! client handles both. Who acted is the `x-switchyard-actor` header (a person or a CI job),
//! else `admin`.

mod audit;
mod config;
mod flags;
mod prompts;
mod rollouts;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;

use crate::edge::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/v1/config",
            get(config::current_config).post(config::apply_config),
        )
        .route("/admin/v1/config/diff", post(config::diff_config))
        .route("/admin/v1/config/history", get(config::config_history))
        .route("/admin/v1/config/rollback", post(config::rollback_config))
        .route("/admin/v1/audit", get(audit::audit_list))
        .route("/admin/v1/audit/verify", get(audit::audit_verify))
        .route("/admin/v1/flags", get(flags::flag_list))
        .route(
            "/admin/v1/flags/{key}",
            put(flags::flag_set).delete(flags::flag_delete),
        )
        .route(
            "/admin/v1/prompts",
            get(prompts::prompt_list).post(prompts::prompt_push),
        )
        .route("/admin/v1/prompts/{name}", get(prompts::prompt_show))
        .route(
            "/admin/v1/prompts/{name}/versions/{version}",
            get(prompts::prompt_version),
        )
        .route(
            "/admin/v1/prompts/{name}/labels/{label}",
            put(prompts::prompt_label),
        )
        .route(
            "/admin/v1/rollouts",
            get(rollouts::rollout_list).post(rollouts::rollout_start),
        )
        .route("/admin/v1/rollouts/{id}", get(rollouts::rollout_show))
        .route(
            "/admin/v1/rollouts/{id}/{action}",
            post(rollouts::rollout_act),
        )
}
