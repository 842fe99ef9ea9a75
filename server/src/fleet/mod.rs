//! The serving fleet: the signed assignment of each live version, agents' reports of what they
//! serve (a row per agent updated in place, a transition row only when what it serves changes),
//! each change's rollout through the fleet (`rollout`), and the fleet as read (`view`).

pub mod assignment;
mod rollout;
mod view;

use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use serde_json::json;
use sqlx::AnyConnection;

use crate::audit::{Change, Target};
use crate::clock::rfc3339;
use crate::events::announce_transient;
use crate::store::Store;
use crate::versions::{environment_id, model_id};
use assignment::AssignmentSigner;

pub(crate) use rollout::{HISTORY_COLUMNS, HistoryRow, open_rollout};

/// What an assignment publishes: a live version, where its files are, its digest, its counter.
#[derive(sqlx::FromRow)]
pub(crate) struct Published {
    pub(crate) model: String,
    pub(crate) environment: String,
    pub(crate) version: i64,
    pub(crate) revision: i64,
    pub(crate) artifact_uri: String,
    pub(crate) artifact_root: Option<String>,
    pub(crate) artifact_digest: Option<String>,
}

impl Published {
    /// The assignment, issued at `now`: `models:/<model>/<version>` when the registry holds the
    /// files, else the URI the version was registered with.
    pub(crate) fn assignment(&self, now: i64, ttl_ms: i64) -> Assignment {
        let artifact_uri = match self.artifact_root {
            Some(_) => format!("models:/{}/{}", self.model, self.version),
            None => self.artifact_uri.clone(),
        };
        Assignment {
            kind: ASSIGNMENT_KIND.into(),
            model: self.model.clone(),
            environment: self.environment.clone(),
            version: self.version,
            counter: self.revision,
            artifact_uri,
            digest: self.artifact_digest.clone(),
            issued_at: rfc3339(now),
            expires_at: rfc3339(now + ttl_ms),
        }
    }
}

/// 403 unless `caller` may fetch the files of `model`'s version `number`: a reader may; an agent
/// only while that version is live in one of its environments.
pub(crate) async fn require_fetch(
    conn: &mut AnyConnection,
    caller: &Caller,
    model: &str,
    number: i64,
) -> Result<(), ApiError> {
    if caller.can(Permission::Read) {
        return Ok(());
    }
    caller.require(Permission::Serve)?;
    let live_in: Vec<String> = sqlx::query_scalar(
        "SELECT e.name FROM deployments d JOIN models m ON m.id = d.model_id \
         JOIN environments e ON e.id = d.environment_id WHERE m.name = $1 AND d.version_number = $2",
    )
    .bind(model)
    .bind(number)
    .fetch_all(conn)
    .await?;
    if live_in.iter().any(|e| caller.environments.contains(e)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "an agent fetches only versions live in its environments ({}); {model} v{number} is not",
            caller.environments.join(", ")
        )))
    }
}

/// An agent's row.
#[derive(sqlx::FromRow)]
struct AgentRow {
    id: i64,
    instance: String,
    grp: String,
    state: String,
    counter: i64,
    version: Option<i64>,
    digest: Option<String>,
    error: Option<String>,
    heartbeat_ms: i64,
    last_seen: i64,
    changed_at: i64,
    removed_at: Option<i64>,
}

const AGENT_COLUMNS: &str =
    "id, instance, grp, state, counter, version, digest, error, heartbeat_ms, last_seen, changed_at, removed_at";

impl AgentRow {
    /// As shown: lost once three heartbeats are missed, even before the sweep records it.
    fn into_agent(self, now: i64) -> Agent {
        let lost = self.state == "lost" || now > self.last_seen + 3 * self.heartbeat_ms;
        Agent {
            instance: self.instance,
            group: self.grp,
            state: if lost { AgentState::Lost } else { AgentState::parse(&self.state).unwrap_or(AgentState::Failed) },
            counter: self.counter,
            version: self.version,
            digest: self.digest,
            error: self.error,
            heartbeat_seconds: (self.heartbeat_ms / 1000) as u32,
            last_seen: rfc3339(self.last_seen),
            since: rfc3339(if lost && self.state != "lost" {
                self.last_seen + 3 * self.heartbeat_ms
            } else {
                self.changed_at
            }),
        }
    }
}

async fn agent_row(conn: &mut AnyConnection, ids: (i64, i64), instance: &str) -> Result<Option<AgentRow>, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM fleet_agents WHERE model_id = $1 AND environment_id = $2 AND instance = $3"
    ))
    .bind(ids.0)
    .bind(ids.1)
    .bind(instance)
    .fetch_optional(conn)
    .await
    .map_err(ApiError::from)
}

