//! What every handler can reach: the store, the console's options and the server's settings.

use std::sync::Arc;

use app::session_cookie::CookiePolicy;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::store::Store;

/// What every handler can reach. Cloned for every request by each layer and handler that takes
/// it, so each part is a reference or a small value.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub leptos: Arc<LeptosOptions>,
    pub prometheus: PrometheusHandle,
    pub openapi: Arc<String>,
    pub cookie_policy: CookiePolicy,
    pub max_body_bytes: usize,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        LeptosOptions::clone(&state.leptos)
    }
}
