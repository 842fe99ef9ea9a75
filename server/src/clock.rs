//! Time: UTC milliseconds, RFC 3339 formatting, and a clock tests can move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where "now" comes from: the system clock, or a manual one in tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands still at `ms` until advanced.
    pub fn manual(ms: i64) -> Self {
        Self { manual: Some(Arc::new(AtomicI64::new(ms))) }
    }

    pub fn advance(&self, ms: i64) {
        if let Some(m) = &self.manual {
            m.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the Unix epoch, UTC.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(m) => m.load(Ordering::SeqCst),
            None => (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        }
    }
}

/// `1764246000000` → `2025-11-27T12:20:00Z` (millisecond precision when there are milliseconds).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// `2026-12-24T00:00:00Z` (any RFC 3339 offset) → milliseconds, or a 422 naming `field`.
pub fn parse_rfc3339(field: &str, text: &str) -> Result<i64, app::error::ApiError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| app::error::ApiError::invalid(field, "must be an RFC 3339 time, e.g. 2026-12-24T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_and_manual_clock_moves_only_when_told() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
        let c = Clock::manual(10);
        assert_eq!(c.now_ms(), 10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
    }
}