/// Records what an agent serves from `at` on.
async fn transition(
    conn: &mut AnyConnection,
    agent_id: i64,
    at: i64,
    state: &str,
    counter: i64,
    version: Option<i64>,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO fleet_transitions (agent_id, at, state, counter, version) VALUES ($1, $2, $3, $4, $5)")
        .bind(agent_id)
        .bind(at)
        .bind(state)
        .bind(counter)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

/// The ids of a (model, environment) pair, each name checked.
async fn ids(conn: &mut AnyConnection, model: &str, environment: &str) -> Result<(i64, i64), ApiError> {
    Ok((model_id(conn, model).await?, environment_id(conn, environment).await?))
}

impl Store {
    /// The key agents verify assignments with.
    pub fn assignment_key(&self) -> Result<PublicKey, ApiError> {
        Ok(self.signer()?.public().clone())
    }

    fn signer(&self) -> Result<&AssignmentSigner, ApiError> {
        self.part::<AssignmentSigner>().ok_or_else(ApiError::internal)
    }

    /// The signed assignment of a (model, environment), signed now, and its counter; `None` while
    /// nothing is live there.
    pub async fn assignment(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
    ) -> Result<Option<(i64, SignedAssignment)>, ApiError> {
        if !caller.can(Permission::Read) {
            caller.require_serving(environment)?;
        }
        let signer = self.signer()?;
        let mut conn = self.conn().await?;
        let published: Option<Published> = sqlx::query_as(
            "SELECT m.name AS model, e.name AS environment, d.version_number AS version, d.revision, v.artifact_uri, \
             v.artifact_root, v.artifact_digest FROM deployments d JOIN models m ON m.id = d.model_id \
             JOIN environments e ON e.id = d.environment_id \
             JOIN versions v ON v.model_id = d.model_id AND v.number = d.version_number \
             WHERE m.name = $1 AND e.name = $2",
        )
        .bind(model)
        .bind(environment)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(published) = published else {
            ids(&mut conn, model, environment).await?; // which name is unknown, if one is
            return Ok(None);
        };
        let signed = signer.sign(&published.assignment(self.clock.now_ms(), signer.ttl_ms));
        Ok(Some((published.revision, signed)))
    }

    /// Records an agent's report (also its heartbeat): its row in place, a transition when what it
    /// serves changed, an audit entry when it comes back from lost; then tells subscribers and
    /// decides the rollout again.
    pub async fn report(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        instance: &str,
        report: AgentReport,
    ) -> Result<Agent, ApiError> {
        caller.require_serving(environment)?;
        validate::agent_instance("instance", instance)?;
        report.validate()?;
        let now = self.clock.now_ms();
        let mut conn = self.conn().await?;
        let ids = ids(&mut conn, model, environment).await?;
        let previous = agent_row(&mut conn, ids, instance).await?;
        drop(conn);
        let state = report.state.as_str();
        let changed = previous.as_ref().is_none_or(|p| {
            p.state != state || p.counter != report.counter || p.version != report.version || p.grp != report.group
        });
        let returned = previous.as_ref().is_some_and(|p| p.state == "lost" || p.removed_at.is_some());
        let changed_at = match &previous {
            Some(p) if !changed => p.changed_at,
            _ => now,
        };
        let upsert = sqlx::query_scalar::<_, i64>(
            "INSERT INTO fleet_agents (model_id, environment_id, instance, grp, state, counter, version, digest, error, \
             heartbeat_ms, last_seen, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (model_id, environment_id, instance) DO UPDATE SET grp = excluded.grp, state = excluded.state, \
             counter = excluded.counter, version = excluded.version, digest = excluded.digest, error = excluded.error, \
             heartbeat_ms = excluded.heartbeat_ms, last_seen = excluded.last_seen, changed_at = excluded.changed_at, \
             removed_at = NULL RETURNING id",
        )
        .bind(ids.0)
        .bind(ids.1)
        .bind(instance)
        .bind(&report.group)
        .bind(state)
        .bind(report.counter)
        .bind(report.version)
        .bind(&report.digest)
        .bind(&report.error)
        .bind(i64::from(report.heartbeat_seconds) * 1000)
        .bind(now)
        .bind(changed_at);
        let agent = Agent {
            instance: instance.to_string(),
            group: report.group.clone(),
            state: report.state,
            counter: report.counter,
            version: report.version,
            digest: report.digest.clone(),
            error: report.error.clone(),
            heartbeat_seconds: report.heartbeat_seconds,
            last_seen: rfc3339(now),
            since: rfc3339(changed_at),
        };
        if returned {
            let mut tx = self.begin_write().await?;
            let id = upsert.fetch_one(&mut *tx).await?;
            transition(&mut tx, id, now, state, report.counter, report.version).await?;
            let change = Change::new(AuditAction::AgentReturned, Target::agent(model, environment, instance));
            tx.commit(caller, change.after(&agent)).await?;
        } else {
            let mut tx = self.begin_data_write().await?;
            let id = upsert.fetch_one(&mut *tx).await?;
            if changed {
                transition(&mut tx, id, now, state, report.counter, report.version).await?;
            }
            tx.commit().await?;
        }
        if changed || returned {
            self.agent_changed(model, environment, agent.clone()).await;
            self.decide_rollout(ids, model, environment).await?;
        }
        Ok(agent)
    }

    /// Tells every replica's subscribers that an agent changed.
    async fn agent_changed(&self, model: &str, environment: &str, agent: Agent) {
        let event = ServerEvent::Agent { model: model.to_string(), environment: environment.to_string(), agent };
        announce_transient(&self.db, &self.events, event).await;
    }

    /// Forgets an agent taken out of service (an operator's call): it no longer counts towards
    /// convergence; its transitions stay for the history of what was served.
    pub async fn remove_agent(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        instance: &str,
    ) -> Result<(), ApiError> {
        caller.require(Permission::Deploy)?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let ids = ids(&mut tx, model, environment).await?;
        let Some(row) = agent_row(&mut tx, ids, instance).await?.filter(|r| r.removed_at.is_none()) else {
            return Err(ApiError::not_found(format!("no agent '{instance}' serves {model} in {environment}")));
        };
        sqlx::query("UPDATE fleet_agents SET removed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        transition(&mut tx, row.id, now, "removed", row.counter, row.version).await?;
        let before = json!({ "group": row.grp, "state": row.state, "version": row.version, "counter": row.counter });
        tx.commit(
            caller,
            Change::new(AuditAction::AgentRemove, Target::agent(model, environment, instance)).before(&before),
        )
        .await?;
        self.decide_rollout(ids, model, environment).await
    }
}
