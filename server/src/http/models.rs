//! REST endpoints for models and versions (`/api/v1/models…`).

use app::backend::Registry;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery, version_number};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_model, list_models))
        .routes(routes!(get_model))
        .routes(routes!(register_version, list_versions))
        .routes(routes!(get_version, update_version))
        .routes(routes!(quarantine_version, release_version))
        .routes(routes!(version_files))
        .route("/api/v1/models/{model}/versions/{version}/files/{*path}", axum::routing::get(download_version_file))
}

/// Register a model.
#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = NewModel,
    responses((status = 201, body = Model), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_model(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(input): ApiJson<NewModel>,
) -> Result<(StatusCode, Json<Model>), ApiError> {
    let model = s.store.create_model(&caller, input).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// List models: filter by free text or owner team, sort, paginate.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ModelQuery),
    responses((status = 200, body = Page<Model>), (status = 422, body = ErrorBody)))]
async fn list_models(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ModelQuery>,
) -> Result<Json<Page<Model>>, ApiError> {
    Ok(Json(s.store.list_models(&caller, query).await?))
}

/// One model with its live version in every environment.
#[utoipa::path(get, path = "/api/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "Model name")),
    responses((status = 200, body = Model), (status = 404, body = ErrorBody)))]
async fn get_model(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
) -> Result<Json<Model>, ApiError> {
    Ok(Json(s.store.get_model(&caller, &model).await?))
}

/// Register a new version; the server assigns its number.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions", tag = "versions", request_body = NewVersion,
    params(("model" = String, Path, description = "Model name")),
    responses((status = 201, body = Version), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
    ApiJson(input): ApiJson<NewVersion>,
) -> Result<(StatusCode, Json<Version>), ApiError> {
    let version = s.store.register_version(&caller, &model, input).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// List a model's versions, newest first.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions", tag = "versions",
    params(("model" = String, Path, description = "Model name"), VersionQuery),
    responses((status = 200, body = Page<Version>), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
    ApiQuery(query): ApiQuery<VersionQuery>,
) -> Result<Json<Page<Version>>, ApiError> {
    Ok(Json(s.store.list_versions(&caller, &model, query).await?))
}

/// One version.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}", tag = "versions",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody)))]
async fn get_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    Ok(Json(s.store.get_version(&caller, &model, version_number(&number)?).await?))
}

/// Edit a version's description and tags (everything else is immutable).
#[utoipa::path(patch, path = "/api/v1/models/{model}/versions/{version}", tag = "versions", request_body = VersionPatch,
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<VersionPatch>,
) -> Result<Json<Version>, ApiError> {
    Ok(Json(s.store.update_version(&caller, &model, version_number(&number)?, patch).await?))
}

/// Quarantine a version: block it from every deployment, with a reason.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/quarantine", tag = "versions", request_body = QuarantineInput,
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn quarantine_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<QuarantineInput>,
) -> Result<Json<Version>, ApiError> {
    Ok(Json(s.store.quarantine_version(&caller, &model, version_number(&number)?, input).await?))
}

/// Release a version from quarantine.
#[utoipa::path(delete, path = "/api/v1/models/{model}/versions/{version}/quarantine", tag = "versions",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn release_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
) -> Result<Json<Version>, ApiError> {
    Ok(Json(s.store.release_version(&caller, &model, version_number(&number)?).await?))
}

/// A version's files with their sizes and sha256, and its digest with who computed it. Each file
/// downloads from `GET /api/v1/models/{model}/versions/{version}/files/{path}` (`path` may hold
/// `/`), its sha256 as the `ETag`.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/files", tag = "versions",
    params(("model" = String, Path, description = "Model name"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = VersionFiles), (status = 404, body = ErrorBody)))]
async fn version_files(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number)): ApiPath<(String, String)>,
) -> Result<Json<VersionFiles>, ApiError> {
    Ok(Json(s.store.version_files(&caller, &model, version_number(&number)?).await?))
}

/// One of a version's files, streamed, with its sha256 as the `ETag`.
async fn download_version_file(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, number, path)): ApiPath<(String, String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let version = s.store.get_version(&caller, &model, version_number(&number)?).await?;
    let root = version.artifact_root.ok_or_else(|| {
        ApiError::not_found(format!(
            "version {number} of model '{model}' keeps its files elsewhere ({})",
            version.artifact_uri
        ))
    })?;
    let path = crate::artifacts::ArtifactPath::parse("path", &format!("{root}/{}", path.trim_start_matches('/')))?;
    let (file, bytes) = s.store.open_artifact(&caller, &path).await?;
    let name = percent_encoded(file.path.rsplit('/').next().unwrap_or("file"));
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (axum::http::header::CONTENT_LENGTH, file.size.to_string()),
        (axum::http::header::ETAG, format!("\"sha256:{}\"", file.sha256)),
        (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename*=UTF-8''{name}")),
    ];
    Ok((headers, axum::body::Body::from_stream(bytes)).into_response())
}
