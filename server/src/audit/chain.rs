//! The hash chain itself: how an entry and a checkpoint are hashed and signed, and the verifier
//! that walks entries in order. Pure code, shared by the online check and `modelgate audit verify`.

use std::collections::HashMap;

use app::domain::{AuditEntry, ChainProblem, Checkpoint};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's time as hashed: UTC, RFC 3339, always with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn entry_time(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// The RFC 8785 canonical JSON of every field of an entry but `hash`: the bytes its hash covers.
pub fn canonical_entry(entry: &AuditEntry) -> Vec<u8> {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    serde_json_canonicalizer::to_vec(&value).unwrap_or_default()
}

/// The hash an entry must carry: SHA-256 (hex) over [`canonical_entry`].
pub fn entry_hash(entry: &AuditEntry) -> String {
    sha256_hex(&canonical_entry(entry))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bytes a checkpoint's signature covers: the canonical JSON of all fields but `signature`.
pub fn checkpoint_message(seq: i64, hash: &str, signed_at: &str, key_id: &str) -> Vec<u8> {
    let value = json!({ "seq": seq, "hash": hash, "signed_at": signed_at, "key_id": key_id });
    serde_json_canonicalizer::to_vec(&value).unwrap_or_default()
}

/// Walks entries in sequence order and remembers the first thing wrong.
///
/// `contiguous` chains must have no gaps (a full log, or a time range of it); a filtered export
/// is checked entry by entry, and links only between neighbours that are both present.
pub struct ChainVerifier {
    contiguous: bool,
    last: Option<(i64, String)>,
    checkpoints: HashMap<i64, String>,
    pub entries: i64,
    pub checkpoints_matched: i64,
    pub last_checkpoint: Option<i64>,
    pub problem: Option<ChainProblem>,
}

impl ChainVerifier {
    /// `checkpoints`: the (already signature-checked) checkpoints whose hashes entries must match.
    pub fn new(contiguous: bool, checkpoints: &[Checkpoint]) -> Self {
        Self {
            contiguous,
            last: None,
            checkpoints: checkpoints.iter().map(|c| (c.seq, c.hash.clone())).collect(),
            entries: 0,
            checkpoints_matched: 0,
            last_checkpoint: None,
            problem: None,
        }
    }

    /// The last sequence number up to which everything checked out.
    pub fn verified_to(&self) -> i64 {
        match &self.problem {
            Some(p) => p.seq - 1,
            None => self.last.as_ref().map_or(0, |(seq, _)| *seq),
        }
    }

    fn fail(&mut self, seq: i64, what: String) {
        self.problem.get_or_insert(ChainProblem { seq, what });
    }

    /// Checks the next entry, given the hash recomputed from its contents. Returns false once a
    /// problem has been found (later entries are not checked).
    pub fn push(&mut self, seq: i64, prev_hash: &str, stored_hash: &str, computed_hash: &str) -> bool {
        if self.problem.is_some() {
            return false;
        }
        self.entries += 1;
        match &self.last {
            Some((last_seq, _)) if seq <= *last_seq => {
                let what = format!("entry {seq} appears after entry {last_seq}: entries are out of order or repeated");
                self.fail(*last_seq + 1, what);
                return false;
            }
            Some((last_seq, _)) if self.contiguous && seq != last_seq + 1 => {
                let missing = last_seq + 1;
                self.fail(missing, format!("entry {missing} is missing (the next entry present is {seq})"));
                return false;
            }
            None if self.contiguous && seq == 1 && prev_hash != GENESIS_HASH => {
                self.fail(seq, "the first entry does not start from the genesis hash".into());
                return false;
            }
            _ => {}
        }
        if computed_hash != stored_hash {
            self.fail(seq, format!("entry {seq} was altered: its contents hash to {computed_hash}, not {stored_hash}"));
            return false;
        }
        if let Some((last_seq, last_hash)) = &self.last
            && *last_seq + 1 == seq
            && prev_hash != last_hash
        {
            let what = format!("entry {seq} does not link to entry {last_seq}: prev_hash differs from its hash");
            self.fail(seq, what);
            return false;
        }
        if let Some(signed) = self.checkpoints.get(&seq) {
            if signed != stored_hash {
                self.fail(seq, format!("entry {seq} differs from the signed checkpoint at {seq}"));
                return false;
            }
            self.checkpoints_matched += 1;
            self.last_checkpoint = Some(seq);
        }
        self.last = Some((seq, stored_hash.to_string()));
        true
    }

    /// After the last entry: a contiguous chain must reach `expected_head` (when known).
    pub fn finish(&mut self, expected_head: Option<i64>) {
        let last = self.last.as_ref().map_or(0, |(seq, _)| *seq);
        if let Some(head) = expected_head.filter(|h| *h > last) {
            self.fail(last + 1, format!("entries {} to {head} are missing", last + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(before: &str) -> AuditEntry {
        AuditEntry {
            seq: 1,
            at: entry_time(0),
            actor: "alice".into(),
            actor_user: Some("alice".into()),
            actor_token: None,
            action: "version.update".into(),
            target: "models/m/versions/1".into(),
            model: Some("m".into()),
            version: Some(1),
            environment: None,
            before: Some(serde_json::from_str(before).unwrap()),
            after: None,
            reason: None,
            request_id: None,
            client_addr: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn entries_hash_their_canonical_form_whatever_the_key_order_or_spacing() {
        let a = entry(r#"{"b": 1, "a": [1.0, "x"]}"#);
        let b = entry(r#"{"a":[1,"x"],"b":1}"#);
        assert_eq!(entry_hash(&a), entry_hash(&b));
        let text = String::from_utf8(canonical_entry(&a)).unwrap();
        assert!(text.starts_with(r#"{"action":"version.update","actor":"alice""#), "{text}");
        assert!(text.contains(r#""before":{"a":[1,"x"],"b":1}"#) && !text.contains("\"hash\""), "{text}");
        assert_ne!(entry_hash(&a), entry_hash(&entry(r#"{"a":[1,"x"],"b":2}"#)));
    }

    #[test]
    fn entry_times_always_carry_milliseconds() {
        assert_eq!(entry_time(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(entry_time(1_767_225_600_042), "2026-01-01T00:00:00.042Z");
    }

    #[test]
    fn the_verifier_names_the_first_gap_edit_and_broken_link() {
        let mut v = ChainVerifier::new(true, &[]);
        assert!(v.push(1, GENESIS_HASH, "h1", "h1"));
        assert!(!v.push(3, "h2", "h3", "h3"));
        assert_eq!(v.problem.as_ref().unwrap().seq, 2);
        assert_eq!(v.verified_to(), 1);

        let mut v = ChainVerifier::new(true, &[]);
        assert!(v.push(1, GENESIS_HASH, "h1", "h1"));
        assert!(!v.push(2, "h1", "h2", "edited"));
        assert_eq!(v.problem.as_ref().unwrap().seq, 2);

        let mut v = ChainVerifier::new(true, &[]);
        assert!(v.push(1, GENESIS_HASH, "h1", "h1"));
        assert!(!v.push(2, "other", "h2", "h2"));
        assert!(v.problem.as_ref().unwrap().what.contains("does not link"));
    }
}
