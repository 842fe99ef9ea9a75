//! REST endpoints for rollback policies, the rollback plan, requests, reviews and break glass.

use app::backend::Rollbacks;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies))
        .routes(routes!(get_policy, update_policy))
        .routes(routes!(rollback_plan))
        .routes(routes!(request_rollback))
        .routes(routes!(break_glass))
        .routes(routes!(list_rollbacks))
        .routes(routes!(get_rollback))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(acknowledge))
}

/// Every environment's rollback policy.
#[utoipa::path(get, path = "/api/v1/policies", tag = "rollbacks", responses((status = 200, body = Vec<Policy>)))]
async fn list_policies(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Policy>>, ApiError> {
    Ok(Json(s.store.list_policies(&caller).await?))
}

/// An environment's rollback policy.
#[utoipa::path(get, path = "/api/v1/environments/{environment}/policy", tag = "rollbacks",
    params(("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody)))]
async fn get_policy(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(environment): ApiPath<String>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(s.store.policy(&caller, &environment).await?))
}

/// Replace an environment's rollback policy (admins; audited). Requests already open keep the
/// approvals and expiry they were filed with.
#[utoipa::path(put, path = "/api/v1/environments/{environment}/policy", tag = "rollbacks", request_body = PolicyInput,
    params(("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = Policy), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_policy(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(environment): ApiPath<String>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Json<Policy>, ApiError> {
    Ok(Json(s.store.update_policy(&caller, &environment, input).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PlanQuery {
    /// The target to check and compare; the proposed one when absent.
    to_version: Option<i64>,
}

/// What a rollback would do: live version, proposed target, candidates, preflight checks, the
/// metrics of the live and target versions side by side, the policy and any open request.
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}/rollback-plan", tag = "rollbacks",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"), PlanQuery),
    responses((status = 200, body = RollbackPlan), (status = 404, body = ErrorBody)))]
async fn rollback_plan(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<PlanQuery>,
) -> Result<Json<RollbackPlan>, ApiError> {
    Ok(Json(s.store.rollback_plan(&caller, &model, &environment, query.to_version).await?))
}

/// Request a rollback (operators). Preflight refuses with 409 (target live, quarantined or without
/// digest, environment frozen, a request already open) or 422 (`to_version` not a version of the
/// model). With a policy of 0 approvals it executes at once (`status: executed`).
#[utoipa::path(post, path = "/api/v1/models/{model}/environments/{environment}/rollbacks", tag = "rollbacks",
    request_body = RollbackInput,
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first result is returned again")),
    responses((status = 201, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn request_rollback(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<RollbackInput>,
) -> Result<(StatusCode, Json<RollbackRequest>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.request_rollback(&caller, &model, &environment, input).await?)))
}

/// Break glass: roll back at once without approval (holders of the policy's break-glass roles),
/// with a justification and the model's name typed as `confirm`. Ignores freezes; closes any open
/// request as stale; a reviewer must acknowledge it afterwards.
#[utoipa::path(post, path = "/api/v1/models/{model}/environments/{environment}/break-glass", tag = "rollbacks",
    request_body = BreakGlassInput,
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first result is returned again")),
    responses((status = 201, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn break_glass(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<BreakGlassInput>,
) -> Result<(StatusCode, Json<RollbackRequest>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.break_glass(&caller, &model, &environment, input).await?)))
}

/// Rollback requests, newest first; `awaiting_review=true` is a reviewer's queue.
#[utoipa::path(get, path = "/api/v1/rollbacks", tag = "rollbacks", params(RollbackQuery),
    responses((status = 200, body = Page<RollbackRequest>), (status = 422, body = ErrorBody)))]
async fn list_rollbacks(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<RollbackQuery>,
) -> Result<Json<Page<RollbackRequest>>, ApiError> {
    Ok(Json(s.store.list_rollbacks(&caller, query).await?))
}

/// One rollback request with its reviews.
#[utoipa::path(get, path = "/api/v1/rollbacks/{id}", tag = "rollbacks",
    params(("id" = i64, Path, description = "Request id")),
    responses((status = 200, body = RollbackRequest), (status = 404, body = ErrorBody)))]
async fn get_rollback(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RollbackRequest>, ApiError> {
    Ok(Json(s.store.get_rollback(&caller, id).await?))
}

/// Approve another user's open request (reviewers). The last approval needed executes it — by
/// compare-and-swap: if the live version changed since the request, it ends `stale` instead.
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/approve", tag = "rollbacks", request_body = ReviewInput,
    params(("id" = i64, Path, description = "Request id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first result is returned again")),
    responses((status = 200, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn approve(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<RollbackRequest>, ApiError> {
    Ok(Json(s.store.review_rollback(&caller, id, Decision::Approve, input).await?))
}

/// Reject another user's open request, with a comment (reviewers).
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/reject", tag = "rollbacks", request_body = ReviewInput,
    params(("id" = i64, Path, description = "Request id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first result is returned again")),
    responses((status = 200, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reject(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<RollbackRequest>, ApiError> {
    Ok(Json(s.store.review_rollback(&caller, id, Decision::Reject, input).await?))
}

/// Withdraw one's own open request.
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/cancel", tag = "rollbacks", request_body = ReviewInput,
    params(("id" = i64, Path, description = "Request id")),
    responses((status = 200, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<RollbackRequest>, ApiError> {
    Ok(Json(s.store.cancel_rollback(&caller, id, input).await?))
}

/// Acknowledge a break-glass rollback someone else made (reviewers); until then it stays in the queue.
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/acknowledge", tag = "rollbacks", request_body = ReviewInput,
    params(("id" = i64, Path, description = "Request id")),
    responses((status = 200, body = RollbackRequest), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn acknowledge(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> Result<Json<RollbackRequest>, ApiError> {
    Ok(Json(s.store.acknowledge_break_glass(&caller, id, input).await?))
}
