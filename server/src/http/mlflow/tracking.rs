//! MLflow tracking: experiments, runs, their params (write-once) and tags (overwritten), and the
//! log requests that also append metric points (see `points`).

use std::collections::BTreeMap;

use app::domain::{AuditAction, Caller, Permission, validate};
use app::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::wire::*;
use super::{Body, MlflowCaller, MlflowError, MlflowResult, Params};
use crate::audit::{Change, Target};
use crate::db::DbResultExt;
use crate::http::state::AppState;
use crate::metrics::StoredPoints;
use crate::store::{Store, from_json, to_json};
use crate::tracking::{self, RunMetric};

/// MLflow's log-batch limits.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_KEY: usize = 250;
const MAX_PARAM_VALUE: usize = 6000;
const MAX_TAG_VALUE: usize = 8000;
const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

#[derive(sqlx::FromRow)]
struct ExperimentRow {
    id: i64,
    name: String,
    artifact_location: String,
    tags: String,
    created_at: i64,
    updated_at: i64,
}

impl ExperimentRow {
    fn into_wire(self) -> Experiment {
        let tags: BTreeMap<String, String> = from_json(&self.tags);
        Experiment {
            experiment_id: self.id.to_string(),
            name: self.name,
            artifact_location: if self.artifact_location.is_empty() {
                format!("mlflow-artifacts:/{}", self.id)
            } else {
                self.artifact_location
            },
            lifecycle_stage: "active",
            creation_time: self.created_at,
            last_update_time: self.updated_at,
            tags: tags.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
        }
    }
}

const EXPERIMENT_COLUMNS: &str = "id, name, artifact_location, tags, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    experiment_id: i64,
    name: String,
    user_id: String,
    status: String,
    start_time: i64,
    end_time: Option<i64>,
}

impl RunRow {
    fn info(self) -> RunInfo {
        RunInfo {
            run_uuid: self.id.clone(),
            artifact_uri: format!("mlflow-artifacts:/{}/{}/artifacts", self.experiment_id, self.id),
            run_id: self.id,
            run_name: self.name,
            experiment_id: self.experiment_id.to_string(),
            user_id: self.user_id,
            status: self.status,
            start_time: self.start_time,
            end_time: self.end_time,
            lifecycle_stage: "active",
        }
    }
}

const RUN_COLUMNS: &str = "id, experiment_id, name, user_id, status, start_time, end_time";

fn parse_experiment_id(id: &str) -> Result<i64, MlflowError> {
    id.trim()
        .parse()
        .map_err(|_| MlflowError::invalid(format!("experiment_id: {id:?} is not an experiment id (a whole number)")))
}

async fn experiment(conn: &mut AnyConnection, id: i64) -> Result<ExperimentRow, MlflowError> {
    sqlx::query_as(&format!("SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| MlflowError::not_found(format!("No Experiment with id={id} exists")))
}

/// `RESOURCE_DOES_NOT_EXIST` unless the run exists.
pub(super) async fn require_run(conn: &mut AnyConnection, id: &str) -> Result<(), MlflowError> {
    run(conn, id).await.map(|_| ())
}

async fn run(conn: &mut AnyConnection, id: &str) -> Result<RunRow, MlflowError> {
    sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM mlflow_runs WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| MlflowError::not_found(format!("Run with id={id} not found")))
}

/// Keys of params, tags and metrics: what MLflow accepts (letters, digits, `_ - . / :` and spaces).
fn check_key(field: &str, key: &str) -> Result<(), MlflowError> {
    if key.is_empty() || key.chars().count() > MAX_KEY {
        return Err(MlflowError::invalid(format!("{field}: a key of 1 to {MAX_KEY} characters is required")));
    }
    if let Some(bad) = key.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | ' '))) {
        return Err(MlflowError::invalid(format!(
            "{field}: {key:?} may contain only letters, digits, '_', '-', '.', '/', ':' and spaces (found {bad:?})"
        )));
    }
    if key.starts_with('/') || key.split('/').any(|part| part == "..") {
        return Err(MlflowError::invalid(format!("{field}: {key:?} must be a relative path without '..'")));
    }
    Ok(())
}

fn check_value(field: &str, value: &str, max: usize) -> Result<(), MlflowError> {
    if value.chars().count() > max {
        return Err(MlflowError::invalid(format!("{field}: at most {max} characters (got {})", value.chars().count())));
    }
    Ok(())
}

