//! REST endpoints for the caller's profile, users and API tokens.

use app::backend::Identity;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The caller: username and the roles in force for this request.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(s): State<AppState>, Authenticated(caller): Authenticated) -> Result<Json<Me>, ApiError> {
    Ok(Json(s.store.me(&caller).await?))
}

/// List users (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "identity", responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(s.store.list_users(&caller).await?))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "identity", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(input): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_user(&caller, input).await?)))
}

/// Change a user's name or roles, disable or enable them, or reset their password (admin).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "identity", request_body = UserPatch,
    params(("username" = String, Path, description = "Username")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(username): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(s.store.update_user(&caller, &username, patch).await?))
}

/// API tokens: all of them for admins, the caller's own otherwise.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "identity", responses((status = 200, body = Vec<ApiToken>), (status = 401, body = ErrorBody)))]
async fn list_tokens(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(s.store.list_tokens(&caller).await?))
}

/// Create an API token. The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(input): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_token(&caller, input).await?)))
}

/// Revoke an API token (its owner or an admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "identity",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = ApiToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_token(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiToken>, ApiError> {
    let id = id.parse::<i64>().map_err(|_| ApiError::invalid("id", format!("'{id}' is not a token id")))?;
    Ok(Json(s.store.revoke_token(&caller, id).await?))
}
