//! Environments, the live version of a model in each, and the history of every change of it.

use serde::{Deserialize, Serialize};

/// A place a model version can be live in, such as `staging` or `production`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Environment {
    pub name: String,
    pub description: String,
    pub created_at: String,
}

/// Body of `POST /api/v1/environments`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The live version of a model in one environment. `revision` counts its changes and is the ETag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LiveVersion {
    pub model: String,
    pub environment: String,
    /// `None` while nothing was ever deployed there.
    pub version: Option<i64>,
    pub revision: i64,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

/// How a live version changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    Deploy,
    Rollback,
    BreakGlass,
}

impl DeploymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::BreakGlass => "break_glass",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deploy" => Some(DeploymentKind::Deploy),
            "rollback" => Some(DeploymentKind::Rollback),
            "break_glass" => Some(DeploymentKind::BreakGlass),
            _ => None,
        }
    }
}

/// One change of a live version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeploymentEvent {
    pub model: String,
    pub environment: String,
    /// The live version's revision after this change.
    pub revision: i64,
    pub from_version: Option<i64>,
    pub to_version: i64,
    pub kind: DeploymentKind,
    pub reason: String,
    pub actor: String,
    pub created_at: String,
    /// The rollback request this change executed, if any.
    #[serde(default)]
    pub request: Option<i64>,
    /// How far this change has spread through the serving fleet (none: made before agents were
    /// tracked, or no agent reported while it was live).
    #[serde(default)]
    pub rollout: Option<super::RolloutState>,
    /// When every agent served it.
    #[serde(default)]
    pub converged_at: Option<String>,
}

/// Body of `POST …/environments/{env}/deploy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeployInput {
    pub version: i64,
    #[serde(default)]
    pub reason: String,
    /// When given, the deploy happens only if the live revision still equals it (compare-and-swap).
    #[serde(default)]
    pub expected_revision: Option<i64>,
}
