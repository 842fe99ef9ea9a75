//! Modelgate's backend: configuration, database, the service layer per domain concept, and HTTP.

pub mod agent;
pub mod application;
pub mod artifacts;
pub mod audit;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod deployments;
pub mod events;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod registry;
pub mod rollback;
pub mod store;
pub mod telemetry;
pub mod tracking;
pub mod trail;
pub mod versions;
pub mod webhooks;
