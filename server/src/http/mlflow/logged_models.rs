//! MLflow 3's logged models (`mlflow.<flavor>.log_model`): a model made by a run, its files under
//! `<experiment>/models/<id>/artifacts/` written while it is pending; finalizing it READY fixes its
//! file list and records the list's digest (`artifacts::tree`), which a version registered from it
//! carries as its artifact digest.

use std::collections::BTreeMap;

use app::domain::{AuditAction, Permission};
use app::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::checks::{MAX_PARAM_VALUE, check_key, check_tags, check_value, parse_experiment_id};
use super::experiments::active_experiment;
use super::filter::{Filter, next_page, page, with_token};
use super::wire::*;
use super::{Body, MlflowCaller, MlflowError, MlflowResult, Params};
use crate::artifacts::owner::PENDING;
use crate::artifacts::tree;
use crate::audit::{Change, Target};
use crate::http::state::AppState;
use crate::store::{from_json, to_json};

const READY: &str = "LOGGED_MODEL_READY";
const FAILED: &str = "LOGGED_MODEL_UPLOAD_FAILED";

#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct LoggedModelRow {
    pub(super) id: String,
    pub(super) experiment_id: i64,
    name: String,
    model_type: String,
    pub(super) source_run_id: Option<String>,
    pub(super) status: String,
    status_message: String,
    tags: String,
    params: String,
    pub(super) digest: Option<String>,
    deleted_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, experiment_id, name, model_type, source_run_id, status, status_message, tags, params, \
     digest, deleted_at, created_at, updated_at";

impl LoggedModelRow {
    /// The artifact store's directory holding the model's files.
    pub(super) fn root(&self) -> String {
        format!("{}/models/{}/artifacts", self.experiment_id, self.id)
    }

    fn wire(&self, metrics: Vec<KeyedMetric>) -> Value {
        let pairs = |text: &str| -> Vec<KeyValue> {
            let map: BTreeMap<String, String> = from_json(text);
            map.into_iter().map(|(key, value)| KeyValue { key, value }).collect()
        };
        let mut tags = pairs(&self.tags);
        if let Some(digest) = &self.digest {
            tags.push(KeyValue { key: DIGEST_TAG.into(), value: digest.clone() });
        }
        let mut info = json!({
            "model_id": self.id,
            "experiment_id": self.experiment_id.to_string(),
            "name": self.name,
            "creation_timestamp_ms": self.created_at,
            "last_updated_timestamp_ms": self.updated_at,
            "artifact_uri": format!("mlflow-artifacts:/{}", self.root()),
            "status": self.status,
            "model_type": self.model_type,
            "tags": tags,
        });
        if let Some(run) = &self.source_run_id {
            info["source_run_id"] = json!(run);
        }
        if !self.status_message.is_empty() {
            info["status_message"] = json!(self.status_message);
        }
        json!({ "info": info, "data": { "params": pairs(&self.params), "metrics": metrics } })
    }

    fn audited(&self) -> Value {
        self.wire(Vec::new())["info"].clone()
    }
}

/// The logged model `id` (a deleted one only when `allow_deleted`), read in `conn`.
pub(super) async fn logged_model(
    conn: &mut AnyConnection,
    id: &str,
    allow_deleted: bool,
) -> Result<LoggedModelRow, MlflowError> {
    let found: Option<LoggedModelRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM logged_models WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    found
        .filter(|m| allow_deleted || m.deleted_at.is_none())
        .ok_or_else(|| MlflowError::not_found(format!("Logged model with ID '{id}' not found.")))
}

async fn metrics_of(conn: &mut AnyConnection, id: &str) -> Result<Vec<KeyedMetric>, MlflowError> {
    let rows: Vec<(String, Option<f64>, i64, i64)> =
        sqlx::query_as("SELECT key, value, at, step FROM logged_model_metrics WHERE model_id = $1 ORDER BY key, at")
            .bind(id)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(key, value, timestamp, step)| KeyedMetric {
            key,
            value: value.unwrap_or(f64::NAN),
            timestamp,
            step,
            model_id: Some(id.to_string()),
        })
        .collect())
}

async fn answer(conn: &mut AnyConnection, model: &LoggedModelRow) -> MlflowResult<Value> {
    let metrics = metrics_of(conn, &model.id).await?;
    Ok(Json(json!({ "model": model.wire(metrics) })))
}

fn check_pairs(field: &str, pairs: &[KeyValue], max_value: usize) -> Result<(), MlflowError> {
    for (i, pair) in pairs.iter().enumerate() {
        check_key(&format!("{field}[{i}].key"), &pair.key)?;
        check_value(&format!("{field}[{i}].value"), &pair.value, max_value)?;
    }
    Ok(())
}

fn merged(json_map: &str, pairs: &[KeyValue]) -> String {
    let mut map: BTreeMap<String, String> = from_json(json_map);
    map.extend(pairs.iter().map(|p| (p.key.clone(), p.value.clone())));
    to_json(&map)
}

