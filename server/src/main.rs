//! The `modelgate` command: serve the console and API, migrate, seed demo data, manage users and
//! tokens, verify an audit export offline.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use app::domain::{Checkpoint, NewToken, NewUser, Role};
use clap::{Parser, Subcommand};
use server::agent::{Agent, AgentArgs};
use server::application::{Application, shutdown_signal};
use server::artifacts::Artifacts;
use server::audit::AuditActor;
use server::audit::offline::{Expectations, verify_export};
use server::audit::signing::read_public_keys;
use server::clock::Clock;
use server::config::{AuditConfig, Config, from_env_and_defaults};
use server::db::Db;
use server::identity::AuthSettings;
use server::store::Store;
use server::{demo, telemetry};

/// mimalloc: the JSON-heavy paths (audit hashing and verification, API bodies) allocate a lot;
/// it is markedly faster there than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "modelgate", version, about = "Registry, charts and guarded rollback for ML model versions")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console and the REST API (the default).
    Serve(Config),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Load the demo users and data set into an empty database and exit.
    SeedDemo(SeedArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with audit log exports.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run a serving agent beside a model server: follow the signed assignment of one model in one
    /// environment, fetch and verify its files, swap them in, report what is served.
    Agent(AgentArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Where the demo versions' files go, as `modelgate serve` keeps them.
    #[arg(long, env = "MODELGATE_ARTIFACT_STORE", default_value = "data/artifacts")]
    artifact_store: String,
}

#[derive(clap::Args)]
struct DatabaseArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/modelgate.db")]
    database_url: String,
    #[command(flatten)]
    audit: AuditConfig,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a JSONL export offline: every hash, every link, every checkpoint signature, and that
    /// the entries make the chain the newest checkpoint signed. Exits 0 when intact; otherwise
    /// names the first bad entry and exits 1.
    Verify {
        /// The export (`GET /api/v1/audit/export?format=jsonl`).
        file: PathBuf,
        /// A trusted public key: a file or the key itself, PEM or base64 (from
        /// `GET /api/v1/audit/public-key`); repeat for keys from before a rotation.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
        /// A checkpoint kept from earlier (a file with one checkpoint's JSON, or an array of
        /// them): the export must contain it unchanged, proving the log only grew. Repeatable.
        #[arg(long = "checkpoint")]
        kept: Vec<PathBuf>,
        /// Report entries after the newest signed checkpoint instead of failing on them.
        #[arg(long)]
        accept_unsigned_tail: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Add {
        username: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        #[arg(long, default_value = "")]
        display_name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it (it is shown only this once).
    Create {
        /// The user the token acts for.
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. `ci-pipeline`.
        #[arg(long)]
        name: String,
        /// A role for the token (a subset of the user's); repeat for several.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// For an `agent` token: an environment it serves; repeat for several.
        #[arg(long = "environment")]
        environments: Vec<String>,
        /// Days until the token expires; never when omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("unknown role {s:?}; one of viewer, operator, reviewer, compliance, admin, agent"))
}

async fn store(args: &DatabaseArgs) -> anyhow::Result<Store> {
    let db = Db::connect(&args.database_url, 2).await.context("connecting to the database")?;
    db.migrate().await.context("migrating the database")?;
    let audit = args.audit.audit_log(Clock::system()).context("loading the audit signing key")?;
    Ok(Store::new(db, Clock::system(), audit).with_identity(AuthSettings::default()))
}

/// Reads the checkpoints an auditor kept: each file holds one checkpoint's JSON or an array.
fn kept_checkpoints(files: &[PathBuf]) -> anyhow::Result<Vec<Checkpoint>> {
    let mut kept = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("--checkpoint {}", file.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("--checkpoint {}: not JSON", file.display()))?;
        let parsed = match value {
            serde_json::Value::Array(_) => serde_json::from_value(value),
            one => serde_json::from_value(one).map(|c| vec![c]),
        };
        kept.extend(parsed.with_context(|| format!("--checkpoint {}: not a checkpoint", file.display()))?);
    }
    Ok(kept)
}

/// Verifies an export; the exit code says whether it is intact.
fn verify(file: &std::path::Path, public_keys: &[String], expect: &Expectations) -> anyhow::Result<ExitCode> {
    let keys = read_public_keys(public_keys)?;
    let started = std::time::Instant::now();
    let report = verify_export(file, &keys, expect)?;
    let seconds = started.elapsed().as_secs_f64();
    println!("{report}");
    eprintln!("checked in {seconds:.2} s ({:.0} entries/s)", report.entries as f64 / seconds.max(1e-9));
    Ok(if report.intact() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(from_env_and_defaults()));
    match command {
        Command::Serve(config) => {
            telemetry::init(&config.log, config.log_format);
            let app = Application::build(&config, Clock::system()).await?;
            tracing::info!(addr = %app.local_addr(), "Modelgate is serving on http://{}", app.local_addr());
            app.run_until(shutdown_signal()).await?;
        }
        Command::Agent(args) => {
            telemetry::init("info", server::config::LogFormat::Text);
            let agent = std::sync::Arc::new(Agent::new(args)?);
            tokio::select! {
                result = agent.run() => result?,
                () = shutdown_signal() => {}
            }
        }
        Command::Migrate(args) => {
            let db = Db::connect(&args.database_url, 1).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::SeedDemo(args) => {
            let artifacts = Artifacts::open(&args.artifact_store)
                .with_context(|| format!("opening the artifact store {}", args.artifact_store))?;
            match demo::seed(&store(&args.db).await?.with_part(artifacts), None).await? {
                Some(users) => {
                    println!("demo data seeded");
                    demo::print_credentials(&users, false);
                }
                None => println!("database already has users; nothing seeded"),
            }
        }
        Command::User(UserCommand::Add { username, roles, display_name, db }) => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.lines().next().unwrap_or_default().to_string();
            let user = store(&db)
                .await?
                .bootstrap_user(AuditActor::system("cli"), NewUser { username, display_name, password, roles })
                .await?;
            let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
            println!("user {} created with roles {}", user.username, roles.join(", "));
        }
        Command::Token(TokenCommand::Create { user, name, roles, environments, expires_in_days, db }) => {
            if roles.is_empty() {
                bail!("give at least one --role");
            }
            let input = NewToken { name, owner: Some(user.clone()), roles, environments, expires_in_days };
            let created = store(&db).await?.bootstrap_token(&user, input).await?;
            println!("{}", created.token);
            eprintln!(
                "token {} ({}) for {user}; store it now: it is not shown again",
                created.info.id, created.info.name
            );
        }
        Command::Audit(AuditCommand::Verify { file, public_keys, kept, accept_unsigned_tail }) => {
            let expect = Expectations { unsigned_tail_ok: accept_unsigned_tail, kept: kept_checkpoints(&kept)? };
            return verify(&file, &public_keys, &expect);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
