//! `Idempotency-Key` on API writes: the first result under a key is stored and given again to
//! every retry (marked `Idempotency-Replayed: true`); the key with a different request gets 422,
//! and a duplicate arriving while the first is still running gets 409. Keys belong to the calling
//! user and are kept for a day.

use app::domain::Caller;
use app::error::{ApiError, ErrorCode};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::store::Store;

const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotency-replayed";
const MAX_KEY: usize = 255;
/// A key whose first request has run this long without finishing (a crashed server) can be retried.
const ABANDONED_MS: i64 = 5 * 60_000;
/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 3_600_000;

/// What the first request under a key left.
#[derive(sqlx::FromRow)]
struct Stored {
    fingerprint: String,
    state: String,
    status: Option<i64>,
    content_type: Option<String>,
    body: Option<String>,
    created_at: i64,
}

pub async fn idempotency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let is_write = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let key = req.headers().get(HEADER).map(|v| v.to_str().map(str::to_string));
    let (Some(key), true) = (key, is_write && req.uri().path().starts_with("/api/")) else {
        return next.run(req).await;
    };
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let key = match key {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY && k.chars().all(|c| c.is_ascii_graphic()) => k,
        _ => {
            return ApiError::invalid("Idempotency-Key", format!("must be 1 to {MAX_KEY} visible ASCII characters"))
                .into_response();
        }
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, s.max_body_bytes).await else {
        return ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large").into_response();
    };
    let mut hasher = Sha256::new();
    hasher.update(format!("{} {}\n", parts.method, parts.uri.path_and_query().map_or("", |p| p.as_str())));
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());
    match claim(&s.store, &caller.username, &key, &fingerprint).await {
        Ok(None) => {}
        Ok(Some(response)) => return response,
        Err(e) => return e.into_response(),
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    match remember(&s.store, &caller.username, &key, response).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Takes the key for this request; or answers for it: the stored result, 409 or 422.
async fn claim(store: &Store, user: &str, key: &str, fingerprint: &str) -> Result<Option<Response>, ApiError> {
    let now = store.clock.now_ms();
    let mut tx = store.begin_data_write().await?;
    let taken = sqlx::query(
        "INSERT INTO idempotency_keys (username, key, fingerprint, state, created_at) VALUES ($1, $2, $3, 'running', $4) \
         ON CONFLICT (username, key) DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if taken.rows_affected() == 1 {
        tx.commit().await?;
        return Ok(None);
    }
    let stored: Stored = sqlx::query_as(
        "SELECT fingerprint, state, status, content_type, body, created_at FROM idempotency_keys \
         WHERE username = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    if stored.fingerprint != fingerprint {
        return Err(ApiError::invalid("Idempotency-Key", "this key was already used for a different request"));
    }
    if stored.state == "running" {
        if stored.created_at + ABANDONED_MS > now {
            return Err(ApiError::conflict(
                "a request with this Idempotency-Key is still being processed; retry later",
            ));
        }
        sqlx::query("UPDATE idempotency_keys SET created_at = $1 WHERE username = $2 AND key = $3")
            .bind(now)
            .bind(user)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(None);
    }
    let status = stored.status.and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body.unwrap_or_default()).into_response();
    if let Some(ct) = stored.content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(Some(response))
}

/// Stores the first result under the key (a server error releases the key instead, so the retry runs).
async fn remember(store: &Store, user: &str, key: &str, response: Response) -> Result<Response, ApiError> {
    // Whole, whatever its size: a write's response is bounded by what the API produces (a few
    // times the largest request body at most), and a replay must be the same bytes.
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.ok();
    let keep = !parts.status.is_server_error() && bytes.as_ref().is_some_and(|b| std::str::from_utf8(b).is_ok());
    let mut tx = store.begin_data_write().await?;
    if keep {
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $1, content_type = $2, body = $3 \
             WHERE username = $4 AND key = $5",
        )
        .bind(i64::from(parts.status.as_u16()))
        .bind(content_type)
        .bind(bytes.as_ref().and_then(|b| std::str::from_utf8(b).ok()))
        .bind(user)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("DELETE FROM idempotency_keys WHERE username = $1 AND key = $2")
            .bind(user)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let Some(bytes) = bytes else {
        tracing::error!("a response body could not be read for its Idempotency-Key");
        return Err(ApiError::internal());
    };
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

impl Store {
    /// Forgets idempotency keys older than a day; the server runs this every hour.
    pub async fn forget_idempotency_keys(&self) -> Result<(), ApiError> {
        let mut tx = self.begin_data_write().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(self.clock.now_ms() - RETENTION_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}
