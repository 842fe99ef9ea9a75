//! A live-version change's rollout through the fleet: issued with a deadline from the
//! environment's policy, propagating once agents take it, converged when every known agent serves
//! it, partially converged past the deadline (converged later if the stragglers catch up) — each
//! transition decided by a conditional update, audited, stored as an event, and the outcomes sent
//! to webhooks; and the sweep that marks silent agents lost and rollouts past their deadline.

use std::collections::BTreeSet;

use app::domain::*;
use app::error::ApiError;
use serde_json::json;
use sqlx::AnyConnection;

use super::{ids, transition};
use crate::audit::{AuditActor, Change, Target};
use crate::clock::rfc3339;
use crate::store::{Store, from_json, to_json};
use crate::webhooks::{self, Subject};

/// A history row: one change of a live version, and its rollout.
#[derive(sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub(crate) id: i64,
    pub(crate) model: String,
    pub(crate) environment: String,
    pub(crate) revision: i64,
    pub(crate) from_version: Option<i64>,
    pub(crate) to_version: i64,
    pub(crate) kind: String,
    pub(crate) reason: String,
    pub(crate) actor: String,
    pub(crate) created_at: i64,
    pub(crate) request_id: Option<i64>,
    pub(crate) fleet_state: Option<String>,
    pub(crate) deadline_at: Option<i64>,
    pub(crate) converged_at: Option<i64>,
    pub(crate) fleet_serving: i64,
    pub(crate) fleet_agents: i64,
    pub(crate) stragglers: String,
}

/// The columns a [`HistoryRow`] reads from `deployment_history h` joined with `models m` and `environments e`.
pub(crate) const HISTORY_COLUMNS: &str = "h.id, m.name AS model, e.name AS environment, h.revision, h.from_version, \
     h.to_version, h.kind, h.reason, h.actor, h.created_at, h.request_id, h.fleet_state, h.deadline_at, \
     h.converged_at, h.fleet_serving, h.fleet_agents, h.stragglers";

impl HistoryRow {
    pub(crate) fn into_event(self) -> DeploymentEvent {
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
            rollout: self.fleet_state.as_deref().and_then(RolloutState::parse),
            converged_at: self.converged_at.map(rfc3339),
        }
    }

    /// The rollout, when this change is tracked.
    pub(crate) fn rollout(&self) -> Option<Rollout> {
        Some(Rollout {
            model: self.model.clone(),
            environment: self.environment.clone(),
            revision: self.revision,
            version: self.to_version,
            state: RolloutState::parse(self.fleet_state.as_deref()?)?,
            issued_at: rfc3339(self.created_at),
            deadline_at: rfc3339(self.deadline_at.unwrap_or(self.created_at)),
            converged_at: self.converged_at.map(rfc3339),
            serving: self.fleet_serving as u32,
            agents: self.fleet_agents as u32,
            stragglers: from_json(&self.stragglers),
        })
    }
}

/// The latest change of a (model, environment) with its rollout; `open` only: one not yet decided.
pub(crate) async fn latest_change(
    conn: &mut AnyConnection,
    (model_id, env_id): (i64, i64),
    open: bool,
) -> Result<Option<HistoryRow>, ApiError> {
    let only_open = if open { "AND h.fleet_state IN ('issued', 'propagating', 'partially_converged')" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {HISTORY_COLUMNS} FROM deployment_history h \
         JOIN models m ON m.id = h.model_id JOIN environments e ON e.id = h.environment_id \
         WHERE h.model_id = $1 AND h.environment_id = $2 {only_open} ORDER BY h.revision DESC LIMIT 1"
    ))
    .bind(model_id)
    .bind(env_id)
    .fetch_optional(conn)
    .await
    .map_err(ApiError::from)
}

/// Opens the rollout of the change `event` just made (its history row written), superseding any
/// earlier one still open; its deadline is the environment's policy's.
pub async fn open_rollout(conn: &mut AnyConnection, event: &DeploymentEvent, now: i64) -> Result<(), ApiError> {
    let (model_id, env_id) = ids(conn, &event.model, &event.environment).await?;
    sqlx::query(
        "UPDATE deployment_history SET fleet_state = 'superseded' WHERE model_id = $1 AND environment_id = $2 \
         AND revision < $3 AND fleet_state IN ('issued', 'propagating', 'partially_converged')",
    )
    .bind(model_id)
    .bind(env_id)
    .bind(event.revision)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE deployment_history SET fleet_state = 'issued', deadline_at = $4 + 1000 * COALESCE(\
         (SELECT convergence_deadline_seconds FROM rollback_policies WHERE environment_id = $2), 300) \
         WHERE model_id = $1 AND environment_id = $2 AND revision = $3",
    )
    .bind(model_id)
    .bind(env_id)
    .bind(event.revision)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many known agents there are, serve the change, and have at least taken it up.
