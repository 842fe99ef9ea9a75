//! Reading the audit log back: filtered search with a cursor, single entries, streamed export,
//! the integrity status, and the online verification that walks the whole chain.

use std::collections::BTreeSet;
use std::time::Instant;

use app::backend::AuditTrail;
use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use futures::{Stream, StreamExt, TryStreamExt};
use sqlx::AnyConnection;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::audit::chain::{ChainVerifier, entry_hash, entry_time};
use crate::audit::insert_checkpoint;
use crate::audit::merkle::{self, Subtree};
use crate::audit::signing::{parse_public_key, verify_checkpoint};
use crate::audit::terms::words;
use crate::db::Dialect;

/// An I/O failure of the server's own (a file it keeps), logged and answered as a 500.
fn internal(error: &anyhow::Error) -> ApiError {
    tracing::error!(error = %format!("{error:#}"), "audit");
    ApiError::internal()
}
use crate::jobs::{self, Progress};
use crate::store::Store;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// Entries fetched per round trip while exporting or verifying.
const CHUNK: i64 = 2_000;
/// At most this many queued entries' terms are moved into the term index per write.
const INDEX_BATCH: i64 = 4_096;

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    at: i64,
    actor: String,
    actor_user: Option<String>,
    actor_token: Option<String>,
    action: String,
    target: String,
    model: Option<String>,
    version: Option<i64>,
    environment: Option<String>,
    before_state: Option<String>,
    after_state: Option<String>,
    reason: Option<String>,
    request_id: Option<String>,
    client_addr: Option<String>,
    prev_hash: String,
    hash: String,
    seal: Option<String>,
}

const ENTRY_COLUMNS: &str = "seq, at, actor, actor_user, actor_token, action, target, model, version, environment, \
     before_state, after_state, reason, request_id, client_addr, prev_hash, hash, seal";

impl EntryRow {
    fn into_entry(self) -> AuditEntry {
        let state = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        AuditEntry {
            seq: self.seq,
            at: entry_time(self.at),
            actor: self.actor,
            actor_user: self.actor_user,
            actor_token: self.actor_token,
            action: self.action,
            target: self.target,
            model: self.model,
            version: self.version,
            environment: self.environment,
            before: state(self.before_state),
            after: state(self.after_state),
            reason: self.reason,
            request_id: self.request_id,
            client_addr: self.client_addr,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// A time filter: RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or `YYYY-MM-DD` (UTC midnight), in ms.
fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(ms(t));
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    for format in [minutes, seconds] {
        if let Ok(t) = PrimitiveDateTime::parse(text, format) {
            return Ok(ms(t.assume_utc()));
        }
    }
    if let Ok(d) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(ms(d.midnight().assume_utc()));
    }
    Err(ApiError::invalid(field, format!("{text:?} is not a time; use RFC 3339 (2026-01-31T12:00:00Z) or 2026-01-31")))
}

/// The first entry at or after `ms` (entry times never go backwards, so this bounds a time range).
async fn first_seq_at(conn: &mut AnyConnection, ms: i64) -> Result<Option<i64>, ApiError> {
    sqlx::query_scalar("SELECT seq FROM audit_entries WHERE at >= $1 ORDER BY at, seq LIMIT 1")
        .bind(ms)
        .fetch_optional(conn)
        .await
        .map_err(ApiError::from)
}

/// The WHERE clause (beyond the cursor) and its binds for a query's filters, and the table the
/// rows come from: free text is driven by the search-term index, and by the queue of terms
/// waiting for it (see [`Filter::sources`]).
#[derive(Clone)]
struct Filter {
    from: String,
    sql: String,
    /// The free-text words every entry found has, longest first.
    words: Vec<String>,
    texts: Vec<String>,
    numbers: Vec<i64>,
    /// The sequence numbers a time range covers, `first..end` (one range the scan walks, rather
    /// than bounds the database might not combine with the cursor).
    first: i64,
    end: i64,
}

impl Filter {
    fn new() -> Self {
        Filter {
            from: "audit_entries".into(),
            sql: String::new(),
            words: Vec::new(),
            texts: Vec::new(),
            numbers: Vec::new(),
            first: 0,
            end: i64::MAX,
        }
    }

