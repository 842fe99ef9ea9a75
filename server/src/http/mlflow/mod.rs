//! The MLflow-compatible API under `/api/2.0/mlflow/`: MLflow's own clients log runs and register
//! versions into the one registry, on MLflow's wire rules (query strings for GET, JSON bodies
//! otherwise, millisecond times, versions as strings, `{"error_code", "message"}` errors).
//!
//! `experiments` and `tracking` keep experiments and runs (`checks` their input rules),
//! `search_runs` searches runs, `points` keeps their metric points, `logged_models` MLflow 3's
//! logged models, `artifacts` the artifact proxy; `registry` maps registered models, model versions
//! and aliases onto Modelgate's models, versions and environments, `stages` MLflow's stages onto
//! environments; `wire` holds the message shapes.
//! Every answer under MLflow's paths (`/api/3.0/mlflow` and `/ajax-api` too) is in MLflow's shape.

pub mod artifacts;
pub mod checks;
pub mod experiments;
pub mod filter;
pub mod logged_models;
pub mod points;
pub mod registry;
pub mod search_runs;
pub mod stages;
pub mod tracking;
pub mod wire;

use app::error::{ApiError, ErrorCode};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::http::state::AppState;

/// MLflow's artifact proxy: a run's `mlflow-artifacts:/<path>` is `{ARTIFACTS}/<path>` here.
pub const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// The routes, relative to the server root.
pub fn router() -> Router<AppState> {
    const BASE: &str = "/api/2.0/mlflow";
    let route = |path: &str| format!("{BASE}/{path}");
    Router::new()
        .route(&route("experiments/create"), post(experiments::create_experiment))
        .route(&route("experiments/get"), get(experiments::get_experiment))
        .route(&route("experiments/get-by-name"), get(experiments::get_experiment_by_name))
        .route(&route("experiments/search"), post(experiments::search_experiments))
        .route(&route("experiments/update"), post(experiments::update_experiment))
        .route(&route("experiments/delete"), post(experiments::delete_experiment))
        .route(&route("experiments/restore"), post(experiments::restore_experiment))
        .route(&route("experiments/set-experiment-tag"), post(experiments::set_experiment_tag))
        .route(&route("experiments/delete-experiment-tag"), post(experiments::delete_experiment_tag))
        .route(&route("runs/create"), post(tracking::create_run))
        .route(&route("runs/get"), get(tracking::get_run))
        .route(&route("runs/update"), post(tracking::update_run))
        .route(&route("runs/log-batch"), post(tracking::log_batch))
        .route(&route("runs/log-metric"), post(tracking::log_metric))
        .route(&route("runs/log-parameter"), post(tracking::log_param))
        .route(&route("runs/set-tag"), post(tracking::set_tag))
        .route(&route("runs/delete-tag"), post(tracking::delete_tag))
        .route(&route("runs/delete"), post(tracking::delete_run))
        .route(&route("runs/restore"), post(tracking::restore_run))
        .route(&route("runs/search"), post(search_runs::search))
        .route(&route("runs/log-inputs"), post(tracking::log_inputs))
        .route(&route("runs/outputs"), post(tracking::log_outputs))
        .route(&route("metrics/get-history"), get(points::metric_history))
        .route(&route("logged-models"), post(logged_models::create))
        .route(&route("logged-models/search"), post(logged_models::search))
        .route(
            &route("logged-models/{id}"),
            get(logged_models::get).patch(logged_models::finalize).delete(logged_models::delete),
        )
        .route(&route("logged-models/{id}/tags"), axum::routing::patch(logged_models::set_tags))
        .route(&route("logged-models/{id}/tags/{key}"), axum::routing::delete(logged_models::delete_tag))
        .route(&route("logged-models/{id}/params"), post(logged_models::log_params))
        .route(&route("registered-models/create"), post(registry::create_model))
        .route(&route("registered-models/get"), get(registry::get_model))
        .route(&route("registered-models/search"), get(registry::search_models))
        .route(&route("registered-models/update"), axum::routing::patch(registry::update_model))
        .route(&route("registered-models/delete"), axum::routing::delete(registry::delete_model))
        .route(
            &route("registered-models/alias"),
            post(registry::set_alias).get(registry::get_alias).delete(registry::delete_alias),
        )
        .route(&route("model-versions/create"), post(registry::create_version))
        .route(&route("model-versions/get"), get(registry::get_version))
        .route(&route("model-versions/get-download-uri"), get(registry::get_download_uri))
        .route(&route("model-versions/transition-stage"), post(stages::transition_stage))
        .route(&route("model-versions/delete"), axum::routing::delete(registry::delete_version))
        .route(&route("model-versions/delete-tag"), axum::routing::delete(registry::delete_version_tag))
        .route(&route("registered-models/rename"), post(registry::rename_model))
        .route(&route("registered-models/set-tag"), post(registry::set_model_tag))
        .route(&route("registered-models/delete-tag"), axum::routing::delete(registry::delete_model_tag))
        .route(&route("registered-models/get-latest-versions"), post(stages::get_latest_versions))
        .route(&route("model-versions/search"), get(registry::search_versions))
        .route(&route("model-versions/update"), axum::routing::patch(registry::update_version))
        .route(&route("model-versions/set-tag"), post(registry::set_version_tag))
        .route(&format!("{BASE}/{{*rest}}"), axum::routing::any(endpoint_not_found))
        .route(ARTIFACTS, get(artifacts::list))
        .route(
            &format!("{ARTIFACTS}/{{*path}}"),
            get(artifacts::download).put(artifacts::upload).delete(artifacts::delete),
        )
        .route("/api/2.0/mlflow-artifacts/mpu/{*rest}", axum::routing::any(multipart_upload))
        .route("/api/2.0/mlflow-artifacts/{*rest}", axum::routing::any(endpoint_not_found))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/api/3.0/mlflow/{*rest}", axum::routing::any(endpoint_not_found))
        .route("/ajax-api/{*rest}", axum::routing::any(endpoint_not_found))
}

