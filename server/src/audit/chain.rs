//! The hash chain itself: how an entry and a checkpoint are hashed and signed, and the verifier
//! that walks entries in order. Pure code, shared by the online check and `modelgate audit verify`.

use std::collections::BTreeMap;

use app::domain::{AuditEntry, ChainProblem, Checkpoint};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::merkle::{self, Frontier, Subtree};

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
pub fn checkpoint_message(seq: i64, hash: &str, root: Option<&str>, signed_at: &str, key_id: &str) -> Vec<u8> {
    let mut value = json!({ "seq": seq, "hash": hash, "signed_at": signed_at, "key_id": key_id });
    if let Some(root) = root {
        value["root"] = json!(root);
    }
    serde_json_canonicalizer::to_vec(&value).unwrap_or_default()
}

/// Walks the chain in sequence order — entries, and subtree hashes standing in for entries left
/// out — and remembers the first thing wrong.
///
/// Nothing is taken on trust: entries must follow one another (or a subtree hash must stand in
/// for those missing), each must hash to its stored hash and link to the one before it, and the
/// chain must agree with every signed checkpoint it passes (the last entry's hash and the Merkle
/// root at that size) and reach the last of them.
pub struct ChainVerifier {
    last: Option<(i64, String)>,
    tree: Frontier,
    checkpoints: BTreeMap<i64, Checkpoint>,
    /// The largest chain size at which a checkpoint matched.
    verified_cut: i64,
    pub entries: i64,
    /// Entries left out, their place taken by subtree hashes.
    pub left_out: i64,
    pub checkpoints_matched: i64,
    pub last_checkpoint: Option<i64>,
    pub problem: Option<ChainProblem>,
}

impl ChainVerifier {
    /// `checkpoints`: the (already signature-checked) checkpoints the chain must agree with.
    pub fn new(checkpoints: impl IntoIterator<Item = Checkpoint>) -> Self {
        let mut verifier = Self {
            last: None,
            tree: Frontier::default(),
            checkpoints: BTreeMap::new(),
            verified_cut: 0,
            entries: 0,
            left_out: 0,
            checkpoints_matched: 0,
            last_checkpoint: None,
            problem: None,
        };
        for c in checkpoints {
            verifier.add_checkpoint(c);
        }
        verifier
    }

    /// One more checkpoint to agree with; two signed ones for one size must say the same.
    fn add_checkpoint(&mut self, c: Checkpoint) {
        match self.checkpoints.get_mut(&c.seq) {
            None => {
                self.checkpoints.insert(c.seq, c);
            }
            Some(known)
                if known.hash == c.hash && (known.root.is_none() || c.root.is_none() || known.root == c.root) =>
            {
                if known.root.is_none() {
                    *known = c;
                }
            }
            Some(_) => self.fail(c.seq, format!("two signed checkpoints at entry {} disagree", c.seq)),
        }
    }

    /// The size of the chain the newest checkpoint signed (0 without one).
    pub fn signed_size(&self) -> i64 {
        self.checkpoints.last_key_value().map_or(0, |(seq, _)| *seq)
    }

