//! Environments, the live version per model and environment, deploys and their history.
//!
//! A live version changes only by compare-and-swap on its revision, and the change, its history
//! row and its audit entry commit in one transaction.

use std::collections::HashMap;

use app::backend::Deployments;
use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use serde_json::json;
use sqlx::AnyConnection;

use crate::audit::{Change, Target};
use crate::clock::rfc3339;
use crate::db::{DbResultExt, db_error};
use crate::registry::load_version;
use crate::rollback::{policy, supersede_open};
use crate::store::{Store, environment_id, model_id};

#[derive(sqlx::FromRow)]
struct EnvironmentRow {
    id: i64,
    name: String,
    description: String,
    created_at: i64,
}

async fn environments(conn: &mut AnyConnection) -> Result<Vec<EnvironmentRow>, ApiError> {
    sqlx::query_as("SELECT id, name, description, created_at FROM environments ORDER BY position, id")
        .fetch_all(conn)
        .await
        .map_err(db_error)
}

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    model_id: i64,
    environment_id: i64,
    version_number: i64,
    revision: i64,
    updated_at: i64,
    updated_by: String,
}

/// The live version in every environment for each of the given (model id, model name) pairs.
pub(crate) async fn live_versions(
    conn: &mut AnyConnection,
    models: &[(i64, String)],
) -> Result<HashMap<i64, Vec<LiveVersion>>, ApiError> {
    if models.is_empty() {
        return Ok(HashMap::new());
    }
    let envs = environments(conn).await?;
    let placeholders: Vec<String> = (1..=models.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT model_id, environment_id, version_number, revision, updated_at, updated_by \
         FROM deployments WHERE model_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, DeploymentRow>(&sql);
    for (id, _) in models {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(db_error)?;
    let mut by_key: HashMap<(i64, i64), DeploymentRow> =
        rows.into_iter().map(|r| ((r.model_id, r.environment_id), r)).collect();
    Ok(models
        .iter()
        .map(|(id, name)| {
            let live = envs.iter().map(|env| live_version(name, &env.name, by_key.remove(&(*id, env.id)))).collect();
            (*id, live)
        })
        .collect())
}

fn live_version(model: &str, environment: &str, row: Option<DeploymentRow>) -> LiveVersion {
    LiveVersion {
        model: model.to_string(),
        environment: environment.to_string(),
        version: row.as_ref().map(|r| r.version_number),
        revision: row.as_ref().map_or(0, |r| r.revision),
        updated_at: row.as_ref().map(|r| rfc3339(r.updated_at)),
        updated_by: row.map(|r| r.updated_by),
    }
}

async fn current_deployment(
    conn: &mut AnyConnection,
    model_id: i64,
    env_id: i64,
) -> Result<Option<DeploymentRow>, ApiError> {
    sqlx::query_as(
        "SELECT model_id, environment_id, version_number, revision, updated_at, updated_by \
         FROM deployments WHERE model_id = $1 AND environment_id = $2",
    )
    .bind(model_id)
    .bind(env_id)
    .fetch_optional(conn)
    .await
    .map_err(db_error)
}

/// A (model, environment) pair with its deployment, if any: one query for the hottest read.
#[derive(sqlx::FromRow)]
struct LiveRow {
    model_id: i64,
    environment_id: i64,
    version_number: Option<i64>,
    revision: Option<i64>,
    updated_at: Option<i64>,
    updated_by: Option<String>,
}

impl LiveRow {
    fn into_deployment(self) -> Option<DeploymentRow> {
        match (self.version_number, self.revision, self.updated_at, self.updated_by) {
            (Some(version_number), Some(revision), Some(updated_at), Some(updated_by)) => Some(DeploymentRow {
                model_id: self.model_id,
                environment_id: self.environment_id,
                version_number,
                revision,
                updated_at,
                updated_by,
            }),
            _ => None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    model: String,
    environment: String,
    revision: i64,
    from_version: Option<i64>,
    to_version: i64,
    kind: String,
    reason: String,
    actor: String,
    created_at: i64,
    request_id: Option<i64>,
}

impl HistoryRow {
    fn into_event(self) -> DeploymentEvent {
        DeploymentEvent {
            model: self.model,
            environment: self.environment,
            revision: self.revision,
            from_version: self.from_version,
            to_version: self.to_version,
            kind: DeploymentKind::parse(&self.kind).unwrap_or(DeploymentKind::Deploy),
            reason: self.reason,
            actor: self.actor,
            created_at: rfc3339(self.created_at),
            request: self.request_id,
        }
    }
}

/// A change of the live version to make, already checked against the rules.
pub(crate) struct LiveChange<'a> {
    pub model: &'a str,
    pub environment: &'a str,
    pub to_version: i64,
    pub kind: DeploymentKind,
    pub reason: &'a str,
    pub actor: &'a Actor,
    /// The revision the caller saw; the change happens only if it is still current.
    pub expected_revision: Option<i64>,
    /// The rollback request this change executes, if any.
    pub request: Option<i64>,
    pub now: i64,
}

/// Moves the live version by compare-and-swap and records the change, inside `conn`'s transaction.
pub(crate) async fn change_live_version(
    conn: &mut AnyConnection,
    change: LiveChange<'_>,
) -> Result<DeploymentEvent, ApiError> {
    let model_id = model_id(conn, change.model).await?;
    let env_id = environment_id(conn, change.environment).await?;
    let target = load_version(conn, change.model, change.to_version).await?;
    if let Some(blocker) = target.deploy_blocker() {
        return Err(ApiError::conflict(blocker));
    }
    let current = current_deployment(conn, model_id, env_id).await?;
    let current_revision = current.as_ref().map_or(0, |d| d.revision);
    let from_version = current.as_ref().map(|d| d.version_number);
    if let Some(expected) = change.expected_revision.filter(|e| *e != current_revision) {
        return Err(ApiError::conflict(format!(
            "stale: the live revision of {} in {} is {current_revision}, not {expected}",
            change.model, change.environment
        )));
    }
    if from_version == Some(change.to_version) {
        return Err(ApiError::conflict(format!(
            "version {} is already live in {}",
            change.to_version, change.environment
        )));
    }
    let stale = || {
        ApiError::conflict(format!(
            "stale: the live version of {} in {} changed meanwhile; retry",
            change.model, change.environment
        ))
    };
    let revision = current_revision + 1;
    if current.is_some() {
        let updated = sqlx::query(
            "UPDATE deployments SET version_number = $1, revision = $2, updated_at = $3, updated_by = $4 \
             WHERE model_id = $5 AND environment_id = $6 AND revision = $7",
        )
        .bind(change.to_version)
        .bind(revision)
        .bind(change.now)
        .bind(&change.actor.name)
        .bind(model_id)
        .bind(env_id)
        .bind(current_revision)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() != 1 {
            return Err(stale());
        }
    } else {
        sqlx::query(
            "INSERT INTO deployments (model_id, environment_id, version_number, revision, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(model_id)
        .bind(env_id)
        .bind(change.to_version)
        .bind(revision)
        .bind(change.now)
        .bind(&change.actor.name)
        .execute(&mut *conn)
        .await
        .on_unique_violation(stale)?;
    }
    sqlx::query(
        "INSERT INTO deployment_history (model_id, environment_id, revision, from_version, to_version, kind, \
         reason, actor, created_at, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(model_id)
    .bind(env_id)
    .bind(revision)
    .bind(from_version)
    .bind(change.to_version)
    .bind(change.kind.as_str())
    .bind(change.reason)
    .bind(&change.actor.name)
    .bind(change.now)
    .bind(change.request)
    .execute(&mut *conn)
    .await
    .on_unique_violation(stale)?;
    sqlx::query("UPDATE models SET updated_at = $1 WHERE id = $2")
        .bind(change.now)
        .bind(model_id)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(DeploymentEvent {
        model: change.model.to_string(),
        environment: change.environment.to_string(),
        revision,
        from_version,
        to_version: change.to_version,
        kind: change.kind,
        reason: change.reason.to_string(),
        actor: change.actor.name.clone(),
        created_at: rfc3339(change.now),
        request: change.request,
    })
}

/// The audit record of a live-version change: the live version and revision before and after.
pub(crate) fn deployment_change(action: AuditAction, event: &DeploymentEvent) -> Change {
    Change::new(action, Target::deployment(&event.model, &event.environment))
        .before(&json!({ "version": event.from_version, "revision": event.revision - 1 }))
        .after(&json!({ "version": event.to_version, "revision": event.revision, "kind": event.kind }))
        .reason(&event.reason)
}

#[async_trait]
impl Deployments for Store {
    async fn list_environments(&self, caller: &Caller) -> Result<Vec<Environment>, ApiError> {
        caller.require(Permission::Read)?;
        let rows = environments(&mut *self.conn().await?).await?;
        Ok(rows
            .into_iter()
            .map(|r| Environment { name: r.name, description: r.description, created_at: rfc3339(r.created_at) })
            .collect())
    }

    async fn create_environment(&self, caller: &Caller, input: NewEnvironment) -> Result<Environment, ApiError> {
        caller.require(Permission::ManageEnvironments)?;
        input.validate()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO environments (name, description, position, created_at) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 10 FROM environments), $3)",
        )
        .bind(&input.name)
        .bind(&input.description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .on_unique_violation(|| {
            ApiError::conflict(format!("an environment named '{}' already exists", input.name)).with_field("name")
        })?;
        let environment = Environment { name: input.name, description: input.description, created_at: rfc3339(now) };
        let change = Change::new(AuditAction::EnvironmentCreate, Target::environment(&environment.name));
        tx.commit(caller, change.after(&environment)).await?;
        Ok(environment)
    }

    async fn live_version(&self, caller: &Caller, model: &str, environment: &str) -> Result<LiveVersion, ApiError> {
        caller.require(Permission::Read)?;
        let mut conn = self.conn().await?;
        let row: Option<LiveRow> = sqlx::query_as(
            "SELECT m.id AS model_id, e.id AS environment_id, d.version_number, d.revision, d.updated_at, d.updated_by \
             FROM models m CROSS JOIN environments e \
             LEFT JOIN deployments d ON d.model_id = m.id AND d.environment_id = e.id \
             WHERE m.name = $1 AND e.name = $2",
        )
        .bind(model)
        .bind(environment)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        match row {
            Some(row) => Ok(live_version(model, environment, row.into_deployment())),
            None => {
                // Say which of the two names is unknown.
                model_id(&mut conn, model).await?;
                environment_id(&mut conn, environment).await?;
                Err(ApiError::internal())
            }
        }
    }

    async fn deploy(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: DeployInput,
    ) -> Result<DeploymentEvent, ApiError> {
        caller.require(Permission::Deploy)?;
        input.validate()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let model_id = model_id(&mut tx, model).await?;
        let (environment_id, policy) = policy::load(&mut tx, environment).await?;
        if let Some(window) = policy::active_freeze(&policy, now) {
            return Err(ApiError::conflict(format!("{}; only break glass can change it", window.refusal(environment))));
        }
        // Open rollback requests first: the same lock order as an approval (request, then live version).
        let why = format!("stale: v{} went live by a deploy by {}", input.version, caller.actor().name);
        supersede_open(&mut tx, (model_id, environment_id), None, &why, caller, now).await?;
        let event = change_live_version(
            &mut tx,
            LiveChange {
                model,
                environment,
                to_version: input.version,
                kind: DeploymentKind::Deploy,
                reason: &input.reason,
                actor: &caller.actor(),
                expected_revision: input.expected_revision,
                request: None,
                now,
            },
        )
        .await?;
        tx.announce(ServerEvent::Deployment { deployment: event.clone() });
        tx.commit(caller, deployment_change(AuditAction::Deploy, &event)).await?;
        Ok(event)
    }

    async fn history(
        &self,
        caller: &Caller,
        model: &str,
        environment: Option<&str>,
        query: HistoryQuery,
    ) -> Result<Page<DeploymentEvent>, ApiError> {
        caller.require(Permission::Read)?;
        validate::page_limit(query.limit)?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = query.offset.unwrap_or(0);
        let mut conn = self.conn().await?;
        let model_id = model_id(&mut conn, model).await?;
        let env_id = match environment {
            Some(env) => Some(environment_id(&mut conn, env).await?),
            None => None,
        };
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deployment_history WHERE model_id = $1 AND ($2 IS NULL OR environment_id = $2)",
        )
        .bind(model_id)
        .bind(env_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT m.name AS model, e.name AS environment, h.revision, h.from_version, h.to_version, h.kind, \
             h.reason, h.actor, h.created_at, h.request_id FROM deployment_history h \
             JOIN models m ON m.id = h.model_id JOIN environments e ON e.id = h.environment_id \
             WHERE h.model_id = $1 AND ($2 IS NULL OR h.environment_id = $2) \
             ORDER BY h.id DESC LIMIT $3 OFFSET $4",
        )
        .bind(model_id)
        .bind(env_id)
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        Ok(Page { items: rows.into_iter().map(HistoryRow::into_event).collect(), total, limit, offset })
    }
}
