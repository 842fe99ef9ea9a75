//! Guarded rollback: each environment's policy, rollback requests with their reviews, and the plan
//! (proposed target, preflight checks, metric comparison) a rollback dialog shows.

use serde::{Deserialize, Serialize};

use super::{Health, LiveVersion, MetricSource, Role};

/// A span of time in which an environment's live version must not be changed (except by break glass).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    pub ends_at: String,
    #[serde(default)]
    pub reason: String,
}

impl FreezeWindow {
    /// What a change refused by this window is told.
    pub fn refusal(&self, environment: &str) -> String {
        let why = if self.reason.is_empty() { String::new() } else { format!(" ({})", self.reason) };
        format!("{environment} is frozen until {}{why}", self.ends_at)
    }
}

/// How rollbacks are guarded in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Policy {
    pub environment: String,
    /// Distinct approvals that execute a request; 0 = the request executes at once.
    pub approvals_required: u32,
    /// How long a request can be approved before it expires.
    pub approval_ttl_minutes: u32,
    pub freeze_windows: Vec<FreezeWindow>,
    /// Roles whose holders may break glass: roll back at once, reviewed afterwards.
    pub break_glass_roles: Vec<Role>,
    /// File a rollback request by itself when the live version turns failing.
    pub auto_request: bool,
    /// Seconds a live-version change may take to reach every serving agent before it counts as
    /// partially converged.
    pub convergence_deadline_seconds: u32,
    pub updated_at: String,
    pub updated_by: String,
}

/// Body of `PUT /api/v1/environments/{env}/policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub approvals_required: u32,
    pub approval_ttl_minutes: u32,
    #[serde(default)]
    pub freeze_windows: Vec<FreezeWindow>,
    /// Operators when absent; `[]` lets nobody break glass.
    #[serde(default = "default_break_glass_roles")]
    pub break_glass_roles: Vec<Role>,
    #[serde(default)]
    pub auto_request: bool,
    /// 10 to 86,400; 300 when absent.
    #[serde(default = "default_convergence_deadline")]
    pub convergence_deadline_seconds: u32,
}

/// How long a change may take to reach the fleet unless a policy says otherwise: five minutes.
pub fn default_convergence_deadline() -> u32 {
    300
}

/// Who may break glass unless a policy says otherwise: the operators on call.
pub fn default_break_glass_roles() -> Vec<Role> {
    vec![Role::Operator]
}

impl Policy {
    /// Whether any of `roles` may break glass under this policy.
    pub fn lets_break_glass(&self, roles: &super::Roles) -> bool {
        roles.iter().any(|r| self.break_glass_roles.contains(r))
    }
}

impl From<&Policy> for PolicyInput {
    fn from(p: &Policy) -> Self {
        Self {
            approvals_required: p.approvals_required,
            approval_ttl_minutes: p.approval_ttl_minutes,
            freeze_windows: p.freeze_windows.clone(),
            break_glass_roles: p.break_glass_roles.clone(),
            auto_request: p.auto_request,
            convergence_deadline_seconds: p.convergence_deadline_seconds,
        }
    }
}

/// Where a rollback request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RollbackStatus {
    /// Waiting for approvals.
    Open,
    /// The live version moved to the target.
    Executed,
    Rejected,
    /// Not approved within the policy's time-to-live.
    Expired,
    /// The live version changed after the request was filed, so it was not executed.
    Stale,
    /// Withdrawn by its requester.
    Cancelled,
}

impl RollbackStatus {
    pub const ALL: [RollbackStatus; 6] = [
        RollbackStatus::Open,
        RollbackStatus::Executed,
        RollbackStatus::Rejected,
        RollbackStatus::Expired,
        RollbackStatus::Stale,
        RollbackStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RollbackStatus::Open => "open",
            RollbackStatus::Executed => "executed",
            RollbackStatus::Rejected => "rejected",
            RollbackStatus::Expired => "expired",
            RollbackStatus::Stale => "stale",
            RollbackStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// How a rollback came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RollbackKind {
    /// Filed by a user, executed by approvals.
    Request,
    /// Filed by the server when the live version turned failing.
    Automatic,
    /// Executed at once by a permitted user; a reviewer acknowledges it afterwards.
    BreakGlass,
}

impl RollbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackKind::Request => "request",
            RollbackKind::Automatic => "automatic",
            RollbackKind::BreakGlass => "break_glass",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RollbackKind::Request, RollbackKind::Automatic, RollbackKind::BreakGlass].into_iter().find(|k| k.as_str() == s)
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Decision::Approve, Decision::Reject].into_iter().find(|d| d.as_str() == s)
    }
}

