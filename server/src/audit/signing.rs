//! The Ed25519 key that signs checkpoints: from configuration, from a file, or generated on first
//! run (stored owner-only); and the strict signature check both verifiers use.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use app::domain::{Checkpoint, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::chain::checkpoint_message;

/// The signing key, its published form, and the key entry seals are made with.
#[derive(Debug, Clone)]
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
    /// Derived one way from the signing key: whoever lacks that key cannot seal an entry.
    seal_key: [u8; 32],
}

impl Signer {
    pub fn new(key: SigningKey) -> Self {
        let public = public_key_info(&key.verifying_key());
        let seal_key = Sha256::new().chain_update(b"modelgate audit seal v1").chain_update(key.to_bytes()).finalize();
        Self { key, public, seal_key: seal_key.into() }
    }

    /// An entry's seal: `<key id>:<hex HMAC-SHA256 of its hash>`.
    pub fn seal(&self, hash: &str) -> String {
        format!("{}:{}", self.public.key_id, hex::encode(self.seal_mac(hash).finalize().into_bytes()))
    }

    /// Whether `seal` is this key's seal of `hash`; `None` when another key made it (before a
    /// rotation), so it cannot be checked here.
    pub fn seal_matches(&self, seal: &str, hash: &str) -> Option<bool> {
        let (key_id, mac) = seal.split_once(':')?;
        if key_id != self.public.key_id {
            return None;
        }
        Some(hex::decode(mac).is_ok_and(|mac| self.seal_mac(hash).verify_slice(&mac).is_ok()))
    }

    fn seal_mac(&self, hash: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.seal_key).expect("HMAC takes any key length");
        mac.update(hash.as_bytes());
        mac
    }

    /// A fresh random key (tests and first runs).
    pub fn generate() -> Self {
        Self::new(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The key given inline (`MODELGATE_AUDIT_KEY`), else the one in `file`, else a new one
    /// written to `file` readable by the owner only.
    pub fn load(inline: Option<&str>, file: &Path) -> anyhow::Result<Self> {
        Ok(Self::new(load_key(inline, file, "MODELGATE_AUDIT_KEY", "audit")?))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs (seq, hash, root) at `signed_at`.
    pub fn sign(&self, seq: i64, hash: &str, root: Option<String>, signed_at: &str) -> Checkpoint {
        let message = checkpoint_message(seq, hash, root.as_deref(), signed_at, &self.public.key_id);
        Checkpoint {
            seq,
            hash: hash.to_string(),
            root,
            signed_at: signed_at.to_string(),
            key_id: self.public.key_id.clone(),
            signature: BASE64.encode(self.key.sign(&message).to_bytes()),
        }
    }
}

/// An Ed25519 key given inline (named by `variable` in errors), else the one in `file`, else a new
/// one written to `file` readable by the owner only; `what` names its use in the log.
pub fn load_key(inline: Option<&str>, file: &Path, variable: &str, what: &str) -> anyhow::Result<SigningKey> {
    if let Some(text) = inline.filter(|t| !t.trim().is_empty()) {
        return parse_signing_key(text).context(variable.to_string());
    }
    match std::fs::read_to_string(file) {
        Ok(text) => parse_signing_key(&text).with_context(|| format!("{}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            write_new_key(&key, file).with_context(|| format!("writing the {what} signing key"))?;
            tracing::info!(file = %file.display(), key_id = %key_id(&key.verifying_key()), "generated the {what} signing key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the {what} signing key {}", file.display())),
    }
}

fn write_new_key(key: &SigningKey, file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pem = key.to_pkcs8_pem(LineEnding::LF).context("encoding the key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file).with_context(|| format!("creating {}", file.display()))?;
    out.write_all(pem.as_bytes())?;
    out.sync_all()?;
    Ok(())
}

/// A private key as PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes) or a base64 32-byte seed.
fn parse_signing_key(text: &str) -> anyhow::Result<SigningKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(text).map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"));
    }
    let seed = BASE64.decode(text).context("neither PEM nor base64")?;
    let Ok(seed) = <[u8; 32]>::try_from(seed.as_slice()) else {
        bail!("a base64 Ed25519 seed must decode to 32 bytes, not {}", seed.len());
    };
    Ok(SigningKey::from_bytes(&seed))
}

/// The published form of a verifying key.
pub fn public_key_info(key: &VerifyingKey) -> PublicKey {
    PublicKey {
        algorithm: "Ed25519".into(),
        key_id: key_id(key),
        public_key: BASE64.encode(key.as_bytes()),
        pem: key.to_public_key_pem(LineEnding::LF).unwrap_or_default(),
    }
}

/// First 16 hex digits of SHA-256 over the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A public key as PEM (`PUBLIC KEY`) or as base64 of the raw 32 bytes.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).map_err(|e| format!("not an Ed25519 public key: {e}"));
    }
    let bytes = BASE64.decode(text).map_err(|_| "a public key must be PEM or base64".to_string())?;
    let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| "an Ed25519 public key has 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not a valid Ed25519 public key: {e}"))
}

