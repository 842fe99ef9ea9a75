//! The `modelgate` command: serve the console and API, migrate, seed demo data.

use clap::{Parser, Subcommand};
use server::application::{Application, shutdown_signal};
use server::clock::Clock;
use server::config::Config;
use server::db::Db;
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
    /// Load the demo data set into an empty database and exit.
    SeedDemo(DatabaseArgs),
}

#[derive(clap::Args)]
struct DatabaseArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/modelgate.db")]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(Config::parse_from_env()));
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
        Command::SeedDemo(args) => {
            let db = Db::connect(&args.database_url, 2).await?;
            db.migrate().await?;
            let seeded = demo::seed(&Store::new(db, Clock::system())).await?;
            println!("{}", if seeded { "demo data seeded" } else { "database already has models; nothing seeded" });
        }
    }
    Ok(())
}

trait FromEnv {
    fn parse_from_env() -> Self;
}

impl FromEnv for Config {
    /// The serve configuration from environment variables and defaults alone.
    fn parse_from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        Only::parse_from(["modelgate"]).config
    }
}
