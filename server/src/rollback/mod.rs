//! Guarded rollback: requests filed after preflight, four-eyes reviews, execution by
//! compare-and-swap, expiry, break glass and its acknowledgement, and requests filed by the server
//! when a live version fails. Each step writes its audit entries and events in its transaction.

pub mod plan;
pub mod policy;

use std::collections::HashMap;

use app::backend::{Deployments, Rollbacks};
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use serde_json::json;
use sqlx::AnyConnection;

use crate::audit::{AuditActor, AuditedTx, Change, Target};
use crate::clock::rfc3339;
use crate::db::DbResultExt;
use crate::fleet::assignment::AssignmentSigner;
use crate::live::{LiveChange, move_live_version};
use crate::store::Store;
use crate::versions::model_id;
use plan::Live;

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: i64,
    model: String,
    environment: String,
    model_id: i64,
    environment_id: i64,
    from_version: i64,
    to_version: i64,
    reason: String,
    kind: String,
    status: String,
    approvals_required: i64,
    requested_by: String,
    requester: Option<String>,
    requested_at: i64,
    expires_at: i64,
    closed_at: Option<i64>,
    closed_by: Option<String>,
    outcome: String,
    revision: Option<i64>,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<i64>,
    acknowledgement: Option<String>,
    fleet_state: Option<String>,
    converged_at: Option<i64>,
}

const REQUEST_SELECT: &str = "SELECT r.id, m.name AS model, e.name AS environment, r.model_id, r.environment_id, \
     r.from_version, r.to_version, r.reason, r.kind, r.status, r.approvals_required, r.requested_by, r.requester, \
     r.requested_at, r.expires_at, r.closed_at, r.closed_by, r.outcome, r.revision, r.acknowledged_by, \
     r.acknowledged_at, r.acknowledgement, h.fleet_state, h.converged_at \
     FROM rollback_requests r JOIN models m ON m.id = r.model_id JOIN environments e ON e.id = r.environment_id \
     LEFT JOIN deployment_history h ON h.model_id = r.model_id AND h.environment_id = r.environment_id \
     AND h.revision = r.revision";

impl RequestRow {
    /// An open request past its time-to-live reads as expired even before the sweep closes it.
    fn status(&self, now: i64) -> RollbackStatus {
        match RollbackStatus::parse(&self.status).unwrap_or(RollbackStatus::Open) {
            RollbackStatus::Open if self.expires_at <= now => RollbackStatus::Expired,
            status => status,
        }
    }

    fn into_request(self, reviews: Vec<Review>, now: i64) -> RollbackRequest {
        let status = self.status(now);
        RollbackRequest {
            id: self.id,
            model: self.model,
            environment: self.environment,
            from_version: self.from_version,
            to_version: self.to_version,
            reason: self.reason,
            kind: RollbackKind::parse(&self.kind).unwrap_or(RollbackKind::Request),
            status,
            approvals_required: self.approvals_required as u32,
            approvals: reviews.iter().filter(|r| r.decision == Decision::Approve).count() as u32,
            reviews,
            requested_by: self.requested_by,
            requester: self.requester,
            requested_at: rfc3339(self.requested_at),
            expires_at: rfc3339(self.expires_at),
            closed_at: self.closed_at.map(rfc3339),
            closed_by: self.closed_by,
            outcome: self.outcome,
            revision: self.revision,
            acknowledgement: match (self.acknowledged_by, self.acknowledged_at) {
                (Some(by), Some(at)) => {
                    Some(Acknowledgement { by, at: rfc3339(at), comment: self.acknowledgement.unwrap_or_default() })
                }
                _ => None,
            },
            rollout: self.fleet_state.as_deref().and_then(RolloutState::parse),
            converged_at: self.converged_at.map(rfc3339),
        }
    }
}

