//! MLflow runs: their params (write-once), tags (overwritten), inputs and outputs, delete and
//! restore, and the log requests that also append metric points (see `points`).

use std::collections::BTreeMap;

use app::domain::{AuditAction, Caller, Permission, validate};
use app::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::checks::{MAX_KEY, MAX_PARAM_VALUE, check_key, check_tags, check_value, parse_experiment_id};
use super::experiments::{active_experiment, lifecycle};
use super::wire::*;
use super::{Body, MlflowCaller, MlflowError, MlflowResult, Params};
use crate::audit::{AuditLog, Change, Target};
use crate::http::state::AppState;
use crate::metrics::StoredPoints;
use crate::store::{Store, from_json, to_json};
use crate::tracking::{self, RunMetric};

/// MLflow's log-batch limits.
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
/// The kinds of a run's links (`mlflow_run_links`).
const DATASET_INPUT: &str = "dataset_input";
const MODEL_INPUT: &str = "model_input";
const MODEL_OUTPUT: &str = "model_output";
const RUN_STATUSES: [&str; 5] = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"];

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    experiment_id: i64,
    name: String,
    user_id: String,
    status: String,
    start_time: i64,
    end_time: Option<i64>,
    deleted_at: Option<i64>,
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
            lifecycle_stage: lifecycle(self.deleted_at),
        }
    }
}

const RUN_COLUMNS: &str = "id, experiment_id, name, user_id, status, start_time, end_time, deleted_at";

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

/// Locks a run for a write of its data; refuses one that does not exist or is deleted.
async fn lock_active_run(conn: &mut AnyConnection, id: &str) -> Result<(), MlflowError> {
    if !tracking::lock_run(conn, id).await? {
        return Err(MlflowError::not_found(format!("Run with id={id} not found")));
    }
    if run(conn, id).await?.deleted_at.is_some() {
        return Err(MlflowError::invalid(format!(
            "run_id: the run {id} must be in the 'active' state (it is deleted; restore it with runs/restore)"
        )));
    }
    Ok(())
}

fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
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
    active_experiment(&mut tx, experiment_id).await?;
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

/// A run with its params, tags, latest metric values, inputs and outputs.
async fn load_run(conn: &mut AnyConnection, id: &str) -> Result<Run, MlflowError> {
    run(conn, id).await?;
    Ok(load_runs(conn, &[id.to_string()]).await?.remove(0))
}

/// Runs read a few hundred at a time: one statement per table for each batch.
const RUN_BATCH: usize = 500;

/// The runs `ids` (all existing) in that order, each with its params, tags, the latest point of
/// each metric, its inputs and outputs.
pub(super) async fn load_runs(conn: &mut AnyConnection, ids: &[String]) -> Result<Vec<Run>, MlflowError> {
    let mut runs = Vec::with_capacity(ids.len());
    for batch in ids.chunks(RUN_BATCH) {
        let marks: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let within = format!("run_id IN ({})", marks.join(", "));
        let infos: Vec<RunRow> = bound(
            sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM mlflow_runs WHERE id IN ({})", marks.join(", "))),
            batch,
        )
        .fetch_all(&mut *conn)
        .await?;
        let pairs = |table: &str| format!("SELECT run_id, key, value FROM {table} WHERE {within} ORDER BY run_id, key");
        let params: Vec<(String, String, String)> =
            bound(sqlx::query_as(&pairs("mlflow_run_params")), batch).fetch_all(&mut *conn).await?;
        let tags: Vec<(String, String, String)> =
            bound(sqlx::query_as(&pairs("mlflow_run_tags")), batch).fetch_all(&mut *conn).await?;
        // A NaN is stored as NULL (see `points::write_metrics`).
        let metrics: Vec<(String, String, Option<f64>, i64, i64)> = bound(
            sqlx::query_as(&format!(
                "SELECT run_id, key, value, at, step FROM mlflow_latest_metrics WHERE {within} ORDER BY run_id, key"
            )),
            batch,
        )
        .fetch_all(&mut *conn)
        .await?;
        let links: Vec<(String, String, String)> =
            bound(sqlx::query_as(&format!("SELECT run_id, kind, body FROM mlflow_run_links WHERE {within}")), batch)
                .fetch_all(&mut *conn)
                .await?;
        let mut by_id: BTreeMap<String, Run> = infos
            .into_iter()
            .map(|row| {
                let run = Run {
                    info: row.info(),
                    data: RunData { metrics: Vec::new(), params: Vec::new(), tags: Vec::new() },
                    inputs: json!({ "dataset_inputs": [], "model_inputs": [] }),
                    outputs: json!({ "model_outputs": [] }),
                };
                (run.info.run_id.clone(), run)
            })
            .collect();
        for (id, key, value) in params {
            by_id.entry(id).and_modify(|r| r.data.params.push(KeyValue { key, value }));
        }
        for (id, key, value) in tags {
            by_id.entry(id).and_modify(|r| r.data.tags.push(KeyValue { key, value }));
        }
        for (id, key, value, timestamp, step) in metrics {
            let metric = KeyedMetric { key, value: value.unwrap_or(f64::NAN), timestamp, step, model_id: None };
            by_id.entry(id).and_modify(|r| r.data.metrics.push(metric));
        }
        for (id, kind, body) in links {
            let (side, list) = match kind.as_str() {
                DATASET_INPUT => ("inputs", "dataset_inputs"),
                MODEL_INPUT => ("inputs", "model_inputs"),
                _ => ("outputs", "model_outputs"),
            };
            by_id.entry(id).and_modify(|r| {
                let target = if side == "inputs" { &mut r.inputs } else { &mut r.outputs };
                if let Some(items) = target[list].as_array_mut() {
                    items.push(from_json(&body));
                }
            });
        }
        runs.extend(batch.iter().filter_map(|id| by_id.remove(id)));
    }
    Ok(runs)
}

