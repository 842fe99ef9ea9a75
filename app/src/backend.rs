//! The backend use cases the UI's server functions need, implemented by the `server` crate.
//!
//! The REST API calls the very same trait methods, so every rule — including who may do what,
//! checked against the caller's roles at the top of each method — lives in one service layer.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::*;
use crate::error::ApiError;

/// Models and versions.
#[async_trait]
pub trait Registry: Send + Sync {
    async fn create_model(&self, caller: &Caller, input: NewModel) -> Result<Model, ApiError>;
    async fn list_models(&self, caller: &Caller, query: ModelQuery) -> Result<Page<Model>, ApiError>;
    async fn get_model(&self, caller: &Caller, name: &str) -> Result<Model, ApiError>;
    async fn register_version(&self, caller: &Caller, model: &str, input: NewVersion) -> Result<Version, ApiError>;
    async fn list_versions(&self, caller: &Caller, model: &str, query: VersionQuery)
    -> Result<Page<Version>, ApiError>;
    async fn get_version(&self, caller: &Caller, model: &str, number: i64) -> Result<Version, ApiError>;
    async fn version_files(&self, caller: &Caller, model: &str, number: i64) -> Result<VersionFiles, ApiError>;
    async fn update_version(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        patch: VersionPatch,
    ) -> Result<Version, ApiError>;
    async fn quarantine_version(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        input: QuarantineInput,
    ) -> Result<Version, ApiError>;
    async fn release_version(&self, caller: &Caller, model: &str, number: i64) -> Result<Version, ApiError>;
}

/// Environments, live versions and their history.
#[async_trait]
pub trait Deployments: Send + Sync {
    async fn list_environments(&self, caller: &Caller) -> Result<Vec<Environment>, ApiError>;
    async fn create_environment(&self, caller: &Caller, input: NewEnvironment) -> Result<Environment, ApiError>;
    async fn live_version(&self, caller: &Caller, model: &str, environment: &str) -> Result<LiveVersion, ApiError>;
    async fn deploy(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: DeployInput,
    ) -> Result<DeploymentEvent, ApiError>;
    /// Newest first; all environments when `environment` is `None`.
    async fn history(
        &self,
        caller: &Caller,
        model: &str,
        environment: Option<&str>,
        query: HistoryQuery,
    ) -> Result<Page<DeploymentEvent>, ApiError>;
}

/// Metric points, their series, guardrails and the health they yield.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// Stores a batch (all or nothing) and re-evaluates the version's health where it may have changed.
    async fn ingest_metrics(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        batch: MetricBatch,
    ) -> Result<IngestReport, ApiError>;
    /// Every series of a version, by key.
    async fn list_metrics(&self, caller: &Caller, model: &str, number: i64) -> Result<Vec<SeriesSummary>, ApiError>;
    /// One key's series, downsampled to at most `max_points` each.
    async fn metric_series(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        key: &str,
        query: SeriesQuery,
    ) -> Result<MetricSeries, ApiError>;
    /// One metric key across a model's versions: last value, range and trend of each.
    async fn model_metrics(&self, caller: &Caller, model: &str, key: Option<String>) -> Result<ModelMetrics, ApiError>;
    async fn list_guardrails(&self, caller: &Caller, model: &str) -> Result<Vec<Guardrail>, ApiError>;
    async fn create_guardrail(
        &self,
        caller: &Caller,
        model: &str,
        input: GuardrailInput,
    ) -> Result<Guardrail, ApiError>;
    async fn update_guardrail(
        &self,
        caller: &Caller,
        model: &str,
        id: i64,
        input: GuardrailInput,
    ) -> Result<Guardrail, ApiError>;
    async fn delete_guardrail(&self, caller: &Caller, model: &str, id: i64) -> Result<Guardrail, ApiError>;
    /// A version's health in every environment that has guardrails, with each rule's evaluation.
    async fn version_health(&self, caller: &Caller, model: &str, number: i64) -> Result<Vec<HealthReport>, ApiError>;
    /// A guardrail run over a version's stored history: its verdict timeline.
    async fn replay_guardrail(&self, caller: &Caller, model: &str, number: i64, id: i64) -> Result<Replay, ApiError>;
}

