//! REST endpoints for environments, live versions, deploys and deployment history.

use app::backend::Deployments;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments, create_environment))
        .routes(routes!(live_version))
        .routes(routes!(deploy))
        .routes(routes!(history))
}

/// List environments in display order.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments", responses((status = 200, body = Vec<Environment>)))]
async fn list_environments(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Environment>>, ApiError> {
    Ok(Json(s.store.list_environments(&caller).await?))
}

/// Add an environment.
#[utoipa::path(post, path = "/api/v1/environments", tag = "environments", request_body = NewEnvironment,
    responses((status = 201, body = Environment), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_environment(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(input): ApiJson<NewEnvironment>,
) -> Result<(StatusCode, Json<Environment>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_environment(&caller, input).await?)))
}

/// The live version of a model in an environment. Send `If-None-Match` with the last `ETag` to get 304 while unchanged.
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}", tag = "deployments",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"), LiveQuery),
    responses((status = 200, body = LiveVersion, headers(("ETag" = String))),
        (status = 200, description = "With `signed=true`: the signed assignment", body = SignedAssignment),
        (status = 304), (status = 404, body = ErrorBody)))]
async fn live_version(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<LiveQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if query.signed {
        caller.require(Permission::Read)?;
        let (_, signed) = s
            .store
            .assignment(&caller, &model, &environment)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no version of {model} is live in {environment}")))?;
        return Ok(Json(signed).into_response());
    }
    let live = s.store.live_version(&caller, &model, &environment).await?;
    let etag = format!("\"r{}\"", live.revision);
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let etag = HeaderValue::from_str(&etag).map_err(|_| ApiError::internal())?;
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    Ok(([(ETAG, etag)], Json(live)).into_response())
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
struct LiveQuery {
    /// Answer with the signed assignment (as agents receive it) instead.
    signed: bool,
}

/// Make a version live in an environment. The version must exist, have a digest and not be quarantined.
#[utoipa::path(post, path = "/api/v1/models/{model}/environments/{environment}/deploy", tag = "deployments", request_body = DeployInput,
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name")),
    responses((status = 201, body = DeploymentEvent), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn deploy(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<DeployInput>,
) -> Result<(StatusCode, Json<DeploymentEvent>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.deploy(&caller, &model, &environment, input).await?)))
}

/// Every change of the live version of a model in an environment, newest first.
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}/history", tag = "deployments",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"), HistoryQuery),
    responses((status = 200, body = Page<DeploymentEvent>), (status = 404, body = ErrorBody)))]
async fn history(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<DeploymentEvent>>, ApiError> {
    Ok(Json(s.store.history(&caller, &model, Some(&environment), query).await?))
}