struct Spread {
    agents: i64,
    serving: i64,
    reached: i64,
}

async fn spread(
    conn: &mut AnyConnection,
    (model_id, env_id): (i64, i64),
    change: &HistoryRow,
) -> Result<Spread, ApiError> {
    let (agents, serving, reached): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), \
         SUM(CASE WHEN state = 'ready' AND version = $3 AND counter >= $4 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN counter >= $4 THEN 1 ELSE 0 END) \
         FROM fleet_agents WHERE model_id = $1 AND environment_id = $2 AND removed_at IS NULL",
    )
    .bind(model_id)
    .bind(env_id)
    .bind(change.to_version)
    .bind(change.revision)
    .fetch_one(conn)
    .await?;
    Ok(Spread { agents, serving: serving.unwrap_or(0), reached: reached.unwrap_or(0) })
}

/// The state a rollout is in given its spread and whether its deadline has passed.
fn decide(current: RolloutState, spread: &Spread, overdue: bool) -> RolloutState {
    if spread.agents > 0 && spread.serving == spread.agents {
        RolloutState::Converged
    } else if current == RolloutState::PartiallyConverged || (overdue && spread.agents > 0) {
        RolloutState::PartiallyConverged
    } else if spread.reached > 0 {
        RolloutState::Propagating
    } else {
        RolloutState::Issued
    }
}

/// An agent the sweep found silent.
#[derive(sqlx::FromRow)]
struct LostAgent {
    id: i64,
    model: String,
    environment: String,
    instance: String,
    grp: String,
    counter: i64,
    version: Option<i64>,
    changed_at: i64,
}

