//! The fleet as read: every agent of a (model, environment) counted by group and version with the
//! live version's rollout, and the state of an environment at a past moment, rebuilt from the
//! history of changes and the agents' transitions.

use std::collections::{BTreeMap, HashMap};

use app::backend::Fleets;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;

use super::rollout::latest_change;
use super::{AGENT_COLUMNS, AgentRow, ids};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::store::Store;

/// Instances by the version they serve: `first` (the live version) first, then the most served.
fn by_version(versions: impl IntoIterator<Item = Option<i64>>, first: Option<i64>) -> Vec<VersionCount> {
    let mut counts: BTreeMap<Option<i64>, u32> = BTreeMap::new();
    for version in versions {
        *counts.entry(version).or_default() += 1;
    }
    let mut serving: Vec<VersionCount> =
        counts.into_iter().map(|(version, instances)| VersionCount { version, instances }).collect();
    serving.sort_by_key(|c| (first.is_none() || c.version != first, std::cmp::Reverse(c.instances), c.version));
    serving
}

/// Counts of one group's instances in each state.
#[derive(Default)]
struct Tally {
    instances: u32,
    serving: Vec<Option<i64>>,
    downloading: u32,
    failed: u32,
    lost: u32,
}

impl Tally {
    fn into_group(self, group: String, live_version: Option<i64>) -> GroupCount {
        GroupCount {
            group,
            instances: self.instances,
            serving: by_version(self.serving, live_version),
            downloading: self.downloading,
            failed: self.failed,
            lost: self.lost,
        }
    }

    fn add(&mut self, state: AgentState, version: Option<i64>) {
        self.instances += 1;
        match state {
            AgentState::Lost => self.lost += 1,
            AgentState::Downloading => self.downloading += 1,
            AgentState::Failed => self.failed += 1,
            AgentState::Ready => {}
        }
        if state != AgentState::Lost {
            self.serving.push(version);
        }
    }
}

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
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        for agent in &agents {
            tallies.entry(&agent.group).or_default().add(agent.state, agent.version);
        }
        let groups = tallies.into_iter().map(|(group, t)| t.into_group(group.to_string(), live_version)).collect();
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
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        for (group, state, version) in latest.into_values() {
            if let Some(state) = AgentState::parse(&state) {
                tallies.entry(group).or_default().add(state, version);
            }
        }
        let live_version = live.map(|(version, ..)| version);
        Ok(EnvironmentState {
            model: model.into(),
            environment: environment.into(),
            at: rfc3339(at_ms),
            live_version,
            revision: live.map_or(0, |(_, revision, _)| revision),
            since: live.map(|(.., created_at)| rfc3339(created_at)),
            groups: tallies.into_iter().map(|(group, t)| t.into_group(group, live_version)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_version_is_counted_first_then_the_most_served() {
        let counts = by_version([Some(6), Some(4), Some(6), None, Some(6), Some(4), Some(5)], Some(4));
        let order: Vec<_> = counts.iter().map(|c| (c.version, c.instances)).collect();
        assert_eq!(order, [(Some(4), 2), (Some(6), 3), (None, 1), (Some(5), 1)]);
    }
}