    async fn from_query(query: &AuditQuery, conn: &mut AnyConnection) -> Result<Self, ApiError> {
        let mut f = Filter::new();
        let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        // A time range is the range of sequence numbers between its first entries: a walk of the
        // primary key, whatever else is filtered.
        if let Some(from) = nonempty(&query.from) {
            f.first = first_seq_at(conn, parse_time("from", &from)?).await?.unwrap_or(i64::MAX);
        }
        if let Some(to) = nonempty(&query.to) {
            f.end = first_seq_at(conn, parse_time("to", &to)?).await?.unwrap_or(i64::MAX);
        }
        for (field, column, value) in [
            ("actor", "actor_user", nonempty(&query.actor)),
            ("action", "action", nonempty(&query.action)),
            ("model", "model", nonempty(&query.model)),
            ("environment", "environment", nonempty(&query.environment)),
        ] {
            if let Some(v) = value {
                validate::text(field, &v, 200)?;
                f.text(&format!("{column} ="), v);
            }
        }
        if let Some(v) = query.version {
            f.number("version =", v);
        }
        if query.sessions == Some(false) {
            f.text("action NOT LIKE", "session.%".into());
        }
        if query.verdicts == Some(false) {
            f.text("action <>", AuditAction::GuardrailVerdict.as_str().into());
        }
        if let Some(q) = nonempty(&query.q) {
            validate::text("q", &q, 200)?;
            f.words = words(&q).collect::<BTreeSet<_>>().into_iter().collect();
            // The longest word is likely the rarest: it drives, the others are checked per row.
            f.words.sort_by_key(|t| std::cmp::Reverse(t.len()));
            if f.words.is_empty() {
                return Err(ApiError::invalid("q", "search for at least one word of two or more letters or digits"));
            }
        }
        Ok(f)
    }

    /// The filters to run, in this order, whose rows together are the answer: itself without free
    /// text; with it, one over the entries whose terms still wait in the queue, then one over the
    /// term index (an entry's terms are all in one or all in the other). Entries only move from
    /// queue to index, so the queue is read first: an entry moved between the two reads is then
    /// found in the index, where the other order would miss it in both. On SQLite the queue leads
    /// the join (`CROSS JOIN`): its planner would otherwise walk every entry in range to look
    /// each up in it.
    fn sources(&self, sqlite: bool) -> Vec<Filter> {
        let Some((driver, others)) = self.words.split_first() else { return vec![self.clone()] };
        let mut indexed = self.clone();
        indexed.from = "audit_terms JOIN audit_entries USING (seq)".into();
        indexed.text("term =", driver.clone());
        for term in others {
            indexed.text(
                "EXISTS (SELECT 1 FROM audit_terms other WHERE other.seq = audit_entries.seq AND other.term =",
                term.clone(),
            );
            indexed.sql.push(')');
        }
        let mut queued = self.clone();
        let join = if sqlite { "CROSS JOIN" } else { "JOIN" };
        queued.from = format!("audit_term_queue {join} audit_entries USING (seq)");
        // A queued entry's terms are a JSON array of words, which hold no quote or wildcard.
        for term in &self.words {
            queued.text("terms LIKE", format!("%\"{term}\"%"));
        }
        vec![queued, indexed]
    }

    /// The first `keep` rows (by `seq`, descending or not) of every source's answer to the query
    /// `template` makes of its first extra placeholder's number, with `extra` bound there on.
    /// Each source's query must ask for at least `keep` rows: the first of the union are among
    /// the first of each.
    async fn fetch_first(
        &self,
        conn: &mut AnyConnection,
        template: impl Fn(usize) -> String,
        extra: &[i64],
        keep: usize,
        descending: bool,
    ) -> Result<Vec<EntryRow>, ApiError> {
        let mut rows = Vec::new();
        for source in self.sources(Dialect::of_connection(conn) == Dialect::Sqlite) {
            rows.extend(source.fetch(conn, &template(source.placeholder()), extra).await?);
        }
        rows.sort_by_key(|r| if descending { -r.seq } else { r.seq });
        rows.dedup_by_key(|r| r.seq);
        rows.truncate(keep);
        Ok(rows)
    }

    fn placeholder(&self) -> usize {
        self.texts.len() + self.numbers.len() + 1
    }

    fn text(&mut self, condition: &str, value: String) {
        self.sql.push_str(&format!(" AND {condition} $T{}", self.texts.len()));
        self.texts.push(value);
    }

    fn number(&mut self, condition: &str, value: i64) {
        self.sql.push_str(&format!(" AND {condition} $N{}", self.numbers.len()));
        self.numbers.push(value);
    }

