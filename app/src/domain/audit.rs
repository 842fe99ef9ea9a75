//! The audit log as the console and the API see it: entries, their filters, checkpoints, integrity.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every kind of state change the audit log records; the string form is what entries store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    ModelCreate,
    VersionRegister,
    VersionUpdate,
    VersionQuarantine,
    VersionRelease,
    EnvironmentCreate,
    Deploy,
    PolicyUpdate,
    RollbackRequest,
    RollbackApprove,
    RollbackReject,
    RollbackCancel,
    RollbackExpire,
    RollbackStale,
    RollbackAcknowledge,
    Rollback,
    BreakGlass,
    WebhookCreate,
    WebhookUpdate,
    WebhookDelete,
    GuardrailCreate,
    GuardrailUpdate,
    GuardrailDelete,
    GuardrailEnforce,
    GuardrailVerdict,
    UserCreate,
    UserUpdate,
    TokenCreate,
    TokenRevoke,
    SignIn,
    SignInFailed,
    SignOut,
    ModelUpdate,
    ModelDelete,
    AliasSet,
    AliasDelete,
    ExperimentCreate,
    RunCreate,
    RunUpdate,
    RunLog,
    ArtifactUpload,
    ArtifactDelete,
    LoggedModelCreate,
    LoggedModelUpdate,
    LoggedModelDelete,
    ExperimentUpdate,
    ExperimentDelete,
    ExperimentRestore,
    RunDelete,
    RunRestore,
    VersionDelete,
    RolloutPropagating,
    RolloutConverged,
    RolloutPartiallyConverged,
    AgentLost,
    AgentReturned,
    AgentRemove,
}

impl AuditAction {
    pub const ALL: [AuditAction; 57] = [
        AuditAction::ModelCreate,
        AuditAction::VersionRegister,
        AuditAction::VersionUpdate,
        AuditAction::VersionQuarantine,
        AuditAction::VersionRelease,
        AuditAction::EnvironmentCreate,
        AuditAction::Deploy,
        AuditAction::PolicyUpdate,
        AuditAction::RollbackRequest,
        AuditAction::RollbackApprove,
        AuditAction::RollbackReject,
        AuditAction::RollbackCancel,
        AuditAction::RollbackExpire,
        AuditAction::RollbackStale,
        AuditAction::RollbackAcknowledge,
        AuditAction::Rollback,
        AuditAction::BreakGlass,
        AuditAction::WebhookCreate,
        AuditAction::WebhookUpdate,
        AuditAction::WebhookDelete,
        AuditAction::GuardrailCreate,
        AuditAction::GuardrailUpdate,
        AuditAction::GuardrailDelete,
        AuditAction::GuardrailEnforce,
        AuditAction::GuardrailVerdict,
        AuditAction::UserCreate,
        AuditAction::UserUpdate,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::SignIn,
        AuditAction::SignInFailed,
        AuditAction::SignOut,
        AuditAction::ModelUpdate,
        AuditAction::ModelDelete,
        AuditAction::AliasSet,
        AuditAction::AliasDelete,
        AuditAction::ExperimentCreate,
        AuditAction::RunCreate,
        AuditAction::RunUpdate,
        AuditAction::RunLog,
        AuditAction::ArtifactUpload,
        AuditAction::ArtifactDelete,
        AuditAction::LoggedModelCreate,
        AuditAction::LoggedModelUpdate,
        AuditAction::LoggedModelDelete,
        AuditAction::ExperimentUpdate,
        AuditAction::ExperimentDelete,
        AuditAction::ExperimentRestore,
        AuditAction::RunDelete,
        AuditAction::RunRestore,
        AuditAction::VersionDelete,
        AuditAction::RolloutPropagating,
        AuditAction::RolloutConverged,
        AuditAction::RolloutPartiallyConverged,
        AuditAction::AgentLost,
        AuditAction::AgentReturned,
        AuditAction::AgentRemove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::ModelCreate => "model.create",
            AuditAction::VersionRegister => "version.register",
            AuditAction::VersionUpdate => "version.update",
            AuditAction::VersionQuarantine => "version.quarantine",
            AuditAction::VersionRelease => "version.release",
            AuditAction::EnvironmentCreate => "environment.create",
            AuditAction::Deploy => "deployment.deploy",
            AuditAction::PolicyUpdate => "policy.update",
            AuditAction::RollbackRequest => "rollback.request",
            AuditAction::RollbackApprove => "rollback.approve",
            AuditAction::RollbackReject => "rollback.reject",
            AuditAction::RollbackCancel => "rollback.cancel",
            AuditAction::RollbackExpire => "rollback.expire",
            AuditAction::RollbackStale => "rollback.stale",
            AuditAction::RollbackAcknowledge => "rollback.acknowledge",
            AuditAction::Rollback => "deployment.rollback",
            AuditAction::BreakGlass => "deployment.break_glass",
            AuditAction::WebhookCreate => "webhook.create",
            AuditAction::WebhookUpdate => "webhook.update",
            AuditAction::WebhookDelete => "webhook.delete",
            AuditAction::GuardrailCreate => "guardrail.create",
            AuditAction::GuardrailUpdate => "guardrail.update",
            AuditAction::GuardrailDelete => "guardrail.delete",
            AuditAction::GuardrailEnforce => "guardrail.enforce",
            AuditAction::GuardrailVerdict => "guardrail.verdict",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserUpdate => "user.update",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::SignIn => "session.sign_in",
            AuditAction::SignInFailed => "session.sign_in_failed",
            AuditAction::SignOut => "session.sign_out",
            AuditAction::ModelUpdate => "model.update",
            AuditAction::ModelDelete => "model.delete",
            AuditAction::AliasSet => "alias.set",
            AuditAction::AliasDelete => "alias.delete",
            AuditAction::ExperimentCreate => "experiment.create",
            AuditAction::RunCreate => "run.create",
            AuditAction::RunUpdate => "run.update",
            AuditAction::RunLog => "run.log",
            AuditAction::ArtifactUpload => "artifact.upload",
            AuditAction::ArtifactDelete => "artifact.delete",
            AuditAction::LoggedModelCreate => "logged_model.create",
            AuditAction::LoggedModelUpdate => "logged_model.update",
            AuditAction::LoggedModelDelete => "logged_model.delete",
            AuditAction::ExperimentUpdate => "experiment.update",
            AuditAction::ExperimentDelete => "experiment.delete",
            AuditAction::ExperimentRestore => "experiment.restore",
            AuditAction::RunDelete => "run.delete",
            AuditAction::RunRestore => "run.restore",
            AuditAction::VersionDelete => "version.delete",
            AuditAction::RolloutPropagating => "rollout.propagating",
            AuditAction::RolloutConverged => "rollout.converged",
            AuditAction::RolloutPartiallyConverged => "rollout.partially_converged",
            AuditAction::AgentLost => "agent.lost",
            AuditAction::AgentReturned => "agent.returned",
            AuditAction::AgentRemove => "agent.remove",
        }
    }
}

