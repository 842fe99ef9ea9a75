//! `modelgate agent`: the reference serving agent. It long-polls Modelgate for the signed
//! assignment of one model in one environment, refuses one badly signed, expired, for elsewhere or
//! older than the one it holds, fetches the files (`fetch`), checks their digest before anything
//! is served, swaps them in and runs the reload hook (`install`), and reports what it serves —
//! again every heartbeat. It moves to the next server when one fails.

mod fetch;
mod install;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use app::domain::validate;
use app::domain::{AgentReport, AgentState, Assignment, SignedAssignment, percent_encoded};
use ed25519_dalek::VerifyingKey;
use reqwest::StatusCode;

use crate::audit::signing::read_public_keys;
use crate::clock::Clock;
use crate::fleet::assignment::{Refusal, verify};
use install::Held;

/// How an agent is run.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Modelgate's base URL; repeat (or separate with commas) for replicas: on a failure the
    /// agent moves to the next.
    #[arg(long = "server", env = "MODELGATE_SERVER", value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// An API token of the `agent` role for this environment.
    #[arg(long, env = "MODELGATE_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, env = "MODELGATE_AGENT_MODEL")]
    pub model: String,
    #[arg(long, env = "MODELGATE_AGENT_ENVIRONMENT")]
    pub environment: String,
    /// Where this instance runs: a region, a cluster.
    #[arg(long, env = "MODELGATE_AGENT_GROUP", default_value = "default")]
    pub group: String,
    /// This instance's name, unique among the model's agents in the environment.
    #[arg(long, env = "MODELGATE_AGENT_INSTANCE")]
    pub instance: String,
    /// A trusted assignment key (a file or the key, PEM or base64, from
    /// `GET /api/v1/fleet/public-key`); repeat to trust the next key before a rotation.
    #[arg(long = "public-key", env = "MODELGATE_AGENT_PUBLIC_KEY", required = true)]
    pub public_keys: Vec<String>,
    /// The agent's directory: `versions/` holds the fetched versions, `current` links to the one
    /// served, `state.json` remembers the assignment held across restarts.
    #[arg(long, env = "MODELGATE_AGENT_DIR", default_value = "modelgate-agent")]
    pub dir: PathBuf,
    /// Run with `sh -c` after each swap (MODELGATE_MODEL_DIR, MODELGATE_VERSION, MODELGATE_COUNTER
    /// set); a non-zero exit swaps back and reports the assignment failed.
    #[arg(long, env = "MODELGATE_AGENT_RELOAD_COMMAND")]
    pub reload_command: Option<String>,
    /// Seconds between heartbeats (5 to 300); three missed and the server counts the agent lost.
    #[arg(long, env = "MODELGATE_AGENT_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u32,
    /// Seconds each long poll is held by the server (at most 30).
    #[arg(long, env = "MODELGATE_AGENT_WAIT_SECS", default_value_t = 30)]
    pub wait_secs: u64,
}

/// A running agent: its settings, trusted keys, what it holds and last reported.
pub struct Agent {
    args: AgentArgs,
    keys: Vec<VerifyingKey>,
    http: reqwest::Client,
    clock: Clock,
    /// Which of `args.servers` is in use.
    server: AtomicUsize,
    held: Mutex<Held>,
    last_report: Mutex<AgentReport>,
}

/// What became of one assignment.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Now served.
    Serving(i64),
    /// Refused unread: bad signature, unknown key, expired, for elsewhere, or older than held.
    Refused(Refusal),
    /// Verified, but not served (a fetch error, a digest mismatch, a failing reload hook).
    Failed(String),
    /// The assignment held already.
    Unchanged,
}

impl Agent {
    pub fn new(args: AgentArgs) -> anyhow::Result<Self> {
        validate::agent_instance("--instance", &args.instance)?;
        validate::agent_instance("--group", &args.group)?;
        if !(5..=300).contains(&args.heartbeat_secs) || args.wait_secs > 30 {
            bail!("--heartbeat-secs must be between 5 and 300, --wait-secs at most 30");
        }
        let keys = read_public_keys(&args.public_keys)?;
        std::fs::create_dir_all(args.dir.join("versions"))
            .with_context(|| format!("creating {}", args.dir.display()))?;
        let held = Held::load(&args.dir)?;
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let report = AgentReport {
            group: args.group.clone(),
            counter: held.counter,
            version: held.version,
            digest: held.digest.clone(),
            state: if held.version.is_some() { AgentState::Ready } else { AgentState::Downloading },
            error: None,
            heartbeat_seconds: args.heartbeat_secs,
        };
        Ok(Self {
            args,
            keys,
            http,
            clock: Clock::system(),
            server: AtomicUsize::new(0),
            held: Mutex::new(held),
            last_report: Mutex::new(report),
        })
    }

