//! Webhooks: admins register URLs; every live-version change (and its rollout converging or
//! missing its deadline) is written to the outbox
//! (`webhook_deliveries`) in the transaction that makes it, and `delivery` sends it, signed, with
//! retries — so a change is delivered even if the server restarts in between.

pub mod delivery;
pub mod targets;

use app::backend::Webhooks;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use sqlx::AnyConnection;

use crate::audit::{Change, Target};
use crate::clock::rfc3339;
use crate::identity::random_secret;
use crate::store::Store;

/// Prefix of webhook signing secrets, so a leaked one is recognisable.
const SECRET_PREFIX: &str = "whsec_";

/// What a delivery tells: a live-version change, or how far one has spread through the fleet.
pub(crate) enum Subject<'a> {
    Deployment(&'a DeploymentEvent),
    Rollout(&'a DeploymentEvent, &'a Rollout),
}

/// Writes one delivery per active webhook that wants this change, inside the change's transaction.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    event_id: i64,
    subject: &Subject<'_>,
    created_at: &str,
    now: i64,
) -> Result<(), ApiError> {
    let (kind, deployment, rollout) = match subject {
        Subject::Deployment(deployment) => ("deployment", *deployment, None),
        Subject::Rollout(deployment, rollout) => ("rollout", *deployment, Some((*rollout).clone())),
    };
    let payload = WebhookPayload {
        id: event_id,
        kind: kind.into(),
        created_at: created_at.to_string(),
        deployment: deployment.clone(),
        rollout,
    };
    let body = serde_json::to_string(&payload).map_err(|_| ApiError::internal())?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, payload, status, next_attempt_at, created_at) \
         SELECT w.id, $1, $2, 'pending', $3, $3 FROM webhooks w WHERE w.active = 1 \
         AND (w.model_id IS NULL OR w.model_id = (SELECT id FROM models WHERE name = $4)) \
         AND (w.environment_id IS NULL OR w.environment_id = (SELECT id FROM environments WHERE name = $5))",
    )
    .bind(event_id)
    .bind(&body)
    .bind(now)
    .bind(&deployment.model)
    .bind(&deployment.environment)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    model: Option<String>,
    environment: Option<String>,
    description: String,
    active: i64,
    created_at: i64,
    created_by: String,
    pending: i64,
    failed: i64,
    delivered: i64,
}

impl WebhookRow {
    fn into_webhook(self) -> Webhook {
        Webhook {
            id: self.id,
            url: self.url,
            model: self.model,
            environment: self.environment,
            description: self.description,
            active: self.active != 0,
            created_at: rfc3339(self.created_at),
            created_by: self.created_by,
            pending: self.pending,
            failed: self.failed,
            delivered: self.delivered,
        }
    }
}

const WEBHOOK_COLUMNS: &str = "SELECT w.id, w.url, m.name AS model, e.name AS environment, w.description, w.active, \
     w.created_at, w.created_by, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed') AS failed, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'delivered') AS delivered \
     FROM webhooks w LEFT JOIN models m ON m.id = w.model_id LEFT JOIN environments e ON e.id = w.environment_id";

