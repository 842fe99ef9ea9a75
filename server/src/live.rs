//! Live versions: where each model runs, the compare-and-swap move of a live version that both a
//! deploy and a rollback make, and the history of those moves.
//!
//! A live version changes only by compare-and-swap on its revision, and the change, its history
//! row, its rollout, its audit entry (with the signed assignment) and its event (with the
//! webhooks' deliveries) commit in one transaction.

use std::collections::HashMap;

use app::domain::*;
use app::error::ApiError;
use serde_json::json;
use sqlx::AnyConnection;

use crate::audit::{AuditActor, AuditedTx, Change, Target};
use crate::clock::rfc3339;
use crate::db::DbResultExt;
use crate::fleet::{self, assignment::AssignmentSigner};
use crate::versions::{environment_id, load_version, model_id};
use crate::webhooks;

#[derive(sqlx::FromRow)]
pub(crate) struct EnvironmentRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) created_at: i64,
}

pub(crate) async fn environments(conn: &mut AnyConnection) -> Result<Vec<EnvironmentRow>, ApiError> {
    sqlx::query_as("SELECT id, name, description, created_at FROM environments ORDER BY position, id")
        .fetch_all(conn)
        .await
        .map_err(ApiError::from)
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeploymentRow {
    pub(crate) model_id: i64,
    pub(crate) environment_id: i64,
    pub(crate) version_number: i64,
    pub(crate) revision: i64,
    pub(crate) updated_at: i64,
    pub(crate) updated_by: String,
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
    let rows = query.fetch_all(&mut *conn).await?;
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

pub(crate) fn live_version(model: &str, environment: &str, row: Option<DeploymentRow>) -> LiveVersion {
    LiveVersion {
        model: model.to_string(),
        environment: environment.to_string(),
        version: row.as_ref().map(|r| r.version_number),
        revision: row.as_ref().map_or(0, |r| r.revision),
        updated_at: row.as_ref().map(|r| rfc3339(r.updated_at)),
        updated_by: row.map(|r| r.updated_by),
    }
}

pub(crate) async fn current_deployment(
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
    .map_err(ApiError::from)
}

/// A (model, environment) pair with its deployment, if any: one query for the hottest read.
#[derive(sqlx::FromRow)]
pub(crate) struct LiveRow {
    pub(crate) model_id: i64,
    pub(crate) environment_id: i64,
    pub(crate) version_number: Option<i64>,
    pub(crate) revision: Option<i64>,
    pub(crate) updated_at: Option<i64>,
    pub(crate) updated_by: Option<String>,
}

impl LiveRow {
    pub(crate) fn into_deployment(self) -> Option<DeploymentRow> {
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

/// Moves the live version (compare-and-swap), opens its rollout through the fleet, and records the
/// change's audit entry — with the signed assignment that publishes it — and its event, all in `tx`.
pub(crate) async fn move_live_version(
    tx: &mut AuditedTx<'_>,
    change: LiveChange<'_>,
    by: impl Into<AuditActor>,
    signer: Option<&AssignmentSigner>,
) -> Result<DeploymentEvent, ApiError> {
    let action = match change.kind {
        DeploymentKind::Deploy => AuditAction::Deploy,
        DeploymentKind::Rollback => AuditAction::Rollback,
        DeploymentKind::BreakGlass => AuditAction::BreakGlass,
    };
    let now = change.now;
    let (event, version) = change_live_version(tx, change).await?;
    fleet::open_rollout(tx, &event, now).await?;
    let event = DeploymentEvent { rollout: Some(RolloutState::Issued), ..event };
    let published = fleet::Published {
        model: event.model.clone(),
        environment: event.environment.clone(),
        version: event.to_version,
        revision: event.revision,
        artifact_uri: version.artifact_uri,
        artifact_root: version.artifact_root,
        artifact_digest: version.artifact_digest,
    };
    let signed = signer.map(|s| s.sign(&published.assignment(now, s.ttl_ms)));
    let change = Change::new(action, Target::deployment(&event.model, &event.environment))
        .before(&json!({ "version": event.from_version, "revision": event.revision - 1 }))
        .after(&json!({ "version": event.to_version, "revision": event.revision, "kind": event.kind, "assignment": signed }))
        .reason(&event.reason);
    tx.record(by, change).await?;
    let (id, at) = tx.store_event(ServerEvent::Deployment { deployment: event.clone() }).await?;
    webhooks::enqueue(tx, id, &webhooks::Subject::Deployment(&event), &rfc3339(at), at).await?;
    Ok(event)
}

/// Moves the live version by compare-and-swap and writes its history row, inside `conn`'s
/// transaction; returns the change and the version made live.
async fn change_live_version(
    conn: &mut AnyConnection,
    change: LiveChange<'_>,
) -> Result<(DeploymentEvent, Version), ApiError> {
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
        .await?;
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
        .await?;
    let event = DeploymentEvent {
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
        rollout: None,
        converged_at: None,
    };
    Ok((event, target))
}
