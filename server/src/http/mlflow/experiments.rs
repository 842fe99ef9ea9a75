//! MLflow experiments: create, read, search, rename, tags, and delete/restore (a deleted
//! experiment and the runs deleted with it are kept and come back together).

use std::collections::BTreeMap;

use app::domain::{AuditAction, Caller, Permission, validate};
use app::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::checks::{MAX_TAG_VALUE, check_key, check_tags, check_value, parse_experiment_id};
use super::filter::{Filter, next_page, page, with_token};
use super::wire::*;
use super::{Body, MlflowCaller, MlflowError, MlflowResult, Params};
use crate::audit::{Change, Target};
use crate::db::DbResultExt;
use crate::http::state::AppState;
use crate::store::{Store, from_json, to_json};

/// MLflow's default experiment, where runs go when none is named; it cannot be deleted.
const DEFAULT_EXPERIMENT: i64 = 0;

#[derive(sqlx::FromRow)]
pub(super) struct ExperimentRow {
    id: i64,
    name: String,
    artifact_location: String,
    tags: String,
    created_at: i64,
    updated_at: i64,
    pub(super) deleted_at: Option<i64>,
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
            lifecycle_stage: lifecycle(self.deleted_at),
            creation_time: self.created_at,
            last_update_time: self.updated_at,
            tags: tags.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
        }
    }
}

/// MLflow's lifecycle stage of an experiment or run deleted at `deleted_at` (or not).
pub(super) fn lifecycle(deleted_at: Option<i64>) -> &'static str {
    if deleted_at.is_some() { "deleted" } else { "active" }
}

const EXPERIMENT_COLUMNS: &str = "id, name, artifact_location, tags, created_at, updated_at, deleted_at";

/// The experiment `id`, deleted or not.
pub(super) async fn experiment(conn: &mut AnyConnection, id: i64) -> Result<ExperimentRow, MlflowError> {
    sqlx::query_as(&format!("SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| MlflowError::not_found(format!("No Experiment with id={id} exists")))
}

/// The experiment `id` if it is active: runs and models are made only in an active experiment.
pub(super) async fn active_experiment(conn: &mut AnyConnection, id: i64) -> Result<(), MlflowError> {
    match experiment(conn, id).await?.deleted_at {
        None => Ok(()),
        Some(_) => Err(MlflowError::invalid(format!(
            "experiment_id: experiment {id} is deleted; restore it (experiments/restore) to use it"
        ))),
    }
}

/// A duplicate experiment name as MLflow words it.
fn name_taken(name: &str) -> impl FnOnce(ApiError) -> MlflowError + '_ {
    move |e| match e.code {
        app::error::ErrorCode::Conflict => {
            MlflowError::already_exists(format!("Experiment(name={name}) already exists."))
        }
        _ => e.into(),
    }
}

fn check_name(field: &str, name: &str) -> Result<(), MlflowError> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(format!("{field}: an experiment name is required")));
    }
    check_value(field, name, 500)
}

pub async fn create_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<CreateExperiment>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    check_name("name", &req.name)?;
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
    .on_unique_violation(|| ApiError::conflict("taken"))
    .map_err(name_taken(&req.name))?;
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

/// Experiments by id, optionally filtered by `name` (`=`, `LIKE`, `ILIKE`); active ones unless
/// `view_type` asks for the deleted or all.
pub async fn search_experiments(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<SearchExperiments>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let filter = Filter::parse(req.filter.as_deref(), &["name"])?;
    let (limit, offset) = page(req.max_results, req.page_token.as_deref(), 1000)?;
    let lifecycle = view_condition("view_type", req.view_type.as_deref())?;
    let (clause, binds) = filter.sql(|_| "name");
    let sql = format!(
        "SELECT {EXPERIMENT_COLUMNS} FROM mlflow_experiments WHERE {clause} AND {lifecycle} ORDER BY id \
         LIMIT {} OFFSET {offset}",
        limit + 1
    );
    let mut query = sqlx::query_as::<_, ExperimentRow>(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(&mut *s.store.conn().await?).await?;
    let (rows, next) = next_page(rows, limit, offset);
    let experiments: Vec<Experiment> = rows.into_iter().map(ExperimentRow::into_wire).collect();
    Ok(Json(with_token(json!({ "experiments": experiments }), next)))
}

/// The condition on `deleted_at` a view type (`ACTIVE_ONLY` by default) puts on a search.
pub(super) fn view_condition(field: &str, view: Option<&str>) -> Result<&'static str, MlflowError> {
    Ok(match view.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" => "deleted_at IS NULL",
        "DELETED_ONLY" | "2" => "deleted_at IS NOT NULL",
        "ALL" | "3" => "1 = 1",
        other => {
            return Err(MlflowError::invalid(format!("{field}: {other:?} is not ACTIVE_ONLY, DELETED_ONLY or ALL")));
        }
    })
}