/// The reviews of the given requests, oldest first.
async fn reviews(conn: &mut AnyConnection, ids: &[i64]) -> Result<HashMap<i64, Vec<Review>>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT request_id, reviewer, actor, decision, comment, at FROM rollback_reviews \
         WHERE request_id IN ({}) ORDER BY at, reviewer",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, (i64, String, String, String, String, i64)>(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let mut out: HashMap<i64, Vec<Review>> = HashMap::new();
    for (id, reviewer, actor, decision, comment, at) in query.fetch_all(conn).await? {
        let decision = Decision::parse(&decision).unwrap_or(Decision::Reject);
        out.entry(id).or_default().push(Review { reviewer, actor, decision, comment, at: rfc3339(at) });
    }
    Ok(out)
}

async fn load_row(conn: &mut AnyConnection, id: i64) -> Result<RequestRow, ApiError> {
    sqlx::query_as::<_, RequestRow>(&format!("{REQUEST_SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("rollback request {id} not found")))
}

async fn load(conn: &mut AnyConnection, id: i64, now: i64) -> Result<RollbackRequest, ApiError> {
    let row = load_row(conn, id).await?;
    let mut reviews = reviews(conn, &[id]).await?;
    Ok(row.into_request(reviews.remove(&id).unwrap_or_default(), now))
}

/// Locks a request's row for the rest of the transaction (concurrent reviews take turns), then reads it.
async fn lock(conn: &mut AnyConnection, id: i64) -> Result<RequestRow, ApiError> {
    sqlx::query("UPDATE rollback_requests SET status = status WHERE id = $1").bind(id).execute(&mut *conn).await?;
    load_row(conn, id).await
}

/// Who acts in a step: the audit log's actor and the name history and requests record.
struct Acting {
    audit: AuditActor,
    name: String,
    username: Option<String>,
    /// Signs the assignment of a live-version change this acting makes.
    signer: Option<AssignmentSigner>,
}

impl From<&Caller> for Acting {
    fn from(caller: &Caller) -> Self {
        Self { audit: caller.into(), name: caller.actor().name, username: Some(caller.username.clone()), signer: None }
    }
}

impl Acting {
    fn system(what: &str) -> Self {
        let audit = AuditActor::system(what);
        Self { name: audit.display.clone(), audit, username: None, signer: None }
    }

    /// The same acting, signing assignments with the store's key.
    fn signing(self, store: &Store) -> Self {
        Self { signer: store.part::<AssignmentSigner>().cloned(), ..self }
    }
}

/// Closes a request with `status` if it is still open (a concurrent writer may have closed it
/// first), records why, and tells subscribers; `None` when it was no longer open.
async fn close_if_open(
    tx: &mut AuditedTx<'_>,
    id: i64,
    status: RollbackStatus,
    outcome: &str,
    by: &Acting,
    now: i64,
) -> Result<Option<RollbackRequest>, ApiError> {
    let closed = sqlx::query(
        "UPDATE rollback_requests SET status = $1, outcome = $2, closed_at = $3, closed_by = $4 \
         WHERE id = $5 AND status = 'open'",
    )
    .bind(status.as_str())
    .bind(outcome)
    .bind(now)
    .bind(&by.name)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if closed.rows_affected() == 0 {
        return Ok(None);
    }
    let request = load(tx, id, now).await?;
    let action = match status {
        RollbackStatus::Expired => AuditAction::RollbackExpire,
        RollbackStatus::Stale => AuditAction::RollbackStale,
        RollbackStatus::Rejected => AuditAction::RollbackReject,
        _ => AuditAction::RollbackCancel,
    };
    let change = Change::new(action, Target::rollback(&request.model, &request.environment, id))
        .before(&json!({ "status": "open" }))
        .after(&json!({ "status": status, "outcome": outcome }));
    tx.record(by.audit.clone(), change).await?;
    tx.announce(ServerEvent::Rollback { request: request.clone() });
    Ok(Some(request))
}

/// Closes a request this transaction has locked (so it is open).
async fn close(
    tx: &mut AuditedTx<'_>,
    id: i64,
    status: RollbackStatus,
    outcome: &str,
    by: &Acting,
    now: i64,
) -> Result<RollbackRequest, ApiError> {
    close_if_open(tx, id, status, outcome, by, now)
        .await?
        .ok_or_else(|| ApiError::conflict(format!("rollback request {id} is no longer open")))
}

/// Closes as expired the open requests past their time-to-live (of one model and environment, or all).
async fn expire_overdue(tx: &mut AuditedTx<'_>, scope: Option<(i64, i64)>, now: i64) -> Result<usize, ApiError> {
    let (model, environment) = scope.unzip();
    let ids: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, approvals_required FROM rollback_requests WHERE status = 'open' AND expires_at <= $1 \
         AND ($2 IS NULL OR model_id = $2) AND ($3 IS NULL OR environment_id = $3) ORDER BY id",
    )
    .bind(now)
    .bind(model)
    .bind(environment)
    .fetch_all(&mut **tx)
    .await?;
    let mut expired = 0;
    for (id, required) in &ids {
        let outcome = format!("not approved by {required} reviewer(s) in time");
        let by = Acting::system("expiry");
        expired += usize::from(close_if_open(tx, *id, RollbackStatus::Expired, &outcome, &by, now).await?.is_some());
    }
    Ok(expired)
}

/// Closes as stale the open requests of a model in an environment whose live version just changed
/// by another path (a deploy, a break glass), except `except`.
pub(crate) async fn supersede_open(
    tx: &mut AuditedTx<'_>,
    (model_id, environment_id): (i64, i64),
    except: Option<i64>,
    why: &str,
    by: &Caller,
    now: i64,
) -> Result<(), ApiError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM rollback_requests WHERE status = 'open' AND model_id = $1 AND environment_id = $2 \
         AND id <> $3",
    )
    .bind(model_id)
    .bind(environment_id)
    .bind(except.unwrap_or(0))
    .fetch_all(&mut **tx)
    .await?;
    for id in ids {
        close_if_open(tx, id, RollbackStatus::Stale, why, &Acting::from(by), now).await?;
    }
    Ok(())
}

