//! REST endpoints of the serving fleet: the assignment key, the signed assignment (long-polled by
//! agents), agents' reports, the fleet by group, and an environment's state at a moment.

use std::time::Duration;

use app::backend::Fleets;
use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::ETAG;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};

/// The longest an assignment request is held waiting for a change.
const MAX_WAIT_SECS: u64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_key))
        .routes(routes!(assignment))
        .routes(routes!(report, remove_agent))
        .routes(routes!(fleet))
        .routes(routes!(state_at))
}

/// The Ed25519 key that signs assignments (public: agents pin it).
#[utoipa::path(get, path = "/api/v1/fleet/public-key", tag = "fleet", responses((status = 200, body = PublicKey)))]
async fn public_key(State(s): State<AppState>) -> Result<Json<PublicKey>, ApiError> {
    Ok(Json(s.store.assignment_key()?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
struct AssignmentQuery {
    /// The counter the agent holds: the answer waits for a higher one.
    after: i64,
    /// Seconds to wait for a change (0 to 30, default 30); 304 when none came.
    wait: Option<u64>,
}

/// The signed assignment of a model in an environment, once its counter is above `after`: at
/// once if it already is, else as soon as the live version changes (on any replica), else 304
/// after `wait` seconds. Agents verify `payload` against `signature` before reading it.
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}/assignment", tag = "fleet",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"), AssignmentQuery),
    responses((status = 200, body = SignedAssignment, headers(("ETag" = String))), (status = 304), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn assignment(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<AssignmentQuery>,
) -> Result<Response, ApiError> {
    let wait = query.wait.unwrap_or(MAX_WAIT_SECS);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::invalid("wait", format!("must be between 0 and {MAX_WAIT_SECS} seconds")));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    // Subscribed before the first read, so a change in between still wakes this request.
    let mut events = s.store.events.subscribe();
    loop {
        if let Some((counter, signed)) = s.store.assignment(&caller, &model, &environment).await?
            && counter > query.after
        {
            return Ok(([(ETAG, format!("\"r{counter}\""))], Json(signed)).into_response());
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Ok(numbered)) => {
                    if let ServerEvent::Deployment { deployment } = numbered.event.as_ref()
                        && deployment.model == model
                        && deployment.environment == environment
                    {
                        break;
                    }
                }
            }
        }
    }
}

/// An agent's report of what it serves; sent again as its heartbeat (at most `heartbeat_seconds`
/// apart: three missed make it lost).
#[utoipa::path(put, path = "/api/v1/models/{model}/environments/{environment}/agents/{instance}", tag = "fleet",
    request_body = AgentReport,
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"),
        ("instance" = String, Path, description = "The serving instance's name")),
    responses((status = 200, body = Agent), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn report(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment, instance)): ApiPath<(String, String, String)>,
    ApiJson(report): ApiJson<AgentReport>,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(s.store.report(&caller, &model, &environment, &instance, report).await?))
}

/// Forget an agent taken out of service: it stops counting towards convergence (operators).
#[utoipa::path(delete, path = "/api/v1/models/{model}/environments/{environment}/agents/{instance}", tag = "fleet",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"),
        ("instance" = String, Path, description = "The serving instance's name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_agent(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment, instance)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    s.store.remove_agent(&caller, &model, &environment, &instance).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every agent of a model in an environment, counted by group and version, and how far the live
/// version's change has spread (issued, propagating, converged, partially converged).
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}/fleet", tag = "fleet",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = Fleet), (status = 404, body = ErrorBody)))]
async fn fleet(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
) -> Result<Json<Fleet>, ApiError> {
    Ok(Json(s.store.fleet(&caller, &model, &environment).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    /// The moment, RFC 3339.
    at: String,
}

/// What was live in an environment at a moment and what each group of agents served then.
#[utoipa::path(get, path = "/api/v1/models/{model}/environments/{environment}/state", tag = "fleet",
    params(("model" = String, Path, description = "Model name"), ("environment" = String, Path, description = "Environment name"), StateQuery),
    responses((status = 200, body = EnvironmentState), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn state_at(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath((model, environment)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<StateQuery>,
) -> Result<Json<EnvironmentState>, ApiError> {
    Ok(Json(s.store.environment_state(&caller, &model, &environment, &query.at).await?))
}