/// Stores a model's `tags` or `params` (a JSON object).
async fn write_map(conn: &mut AnyConnection, id: &str, column: &str, map: String) -> Result<(), MlflowError> {
    sqlx::query(&format!("UPDATE logged_models SET {column} = $2 WHERE id = $1"))
        .bind(id)
        .bind(map)
        .execute(conn)
        .await?;
    Ok(())
}

/// `POST logged-models`: a pending model in an experiment, made by `source_run_id` when given.
pub async fn create(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<CreateLoggedModel>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let experiment_id = parse_experiment_id(&req.experiment_id)?;
    check_tags("tags", &req.tags)?;
    check_pairs("params", &req.params, MAX_PARAM_VALUE)?;
    let id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let name = req.name.filter(|n| !n.is_empty()).unwrap_or_else(|| format!("model-{}", &id[2..10]));
    check_value("name", &name, 250)?;
    let model_type = req.model_type.unwrap_or_default();
    check_value("model_type", &model_type, 250)?;
    let now = s.store.clock.now_ms();
    let mut tx = s.store.begin_write().await?;
    active_experiment(&mut tx, experiment_id).await?;
    let run = req.source_run_id.filter(|r| !r.is_empty());
    if let Some(run) = &run
        && !crate::tracking::lock_run(&mut tx, run).await?
    {
        return Err(MlflowError::not_found(format!("source_run_id: run {run} not found")));
    }
    sqlx::query(
        "INSERT INTO logged_models (id, experiment_id, name, model_type, source_run_id, status, status_message, \
         tags, params, created_at, updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9, $9, $10)",
    )
    .bind(&id)
    .bind(experiment_id)
    .bind(&name)
    .bind(&model_type)
    .bind(&run)
    .bind(PENDING)
    .bind(merged("{}", &req.tags))
    .bind(merged("{}", &req.params))
    .bind(now)
    .bind(caller.actor().name)
    .execute(&mut *tx)
    .await?;
    let created = logged_model(&mut tx, &id, false).await?;
    let change = Change::new(AuditAction::LoggedModelCreate, Target::logged_model(&id)).after(&created.audited());
    tx.commit(&caller, change).await?;
    answer(&mut *s.store.conn().await?, &created).await
}

/// `GET logged-models/{id}`.
pub async fn get(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(id): Path<String>,
    Params(req): Params<AllowDeleted>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let mut conn = s.store.conn().await?;
    let allow_deleted = req.allow_deleted.is_some_and(|a| a.eq_ignore_ascii_case("true"));
    let model = logged_model(&mut conn, &id, allow_deleted).await?;
    answer(&mut conn, &model).await
}

/// One audited change of a logged model: `change` edits the row read inside the write.
async fn update(
    s: &AppState,
    caller: &app::domain::Caller,
    id: &str,
    change: impl AsyncFnOnce(&mut AnyConnection, &LoggedModelRow, i64) -> Result<(), MlflowError>,
) -> Result<LoggedModelRow, MlflowError> {
    caller.require(Permission::PushMetrics)?;
    let now = s.store.clock.now_ms();
    let mut tx = s.store.begin_write().await?;
    sqlx::query("UPDATE logged_models SET updated_at = $2 WHERE id = $1").bind(id).bind(now).execute(&mut *tx).await?;
    let before = logged_model(&mut tx, id, false).await?;
    change(&mut tx, &before, now).await?;
    let after = logged_model(&mut tx, id, false).await?;
    let entry = Change::new(AuditAction::LoggedModelUpdate, Target::logged_model(id))
        .before(&before.audited())
        .after(&after.audited());
    tx.commit(caller, entry).await?;
    Ok(after)
}

/// `PATCH logged-models/{id}`: finalizes a pending model. READY fixes its files and records their
/// digest; UPLOAD_FAILED marks an upload that went wrong. A finalized model stays as it is.
pub async fn finalize(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(id): Path<String>,
    Body(req): Body<FinalizeLoggedModel>,
) -> MlflowResult<Value> {
    if ![READY, FAILED].contains(&req.status.as_str()) {
        return Err(MlflowError::invalid(format!(
            "status: {:?} is not a final status ({READY} or {FAILED})",
            req.status
        )));
    }
    let model = update(&s, &caller, &id, async |tx, before, _| {
        if before.status == req.status {
            return Ok(());
        }
        if before.status != PENDING {
            return Err(ApiError::conflict(format!(
                "logged model {id} is already finalized ({}); it cannot become {}",
                before.status, req.status
            ))
            .into());
        }
        let digest = match req.status.as_str() {
            READY => tree::digest_of(tx, &before.root()).await?.map(|(digest, _)| digest),
            _ => None,
        };
        sqlx::query("UPDATE logged_models SET status = $2, digest = $3 WHERE id = $1")
            .bind(&id)
            .bind(&req.status)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        Ok(())
    })
    .await?;
    answer(&mut *s.store.conn().await?, &model).await
}

