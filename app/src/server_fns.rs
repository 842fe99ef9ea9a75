//! Server functions: the console's calls into the backend, thin adapters over [`crate::backend`].

use leptos::prelude::*;

use crate::domain::*;
use crate::error::ApiError;

/// Everything the model page shows, in one round trip.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelPageData {
    pub model: Model,
    pub versions: Page<Version>,
    pub history: Page<DeploymentEvent>,
}

#[cfg(feature = "ssr")]
fn backend() -> Result<crate::backend::BackendHandle, ApiError> {
    use_context::<crate::backend::BackendHandle>().ok_or_else(ApiError::internal)
}

#[cfg(feature = "ssr")]
fn actor() -> Actor {
    Actor::anonymous()
}

#[server]
pub async fn list_models(query: ModelQuery) -> Result<Page<Model>, ApiError> {
    backend()?.list_models(query).await
}

#[server]
pub async fn model_overview(name: String) -> Result<ModelPageData, ApiError> {
    let backend = backend()?;
    let model = backend.get_model(&name).await?;
    let versions = backend.list_versions(&name, VersionQuery { limit: Some(MAX_PAGE_SIZE), ..Default::default() }).await?;
    let history = backend.history(&name, None, HistoryQuery::default()).await?;
    Ok(ModelPageData { model, versions, history })
}

#[server]
pub async fn get_version(model: String, number: i64) -> Result<Version, ApiError> {
    backend()?.get_version(&model, number).await
}

#[server]
pub async fn deploy_version(model: String, environment: String, version: i64, reason: String) -> Result<DeploymentEvent, ApiError> {
    let input = DeployInput { version, reason, expected_revision: None };
    backend()?.deploy(&actor(), &model, &environment, input).await
}

/// Saves the editable fields; `tags` is comma-separated as typed in the form.
#[server]
pub async fn edit_version(model: String, number: i64, description: String, tags: String) -> Result<Version, ApiError> {
    let patch = VersionPatch { description: Some(description), tags: Some(validate::split_tags(&tags)) };
    backend()?.update_version(&actor(), &model, number, patch).await
}

#[server]
pub async fn quarantine_version(model: String, number: i64, reason: String) -> Result<Version, ApiError> {
    backend()?.quarantine_version(&actor(), &model, number, QuarantineInput { reason }).await
}

#[server]
pub async fn release_version(model: String, number: i64) -> Result<Version, ApiError> {
    backend()?.release_version(&actor(), &model, number).await
}