/// `query` with `ids` bound in order.
fn bound<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ids: &'q [String],
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
    for id in ids {
        query = query.bind(id);
    }
    query
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
        let stored = log_into(&mut tx, &store.audit, &run_id, &batch, now).await?;
        let keys =
            |pairs: &[KeyValue]| pairs.iter().map(|p| (p.key.clone(), p.value.clone())).collect::<BTreeMap<_, _>>();
        let change = Change::new(AuditAction::RunLog, Target::run(&run_id)).after(
            &json!({ "params": keys(&batch.params), "tags": keys(&batch.tags), "metric_points": batch.metrics.len() }),
        );
        tx.commit(caller, change).await?;
        stored
    } else {
        let mut tx = store.begin_data_write().await?;
        let stored = log_into(&mut tx, &store.audit, &run_id, &batch, now).await?;
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
    log: &AuditLog,
    run_id: &str,
    batch: &LogBatch,
    now: i64,
) -> Result<Vec<(String, StoredPoints)>, MlflowError> {
    lock_active_run(conn, run_id).await?;
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
    super::logged_models::write_model_metrics(conn, run_id, &batch.metrics).await?;
    Ok(tracking::mirror_to_versions(conn, log, run_id, &metrics, now).await?)
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

/// `runs/log-inputs`: datasets and logged models a run used.
pub async fn log_inputs(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<RunLinks>,
) -> MlflowResult<Value> {
    let links = req.datasets.iter().map(|d| (DATASET_INPUT, d)).chain(req.models.iter().map(|m| (MODEL_INPUT, m)));
    link(&s.store, &caller, req.run.id()?, links.collect()).await
}

/// `runs/outputs`: logged models a run made.
pub async fn log_outputs(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<RunLinks>,
) -> MlflowResult<Value> {
    link(&s.store, &caller, req.run.id()?, req.models.iter().map(|m| (MODEL_OUTPUT, m)).collect()).await
}

/// Records a run's links (each as MLflow sent it; a model named must exist), audited as a log.
async fn link(store: &Store, caller: &Caller, run_id: &str, links: Vec<(&str, &Value)>) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let mut tx = store.begin_write().await?;
    lock_active_run(&mut tx, run_id).await?;
    for (kind, body) in &links {
        if kind != &DATASET_INPUT {
            let model = body["model_id"].as_str().unwrap_or_default();
            super::logged_models::logged_model(&mut tx, model, false).await?;
        }
        sqlx::query("INSERT INTO mlflow_run_links (run_id, kind, body) VALUES ($1, $2, $3)")
            .bind(run_id)
            .bind(kind)
            .bind(to_json(body))
            .execute(&mut *tx)
            .await?;
    }
    let recorded: Vec<Value> = links.iter().map(|(kind, body)| json!({ "kind": kind, "link": body })).collect();
    tx.commit(caller, Change::new(AuditAction::RunLog, Target::run(run_id)).after(&json!({ "links": recorded })))
        .await?;
    Ok(Json(json!({})))
}

/// `runs/delete` and `runs/restore`: a run leaves searches (its data kept) or comes back.
async fn set_deleted(store: &Store, caller: &Caller, req: &RunRef, delete: bool) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let id = req.id()?;
    let mut tx = store.begin_write().await?;
    tracking::lock_run(&mut tx, id).await?;
    let before = run(&mut tx, id).await?;
    if before.deleted_at.is_some() == delete {
        return Err(MlflowError::invalid(format!("run_id: run {id} is already {}", lifecycle(before.deleted_at))));
    }
    if !delete {
        let experiment = before.experiment_id.to_string();
        active_experiment(&mut tx, parse_experiment_id(&experiment)?).await?;
    }
    sqlx::query("UPDATE mlflow_runs SET deleted_at = $2 WHERE id = $1")
        .bind(id)
        .bind(delete.then(|| store.clock.now_ms()))
        .execute(&mut *tx)
        .await?;
    let after = run(&mut tx, id).await?.info();
    let action = if delete { AuditAction::RunDelete } else { AuditAction::RunRestore };
    tx.commit(caller, Change::new(action, Target::run(id)).before(&before.info()).after(&after)).await?;
    Ok(Json(json!({})))
}

pub async fn delete_run(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<RunRef>,
) -> MlflowResult<Value> {
    set_deleted(&s.store, &caller, &req, true).await
}

pub async fn restore_run(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<RunRef>,
) -> MlflowResult<Value> {
    set_deleted(&s.store, &caller, &req, false).await
}

/// `runs/delete-tag`: removes one tag of an active run, audited as a log of the run.
pub async fn delete_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<DeleteRunTag>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let id = req.run.id()?;
    let mut tx = s.store.begin_write().await?;
    lock_active_run(&mut tx, id).await?;
    let removed: Option<String> =
        sqlx::query_scalar("DELETE FROM mlflow_run_tags WHERE run_id = $1 AND key = $2 RETURNING value")
            .bind(id)
            .bind(&req.key)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(value) = removed else {
        return Err(MlflowError::not_found(format!("No tag with name: {} in run with id {id}", req.key)));
    };
    let change = Change::new(AuditAction::RunLog, Target::run(id))
        .before(&json!({ "tags": { req.key.clone(): value } }))
        .after(&json!({ "tags": {} }));
    tx.commit(&caller, change).await?;
    Ok(Json(json!({})))
}
