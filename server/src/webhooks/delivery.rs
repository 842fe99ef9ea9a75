//! Sends the outbox: each due delivery is claimed with a lease (so replicas never send one twice
//! at once), POSTed with an HMAC-SHA256 signature, and either marked delivered or retried with
//! exponential backoff; every attempt is logged.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::domain::ServerEvent;
use app::error::ApiError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;

use super::targets::{PublicOnly, Targets, check_url};
use crate::store::Store;

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "modelgate-signature";
/// The event's number, the same in every retry (receivers can drop duplicates by it).
pub const EVENT_HEADER: &str = "modelgate-event-id";
/// The delivery's number, as the delivery log shows it.
pub const DELIVERY_HEADER: &str = "modelgate-delivery";

/// How long a claimed delivery is reserved for the replica sending it: longer than a request may take.
const LEASE_MS: i64 = 30_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between looks at the outbox.
const POLL: Duration = Duration::from_secs(1);
/// Deliveries sent at once.
const BATCH: i64 = 32;

/// When failed deliveries are tried again: `base × 2^(failures − 1)`, at most `max`, until `attempts` were made.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), max: Duration::from_secs(600), attempts: 15 }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The `Modelgate-Signature` value of `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delivers the outbox until the store is gone or closed: woken by each live-version change, and at least
/// every second (or when the next retry is due).
pub fn spawn_deliverer(store: Weak<Store>, retry: RetryPolicy, targets: Targets) {
    tokio::spawn(async move {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if targets == Targets::PublicOnly {
            // Every address a name resolves to is checked as it is sent; a redirect is not followed.
            builder = builder.dns_resolver(Arc::new(PublicOnly)).redirect(reqwest::redirect::Policy::none());
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(e) => return tracing::error!(error = %e, "webhook deliveries are off: no HTTP client"),
        };
        let Some(mut changes) = store.upgrade().map(|s| s.events.subscribe()) else { return };
        loop {
            let Some(s) = store.upgrade().filter(|s| !s.db.pool().is_closed()) else { return };
            let wait = match deliver_due(&s, &client, retry, targets).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e.message, "webhook delivery failed");
                    POLL
                }
            };
            drop(s);
            tokio::select! {
                received = changes.recv() => match received {
                    Ok(n) if !matches!(*n.event, ServerEvent::Deployment { .. }) => {}
                    Err(RecvError::Closed) => return,
                    _ => {}
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    event_id: i64,
    payload: String,
    attempts: i64,
    url: String,
    secret: String,
}

/// What one attempt got.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends what is due; returns how long to wait before looking again.
async fn deliver_due(
    store: &Store,
    client: &reqwest::Client,
    retry: RetryPolicy,
    targets: Targets,
) -> Result<Duration, ApiError> {
    let now = store.clock.now_ms();
    let due: Vec<Due> = sqlx::query_as(
        "SELECT d.id, d.event_id, d.payload, d.attempts, w.url, w.secret FROM webhook_deliveries d \
         JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 \
         ORDER BY d.next_attempt_at, d.id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&mut *store.conn().await?)
    .await?;
    if !due.is_empty() {
        let claimed = claim(store, due, now).await?;
        let outcomes = futures::future::join_all(claimed.iter().map(|d| send(client, d, targets))).await;
        record(store, &claimed, &outcomes, retry).await?;
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END) \
         FROM webhook_deliveries WHERE status = 'pending'",
    )
    .fetch_one(&mut *store.conn().await?)
    .await?;
    let until_next = next.map_or(POLL, |at| Duration::from_millis((at - store.clock.now_ms()).max(0) as u64));
    Ok(until_next.min(POLL))
}

/// Reserves deliveries for this replica; those another replica took meanwhile are left out.
async fn claim(store: &Store, due: Vec<Due>, now: i64) -> Result<Vec<Due>, ApiError> {
    let mut tx = store.begin_data_write().await?;
    let mut claimed = Vec::with_capacity(due.len());
    for d in due {
        let taken = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND lease_until <= $3",
        )
        .bind(now + LEASE_MS)
        .bind(d.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 1 {
            claimed.push(d);
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

async fn send(client: &reqwest::Client, d: &Due, targets: Targets) -> Outcome {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.as_secs() as i64);
    let started = Instant::now();
    // An address in the URL is not resolved, so the resolver never sees it: checked here.
    if targets == Targets::PublicOnly
        && let Err(why) = check_url(&d.url)
    {
        return Outcome { status: None, error: Some(why), duration_ms: 0 };
    }
    let response = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "Modelgate-Webhooks/1")
        .header(SIGNATURE_HEADER, signature(&d.secret, timestamp, &d.payload))
        .header(EVENT_HEADER, d.event_id.to_string())
        .header(DELIVERY_HEADER, d.id.to_string())
        .body(d.payload.clone())
        .send()
        .await;
    let duration_ms = started.elapsed().as_millis() as i64;
    match response {
        Ok(r) if r.status().is_success() => Outcome { status: Some(r.status().as_u16()), error: None, duration_ms },
        Ok(r) => Outcome {
            status: Some(r.status().as_u16()),
            error: Some(format!("the receiver answered {}", r.status())),
            duration_ms,
        },
        Err(e) => Outcome { status: None, error: Some(root_cause(&e)), duration_ms },
    }
}

/// The innermost cause of a failed request ("Connection refused (os error 111)"), which says more
/// than the outer "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Logs each attempt and moves each delivery on: delivered, retried later, or given up.
async fn record(store: &Store, claimed: &[Due], outcomes: &[Outcome], retry: RetryPolicy) -> Result<(), ApiError> {
    let now = store.clock.now_ms();
    let mut tx = store.begin_data_write().await?;
    for (d, outcome) in claimed.iter().zip(outcomes) {
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(d.id)
        .bind(now)
        .bind(outcome.status.map(i64::from))
        .bind(&outcome.error)
        .bind(outcome.duration_ms)
        .execute(&mut *tx)
        .await?;
        let attempts = d.attempts + 1;
        let (status, next) = if outcome.delivered() {
            ("delivered", now)
        } else if attempts >= i64::from(retry.attempts) {
            ("failed", now)
        } else {
            ("pending", now + retry.delay(attempts as u32).as_millis() as i64)
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = 0, \
             last_status = $4, last_error = $5, delivered_at = $6 WHERE id = $7",
        )
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(outcome.status.map(i64::from))
        .bind(&outcome.error)
        .bind(outcome.delivered().then_some(now))
        .bind(d.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(1), attempts: 5 };
        let delays: Vec<u128> = (1..=6).map(|n| retry.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn signatures_cover_time_and_body() {
        let a = signature("whsec_k", 1_700_000_000, "{}");
        // Python: hmac.new(b"whsec_k", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(a, "t=1700000000,v1=8b20524faff2b12e1089e404a8cf60fbe577e5320e899ebff7329ebbcb9ada22");
        assert_ne!(a, signature("whsec_k", 1_700_000_001, "{}"));
        assert_ne!(a, signature("whsec_k", 1_700_000_000, "{ }"));
        assert_ne!(a, signature("whsec_x", 1_700_000_000, "{}"));
    }
}
