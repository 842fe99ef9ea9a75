//! What a rollback would do: the proposed target (from the environment's deployment history), the
//! candidates, the preflight facts, and the key metrics of the live and target versions side by side.

use std::collections::BTreeMap;

use app::domain::*;
use app::error::ApiError;
use sqlx::AnyConnection;

use crate::clock::rfc3339;
use crate::versions::load_version;

/// Rows of the metric comparison a dialog shows.
const COMPARED_METRICS: usize = 12;

/// The live deployment of a model in an environment: version and revision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    pub version: i64,
    pub revision: i64,
}

pub(crate) async fn live(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: i64,
) -> Result<Option<Live>, ApiError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT version_number, revision FROM deployments WHERE model_id = $1 AND environment_id = $2")
            .bind(model_id)
            .bind(environment_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(version, revision)| Live { version, revision }))
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    number: i64,
    has_digest: i64,
    quarantine_reason: Option<String>,
    health: Option<String>,
    replaced_at: Option<i64>,
}

/// Every version of the model, newest first, with its health in the environment, when it last
/// stopped being live there, and what keeps it from being a target.
pub(crate) async fn candidates(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: i64,
    live: Option<i64>,
) -> Result<Vec<RollbackCandidate>, ApiError> {
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "SELECT v.number, CASE WHEN v.artifact_digest IS NULL THEN 0 ELSE 1 END AS has_digest, v.quarantine_reason, \
         h.health, (SELECT MAX(d.created_at) FROM deployment_history d WHERE d.model_id = v.model_id \
                    AND d.environment_id = $2 AND d.from_version = v.number) AS replaced_at \
         FROM versions v LEFT JOIN version_health h ON h.version_id = v.id AND h.environment_id = $2 \
         WHERE v.model_id = $1 ORDER BY v.number DESC",
    )
    .bind(model_id)
    .bind(environment_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let blocker = if Some(r.number) == live {
                Some(format!("version {} is live now", r.number))
            } else if let Some(reason) = &r.quarantine_reason {
                Some(format!("version {} is quarantined: {reason}", r.number))
            } else if r.has_digest == 0 {
                Some(format!("version {} has no artifact digest", r.number))
            } else {
                None
            };
            RollbackCandidate {
                version: r.number,
                health: r.health.as_deref().and_then(Health::parse).unwrap_or_default(),
                replaced_at: r.replaced_at.map(rfc3339),
                blocker,
            }
        })
        .collect())
}

/// The most recent version that was live in this environment before the current one and can be
/// a target with no failing or warning verdict there. A version whose live series went quiet
/// after it was replaced reads `unknown`, and qualifies.
pub(crate) fn proposed(candidates: &[RollbackCandidate]) -> Option<i64> {
    let mut previously_live: Vec<&RollbackCandidate> = candidates.iter().filter(|c| c.replaced_at.is_some()).collect();
    previously_live.sort_by(|a, b| b.replaced_at.cmp(&a.replaced_at));
    previously_live
        .into_iter()
        .find(|c| c.blocker.is_none() && matches!(c.health, Health::Healthy | Health::Unknown))
        .map(|c| c.version)
}

/// Whether the model has a version with this number.
pub(crate) async fn is_registered(conn: &mut AnyConnection, model_id: i64, number: i64) -> Result<bool, ApiError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM versions WHERE model_id = $1 AND number = $2")
        .bind(model_id)
        .bind(number)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Why `target` cannot go live (not a version of the model, quarantined, no digest), if it cannot.
pub(crate) async fn target_blocker(
    conn: &mut AnyConnection,
    model: &str,
    target: i64,
) -> Result<Option<String>, ApiError> {
    match load_version(conn, model, target).await {
        Ok(version) => Ok(version.deploy_blocker()),
        Err(e) if e.code == app::error::ErrorCode::NotFound => {
            Ok(Some(format!("version {target} was never registered for {model}")))
        }
        Err(e) => Err(e),
    }
}

/// The last value of each metric of the live and the target version (evaluation series, and
/// live series in this environment), keys watched by a guardrail first.
pub(crate) async fn comparison(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: i64,
    live: i64,
    target: i64,
) -> Result<Vec<MetricComparison>, ApiError> {
    let rows: Vec<(i64, String, String, f64)> = sqlx::query_as(
        "SELECT v.number, s.key, s.source, s.last_value FROM metric_series s JOIN versions v ON v.id = s.version_id \
         WHERE v.model_id = $1 AND v.number IN ($2, $3) AND s.environment_id IN (0, $4) AND s.point_count > 0",
    )
    .bind(model_id)
    .bind(live)
    .bind(target)
    .bind(environment_id)
    .fetch_all(&mut *conn)
    .await?;
    let guarded: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT metric, source FROM guardrails WHERE model_id = $1 AND environment_id = $2")
            .bind(model_id)
            .bind(environment_id)
            .fetch_all(conn)
            .await?;
    let mut by_key: BTreeMap<(String, String), (Option<f64>, Option<f64>)> = BTreeMap::new();
    for (number, key, source, value) in rows {
        let slot = by_key.entry((key, source)).or_default();
        if number == live {
            slot.0 = Some(value);
        } else {
            slot.1 = Some(value);
        }
    }
    let mut rows: Vec<MetricComparison> = by_key
        .into_iter()
        .filter_map(|((key, source), (live, target))| {
            let source = MetricSource::parse(&source)?;
            let guarded = guarded.iter().any(|(m, s)| *m == key && *s == source.as_str());
            Some(MetricComparison { key, source, guarded, live, target })
        })
        .collect();
    rows.sort_by_key(|r| !r.guarded);
    rows.truncate(COMPARED_METRICS);
    Ok(rows)
}

/// The open request of a model in an environment that has not yet expired at `now`, if any.
pub(crate) async fn open_request(
    conn: &mut AnyConnection,
    model_id: i64,
    environment_id: i64,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    sqlx::query_scalar(
        "SELECT id FROM rollback_requests WHERE model_id = $1 AND environment_id = $2 AND status = 'open' \
         AND expires_at > $3",
    )
    .bind(model_id)
    .bind(environment_id)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(ApiError::from)
}
