//! `modelgate audit verify FILE --public-key KEY`: checks a JSONL export with no database —
//! every entry's hash, the links between neighbours, and the checkpoint signatures.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use app::domain::{ChainProblem, Checkpoint};
use ed25519_dalek::VerifyingKey;
use serde_json::{Map, Value};

use super::chain::{ChainVerifier, hashes_of_object};
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
    Entry(Map<String, Value>),
}

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
    if let Some(checkpoint) = object.remove("checkpoint") {
        let checkpoint =
            serde_json::from_value(checkpoint).with_context(|| format!("line {number}: bad checkpoint"))?;
        return Ok(Some(Line::Checkpoint(checkpoint)));
    }
    Ok(Some(Line::Entry(object)))
}

fn lines(path: &Path) -> anyhow::Result<impl Iterator<Item = (usize, std::io::Result<String>)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file).lines().enumerate().map(|(i, l)| (i + 1, l)))
}

/// Verifies the export at `path` against `keys`. Reads the file twice: first the header and the
/// checkpoints (written last), then the entries in order.
pub fn verify_file(path: &Path, keys: &[VerifyingKey]) -> anyhow::Result<Report> {
    let mut contiguous = false;
    let mut checkpoints = Vec::new();
    let mut problem = None;
    for (number, line) in lines(path)? {
        match parse_line(number, &line?)? {
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
    for (number, line) in lines(path)? {
        let Some(Line::Entry(object)) = parse_line(number, &line?)? else {
            continue;
        };
        let seq = object.get("seq").and_then(Value::as_i64).with_context(|| format!("line {number}: no seq"))?;
        let prev = object.get("prev_hash").and_then(Value::as_str).unwrap_or_default().to_string();
        let (stored, computed) = hashes_of_object(object);
        first_seq.get_or_insert(seq);
        last_seq = Some(seq);
        if !verifier.push(seq, &prev, stored.as_deref().unwrap_or_default(), &computed) {
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
