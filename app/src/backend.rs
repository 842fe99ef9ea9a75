//! The backend use cases the UI's server functions need, implemented by the `server` crate.
//!
//! The REST API calls the very same trait methods, so every rule lives in one service layer.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::*;
use crate::error::ApiError;

/// Models and versions.
#[async_trait]
pub trait Registry: Send + Sync {
    async fn create_model(&self, actor: &Actor, input: NewModel) -> Result<Model, ApiError>;
    async fn list_models(&self, query: ModelQuery) -> Result<Page<Model>, ApiError>;
    async fn get_model(&self, name: &str) -> Result<Model, ApiError>;
    async fn register_version(&self, actor: &Actor, model: &str, input: NewVersion) -> Result<Version, ApiError>;
    async fn list_versions(&self, model: &str, query: VersionQuery) -> Result<Page<Version>, ApiError>;
    async fn get_version(&self, model: &str, number: i64) -> Result<Version, ApiError>;
    async fn update_version(&self, actor: &Actor, model: &str, number: i64, patch: VersionPatch) -> Result<Version, ApiError>;
    async fn quarantine_version(&self, actor: &Actor, model: &str, number: i64, input: QuarantineInput) -> Result<Version, ApiError>;
    async fn release_version(&self, actor: &Actor, model: &str, number: i64) -> Result<Version, ApiError>;
}

/// Environments, live versions and their history.
#[async_trait]
pub trait Deployments: Send + Sync {
    async fn list_environments(&self) -> Result<Vec<Environment>, ApiError>;
    async fn create_environment(&self, actor: &Actor, input: NewEnvironment) -> Result<Environment, ApiError>;
    async fn live_version(&self, model: &str, environment: &str) -> Result<LiveVersion, ApiError>;
    async fn deploy(&self, actor: &Actor, model: &str, environment: &str, input: DeployInput) -> Result<DeploymentEvent, ApiError>;
    /// Newest first; all environments when `environment` is `None`.
    async fn history(&self, model: &str, environment: Option<&str>, query: HistoryQuery) -> Result<Page<DeploymentEvent>, ApiError>;
}

/// Everything the console needs from the server.
pub trait Backend: Registry + Deployments {}

impl<T: Registry + Deployments> Backend for T {}

/// How server functions reach the backend: provided as Leptos context by the server.
pub type BackendHandle = Arc<dyn Backend>;