fn check_tags(field: &str, tags: &[KeyValue]) -> Result<(), MlflowError> {
    for (i, tag) in tags.iter().enumerate() {
        check_key(&format!("{field}[{i}].key"), &tag.key)?;
        check_value(&format!("{field}[{i}].value"), &tag.value, MAX_TAG_VALUE)?;
    }
    Ok(())
}

fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub async fn create_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<CreateExperiment>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    if req.name.trim().is_empty() {
        return Err(MlflowError::invalid("name: an experiment name is required"));
    }
    check_value("name", &req.name, 500)?;
    check_tags("tags", &req.tags)?;
    if let Some(location) = req.artifact_location.as_deref().filter(|l| !l.is_empty()) {
        validate::artifact_uri("artifact_location", location)?;
    }
    let tags: BTreeMap<&str, &str> = req.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
    let now = s.store.clock.now_ms();
    let mut tx = s.store.begin_write().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO mlflow_experiments (name, artifact_location, tags, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(&req.name)
    .bind(req.artifact_location.unwrap_or_default())
    .bind(to_json(&tags))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .on_unique_violation(|| ApiError::conflict(format!("Experiment(name={}) already exists.", req.name)))
    .map_err(|e| match e.code {
        app::error::ErrorCode::Conflict => MlflowError::already_exists(e.message),
        _ => e.into(),
    })?;
    let created = experiment(&mut tx, id).await?.into_wire();
    tx.commit(&caller, Change::new(AuditAction::ExperimentCreate, Target::experiment(id)).after(&created)).await?;
    Ok(Json(json!({ "experiment_id": id.to_string() })))
}

pub async fn get_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<ExperimentId>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let id = parse_experiment_id(&req.experiment_id)?;
    let found = experiment(&mut *s.store.conn().await?, id).await?;
    Ok(Json(json!({ "experiment": found.into_wire() })))
}

pub async fn get_experiment_by_name(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<ExperimentName>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let found: Option<ExperimentRow> =
        sqlx::query_as(&format!("SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE name = $1"))
            .bind(&req.experiment_name)
            .fetch_optional(&mut *s.store.conn().await?)
            .await?;
    let found = found.ok_or_else(|| {
        MlflowError::not_found(format!("Could not find experiment with name '{}'", req.experiment_name))
    })?;
    Ok(Json(json!({ "experiment": found.into_wire() })))
}

/// Every experiment by name, optionally filtered by `name` (`=`, `LIKE`, `ILIKE`).
pub async fn search_experiments(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<SearchExperiments>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let filter = super::filter::Filter::parse(req.filter.as_deref(), &["name"])?;
    let (limit, offset) = super::filter::page(req.max_results, req.page_token.as_deref(), 1000)?;
    let (clause, binds) = filter.sql(|_| "name");
    let sql = format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE {clause} ORDER BY id LIMIT {} OFFSET {offset}",
        limit + 1
    );
    let mut query = sqlx::query_as::<_, ExperimentRow>(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(&mut *s.store.conn().await?).await?;
    let (rows, next) = super::filter::next_page(rows, limit, offset);
    let experiments: Vec<Experiment> = rows.into_iter().map(ExperimentRow::into_wire).collect();
    Ok(Json(super::filter::with_token(json!({ "experiments": experiments }), next)))
}

pub async fn create_run(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<CreateRun>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let experiment_id = parse_experiment_id(req.experiment_id.as_deref().unwrap_or("0"))?;
    check_tags("tags", &req.tags)?;
    let name = req
        .run_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| req.tags.iter().find(|t| t.key == "mlflow.runName").map(|t| t.value.clone()))
        .unwrap_or_else(|| format!("run-{}", &new_run_id()[..8]));
    check_value("run_name", &name, MAX_KEY)?;
    let now = s.store.clock.now_ms();
    let id = new_run_id();
    let mut tx = s.store.begin_write().await?;
    experiment(&mut tx, experiment_id).await?;
    sqlx::query(
        "INSERT INTO mlflow_runs (id, experiment_id, name, user_id, status, start_time, created_by) \
         VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6)",
    )
    .bind(&id)
    .bind(experiment_id)
    .bind(&name)
    .bind(req.user_id.clone().unwrap_or_else(|| caller.username.clone()))
    .bind(req.start_time.unwrap_or(now))
    .bind(&caller.actor().name)
    .execute(&mut *tx)
    .await?;
    let mut tags = req.tags.clone();
    if !tags.iter().any(|t| t.key == "mlflow.runName") {
        tags.push(KeyValue { key: "mlflow.runName".into(), value: name });
    }
    write_tags(&mut tx, &id, &tags).await?;
    let created = load_run(&mut tx, &id).await?;
    tx.commit(&caller, Change::new(AuditAction::RunCreate, Target::run(&id)).after(&created.info)).await?;
    Ok(Json(json!({ "run": created })))
}