/// Moves the live version to the request's target if it is still the request's `from` version
/// (else the request ends stale and nothing else changes); history, request and audit entry
/// commit together with the caller's transaction.
async fn execute(
    tx: &mut AuditedTx<'_>,
    row: &RequestRow,
    kind: DeploymentKind,
    by: &Acting,
    now: i64,
) -> Result<RollbackRequest, ApiError> {
    let current = plan::live(tx, row.model_id, row.environment_id).await?;
    let Some(Live { revision, .. }) = current.filter(|l| l.version == row.from_version) else {
        let now_live = current.map_or_else(|| "nothing".to_string(), |l| format!("v{}", l.version));
        let outcome = format!("stale: {now_live} is live now, not v{} as when requested", row.from_version);
        return close(tx, row.id, RollbackStatus::Stale, &outcome, by, now).await;
    };
    let event = move_live_version(
        tx,
        LiveChange {
            model: &row.model,
            environment: &row.environment,
            to_version: row.to_version,
            kind,
            reason: &row.reason,
            actor: &Actor { name: by.name.clone() },
            expected_revision: Some(revision),
            request: Some(row.id),
            now,
        },
        by.audit.clone(),
        by.signer.as_ref(),
    )
    .await?;
    sqlx::query(
        "UPDATE rollback_requests SET status = 'executed', outcome = $1, closed_at = $2, closed_by = $3, revision = $4 \
         WHERE id = $5",
    )
    .bind(format!("executed by {}: revision {}", by.name, event.revision))
    .bind(now)
    .bind(&by.name)
    .bind(event.revision)
    .bind(row.id)
    .execute(&mut **tx)
    .await?;
    let request = load(tx, row.id, now).await?;
    tx.announce(ServerEvent::Rollback { request: request.clone() });
    Ok(request)
}

/// A request to file: where, to which version (the proposed one when `None`), why, by whom.
struct Filing<'a> {
    model: &'a str,
    environment: &'a str,
    to_version: Option<i64>,
    reason: &'a str,
    kind: RollbackKind,
    by: &'a Acting,
    now: i64,
}

