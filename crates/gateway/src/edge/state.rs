//! The edge's state, shared by its handlers.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::control_plane::ControlPlane;

/// The edge's state: the control plane (and through it what runs now), and what only HTTP
/// needs.
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub(crate) prometheus: PrometheusHandle,
    /// Signed-in dashboard browsers.
    pub dashboard: Box<dyn crate::edge::sessions::SessionStore>,
    /// Wrong admin keys per client address.
    pub sign_in: crate::edge::sessions::SignInThrottle,
    /// Batch API files held in memory at once (`edge::batches`).
    pub file_transfers: Arc<tokio::sync::Semaphore>,
}