impl Store {
    /// Decides the open rollout of a (model, environment) again, recording a transition if its
    /// state changed.
    pub(crate) async fn decide_rollout(&self, ids: (i64, i64), model: &str, environment: &str) -> Result<(), ApiError> {
        // A decision made on what another decider has just changed is lost and made again on what
        // is there now, so the last report always counts.
        for _ in 0..5 {
            if self.try_decide_rollout(ids, model, environment).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One decision; `false` when another decider changed the state first.
    async fn try_decide_rollout(&self, ids: (i64, i64), model: &str, environment: &str) -> Result<bool, ApiError> {
        let now = self.clock.now_ms();
        let mut conn = self.conn().await?;
        let Some(change) = latest_change(&mut conn, ids, true).await? else { return Ok(true) };
        let Some(current) = change.fleet_state.as_deref().and_then(RolloutState::parse) else { return Ok(true) };
        let spread = spread(&mut conn, ids, &change).await?;
        let next = decide(current, &spread, change.deadline_at.is_some_and(|d| now >= d));
        if next == current {
            return Ok(true);
        }
        let stragglers: Vec<String> = if next == RolloutState::PartiallyConverged {
            sqlx::query_scalar(
                "SELECT instance FROM fleet_agents WHERE model_id = $1 AND environment_id = $2 AND removed_at IS NULL \
                 AND NOT (state = 'ready' AND version = $3 AND counter >= $4) ORDER BY instance LIMIT 100",
            )
            .bind(ids.0)
            .bind(ids.1)
            .bind(change.to_version)
            .bind(change.revision)
            .fetch_all(&mut *conn)
            .await?
        } else {
            Vec::new()
        };
        drop(conn);
        let converged_at = (next == RolloutState::Converged).then_some(now);
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE deployment_history SET fleet_state = $1, fleet_serving = $2, fleet_agents = $3, stragglers = $4, \
             converged_at = $5 WHERE id = $6 AND fleet_state = $7",
        )
        .bind(next.as_str())
        .bind(spread.serving)
        .bind(spread.agents)
        .bind(to_json(&stragglers))
        .bind(converged_at)
        .bind(change.id)
        .bind(current.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        let change = HistoryRow {
            fleet_state: Some(next.as_str().to_string()),
            fleet_serving: spread.serving,
            fleet_agents: spread.agents,
            stragglers: to_json(&stragglers),
            converged_at,
            ..change
        };
        let rollout = change.rollout().ok_or_else(ApiError::internal)?;
        let action = match next {
            RolloutState::Converged => AuditAction::RolloutConverged,
            RolloutState::PartiallyConverged => AuditAction::RolloutPartiallyConverged,
            _ => AuditAction::RolloutPropagating,
        };
        let audit = Change::new(action, Target::deployment(model, environment))
            .before(&json!({ "state": current, "revision": rollout.revision }))
            .after(&rollout);
        tx.record(AuditActor::system("fleet"), audit).await?;
        let (id, at) = tx.store_event(ServerEvent::Rollout { rollout: rollout.clone() }).await?;
        if matches!(next, RolloutState::Converged | RolloutState::PartiallyConverged) {
            let deployment = change.into_event();
            webhooks::enqueue(&mut tx, id, &Subject::Rollout(&deployment, &rollout), &rfc3339(at), at).await?;
        }
        tx.finish().await?;
        Ok(true)
    }

    /// Marks agents silent for three heartbeats lost (a transition and an audit entry each) and
    /// decides every rollout they or a passed deadline concern; every replica runs it each second,
    /// the conditional updates keep it to one. Returns how many agents went lost.
    pub async fn sweep_fleet(&self) -> Result<usize, ApiError> {
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let lost: Vec<LostAgent> = sqlx::query_as(
            "UPDATE fleet_agents SET state = 'lost', changed_at = last_seen + 3 * heartbeat_ms \
             WHERE removed_at IS NULL AND state <> 'lost' AND last_seen + 3 * heartbeat_ms < $1 \
             RETURNING id, (SELECT name FROM models WHERE id = model_id) AS model, \
             (SELECT name FROM environments WHERE id = environment_id) AS environment, instance, grp, counter, version, \
             changed_at",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut touched = BTreeSet::new();
        for agent in &lost {
            transition(&mut tx, agent.id, agent.changed_at, "lost", agent.counter, agent.version).await?;
            let after = json!({
                "group": agent.grp, "counter": agent.counter, "version": agent.version,
                "lost_at": rfc3339(agent.changed_at),
            });
            let target = Target::agent(&agent.model, &agent.environment, &agent.instance);
            tx.record(AuditActor::system("fleet"), Change::new(AuditAction::AgentLost, target).after(&after)).await?;
            touched.insert((agent.model.clone(), agent.environment.clone()));
        }
        if !lost.is_empty() {
            tx.finish().await?;
        } else {
            drop(tx);
        }
        let mut conn = self.conn().await?;
        let overdue: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.name, e.name FROM deployment_history h \
             JOIN models m ON m.id = h.model_id JOIN environments e ON e.id = h.environment_id \
             WHERE h.fleet_state IN ('issued', 'propagating') AND h.deadline_at <= $1 AND EXISTS \
             (SELECT 1 FROM fleet_agents a WHERE a.model_id = h.model_id AND a.environment_id = h.environment_id \
              AND a.removed_at IS NULL)",
        )
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        touched.extend(overdue);
        for (model, environment) in &touched {
            let ids = ids(&mut conn, model, environment).await?;
            self.decide_rollout(ids, model, environment).await?;
        }
        drop(conn);
        let went_lost = lost.len();
        for lost in lost {
            let agent = Agent {
                instance: lost.instance,
                group: lost.grp,
                state: AgentState::Lost,
                counter: lost.counter,
                version: lost.version,
                digest: None,
                error: None,
                heartbeat_seconds: 0,
                last_seen: rfc3339(lost.changed_at),
                since: rfc3339(lost.changed_at),
            };
            self.agent_changed(&lost.model, &lost.environment, agent).await;
        }
        Ok(went_lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_converges_only_when_every_known_agent_serves_it() {
        let spread = |agents, serving, reached| Spread { agents, serving, reached };
        use RolloutState::*;
        assert_eq!(decide(Issued, &spread(0, 0, 0), true), Issued, "no fleet: nothing to converge");
        assert_eq!(decide(Issued, &spread(20, 0, 3), false), Propagating);
        assert_eq!(decide(Propagating, &spread(20, 19, 20), false), Propagating);
        assert_eq!(decide(Propagating, &spread(20, 20, 20), false), Converged);
        assert_eq!(decide(Propagating, &spread(20, 19, 19), true), PartiallyConverged);
        assert_eq!(decide(PartiallyConverged, &spread(20, 19, 20), false), PartiallyConverged);
        assert_eq!(decide(PartiallyConverged, &spread(20, 20, 20), true), Converged, "stragglers caught up");
    }
}