/// One audited change of an experiment: `change` edits it inside the write, given the experiment
/// as it was and the time.
async fn change_experiment(
    store: &Store,
    caller: &Caller,
    id: &str,
    action: AuditAction,
    change: impl AsyncFnOnce(&mut AnyConnection, &ExperimentRow, i64) -> Result<(), MlflowError>,
) -> MlflowResult<Value> {
    caller.require(Permission::PushMetrics)?;
    let id = parse_experiment_id(id)?;
    let now = store.clock.now_ms();
    let mut tx = store.begin_write().await?;
    sqlx::query("UPDATE mlflow_experiments SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let before = experiment(&mut tx, id).await?;
    change(&mut tx, &before, now).await?;
    let after = experiment(&mut tx, id).await?.into_wire();
    let entry = Change::new(action, Target::experiment(id)).before(&before.into_wire()).after(&after);
    tx.commit(caller, entry).await?;
    Ok(Json(json!({})))
}

/// `experiments/update`: renames an experiment.
pub async fn update_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<UpdateExperiment>,
) -> MlflowResult<Value> {
    check_name("new_name", &req.new_name)?;
    change_experiment(&s.store, &caller, &req.experiment_id, AuditAction::ExperimentUpdate, async |tx, e, _| {
        sqlx::query("UPDATE mlflow_experiments SET name = $2 WHERE id = $1")
            .bind(e.id)
            .bind(&req.new_name)
            .execute(&mut *tx)
            .await
            .on_unique_violation(|| ApiError::conflict("taken"))
            .map_err(name_taken(&req.new_name))?;
        Ok(())
    })
    .await
}

/// `experiments/set-experiment-tag`.
pub async fn set_experiment_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<ExperimentTag>,
) -> MlflowResult<Value> {
    check_key("key", &req.key)?;
    check_value("value", &req.value, MAX_TAG_VALUE)?;
    change_experiment(&s.store, &caller, &req.experiment_id, AuditAction::ExperimentUpdate, async |tx, e, _| {
        let mut tags: BTreeMap<String, String> = from_json(&e.tags);
        tags.insert(req.key.clone(), req.value.clone());
        write_tags(tx, e.id, &tags).await
    })
    .await
}

/// `experiments/delete-experiment-tag`.
pub async fn delete_experiment_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<ExperimentTag>,
) -> MlflowResult<Value> {
    change_experiment(&s.store, &caller, &req.experiment_id, AuditAction::ExperimentUpdate, async |tx, e, _| {
        let mut tags: BTreeMap<String, String> = from_json(&e.tags);
        if tags.remove(&req.key).is_none() {
            return Err(MlflowError::not_found(format!("No tag with key '{}' on experiment {}", req.key, e.id)));
        }
        write_tags(tx, e.id, &tags).await
    })
    .await
}

async fn write_tags(conn: &mut AnyConnection, id: i64, tags: &BTreeMap<String, String>) -> Result<(), MlflowError> {
    sqlx::query("UPDATE mlflow_experiments SET tags = $2 WHERE id = $1")
        .bind(id)
        .bind(to_json(tags))
        .execute(conn)
        .await?;
    Ok(())
}

/// `experiments/delete`: marks an active experiment and its active runs deleted.
pub async fn delete_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<ExperimentId>,
) -> MlflowResult<Value> {
    change_experiment(&s.store, &caller, &req.experiment_id, AuditAction::ExperimentDelete, async |tx, e, now| {
        if e.id == DEFAULT_EXPERIMENT {
            return Err(MlflowError::invalid("experiment_id: the default experiment (0) cannot be deleted"));
        }
        if e.deleted_at.is_some() {
            return Err(MlflowError::invalid(format!("experiment_id: experiment {} is already deleted", e.id)));
        }
        for table in ["mlflow_experiments", "mlflow_runs"] {
            let column = if table == "mlflow_runs" { "experiment_id" } else { "id" };
            sqlx::query(&format!("UPDATE {table} SET deleted_at = $2 WHERE {column} = $1 AND deleted_at IS NULL"))
                .bind(e.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    })
    .await
}

/// `experiments/restore`: brings back a deleted experiment and the runs deleted with it.
pub async fn restore_experiment(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<ExperimentId>,
) -> MlflowResult<Value> {
    change_experiment(&s.store, &caller, &req.experiment_id, AuditAction::ExperimentRestore, async |tx, e, _| {
        let Some(deleted_at) = e.deleted_at else {
            return Err(MlflowError::invalid(format!("experiment_id: experiment {} is not deleted", e.id)));
        };
        sqlx::query("UPDATE mlflow_runs SET deleted_at = NULL WHERE experiment_id = $1 AND deleted_at = $2")
            .bind(e.id)
            .bind(deleted_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE mlflow_experiments SET deleted_at = NULL WHERE id = $1")
            .bind(e.id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    })
    .await
}