async fn load(conn: &mut AnyConnection, id: i64) -> Result<Webhook, ApiError> {
    sqlx::query_as::<_, WebhookRow>(&format!("{WEBHOOK_COLUMNS} WHERE w.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(WebhookRow::into_webhook)
        .ok_or_else(|| ApiError::not_found(format!("webhook {id} not found")))
}

/// The id of a named model or environment a webhook filters on, or a 422 naming the field.
async fn filter_id(
    conn: &mut AnyConnection,
    table: &str,
    field: &str,
    name: &Option<String>,
) -> Result<Option<i64>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    let id: Option<i64> =
        sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE name = $1")).bind(name).fetch_optional(conn).await?;
    id.map(Some).ok_or_else(|| ApiError::invalid(field, format!("no {field} named '{name}'")))
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    event_id: i64,
    payload: String,
    status: String,
    next_attempt_at: i64,
    created_at: i64,
    delivered_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: i64,
    at: i64,
    status_code: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
}

#[async_trait]
impl Webhooks for Store {
    async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>, ApiError> {
        caller.require(Permission::ManageWebhooks)?;
        let rows: Vec<WebhookRow> =
            sqlx::query_as(&format!("{WEBHOOK_COLUMNS} ORDER BY w.id")).fetch_all(&mut *self.conn().await?).await?;
        Ok(rows.into_iter().map(WebhookRow::into_webhook).collect())
    }

    async fn create_webhook(&self, caller: &Caller, input: NewWebhook) -> Result<CreatedWebhook, ApiError> {
        caller.require(Permission::ManageWebhooks)?;
        input.validate()?;
        if self.part::<targets::Targets>().copied().unwrap_or_default() == targets::Targets::PublicOnly {
            targets::check_url(&input.url).map_err(|why| ApiError::invalid("url", why))?;
        }
        let mut tx = self.begin_write().await?;
        let model_id = filter_id(&mut tx, "models", "model", &input.model).await?;
        let environment_id = filter_id(&mut tx, "environments", "environment", &input.environment).await?;
        let secret = format!("{SECRET_PREFIX}{}", random_secret());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (url, secret, model_id, environment_id, description, active, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7) RETURNING id",
        )
        .bind(&input.url)
        .bind(&secret)
        .bind(model_id)
        .bind(environment_id)
        .bind(&input.description)
        .bind(self.clock.now_ms())
        .bind(caller.actor().name)
        .fetch_one(&mut *tx)
        .await?;
        let webhook = load(&mut tx, id).await?;
        tx.commit(caller, Change::new(AuditAction::WebhookCreate, Target::webhook(id)).after(&webhook)).await?;
        Ok(CreatedWebhook { webhook, secret })
    }

    async fn update_webhook(&self, caller: &Caller, id: i64, patch: WebhookPatch) -> Result<Webhook, ApiError> {
        caller.require(Permission::ManageWebhooks)?;
        patch.validate()?;
        let mut tx = self.begin_write().await?;
        let before = load(&mut tx, id).await?;
        sqlx::query("UPDATE webhooks SET active = $1, description = $2 WHERE id = $3")
            .bind(i64::from(patch.active.unwrap_or(before.active)))
            .bind(patch.description.as_deref().unwrap_or(&before.description))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = load(&mut tx, id).await?;
        let change = Change::new(AuditAction::WebhookUpdate, Target::webhook(id)).before(&before).after(&after);
        tx.commit(caller, change).await?;
        Ok(after)
    }

    async fn delete_webhook(&self, caller: &Caller, id: i64) -> Result<Webhook, ApiError> {
        caller.require(Permission::ManageWebhooks)?;
        let mut tx = self.begin_write().await?;
        let before = load(&mut tx, id).await?;
        for sql in [
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)",
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
            "DELETE FROM webhooks WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit(caller, Change::new(AuditAction::WebhookDelete, Target::webhook(id)).before(&before)).await?;
        Ok(before)
    }

    async fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: i64,
        query: HistoryQuery,
    ) -> Result<Page<WebhookDelivery>, ApiError> {
        caller.require(Permission::ManageWebhooks)?;
        app::domain::validate::page_limit(query.limit)?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = query.offset.unwrap_or(0);
        let mut conn = self.conn().await?;
        load(&mut conn, id).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT id, event_id, payload, status, next_attempt_at, created_at, delivered_at FROM webhook_deliveries \
             WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(id)
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&mut *conn)
        .await?;
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT a.delivery_id, a.at, a.status_code, a.error, a.duration_ms FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1 AND d.id <= $2 AND d.id >= $3 \
             ORDER BY a.id",
        )
        .bind(id)
        .bind(rows.first().map_or(0, |r| r.id))
        .bind(rows.last().map_or(0, |r| r.id))
        .fetch_all(&mut *conn)
        .await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let status = DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Pending);
                let payload = serde_json::from_str(&r.payload).map_err(|_| ApiError::internal())?;
                Ok(WebhookDelivery {
                    id: r.id,
                    event_id: r.event_id,
                    status,
                    created_at: rfc3339(r.created_at),
                    delivered_at: r.delivered_at.map(rfc3339),
                    next_attempt_at: (status == DeliveryStatus::Pending).then(|| rfc3339(r.next_attempt_at)),
                    payload,
                    attempts: attempts
                        .iter()
                        .filter(|a| a.delivery_id == r.id)
                        .map(|a| DeliveryAttempt {
                            at: rfc3339(a.at),
                            status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                            error: a.error.clone(),
                            duration_ms: a.duration_ms,
                        })
                        .collect(),
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Page { items, total, limit, offset })
    }
}