    /// The final SQL with `$T`/`$N` markers numbered as real placeholders (texts first), and
    /// `extra` more placeholders after them.
    fn render(&self, template: &str) -> String {
        let mut sql = template.replace("{from}", &self.from).replace("{filter}", &self.sql);
        for i in (0..self.numbers.len()).rev() {
            sql = sql.replace(&format!("$N{i}"), &format!("${}", self.texts.len() + i + 1));
        }
        for i in (0..self.texts.len()).rev() {
            sql = sql.replace(&format!("$T{i}"), &format!("${}", i + 1));
        }
        sql
    }

    async fn fetch(&self, conn: &mut AnyConnection, template: &str, extra: &[i64]) -> Result<Vec<EntryRow>, ApiError> {
        let sql = self.render(template);
        let mut q = sqlx::query_as::<_, EntryRow>(&sql);
        for t in &self.texts {
            q = q.bind(t.clone());
        }
        for n in self.numbers.iter().chain(extra) {
            q = q.bind(*n);
        }
        q.fetch_all(conn).await.map_err(ApiError::from)
    }
}

impl Store {
    /// Moves the oldest queued entries' search terms (at most [`INDEX_BATCH`]) into the term
    /// index, in one write, and says how many entries it moved. The server runs it every fraction
    /// of a second: an audited write only queues its entry's terms (one row beside the entry instead
    /// of one per word, each on a page of its own), and this writes many entries' words at once.
    pub async fn index_audit_terms(&self) -> Result<u64, ApiError> {
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_term_queue").fetch_one(&mut *self.conn().await?).await?;
        let Some(first) = first else { return Ok(0) };
        let mut tx = self.begin_data_write().await?;
        let upto = first + INDEX_BATCH;
        let moved = match self.db.dialect() {
            // The write holds SQLite's one write lock: nothing is queued between the two statements.
            Dialect::Sqlite => {
                sqlx::query(
                    "INSERT INTO audit_terms (term, seq) SELECT value, seq FROM audit_term_queue, json_each(terms) \
                     WHERE seq < $1 ON CONFLICT DO NOTHING",
                )
                .bind(upto)
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query("DELETE FROM audit_term_queue WHERE seq < $1").bind(upto).execute(&mut *tx);
                deleted.await?.rows_affected()
            }
            // Exactly the rows deleted are indexed, whatever commits meanwhile.
            Dialect::Postgres => {
                let moved: i64 = sqlx::query_scalar(
                    "WITH moved AS (DELETE FROM audit_term_queue WHERE seq < $1 RETURNING seq, terms), \
                     indexed AS (INSERT INTO audit_terms (term, seq) SELECT word, seq \
                       FROM moved, jsonb_array_elements_text(terms::jsonb) AS word ON CONFLICT DO NOTHING) \
                     SELECT COUNT(*) FROM moved",
                )
                .bind(upto)
                .fetch_one(&mut *tx)
                .await?;
                moved as u64
            }
        };
        tx.commit().await?;
        Ok(moved)
    }

    /// Entries matching `query` up to sequence number `last`, in ascending order, fetched in chunks
    /// (for export).
    pub async fn audit_export(
        &self,
        query: AuditQuery,
        last: i64,
    ) -> Result<impl Stream<Item = Result<AuditEntry, ApiError>> + use<>, ApiError> {
        Ok(self.sealed_entries(query, last).await?.map_ok(|(entry, _)| entry))
    }

    /// [`Store::audit_export`], each entry with its seal (for verification).
    async fn sealed_entries(
        &self,
        query: AuditQuery,
        last: i64,
    ) -> Result<impl Stream<Item = Result<(AuditEntry, Option<String>), ApiError>> + use<>, ApiError> {
        let mut filter = Filter::from_query(&query, &mut *self.conn().await?).await?;
        filter.end = filter.end.min(last.saturating_add(1));
        let store = self.clone();
        let chunks = futures::stream::try_unfold((filter.first - 1, false), move |(after, done)| {
            let (store, filter) = (store.clone(), filter.clone());
            async move {
                if done {
                    return Ok::<_, ApiError>(None);
                }
                let sql = |n: usize| {
                    format!(
                        "SELECT {ENTRY_COLUMNS} FROM {{from}} WHERE seq > ${n} AND seq < ${} {{filter}} \
                         ORDER BY seq ASC LIMIT {}",
                        n + 1,
                        CHUNK + 1
                    )
                };
                let mut conn = store.conn().await?;
                let mut rows =
                    filter.fetch_first(&mut conn, sql, &[after, filter.end], CHUNK as usize + 1, false).await?;
                let finished = rows.len() as i64 <= CHUNK;
                rows.truncate(CHUNK as usize);
                let last = rows.last().map_or(after, |r| r.seq);
                let entries: Vec<Result<(AuditEntry, Option<String>), ApiError>> = rows
                    .into_iter()
                    .map(|mut r| {
                        let seal = r.seal.take();
                        Ok((r.into_entry(), seal))
                    })
                    .collect();
                Ok(Some((futures::stream::iter(entries), (last, finished))))
            }
        });
        Ok(chunks.try_flatten())
    }

