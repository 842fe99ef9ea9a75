//! The event bus: changes are stored in `events` inside the transaction that makes them, numbered
//! in commit order, and relayed from there to every subscriber of this process — so all replicas
//! on one database tell the same story, and a subscriber that reconnects can ask for what it missed.
//! Metric points and agent reports (a "refresh" hint at ingest rates) skip the table: they go to this process's
//! subscribers and, on PostgreSQL, to the other replicas' as a notification.

use std::sync::Arc;
use std::time::Duration;

use app::domain::ServerEvent;
use app::error::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::db::{Db, Dialect};

/// How many events a subscriber may lag behind before it skips ahead.
const BACKLOG: usize = 1024;
/// The PostgreSQL channel a commit that stored events notifies, so other replicas relay at once.
const CHANNEL: &str = "modelgate_events";
/// The PostgreSQL channel transient events (new metric points, agent reports) are announced on,
/// the event itself as the payload.
const TRANSIENT_CHANNEL: &str = "modelgate_transient";
/// A notification's payload stays under PostgreSQL's limit of 8,000 bytes: an announcement of
/// more keys than fit is split, each part naming some of them.
const MAX_PAYLOAD: usize = 7_000;
/// How often the relay looks for stored events without being told (a lost notification, a
/// listener reconnecting).
const POLL: Duration = Duration::from_secs(1);
/// Events read per query while relaying or replaying.
const BATCH: i64 = 500;

/// An event as subscribers get it: durable events carry their number.
#[derive(Debug, Clone)]
pub struct Numbered {
    pub id: Option<i64>,
    pub event: Arc<ServerEvent>,
}

#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Numbered>,
    stored: Notify,
    /// This process among the replicas, so it skips its own transient announcements.
    origin: String,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BACKLOG).0,
            stored: Notify::new(),
            origin: Uuid::new_v4().simple().to_string(),
        }
    }
}

/// A transient event as announced to the other replicas.
#[derive(Serialize, Deserialize)]
struct TransientNotice {
    origin: String,
    event: ServerEvent,
}

impl EventBus {
    /// Sends a transient event (new metric points, an agent's report) to this process's subscribers.
    pub fn publish_transient(&self, event: ServerEvent) {
        let _ = self.sender.send(Numbered { id: None, event: Arc::new(event) });
    }

    /// Relays a transient announcement from another replica to this process's subscribers.
    fn relay_notice(&self, payload: &str) {
        match serde_json::from_str::<TransientNotice>(payload) {
            Ok(notice) if notice.origin != self.origin => self.publish_transient(notice.event),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "an unreadable transient announcement"),
        }
    }

    /// The payloads announcing `event` to the other replicas: one, or for a `Metrics` event naming
    /// more keys than one payload holds, one per part of its keys.
    fn notices(&self, event: ServerEvent) -> Vec<String> {
        let notice =
            |event| serde_json::to_string(&TransientNotice { origin: self.origin.clone(), event }).unwrap_or_default();
        let whole = notice(event.clone());
        let ServerEvent::Metrics { model, version, keys, points } = event else { return vec![whole] };
        if whole.len() <= MAX_PAYLOAD {
            return vec![whole];
        }
        let room = MAX_PAYLOAD.saturating_sub(
            notice(ServerEvent::Metrics { model: model.clone(), version, keys: Vec::new(), points }).len(),
        );
        let mut parts: Vec<Vec<String>> = vec![Vec::new()];
        let mut used = 0;
        for key in keys {
            let size = key.len() + 3;
            if used + size > room && !parts.last().is_some_and(Vec::is_empty) {
                parts.push(Vec::new());
                used = 0;
            }
            used += size;
            parts.last_mut().expect("one part at least").push(key);
        }
        parts
            .into_iter()
            .map(|keys| notice(ServerEvent::Metrics { model: model.clone(), version, keys, points }))
            .collect()
    }

    /// Tells the relay that a commit stored events.
    pub fn stored(&self) {
        self.stored.notify_one();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.sender.subscribe()
    }
}

/// Stores a durable event in the caller's transaction and returns its number. Updating the head
/// row locks it until the transaction ends, so numbers are given out in commit order and a reader
/// of `id > n` never sees a later event before an earlier one.
pub(crate) async fn record(conn: &mut AnyConnection, event: &ServerEvent, now: i64) -> Result<i64, ApiError> {
    let id: i64 = sqlx::query_scalar("UPDATE event_head SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id")
        .fetch_one(&mut *conn)
        .await?;
    let payload = serde_json::to_string(event).map_err(|_| ApiError::internal())?;
    sqlx::query("INSERT INTO events (id, at, kind, model, environment, payload) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(now)
        .bind(event.name())
        .bind(event.model())
        .bind(event.environment())
        .bind(&payload)
        .execute(&mut *conn)
        .await?;
    if Dialect::of_connection(conn) == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *conn).await?;
    }
    Ok(id)
}