    /// The same agent reading the time from `clock` (tests run the server on a manual clock).
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Polls and applies assignments, and heartbeats, until the process ends.
    pub async fn run(self: std::sync::Arc<Self>) -> anyhow::Result<()> {
        let heartbeat = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_secs(u64::from(heartbeat.args.heartbeat_secs));
            loop {
                tokio::time::sleep(period).await;
                let report = heartbeat.last_report.lock().expect("report lock").clone();
                if let Err(e) = heartbeat.send_report(&report).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        });
        let report = self.last_report.lock().expect("report lock").clone();
        self.report(report).await;
        let mut pause = Duration::ZERO;
        loop {
            tokio::time::sleep(pause).await;
            pause = match self.poll().await {
                Ok(Some(signed)) => match self.consider(&signed).await {
                    Outcome::Refused(_) | Outcome::Failed(_) => self.retry_after(),
                    Outcome::Serving(_) | Outcome::Unchanged => Duration::ZERO,
                },
                Ok(None) => Duration::ZERO,
                Err(e) => {
                    let next = self.next_server();
                    tracing::warn!(error = %e, next = %next, "polling failed; trying the next server");
                    Duration::from_secs(1)
                }
            };
        }
    }

    fn retry_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.args.heartbeat_secs))
    }

    fn server_url(&self) -> String {
        let servers = &self.args.servers;
        servers[self.server.load(Ordering::Relaxed) % servers.len()].trim_end_matches('/').to_string()
    }

    fn next_server(&self) -> String {
        self.server.fetch_add(1, Ordering::Relaxed);
        self.server_url()
    }

    /// `{server}/api/v1/models/{model}/environments/{environment}` and `rest` after it.
    fn pair_url(&self, rest: &str) -> String {
        format!(
            "{}/api/v1/models/{}/environments/{}{rest}",
            self.server_url(),
            percent_encoded(&self.args.model),
            percent_encoded(&self.args.environment)
        )
    }

    /// One long poll: a newer signed assignment, or `None` when the wait ended without one.
    pub async fn poll(&self) -> anyhow::Result<Option<SignedAssignment>> {
        let after = self.held.lock().expect("held lock").counter;
        let url = self.pair_url(&format!("/assignment?after={after}&wait={}", self.args.wait_secs));
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.args.token)
            .timeout(Duration::from_secs(self.args.wait_secs + 15))
            .send()
            .await?;
        match response.status() {
            StatusCode::NOT_MODIFIED => Ok(None),
            StatusCode::OK => Ok(Some(response.json().await?)),
            status => bail!("{status}: {}", response.text().await.unwrap_or_default()),
        }
    }

    /// Verifies `signed` and, if it is newer than the assignment held, serves it; reports each step.
    pub async fn consider(&self, signed: &SignedAssignment) -> Outcome {
        let held = self.held.lock().expect("held lock").clone();
        let assignment = match verify(
            signed,
            &self.keys,
            &self.args.model,
            &self.args.environment,
            held.counter,
            self.clock.now_ms(),
        ) {
            Ok(a) if a.counter == held.counter => return Outcome::Unchanged,
            Ok(a) => a,
            Err(refusal) => {
                tracing::warn!(%refusal, "refused an assignment");
                self.report(held.report(
                    &self.args,
                    AgentState::Failed,
                    Some(format!("refused an assignment: {refusal}")),
                ))
                .await;
                return Outcome::Refused(refusal);
            }
        };
        let downloading =
            AgentReport { counter: assignment.counter, ..held.report(&self.args, AgentState::Downloading, None) };
        self.report(downloading).await;
        match self.serve(&assignment, &held).await {
            Ok(now_held) => {
                let ready = now_held.report(&self.args, AgentState::Ready, None);
                *self.held.lock().expect("held lock") = now_held;
                self.report(ready).await;
                tracing::info!(counter = assignment.counter, version = assignment.version, "serving");
                Outcome::Serving(assignment.version)
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(counter = assignment.counter, %error, "could not serve the assignment");
                let failed = AgentReport {
                    counter: assignment.counter,
                    ..held.report(&self.args, AgentState::Failed, Some(error.clone()))
                };
                self.report(failed).await;
                Outcome::Failed(error)
            }
        }
    }

    /// Fetches, verifies, swaps in and reloads `assignment`; what is held afterwards.
    async fn serve(&self, assignment: &Assignment, held: &Held) -> anyhow::Result<Held> {
        let Some(expected) = assignment.digest.as_deref() else {
            bail!("the assignment names no digest to verify the files against");
        };
        let name = format!("{}-v{}", assignment.counter, assignment.version);
        let partial = self.args.dir.join("versions").join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)?;
        let fetched = fetch::fetch(self, &assignment.artifact_uri, assignment.version, &partial).await;
        let files = match fetched {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(e);
            }
        };
        let digest = fetch::digest_matching(&files, expected);
        let Some(digest) = digest else {
            let _ = std::fs::remove_dir_all(&partial);
            bail!(
                "digest mismatch: the assignment says {expected}, the {} file(s) fetched make {}",
                files.len(),
                crate::artifacts::tree::listing_digest(files.iter().map(|(p, s)| (p.as_str(), s.as_str())))
            );
        };
        install::install(&self.args, &partial, &name, assignment, held).await?;
        let now_held = Held {
            counter: assignment.counter,
            version: Some(assignment.version),
            digest: Some(digest),
            directory: Some(name),
        };
        now_held.save(&self.args.dir)?;
        Ok(now_held)
    }

    /// Sends `report` and keeps it as the heartbeat's; a failure is logged (the heartbeat retries).
    async fn report(&self, report: AgentReport) {
        *self.last_report.lock().expect("report lock") = report.clone();
        if let Err(e) = self.send_report(&report).await {
            tracing::warn!(error = %e, "reporting failed");
            self.next_server();
        }
    }

    async fn send_report(&self, report: &AgentReport) -> anyhow::Result<()> {
        let url = self.pair_url(&format!("/agents/{}", percent_encoded(&self.args.instance)));
        let response = self
            .http
            .put(url)
            .bearer_auth(&self.args.token)
            .json(report)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// What the agent holds now.
    pub fn held_counter(&self) -> i64 {
        self.held.lock().expect("held lock").counter
    }
}
