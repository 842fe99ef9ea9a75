//! Configuration of `modelgate serve`: flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

use crate::audit::AuditLog;
use crate::audit::signing::Signer;
use crate::audit::witness::Witness;
use crate::clock::Clock;

/// Where the server listens, what it stores into, how it logs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://path` (embedded, created on start) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/modelgate.db")]
    pub database_url: String,

    /// Where artifacts are kept: a directory (created if missing) or `s3://bucket[/prefix]`, with
    /// credentials, region and endpoint from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT` and `AWS_ALLOW_HTTP`.
    #[arg(long, env = "MODELGATE_ARTIFACT_STORE", default_value = "data/artifacts")]
    pub artifact_store: String,

    /// `apply`: apply pending database migrations on start (one server). `wait`: never change the
    /// schema; wait until `modelgate migrate` has applied every migration this binary has, alive
    /// but not ready meanwhile (replicas behind a migration job, as in `deploy/kubernetes`).
    #[arg(long, env = "MODELGATE_MIGRATE", value_enum, default_value_t = MigrateMode::Apply)]
    pub migrate: MigrateMode,

    /// Address to listen on.
    #[arg(long, env = "MODELGATE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Folder with the built console assets (`pkg/` with the WASM, JS and CSS).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MODELGATE_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Connections served at once; more wait in the kernel's queue. Keep it below the process's
    /// descriptor limit (`ulimit -n`) less a few hundred for the database and files.
    #[arg(long, env = "MODELGATE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Connections served at once from one client address; more are closed on arrival.
    #[arg(long, env = "MODELGATE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512)]
    pub max_connections_per_address: usize,

    /// Seconds a connection may take to send a complete request head, from its start or from its
    /// previous response (so also how long an idle keep-alive connection stays open).
    #[arg(long, env = "MODELGATE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a request may take, its body included, until its response starts.
    #[arg(long, env = "MODELGATE_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,

    /// Size of the database connection pool.
    #[arg(long, env = "MODELGATE_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Seed the demo data set when the database has no models yet.
    #[arg(long, env = "MODELGATE_DEMO", default_value_t = false)]
    pub demo: bool,

    /// Mark the session cookie `Secure` with the `__Host-` prefix; turn on whenever the console is
    /// reached over HTTPS (directly or through a TLS-terminating proxy).
    #[arg(long, env = "MODELGATE_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// Minutes of inactivity after which a session ends.
    #[arg(long, env = "MODELGATE_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: i64,

    /// Hours after sign-in after which a session ends, however active.
    #[arg(long, env = "MODELGATE_SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: i64,

    /// Password of the demo users created with `--demo` (random and printed once when unset).
    #[arg(long, env = "MODELGATE_DEMO_PASSWORD", hide_env_values = true)]
    pub demo_password: Option<String>,

    /// Log filter in `tracing` syntax, e.g. `info` or `server=debug,info`.
    #[arg(long, env = "MODELGATE_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "MODELGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub audit: AuditConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    #[command(flatten)]
    pub fleet: FleetConfig,
}

/// How webhook deliveries are retried.
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Wait after a delivery's first failure, in milliseconds; it doubles with each further failure.
    #[arg(long = "webhook-retry-base-ms", env = "MODELGATE_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Longest wait between two attempts, in milliseconds.
    #[arg(long = "webhook-retry-max-ms", env = "MODELGATE_WEBHOOK_RETRY_MAX_MS", default_value_t = 600_000)]
    pub retry_max_ms: u64,
    /// Attempts before a delivery is given up as failed (shown in the delivery log).
    #[arg(long = "webhook-max-attempts", env = "MODELGATE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 15)]
    pub max_attempts: u32,
    /// Let webhooks reach loopback, private, link-local and other non-public addresses (off: a
    /// webhook could otherwise probe the server's own network).
    #[arg(long = "webhook-allow-private", env = "MODELGATE_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        from_env_and_defaults()
    }
}

impl WebhookConfig {
    pub fn targets(&self) -> crate::webhooks::targets::Targets {
        use crate::webhooks::targets::Targets;
        if self.allow_private { Targets::AnyAddress } else { Targets::PublicOnly }
    }

    pub fn retry_policy(&self) -> crate::webhooks::delivery::RetryPolicy {
        crate::webhooks::delivery::RetryPolicy {
            base: std::time::Duration::from_millis(self.retry_base_ms.max(1)),
            max: std::time::Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms.max(1))),
            attempts: self.max_attempts.max(1),
        }
    }
}

