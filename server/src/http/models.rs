//! REST endpoints for models and versions (`/api/v1/models…`).

use app::backend::Registry;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{FromRequest, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{
    ApiJson, ApiPath, ApiQuery, DRAIN_TIME, drain, idle_bounded, multipart_boundary, parse_json, version_number,
};

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

/// Register a new version; the server assigns its number. As JSON, its files live elsewhere
/// (`artifact_uri` and `artifact_digest` given). As `multipart/form-data`, the registry keeps its
/// files: a part named `version` holds the JSON fields (no `artifact_uri`; an `artifact_digest`
/// must agree with the server's), then one part named `file` per file, its filename the file's
/// path in the version (`onnx/model.onnx`); the digest is the server's over them.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions", tag = "versions", request_body = NewVersion,
    params(("model" = String, Path, description = "Model name")),
    responses((status = 201, body = Version), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn register_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(model): ApiPath<String>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<Version>), ApiError> {
    let version = match multipart_boundary(request.headers()) {
        Some(boundary) => {
            // The fields are JSON of a few KB; only the files are as large as they are.
            let limits = multer::SizeLimit::new().for_field("version", 1 << 20);
            let constraints = multer::Constraints::new().size_limit(limits);
            let parts =
                multer::Multipart::with_constraints(request.into_body().into_data_stream(), boundary, constraints);
            let (s, caller) = (s.clone(), caller.clone());
            super::to_completion(async move { register_with_files(&s, &caller, &model, parts).await }).await?
        }
        None => {
            let ApiJson(input) = ApiJson::<NewVersion>::from_request(request, &s).await?;
            s.store.register_version(&caller, &model, input).await?
        }
    };
    Ok((StatusCode::CREATED, Json(version)))
}

/// Streams each file part into the artifact store, then registers the version with them; nothing
/// is kept when a part is refused, the body breaks off or the registration fails.
async fn register_with_files(
    s: &AppState,
    caller: &Caller,
    model: &str,
    mut parts: multer::Multipart<'static>,
) -> Result<Version, ApiError> {
    let broken = |e: multer::Error| ApiError::bad_request(format!("the multipart body could not be read: {e}"));
    let mut upload = match s.store.start_upload(caller) {
        Ok(upload) => upload,
        Err(e) => {
            drain_parts(&mut parts).await;
            return Err(e);
        }
    };
    let mut fields = None;
    let read: Result<NewVersion, ApiError> = async {
        while let Some(part) = parts.next_field().await.map_err(broken)? {
            match part.name() {
                Some("version") => {
                    let bytes = part.bytes().await.map_err(broken)?;
                    let mut object: serde_json::Map<String, serde_json::Value> = parse_json(&bytes)?;
                    if object.contains_key("artifact_uri") {
                        return Err(ApiError::invalid(
                            "artifact_uri",
                            "is the registry's own for uploaded files: leave it out",
                        ));
                    }
                    object.insert("artifact_uri".into(), serde_json::Value::String(String::new()));
                    fields = Some(parse_json(&serde_json::to_vec(&object).unwrap_or_default())?);
                }
                Some("file") => {
                    let name = part.file_name().map(str::to_owned).ok_or_else(|| {
                        ApiError::invalid("file", "each file part needs a filename: the file's path in the version")
                    })?;
                    s.store.upload_file(&mut upload, &name, idle_bounded(part)).await?;
                }
                other => {
                    return Err(ApiError::invalid(
                        other.unwrap_or("part"),
                        "is no part of a registration: send `version`, then one `file` part per file",
                    ));
                }
            }
        }
        fields
            .take()
            .ok_or_else(|| ApiError::invalid("version", "send the version's fields as JSON in a part named `version`"))
    }
    .await;
    match read {
        Ok(input) => s.store.register_uploaded(caller, model, input, upload).await,
        Err(e) => {
            s.store.discard_upload(upload).await;
            drain_parts(&mut parts).await;
            Err(e)
        }
    }
}

/// Reads what is left of a refused registration's parts (see [`drain`]).
async fn drain_parts(parts: &mut multer::Multipart<'static>) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(mut part)) = parts.next_field().await {
            drain(&mut part).await;
        }
    })
    .await;
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
    let (file, bytes) = s.store.open_version_file(&caller, &model, version_number(&number)?, &path).await?;
    let name = percent_encoded(file.path.rsplit('/').next().unwrap_or("file"));
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (axum::http::header::CONTENT_LENGTH, file.size.to_string()),
        (axum::http::header::ETAG, format!("\"sha256:{}\"", file.sha256)),
        (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename*=UTF-8''{name}")),
    ];
    Ok((headers, axum::body::Body::from_stream(bytes)).into_response())
}
