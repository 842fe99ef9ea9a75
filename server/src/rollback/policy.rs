//! Each environment's rollback policy: approvals required, time-to-live, freeze windows,
//! break-glass roles and auto-filing. An environment without a stored policy has the default one.

use app::domain::*;
use app::error::ApiError;
use sqlx::AnyConnection;

use crate::audit::{AuditedTx, Change, Target};
use crate::clock::{parse_rfc3339, rfc3339};
use crate::store::{from_json, to_json};

/// Approvals a new environment's rollbacks need until an admin says otherwise: guarded by default.
const DEFAULT_APPROVALS: i64 = 1;
const DEFAULT_TTL_MINUTES: i64 = 60;

#[derive(sqlx::FromRow)]
struct PolicyRow {
    environment_id: i64,
    environment: String,
    environment_created_at: i64,
    approvals_required: Option<i64>,
    approval_ttl_minutes: Option<i64>,
    freeze_windows: Option<String>,
    break_glass_roles: Option<String>,
    auto_request: Option<i64>,
    convergence_deadline_seconds: Option<i64>,
    updated_at: Option<i64>,
    updated_by: Option<String>,
}

impl PolicyRow {
    fn into_policy(self) -> (i64, Policy) {
        let policy = Policy {
            environment: self.environment,
            approvals_required: self.approvals_required.unwrap_or(DEFAULT_APPROVALS) as u32,
            approval_ttl_minutes: self.approval_ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES) as u32,
            freeze_windows: self.freeze_windows.as_deref().map(from_json).unwrap_or_default(),
            break_glass_roles: match self.break_glass_roles.as_deref() {
                Some(text) => from_json(text),
                None => default_break_glass_roles(),
            },
            auto_request: self.auto_request.unwrap_or(0) != 0,
            convergence_deadline_seconds: self
                .convergence_deadline_seconds
                .map_or_else(default_convergence_deadline, |s| s as u32),
            updated_at: rfc3339(self.updated_at.unwrap_or(self.environment_created_at)),
            updated_by: self.updated_by.unwrap_or_else(|| "system".into()),
        };
        (self.environment_id, policy)
    }
}

const POLICY_SELECT: &str = "SELECT e.id AS environment_id, e.name AS environment, e.created_at AS environment_created_at, \
     p.approvals_required, p.approval_ttl_minutes, p.freeze_windows, p.break_glass_roles, p.auto_request, \
     p.convergence_deadline_seconds, \
     p.updated_at, p.updated_by FROM environments e LEFT JOIN rollback_policies p ON p.environment_id = e.id";

/// The policy of a named environment and the environment's id, or 404.
pub(crate) async fn load(conn: &mut AnyConnection, environment: &str) -> Result<(i64, Policy), ApiError> {
    sqlx::query_as::<_, PolicyRow>(&format!("{POLICY_SELECT} WHERE e.name = $1"))
        .bind(environment)
        .fetch_optional(conn)
        .await?
        .map(PolicyRow::into_policy)
        .ok_or_else(|| ApiError::not_found(format!("environment '{environment}' not found")))
}

/// Every environment's policy, in environment order.
pub(crate) async fn load_all(conn: &mut AnyConnection) -> Result<Vec<Policy>, ApiError> {
    let rows: Vec<PolicyRow> =
        sqlx::query_as(&format!("{POLICY_SELECT} ORDER BY e.position, e.id")).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|r| r.into_policy().1).collect())
}

/// The freeze window in force at `now`, if any (windows were checked when saved, so they parse).
pub(crate) fn active_freeze(policy: &Policy, now: i64) -> Option<&FreezeWindow> {
    policy.freeze_windows.iter().find(|w| {
        let parse = |t: &str| parse_rfc3339("", t).ok();
        matches!((parse(&w.starts_at), parse(&w.ends_at)), (Some(s), Some(e)) if s <= now && now < e)
    })
}

/// Checks each freeze window's times (the rest is checked by `PolicyInput::validate`) and
/// normalises them to the server's RFC 3339 form.
fn checked_windows(input: &PolicyInput) -> Result<Vec<FreezeWindow>, ApiError> {
    input
        .freeze_windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let starts = parse_rfc3339(&format!("freeze_windows[{i}].starts_at"), &w.starts_at)?;
            let ends = parse_rfc3339(&format!("freeze_windows[{i}].ends_at"), &w.ends_at)?;
            if ends <= starts {
                return Err(ApiError::invalid(&format!("freeze_windows[{i}].ends_at"), "must be after starts_at"));
            }
            Ok(FreezeWindow { starts_at: rfc3339(starts), ends_at: rfc3339(ends), reason: w.reason.clone() })
        })
        .collect()
}

/// Stores a new policy for an environment, audited with the policy before and after.
pub(crate) async fn update(
    tx: &mut AuditedTx<'_>,
    environment: &str,
    input: PolicyInput,
    actor: &Actor,
    now: i64,
) -> Result<(Policy, Change), ApiError> {
    input.validate()?;
    let windows = checked_windows(&input)?;
    let (environment_id, before) = load(tx, environment).await?;
    let mut roles = input.break_glass_roles.clone();
    roles.sort();
    roles.dedup();
    sqlx::query(
        "INSERT INTO rollback_policies (environment_id, approvals_required, approval_ttl_minutes, freeze_windows, \
         break_glass_roles, auto_request, convergence_deadline_seconds, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (environment_id) DO UPDATE SET approvals_required = excluded.approvals_required, \
         approval_ttl_minutes = excluded.approval_ttl_minutes, freeze_windows = excluded.freeze_windows, \
         break_glass_roles = excluded.break_glass_roles, auto_request = excluded.auto_request, \
         convergence_deadline_seconds = excluded.convergence_deadline_seconds, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(environment_id)
    .bind(i64::from(input.approvals_required))
    .bind(i64::from(input.approval_ttl_minutes))
    .bind(to_json(&windows))
    .bind(to_json(&roles))
    .bind(i64::from(input.auto_request))
    .bind(i64::from(input.convergence_deadline_seconds))
    .bind(now)
    .bind(&actor.name)
    .execute(&mut **tx)
    .await?;
    let (_, after) = load(tx, environment).await?;
    let change = Change::new(AuditAction::PolicyUpdate, Target::policy(environment))
        .before(&PolicyInput::from(&before))
        .after(&PolicyInput::from(&after));
    Ok((after, change))
}
