//! The `modelgate` command: serve the console and API, migrate, seed demo data, manage users and tokens.

use std::io::Read;

use anyhow::{Context, bail};
use app::domain::{NewToken, NewUser, Role};
use clap::{Parser, Subcommand};
use server::application::{Application, shutdown_signal};
use server::clock::Clock;
use server::config::Config;
use server::db::Db;
use server::identity::AuthSettings;
use server::store::Store;
use server::{demo, telemetry};

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
    SeedDemo(DatabaseArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Args)]
struct DatabaseArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/modelgate.db")]
    database_url: String,
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
        /// Days until the token expires; never when omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role {s:?}; one of viewer, operator, reviewer, compliance, admin"))
}

async fn store(args: &DatabaseArgs) -> anyhow::Result<Store> {
    let db = Db::connect(&args.database_url, 2).await.context("connecting to the database")?;
    db.migrate().await.context("migrating the database")?;
    Ok(Store::new(db, Clock::system(), AuthSettings::default()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(serve_config_from_env()));
    match command {
        Command::Serve(config) => {
            telemetry::init(&config.log, config.log_format);
            let app = Application::build(&config, Clock::system()).await?;
            tracing::info!(addr = %app.local_addr(), "Modelgate is serving on http://{}", app.local_addr());
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate(args) => {
            let db = Db::connect(&args.database_url, 1).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::SeedDemo(args) => match demo::seed(&store(&args).await?, None).await? {
            Some(users) => {
                println!("demo data seeded");
                demo::print_credentials(&users, false);
            }
            None => println!("database already has users; nothing seeded"),
        },
        Command::User(UserCommand::Add { username, roles, display_name, db }) => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.lines().next().unwrap_or_default().to_string();
            let user = store(&db).await?.bootstrap_user(NewUser { username, display_name, password, roles }).await?;
            let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
            println!("user {} created with roles {}", user.username, roles.join(", "));
        }
        Command::Token(TokenCommand::Create { user, name, roles, expires_in_days, db }) => {
            if roles.is_empty() {
                bail!("give at least one --role");
            }
            let input = NewToken { name, owner: Some(user.clone()), roles, expires_in_days };
            let created = store(&db).await?.bootstrap_token(&user, input).await?;
            println!("{}", created.token);
            eprintln!(
                "token {} ({}) for {user}; store it now: it is not shown again",
                created.info.id, created.info.name
            );
        }
    }
    Ok(())
}

/// The serve configuration from environment variables and defaults alone.
fn serve_config_from_env() -> Config {
    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        config: Config,
    }
    Only::parse_from(["modelgate"]).config
}