/// `PATCH logged-models/{id}/tags`.
pub async fn set_tags(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(id): Path<String>,
    Body(req): Body<LoggedModelTags>,
) -> MlflowResult<Value> {
    check_tags("tags", &req.tags)?;
    if req.tags.iter().any(|t| t.key == DIGEST_TAG) {
        return Err(MlflowError::invalid(format!("tags: {DIGEST_TAG} is computed by the server")));
    }
    update(&s, &caller, &id, async |tx, before, _| write_map(tx, &id, "tags", merged(&before.tags, &req.tags)).await)
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE logged-models/{id}/tags/{key}`.
pub async fn delete_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path((id, key)): Path<(String, String)>,
) -> MlflowResult<Value> {
    update(&s, &caller, &id, async |tx, before, _| {
        let mut tags: BTreeMap<String, String> = from_json(&before.tags);
        if tags.remove(&key).is_none() {
            return Err(MlflowError::not_found(format!("No tag with key '{key}' on logged model {id}")));
        }
        write_map(tx, &id, "tags", to_json(&tags)).await
    })
    .await?;
    Ok(Json(json!({})))
}

/// `POST logged-models/{id}/params`.
pub async fn log_params(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(id): Path<String>,
    Body(req): Body<LoggedModelParams>,
) -> MlflowResult<Value> {
    check_pairs("params", &req.params, MAX_PARAM_VALUE)?;
    update(&s, &caller, &id, async |tx, before, _| {
        write_map(tx, &id, "params", merged(&before.params, &req.params)).await
    })
    .await?;
    Ok(Json(json!({})))
}

/// `DELETE logged-models/{id}`: marks the model deleted; its files stay (a version registered from
/// it keeps loading).
pub async fn delete(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(id): Path<String>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let mut tx = s.store.begin_write().await?;
    let before = logged_model(&mut tx, &id, false).await?;
    sqlx::query("UPDATE logged_models SET deleted_at = $2 WHERE id = $1")
        .bind(&id)
        .bind(s.store.clock.now_ms())
        .execute(&mut *tx)
        .await?;
    let change = Change::new(AuditAction::LoggedModelDelete, Target::logged_model(&id)).before(&before.audited());
    tx.commit(&caller, change).await?;
    Ok(Json(json!({})))
}

/// `POST logged-models/search`: the models of some experiments, filtered on `name`, `status`,
/// `source_run_id` or `model_type`, ordered by those or by creation time (newest first by default).
pub async fn search(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<SearchLoggedModels>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    const ATTRIBUTES: [&str; 4] = ["name", "status", "source_run_id", "model_type"];
    let filter = Filter::parse(req.filter.as_deref(), &ATTRIBUTES)?;
    let (limit, offset) = page(req.max_results, req.page_token.as_deref(), 1000)?;
    let experiments = req.experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<Vec<_>, _>>()?;
    if experiments.is_empty() {
        return Err(MlflowError::invalid("experiment_ids: name at least one experiment"));
    }
    let mut order = Vec::new();
    for o in &req.order_by {
        let column = match o.field_name.as_str() {
            "creation_timestamp" | "creation_time" => "created_at",
            "last_updated_timestamp" => "updated_at",
            field if ATTRIBUTES.contains(&field) => field,
            field => {
                return Err(MlflowError::invalid(format!(
                    "order_by: cannot order logged models by {field:?} (use name, status, source_run_id, \
                     model_type, creation_timestamp or last_updated_timestamp)"
                )));
            }
        };
        order.push(format!("{column} {}", if o.ascending { "ASC" } else { "DESC" }));
    }
    order.extend(["created_at DESC".to_string(), "id".to_string()]);
    let (clause, binds) = filter.sql(|attr| ATTRIBUTES.into_iter().find(|a| *a == attr).unwrap_or("name"));
    let listed = experiments.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {COLUMNS} FROM logged_models WHERE deleted_at IS NULL AND experiment_id IN ({listed}) AND {clause} \
         ORDER BY {} LIMIT {} OFFSET {offset}",
        order.join(", "),
        limit + 1
    );
    let mut query = sqlx::query_as::<_, LoggedModelRow>(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let mut conn = s.store.conn().await?;
    let rows = query.fetch_all(&mut *conn).await?;
    let (rows, next) = next_page(rows, limit, offset);
    let mut models = Vec::with_capacity(rows.len());
    for row in &rows {
        models.push(row.wire(metrics_of(&mut conn, &row.id).await?));
    }
    Ok(Json(with_token(json!({ "models": models }), next)))
}

/// Records metric points logged for logged models (`log_metric(…, model_id=…)`) beside the run's.
pub(super) async fn write_model_metrics(
    conn: &mut AnyConnection,
    run_id: &str,
    metrics: &[KeyedMetric],
) -> Result<(), MlflowError> {
    for metric in metrics {
        let Some(model) = metric.model_id.as_deref().filter(|m| !m.is_empty()) else { continue };
        logged_model(conn, model, false).await?;
        sqlx::query(
            "INSERT INTO logged_model_metrics (model_id, run_id, key, value, at, step) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(model)
        .bind(run_id)
        .bind(&metric.key)
        .bind(Some(metric.value).filter(|v| !v.is_nan()))
        .bind(metric.timestamp)
        .bind(metric.step)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
