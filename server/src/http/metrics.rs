//! REST endpoints for metrics (ingest, series list, downsampled series, raw CSV), guardrails and
//! each version's health.

use app::backend::Metrics;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery, version_number};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest, list_series))
        .routes(routes!(series))
        .routes(routes!(health))
        .routes(routes!(across_versions))
        .routes(routes!(list_guardrails, create_guardrail))
        .routes(routes!(update_guardrail, delete_guardrail))
        .routes(routes!(replay))
}

/// Run a guardrail over a version's stored history, one evaluation a minute (at most 240, evenly
/// spread): its verdict timeline and when it would first have failed — before enforcing it.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/guardrails/{id}/replay", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number"),
        ("id" = i64, Path, description = "Guardrail id")),
    responses((status = 200, body = Replay), (status = 404, body = ErrorBody)))]
async fn replay(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number, id)): ApiPath<(String, String, String)>,
) -> Result<Json<Replay>, ApiError> {
    Ok(Json(s.store.replay_guardrail(&caller, &model, version_number(&number)?, guardrail_id(&id)?).await?))
}

/// Store a batch of up to 10,000 metric points of a version, all or none; the version's health is
/// re-evaluated where a guardrail reads the points.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/metrics", tag = "metrics", request_body = MetricBatch,
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 201, body = IngestReport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn ingest(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
    ApiJson(batch): ApiJson<MetricBatch>,
) -> Result<(StatusCode, Json<IngestReport>), ApiError> {
    let report = s.store.ingest_metrics(&caller, &model, version_number(&number)?, batch).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// Every series of a version: key, source, environment, count, first and last point, min and max.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/metrics", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Vec<SeriesSummary>), (status = 404, body = ErrorBody)))]
async fn list_series(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
) -> Result<Json<Vec<SeriesSummary>>, ApiError> {
    Ok(Json(s.store.list_metrics(&caller, &model, version_number(&number)?).await?))
}

/// One metric's series, each downsampled to at most `max_points` (the minimum and maximum of every
/// bucket, so no spike is lost); `{key}.csv` streams every raw point instead.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/metrics/{key}", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number"),
        ("key" = String, Path, description = "Metric key (URL-encoded); append `.csv` for the raw points as CSV"), SeriesQuery),
    responses((status = 200, body = MetricSeries), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn series(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number, key)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Response, ApiError> {
    let number = version_number(&number)?;
    let Some(key) = key.strip_suffix(".csv") else {
        return Ok(Json(s.store.metric_series(&caller, &model, number, &key, query).await?).into_response());
    };
    let rows = s.store.metric_csv(&caller, &model, number, key, query).await?;
    let name = format!("{model}-v{number}-{}.csv", key.replace(['/', ' '], "_"));
    let body = Body::from_stream(rows.map_ok(Bytes::from).map_err(|e| std::io::Error::other(e.message)));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// A version's health in every environment with guardrails, with each rule evaluated now.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/health", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Vec<HealthReport>), (status = 404, body = ErrorBody)))]
async fn health(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
) -> Result<Json<Vec<HealthReport>>, ApiError> {
    Ok(Json(s.store.version_health(&caller, &model, version_number(&number)?).await?))
}

/// One metric key across a model's versions (last value, range, trend); the key defaults to the
/// first guardrail's metric.
#[utoipa::path(get, path = "/api/v1/models/{model}/metrics", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ModelMetricsQuery),
    responses((status = 200, body = ModelMetrics), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn across_versions(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
    ApiQuery(query): ApiQuery<ModelMetricsQuery>,
) -> Result<Json<ModelMetrics>, ApiError> {
    Ok(Json(s.store.model_metrics(&caller, &model, query.key).await?))
}

/// A model's guardrails, in environment order.
#[utoipa::path(get, path = "/api/v1/models/{model}/guardrails", tag = "metrics",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = Vec<Guardrail>), (status = 404, body = ErrorBody)))]
async fn list_guardrails(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
) -> Result<Json<Vec<Guardrail>>, ApiError> {
    Ok(Json(s.store.list_guardrails(&caller, &model).await?))
}

/// Add a guardrail, e.g. `p99(latency_ms, last 100) <= 250` in `production`.
#[utoipa::path(post, path = "/api/v1/models/{model}/guardrails", tag = "metrics", request_body = GuardrailInput,
    params(("model" = String, Path, description = "Model name")),
    responses((status = 201, body = Guardrail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_guardrail(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
    ApiJson(input): ApiJson<GuardrailInput>,
) -> Result<(StatusCode, Json<Guardrail>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_guardrail(&caller, &model, input).await?)))
}

/// Replace a guardrail.
#[utoipa::path(put, path = "/api/v1/models/{model}/guardrails/{id}", tag = "metrics", request_body = GuardrailInput,
    params(("model" = String, Path, description = "Model name"), ("id" = i64, Path, description = "Guardrail id")),
    responses((status = 200, body = Guardrail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_guardrail(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, id)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<GuardrailInput>,
) -> Result<Json<Guardrail>, ApiError> {
    Ok(Json(s.store.update_guardrail(&caller, &model, guardrail_id(&id)?, input).await?))
}

/// Delete a guardrail.
#[utoipa::path(delete, path = "/api/v1/models/{model}/guardrails/{id}", tag = "metrics",
    params(("model" = String, Path, description = "Model name"), ("id" = i64, Path, description = "Guardrail id")),
    responses((status = 200, body = Guardrail), (status = 404, body = ErrorBody)))]
async fn delete_guardrail(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, id)): ApiPath<(String, String)>,
) -> Result<Json<Guardrail>, ApiError> {
    Ok(Json(s.store.delete_guardrail(&caller, &model, guardrail_id(&id)?).await?))
}

fn guardrail_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid("id", format!("{raw:?} is not a guardrail id")))
}
