//! Background jobs: a long operation runs in a task of its own while its row in `jobs` tells any
//! replica, and any reloaded page, how far it got and how it ended.

use std::future::Future;
use std::time::{Duration, Instant};

use app::domain::{Job, JobKind, JobState};
use app::error::ApiError;
use serde_json::Value;
use sqlx::AnyConnection;

use crate::clock::rfc3339;
use crate::store::Store;

/// A running job that has not reported for this long was lost with the server that ran it.
const SILENT_FOR: Duration = Duration::from_secs(30);
/// Why a job that stopped reporting failed.
const LOST: &str = "the server running it stopped";
/// How often a job writes its progress at most.
const REPORT_EVERY: Duration = Duration::from_millis(500);

const JOB_COLUMNS: &str =
    "id, kind, state, done, total, requested_by, started_at, updated_at, finished_at, error, result";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    kind: String,
    state: String,
    done: i64,
    total: i64,
    requested_by: String,
    started_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    error: Option<String>,
    result: Option<String>,
}

impl JobRow {
    /// The job as of `now`: one still marked running that stopped reporting is reported failed.
    fn into_job(self, now: i64) -> Job {
        let mut state = JobState::parse(&self.state).unwrap_or(JobState::Failed);
        let mut error = self.error;
        if state == JobState::Running && self.updated_at < now - SILENT_FOR.as_millis() as i64 {
            state = JobState::Failed;
            error = Some(LOST.into());
        }
        Job {
            id: self.id,
            kind: JobKind::parse(&self.kind).unwrap_or(JobKind::AuditVerify),
            state,
            done: self.done,
            total: self.total,
            requested_by: self.requested_by,
            started_at: rfc3339(self.started_at),
            updated_at: rfc3339(self.updated_at),
            finished_at: self.finished_at.map(rfc3339),
            error,
            result: self.result.and_then(|r| serde_json::from_str(&r).ok()),
        }
    }
}

/// How a job's work reports its progress: written at most every [`REPORT_EVERY`].
pub struct Progress {
    store: Store,
    id: i64,
    written: Instant,
}

impl Progress {
    /// The job's id.
    pub fn job(&self) -> i64 {
        self.id
    }

    /// Records `done` of `total`, when the last write is old enough.
    pub async fn report(&mut self, done: i64, total: i64) -> Result<(), ApiError> {
        if self.written.elapsed() < REPORT_EVERY {
            return Ok(());
        }
        self.written = Instant::now();
        let mut tx = self.store.begin_data_write().await?;
        sqlx::query("UPDATE jobs SET done = $1, total = $2, updated_at = $3 WHERE id = $4")
            .bind(done)
            .bind(total)
            .bind(self.store.clock.now_ms())
            .bind(self.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Starts `work` as a job of `kind` in `scope` (`""`: the whole server, or a user's name) in a
/// task of its own and answers its row; while one of that kind already runs in that scope (here or
/// on another replica), answers that one instead.
pub async fn start<F, Fut>(
    store: &Store,
    kind: JobKind,
    scope: &str,
    requested_by: &str,
    work: F,
) -> Result<Job, ApiError>
where
    F: FnOnce(Progress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let now = store.clock.now_ms();
    let mut tx = store.begin_data_write().await?;
    sqlx::query(
        "UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 \
         WHERE kind = $3 AND scope = $4 AND state = 'running' AND updated_at < $5",
    )
    .bind(LOST)
    .bind(now)
    .bind(kind.as_str())
    .bind(scope)
    .bind(now - SILENT_FOR.as_millis() as i64)
    .execute(&mut *tx)
    .await?;
    let started: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, scope, state, requested_by, started_at, updated_at) \
         VALUES ($1, $2, 'running', $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(kind.as_str())
    .bind(scope)
    .bind(requested_by)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(id) = started else {
        let mut conn = store.conn().await?;
        return latest(&mut conn, kind, scope, Some(JobState::Running), now)
            .await?
            .ok_or_else(|| ApiError::conflict("a job of this kind just ended: ask again"));
    };
    let progress = Progress { store: store.clone(), id, written: Instant::now() };
    let finisher = store.clone();
    tokio::spawn(async move {
        let outcome = work(progress).await;
        if let Err(e) = finish(&finisher, id, outcome).await {
            tracing::error!(job = id, error = %e.message, "could not record how a job ended");
        }
    });
    job(&mut *store.conn().await?, id, now).await
}

/// Records how job `id` ended.
async fn finish(store: &Store, id: i64, outcome: Result<Value, ApiError>) -> Result<(), ApiError> {
    let (state, result, error) = match outcome {
        Ok(value) => (JobState::Done, Some(value.to_string()), None),
        Err(e) => {
            tracing::error!(job = id, error = %e.message, "a background job failed");
            (JobState::Failed, None, Some(e.message))
        }
    };
    let now = store.clock.now_ms();
    let mut tx = store.begin_data_write().await?;
    sqlx::query(
        "UPDATE jobs SET state = $1, result = $2, error = $3, finished_at = $4, updated_at = $4, \
         done = CASE WHEN $1 = 'done' THEN total ELSE done END WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(result)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Job `id` as of `now`, or 404.
pub async fn job(conn: &mut AnyConnection, id: i64, now: i64) -> Result<Job, ApiError> {
    sqlx::query_as::<_, JobRow>(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|row| row.into_job(now))
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

/// The newest job of `kind` in `scope` (in `state`, when given) as of `now`.
pub async fn latest(
    conn: &mut AnyConnection,
    kind: JobKind,
    scope: &str,
    state: Option<JobState>,
    now: i64,
) -> Result<Option<Job>, ApiError> {
    Ok(sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND scope = $2 AND state = COALESCE($3, state) \
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(kind.as_str())
    .bind(scope)
    .bind(state.map(JobState::as_str))
    .fetch_optional(conn)
    .await?
    .map(|row| row.into_job(now)))
}

/// The newest job of `kind` in `scope` that finished before job `id`, if any.
pub async fn newest_done_before(
    conn: &mut AnyConnection,
    kind: JobKind,
    scope: &str,
    id: i64,
) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE kind = $1 AND scope = $2 AND state = 'done' AND id < $3")
        .bind(kind.as_str())
        .bind(scope)
        .bind(id)
        .fetch_one(conn)
        .await?)
}
