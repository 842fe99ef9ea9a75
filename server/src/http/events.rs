//! `GET /api/v1/events`: server-sent events (new metric points, health changes), filtered by
//! model and version; a lagging subscriber is told how many events it missed.

use std::convert::Infallible;
use std::time::Duration;

use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::ApiQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Which events a subscriber wants.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
struct EventFilter {
    /// Only events of this model.
    model: Option<String>,
    /// Only events of this version (with `model`).
    version: Option<i64>,
}

impl EventFilter {
    fn wants(&self, event: &ServerEvent) -> bool {
        self.model.as_deref().is_none_or(|m| m == event.model())
            && self.version.is_none_or(|v| event.version() == Some(v))
    }
}

/// A stream of server-sent events: `metrics` (points stored for a version) and `health` (a
/// version's health changed in an environment); each `data` is the JSON event with its `type`.
#[utoipa::path(get, path = "/api/v1/events", tag = "metrics", params(EventFilter),
    responses((status = 200, description = "text/event-stream of ServerEvent", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody)))]
async fn events(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::Read)?;
    let receiver = s.store.events.subscribe();
    let stream = futures::stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(n) if filter.wants(&n.event) => Event::default()
                    .id(n.id.to_string())
                    .event(n.event.name())
                    .json_data(&n.event)
                    .unwrap_or_else(|_| Event::default().comment("unencodable event")),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (receiver, filter)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
