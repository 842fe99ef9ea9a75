//! The serving fleet: signed assignments of live versions, what agents report they serve, how far
//! a live-version change has spread through the fleet, and an environment's state at a moment.

use serde::{Deserialize, Serialize};

/// What an agent must serve in one (model, environment): the live version, where its files are and
/// their digest, numbered by a counter that only goes up, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// Always `modelgate.assignment/v1`.
    #[serde(rename = "type")]
    pub kind: String,
    pub model: String,
    pub environment: String,
    pub version: i64,
    /// The live version's revision: every change of it, a rollback too, gets a higher one.
    pub counter: i64,
    /// `models:/<model>/<version>` when Modelgate's artifact store holds the files (fetched through
    /// `GET /api/v1/models/{m}/versions/{n}/files`), else the URI the version was registered with.
    pub artifact_uri: String,
    /// `sha256:<hex>` of the files' `sha256sum` listing (see the README's "Digests").
    pub digest: Option<String>,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339; an agent refuses an assignment past it.
    pub expires_at: String,
}

/// The kind tag of this assignment format.
pub const ASSIGNMENT_KIND: &str = "modelgate.assignment/v1";

/// An assignment as sent: its JSON bytes exactly as signed, the Ed25519 signature over them and
/// the key that made it. Agents verify `payload` and only then parse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SignedAssignment {
    /// The [`Assignment`] as canonical JSON (RFC 8785).
    pub payload: String,
    /// Base64 Ed25519 signature of `payload`'s UTF-8 bytes.
    pub signature: String,
    /// The first 16 hex digits of the sha256 of the public key (as published under `/api/v1/fleet/keys`).
    pub key_id: String,
}

/// What an agent is doing with an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Fetching the assignment's files.
    Downloading,
    /// Serving the assignment's version, its digest verified.
    Ready,
    /// The assignment could not be served (`error` says why); the agent keeps serving what it had.
    Failed,
    /// Silent for three heartbeats (set by the server, never reported).
    Lost,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Downloading => "downloading",
            AgentState::Ready => "ready",
            AgentState::Failed => "failed",
            AgentState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<AgentState> {
        [AgentState::Downloading, AgentState::Ready, AgentState::Failed, AgentState::Lost]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// Body of `PUT /api/v1/models/{m}/environments/{e}/agents/{instance}`: a report, also the heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// Where the instance runs: a region, a cluster.
    pub group: String,
    /// The counter of the assignment this report is about (0 before the first).
    pub counter: i64,
    /// The version the instance serves now (while downloading or failed: the one it still serves).
    pub version: Option<i64>,
    /// The digest the agent computed over the files it serves.
    #[serde(default)]
    pub digest: Option<String>,
    pub state: AgentState,
    /// Why the assignment failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Seconds until the next report at the latest (5 to 300); three missed make the agent lost.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u32,
}

pub fn default_heartbeat() -> u32 {
    10
}

/// One serving instance as last reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Agent {
    pub instance: String,
    pub group: String,
    pub state: AgentState,
    pub counter: i64,
    pub version: Option<i64>,
    pub digest: Option<String>,
    pub error: Option<String>,
    pub heartbeat_seconds: u32,
    /// RFC 3339.
    pub last_seen: String,
    /// When it entered its current state (RFC 3339).
    pub since: String,
}

/// How far a live-version change has spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Published; no agent has reported it yet (or none reports in this environment).
    Issued,
    /// Some agents serve it, not all.
    Propagating,
    /// Every known agent serves it.
    Converged,
    /// The deadline passed with stragglers; becomes converged if they catch up.
    PartiallyConverged,
    /// A later change replaced it before it converged.
    Superseded,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Issued => "issued",
            RolloutState::Propagating => "propagating",
            RolloutState::Converged => "converged",
            RolloutState::PartiallyConverged => "partially_converged",
            RolloutState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<RolloutState> {
        [
            RolloutState::Issued,
            RolloutState::Propagating,
            RolloutState::Converged,
            RolloutState::PartiallyConverged,
            RolloutState::Superseded,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }

    /// The state in words for the console.
    pub fn label(self) -> &'static str {
        match self {
            RolloutState::Issued => "issued",
            RolloutState::Propagating => "propagating",
            RolloutState::Converged => "converged",
            RolloutState::PartiallyConverged => "partially converged",
            RolloutState::Superseded => "superseded",
        }
    }
}

/// The spread of one live-version change (one revision) through the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Rollout {
    pub model: String,
    pub environment: String,
    pub revision: i64,
    pub version: i64,
    pub state: RolloutState,
    pub issued_at: String,
    /// When it becomes partially converged unless every agent serves it by then.
    pub deadline_at: String,
    pub converged_at: Option<String>,
    /// Agents serving it, and all known agents, when the state was last decided.
    pub serving: u32,
    pub agents: u32,
    /// Instances not serving it (partially converged).
    #[serde(default)]
    pub stragglers: Vec<String>,
}

/// How many instances of one group serve one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionCount {
    /// `None`: serving nothing yet.
    pub version: Option<i64>,
    pub instances: u32,
}

/// One group's instances by the version they serve, and how many are lost or failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupCount {
    pub group: String,
    pub instances: u32,
    /// Instances not lost by the version they serve: the live one first, then the most served.
    pub serving: Vec<VersionCount>,
    pub downloading: u32,
    pub failed: u32,
    pub lost: u32,
}

