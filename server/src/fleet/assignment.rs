//! Assignments: the live version of a (model, environment) as a signed statement agents verify —
//! the key that signs them, the canonical bytes, and the checks an agent makes before trusting one.

use std::path::Path;

use app::domain::{ASSIGNMENT_KIND, Assignment, PublicKey, SignedAssignment};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::audit::signing::{key_id, load_key, public_key_info};
use crate::clock::parse_rfc3339;

/// The key that signs assignments (kept apart from the audit key) and how long a signature holds.
#[derive(Debug, Clone)]
pub struct AssignmentSigner {
    key: SigningKey,
    public: PublicKey,
    /// Milliseconds from issue to expiry.
    pub ttl_ms: i64,
}

impl AssignmentSigner {
    pub fn new(key: SigningKey, ttl_ms: i64) -> Self {
        let public = public_key_info(&key.verifying_key());
        Self { key, public, ttl_ms }
    }

    /// A fresh random key (tests).
    pub fn generate() -> Self {
        Self::new(SigningKey::from_bytes(&rand::random::<[u8; 32]>()), 3_600_000)
    }

    /// `MODELGATE_ASSIGNMENT_KEY`, else the key in `file`, else a new one written there.
    pub fn load(inline: Option<&str>, file: &Path, ttl_ms: i64) -> anyhow::Result<Self> {
        Ok(Self::new(load_key(inline, file, "MODELGATE_ASSIGNMENT_KEY", "assignment")?, ttl_ms))
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `assignment`'s canonical JSON.
    pub fn sign(&self, assignment: &Assignment) -> SignedAssignment {
        let payload = serde_json_canonicalizer::to_string(assignment).expect("an assignment serialises");
        SignedAssignment {
            signature: BASE64.encode(self.key.sign(payload.as_bytes()).to_bytes()),
            payload,
            key_id: self.public.key_id.clone(),
        }
    }
}

/// Why an agent refuses an assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("signed by key {0}, which this agent does not trust")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("not an assignment: {0}")]
    Malformed(String),
    #[error("for {0}, not {1}")]
    Elsewhere(String, String),
    #[error("expired at {0}")]
    Expired(String),
    #[error("counter {0} is older than the {1} held")]
    Replayed(i64, i64),
}

/// What an agent accepts: an assignment signed by one of `keys`, for its (model, environment),
/// not expired at `now_ms`, with a counter at least the one it holds (equal: the same change,
/// signed again). A counter below it is a replay of older metadata.
pub fn verify(
    signed: &SignedAssignment,
    keys: &[VerifyingKey],
    model: &str,
    environment: &str,
    held_counter: i64,
    now_ms: i64,
) -> Result<Assignment, Refusal> {
    let key =
        keys.iter().find(|k| key_id(k) == signed.key_id).ok_or_else(|| Refusal::UnknownKey(signed.key_id.clone()))?;
    let signature = BASE64
        .decode(&signed.signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(Refusal::BadSignature)?;
    key.verify_strict(signed.payload.as_bytes(), &signature).map_err(|_| Refusal::BadSignature)?;
    let assignment: Assignment =
        serde_json::from_str(&signed.payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if assignment.kind != ASSIGNMENT_KIND {
        return Err(Refusal::Malformed(format!("type {}", assignment.kind)));
    }
    if assignment.model != model || assignment.environment != environment {
        return Err(Refusal::Elsewhere(
            format!("{} in {}", assignment.model, assignment.environment),
            format!("{model} in {environment}"),
        ));
    }
    let expires = parse_rfc3339("expires_at", &assignment.expires_at)
        .map_err(|_| Refusal::Malformed(format!("expires_at {}", assignment.expires_at)))?;
    if expires <= now_ms {
        return Err(Refusal::Expired(assignment.expires_at));
    }
    if assignment.counter < held_counter {
        return Err(Refusal::Replayed(assignment.counter, held_counter));
    }
    Ok(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(counter: i64, expires_at: &str) -> Assignment {
        Assignment {
            kind: ASSIGNMENT_KIND.into(),
            model: "fraud".into(),
            environment: "production".into(),
            version: 4,
            counter,
            artifact_uri: "models:/fraud/4".into(),
            digest: Some("sha256:00".into()),
            issued_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: expires_at.into(),
        }
    }

    const JAN_1: i64 = 1_767_225_600_000;

    #[test]
    fn an_agent_accepts_only_fresh_untampered_assignments_of_its_own() {
        let signer = AssignmentSigner::generate();
        let keys = [signer.key.verifying_key()];
        let signed = signer.sign(&assignment(7, "2026-01-01T01:00:00.000Z"));
        assert_eq!(verify(&signed, &keys, "fraud", "production", 6, JAN_1).unwrap().counter, 7);
        assert_eq!(verify(&signed, &keys, "fraud", "production", 7, JAN_1).unwrap().version, 4, "re-signed");

        let tampered =
            SignedAssignment { payload: signed.payload.replace("\"version\":4", "\"version\":5"), ..signed.clone() };
        assert_eq!(verify(&tampered, &keys, "fraud", "production", 6, JAN_1), Err(Refusal::BadSignature));
        let other = AssignmentSigner::generate();
        let foreign = other.sign(&assignment(7, "2026-01-01T01:00:00.000Z"));
        assert!(matches!(verify(&foreign, &keys, "fraud", "production", 6, JAN_1), Err(Refusal::UnknownKey(_))));
        assert!(matches!(verify(&signed, &keys, "fraud", "production", 8, JAN_1), Err(Refusal::Replayed(7, 8))));
        assert!(matches!(
            verify(&signed, &keys, "fraud", "production", 6, JAN_1 + 3_600_000),
            Err(Refusal::Expired(_))
        ));
        assert!(matches!(verify(&signed, &keys, "fraud", "staging", 6, JAN_1), Err(Refusal::Elsewhere(..))));
    }

    #[test]
    fn the_payload_is_canonical_json() {
        let signed = AssignmentSigner::generate().sign(&assignment(1, "2026-01-01T01:00:00.000Z"));
        assert!(
            signed.payload.starts_with("{\"artifact_uri\":\"models:/fraud/4\",\"counter\":1,"),
            "{}",
            signed.payload
        );
    }
}
