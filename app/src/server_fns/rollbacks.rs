//! Server functions of guarded rollback: the rollback dialog's plan, requests and break glass,
//! the review queue, environment policies and webhooks.

use leptos::prelude::*;

use super::RoleChoice;
#[cfg(feature = "ssr")]
use super::ssr::*;
use crate::domain::*;
use crate::error::ApiError;

/// What the rollback dialog shows, with what the caller may do there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RollbackDialogData {
    pub plan: RollbackPlan,
    /// The rules the live version fails there, with their evidence.
    pub broken: Vec<GuardrailCheck>,
    pub may_request: bool,
    /// Whether the caller holds one of the environment's break-glass roles.
    pub may_break_glass: bool,
}

/// The plan of a rollback to `to_version` (the proposed target when absent).
#[server]
pub async fn rollback_dialog(
    model: String,
    environment: String,
    to_version: Option<i64>,
) -> Result<RollbackDialogData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let plan = backend.rollback_plan(&caller, &model, &environment, to_version).await?;
    let may_break_glass = plan.policy.lets_break_glass(&caller.roles);
    let broken = match plan.live.version {
        Some(live) => backend
            .version_health(&caller, &model, live)
            .await?
            .into_iter()
            .filter(|r| r.environment == environment)
            .flat_map(|r| r.checks)
            .filter(GuardrailCheck::breaks)
            .collect(),
        None => Vec::new(),
    };
    Ok(RollbackDialogData { plan, broken, may_request: caller.can(Permission::RequestRollbacks), may_break_glass })
}

#[server]
pub async fn request_rollback(
    model: String,
    environment: String,
    to_version: Option<i64>,
    reason: String,
) -> Result<RollbackRequest, ApiError> {
    let input = RollbackInput { to_version, reason };
    backend()?.request_rollback(&caller()?, &model, &environment, input).await
}

#[server]
pub async fn break_glass_rollback(
    model: String,
    environment: String,
    to_version: Option<i64>,
    justification: String,
    confirm: String,
) -> Result<RollbackRequest, ApiError> {
    let input = BreakGlassInput { to_version, justification, confirm };
    backend()?.break_glass(&caller()?, &model, &environment, input).await
}

/// The review queue: what awaits a reviewer, and what was decided lately.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReviewQueueData {
    pub awaiting: Vec<Awaiting>,
    pub recent: Vec<RollbackRequest>,
    /// The caller's username: their own requests can be cancelled, not reviewed.
    pub me: String,
    pub may_review: bool,
    pub may_request: bool,
}

/// A rollback awaiting review with the evidence a reviewer decides on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Awaiting {
    pub request: RollbackRequest,
    /// The health of the version rolled back from, where it is rolled back.
    pub health: Health,
    /// The rules it breaks there, each with the value observed.
    pub broken: Vec<GuardrailCheck>,
    /// Each key metric of the version rolled back from and of the target, as the dialog shows them.
    pub comparison: Vec<MetricComparison>,
}

/// Requests decided lately, shown under the queue.
#[cfg(feature = "ssr")]
const RECENT: u32 = 20;

#[server]
pub async fn review_queue() -> Result<ReviewQueueData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let awaiting = RollbackQuery { awaiting_review: Some(true), limit: Some(MAX_PAGE_SIZE), ..Default::default() };
    let mut evidence = Vec::new();
    for request in backend.list_rollbacks(&caller, awaiting).await?.items {
        let report = backend
            .version_health(&caller, &request.model, request.from_version)
            .await?
            .into_iter()
            .find(|r| r.environment == request.environment);
        let plan =
            backend.rollback_plan(&caller, &request.model, &request.environment, Some(request.to_version)).await?;
        let (health, checks) = report.map_or((Health::Unknown, Vec::new()), |r| (r.health, r.checks));
        let broken = checks.into_iter().filter(GuardrailCheck::breaks).collect();
        evidence.push(Awaiting { request, health, broken, comparison: plan.comparison });
    }
    let recent = backend.list_rollbacks(&caller, RollbackQuery { limit: Some(RECENT), ..Default::default() }).await?;
    Ok(ReviewQueueData {
        recent: recent.items.into_iter().filter(|r| !r.awaits_review()).collect(),
        awaiting: evidence,
        me: caller.username.clone(),
        may_review: caller.can(Permission::ReviewRollbacks),
        may_request: caller.can(Permission::RequestRollbacks),
    })
}

/// How many items await a reviewer (the header's badge); none for those who cannot review.
#[server]
pub async fn pending_reviews() -> Result<i64, ApiError> {
    let Some(caller) = parts()?.extensions.get::<Caller>().cloned() else { return Ok(0) };
    if !caller.can(Permission::ReviewRollbacks) {
        return Ok(0);
    }
    let query = RollbackQuery { awaiting_review: Some(true), limit: Some(1), ..Default::default() };
    Ok(backend()?.list_rollbacks(&caller, query).await?.total)
}

/// Approves or rejects a request; the form's two buttons send `decision`.
#[server]
pub async fn review_rollback(id: i64, decision: Decision, comment: String) -> Result<RollbackRequest, ApiError> {
    backend()?.review_rollback(&caller()?, id, decision, ReviewInput { comment }).await
}

