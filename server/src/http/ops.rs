//! Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document and its
//! reference page, and the console's icon.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::{AppState, api_not_found};

const REFERENCE_HTML: &str = include_str!("reference.html");
const REFERENCE_JS: &str = include_str!("reference.js");
/// The brand mark, answered where every browser looks for an icon (an SVG body is accepted there).
const FAVICON_SVG: &str = include_str!("favicon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/docs", get(|| async { Html(REFERENCE_HTML) }))
        .route(
            "/api/v1/docs/reference.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], REFERENCE_JS) }),
        )
        .route(
            "/favicon.ico",
            get(|| async {
                ([(CONTENT_TYPE, "image/svg+xml"), (CACHE_CONTROL, "public, max-age=86400")], FAVICON_SVG)
            }),
        )
        .route("/api/v1/{*rest}", axum::routing::any(api_not_found))
}

/// What a server waiting for `pending` migrations answers: alive, not ready.
pub fn waiting_router(pending: &[i64]) -> Router {
    let waiting = format!("waiting for migrations {pending:?}: run `modelgate migrate`");
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(move || async move { (StatusCode::SERVICE_UNAVAILABLE, waiting) })
}

/// Ready when the database answers.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    // A failure is logged where it happens (checkout or statement).
    let answered = match s.store.conn().await {
        Ok(mut conn) => sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(app::error::ApiError::from)
            .is_ok(),
        Err(_) => false,
    };
    if answered { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "database unreachable") }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], s.prometheus.render())
}

async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], s.openapi.as_str().to_owned())
}
