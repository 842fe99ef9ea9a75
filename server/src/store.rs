//! The service layer: one `Store` that implements every backend use case over the database.
//!
//! Each domain concept implements its part in its own module (`registry`, `deployments`, `identity`);
//! the UI's server functions and the REST handlers both call these, so each rule exists once.

use std::sync::Arc;

use app::domain::AuditEntry;
use app::error::ApiError;
use sqlx::AnyConnection;

use crate::audit::{AuditActor, AuditLog, AuditedFinal, AuditedTx, Change};
use crate::clock::Clock;
use crate::db::{Conn, Db, Dialect, Statement, WriteTx, db_error};
use crate::events::EventBus;
use crate::identity::{AuthSettings, TokenCache};
use crate::metrics::guardrails::HealthChange;
use crate::mlflow::registry::AliasGuesses;
use crate::webhooks::targets::Targets;

/// The database, the clock every write is stamped with, the sign-in rules, the audit log and the
/// bus that tells subscribers what changed.
#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
    pub clock: Clock,
    pub auth: AuthSettings,
    pub audit: Arc<AuditLog>,
    pub events: Arc<EventBus>,
    pub(crate) tokens: Arc<TokenCache>,
    pub(crate) alias_guesses: Arc<AliasGuesses>,
    /// Which addresses webhooks may reach.
    pub webhook_targets: Targets,
}

impl Store {
    pub fn new(db: Db, clock: Clock, auth: AuthSettings, audit: AuditLog) -> Self {
        Self {
            db,
            clock,
            auth,
            audit: Arc::new(audit),
            events: Arc::default(),
            tokens: Arc::default(),
            alias_guesses: Arc::default(),
            webhook_targets: Targets::default(),
        }
    }

    /// The same store with another clock (the demo data set is written as if over past months).
    pub fn with_clock(&self, clock: Clock) -> Self {
        Self { audit: Arc::new(self.audit.with_clock(clock.clone())), clock, ..self.clone() }
    }

    /// Starts a write whose commit appends its audit entry in the same transaction.
    pub(crate) async fn begin_write(&self) -> Result<AuditedTx<'_>, ApiError> {
        Ok(AuditedTx::new(self.db.begin_write().await?, &self.audit, &self.events))
    }

    /// Makes a change of one statement (`statement`, built anew for each try) with its audit
    /// entry. On SQLite the group commit's next committer links the entry and runs both with
    /// its commit, so the change never holds the writer slot; elsewhere it is a write of its own.
    /// The statement may refuse a stale write; then nothing commits and the error is a conflict.
    pub(crate) async fn write_final(
        &self,
        by: impl Into<AuditActor>,
        change: Change,
        statement: impl Fn() -> Statement + Send + Sync + 'static,
    ) -> Result<AuditEntry, ApiError> {
        if self.db.dialect() == Dialect::Postgres {
            return self.begin_write().await?.commit_then(by, change, Some(&statement)).await;
        }
        let (write, outcome) = AuditedFinal::new(self.audit.clone(), by.into(), change, statement);
        self.db.submit_final(Box::new(write));
        outcome.await.map_err(|_| ApiError::internal())?.map_err(db_error)
    }

    /// Starts a write of measurements (metric points) or bookkeeping (idempotency records, a
    /// session's or token's last use): data rather than a change of state, so not audited.
    /// Everything else writes through [`Store::begin_write`] or [`Store::write_final`].
    pub(crate) async fn begin_data_write(&self) -> Result<WriteTx, ApiError> {
        self.db.begin_write().await
    }

    /// After a commit that changed versions' health (its events stored with it): relays the
    /// events, and files a rollback request for a live version that turned failing where the
    /// environment's policy asks for one.
    pub(crate) async fn health_changed(&self, model: &str, changes: Vec<HealthChange>) {
        if changes.is_empty() {
            return;
        }
        self.events.stored();
        for change in changes.into_iter().filter(|c| c.health == app::domain::Health::Failing) {
            self.file_automatic_rollback(model, &change.environment, change.version).await;
        }
    }

    /// A connection for reads.
    pub(crate) async fn conn(&self) -> Result<Conn, ApiError> {
        self.db.read().await
    }
}

/// The id of a model by name, or 404.
pub(crate) async fn model_id(conn: &mut AnyConnection, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM models WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("model '{name}' not found")))
}

/// The id of an environment by name, or 404.
pub(crate) async fn environment_id(conn: &mut AnyConnection, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM environments WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("environment '{name}' not found")))
}

/// Encodes a value stored as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Decodes JSON text written by [`to_json`]; a damaged value reads as the default.
pub(crate) fn from_json<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern that matches `needle` anywhere.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
