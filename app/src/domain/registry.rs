//! Models and their versions: what the registry stores and what clients send to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EnvironmentHealth, KeyMetricTrend, LiveVersion};

/// A registered model with its live version in each environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Model {
    pub name: String,
    pub description: String,
    pub owner_team: String,
    pub tags: Vec<String>,
    pub version_count: i64,
    pub latest_version: Option<i64>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    /// One entry per environment, in the environments' display order.
    pub live: Vec<LiveVersion>,
    /// The guardrail health of each live version, where it has been evaluated.
    #[serde(default)]
    pub health: Vec<EnvironmentHealth>,
    /// In the models list only: the key metric across the newest versions that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_metric: Option<KeyMetricTrend>,
}

/// Where a version came from: the training run, code and data that produced it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Lineage {
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub git_commit: Option<String>,
    pub dataset_ref: Option<String>,
    pub dataset_hash: Option<String>,
    /// The version number of this model that this one was derived from.
    pub parent_version: Option<i64>,
}

/// Why and by whom a version was blocked from deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Quarantine {
    pub reason: String,
    pub at: String,
    pub by: String,
}

/// One registered version of a model. Everything but `description` and `tags` is immutable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Version {
    pub model: String,
    pub number: i64,
    pub artifact_uri: String,
    /// `sha256:` followed by 64 lower-case hex digits; a version without one cannot be deployed.
    pub artifact_digest: Option<String>,
    /// The artifact store's directory holding this version's files, when the registry holds them:
    /// `artifact_digest` was then computed by the server over that directory's file list.
    #[serde(default)]
    pub artifact_root: Option<String>,
    pub framework: String,
    pub parameters: BTreeMap<String, String>,
    pub lineage: Lineage,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub quarantine: Option<Quarantine>,
    /// Environments where this version is live now.
    pub live_in: Vec<String>,
    /// Its guardrail health in each environment where it has been evaluated.
    #[serde(default)]
    pub health: Vec<EnvironmentHealth>,
}

impl Version {
    /// Why this version may not be deployed, if it may not.
    pub fn deploy_blocker(&self) -> Option<String> {
        if let Some(q) = &self.quarantine {
            return Some(format!("version {} is quarantined: {}", self.number, q.reason));
        }
        if self.artifact_digest.is_none() {
            return Some(format!("version {} has no artifact digest", self.number));
        }
        None
    }
}

/// Body of `POST /api/v1/models`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// Lower-case letters, digits, `-` and `_`; starts with a letter or digit; at most 64 characters.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner_team: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Body of `POST /api/v1/models/{model}/versions`; the server assigns the number.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    pub artifact_uri: String,
    /// `sha256:<64 hex>` or 64 bare hex digits.
    #[serde(default)]
    pub artifact_digest: Option<String>,
    #[serde(default)]
    pub framework: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub lineage: Lineage,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Body of `PATCH …/versions/{n}`: the editable fields; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VersionPatch {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Attaches the digest of a version registered without one (e.g. through the MLflow API);
    /// write-once: a version's digest is never changed.
    #[serde(default)]
    pub artifact_digest: Option<String>,
}

/// Body of `POST …/versions/{n}/quarantine`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuarantineInput {
    pub reason: String,
}

/// One file of a version the registry holds: its path below the version's root, size in bytes and
/// sha256 (hex), as the server computed it while the file streamed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionFile {
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

/// Response of `GET /api/v1/models/{model}/versions/{version}/files`: where the version's files
/// are and its digest, with whom the digest came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionFiles {
    /// `mlflow-artifacts:/<root>` when the registry holds the files, else the version's own URI.
    pub artifact_uri: String,
    pub artifact_digest: Option<String>,
    /// True when the server computed `artifact_digest` over `files` (see docs/mlflow.md), false
    /// when the client supplied it for files kept elsewhere.
    pub digest_computed_by_server: bool,
    /// Empty when the files are kept elsewhere.
    pub files: Vec<VersionFile>,
}

/// Percent-encodes everything but letters, digits and `-._~`: a model name as one segment of a
/// URL path (`iris clf v2` → `iris%20clf%20v2`), or a query value.
pub fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
