//! The HTTP edge: the OpenAI API, the admin API, the dashboard, health and metrics. It
//! frames what the data and control planes answer; it decides nothing itself.

pub mod access;
pub mod admin;
pub mod answer;
pub mod batches;
pub mod dashboard;
pub mod kpis;
pub mod messages;
pub mod responses;
pub mod server;
pub mod sessions;
pub mod state;