/// `GET …/environments/{env}/fleet`: the live version's rollout and every agent, by group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Fleet {
    pub model: String,
    pub environment: String,
    pub live_version: Option<i64>,
    pub rollout: Option<Rollout>,
    pub groups: Vec<GroupCount>,
    pub agents: Vec<Agent>,
}

impl Fleet {
    /// `37 of 40 on v4 · 3 on v6 in eu-west` for each group.
    pub fn summaries(&self) -> Vec<String> {
        self.groups.iter().map(GroupCount::summary).collect()
    }

    /// Takes an agent's new report (or its going lost) into the fleet and its counts.
    pub fn apply(&mut self, agent: Agent) {
        match self.agents.iter_mut().find(|a| a.instance == agent.instance) {
            Some(known) => *known = agent,
            None => {
                self.agents.push(agent);
                self.agents.sort_by(|a, b| (&a.group, &a.instance).cmp(&(&b.group, &b.instance)));
            }
        }
        let members = self.agents.iter().map(|a| (a.group.as_str(), a.state, a.version));
        self.groups = group_counts(members, self.live_version);
    }
}

/// Instances counted by group, from (group, state, version served) of each: in each group the
/// versions served by instances not lost, `live_version` first, then the most served.
pub fn group_counts<'a>(
    members: impl IntoIterator<Item = (&'a str, AgentState, Option<i64>)>,
    live_version: Option<i64>,
) -> Vec<GroupCount> {
    let mut groups: std::collections::BTreeMap<&str, (GroupCount, Vec<Option<i64>>)> = Default::default();
    for (group, state, version) in members {
        let (count, versions) = groups.entry(group).or_insert_with(|| {
            let empty = GroupCount {
                group: group.to_string(),
                instances: 0,
                serving: Vec::new(),
                downloading: 0,
                failed: 0,
                lost: 0,
            };
            (empty, Vec::new())
        });
        count.instances += 1;
        match state {
            AgentState::Lost => count.lost += 1,
            AgentState::Downloading => count.downloading += 1,
            AgentState::Failed => count.failed += 1,
            AgentState::Ready => {}
        }
        if state != AgentState::Lost {
            versions.push(version);
        }
    }
    groups
        .into_values()
        .map(|(mut count, versions)| {
            count.serving = by_version(versions, live_version);
            count
        })
        .collect()
}

/// Instances by the version they serve: `first` first, then the most served.
fn by_version(versions: Vec<Option<i64>>, first: Option<i64>) -> Vec<VersionCount> {
    let mut counts: std::collections::BTreeMap<Option<i64>, u32> = Default::default();
    for version in versions {
        *counts.entry(version).or_default() += 1;
    }
    let mut serving: Vec<VersionCount> =
        counts.into_iter().map(|(version, instances)| VersionCount { version, instances }).collect();
    serving.sort_by_key(|c| (first.is_none() || c.version != first, std::cmp::Reverse(c.instances), c.version));
    serving
}

impl GroupCount {
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (i, count) in self.serving.iter().enumerate() {
            let version = count.version.map_or_else(|| "nothing".to_string(), |v| format!("v{v}"));
            parts.push(if i == 0 {
                format!("{} of {} on {version}", count.instances, self.instances)
            } else {
                format!("{} on {version}", count.instances)
            });
        }
        if self.serving.is_empty() {
            parts.push(format!("0 of {} ready", self.instances));
        }
        for (n, what) in [(self.downloading, "downloading"), (self.failed, "failed"), (self.lost, "lost")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!("{} in {}", parts.join(" · "), self.group)
    }
}

/// `GET …/environments/{env}/state?at=`: what was live at `at` and what the fleet served then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EnvironmentState {
    pub model: String,
    pub environment: String,
    pub at: String,
    /// The live version at `at` and the change that made it live.
    pub live_version: Option<i64>,
    pub revision: i64,
    pub since: Option<String>,
    pub groups: Vec<GroupCount>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_reads_as_counts_by_version() {
        let group = GroupCount {
            group: "eu-west".into(),
            instances: 40,
            serving: vec![
                VersionCount { version: Some(4), instances: 37 },
                VersionCount { version: Some(6), instances: 3 },
            ],
            downloading: 0,
            failed: 0,
            lost: 0,
        };
        assert_eq!(group.summary(), "37 of 40 on v4 · 3 on v6 in eu-west");
        let group = GroupCount { serving: vec![VersionCount { version: Some(4), instances: 38 }], lost: 2, ..group };
        assert_eq!(group.summary(), "38 of 40 on v4 · 2 lost in eu-west");
    }

    #[test]
    fn instances_are_counted_by_group_the_live_version_first() {
        use AgentState::*;
        let members = [
            ("eu", Ready, Some(6)),
            ("eu", Ready, Some(4)),
            ("eu", Downloading, Some(6)),
            ("eu", Lost, Some(6)),
            ("us", Failed, None),
            ("eu", Ready, Some(6)),
        ];
        let groups = group_counts(members, Some(4));
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].summary(), "1 of 5 on v4 · 3 on v6 · 1 downloading · 1 lost in eu");
        assert_eq!(groups[1].summary(), "1 of 1 on nothing · 1 failed in us");
    }
}