    /// The subtree hashes that stand in for the entries among the first `size` that an export
    /// leaves out (`kept`: the sequence numbers it holds, ascending), none spanning a stored
    /// checkpoint, the one kept outside the database or `also_cut`, so each of those roots can be
    /// recomputed from the export.
    pub async fn audit_subtrees(
        &self,
        kept: &[i64],
        size: i64,
        also_cut: Option<i64>,
    ) -> Result<Vec<Subtree>, ApiError> {
        if kept.len() as i64 == size {
            return Ok(Vec::new());
        }
        let mut leaves = Vec::with_capacity(size.max(0) as usize);
        {
            let mut conn = self.conn().await?;
            let mut hashes =
                sqlx::query_scalar::<_, String>("SELECT hash FROM audit_entries WHERE seq <= $1 ORDER BY seq")
                    .bind(size)
                    .fetch(&mut *conn);
            while let Some(hash) = hashes.try_next().await? {
                leaves.push(merkle::digest(&hash).ok_or_else(ApiError::internal)?);
            }
        }
        if leaves.len() as i64 != size {
            // A chain with a gap has no tree to prove anything with; the verifier names the gap.
            return Ok(Vec::new());
        }
        let mut cuts: Vec<u64> = self.checkpoints_between(1, size).await?.iter().map(|c| c.seq as u64).collect();
        cuts.extend(
            self.audit
                .witness
                .latest()
                .map(|w| w.seq)
                .into_iter()
                .chain(also_cut)
                .filter(|c| (1..=size).contains(c))
                .map(|c| c as u64),
        );
        cuts.sort_unstable();
        let kept: Vec<u64> = kept.iter().map(|seq| (*seq - 1) as u64).collect();
        Ok(merkle::cover(&leaves, &kept, &cuts))
    }

    /// Signed checkpoints with sequence numbers in `from..=to`, ascending.
    pub async fn checkpoints_between(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, ApiError> {
        self.checkpoints("WHERE seq >= $1 AND seq <= $2 ORDER BY seq", &[from, to]).await
    }

    /// The most recent checkpoints, newest first.
    pub async fn recent_checkpoints(&self, limit: u32) -> Result<Vec<Checkpoint>, ApiError> {
        self.checkpoints("ORDER BY seq DESC LIMIT $1", &[i64::from(limit)]).await
    }

    async fn checkpoints(&self, clauses: &str, binds: &[i64]) -> Result<Vec<Checkpoint>, ApiError> {
        let sql = format!("SELECT seq, hash, root, signed_at, key_id, signature FROM audit_checkpoints {clauses}");
        let mut query = sqlx::query_as::<_, (i64, String, Option<String>, String, String, String)>(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&mut *self.conn().await?).await?;
        Ok(rows
            .into_iter()
            .map(|(seq, hash, root, signed_at, key_id, signature)| Checkpoint {
                seq,
                hash,
                root,
                signed_at,
                key_id,
                signature,
            })
            .collect())
    }

    /// The signing key now, and every other key that signed a stored checkpoint.
    pub async fn audit_public_keys(&self) -> Result<PublicKeys, ApiError> {
        let current = self.audit.signer.public().clone();
        let stored: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT public_key FROM audit_checkpoints")
            .fetch_all(&mut *self.conn().await?)
            .await?;
        let previous = stored
            .into_iter()
            .filter(|(k,)| *k != current.public_key)
            .filter_map(|(k,)| parse_public_key(&k).ok())
            .map(|k| crate::audit::signing::public_key_info(&k))
            .collect();
        Ok(PublicKeys { current, previous })
    }

    pub(crate) async fn head(&self) -> Result<(i64, String), ApiError> {
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(ApiError::from)
    }

    /// Signs and stores a checkpoint at the head of the chain (unless the log is empty), and keeps
    /// it outside the database.
    pub async fn checkpoint_head(&self) -> Result<Option<Checkpoint>, ApiError> {
        let mut tx = self.db.begin_write().await?;
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&mut *tx).await?;
        if seq == 0 {
            return Ok(None);
        }
        let checkpoint = self.audit.sign_at(&mut tx, seq, &hash, &entry_time(self.clock.now_ms())).await?;
        insert_checkpoint(&mut tx, &checkpoint, &self.audit.signer).await?;
        tx.commit().await?;
        self.audit.witness.keep(&checkpoint).map_err(|e| internal(&e))?;
        Ok(Some(checkpoint))
    }