/// One link of the chain. `hash` is SHA-256 (hex) over the RFC 8785 canonical JSON of every other
/// field; `prev_hash` is the hash of the entry before (64 zeros for the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    /// UTC, RFC 3339 with milliseconds.
    pub at: String,
    /// The user, and the token when one was used: `alice` or `alice (token ci)`; `system` or `anonymous`.
    pub actor: String,
    pub actor_user: Option<String>,
    pub actor_token: Option<String>,
    /// What happened, e.g. `version.quarantine` (see [`AuditAction`]).
    pub action: String,
    /// The REST path of what changed, e.g. `models/fraud/versions/3`.
    pub target: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub environment: Option<String>,
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub before: Option<Value>,
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub after: Option<Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for searching the audit log; newest first, paged by the `before` cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[serde(default)]
pub struct AuditQuery {
    /// Entries at or after this time (RFC 3339, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DD`, UTC).
    pub from: Option<String>,
    /// Entries before this time (same forms as `from`).
    pub to: Option<String>,
    /// The acting user (entries made through any of their sessions or tokens).
    pub actor: Option<String>,
    /// An action such as `deployment.deploy`.
    pub action: Option<String>,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub environment: Option<String>,
    /// Free text matched against target, actor, reason and the before/after states.
    pub q: Option<String>,
    /// `false` leaves out sign-ins, failed sign-ins and sign-outs (`session.*`).
    pub sessions: Option<bool>,
    /// `false` leaves out the changes of rules' verdicts (`guardrail.verdict`, by the system).
    pub verdicts: Option<bool>,
    /// Cursor: only entries with a sequence number below this one.
    pub before: Option<i64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// A page of audit entries, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// A signed statement that the chain has `seq` entries, the last with hash `hash`, and that the
/// Merkle tree of all their hashes (RFC 9162) has root `root`. The Ed25519 signature (base64)
/// covers the RFC 8785 canonical JSON of the other fields (`root` only when present: checkpoints
/// signed before roots were kept have none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    pub signed_at: String,
    /// First 16 hex digits of SHA-256 over the raw public key.
    pub key_id: String,
    pub signature: String,
}

/// A key that signs (or signed) checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PublicKey {
    pub algorithm: String,
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// The same key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), for OpenSSL and friends.
    pub pem: String,
}

/// The key that signs checkpoints now, and the keys that signed earlier ones (after a rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PublicKeys {
    pub current: PublicKey,
    pub previous: Vec<PublicKey>,
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChainProblem {
    pub seq: i64,
    pub what: String,
}

/// The outcome of checking every entry and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Verification {
    pub at: String,
    pub entries: i64,
    /// The last sequence number up to which the chain is intact.
    pub verified_to: i64,
    pub checkpoints: i64,
    pub problem: Option<ChainProblem>,
    pub duration_ms: i64,
}

/// The integrity panel: the head of the chain, the last verification and the last checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct IntegrityStatus {
    pub head_seq: i64,
    pub head_hash: String,
    /// The last verification that finished (kept with its job: every replica and restart sees it).
    pub last_verification: Option<Verification>,
    /// The newest verification when it has not finished: running (with its progress) or failed.
    #[serde(default)]
    pub verifying: Option<super::Job>,
    pub last_checkpoint: Option<Checkpoint>,
    /// Whether the last checkpoint's signature verifies against a published key.
    pub checkpoint_signature_valid: bool,
    /// The newest checkpoint this server signed, as kept outside the database (the chain may
    /// never be shorter than it, nor differ from it).
    #[serde(default)]
    pub witness: Option<Checkpoint>,
}
