//! What subscribers of `GET /api/v1/events` (consoles, deploy systems) and webhooks are told.

use serde::{Deserialize, Serialize};

use super::{Agent, DeploymentEvent, Health, RollbackRequest, Rollout};

/// Something that happened. Every kind but `metrics` and `agent` is durable: numbered in commit order, stored,
/// and replayed to a subscriber that reconnects with `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// New points were stored for these keys of a version.
    Metrics { model: String, version: i64, keys: Vec<String>, points: usize },
    /// A version's health in an environment changed.
    Health { model: String, version: i64, environment: String, health: Health, previous: Health },
    /// A live version changed: deploy, rollback or break glass (`deployment.kind`).
    Deployment { deployment: DeploymentEvent },
    /// A rollback request was filed, reviewed or closed, or a break glass acknowledged.
    Rollback { request: RollbackRequest },
    /// A live-version change spread further: propagating, converged, partially converged.
    Rollout { rollout: Rollout },
    /// An agent reported a new state, counter or version, or went lost (not stored: a measurement).
    Agent { model: String, environment: String, agent: Agent },
}

impl ServerEvent {
    /// The SSE event name, also the `types` filter value.
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::Metrics { .. } => "metrics",
            ServerEvent::Health { .. } => "health",
            ServerEvent::Deployment { .. } => "deployment",
            ServerEvent::Rollback { .. } => "rollback",
            ServerEvent::Rollout { .. } => "rollout",
            ServerEvent::Agent { .. } => "agent",
        }
    }

    pub fn model(&self) -> &str {
        match self {
            ServerEvent::Metrics { model, .. } | ServerEvent::Health { model, .. } => model,
            ServerEvent::Deployment { deployment } => &deployment.model,
            ServerEvent::Rollback { request } => &request.model,
            ServerEvent::Rollout { rollout } => &rollout.model,
            ServerEvent::Agent { model, .. } => model,
        }
    }

    pub fn environment(&self) -> Option<&str> {
        match self {
            ServerEvent::Metrics { .. } => None,
            ServerEvent::Health { environment, .. } => Some(environment),
            ServerEvent::Deployment { deployment } => Some(&deployment.environment),
            ServerEvent::Rollback { request } => Some(&request.environment),
            ServerEvent::Rollout { rollout } => Some(&rollout.environment),
            ServerEvent::Agent { environment, .. } => Some(environment),
        }
    }

    /// The version it concerns: for a live-version change, the versions before and after.
    pub fn concerns_version(&self, version: i64) -> bool {
        match self {
            ServerEvent::Metrics { version: v, .. } | ServerEvent::Health { version: v, .. } => *v == version,
            ServerEvent::Deployment { deployment } => {
                deployment.to_version == version || deployment.from_version == Some(version)
            }
            ServerEvent::Rollback { request } => request.to_version == version || request.from_version == version,
            ServerEvent::Rollout { rollout } => rollout.version == version,
            ServerEvent::Agent { agent, .. } => agent.version == Some(version),
        }
    }

    /// Whether it is stored and numbered (everything but metric points and agent reports, which
    /// only say "refresh").
    pub fn durable(&self) -> bool {
        !matches!(self, ServerEvent::Metrics { .. } | ServerEvent::Agent { .. })
    }
}