    /// Signs a checkpoint at the head when entries were appended since the last checkpoint.
    pub async fn checkpoint_if_behind(&self) -> Result<(), ApiError> {
        let (seq, _) = self.head().await?;
        let last = self.recent_checkpoints(1).await?.pop().map_or(0, |c| c.seq);
        if seq > last {
            self.checkpoint_head().await?;
        }
        Ok(())
    }

    /// Signs the head into the checkpoint kept outside the database when it moved since (not
    /// stored in the database: the kept file is the record). A head below the kept checkpoint is
    /// an error, every time, until someone looks.
    pub async fn keep_witness(&self) -> Result<(), ApiError> {
        let (seq, hash) = self.head().await?;
        let kept = self.audit.witness.latest().map_or(0, |c| c.seq);
        if seq == 0 || seq == kept {
            return Ok(());
        }
        let checkpoint = {
            let mut conn = self.conn().await?;
            self.audit.sign_at(&mut conn, seq, &hash, &entry_time(self.clock.now_ms())).await?
        };
        self.audit.witness.keep(&checkpoint).map_err(|e| internal(&e))
    }

    /// Every key that may have signed a stored checkpoint, ready to verify with.
    async fn trusted_keys(&self) -> Result<Vec<ed25519_dalek::VerifyingKey>, ApiError> {
        let keys = self.audit_public_keys().await?;
        Ok(std::iter::once(keys.current)
            .chain(keys.previous)
            .filter_map(|k| parse_public_key(&k.public_key).ok())
            .collect())
    }