/// Tells this process's subscribers of a transient event and, on PostgreSQL, the other replicas'
/// (each relays the notification to its own; a lost one costs a live refresh, not data).
pub(crate) async fn announce_transient(db: &Db, bus: &EventBus, event: ServerEvent) {
    bus.publish_transient(event.clone());
    if db.dialect() != Dialect::Postgres {
        return;
    }
    let announced = async {
        let mut conn = db.read().await?;
        for payload in bus.notices(event) {
            sqlx::query("SELECT pg_notify($1, $2)").bind(TRANSIENT_CHANNEL).bind(payload).execute(&mut *conn).await?;
        }
        Ok::<_, ApiError>(())
    };
    if let Err(e) = announced.await {
        tracing::warn!(error = %e.message, "announcing a transient event to the other replicas failed");
    }
}

/// Stored events after `after`, oldest first, optionally of one model only.
pub(crate) async fn stored_since(
    conn: &mut AnyConnection,
    after: i64,
    model: Option<&str>,
) -> Result<Vec<(i64, ServerEvent)>, ApiError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, payload FROM events WHERE id > $1 AND ($2 IS NULL OR model = $2) ORDER BY id LIMIT $3",
    )
    .bind(after)
    .bind(model)
    .bind(BATCH)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|(id, text)| serde_json::from_str(&text).ok().map(|e| (id, e))).collect())
}

/// The number of the last stored event.
pub(crate) async fn head(conn: &mut AnyConnection) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT last_id FROM event_head WHERE id = 1").fetch_one(conn).await.map_err(ApiError::from)
}

/// Starts relaying stored events to this process's subscribers, in order, from the current head
/// on: woken by local commits, PostgreSQL notifications from other replicas (listening before the
/// head is read, so nothing falls between), and a poll; and, on PostgreSQL, the other replicas'
/// announcements of new points as they come. Ends with the bus or the database.
pub async fn start_relay(bus: &Arc<EventBus>, db: &Db, database_url: &str) -> Result<(), ApiError> {
    let mut listener = match db.dialect() {
        Dialect::Postgres => listen(database_url).await,
        Dialect::Sqlite => None,
    };
    let mut last = head(&mut *db.read().await?).await?;
    let (weak, db, database_url) = (Arc::downgrade(bus), db.clone(), database_url.to_string());
    tokio::spawn(async move {
        loop {
            let Some(bus) = weak.upgrade().filter(|_| !db.pool().is_closed()) else { return };
            if listener.is_none() && db.dialect() == Dialect::Postgres {
                listener = listen(&database_url).await;
            }
            match relay_once(&db, &bus, last).await {
                Ok(relayed_to) => last = relayed_to,
                Err(e) => tracing::warn!(error = %e.message, "relaying events failed"),
            }
            // Point announcements from other replicas are relayed as they come; anything else
            // (a local commit, another replica's stored events, the poll) reads stored events.
            let poll = tokio::time::Instant::now() + POLL;
            loop {
                let notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = bus.stored.notified() => break,
                    received = notified => match received {
                        Ok(n) if n.channel() == TRANSIENT_CHANNEL => bus.relay_notice(n.payload()),
                        Ok(_) => break,
                        Err(_) => {
                            listener = None;
                            break;
                        }
                    },
                    () = tokio::time::sleep_until(poll) => break,
                }
            }
        }
    });
    Ok(())
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await.ok()?;
    listener.listen_all([CHANNEL, TRANSIENT_CHANNEL]).await.ok()?;
    Some(listener)
}

/// Sends every event stored after `after`; returns the number of the last one sent.
async fn relay_once(db: &Db, bus: &EventBus, mut after: i64) -> Result<i64, ApiError> {
    let mut conn = db.read().await?;
    loop {
        let events = stored_since(&mut conn, after, None).await?;
        let done = (events.len() as i64) < BATCH;
        for (id, event) in events {
            after = id;
            let _ = bus.sender.send(Numbered { id: Some(id), event: Arc::new(event) });
        }
        if done {
            return Ok(after);
        }
    }
}
