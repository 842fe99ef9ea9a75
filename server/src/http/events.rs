//! `GET /api/v1/events`: server-sent events — live-version changes, rollback requests, health
//! changes, rollouts (numbered, replayed after `Last-Event-ID`), new metric points and agents'
//! reports — filtered by model, environment, version and type; a lagging subscriber is told how
//! many events it missed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use app::domain::*;
use app::error::{ApiError, ErrorBody};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::ApiQuery;
use crate::events::{Numbered, head, stored_since};
use crate::store::Store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The event types a subscriber can ask for.
const TYPES: [&str; 6] = ["metrics", "health", "deployment", "rollback", "rollout", "agent"];

/// Which events a subscriber wants.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct EventFilter {
    /// Only events of this model.
    model: Option<String>,
    /// Only events in this environment (metric points have none, so they are left out).
    environment: Option<String>,
    /// Only events of this version (a live-version change concerns the versions before and after).
    version: Option<i64>,
    /// Comma-separated types: `metrics`, `health`, `deployment`, `rollback`, `rollout`, `agent`
    /// (all when absent).
    types: Option<String>,
    /// Resume after this event, like the `Last-Event-ID` header (which wins when both are sent).
    last_event_id: Option<i64>,
}

impl EventFilter {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(bad) = self.types.iter().flat_map(|t| t.split(',')).find(|t| !TYPES.contains(&t.trim())) {
            return Err(ApiError::invalid(
                "types",
                format!("unknown event type '{bad}' (known: {})", TYPES.join(", ")),
            ));
        }
        Ok(())
    }

    fn wants(&self, event: &ServerEvent) -> bool {
        self.model.as_deref().is_none_or(|m| m == event.model())
            && self.environment.as_deref().is_none_or(|e| Some(e) == event.environment())
            && self.version.is_none_or(|v| event.concerns_version(v))
            && self.types.as_deref().is_none_or(|t| t.split(',').any(|t| t.trim() == event.name()))
    }
}

fn sse_event(id: Option<i64>, event: &ServerEvent) -> Event {
    let sse = Event::default().event(event.name());
    let sse = match id {
        Some(id) => sse.id(id.to_string()),
        None => sse,
    };
    sse.json_data(event).unwrap_or_else(|_| Event::default().comment("unencodable event"))
}

/// A subscription: stored events after the resume point first, then live ones, each once.
struct Subscription {
    store: Arc<Store>,
    receiver: Receiver<Numbered>,
    filter: EventFilter,
    ready: VecDeque<Event>,
    /// Where replaying stored events goes on from; `None` once caught up.
    replay_after: Option<i64>,
    /// The last stored event sent: live copies of it or earlier ones are skipped.
    sent_up_to: i64,
}

impl Subscription {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if let Some(after) = self.replay_after {
                self.replay_page(after).await;
                continue;
            }
            match self.receiver.recv().await {
                Ok(n) if n.id.is_some_and(|id| id <= self.sent_up_to) => {}
                Ok(n) => {
                    if let Some(id) = n.id {
                        self.sent_up_to = id;
                    }
                    if self.filter.wants(&n.event) {
                        return Some(sse_event(n.id, &n.event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    return Some(Event::default().event("lagged").data(missed.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    async fn replay_page(&mut self, after: i64) {
        let page = match self.store.conn().await {
            Ok(mut conn) => stored_since(&mut conn, after, self.filter.model.as_deref()).await,
            Err(e) => Err(e),
        };
        match page {
            Ok(events) if !events.is_empty() => {
                for (id, event) in events {
                    self.sent_up_to = id;
                    self.replay_after = Some(id);
                    if self.filter.wants(&event) {
                        self.ready.push_back(sse_event(Some(id), &event));
                    }
                }
            }
            Ok(_) => self.replay_after = None,
            Err(e) => {
                self.replay_after = None;
                self.ready.push_back(Event::default().event("error").data(e.message));
            }
        }
    }
}

/// A stream of server-sent events; each `data` is the JSON event with its `type`. Durable events
/// (`deployment`, `rollback`, `health`) carry an `id`: reconnect with `Last-Event-ID` (browsers do
/// it by themselves) to get every one stored since, from any replica. `metrics` events (new points)
/// carry none and are not replayed.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventFilter,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")),
    responses((status = 200, description = "text/event-stream of ServerEvent", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn events(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::Read)?;
    filter.validate()?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be the id of an event"))?,
        ),
        None => filter.last_event_id,
    };
    let receiver = s.store.events.subscribe();
    // Without a resume point, the stream starts with what is stored after now (events stored just
    // before, still on their way through the relay, are not this subscriber's).
    let sent_up_to = match resume {
        Some(after) => after,
        None => head(&mut *s.store.conn().await?).await?,
    };
    let subscription = Subscription {
        receiver,
        store: s.store.clone(),
        filter,
        ready: VecDeque::new(),
        replay_after: resume,
        sent_up_to,
    };
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let event = sub.next().await?;
        Some((Ok(event), sub))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
