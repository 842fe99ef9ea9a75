//! MLflow run storage below the wire API: a run's metric points appended per key into 512-point
//! chunks with the latest per key kept, and stored as the evaluation series of every version
//! registered from the run.

use std::collections::BTreeMap;

use app::domain::{MetricPoint, MetricSource, NewMetricPoint};
use app::error::ApiError;
use sqlx::AnyConnection;

use crate::audit::AuditLog;
use crate::metrics::chunks::{CHUNK_POINTS, pack, unpack};
use crate::metrics::{StoredPoints, store_points, version_ids};

/// A point of a run's metric with its key.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetric {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// Locks a run's row until the transaction ends, so its points and the versions registered from
/// it are written one after the other; false when there is no such run.
pub(crate) async fn lock_run(conn: &mut AnyConnection, id: &str) -> Result<bool, ApiError> {
    let locked = sqlx::query("UPDATE mlflow_runs SET status = status WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(locked > 0)
}

/// Locks a run like [`lock_run`] and returns its experiment, or `None` when there is no such run.
pub(crate) async fn lock_run_experiment(conn: &mut AnyConnection, id: &str) -> Result<Option<i64>, ApiError> {
    if !lock_run(conn, id).await? {
        return Ok(None);
    }
    Ok(sqlx::query_scalar("SELECT experiment_id FROM mlflow_runs WHERE id = $1").bind(id).fetch_optional(conn).await?)
}

/// Appends one key's points: fills its last chunk, then starts new ones.
async fn append_points(
    conn: &mut AnyConnection,
    run_id: &str,
    key: &str,
    points: &[MetricPoint],
) -> Result<(), ApiError> {
    let last: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT chunk_no, points FROM mlflow_metric_chunks WHERE run_id = $1 AND key = $2 ORDER BY chunk_no DESC LIMIT 1",
    )
    .bind(run_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let mut rest = points;
    let mut next = 0;
    if let Some((last_no, bytes)) = last {
        next = last_no + 1;
        let mut tail = unpack(&bytes);
        if tail.len() < CHUNK_POINTS {
            let take = (CHUNK_POINTS - tail.len()).min(rest.len());
            tail.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            sqlx::query(
                "UPDATE mlflow_metric_chunks SET point_count = $4, points = $5 WHERE run_id = $1 AND key = $2 AND chunk_no = $3",
            )
            .bind(run_id)
            .bind(key)
            .bind(last_no)
            .bind(tail.len() as i64)
            .bind(pack(&tail))
            .execute(&mut *conn)
            .await?;
        }
    }
    for piece in rest.chunks(CHUNK_POINTS) {
        sqlx::query(
            "INSERT INTO mlflow_metric_chunks (run_id, key, chunk_no, point_count, points) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(run_id)
        .bind(key)
        .bind(next)
        .bind(piece.len() as i64)
        .bind(pack(piece))
        .execute(&mut *conn)
        .await?;
        next += 1;
    }
    Ok(())
}

/// Appends points to a run, each key's to its chunks, and keeps the latest per key: the highest
/// step, then time, then value. A value may be NaN or infinite, as in MLflow: the chunks keep it
/// as is, the latest value a NaN as NULL (SQLite stores no NaN). The caller holds the run's row lock.
pub(crate) async fn write_metrics(
    conn: &mut AnyConnection,
    run_id: &str,
    metrics: &[RunMetric],
) -> Result<(), ApiError> {
    let mut by_key: BTreeMap<&str, Vec<MetricPoint>> = BTreeMap::new();
    for m in metrics {
        by_key.entry(&m.key).or_default().push(MetricPoint { step: m.step, timestamp: m.timestamp, value: m.value });
    }
    for (key, points) in &by_key {
        append_points(conn, run_id, key, points).await?;
    }
    let mut latest: BTreeMap<&str, &RunMetric> = BTreeMap::new();
    for m in metrics {
        let newer = latest.get(m.key.as_str()).is_none_or(|l| {
            (m.step, m.timestamp).cmp(&(l.step, l.timestamp)).then(m.value.total_cmp(&l.value)).is_ge()
        });
        if newer {
            latest.insert(&m.key, m);
        }
    }
    for m in latest.values() {
        sqlx::query(
            "INSERT INTO mlflow_latest_metrics (run_id, key, value, at, step) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, at = excluded.at, step = excluded.step \
             WHERE excluded.step > mlflow_latest_metrics.step \
             OR (excluded.step = mlflow_latest_metrics.step AND excluded.at > mlflow_latest_metrics.at) \
             OR (excluded.step = mlflow_latest_metrics.step AND excluded.at = mlflow_latest_metrics.at \
                 AND excluded.value >= mlflow_latest_metrics.value)",
        )
        .bind(run_id)
        .bind(&m.key)
        .bind(Some(m.value).filter(|v| !v.is_nan()))
        .bind(m.timestamp)
        .bind(m.step)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Stores points of a run as evaluation points of each version registered from it: the finite
/// ones, which a chart can draw and a guardrail compare (the run's history keeps the others).
pub(crate) async fn mirror_to_versions(
    conn: &mut AnyConnection,
    log: &AuditLog,
    run_id: &str,
    metrics: &[RunMetric],
    now: i64,
) -> Result<Vec<(String, StoredPoints)>, ApiError> {
    let versions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT m.name, v.number FROM versions v JOIN models m ON m.id = v.model_id WHERE v.run_id = $1 ORDER BY v.id",
    )
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let points: Vec<NewMetricPoint> = metrics.iter().filter(|m| m.value.is_finite()).map(evaluation_point).collect();
    let mut stored = Vec::with_capacity(versions.len());
    for (model, number) in versions {
        let ids = version_ids(conn, &model, number).await?;
        let batch = store_points(conn, log, &model, (ids.0, ids.1, number), &points, now).await?;
        stored.push((model, batch));
    }
    Ok(stored)
}

fn evaluation_point(m: &RunMetric) -> NewMetricPoint {
    NewMetricPoint {
        key: m.key.clone(),
        value: m.value,
        step: Some(m.step),
        timestamp: Some(m.timestamp),
        source: MetricSource::Eval,
        environment: None,
    }
}

/// Copies a run's finite points into a new version's evaluation series (inside the version's
/// transaction); nothing when no MLflow run has that id.
pub(crate) async fn copy_run_metrics(
    conn: &mut AnyConnection,
    log: &AuditLog,
    model: &str,
    number: i64,
    run_id: &str,
    now: i64,
) -> Result<StoredPoints, ApiError> {
    if !lock_run(conn, run_id).await? {
        return Ok(StoredPoints::default());
    }
    let chunks: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT key, points FROM mlflow_metric_chunks WHERE run_id = $1 ORDER BY key, chunk_no")
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await?;
    if chunks.is_empty() {
        return Ok(StoredPoints::default());
    }
    let points: Vec<NewMetricPoint> = chunks
        .iter()
        .flat_map(|(key, bytes)| {
            unpack(bytes).into_iter().filter(|p| p.value.is_finite()).map(|p| {
                evaluation_point(&RunMetric { key: key.clone(), value: p.value, timestamp: p.timestamp, step: p.step })
            })
        })
        .collect();
    let (model_id, version_id) = version_ids(conn, model, number).await?;
    store_points(conn, log, model, (model_id, version_id, number), &points, now).await
}
