//! The newest checkpoint this server signed, kept outside the database (a file beside the signing
//! key): whoever can rewrite the database cannot take it back, so a chain cut short or rewritten
//! below it is caught, and the signer never signs a shorter or different chain after it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use app::domain::Checkpoint;

/// The kept checkpoint and the file it lives in (`None`: kept in memory only).
#[derive(Debug, Default)]
pub struct Witness {
    file: Option<PathBuf>,
    latest: Mutex<Option<Checkpoint>>,
}

impl Witness {
    /// Reads the kept checkpoint from `file` (none yet when the file does not exist).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let latest = match file.map(std::fs::read_to_string) {
            Some(Ok(text)) => Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a checkpoint", file.unwrap_or(Path::new("")).display()))?,
            ),
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("reading {}", file.unwrap_or(Path::new("")).display()));
            }
            _ => None,
        };
        Ok(Self { file: file.map(Path::to_path_buf), latest: Mutex::new(latest) })
    }

    pub fn latest(&self) -> Option<Checkpoint> {
        self.latest.lock().ok().and_then(|l| l.clone())
    }

    /// Keeps `checkpoint` if it is newer than the kept one: written to a temporary file, flushed
    /// to disk and renamed over the old, so a crash leaves one or the other whole.
    pub fn keep(&self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let Ok(mut latest) = self.latest.lock() else { anyhow::bail!("the witness lock is poisoned") };
        if latest.as_ref().is_some_and(|l| l.seq >= checkpoint.seq) {
            return Ok(());
        }
        if let Some(file) = &self.file {
            write_atomically(file, &serde_json::to_vec_pretty(checkpoint)?)
                .with_context(|| format!("keeping the audit checkpoint in {}", file.display()))?;
        }
        *latest = Some(checkpoint.clone());
        Ok(())
    }
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = file.with_extension("tmp");
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&temporary, file)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(seq: i64) -> Checkpoint {
        Checkpoint {
            seq,
            hash: "h".into(),
            root: None,
            signed_at: String::new(),
            key_id: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn only_a_newer_checkpoint_replaces_the_kept_one_and_it_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("modelgate-witness-{}", uuid::Uuid::new_v4()));
        let file = dir.join("audit-checkpoint.json");
        let witness = Witness::load(Some(&file)).unwrap();
        assert_eq!(witness.latest(), None);
        witness.keep(&checkpoint(7)).unwrap();
        witness.keep(&checkpoint(5)).unwrap();
        assert_eq!(Witness::load(Some(&file)).unwrap().latest().map(|c| c.seq), Some(7));
        std::fs::write(&file, "not json").unwrap();
        assert!(Witness::load(Some(&file)).is_err(), "a damaged witness stops the start, never forgotten");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
