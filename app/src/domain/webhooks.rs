//! Webhooks: URLs told of every live-version change, signed, with a log of each delivery.

use serde::{Deserialize, Serialize};

use super::DeploymentEvent;

/// A registered receiver of live-version changes (every model and environment when unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub model: Option<String>,
    pub environment: Option<String>,
    pub description: String,
    pub active: bool,
    pub created_at: String,
    pub created_by: String,
    /// Deliveries not yet made (waiting for a retry).
    pub pending: i64,
    /// Deliveries given up after every retry.
    pub failed: i64,
    pub delivered: i64,
}

/// Body of `POST /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http://` or `https://`.
    pub url: String,
    /// Only changes of this model.
    #[serde(default)]
    pub model: Option<String>,
    /// Only changes in this environment.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// Body of `PATCH /api/v1/webhooks/{id}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A new webhook and its signing secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// The HMAC-SHA256 key of the `Modelgate-Signature` header (its UTF-8 bytes, as shown).
    pub secret: String,
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// One try to deliver an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    pub at: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// One event's delivery to one webhook, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: i64,
    pub status: DeliveryStatus,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub payload: WebhookPayload,
    pub attempts: Vec<DeliveryAttempt>,
}

/// The JSON body a webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// The event's number (also `Modelgate-Event-Id`); a receiver may see it twice after a retry.
    pub id: i64,
    /// `deployment`: a live version changed; `rollout`: that change converged through the serving
    /// fleet, or missed its deadline (`rollout.state` says which).
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub deployment: DeploymentEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::Rollout>,
}
