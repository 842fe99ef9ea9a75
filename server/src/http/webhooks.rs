//! REST endpoints for webhooks and their delivery logs (admins).

use app::backend::Webhooks;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(update_webhook, delete_webhook))
        .routes(routes!(deliveries))
}

/// Registered webhooks with their delivery counts.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>), (status = 403, body = ErrorBody)))]
async fn list_webhooks(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(s.store.list_webhooks(&caller).await?))
}

/// Register a webhook for live-version changes (of one model and/or environment, or all). The
/// answer holds the signing secret, shown this once. Each delivery is a POST of `WebhookPayload`
/// with `Modelgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
/// `Modelgate-Event-Id` and `Modelgate-Delivery`; any 2xx answer counts as delivered.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_webhook(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(input): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    Ok((StatusCode::CREATED, Json(s.store.create_webhook(&caller, input).await?)))
}

/// Pause or resume a webhook, or change its description.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookPatch,
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_webhook(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(s.store.update_webhook(&caller, id, patch).await?))
}

/// Remove a webhook and its delivery log.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(s.store.delete_webhook(&caller, id).await?))
}

/// A webhook's deliveries, newest first, each with every attempt (status code or error, duration).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id"), HistoryQuery),
    responses((status = 200, body = Page<WebhookDelivery>), (status = 404, body = ErrorBody)))]
async fn deliveries(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<WebhookDelivery>>, ApiError> {
    Ok(Json(s.store.webhook_deliveries(&caller, id, query).await?))
}