/// Whether `path` is MLflow's: its clients read every answer there in MLflow's shape.
fn is_mlflow_path(path: &str) -> bool {
    ["/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/", "/ajax-api/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
        || path == ARTIFACTS
}

/// Rewrites the native errors the middleware answers MLflow paths with (a refused token, a body
/// too large, a timeout, a cross-site request) into MLflow's shape, so its clients report their
/// code (`UNAUTHENTICATED`, `PERMISSION_DENIED`, …) rather than a parse failure.
pub async fn native_errors_in_mlflow_shape(req: Request, next: axum::middleware::Next) -> Response {
    if !is_mlflow_path(req.uri().path()) {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    if response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    match serde_json::from_slice::<app::error::ErrorBody>(&bytes) {
        Ok(app::error::ErrorBody { error: native }) => {
            let status = parts.status;
            let mut answer = MlflowError::from(native).into_response();
            *answer.status_mut() = status;
            answer
        }
        Err(_) => Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}

/// The proxy's multipart uploads (`mpu/create`, …), which a client set to use them
/// (`MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD`) asks for before a large file: answered with MLflow's
/// own words for "not here", on which the client sends the file in one streamed `PUT`, which is
/// hashed and stored as it arrives. The request's body is read first: an answer sent before it
/// arrived would close the connection under the client, whose next request on it (that `PUT`)
/// then meets a closed socket.
async fn multipart_upload(body: axum::body::Body) -> MlflowError {
    crate::http::extract::drain(&mut body.into_data_stream()).await;
    MlflowError::new(
        "NOT_IMPLEMENTED",
        "Multipart upload is not supported for the current artifact repository: Modelgate streams a \
         file of any size in one PUT",
    )
}

/// `GET /api/3.0/mlflow/server-info`: what the client asks before choosing how to move artifacts.
async fn server_info() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "store_type": "Modelgate",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}

/// An error as MLflow's servers send it: a code name, a message, and the status MLflow gives it.
#[derive(Debug)]
pub struct MlflowError {
    pub code: &'static str,
    pub message: String,
}

impl MlflowError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_PARAMETER_VALUE", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("RESOURCE_DOES_NOT_EXIST", message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new("RESOURCE_ALREADY_EXISTS", message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new("PERMISSION_DENIED", message)
    }

    fn status(&self) -> StatusCode {
        match self.code {
            "RESOURCE_DOES_NOT_EXIST" | "ENDPOINT_NOT_FOUND" => StatusCode::NOT_FOUND,
            "PERMISSION_DENIED" => StatusCode::FORBIDDEN,
            "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
            "RESOURCE_CONFLICT" => StatusCode::CONFLICT,
            "REQUEST_LIMIT_EXCEEDED" => StatusCode::TOO_MANY_REQUESTS,
            "NOT_IMPLEMENTED" => StatusCode::NOT_IMPLEMENTED,
            "INTERNAL_ERROR" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Modelgate's own errors in MLflow's terms; a refused conflict (a request already open, a version
/// moved meanwhile) is `RESOURCE_CONFLICT`, a duplicate name is mapped where it is created.
impl From<ApiError> for MlflowError {
    fn from(e: ApiError) -> Self {
        let code = match e.code {
            ErrorCode::BadRequest | ErrorCode::InvalidInput | ErrorCode::UnsupportedMediaType => {
                "INVALID_PARAMETER_VALUE"
            }
            ErrorCode::PayloadTooLarge => "INVALID_PARAMETER_VALUE",
            ErrorCode::Unauthorized => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "PERMISSION_DENIED",
            ErrorCode::NotFound => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::Conflict => "RESOURCE_CONFLICT",
            ErrorCode::TooManyRequests => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::Timeout | ErrorCode::Internal => "INTERNAL_ERROR",
        };
        Self::new(code, e.message)
    }
}

impl From<sqlx::Error> for MlflowError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.code, "message": self.message });
        (self.status(), axum::Json(body)).into_response()
    }
}