    /// The last sequence number up to which everything checked out.
    pub fn verified_to(&self) -> i64 {
        match &self.problem {
            Some(p) => p.seq - 1,
            None => self.tree.size() as i64,
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
        let next = self.tree.size() as i64 + 1;
        if let Some((last_seq, _)) = &self.last
            && seq <= *last_seq
        {
            let what = format!("entry {seq} appears after entry {last_seq}: entries are out of order or repeated");
            self.fail(*last_seq + 1, what);
            return false;
        }
        if seq != next {
            self.fail(
                next,
                format!(
                    "entry {next} is missing (the next entry present is {seq}) and no subtree hash stands in for it"
                ),
            );
            return false;
        }
        if seq == 1 && prev_hash != GENESIS_HASH {
            self.fail(seq, "the first entry does not start from the genesis hash".into());
            return false;
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
        let Some(digest) = merkle::digest(stored_hash) else {
            self.fail(seq, format!("entry {seq}'s hash is not 64 hex digits"));
            return false;
        };
        self.tree.push(digest);
        self.last = Some((seq, stored_hash.to_string()));
        self.passed()
    }

    /// Takes a subtree hash in place of the entries it covers (a filtered export's proof).
    pub fn push_subtree(&mut self, subtree: &Subtree) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let next = self.tree.size() as i64 + 1;
        let (first, width) = (subtree.start as i64 + 1, 1i64.checked_shl(subtree.height).unwrap_or(i64::MAX));
        let end = first.saturating_add(width - 1);
        if first != next {
            self.fail(next, format!("a subtree hash for entries {first} to {end} stands where entry {next} belongs"));
            return false;
        }
        if let Some(seq) = self.checkpoints.range(first..end).next().map(|(seq, _)| *seq) {
            self.fail(first, format!("a subtree hash for entries {first} to {end} spans the checkpoint at {seq}"));
            return false;
        }
        if !self.tree.push_subtree(subtree.height, subtree.hash) {
            self.fail(first, format!("a subtree hash for entries {first} to {end} is not aligned to its width"));
            return false;
        }
        self.left_out += width;
        self.passed()
    }

    /// At a size a checkpoint signed: the last entry (if present) and the root must be its.
    fn passed(&mut self) -> bool {
        let size = self.tree.size() as i64;
        let Some(checkpoint) = self.checkpoints.get(&size) else {
            return true;
        };
        let first = self.verified_cut + 1;
        let entries = if first == size { format!("entry {size}") } else { format!("entries {first} to {size}") };
        let leaf_present = self.last.as_ref().is_some_and(|(seq, _)| *seq == size);
        if let Some((_, hash)) = self.last.as_ref().filter(|_| leaf_present)
            && *hash != checkpoint.hash
        {
            let what = format!(
                "{entries} differ from the signed checkpoint at {size}: entry {size} has hash {hash}, the \
                 checkpoint signed {}",
                checkpoint.hash
            );
            self.fail(first, what);
            return false;
        }
        let checked = match &checkpoint.root {
            Some(root) if self.tree.root_hex().as_ref() != Some(root) => {
                self.fail(first, format!("{entries} differ from the Merkle root signed at {size}"));
                return false;
            }
            Some(_) => true,
            None => leaf_present,
        };
        if checked {
            self.checkpoints_matched += 1;
            self.verified_cut = size;
            self.last_checkpoint = Some(size);
        }
        true
    }

    /// After the last entry: the chain must reach the newest signed checkpoint and, when known,
    /// `expected_head`; entries past the newest checkpoint are a problem unless `unsigned_ok`.
    pub fn finish(&mut self, expected_head: Option<i64>, unsigned_ok: bool) {
        let size = self.tree.size() as i64;
        let signed = self.signed_size();
        if signed > size {
            self.fail(
                size + 1,
                format!(
                    "entries {} to {signed} are missing: a checkpoint signed the chain at {signed} entries",
                    size + 1
                ),
            );
        }
        if let Some(head) = expected_head.filter(|h| *h > size) {
            self.fail(size + 1, format!("entries {} to {head} are missing", size + 1));
        }
        if size > signed && !unsigned_ok && signed == 0 {
            self.fail(1, format!("no checkpoint signed by a trusted key covers entries 1 to {size}"));
        } else if size > signed && !unsigned_ok {
            let what = format!(
                "entries {} to {size} come after the last signed checkpoint ({signed}): no signature vouches for them",
                signed + 1
            );
            self.fail(signed + 1, what);
        }
    }

    /// The chain's size so far (entries and the entries subtree hashes stand for).
    pub fn size(&self) -> i64 {
        self.tree.size() as i64
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

    fn h(n: u8) -> String {
        sha256_hex(&[n])
    }

    #[test]
    fn the_verifier_names_the_first_gap_edit_and_broken_link() {
        let mut v = ChainVerifier::new([]);
        assert!(v.push(1, GENESIS_HASH, &h(1), &h(1)));
        assert!(!v.push(3, &h(2), &h(3), &h(3)));
        assert_eq!(v.problem.as_ref().unwrap().seq, 2);
        assert_eq!(v.verified_to(), 1);

        let mut v = ChainVerifier::new([]);
        assert!(v.push(1, GENESIS_HASH, &h(1), &h(1)));
        assert!(!v.push(2, &h(1), &h(2), "edited"));
        assert_eq!(v.problem.as_ref().unwrap().seq, 2);

        let mut v = ChainVerifier::new([]);
        assert!(v.push(1, GENESIS_HASH, &h(1), &h(1)));
        assert!(!v.push(2, "other", &h(2), &h(2)));
        assert!(v.problem.as_ref().unwrap().what.contains("does not link"));
    }

    #[test]
    fn the_chain_must_reach_and_agree_with_every_checkpoint() {
        let signer = super::super::signing::Signer::generate();
        let mut tree = Frontier::default();
        let mut prev = GENESIS_HASH.to_string();
        let mut chain = Vec::new();
        for seq in 1..=6u8 {
            chain.push((i64::from(seq), prev.clone(), h(seq)));
            prev = h(seq);
            tree.push(merkle::digest(&h(seq)).unwrap());
        }
        let at_six = signer.sign(6, &h(6), tree.root_hex(), "2026-01-01T00:00:00.000Z");
        let walk = |upto: usize, unsigned_ok: bool| {
            let mut v = ChainVerifier::new([at_six.clone()]);
            for (seq, prev, hash) in &chain[..upto] {
                v.push(*seq, prev, hash, hash);
            }
            v.finish(None, unsigned_ok);
            v
        };
        let whole = walk(6, false);
        assert!(whole.problem.is_none() && whole.checkpoints_matched == 1);
        let cut = walk(4, true);
        assert_eq!(cut.problem.as_ref().map(|p| p.seq), Some(5), "a cut tail is missing entries");

        let mut unsigned = walk(6, false);
        assert!(unsigned.push(7, &h(6), &h(7), &h(7)));
        unsigned.finish(None, false);
        assert_eq!(unsigned.problem.as_ref().map(|p| p.seq), Some(7), "an entry past the last checkpoint");

        let mut rewritten = ChainVerifier::new([at_six]);
        for (seq, prev, hash) in &chain[..3] {
            rewritten.push(*seq, prev, hash, hash);
        }
        let (mut prev, mut seq) = (h(3), 4);
        for forged in [40u8, 50, 60] {
            rewritten.push(seq, &prev, &h(forged), &h(forged));
            prev = h(forged);
            seq += 1;
        }
        let problem = rewritten.problem.unwrap();
        assert_eq!(problem.seq, 1, "no earlier checkpoint: the rewrite is somewhere in 1..=6");
        assert!(problem.what.contains("entries 1 to 6 differ from the signed checkpoint at 6"), "{}", problem.what);
    }
}
