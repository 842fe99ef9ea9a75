//! Serving fetched files: the version directory moved into place, the `current` link swapped to
//! it in one rename (a server reading `current` sees the old version or the new, never half), the
//! reload hook run (swapped back when it fails), older versions pruned; and the assignment held,
//! kept in `state.json` so a restarted agent still refuses older ones.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use app::domain::{AgentReport, AgentState, Assignment};
use serde::{Deserialize, Serialize};

use super::AgentArgs;

/// The assignment served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub counter: i64,
    pub version: Option<i64>,
    pub digest: Option<String>,
    /// Its directory under `versions/`.
    pub directory: Option<String>,
}

/// How long a reload hook may run.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

impl Held {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        match std::fs::read(dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("state.json is unreadable"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).context("reading state.json"),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let temporary = dir.join(".state.json.tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(self)?)?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(temporary, dir.join("state.json"))?;
        Ok(())
    }

    /// A report of serving this, in `state`.
    pub fn report(&self, args: &AgentArgs, state: AgentState, error: Option<String>) -> AgentReport {
        AgentReport {
            group: args.group.clone(),
            counter: self.counter,
            version: self.version,
            digest: self.digest.clone(),
            state,
            error,
            heartbeat_seconds: args.heartbeat_secs,
        }
    }
}

/// Points `dir/current` at `versions/<name>` with one rename.
fn swap(dir: &Path, name: &str) -> std::io::Result<()> {
    let temporary = dir.join(".current.tmp");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(Path::new("versions").join(name), &temporary)?;
    std::fs::rename(temporary, dir.join("current"))
}

/// Moves the verified `partial` directory to `versions/<name>`, swaps `current` to it, runs the
/// reload hook (swapping back to what `held` names when it fails) and prunes older versions.
pub async fn install(
    args: &AgentArgs,
    partial: &Path,
    name: &str,
    assignment: &Assignment,
    held: &Held,
) -> anyhow::Result<()> {
    let versions = args.dir.join("versions");
    let target = versions.join(name);
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(partial, &target).with_context(|| format!("moving the files to {}", target.display()))?;
    swap(&args.dir, name).context("swapping the current link")?;
    if let Some(command) = &args.reload_command
        && let Err(e) = reload(command, &args.dir, assignment).await
    {
        match &held.directory {
            Some(previous) => swap(&args.dir, previous).context("swapping back after the reload hook failed")?,
            None => {
                let _ = std::fs::remove_file(args.dir.join("current"));
            }
        }
        let _ = std::fs::remove_dir_all(&target);
        return Err(e);
    }
    prune(&versions, &[name, held.directory.as_deref().unwrap_or_default()]);
    Ok(())
}

async fn reload(command: &str, dir: &Path, assignment: &Assignment) -> anyhow::Result<()> {
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("MODELGATE_MODEL_DIR", dir.join("current"))
        .env("MODELGATE_VERSION", assignment.version.to_string())
        .env("MODELGATE_COUNTER", assignment.counter.to_string())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(RELOAD_TIMEOUT, run).await {
        Err(_) => bail!("the reload hook ran over {} s", RELOAD_TIMEOUT.as_secs()),
        Ok(Err(e)) => bail!("the reload hook could not start: {e}"),
        Ok(Ok(status)) if !status.success() => bail!("the reload hook failed ({status})"),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Removes every version directory but the ones named in `keep` (the served one and the one
/// before, for a quick swap back).
fn prune(versions: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(versions) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !keep.iter().any(|k| name == std::ffi::OsStr::new(k)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