/// The audit log's signing key and checkpoint cadence.
#[derive(Debug, Clone, Args)]
pub struct AuditConfig {
    /// The Ed25519 key that signs audit checkpoints, inline: PKCS#8 PEM or a base64 32-byte seed.
    /// Takes precedence over the key file.
    #[arg(long = "audit-key", env = "MODELGATE_AUDIT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// File with the signing key (PKCS#8 PEM); generated, readable by the owner only, when missing.
    #[arg(long = "audit-key-file", env = "MODELGATE_AUDIT_KEY_FILE", default_value = "data/audit-signing.key")]
    pub key_file: PathBuf,
    /// File keeping the newest checkpoint this server signed, outside the database (the chain may
    /// never be cut back below it). Keep it with the signing key, not with the database.
    #[arg(
        long = "audit-witness-file",
        env = "MODELGATE_AUDIT_WITNESS_FILE",
        default_value = "data/audit-checkpoint.json"
    )]
    pub witness_file: PathBuf,
    /// Sign the chain's head into the witness file this many milliseconds after it moves (at most).
    #[arg(long = "audit-witness-ms", env = "MODELGATE_AUDIT_WITNESS_MS", default_value_t = 1000)]
    pub witness_ms: u64,
    /// Sign a checkpoint with every N-th audit entry.
    #[arg(long = "audit-checkpoint-every", env = "MODELGATE_AUDIT_CHECKPOINT_EVERY", default_value_t = 1000)]
    pub checkpoint_every: i64,
    /// Also sign one every this many minutes if entries were appended since the last.
    #[arg(long = "audit-checkpoint-minutes", env = "MODELGATE_AUDIT_CHECKPOINT_MINUTES", default_value_t = 60)]
    pub checkpoint_minutes: u64,
    /// Move new entries' queued search terms into the search index every this many milliseconds
    /// (free-text search finds queued entries too, by scanning the queue).
    #[arg(long = "audit-index-ms", env = "MODELGATE_AUDIT_INDEX_MS", default_value_t = 250)]
    pub index_ms: u64,
}

/// The serving fleet: the key that signs assignments and how long a signature holds.
#[derive(Debug, Clone, Args)]
pub struct FleetConfig {
    /// The Ed25519 key that signs assignments, inline: PKCS#8 PEM or a base64 32-byte seed. Takes
    /// precedence over the key file.
    #[arg(long = "assignment-key", env = "MODELGATE_ASSIGNMENT_KEY", hide_env_values = true)]
    pub assignment_key: Option<String>,
    /// File with the assignment signing key (PKCS#8 PEM); generated, owner-only, when missing.
    #[arg(
        long = "assignment-key-file",
        env = "MODELGATE_ASSIGNMENT_KEY_FILE",
        default_value = "data/assignment-signing.key"
    )]
    pub assignment_key_file: PathBuf,
    /// Seconds an assignment stays valid after it is signed (agents refuse it afterwards).
    #[arg(long = "assignment-ttl-secs", env = "MODELGATE_ASSIGNMENT_TTL_SECS", default_value_t = 3600)]
    pub assignment_ttl_secs: u64,
    /// How often lost agents and rollouts past their deadline are looked for, in milliseconds.
    #[arg(long = "fleet-sweep-ms", env = "MODELGATE_FLEET_SWEEP_MS", default_value_t = 1000)]
    pub sweep_ms: u64,
}

impl FleetConfig {
    pub fn signer(&self) -> anyhow::Result<crate::fleet::assignment::AssignmentSigner> {
        let ttl_ms = i64::try_from(self.assignment_ttl_secs.clamp(1, 366 * 86_400) * 1000).unwrap_or(i64::MAX);
        crate::fleet::assignment::AssignmentSigner::load(
            self.assignment_key.as_deref(),
            &self.assignment_key_file,
            ttl_ms,
        )
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        from_env_and_defaults()
    }
}

/// A group of flags filled from environment variables and defaults alone (no command line).
pub fn from_env_and_defaults<T: Args>() -> T {
    #[derive(Parser)]
    struct Only<T: Args> {
        #[command(flatten)]
        inner: T,
    }
    Only::<T>::parse_from(["modelgate"]).inner
}

impl AuditConfig {
    /// Loads (or creates) the signing key and reads the kept checkpoint.
    pub fn audit_log(&self, clock: Clock) -> anyhow::Result<AuditLog> {
        let signer = Signer::load(self.key.as_deref(), &self.key_file)?;
        let witness = Witness::load(Some(&self.witness_file))?;
        Ok(AuditLog::new(signer, self.checkpoint_every, clock).with_witness(witness))
    }
}

/// Whether `modelgate serve` applies migrations or waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateMode {
    Apply,
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The session timeouts and throttling limits this configuration asks for.
    pub fn auth_settings(&self) -> crate::identity::AuthSettings {
        crate::identity::AuthSettings {
            idle_timeout_ms: self.session_idle_minutes * 60_000,
            absolute_timeout_ms: self.session_absolute_hours * 3_600_000,
            ..Default::default()
        }
    }

    /// Defaults for a given database, as used by tests and `migrate`/`seed-demo`.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            artifact_store: "data/artifacts".into(),
            migrate: MigrateMode::Apply,
            addr: "127.0.0.1:0".parse().expect("valid address"),
            site_root: "target/site".into(),
            max_body_bytes: 4 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_address: 512,
            header_timeout_secs: 10,
            request_timeout_secs: 60,
            db_max_connections: 16,
            demo: false,
            secure_cookies: false,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            demo_password: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            audit: AuditConfig::default(),
            webhooks: WebhookConfig::default(),
            fleet: from_env_and_defaults(),
        }
    }
}
