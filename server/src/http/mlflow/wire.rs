//! MLflow's REST messages, as JSON: what its clients send and what they parse back.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The tag that carries a version's (or a logged model's) artifact digest.
pub const DIGEST_TAG: &str = "modelgate.artifact_digest";

/// A key with a value: run params and tags, experiment, model and version tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: &'static str,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: &'static str,
}

/// A metric point with its key, as sent and as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedMetric {
    pub key: String,
    #[serde(deserialize_with = "number", serialize_with = "protobuf_double")]
    pub value: f64,
    #[serde(deserialize_with = "integer")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "integer")]
    pub step: i64,
    /// The logged model the point is (also) about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunData {
    pub metrics: Vec<KeyedMetric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: serde_json::Value,
    pub outputs: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Alias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Serialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub user_id: String,
    pub current_stage: String,
    pub description: String,
    pub source: String,
    pub run_id: String,
    pub status: &'static str,
    pub run_link: String,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
}

/// Requests name their run `run_id` (and old clients `run_uuid`); either is read.
#[derive(Debug, Default, Deserialize)]
pub struct RunRef {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub run_uuid: Option<String>,
}

impl RunRef {
    pub fn id(&self) -> Result<&str, super::MlflowError> {
        self.run_id
            .as_deref()
            .or(self.run_uuid.as_deref())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| super::MlflowError::invalid("Missing value for required parameter 'run_id'"))
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateExperiment {
    pub name: String,
    #[serde(default)]
    pub artifact_location: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentId {
    pub experiment_id: String,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentName {
    pub experiment_name: String,
}

#[derive(Debug, Deserialize)]
pub struct UpdateExperiment {
    pub experiment_id: String,
    pub new_name: String,
}

#[derive(Debug, Deserialize)]
pub struct ExperimentTag {
    pub experiment_id: String,
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct DeleteRunTag {
    #[serde(flatten)]
    pub run: RunRef,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchExperiments {
    #[serde(default)]
    pub view_type: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateRun {
    #[serde(default)]
    pub experiment_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub run_name: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct UpdateRun {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub run_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogBatch {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default)]
    pub metrics: Vec<KeyedMetric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct LogMetric {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(flatten)]
    pub metric: KeyedMetric,
}

#[derive(Debug, Deserialize)]
pub struct LogKeyValue {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(flatten)]
    pub pair: KeyValue,
}

#[derive(Debug, Deserialize)]
pub struct GetHistory {
    #[serde(flatten)]
    pub run: RunRef,
    pub metric_key: String,
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateModel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct ModelName {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct UpdateModel {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateVersion {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub run_id: Option<String>,
    /// The logged model the version is registered from (MLflow 3).
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub run_link: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct VersionRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
pub struct UpdateVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SetVersionTag {
    pub name: String,
    pub version: String,
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct DeleteVersionTag {
    pub name: String,
    pub version: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct RenameModel {
    pub name: String,
    pub new_name: String,
}

#[derive(Debug, Deserialize)]
pub struct ModelTag {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct LatestVersions {
    pub name: String,
    #[serde(default)]
    pub stages: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct TransitionStage {
    pub name: String,
    pub version: String,
    pub stage: String,
}

#[derive(Debug, Deserialize)]
pub struct SetAlias {
    pub name: String,
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
pub struct AliasRef {
    pub name: String,
    pub alias: String,
}

/// Protobuf's JSON form allows 64-bit integers as numbers or as strings.
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(t) => t.trim().parse().map_err(|_| serde::de::Error::custom(format!("{t:?} is not an integer"))),
    }
}

pub(super) fn optional_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    integer(d).map(Some)
}

/// A double as a JSON number or as one of protobuf's names (`"NaN"`, `"Infinity"`, `"-Infinity"`).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(f64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(t) => t.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "{t:?} is not a metric value (a number, \"NaN\", \"Infinity\" or \"-Infinity\")"
            ))
        }),
    }
}

/// A double as MLflow writes one: a JSON number, or protobuf's name for the values JSON has no
/// number for.
fn protobuf_double<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    match *value {
        v if v.is_nan() => s.serialize_str("NaN"),
        f64::INFINITY => s.serialize_str("Infinity"),
        f64::NEG_INFINITY => s.serialize_str("-Infinity"),
        v => s.serialize_f64(v),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateLoggedModel {
    pub experiment_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub source_run_id: Option<String>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AllowDeleted {
    #[serde(default)]
    pub allow_deleted: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FinalizeLoggedModel {
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub struct LoggedModelTags {
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct LoggedModelParams {
    #[serde(default)]
    pub params: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
pub struct OrderBy {
    pub field_name: String,
    #[serde(default = "yes")]
    pub ascending: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct SearchLoggedModels {
    #[serde(default)]
    pub experiment_ids: Vec<String>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    #[serde(default)]
    pub page_token: Option<String>,
}

/// `runs/log-inputs` and `runs/outputs`: what a run used (datasets, models) and made (models).
#[derive(Debug, Deserialize)]
pub struct RunLinks {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default)]
    pub datasets: Vec<serde_json::Value>,
    #[serde(default)]
    pub models: Vec<serde_json::Value>,
}

/// `runs/search`.
#[derive(Debug, Deserialize)]
pub struct SearchRuns {
    #[serde(default)]
    pub experiment_ids: Vec<String>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub run_view_type: Option<String>,
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub order_by: Vec<String>,
    #[serde(default)]
    pub page_token: Option<String>,
}

/// MLflow's stage of a version: the environment it is live in — `Production` or `Staging` for
/// environments of those names, preferred in that order, else the first other one as named —
/// or `None`.
pub fn stage_of(live_in: &[String]) -> String {
    let mut names: Vec<&String> = live_in.iter().collect();
    names.sort_by_key(|n| (n.as_str() != "production", n.as_str() != "staging", n.as_str()));
    match names.first().map(|n| n.as_str()) {
        None => "None".into(),
        Some("production") => "Production".into(),
        Some("staging") => "Staging".into(),
        Some(other) => other.into(),
    }
}
