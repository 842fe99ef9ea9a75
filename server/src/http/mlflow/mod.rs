//! The MLflow-compatible API under `/api/2.0/mlflow/`: MLflow's own clients log runs and register
//! versions into the one registry, on MLflow's wire rules (query strings for GET, JSON bodies
//! otherwise, millisecond times, versions as strings, `{"error_code", "message"}` errors).
//!
//! `tracking` keeps experiments and runs, `points` their metric points; `registry` maps registered models,
//! model versions and aliases onto Modelgate's models, versions and environments; `wire` holds the
//! message shapes.

pub mod artifacts;
pub mod filter;
pub mod points;
pub mod registry;
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
        .route(&route("experiments/create"), post(tracking::create_experiment))
        .route(&route("experiments/get"), get(tracking::get_experiment))
        .route(&route("experiments/get-by-name"), get(tracking::get_experiment_by_name))
        .route(&route("experiments/search"), post(tracking::search_experiments))
        .route(&route("runs/create"), post(tracking::create_run))
        .route(&route("runs/get"), get(tracking::get_run))
        .route(&route("runs/update"), post(tracking::update_run))
        .route(&route("runs/log-batch"), post(tracking::log_batch))
        .route(&route("runs/log-metric"), post(tracking::log_metric))
        .route(&route("runs/log-parameter"), post(tracking::log_param))
        .route(&route("runs/set-tag"), post(tracking::set_tag))
        .route(&route("metrics/get-history"), get(points::metric_history))
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
        .route(&route("model-versions/search"), get(registry::search_versions))
        .route(&route("model-versions/update"), axum::routing::patch(registry::update_version))
        .route(&route("model-versions/set-tag"), post(registry::set_version_tag))
        .route(&format!("{BASE}/{{*rest}}"), axum::routing::any(endpoint_not_found))
        .route(ARTIFACTS, get(artifacts::list))
        .route(
            &format!("{ARTIFACTS}/{{*path}}"),
            get(artifacts::download).put(artifacts::upload).delete(artifacts::delete),
        )
        .route("/api/2.0/mlflow-artifacts/{*rest}", axum::routing::any(endpoint_not_found))
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

async fn endpoint_not_found(req: Request) -> MlflowError {
    MlflowError::new(
        "ENDPOINT_NOT_FOUND",
        format!("{} {} is not part of Modelgate's MLflow-compatible API", req.method(), req.uri().path()),
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