/// Public keys given as `--public-key` values: each a file holding the key, or the key itself.
pub fn read_public_keys(args: &[String]) -> anyhow::Result<Vec<VerifyingKey>> {
    args.iter()
        .map(|k| {
            let text = std::fs::read_to_string(k).unwrap_or_else(|_| k.clone());
            parse_public_key(&text).map_err(|e| anyhow::anyhow!("--public-key {k}: {e}"))
        })
        .collect()
}

/// Checks a checkpoint's signature strictly against the key its `key_id` names among `keys`.
pub fn verify_checkpoint(checkpoint: &Checkpoint, keys: &[VerifyingKey]) -> Result<(), String> {
    let Some(key) = keys.iter().find(|k| key_id(k) == checkpoint.key_id) else {
        return Err(format!(
            "checkpoint {} is signed by key {}, which is not among the trusted keys",
            checkpoint.seq, checkpoint.key_id
        ));
    };
    let bytes =
        BASE64.decode(&checkpoint.signature).map_err(|_| format!("checkpoint {}: bad signature", checkpoint.seq))?;
    let signature =
        Signature::from_slice(&bytes).map_err(|_| format!("checkpoint {}: malformed signature", checkpoint.seq))?;
    let message = checkpoint_message(
        checkpoint.seq,
        &checkpoint.hash,
        checkpoint.root.as_deref(),
        &checkpoint.signed_at,
        &checkpoint.key_id,
    );
    key.verify_strict(&message, &signature)
        .map_err(|_| format!("checkpoint {}: the signature does not verify", checkpoint.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_only_with_their_own_key_and_content() {
        let signer = Signer::generate();
        let other = Signer::generate();
        let key = parse_public_key(&signer.public().public_key).unwrap();
        let other_key = parse_public_key(&other.public().pem).unwrap();
        let cp = signer.sign(7, "abc", Some("def".into()), "2026-01-01T00:00:00.000Z");
        assert!(verify_checkpoint(&cp, &[key]).is_ok());
        assert!(verify_checkpoint(&cp, &[other_key]).is_err());
        let forged = Checkpoint { hash: "abd".into(), ..cp.clone() };
        assert!(verify_checkpoint(&forged, &[key]).is_err());
        let rootless = Checkpoint { root: None, ..cp };
        assert!(verify_checkpoint(&rootless, &[key]).is_err(), "the root is signed too");
        let seal = signer.seal("abc");
        assert_eq!(signer.seal_matches(&seal, "abc"), Some(true));
        assert_eq!(signer.seal_matches(&seal, "abd"), Some(false));
        assert_eq!(other.seal_matches(&seal, "abc"), None, "another key's seal is not checked");
    }

    #[test]
    fn keys_load_from_pem_or_base64_and_are_generated_owner_only() {
        let dir = std::env::temp_dir().join(format!("modelgate-key-{}", uuid::Uuid::new_v4()));
        let file = dir.join("audit.key");
        let first = Signer::load(None, &file).unwrap();
        let again = Signer::load(None, &file).unwrap();
        assert_eq!(first.public(), again.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let seed = BASE64.encode([7u8; 32]);
        assert_eq!(Signer::load(Some(&seed), &file).unwrap().public().key_id.len(), 16);
        assert!(Signer::load(Some("bm90IGEga2V5"), &file).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
