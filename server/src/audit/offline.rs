//! `modelgate audit verify FILE --public-key KEY`: checks a JSONL export with no database, trusting
//! nothing unsigned — every entry's hash, the links between neighbours, the checkpoint signatures,
//! and that the entries (with the Merkle subtree hashes standing in for those left out) make the
//! very chain the checkpoints signed, up to the newest of them.
//!
//! Each entry line is `{"entry":<canonical JSON>,"hash":"<hex>"}`: the server writes the entry in
//! its RFC 8785 canonical form, so the verifier hashes those exact bytes. A match proves they are
//! the canonical form of the entry the server hashed (a reformatted or altered entry cannot match),
//! which is what lets a laptop check hundreds of thousands of entries a second.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use app::domain::{ChainProblem, Checkpoint};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::chain::{ChainVerifier, sha256_hex};
use super::merkle::{self, Subtree};
use super::signing::verify_checkpoint;

/// The first line of an export: what it holds.
pub const EXPORT_FORMAT: &str = "modelgate_audit_export";

/// What an offline verification found.
#[derive(Debug)]
pub struct Report {
    pub entries: i64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Whether the export holds the whole chain up to its newest checkpoint, none left out
    /// (proven by the chain, not read from the header).
    pub contiguous: bool,
    /// Entries left out, proven by subtree hashes instead.
    pub left_out: i64,
    /// Checkpoints the chain was checked against and matched.
    pub checkpoints: i64,
    pub last_checkpoint: Option<i64>,
    /// Entries after the newest checkpoint (a failure unless accepted).
    pub unsigned: i64,
    pub problem: Option<ChainProblem>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.problem {
            return write!(f, "FAILED at entry {}: {}", p.seq, p.what);
        }
        let range = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!("entries {a} to {b}"),
            _ => "no entries".into(),
        };
        let mode = match self.left_out {
            0 => "the whole chain".to_string(),
            n => format!("a filtered export, the {n} entries left out proven by subtree hashes"),
        };
        let last = self.last_checkpoint.map_or(String::new(), |c| format!(", the latest at entry {c}"));
        let unsigned = match self.unsigned {
            0 => String::new(),
            n => format!("; {n} entries after the last checkpoint are NOT signed (accepted)"),
        };
        write!(
            f,
            "OK: {} entries ({range}), {mode}; {} signed checkpoint(s) verified{last}{unsigned}",
            self.entries, self.checkpoints
        )
    }
}

/// What the auditor asks beyond the file's own consistency.
#[derive(Debug, Default, Clone)]
pub struct Expectations {
    /// Accept entries after the newest checkpoint (reported, not failed).
    pub unsigned_tail_ok: bool,
    /// Checkpoints the auditor kept from earlier: the export must contain each unchanged.
    pub kept: Vec<Checkpoint>,
}

enum Line {
    Header,
    Checkpoint(Checkpoint),
    Subtree(Subtree),
}

/// A subtree line as exported: the first entry it stands for (1-based), how many (a power of
/// two, aligned), and its Merkle hash.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubtreeLine {
    first: u64,
    entries: u64,
    hash: String,
}

/// Writes one subtree line.
pub fn subtree_line(subtree: &Subtree) -> Value {
    serde_json::json!({ "subtree": {
        "first": subtree.start + 1,
        "entries": 1u64 << subtree.height,
        "hash": hex::encode(subtree.hash),
    } })
}

/// The header, a checkpoint or a subtree (entry lines are read by [`hash_line`]).
fn parse_line(number: usize, text: &str) -> anyhow::Result<Option<Line>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).with_context(|| format!("line {number} is not JSON"))?;
    let Value::Object(mut object) = value else {
        anyhow::bail!("line {number} is not a JSON object");
    };
    if object.contains_key(EXPORT_FORMAT) {
        return Ok(Some(Line::Header));
    }
    if let Some(subtree) = object.remove("subtree") {
        let line: SubtreeLine =
            serde_json::from_value(subtree).with_context(|| format!("line {number}: bad subtree"))?;
        let hash =
            merkle::digest(&line.hash).with_context(|| format!("line {number}: a subtree hash is 64 hex digits"))?;
        anyhow::ensure!(
            line.first >= 1 && line.entries.is_power_of_two(),
            "line {number}: a subtree starts at entry 1 or later and covers a power of two of entries"
        );
        return Ok(Some(Line::Subtree(Subtree { start: line.first - 1, height: line.entries.trailing_zeros(), hash })));
    }
    let checkpoint = object.remove("checkpoint").with_context(|| format!("line {number}: not an entry"))?;
    let checkpoint = serde_json::from_value(checkpoint).with_context(|| format!("line {number}: bad checkpoint"))?;
    Ok(Some(Line::Checkpoint(checkpoint)))
}

/// An entry line as exported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine<'a> {
    #[serde(borrow)]
    entry: &'a RawValue,
    hash: String,
}

/// What the chain check reads from inside an entry (the rest is covered by its hash).
#[derive(Deserialize)]
struct Links {
    seq: i64,
    prev_hash: String,
}

/// Writes one entry line: its canonical bytes and its stored hash.
pub fn entry_line(canonical: &[u8], hash: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(canonical.len() + 90);
    line.extend_from_slice(b"{\"entry\":");
    line.extend_from_slice(canonical);
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    line
}