/// One reviewer's decision on a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Review {
    /// The reviewing user.
    pub reviewer: String,
    /// The user and, when one was used, the token: as the audit log names them.
    pub actor: String,
    pub decision: Decision,
    pub comment: String,
    pub at: String,
}

/// A reviewer's acknowledgement of a break-glass rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Acknowledgement {
    pub by: String,
    pub at: String,
    pub comment: String,
}

/// A rollback of a model in an environment from one version to another, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RollbackRequest {
    pub id: i64,
    pub model: String,
    pub environment: String,
    /// The live version when the request was filed; it executes only while this is still live.
    pub from_version: i64,
    pub to_version: i64,
    pub reason: String,
    pub kind: RollbackKind,
    pub status: RollbackStatus,
    pub approvals_required: u32,
    pub approvals: u32,
    pub reviews: Vec<Review>,
    /// As the audit log names the requester (`system (guardrails)` for automatic requests).
    pub requested_by: String,
    /// The requesting user; `None` for automatic requests.
    pub requester: Option<String>,
    pub requested_at: String,
    pub expires_at: String,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
    /// Why it closed, in words (e.g. what made it stale).
    pub outcome: String,
    /// The live version's revision after execution.
    pub revision: Option<i64>,
    pub acknowledgement: Option<Acknowledgement>,
    /// After execution: how far the rollback has spread through the serving fleet.
    #[serde(default)]
    pub rollout: Option<super::RolloutState>,
    /// When every serving agent ran the rolled-back version.
    #[serde(default)]
    pub converged_at: Option<String>,
}

impl RollbackRequest {
    /// A break-glass rollback no reviewer has acknowledged yet.
    pub fn needs_acknowledgement(&self) -> bool {
        self.kind == RollbackKind::BreakGlass && self.acknowledgement.is_none()
    }

    /// Whether it is in a reviewer's queue: open, or an unacknowledged break glass.
    pub fn awaits_review(&self) -> bool {
        self.status == RollbackStatus::Open || self.needs_acknowledgement()
    }
}

/// Body of `POST …/environments/{env}/rollbacks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The version to go back to; the proposed target when omitted.
    #[serde(default)]
    pub to_version: Option<i64>,
    pub reason: String,
}

/// Body of approve, reject, cancel and acknowledge.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    #[serde(default)]
    pub comment: String,
}

/// Body of `POST …/environments/{env}/break-glass`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreakGlassInput {
    #[serde(default)]
    pub to_version: Option<i64>,
    /// Why this cannot wait for approval (at least 20 characters).
    pub justification: String,
    /// The model's name, typed out.
    pub confirm: String,
}

/// Filters of `GET /api/v1/rollbacks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct RollbackQuery {
    pub model: Option<String>,
    pub environment: Option<String>,
    pub status: Option<RollbackStatus>,
    /// Only what a reviewer must act on: open requests and unacknowledged break-glass rollbacks.
    pub awaiting_review: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Entries to skip, 0 to 2^63 − 1.
    #[serde(default, deserialize_with = "super::page::offset")]
    pub offset: Option<u64>,
}

/// A version a rollback could go to, and why not when it cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RollbackCandidate {
    pub version: i64,
    pub health: Health,
    /// When it last stopped being live in this environment; `None` if it never was live there.
    pub replaced_at: Option<String>,
    /// Why it cannot be the target (quarantined, no digest, live now).
    pub blocker: Option<String>,
}

/// One preflight check of a rollback to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PreflightCheck {
    pub name: String,
    pub passed: bool,
    pub message: String,
}

