//! `modelgate audit verify FILE --public-key KEY`: checks a JSONL export with no database —
//! every entry's hash, the links between neighbours, and the checkpoint signatures.
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
use super::signing::verify_checkpoint;

/// The first line of an export: what it holds.
pub const EXPORT_FORMAT: &str = "modelgate_audit_export";

/// What an offline verification found.
#[derive(Debug)]
pub struct Report {
    pub entries: i64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub contiguous: bool,
    /// Checkpoints whose entries are in the file and match.
    pub checkpoints: i64,
    pub last_checkpoint: Option<i64>,
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
        let mode =
            if self.contiguous { "an unbroken chain" } else { "a filtered export, links checked between neighbours" };
        let last = self.last_checkpoint.map_or(String::new(), |c| format!(", the latest at entry {c}"));
        write!(
            f,
            "OK: {} entries ({range}), {mode}; {} signed checkpoint(s) verified{last}",
            self.entries, self.checkpoints
        )
    }
}

enum Line {
    Header { contiguous: bool },
    Checkpoint(Checkpoint),
}

/// The header or a checkpoint (entry lines are read by [`hash_line`]).
fn parse_line(number: usize, text: &str) -> anyhow::Result<Option<Line>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).with_context(|| format!("line {number} is not JSON"))?;
    let Value::Object(mut object) = value else {
        anyhow::bail!("line {number} is not a JSON object");
    };
    if object.contains_key(EXPORT_FORMAT) {
        let contiguous = object.get("contiguous").and_then(Value::as_bool).unwrap_or(false);
        return Ok(Some(Line::Header { contiguous }));
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

/// Verifies the export at `path` against `keys`. Reads the file twice: first the header and the
/// checkpoints (written last), then the entries in order, hashed in parallel batches.
pub fn verify_file(path: &Path, keys: &[VerifyingKey]) -> anyhow::Result<Report> {
    let mut contiguous = false;
    let mut checkpoints = Vec::new();
    let mut problem = None;
    for (number, line) in lines(path)? {
        let line = line?;
        if line.starts_with(ENTRY_PREFIX) {
            continue;
        }
        match parse_line(number, &line)? {
            Some(Line::Header { contiguous: c }) => contiguous = c,
            Some(Line::Checkpoint(c)) => {
                if let Err(what) = verify_checkpoint(&c, keys) {
                    problem.get_or_insert(ChainProblem { seq: c.seq, what });
                }
                checkpoints.push(c);
            }
            _ => {}
        }
    }
    let mut verifier = ChainVerifier::new(contiguous, &checkpoints);
    let (mut first_seq, mut last_seq) = (None, None);
    let mut batch = Vec::with_capacity(BATCH);
    let mut lines = lines(path)?.peekable();
    while lines.peek().is_some() {
        batch.clear();
        for (number, line) in lines.by_ref().take(BATCH) {
            batch.push((number, line?));
        }
        for h in hash_batch(&batch)? {
            first_seq.get_or_insert(h.seq);
            last_seq = Some(h.seq);
            if !verifier.push(h.seq, &h.prev_hash, &h.stored, &h.computed) {
                break;
            }
        }
        if verifier.problem.is_some() {
            break;
        }
    }
    let mut problem = problem.or(verifier.problem.clone());
    if problem.is_none() && verifier.checkpoints_matched == 0 {
        let what = "no checkpoint signed by a trusted key covers this export".to_string();
        problem = Some(ChainProblem { seq: last_seq.unwrap_or(0), what });
    }
    Ok(Report {
        entries: verifier.entries,
        first_seq,
        last_seq,
        contiguous,
        checkpoints: verifier.checkpoints_matched,
        last_checkpoint: verifier.last_checkpoint,
        problem,
    })
}