    /// Walks every entry and checks it against every stored checkpoint and the one kept outside
    /// the database, reporting how many entries it has walked; returns the outcome.
    pub async fn verify_chain(&self, progress: &mut Progress) -> Result<Verification, ApiError> {
        let started = Instant::now();
        let (head, _) = self.head().await?;
        let keys = self.trusted_keys().await?;
        let mut checkpoints = self.checkpoints_between(1, i64::MAX).await?;
        checkpoints.extend(self.audit.witness.latest());
        let mut problem = None;
        for c in &checkpoints {
            if let Err(what) = verify_checkpoint(c, &keys) {
                problem = Some(ChainProblem { seq: c.seq, what });
                break;
            }
        }
        let mut verifier = ChainVerifier::new(checkpoints);
        verifier.problem = verifier.problem.take().or(problem);
        if verifier.problem.is_none() {
            let mut entries = std::pin::pin!(self.sealed_entries(AuditQuery::default(), head).await?);
            let mut sealed_since = None;
            while let Some(entry) = entries.next().await {
                let (entry, seal) = entry?;
                // A seal only the signing key makes names the very entry an attacker rewrote;
                // once entries carry seals (since the upgrade that added them), every later one must.
                let unsealed = match seal.as_deref().map(|s| self.audit.signer.seal_matches(s, &entry.hash)) {
                    Some(Some(false)) => Some("its seal does not match its hash: it was rewritten"),
                    None if sealed_since.is_some() => Some("it has no seal, though the entries before it do"),
                    _ => None,
                };
                if seal.is_some() {
                    sealed_since.get_or_insert(entry.seq);
                }
                if let Some(why) = unsealed {
                    verifier
                        .problem
                        .get_or_insert(ChainProblem { seq: entry.seq, what: format!("entry {}: {why}", entry.seq) });
                    verifier.entries += 1;
                    break;
                }
                if !verifier.push(entry.seq, &entry.prev_hash, &entry.hash, &entry_hash(&entry)) {
                    break;
                }
                progress.report(verifier.entries, head).await?;
            }
            verifier.finish(Some(head), true);
        }
        let verification = Verification {
            at: entry_time(self.clock.now_ms()),
            entries: verifier.entries,
            verified_to: verifier.verified_to(),
            checkpoints: verifier.checkpoints_matched,
            problem: verifier.problem.clone(),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        Ok(verification)
    }

    async fn integrity(&self) -> Result<IntegrityStatus, ApiError> {
        let (head_seq, head_hash) = self.head().await?;
        let last_checkpoint = self.recent_checkpoints(1).await?.pop();
        let keys = self.trusted_keys().await?;
        let checkpoint_signature_valid = last_checkpoint.as_ref().is_some_and(|c| verify_checkpoint(c, &keys).is_ok());
        let (mut conn, now) = (self.conn().await?, self.clock.now_ms());
        let last_done = jobs::latest(&mut conn, JobKind::AuditVerify, "", Some(JobState::Done), now).await?;
        let newest = jobs::latest(&mut conn, JobKind::AuditVerify, "", None, now).await?;
        Ok(IntegrityStatus {
            head_seq,
            head_hash,
            last_verification: last_done.and_then(|job| serde_json::from_value(job.result?).ok()),
            verifying: newest.filter(|job| job.state != JobState::Done),
            last_checkpoint,
            checkpoint_signature_valid,
            witness: self.audit.witness.latest(),
        })
    }
}

#[async_trait]
impl AuditTrail for Store {
    async fn search_audit(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, ApiError> {
        caller.require(Permission::Audit)?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let mut conn = self.conn().await?;
        let filter = Filter::from_query(&query, &mut conn).await?;
        let sql = |n: usize| {
            format!(
                "SELECT {ENTRY_COLUMNS} FROM {{from}} WHERE seq < ${n} AND seq >= ${} {{filter}} ORDER BY seq DESC LIMIT ${}",
                n + 1,
                n + 2
            )
        };
        let before = query.before.unwrap_or(i64::MAX).min(filter.end);
        let keep = limit as usize + 1;
        let mut rows = filter.fetch_first(&mut conn, sql, &[before, filter.first, keep as i64], keep, true).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_before = more.then(|| rows.last().map(|r| r.seq)).flatten();
        Ok(AuditPage { entries: rows.into_iter().map(EntryRow::into_entry).collect(), next_before })
    }

    async fn audit_entry(&self, caller: &Caller, seq: i64) -> Result<AuditEntry, ApiError> {
        caller.require(Permission::Audit)?;
        let row: Option<EntryRow> =
            sqlx::query_as(&format!("SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE seq = $1"))
                .bind(seq)
                .fetch_optional(&mut *self.conn().await?)
                .await?;
        row.map(EntryRow::into_entry).ok_or_else(|| ApiError::not_found(format!("audit entry {seq} not found")))
    }

    async fn audit_status(&self, caller: &Caller) -> Result<IntegrityStatus, ApiError> {
        caller.require(Permission::Audit)?;
        self.integrity().await
    }

    async fn verify_audit(&self, caller: &Caller) -> Result<Job, ApiError> {
        caller.require(Permission::Audit)?;
        let store = self.clone();
        jobs::start(self, JobKind::AuditVerify, "", &caller.actor().name, move |mut progress| async move {
            let verification = store.verify_chain(&mut progress).await?;
            if verification.problem.is_none() {
                store.checkpoint_head().await?;
            }
            serde_json::to_value(verification).map_err(|e| internal(&e.into()))
        })
        .await
    }

    async fn audit_job(&self, caller: &Caller, id: i64) -> Result<Job, ApiError> {
        caller.require(Permission::Audit)?;
        jobs::job(&mut *self.conn().await?, id, self.clock.now_ms()).await
    }

    async fn latest_audit_export(&self, caller: &Caller) -> Result<Option<Job>, ApiError> {
        caller.require(Permission::Audit)?;
        let (mut conn, now) = (self.conn().await?, self.clock.now_ms());
        jobs::latest(&mut conn, JobKind::AuditExport, &caller.username, None, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_accept_rfc3339_minutes_and_dates_and_name_the_field() {
        assert_eq!(parse_time("from", "2026-01-01").unwrap(), 1_767_225_600_000);
        assert_eq!(parse_time("from", "2026-01-01T00:01").unwrap(), 1_767_225_660_000);
        assert_eq!(parse_time("from", "2026-01-01T00:00:01Z").unwrap(), 1_767_225_601_000);
        let e = parse_time("to", "yesterday").unwrap_err();
        assert_eq!(e.details.unwrap()["field"], "to");
    }

    #[test]
    fn filters_number_their_placeholders_texts_first() {
        let mut f = Filter::new();
        f.text("actor_user =", "alice".into());
        f.number("version =", 3);
        let sql = f.render("FROM {from} WHERE seq < $3 {filter}");
        assert_eq!(sql, "FROM audit_entries WHERE seq < $3  AND actor_user = $1 AND version = $2");
    }
}
