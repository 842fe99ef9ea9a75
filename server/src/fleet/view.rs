//! The fleet as read: every agent of a (model, environment) counted by group and version with the
//! live version's rollout, and the state of an environment at a past moment, rebuilt from the
//! history of changes and the agents' transitions.

use std::collections::HashMap;

use app::backend::Fleets;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;

use super::rollout::latest_change;
use super::{AGENT_COLUMNS, AgentRow, ids};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::store::Store;

#[async_trait]
impl Fleets for Store {
    async fn fleet(&self, caller: &Caller, model: &str, environment: &str) -> Result<Fleet, ApiError> {
        caller.require(Permission::Read)?;
        let now = self.clock.now_ms();
        let mut conn = self.conn().await?;
        let ids = ids(&mut conn, model, environment).await?;
        let rows: Vec<AgentRow> = sqlx::query_as(&format!(
            "SELECT {AGENT_COLUMNS} FROM fleet_agents WHERE model_id = $1 AND environment_id = $2 \
             AND removed_at IS NULL ORDER BY grp, instance"
        ))
        .bind(ids.0)
        .bind(ids.1)
        .fetch_all(&mut *conn)
        .await?;
        let live_version: Option<i64> =
            sqlx::query_scalar("SELECT version_number FROM deployments WHERE model_id = $1 AND environment_id = $2")
                .bind(ids.0)
                .bind(ids.1)
                .fetch_optional(&mut *conn)
                .await?;
        let rollout = latest_change(&mut conn, ids, false).await?.and_then(|c| c.rollout());
        let agents: Vec<Agent> = rows.into_iter().map(|r| r.into_agent(now)).collect();
        let groups = group_counts(agents.iter().map(|a| (a.group.as_str(), a.state, a.version)), live_version);
        Ok(Fleet { model: model.into(), environment: environment.into(), live_version, rollout, groups, agents })
    }

    async fn environment_state(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        at: &str,
    ) -> Result<EnvironmentState, ApiError> {
        caller.require(Permission::Read)?;
        let at_ms = parse_rfc3339("at", at)?;
        let mut conn = self.conn().await?;
        let ids = ids(&mut conn, model, environment).await?;
        let live: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT to_version, revision, created_at FROM deployment_history \
             WHERE model_id = $1 AND environment_id = $2 AND created_at <= $3 ORDER BY revision DESC LIMIT 1",
        )
        .bind(ids.0)
        .bind(ids.1)
        .bind(at_ms)
        .fetch_optional(&mut *conn)
        .await?;
        // Each agent's last transition at or before the moment (ties: the later row).
        let rows: Vec<(i64, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT t.agent_id, a.grp, t.state, t.version FROM fleet_transitions t \
             JOIN fleet_agents a ON a.id = t.agent_id \
             WHERE a.model_id = $1 AND a.environment_id = $2 AND t.at = \
             (SELECT MAX(u.at) FROM fleet_transitions u WHERE u.agent_id = t.agent_id AND u.at <= $3)",
        )
        .bind(ids.0)
        .bind(ids.1)
        .bind(at_ms)
        .fetch_all(&mut *conn)
        .await?;
        let latest: HashMap<i64, (String, String, Option<i64>)> =
            rows.into_iter().map(|(agent, group, state, version)| (agent, (group, state, version))).collect();
        let members = latest
            .values()
            .filter_map(|(group, state, version)| Some((group.as_str(), AgentState::parse(state)?, *version)));
        let live_version = live.map(|(version, ..)| version);
        let groups = group_counts(members, live_version);
        Ok(EnvironmentState {
            model: model.into(),
            environment: environment.into(),
            at: rfc3339(at_ms),
            live_version,
            revision: live.map_or(0, |(_, revision, _)| revision),
            since: live.map(|(.., created_at)| rfc3339(created_at)),
            groups,
        })
    }
}
