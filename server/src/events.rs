//! The event bus: changes are stored in `events` inside the transaction that makes them, numbered
//! in commit order, and relayed from there to every subscriber of this process — so all replicas
//! on one database tell the same story, and a subscriber that reconnects can ask for what it missed.
//! Metric points (a "refresh" hint at ingest rates) skip the table and go to local subscribers only.

use std::sync::Arc;
use std::time::Duration;

use app::domain::ServerEvent;
use app::error::ApiError;
use sqlx::AnyConnection;
use tokio::sync::{Notify, broadcast};

use crate::clock::rfc3339;
use crate::db::{Dialect, db_error};
use crate::store::Store;
use crate::webhooks;

/// How many events a subscriber may lag behind before it skips ahead.
const BACKLOG: usize = 1024;
/// The PostgreSQL channel a commit that stored events notifies, so other replicas relay at once.
const CHANNEL: &str = "modelgate_events";
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
}

impl Default for EventBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(BACKLOG).0, stored: Notify::new() }
    }
}

impl EventBus {
    /// Sends a transient event (new metric points) to this process's subscribers.
    pub fn publish_transient(&self, event: ServerEvent) {
        let _ = self.sender.send(Numbered { id: None, event: Arc::new(event) });
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
/// of `id > n` never sees a later event before an earlier one. A live-version change also goes to
/// the webhook outbox here, so no change can skip it.
pub(crate) async fn record(conn: &mut AnyConnection, event: &ServerEvent, now: i64) -> Result<i64, ApiError> {
    let id: i64 = sqlx::query_scalar("UPDATE event_head SET last_id = last_id + 1 WHERE id = 1 RETURNING last_id")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    let payload = serde_json::to_string(event).map_err(|_| ApiError::internal())?;
    sqlx::query("INSERT INTO events (id, at, kind, model, environment, payload) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(now)
        .bind(event.name())
        .bind(event.model())
        .bind(event.environment())
        .bind(&payload)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    if Dialect::of_connection(conn) == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *conn).await.map_err(db_error)?;
    }
    if let ServerEvent::Deployment { deployment } = event {
        webhooks::enqueue(conn, id, deployment, &rfc3339(now), now).await?;
    }
    Ok(id)
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
    .await
    .map_err(db_error)?;
    Ok(rows.into_iter().filter_map(|(id, text)| serde_json::from_str(&text).ok().map(|e| (id, e))).collect())
}

/// The number of the last stored event.
pub(crate) async fn head(conn: &mut AnyConnection) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT last_id FROM event_head WHERE id = 1").fetch_one(conn).await.map_err(db_error)
}

/// Starts relaying stored events to this process's subscribers, in order, from the current head
/// on: woken by local commits, PostgreSQL notifications from other replicas (listening before the
/// head is read, so nothing falls between), and a poll. Ends with the store.
pub async fn start_relay(store: &Arc<Store>, database_url: &str) -> Result<(), ApiError> {
    let mut listener = match store.db.dialect() {
        Dialect::Postgres => listen(database_url).await,
        Dialect::Sqlite => None,
    };
    let mut last = head(&mut *store.conn().await?).await?;
    let (store, database_url) = (Arc::downgrade(store), database_url.to_string());
    tokio::spawn(async move {
        loop {
            let Some(s) = store.upgrade().filter(|s| !s.db.pool().is_closed()) else { return };
            if listener.is_none() && s.db.dialect() == Dialect::Postgres {
                listener = listen(&database_url).await;
            }
            match relay_once(&s, last).await {
                Ok(relayed_to) => last = relayed_to,
                Err(e) => tracing::warn!(error = %e.message, "relaying events failed"),
            }
            let bus = s.events.clone();
            drop(s);
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = bus.stored.notified() => {}
                received = notified => if received.is_err() { listener = None },
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
    Ok(())
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

/// Sends every event stored after `after`; returns the number of the last one sent.
async fn relay_once(store: &Store, mut after: i64) -> Result<i64, ApiError> {
    let mut conn = store.conn().await?;
    loop {
        let events = stored_since(&mut conn, after, None).await?;
        let done = (events.len() as i64) < BATCH;
        for (id, event) in events {
            after = id;
            let _ = store.events.sender.send(Numbered { id: Some(id), event: Arc::new(event) });
        }
        if done {
            return Ok(after);
        }
    }
}