/// Rollback policies, requests, reviews and break glass.
#[async_trait]
pub trait Rollbacks: Send + Sync {
    /// Every environment's policy, in environment order.
    async fn list_policies(&self, caller: &Caller) -> Result<Vec<Policy>, ApiError>;
    async fn policy(&self, caller: &Caller, environment: &str) -> Result<Policy, ApiError>;
    async fn update_policy(&self, caller: &Caller, environment: &str, input: PolicyInput) -> Result<Policy, ApiError>;
    /// What a rollback to `target` (the proposed version when `None`) would do, and whether it may.
    async fn rollback_plan(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        target: Option<i64>,
    ) -> Result<RollbackPlan, ApiError>;
    /// Files a request after preflight; with no approvals required it executes at once.
    async fn request_rollback(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: RollbackInput,
    ) -> Result<RollbackRequest, ApiError>;
    /// Approves or rejects another user's open request; the last approval needed executes it.
    async fn review_rollback(
        &self,
        caller: &Caller,
        id: i64,
        decision: Decision,
        input: ReviewInput,
    ) -> Result<RollbackRequest, ApiError>;
    /// Withdraws one's own open request.
    async fn cancel_rollback(&self, caller: &Caller, id: i64, input: ReviewInput) -> Result<RollbackRequest, ApiError>;
    /// Rolls back at once, for holders of the policy's break-glass roles; a reviewer acknowledges it later.
    async fn break_glass(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: BreakGlassInput,
    ) -> Result<RollbackRequest, ApiError>;
    async fn acknowledge_break_glass(
        &self,
        caller: &Caller,
        id: i64,
        input: ReviewInput,
    ) -> Result<RollbackRequest, ApiError>;
    /// Newest first.
    async fn list_rollbacks(&self, caller: &Caller, query: RollbackQuery) -> Result<Page<RollbackRequest>, ApiError>;
    async fn get_rollback(&self, caller: &Caller, id: i64) -> Result<RollbackRequest, ApiError>;
}

/// Webhooks and their delivery logs.
#[async_trait]
pub trait Webhooks: Send + Sync {
    async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>, ApiError>;
    async fn create_webhook(&self, caller: &Caller, input: NewWebhook) -> Result<CreatedWebhook, ApiError>;
    async fn update_webhook(&self, caller: &Caller, id: i64, patch: WebhookPatch) -> Result<Webhook, ApiError>;
    async fn delete_webhook(&self, caller: &Caller, id: i64) -> Result<Webhook, ApiError>;
    /// Newest first.
    async fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: i64,
        query: HistoryQuery,
    ) -> Result<Page<WebhookDelivery>, ApiError>;
}

/// A session opened by signing in: the secret for the cookie, and who it belongs to.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub token: String,
    pub caller: Caller,
}

/// Users, sign-in sessions and API tokens.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Checks the password (throttled per account and per client address) and opens a session.
    async fn sign_in(&self, username: &str, password: &str, origin: &Origin) -> Result<SessionGrant, ApiError>;
    /// Ends a session; its cookie is refused from then on.
    async fn sign_out(&self, session_token: &str, origin: &Origin) -> Result<(), ApiError>;
    /// The caller behind a session token, if the session is valid and not timed out.
    async fn session_caller(&self, session_token: &str) -> Result<Option<Caller>, ApiError>;
    /// The caller behind an API token, if it is valid, unexpired and unrevoked.
    async fn token_caller(&self, api_token: &str) -> Result<Option<Caller>, ApiError>;
    /// The caller's own profile.
    async fn me(&self, caller: &Caller) -> Result<Me, ApiError>;
    async fn create_user(&self, caller: &Caller, input: NewUser) -> Result<User, ApiError>;
    async fn list_users(&self, caller: &Caller) -> Result<Vec<User>, ApiError>;
    async fn update_user(&self, caller: &Caller, username: &str, patch: UserPatch) -> Result<User, ApiError>;
    async fn create_token(&self, caller: &Caller, input: NewToken) -> Result<CreatedToken, ApiError>;
    /// Admins see every token; others see their own.
    async fn list_tokens(&self, caller: &Caller) -> Result<Vec<ApiToken>, ApiError>;
    async fn revoke_token(&self, caller: &Caller, id: i64) -> Result<ApiToken, ApiError>;
}

/// The audit log: search, integrity and checkpoints (appending happens inside every write).
#[async_trait]
pub trait AuditTrail: Send + Sync {
    async fn search_audit(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, ApiError>;
    async fn audit_entry(&self, caller: &Caller, seq: i64) -> Result<AuditEntry, ApiError>;
    async fn audit_status(&self, caller: &Caller) -> Result<IntegrityStatus, ApiError>;
    /// Starts rechecking every entry and checkpoint in the background (or answers the check
    /// already running); when the chain is intact, it signs a checkpoint at its head.
    async fn verify_audit(&self, caller: &Caller) -> Result<Job, ApiError>;
    /// A background job of the audit log (a verification, an export): its progress, then its outcome.
    async fn audit_job(&self, caller: &Caller, id: i64) -> Result<Job, ApiError>;
    /// The caller's newest audit export job, running or ended.
    async fn latest_audit_export(&self, caller: &Caller) -> Result<Option<Job>, ApiError>;
}

/// The serving fleet as the console shows it.
#[async_trait]
pub trait Fleets: Send + Sync {
    /// Every agent of a (model, environment) by group, and the live version's rollout.
    async fn fleet(&self, caller: &Caller, model: &str, environment: &str) -> Result<Fleet, ApiError>;
    /// What was live at `at` (RFC 3339) and what each group served then.
    async fn environment_state(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        at: &str,
    ) -> Result<EnvironmentState, ApiError>;
}

/// Everything the console needs from the server.
pub trait Backend: Registry + Deployments + Metrics + Rollbacks + Webhooks + Identity + AuditTrail + Fleets {}

impl<T: Registry + Deployments + Metrics + Rollbacks + Webhooks + Identity + AuditTrail + Fleets> Backend for T {}

/// How server functions reach the backend: provided as Leptos context by the server.
pub type BackendHandle = Arc<dyn Backend>;