pub type MlflowResult<T> = Result<axum::Json<T>, MlflowError>;

/// A JSON request body; a field of the wrong type or a missing one is named in the error.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self, MlflowError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| MlflowError::invalid("the request body could not be read (or is too large)"))?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        crate::http::extract::parse_json(bytes).map(Body).map_err(MlflowError::from)
    }
}

/// GET parameters from the query string, read as the JSON object of their (first) values, so
/// they reach the same message types and field-naming errors as bodies.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MlflowError> {
        let mut object = serde_json::Map::new();
        for (key, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
            object.entry(key.into_owned()).or_insert(serde_json::Value::String(value.into_owned()));
        }
        let bytes = serde_json::to_vec(&object).map_err(|_| MlflowError::invalid("query parameters"))?;
        crate::http::extract::parse_json(&bytes).map(Params).map_err(MlflowError::from)
    }
}

/// Any other MLflow path: `ENDPOINT_NOT_FOUND`, after the body is read (as for [`multipart_upload`]).
async fn endpoint_not_found(req: Request) -> MlflowError {
    let (parts, body) = req.into_parts();
    crate::http::extract::drain(&mut body.into_data_stream()).await;
    MlflowError::new(
        "ENDPOINT_NOT_FOUND",
        format!("{} {} is not part of Modelgate's MLflow-compatible API", parts.method, parts.uri.path()),
    )
}

/// The caller of an MLflow request, or `UNAUTHENTICATED`.
pub struct MlflowCaller(pub app::domain::Caller);

impl<S: Send + Sync> FromRequestParts<S> for MlflowCaller {
    type Rejection = MlflowError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, MlflowError> {
        parts.extensions.get::<app::domain::Caller>().cloned().map(MlflowCaller).ok_or_else(|| {
            MlflowError::new(
                "UNAUTHENTICATED",
                "set MLFLOW_TRACKING_TOKEN to a Modelgate API token, or MLFLOW_TRACKING_USERNAME and \
                 MLFLOW_TRACKING_PASSWORD",
            )
        })
    }
}