/// A run with its params, tags and the latest point of each metric.
async fn load_run(conn: &mut AnyConnection, id: &str) -> Result<Run, MlflowError> {
    let info = run(conn, id).await?.info();
    let params: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM mlflow_run_params WHERE run_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let tags: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM mlflow_run_tags WHERE run_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    // A NaN is stored as NULL (see `points::write_metrics`).
    let metrics: Vec<(String, Option<f64>, i64, i64)> =
        sqlx::query_as("SELECT key, value, at, step FROM mlflow_latest_metrics WHERE run_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let pairs = |rows: Vec<(String, String)>| rows.into_iter().map(|(key, value)| KeyValue { key, value }).collect();
    Ok(Run {
        info,
        data: RunData {
            metrics: metrics
                .into_iter()
                .map(|(key, value, timestamp, step)| KeyedMetric {
                    key,
                    value: value.unwrap_or(f64::NAN),
                    timestamp,
                    step,
                })
                .collect(),
            params: pairs(params),
            tags: pairs(tags),
        },
        inputs: json!({}),
    })
}

pub async fn get_run(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<RunRef>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let found = load_run(&mut *s.store.conn().await?, req.id()?).await?;
    Ok(Json(json!({ "run": found })))
}

pub async fn update_run(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<UpdateRun>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let id = req.run.id()?;
    if let Some(status) = req.status.as_deref().filter(|s| !RUN_STATUSES.contains(s)) {
        return Err(MlflowError::invalid(format!("status: {status:?} is not one of {}", RUN_STATUSES.join(", "))));
    }
    if let Some(name) = &req.run_name {
        check_value("run_name", name, MAX_KEY)?;
    }
    let mut tx = s.store.begin_write().await?;
    let before = run(&mut tx, id).await?.info();
    sqlx::query(
        "UPDATE mlflow_runs SET status = COALESCE($2, status), end_time = COALESCE($3, end_time), \
         name = COALESCE($4, name) WHERE id = $1",
    )
    .bind(id)
    .bind(&req.status)
    .bind(req.end_time)
    .bind(req.run_name.as_ref().filter(|n| !n.is_empty()))
    .execute(&mut *tx)
    .await?;
    if let Some(name) = req.run_name.filter(|n| !n.is_empty()) {
        write_tags(&mut tx, id, &[KeyValue { key: "mlflow.runName".into(), value: name }]).await?;
    }
    let after = run(&mut tx, id).await?.info();
    tx.commit(&caller, Change::new(AuditAction::RunUpdate, Target::run(id)).before(&before).after(&after)).await?;
    Ok(Json(json!({ "run_info": after })))
}

async fn write_tags(conn: &mut AnyConnection, run_id: &str, tags: &[KeyValue]) -> Result<(), MlflowError> {
    for tag in tags {
        sqlx::query(
            "INSERT INTO mlflow_run_tags (run_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(run_id)
        .bind(&tag.key)
        .bind(&tag.value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Params are written once: the same value again is accepted, another is refused.
async fn write_params(conn: &mut AnyConnection, run_id: &str, params: &[KeyValue]) -> Result<(), MlflowError> {
    for param in params {
        let inserted = sqlx::query(
            "INSERT INTO mlflow_run_params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO NOTHING",
        )
        .bind(run_id)
        .bind(&param.key)
        .bind(&param.value)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            let old: String = sqlx::query_scalar("SELECT value FROM mlflow_run_params WHERE run_id = $1 AND key = $2")
                .bind(run_id)
                .bind(&param.key)
                .fetch_one(&mut *conn)
                .await?;
            if old != param.value {
                return Err(MlflowError::invalid(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with \
                     value='{old}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                    param.key, param.value
                )));
            }
        }
    }
    Ok(())
}

/// What a run tells a version registered from it: its params and the commit it ran at.
pub(crate) async fn run_lineage(
    conn: &mut AnyConnection,
    run_id: &str,
) -> Result<Option<(BTreeMap<String, String>, Option<String>)>, ApiError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM mlflow_runs WHERE id = $1").bind(run_id).fetch_optional(&mut *conn).await?;
    if exists.is_none() {
        return Ok(None);
    }
    let params: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM mlflow_run_params WHERE run_id = $1")
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    let commit: Option<String> =
        sqlx::query_scalar("SELECT value FROM mlflow_run_tags WHERE run_id = $1 AND key = 'mlflow.source.git.commit'")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(Some((params.into_iter().collect(), commit)))
}

/// Logs metrics, params and tags to a run, all or nothing. Params and tags are audited; metric
/// points, like those pushed through the native API, are data.
async fn log(store: &Store, caller: &Caller, batch: LogBatch) -> Result<(), MlflowError> {
    caller.require(Permission::PushMetrics)?;
    let run_id = batch.run.id()?.to_string();
    let limits = [
        ("metrics", batch.metrics.len(), MAX_BATCH_METRICS),
        ("params", batch.params.len(), MAX_BATCH_PARAMS),
        ("tags", batch.tags.len(), MAX_BATCH_TAGS),
    ];
    for (field, got, max) in limits {
        if got > max {
            return Err(MlflowError::invalid(format!(
                "A batch logging request can contain at most {max} {field}. Got {got} {field}. \
                 Please split up {field} across multiple requests and try again."
            )));
        }
    }
    for (i, m) in batch.metrics.iter().enumerate() {
        validate::metric_key(&format!("metrics[{i}].key"), &m.key)?;
    }
    for (i, p) in batch.params.iter().enumerate() {
        check_key(&format!("params[{i}].key"), &p.key)?;
        check_value(&format!("params[{i}].value"), &p.value, MAX_PARAM_VALUE)?;
    }
    check_tags("tags", &batch.tags)?;
    let now = store.clock.now_ms();
    let audited = !batch.params.is_empty() || !batch.tags.is_empty();
    let stored = if audited {
        let mut tx = store.begin_write().await?;
        let stored = log_into(&mut tx, &run_id, &batch, now).await?;
        let keys =
            |pairs: &[KeyValue]| pairs.iter().map(|p| (p.key.clone(), p.value.clone())).collect::<BTreeMap<_, _>>();
        let change = Change::new(AuditAction::RunLog, Target::run(&run_id)).after(
            &json!({ "params": keys(&batch.params), "tags": keys(&batch.tags), "metric_points": batch.metrics.len() }),
        );
        tx.commit(caller, change).await?;
        stored
    } else {
        let mut tx = store.begin_data_write().await?;
        let stored = log_into(&mut tx, &run_id, &batch, now).await?;
        tx.commit().await?;
        stored
    };
    for (model, points) in stored {
        store.metrics_stored(&model, points).await;
    }
    Ok(())
}

async fn log_into(
    conn: &mut AnyConnection,
    run_id: &str,
    batch: &LogBatch,
    now: i64,
) -> Result<Vec<(String, StoredPoints)>, MlflowError> {
    if !tracking::lock_run(conn, run_id).await? {
        return Err(MlflowError::not_found(format!("Run with id={run_id} not found")));
    }
    write_params(conn, run_id, &batch.params).await?;
    write_tags(conn, run_id, &batch.tags).await?;
    if batch.metrics.is_empty() {
        return Ok(Vec::new());
    }
    let metrics: Vec<RunMetric> = batch
        .metrics
        .iter()
        .map(|m| RunMetric { key: m.key.clone(), value: m.value, timestamp: m.timestamp, step: m.step })
        .collect();
    tracking::write_metrics(conn, run_id, &metrics).await?;
    Ok(tracking::mirror_to_versions(conn, run_id, &metrics, now).await?)
}

pub async fn log_batch(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<LogBatch>,
) -> MlflowResult<Value> {
    log(&s.store, &caller, req).await?;
    Ok(Json(json!({})))
}

pub async fn log_metric(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<LogMetric>,
) -> MlflowResult<Value> {
    let batch = LogBatch { run: req.run, metrics: vec![req.metric], params: Vec::new(), tags: Vec::new() };
    log(&s.store, &caller, batch).await?;
    Ok(Json(json!({})))
}

pub async fn log_param(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<LogKeyValue>,
) -> MlflowResult<Value> {
    let batch = LogBatch { run: req.run, metrics: Vec::new(), params: vec![req.pair], tags: Vec::new() };
    log(&s.store, &caller, batch).await?;
    Ok(Json(json!({})))
}

pub async fn set_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<LogKeyValue>,
) -> MlflowResult<Value> {
    let batch = LogBatch { run: req.run, metrics: Vec::new(), params: Vec::new(), tags: vec![req.pair] };
    log(&s.store, &caller, batch).await?;
    Ok(Json(json!({})))
}