/// A metric of the live and the target version, side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MetricComparison {
    pub key: String,
    pub source: MetricSource,
    /// Whether a guardrail watches this key in the environment.
    pub guarded: bool,
    pub live: Option<f64>,
    pub target: Option<f64>,
}

/// What a rollback dialog shows: the live version, the proposed and the chosen target, every
/// candidate, the preflight checks, the key metrics side by side, the policy, and any open request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RollbackPlan {
    pub live: LiveVersion,
    pub live_health: Health,
    /// The most recent version that was live here before the current one and is healthy, not
    /// quarantined and has a digest.
    pub proposed: Option<i64>,
    /// The version the checks and comparison are for (the requested one, else the proposed one).
    pub target: Option<i64>,
    pub candidates: Vec<RollbackCandidate>,
    pub checks: Vec<PreflightCheck>,
    pub comparison: Vec<MetricComparison>,
    pub policy: Policy,
    pub open_request: Option<RollbackRequest>,
    pub frozen: Option<FreezeWindow>,
}

impl RollbackPlan {
    /// Whether a request for `target` would pass preflight.
    pub fn ready(&self) -> bool {
        self.target.is_some() && self.checks.iter().all(|c| c.passed)
    }
}

/// The facts preflight decides on, gathered by the server.
#[derive(Debug, Clone, Default)]
pub struct PreflightFacts<'a> {
    pub model: &'a str,
    pub environment: &'a str,
    pub live: Option<i64>,
    pub target: Option<i64>,
    /// Why the target cannot go live (quarantine, no digest, not registered), from the registry.
    pub target_blocker: Option<String>,
    pub frozen: Option<&'a FreezeWindow>,
    pub open_request: Option<i64>,
}

impl PreflightFacts<'_> {
    /// Every check, in the order the dialog lists them; break glass skips the freeze and open-request checks.
    pub fn checks(&self, break_glass: bool) -> Vec<PreflightCheck> {
        let check = |name: &str, failure: Option<String>, ok: String| PreflightCheck {
            name: name.to_string(),
            passed: failure.is_none(),
            message: failure.unwrap_or(ok),
        };
        let mut checks = vec![
            check(
                "live",
                self.live.is_none().then(|| format!("nothing is live in {} to roll back", self.environment)),
                format!("v{} is live", self.live.unwrap_or_default()),
            ),
            check(
                "target",
                match self.target {
                    None => Some(format!("no earlier version of {} can be proposed; pick one", self.model)),
                    Some(t) if Some(t) == self.live => Some(format!("v{t} is already live in {}", self.environment)),
                    Some(_) => self.target_blocker.clone(),
                },
                format!("v{} can go live", self.target.unwrap_or_default()),
            ),
        ];
        if !break_glass {
            checks.push(check(
                "freeze",
                self.frozen.map(|w| w.refusal(self.environment)),
                format!("{} is not frozen", self.environment),
            ));
            checks.push(check(
                "open_request",
                self.open_request.map(|id| {
                    format!("rollback request #{id} is already open for {} in {}", self.model, self.environment)
                }),
                "no other request is open".to_string(),
            ));
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_names_each_refusal() {
        let window =
            FreezeWindow { starts_at: "a".into(), ends_at: "2026-01-02T00:00:00Z".into(), reason: "audit".into() };
        let facts = PreflightFacts {
            model: "m",
            environment: "production",
            live: Some(5),
            target: Some(5),
            frozen: Some(&window),
            open_request: Some(3),
            ..Default::default()
        };
        let failed: Vec<String> = facts.checks(false).into_iter().filter(|c| !c.passed).map(|c| c.message).collect();
        assert_eq!(
            failed,
            [
                "v5 is already live in production",
                "production is frozen until 2026-01-02T00:00:00Z (audit)",
                "rollback request #3 is already open for m in production",
            ]
        );
        assert_eq!(facts.checks(true).len(), 2, "break glass ignores freezes and open requests");
        let fine = PreflightFacts { target: Some(4), frozen: None, open_request: None, ..facts };
        assert!(fine.checks(false).iter().all(|c| c.passed));
        let nothing_live = PreflightFacts { live: None, ..fine };
        assert!(!nothing_live.checks(false)[0].passed);
    }
}