#[server]
pub async fn cancel_rollback(id: i64, comment: String) -> Result<RollbackRequest, ApiError> {
    backend()?.cancel_rollback(&caller()?, id, ReviewInput { comment }).await
}

#[server]
pub async fn acknowledge_break_glass(id: i64, comment: String) -> Result<RollbackRequest, ApiError> {
    backend()?.acknowledge_break_glass(&caller()?, id, ReviewInput { comment }).await
}

/// The environments page: every policy, and the webhooks for admins who manage them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentsPageData {
    pub policies: Vec<Policy>,
    pub may_edit: bool,
    /// `None` unless the caller manages webhooks.
    pub webhooks: Option<Vec<Webhook>>,
}

#[server]
pub async fn environments_page() -> Result<EnvironmentsPageData, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let webhooks = match caller.can(Permission::ManageWebhooks) {
        true => Some(backend.list_webhooks(&caller).await?),
        false => None,
    };
    Ok(EnvironmentsPageData {
        policies: backend.list_policies(&caller).await?,
        may_edit: caller.can(Permission::ManageEnvironments),
        webhooks,
    })
}

/// A whole number from a form field, or a 422 naming it.
#[cfg(feature = "ssr")]
fn whole(field: &str, raw: &str) -> Result<u32, ApiError> {
    raw.trim().parse().map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a whole number")))
}

/// Saves a policy's numbers, break-glass roles, auto-filing and convergence deadline; its freeze windows stay as they are.
#[server]
pub async fn save_policy(
    environment: String,
    approvals_required: String,
    approval_ttl_minutes: String,
    break_glass_roles: Option<RoleChoice>,
    auto_request: Option<String>,
    #[server(default)] convergence_deadline_seconds: Option<String>,
) -> Result<Policy, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let current = backend.policy(&caller, &environment).await?;
    let deadline = match convergence_deadline_seconds.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(raw) => whole("convergence_deadline_seconds", raw)?,
        None => current.convergence_deadline_seconds,
    };
    let input = PolicyInput {
        approvals_required: whole("approvals_required", &approvals_required)?,
        approval_ttl_minutes: whole("approval_ttl_minutes", &approval_ttl_minutes)?,
        freeze_windows: current.freeze_windows,
        break_glass_roles: break_glass_roles.unwrap_or_default().roles(),
        auto_request: auto_request.is_some(),
        convergence_deadline_seconds: deadline,
    };
    backend.update_policy(&caller, &environment, input).await
}

/// `2026-12-24T18:00` as a `datetime-local` field sends it, read as UTC.
#[cfg(any(feature = "ssr", test))]
pub(super) fn utc(value: &str) -> String {
    let value = value.trim();
    let has_zone = value.ends_with('Z') || value.get(16..).is_some_and(|rest| rest.contains(['+', '-']));
    match (has_zone, value.len()) {
        (true, _) => value.to_string(),
        (false, 16) => format!("{value}:00Z"),
        (false, _) => format!("{value}Z"),
    }
}

#[server]
pub async fn add_freeze_window(
    environment: String,
    starts_at: String,
    ends_at: String,
    reason: String,
) -> Result<Policy, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let current = backend.policy(&caller, &environment).await?;
    let mut input = PolicyInput::from(&current);
    input.freeze_windows.push(FreezeWindow { starts_at: utc(&starts_at), ends_at: utc(&ends_at), reason });
    backend.update_policy(&caller, &environment, input).await
}

#[server]
pub async fn remove_freeze_window(environment: String, index: usize) -> Result<Policy, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let current = backend.policy(&caller, &environment).await?;
    let mut input = PolicyInput::from(&current);
    if index >= input.freeze_windows.len() {
        return Err(ApiError::invalid("index", "no such freeze window"));
    }
    input.freeze_windows.remove(index);
    backend.update_policy(&caller, &environment, input).await
}

/// Registers a webhook; empty `model` or `environment` means all.
#[server]
pub async fn add_webhook(
    url: String,
    model: String,
    environment: String,
    description: String,
) -> Result<CreatedWebhook, ApiError> {
    let some = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let input =
        NewWebhook { url: url.trim().to_string(), model: some(model), environment: some(environment), description };
    backend()?.create_webhook(&caller()?, input).await
}

#[server]
pub async fn set_webhook_active(id: i64, active: bool) -> Result<Webhook, ApiError> {
    backend()?.update_webhook(&caller()?, id, WebhookPatch { active: Some(active), description: None }).await
}

#[server]
pub async fn remove_webhook(id: i64) -> Result<Webhook, ApiError> {
    backend()?.delete_webhook(&caller()?, id).await
}

/// A webhook's latest deliveries with their attempts.
#[server]
pub async fn webhook_log(id: i64) -> Result<Page<WebhookDelivery>, ApiError> {
    backend()?.webhook_deliveries(&caller()?, id, HistoryQuery { limit: Some(20), offset: None }).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_times_are_read_as_utc() {
        assert_eq!(super::utc("2026-12-24T18:00"), "2026-12-24T18:00:00Z");
        assert_eq!(super::utc("2026-12-24T18:00:30"), "2026-12-24T18:00:30Z");
        assert_eq!(super::utc("2026-12-24T18:00:00+01:00"), "2026-12-24T18:00:00+01:00");
        assert_eq!(super::utc("2026-12-24T18:00:00Z"), "2026-12-24T18:00:00Z");
    }
}
