//! Integration test crate: see `tests/api` and `tests/e2e`.
