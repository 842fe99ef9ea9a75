//! The HTTP surface: REST API, OpenAPI document and reference page, operations endpoints,
//! and the Leptos console with its server functions, behind one middleware stack.

mod audit;
mod auth;
mod environments;
mod events;
mod extract;
mod fleet;
mod idempotency;
mod identity;
mod metrics;
mod mlflow;
mod models;
mod ops;
mod rollbacks;
mod security;
pub mod serve;
mod state;
mod webhooks;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::backend::BackendHandle;
use app::error::ApiError;
use app::session_cookie::CookiePolicy;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use extract::parse_json;
pub use ops::waiting_router;
pub use state::AppState;

use crate::store::Store;

#[derive(OpenApi)]
#[openapi(
    info(title = "Modelgate API", description = "Registry, deployments and guarded rollback of ML model versions."),
    tags(
        (name = "models", description = "Registered models"),
        (name = "versions", description = "Immutable model versions"),
        (name = "environments", description = "Where versions run"),
        (name = "deployments", description = "Live versions and their history"),
        (name = "metrics", description = "Metric points, downsampled series, guardrails and health"),
        (name = "rollbacks", description = "Rollback policies, requests, four-eyes reviews and break glass"),
        (name = "fleet", description = "Serving agents: signed assignments (long-polled), reports, convergence, state at a moment"),
        (name = "events", description = "Server-sent events: live-version changes, rollbacks, health, new points"),
        (name = "webhooks", description = "Signed deliveries of live-version changes, with retries and a log"),
        (name = "identity", description = "The caller, users and API tokens"),
        (name = "audit", description = "The tamper-evident audit log, its checkpoints and public keys"),
    ),
    // Query parameters refer to these by name; the handlers' schemas bring in the rest.
    components(schemas(app::domain::ModelSort, app::domain::Order, audit::ExportFormat))
)]
struct ApiDoc;

/// The REST API router and the OpenAPI document generated from its handlers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(models::router())
        .merge(environments::router())
        .merge(fleet::router())
        .merge(metrics::router())
        .merge(rollbacks::router())
        .merge(webhooks::router())
        .merge(events::router())
        .merge(identity::router())
        .merge(audit::router())
        .split_for_parts()
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router with its middleware.
pub fn router(
    store: Arc<Store>,
    leptos: LeptosOptions,
    prometheus: PrometheusHandle,
    max_body_bytes: usize,
    cookie_policy: CookiePolicy,
    request_timeout: Duration,
) -> Router {
    let (api, openapi) = api();
    let state = AppState {
        store: store.clone(),
        leptos: Arc::new(leptos.clone()),
        prometheus,
        openapi: Arc::new(openapi.to_json().unwrap_or_default()),
        cookie_policy,
        max_body_bytes,
    };
    let backend: BackendHandle = store;
    let context = move || {
        provide_context(backend.clone());
        provide_context(cookie_policy);
    };
    let shell = {
        let options = leptos.clone();
        move || app::shell(options.clone())
    };
    let console = Router::new().leptos_routes_with_context(&state, console_routes(), context.clone(), shell.clone());
    let sealed_files = Path::new(&*leptos.site_root).join(&*leptos.site_pkg_dir);
    Router::new()
        .merge(api)
        .merge(mlflow::router())
        .merge(ops::router())
        .merge(console)
        // The console's own files, straight from disk: leptos_axum's file handler can hand a file
        // the status of a page rendering beside it (a not-found page's 404), and the browser then
        // fails to import the WASM glue. Unknown paths render the console's not-found page.
        // They are sealed in `pkg/<digest>/` (`scripts/build.sh`), each beside its brotli and gzip
        // forms, which are sent instead; a new build has a new directory, so browsers keep them
        // for good.
        .nest_service(
            &format!("/{}", leptos.site_pkg_dir),
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(axum::http::header::CACHE_CONTROL, |r: &Response<_>| {
                    r.status().is_success().then(|| HeaderValue::from_static("public, max-age=31536000, immutable"))
                }))
                .layer(SetResponseHeaderLayer::overriding(
                    axum::http::header::VARY,
                    HeaderValue::from_static("accept-encoding"),
                ))
                .service(ServeDir::new(sealed_files).precompressed_br().precompressed_gzip()),
        )
        .fallback(leptos_axum::render_app_async_with_context(context, shell))
        .layer(middleware::from_fn(server_fn_error_status))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(security::reject_cross_site))
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(move |req: Request, next: Next| within(request_timeout, req, next)))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .layer(middleware::from_fn(mlflow::native_errors_in_mlflow_shape))
        .layer(middleware::from_fn_with_state(state.clone(), security::security_headers))
        .layer(compression())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// Compresses what is made per request (pages, JSON, exports) for a client that accepts it, at
/// brotli's quality 4 or gzip's default. Live events stream uncompressed (each must arrive as it
/// happens), files already compressed pass as they are, and model files are left alone: they
/// rarely shrink and their digests are over their bytes.
fn compression() -> CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    CompressionLayer::new()
        .compress_when(DefaultPredicate::new().and(NotForContentType::const_new("application/octet-stream")))
}

/// Answers 408 when a request is not answered within `limit` — its body read included, so a
/// client sending slowly holds nothing long. Streamed bodies (live events, exports) are not
/// bounded: the limit is on the response's head. Uploads (an artifact's `PUT`, a version
/// registered with its files as `multipart/form-data`) take as long as their files: they are
/// bounded by their idle time instead (`extract::idle_bounded`).
async fn within(limit: Duration, req: Request, next: Next) -> Response {
    if is_upload(&req) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            app::error::ErrorCode::Timeout,
            format!("the request was not complete within {} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// Whether a request is an upload: an artifact's `PUT` through MLflow's proxy, or a version
/// registered with its files.
fn is_upload(req: &Request) -> bool {
    let path = req.uri().path();
    (req.method() == axum::http::Method::PUT && path.starts_with(mlflow::ARTIFACTS))
        || (req.method() == axum::http::Method::POST
            && path.starts_with("/api/v1/models/")
            && path.ends_with("/versions")
            && extract::multipart_boundary(req.headers()).is_some())
}

/// Server functions answer every error with 500; give it the status its [`ApiError`] code names
/// (401, 403, 404, 422, …), so a refused call is never reported as a server failure.
async fn server_fn_error_status(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    if let Ok(error) = serde_json::from_slice::<ApiError>(&bytes) {
        parts.status = StatusCode::from_u16(error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The console's routes, listed once per process: listing renders the app in a special mode,
/// which must not overlap with live renders (tests build many servers in one process).
fn console_routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Counts requests and their latency per route for `/metrics`.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    ::metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus recorder, installed once per process.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the Prometheus recorder is installed once per process");
            let upkeep = handle.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// Runs an upload to its end even if the client goes away first: hyper drops a request's future
/// when its connection closes, which could stop an upload between writing bytes and removing them
/// (leaving unrecorded bytes in the store). In a task of its own, the broken-off body ends the
/// upload, and its cleanup runs.
pub(crate) async fn to_completion<T: Send + 'static>(
    upload: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(upload).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "an upload's task failed");
        Err(ApiError::internal())
    })
}

/// A JSON 404 for unknown API paths (the console renders its own 404 page).
async fn api_not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, ApiError::not_found("no such API endpoint"))
}
