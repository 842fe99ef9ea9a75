//! A run's metric history as MLflow reads it back (the points are stored by `crate::tracking`).

use app::domain::Permission;
use axum::Json;
use axum::extract::State;

use super::tracking::require_run;
use super::wire::{GetHistory, KeyedMetric};
use super::{MlflowCaller, MlflowError, MlflowResult, Params};
use crate::http::state::AppState;
use crate::metrics::chunks::{CHUNK_POINTS, unpack};

/// Every point of one metric of a run, in the order logged, paged by `max_results` (at most 25,000).
pub async fn metric_history(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<GetHistory>,
) -> MlflowResult<History> {
    caller.require(Permission::Read)?;
    let run_id = req.run.id()?;
    let limit = match req.max_results {
        None => 25_000,
        Some(n) if (1..=25_000).contains(&n) => n,
        Some(n) => return Err(MlflowError::invalid(format!("max_results: must be 1 to 25000 (got {n})"))),
    };
    let offset: usize = match req.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            t.parse().map_err(|_| MlflowError::invalid(format!("page_token: {t:?} is not a token this server gave")))?
        }
    };
    let limit = limit as usize;
    let mut conn = s.store.conn().await?;
    require_run(&mut conn, run_id).await?;
    let first_chunk = (offset / CHUNK_POINTS) as i64;
    let chunk_count = (offset % CHUNK_POINTS + limit).div_ceil(CHUNK_POINTS) as i64 + 1;
    let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT points FROM mlflow_metric_chunks WHERE run_id = $1 AND key = $2 AND chunk_no >= $3 \
         ORDER BY chunk_no LIMIT $4",
    )
    .bind(run_id)
    .bind(&req.metric_key)
    .bind(first_chunk)
    .bind(chunk_count)
    .fetch_all(&mut *conn)
    .await?;
    let mut points = chunks.iter().flat_map(|bytes| unpack(bytes)).skip(offset % CHUNK_POINTS);
    let metrics: Vec<KeyedMetric> = points
        .by_ref()
        .take(limit)
        .map(|p| KeyedMetric {
            key: req.metric_key.clone(),
            value: p.value,
            timestamp: p.timestamp,
            step: p.step,
            model_id: None,
        })
        .collect();
    let next_page_token = points.next().is_some().then(|| (offset + metrics.len()).to_string());
    Ok(Json(History { metrics, next_page_token }))
}

/// The answer of `metrics/get-history`, serialized straight from the points.
#[derive(serde::Serialize)]
pub struct History {
    metrics: Vec<KeyedMetric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}
