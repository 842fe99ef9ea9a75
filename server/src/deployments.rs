//! Environments and deploys: a deploy checks the environment's freeze windows, supersedes its open
//! rollback requests and moves the live version (`crate::live`).

use app::backend::Deployments;
use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;

use crate::audit::{Change, Target};
use crate::clock::rfc3339;
use crate::db::DbResultExt;
use crate::fleet::assignment::AssignmentSigner;
use crate::fleet::{HISTORY_COLUMNS, HistoryRow};
use crate::live::{LiveChange, LiveRow, environments, live_version, move_live_version};
use crate::rollback::{policy, supersede_open};
use crate::store::Store;
use crate::versions::{environment_id, model_id};

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
        .await?;
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
        let event = move_live_version(
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
            caller,
            self.part::<AssignmentSigner>(),
        )
        .await?;
        tx.finish().await?;
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
        .await?;
        let rows: Vec<HistoryRow> = sqlx::query_as(&format!(
            "SELECT {HISTORY_COLUMNS} FROM deployment_history h \
             JOIN models m ON m.id = h.model_id JOIN environments e ON e.id = h.environment_id \
             WHERE h.model_id = $1 AND ($2 IS NULL OR h.environment_id = $2) \
             ORDER BY h.id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(model_id)
        .bind(env_id)
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Page { items: rows.into_iter().map(HistoryRow::into_event).collect(), total, limit, offset })
    }
}
