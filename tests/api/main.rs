//! API tests: the real server on a free port, a fresh database per test, on SQLite and PostgreSQL.

mod access;
mod audit;
mod cli;
mod comparisons;
mod connections;
mod console;
mod deployments;
mod fleet;
mod fleet_processes;
mod identity;
mod input;
mod metrics;
mod mlflow;
mod mlflow_models;
mod mlflow_workflow;
mod models;
mod ops;
mod rollbacks;
mod s3;
mod tamper;
mod version_files;
mod versions;
mod web;
mod webhooks;
