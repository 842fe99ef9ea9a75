//! The core every service builds on: one `Store` holding the database, the clock, the audit log and
//! the event bus, and each service's own state by type.
//!
//! Each domain concept adds its use cases to `Store` in its own module (`registry`, `deployments`,
//! `identity`, …); the UI's server functions and the REST handlers both call these, so each rule
//! exists once.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use app::error::ApiError;

use crate::audit::{AuditLog, AuditedTx};
use crate::clock::Clock;
use crate::db::{Conn, Db, WriteTx};
use crate::events::EventBus;

/// The database, the clock every write is stamped with, the audit log, the bus that tells
/// subscribers what changed, and the parts services keep for themselves.
#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
    pub clock: Clock,
    pub audit: Arc<AuditLog>,
    pub events: Arc<EventBus>,
    parts: Parts,
}

/// Each service's own state (its settings, its caches), by type, set when the store is built: the
/// core holds it without knowing it.
#[derive(Clone, Default)]
struct Parts(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parts({})", self.0.len())
    }
}

impl Store {
    pub fn new(db: Db, clock: Clock, audit: AuditLog) -> Self {
        Self { db, clock, audit: Arc::new(audit), events: Arc::default(), parts: Parts::default() }
    }

    /// The store with a service's part added (replacing one of the same type).
    pub fn with_part<T: Any + Send + Sync>(mut self, part: T) -> Self {
        self.parts.0.insert(TypeId::of::<T>(), Arc::new(part));
        self
    }

    /// A service's part, if the store was built with one.
    pub fn part<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.parts.0.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The same store with another clock (the demo data set is written as if over past months).
    pub fn with_clock(&self, clock: Clock) -> Self {
        Self { audit: Arc::new(self.audit.with_clock(clock.clone())), clock, ..self.clone() }
    }

    /// Starts a write whose commit appends its audit entry in the same transaction.
    pub(crate) async fn begin_write(&self) -> Result<AuditedTx<'_>, ApiError> {
        Ok(AuditedTx::new(self.db.begin_write().await?, &self.audit, &self.events))
    }

    /// Starts a write of measurements (metric points) or bookkeeping (idempotency records, a
    /// session's or token's last use): data rather than a change of state, so not audited.
    /// Everything else writes through [`Store::begin_write`].
    pub(crate) async fn begin_data_write(&self) -> Result<WriteTx, ApiError> {
        self.db.begin_write().await
    }

    /// A connection for reads.
    pub(crate) async fn conn(&self) -> Result<Conn, ApiError> {
        self.db.read().await
    }
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