/// Runs preflight and files the request (executing it when the policy needs no approval, or for
/// break glass). Refusals (409) say which check failed; an unknown target is a 422 naming `to_version`.
async fn file(tx: &mut AuditedTx<'_>, filing: Filing<'_>) -> Result<RollbackRequest, ApiError> {
    let Filing { model, environment, to_version, reason, kind, by, now } = filing;
    let model_id = model_id(tx, model).await?;
    let (environment_id, policy) = policy::load(tx, environment).await?;
    let break_glass = kind == RollbackKind::BreakGlass;
    expire_overdue(tx, Some((model_id, environment_id)), now).await?;
    if let Some(v) = to_version.filter(|v| *v > 0)
        && !plan::is_registered(tx, model_id, v).await?
    {
        return Err(ApiError::invalid("to_version", format!("version {v} was never registered for {model}")));
    }
    let live = plan::live(tx, model_id, environment_id).await?;
    let live_version = live.map(|l| l.version);
    let target = match to_version {
        Some(v) => Some(v),
        None => plan::proposed(&plan::candidates(tx, model_id, environment_id, live_version).await?),
    };
    let target_blocker = match target {
        Some(t) => plan::target_blocker(tx, model, t).await?,
        None => None,
    };
    let open_request = plan::open_request(tx, model_id, environment_id, now).await?;
    let facts = PreflightFacts {
        model,
        environment,
        live: live_version,
        target,
        target_blocker,
        frozen: policy::active_freeze(&policy, now),
        open_request,
    };
    if let Some(failed) = facts.checks(break_glass).into_iter().find(|c| !c.passed) {
        return Err(ApiError::conflict(failed.message));
    }
    let (Some(from_version), Some(to_version)) = (live_version, target) else { return Err(ApiError::internal()) };
    let approvals = if break_glass { 0 } else { i64::from(policy.approvals_required) };
    let expires_at = now + i64::from(policy.approval_ttl_minutes) * 60_000;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rollback_requests (model_id, environment_id, from_version, to_version, reason, kind, status, \
         approvals_required, requested_by, requester, requested_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(model_id)
    .bind(environment_id)
    .bind(from_version)
    .bind(to_version)
    .bind(reason)
    .bind(kind.as_str())
    .bind(approvals)
    .bind(&by.name)
    .bind(&by.username)
    .bind(now)
    .bind(expires_at)
    .fetch_one(&mut **tx)
    .await
    .on_unique_violation(|| {
        ApiError::conflict(format!("a rollback request is already open for {model} in {environment}"))
    })?;
    let row = load_row(tx, id).await?;
    if break_glass {
        return execute(tx, &row, DeploymentKind::BreakGlass, by, now).await;
    }
    let request = load(tx, id, now).await?;
    let change = Change::new(AuditAction::RollbackRequest, Target::rollback(model, environment, id)).after(&json!({
        "from_version": from_version, "to_version": to_version, "kind": kind,
        "approvals_required": approvals, "expires_at": request.expires_at,
    }));
    tx.record(by.audit.clone(), change.reason(reason)).await?;
    tx.announce(ServerEvent::Rollback { request: request.clone() });
    if approvals == 0 {
        return execute(tx, &row, DeploymentKind::Rollback, by, now).await;
    }
    Ok(request)
}

impl Store {
    /// Closes every overdue open request; the server runs this every minute. Returns how many.
    pub async fn expire_rollbacks(&self) -> Result<usize, ApiError> {
        let mut tx = self.begin_write().await?;
        let expired = expire_overdue(&mut tx, None, self.clock.now_ms()).await?;
        if expired > 0 {
            tx.finish().await?;
        }
        Ok(expired)
    }

    /// Files a rollback request for a live version that just turned failing, when the
    /// environment's policy says so; preflight refusals (nothing to go back to, a request already
    /// open, a freeze) are logged, not errors.
    pub(crate) async fn file_automatic_rollback(&self, model: &str, environment: &str, version: i64) {
        let by = Acting::system("guardrails").signing(self);
        let result = async {
            let mut tx = self.begin_write().await?;
            let (environment_id, policy) = policy::load(&mut tx, environment).await?;
            let model_id = model_id(&mut tx, model).await?;
            let live = plan::live(&mut tx, model_id, environment_id).await?;
            if !policy.auto_request || live.is_none_or(|l| l.version != version) {
                return Ok(None);
            }
            let reason = format!("v{version} is failing its guardrails in {environment}");
            let filing = Filing {
                model,
                environment,
                to_version: None,
                reason: &reason,
                kind: RollbackKind::Automatic,
                by: &by,
                now: self.clock.now_ms(),
            };
            let request = file(&mut tx, filing).await?;
            tx.finish().await?;
            Ok::<_, ApiError>(Some(request))
        }
        .await;
        match result {
            Ok(Some(request)) => {
                tracing::info!(id = request.id, model, environment, "filed an automatic rollback request")
            }
            Ok(None) => {}
            Err(e) => tracing::info!(model, environment, reason = %e.message, "no automatic rollback request"),
        }
    }
}

#[async_trait]
impl Rollbacks for Store {
    async fn list_policies(&self, caller: &Caller) -> Result<Vec<Policy>, ApiError> {
        caller.require(Permission::Read)?;
        policy::load_all(&mut *self.conn().await?).await
    }

    async fn policy(&self, caller: &Caller, environment: &str) -> Result<Policy, ApiError> {
        caller.require(Permission::Read)?;
        Ok(policy::load(&mut *self.conn().await?, environment).await?.1)
    }

    async fn update_policy(&self, caller: &Caller, environment: &str, input: PolicyInput) -> Result<Policy, ApiError> {
        caller.require(Permission::ManageEnvironments)?;
        let mut tx = self.begin_write().await?;
        let (policy, change) =
            policy::update(&mut tx, environment, input, &caller.actor(), self.clock.now_ms()).await?;
        tx.commit(caller, change).await?;
        Ok(policy)
    }

    async fn rollback_plan(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        target: Option<i64>,
    ) -> Result<RollbackPlan, ApiError> {
        caller.require(Permission::Read)?;
        let now = self.clock.now_ms();
        let mut conn = self.conn().await?;
        let model_id = model_id(&mut conn, model).await?;
        let (environment_id, policy) = policy::load(&mut conn, environment).await?;
        let live = self.live_version(caller, model, environment).await?;
        let candidates = plan::candidates(&mut conn, model_id, environment_id, live.version).await?;
        let proposed = plan::proposed(&candidates);
        let chosen = target.or(proposed);
        let target_blocker = match chosen {
            Some(t) => plan::target_blocker(&mut conn, model, t).await?,
            None => None,
        };
        let open = plan::open_request(&mut conn, model_id, environment_id, now).await?;
        let frozen = policy::active_freeze(&policy, now).cloned();
        let facts = PreflightFacts {
            model,
            environment,
            live: live.version,
            target: chosen,
            target_blocker,
            frozen: frozen.as_ref(),
            open_request: open,
        };
        let checks = facts.checks(false);
        let comparison = match (live.version, chosen) {
            (Some(l), Some(t)) => plan::comparison(&mut conn, model_id, environment_id, l, t).await?,
            _ => Vec::new(),
        };
        let live_health =
            candidates.iter().find(|c| Some(c.version) == live.version).map_or(Health::Unknown, |c| c.health);
        let open_request = match open {
            Some(id) => Some(load(&mut conn, id, now).await?),
            None => None,
        };
        Ok(RollbackPlan {
            live,
            live_health,
            proposed,
            target: chosen,
            candidates,
            checks,
            comparison,
            policy,
            open_request,
            frozen,
        })
    }

    async fn request_rollback(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: RollbackInput,
    ) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::RequestRollbacks)?;
        input.validate()?;
        let by = Acting::from(caller).signing(self);
        let mut tx = self.begin_write().await?;
        let filing = Filing {
            model,
            environment,
            to_version: input.to_version,
            reason: &input.reason,
            kind: RollbackKind::Request,
            by: &by,
            now: self.clock.now_ms(),
        };
        let request = file(&mut tx, filing).await?;
        tx.finish().await?;
        Ok(request)
    }

    async fn review_rollback(
        &self,
        caller: &Caller,
        id: i64,
        decision: Decision,
        input: ReviewInput,
    ) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::ReviewRollbacks)?;
        input.validate(decision == Decision::Reject)?;
        let now = self.clock.now_ms();
        let by = Acting::from(caller).signing(self);
        let mut tx = self.begin_write().await?;
        let row = lock(&mut tx, id).await?;
        match row.status(now) {
            RollbackStatus::Open => {}
            RollbackStatus::Expired if row.status == "open" => {
                let request =
                    close(&mut tx, id, RollbackStatus::Expired, "not approved in time", &Acting::system("expiry"), now)
                        .await?;
                tx.finish().await?;
                return Err(ApiError::conflict(format!(
                    "rollback request {id} expired at {} and can no longer execute",
                    request.expires_at
                )));
            }
            status => {
                return Err(ApiError::conflict(format!("rollback request {id} is already {}", status.as_str())));
            }
        }
        if row.requester.as_deref() == Some(caller.username.as_str()) {
            return Err(ApiError::forbidden(format!(
                "you requested rollback {id}; another reviewer must {} it (whichever session or token you use)",
                decision.as_str()
            )));
        }
        sqlx::query(
            "INSERT INTO rollback_reviews (request_id, reviewer, actor, decision, comment, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&caller.username)
        .bind(&by.name)
        .bind(decision.as_str())
        .bind(&input.comment)
        .bind(now)
        .execute(&mut *tx)
        .await
        .on_unique_violation(|| ApiError::conflict(format!("you already reviewed rollback request {id}")))?;
        let approvals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM rollback_reviews WHERE request_id = $1 AND decision = 'approve'")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let target = Target::rollback(&row.model, &row.environment, id);
        let request = match decision {
            Decision::Reject => {
                let outcome = format!("rejected by {}: {}", by.name, input.comment.trim());
                close(&mut tx, id, RollbackStatus::Rejected, &outcome, &by, now).await?
            }
            Decision::Approve => {
                let change = Change::new(AuditAction::RollbackApprove, target)
                    .after(&json!({ "approvals": approvals, "approvals_required": row.approvals_required }))
                    .reason(&input.comment);
                tx.record(by.audit.clone(), change).await?;
                if approvals >= row.approvals_required {
                    execute(&mut tx, &row, DeploymentKind::Rollback, &by, now).await?
                } else {
                    let request = load(&mut tx, id, now).await?;
                    tx.announce(ServerEvent::Rollback { request: request.clone() });
                    request
                }
            }
        };
        tx.finish().await?;
        Ok(request)
    }

    async fn cancel_rollback(&self, caller: &Caller, id: i64, input: ReviewInput) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::RequestRollbacks)?;
        input.validate(false)?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let row = lock(&mut tx, id).await?;
        if row.status(now) != RollbackStatus::Open {
            return Err(ApiError::conflict(format!("rollback request {id} is already {}", row.status(now).as_str())));
        }
        if row.requester.as_deref() != Some(caller.username.as_str()) {
            return Err(ApiError::forbidden(format!("only the requester can cancel rollback request {id}")));
        }
        let outcome = match input.comment.trim() {
            "" => "cancelled by the requester".to_string(),
            why => format!("cancelled by the requester: {why}"),
        };
        let request = close(&mut tx, id, RollbackStatus::Cancelled, &outcome, &Acting::from(caller), now).await?;
        tx.finish().await?;
        Ok(request)
    }

    async fn break_glass(
        &self,
        caller: &Caller,
        model: &str,
        environment: &str,
        input: BreakGlassInput,
    ) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::Read)?;
        input.validate(model)?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let model_id = model_id(&mut tx, model).await?;
        let (environment_id, policy) = policy::load(&mut tx, environment).await?;
        if !policy.lets_break_glass(&caller.roles) {
            let allowed: Vec<&str> = policy.break_glass_roles.iter().map(|r| r.as_str()).collect();
            return Err(ApiError::forbidden(format!(
                "breaking glass in {environment} is allowed for: {}",
                if allowed.is_empty() { "nobody".to_string() } else { allowed.join(", ") }
            )));
        }
        let why = format!("superseded by a break-glass rollback by {}", caller.actor().name);
        supersede_open(&mut tx, (model_id, environment_id), None, &why, caller, now).await?;
        let by = Acting::from(caller).signing(self);
        let filing = Filing {
            model,
            environment,
            to_version: input.to_version,
            reason: &input.justification,
            kind: RollbackKind::BreakGlass,
            by: &by,
            now,
        };
        let request = file(&mut tx, filing).await?;
        tx.finish().await?;
        Ok(request)
    }

    async fn acknowledge_break_glass(
        &self,
        caller: &Caller,
        id: i64,
        input: ReviewInput,
    ) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::ReviewRollbacks)?;
        input.validate(false)?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let row = lock(&mut tx, id).await?;
        if row.kind != RollbackKind::BreakGlass.as_str() {
            return Err(ApiError::conflict(format!("rollback {id} is not a break-glass rollback")));
        }
        if let Some(by) = &row.acknowledged_by {
            return Err(ApiError::conflict(format!("break-glass rollback {id} was already acknowledged by {by}")));
        }
        if row.requester.as_deref() == Some(caller.username.as_str()) {
            return Err(ApiError::forbidden(format!(
                "you broke glass in rollback {id}; another reviewer must acknowledge it"
            )));
        }
        let by = caller.actor().name;
        sqlx::query("UPDATE rollback_requests SET acknowledged_by = $1, acknowledged_at = $2, acknowledgement = $3 WHERE id = $4")
            .bind(&by)
            .bind(now)
            .bind(&input.comment)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let request = load(&mut tx, id, now).await?;
        tx.announce(ServerEvent::Rollback { request: request.clone() });
        let change = Change::new(AuditAction::RollbackAcknowledge, Target::rollback(&row.model, &row.environment, id))
            .after(&json!({ "acknowledged_by": by }))
            .reason(&input.comment);
        tx.commit(caller, change).await?;
        Ok(request)
    }

    async fn list_rollbacks(&self, caller: &Caller, query: RollbackQuery) -> Result<Page<RollbackRequest>, ApiError> {
        caller.require(Permission::Read)?;
        query.validate()?;
        let now = self.clock.now_ms();
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = query.offset.unwrap_or(0);
        let status = query.status.map(|s| s.as_str());
        let filter = "WHERE ($1 IS NULL OR m.name = $1) AND ($2 IS NULL OR e.name = $2) \
             AND ($3 IS NULL OR (CASE WHEN r.status = 'open' AND r.expires_at <= $4 THEN 'expired' ELSE r.status END) = $3) \
             AND ($5 = 0 OR (r.status = 'open' AND r.expires_at > $4) OR (r.kind = 'break_glass' AND r.acknowledged_at IS NULL))";
        let awaiting = i64::from(query.awaiting_review.unwrap_or(false));
        let mut conn = self.conn().await?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM rollback_requests r JOIN models m ON m.id = r.model_id \
             JOIN environments e ON e.id = r.environment_id {filter}"
        ))
        .bind(&query.model)
        .bind(&query.environment)
        .bind(status)
        .bind(now)
        .bind(awaiting)
        .fetch_one(&mut *conn)
        .await?;
        let rows: Vec<RequestRow> =
            sqlx::query_as(&format!("{REQUEST_SELECT} {filter} ORDER BY r.id DESC LIMIT $6 OFFSET $7"))
                .bind(&query.model)
                .bind(&query.environment)
                .bind(status)
                .bind(now)
                .bind(awaiting)
                .bind(i64::from(limit))
                .bind(offset as i64)
                .fetch_all(&mut *conn)
                .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut reviews = reviews(&mut conn, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let id = r.id;
                r.into_request(reviews.remove(&id).unwrap_or_default(), now)
            })
            .collect();
        Ok(Page { items, total, limit, offset })
    }

    async fn get_rollback(&self, caller: &Caller, id: i64) -> Result<RollbackRequest, ApiError> {
        caller.require(Permission::Read)?;
        load(&mut *self.conn().await?, id, self.clock.now_ms()).await
    }
}