fn lines(path: &Path) -> anyhow::Result<impl Iterator<Item = (usize, std::io::Result<String>)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file).lines().enumerate().map(|(i, l)| (i + 1, l)))
}

/// Entry lines start with this; the others (header, checkpoints) are read in the first pass.
const ENTRY_PREFIX: &str = "{\"entry\":";
/// Lines hashed per batch, spread over every core.
const BATCH: usize = 16_384;

/// An entry line reduced to what the chain check needs.
struct Hashed {
    seq: i64,
    prev_hash: String,
    stored: String,
    computed: String,
}

fn hash_line(number: usize, text: &str) -> anyhow::Result<Option<Hashed>> {
    if !text.starts_with(ENTRY_PREFIX) {
        return Ok(None);
    }
    let line: EntryLine = serde_json::from_str(text).with_context(|| format!("line {number}: not an entry line"))?;
    let links: Links = serde_json::from_str(line.entry.get())
        .with_context(|| format!("line {number}: entry without seq/prev_hash"))?;
    let computed = sha256_hex(line.entry.get().as_bytes());
    Ok(Some(Hashed { seq: links.seq, prev_hash: links.prev_hash, stored: line.hash, computed }))
}

/// Parses and hashes a batch of lines on all cores, keeping their order.
fn hash_batch(batch: &[(usize, String)]) -> anyhow::Result<Vec<Hashed>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = batch.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().filter_map(|(n, l)| hash_line(*n, l).transpose()).collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(batch.len());
        for part in parts {
            out.extend(part.join().map_err(|_| anyhow::anyhow!("a hashing thread failed"))??);
        }
        Ok(out)
    })
}

/// Verifies the export at `path` against `keys`, asking nothing more of it.
pub fn verify_file(path: &Path, keys: &[VerifyingKey]) -> anyhow::Result<Report> {
    verify_export(path, keys, &Expectations::default())
}

/// Verifies the export at `path` against `keys` and `expect`. Reads the file twice: first the
/// checkpoints and subtree hashes (written last), then the entries in order, hashed in parallel
/// batches, each subtree taking its place in the chain where it belongs.
pub fn verify_export(path: &Path, keys: &[VerifyingKey], expect: &Expectations) -> anyhow::Result<Report> {
    let mut checkpoints = Vec::new();
    let mut subtrees = Vec::new();
    let mut problem = None;
    for (number, line) in lines(path)? {
        let line = line?;
        if line.starts_with(ENTRY_PREFIX) {
            continue;
        }
        match parse_line(number, &line)? {
            Some(Line::Checkpoint(c)) => checkpoints.push(c),
            Some(Line::Subtree(s)) => subtrees.push(s),
            Some(Line::Header) | None => {}
        }
    }
    let signed_in_file = checkpoints.iter().map(|c| c.seq).max().unwrap_or(0);
    for c in checkpoints.iter().chain(&expect.kept) {
        if let Err(what) = verify_checkpoint(c, keys) {
            problem.get_or_insert(ChainProblem { seq: c.seq, what });
        }
    }
    if let Some(kept) = expect.kept.iter().find(|k| k.seq > signed_in_file) {
        let what = format!(
            "the export's newest checkpoint is at entry {signed_in_file}, before the kept checkpoint at {}: \
             the chain was cut back, or this export is older",
            kept.seq
        );
        problem.get_or_insert(ChainProblem { seq: signed_in_file + 1, what });
    }
    subtrees.sort_by_key(|s| s.start);
    let mut subtrees = subtrees.into_iter().peekable();
    let mut verifier = ChainVerifier::new(checkpoints.into_iter().chain(expect.kept.iter().cloned()));
    verifier.problem = verifier.problem.take().or(problem);
    // Subtrees standing before entry `seq` go in first.
    let mut fill_to = |verifier: &mut ChainVerifier, seq: u64| {
        while verifier.problem.is_none()
            && let Some(s) = subtrees.next_if(|s| s.start < seq.saturating_sub(1) || seq == u64::MAX)
        {
            verifier.push_subtree(&s);
        }
    };
    let (mut first_seq, mut last_seq, mut contiguous) = (None, None, true);
    let mut batch = Vec::with_capacity(BATCH);
    let mut lines = lines(path)?.peekable();
    while lines.peek().is_some() && verifier.problem.is_none() {
        batch.clear();
        for (number, line) in lines.by_ref().take(BATCH) {
            batch.push((number, line?));
        }
        for h in hash_batch(&batch)? {
            fill_to(&mut verifier, h.seq.max(1) as u64);
            first_seq.get_or_insert(h.seq);
            contiguous &= last_seq.is_none_or(|last| last + 1 == h.seq);
            last_seq = Some(h.seq);
            if !verifier.push(h.seq, &h.prev_hash, &h.stored, &h.computed) {
                break;
            }
        }
    }
    fill_to(&mut verifier, u64::MAX);
    verifier.finish(None, expect.unsigned_tail_ok);
    let unsigned = (verifier.size() - verifier.signed_size()).max(0);
    Ok(Report {
        entries: verifier.entries,
        first_seq,
        last_seq,
        contiguous: contiguous && verifier.left_out == 0,
        left_out: verifier.left_out,
        checkpoints: verifier.checkpoints_matched,
        last_checkpoint: verifier.last_checkpoint,
        unsigned,
        problem: verifier.problem.clone(),
    })
}
