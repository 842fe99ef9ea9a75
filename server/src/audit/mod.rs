//! The tamper-evident audit log: every write commits through [`AuditedTx`], which appends exactly one
//! hash-chained entry in the same transaction, so no state change exists without its entry.
//!
//! `chain` hashes and verifies, `merkle` builds the checkpoints' trees, `signing` signs them,
//! `witness` keeps the newest outside the database, `terms` gives an entry's search words and
//! `offline` verifies an exported file; `crate::trail` reads the log back.

pub mod chain;
pub mod merkle;
pub mod offline;
pub mod signing;
pub mod terms;
pub mod witness;

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use app::domain::{AuditAction, AuditEntry, Caller, Checkpoint, Origin, ServerEvent};
use app::error::ApiError;
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::clock::Clock;
use crate::db::WriteTx;
use crate::events::EventBus;
use chain::{entry_hash, entry_time};
use merkle::Frontier;
use signing::Signer;
use witness::Witness;

/// What the audit log needs besides the database: the signing key, the checkpoint kept outside
/// the database, the checkpoint cadence, the clock, and the outcome of the last full verification.
#[derive(Debug)]
pub struct AuditLog {
    pub signer: Signer,
    pub witness: Arc<Witness>,
    /// The Merkle frontier of the chain as far as the last checkpoint signed it (re-read from
    /// the database whenever its last leaf is no longer there).
    tree: Arc<Mutex<Frontier>>,
    /// A checkpoint is signed inside the append of every entry whose number is a multiple of this.
    pub checkpoint_every: i64,
    clock: Clock,
}

/// The last entry of the chain: its number, hash and time in milliseconds.
#[derive(Debug, Clone)]
struct ChainHead {
    seq: i64,
    hash: String,
    at: i64,
}

impl AuditLog {
    /// A log whose kept checkpoint lives in memory only; see [`AuditLog::with_witness`].
    pub fn new(signer: Signer, checkpoint_every: i64, clock: Clock) -> Self {
        Self { signer, witness: Arc::default(), tree: Arc::default(), checkpoint_every: checkpoint_every.max(1), clock }
    }

    pub fn with_witness(self, witness: Witness) -> Self {
        Self { witness: Arc::new(witness), ..self }
    }

    /// The same log (key, kept checkpoint, tree) on another clock.
    pub fn with_clock(&self, clock: Clock) -> Self {
        Self {
            witness: self.witness.clone(),
            tree: self.tree.clone(),
            ..Self::new(self.signer.clone(), self.checkpoint_every, clock)
        }
    }

    /// Signs a checkpoint of the chain as `conn` sees it: `seq` entries, the last with `hash`,
    /// with the Merkle root of them all. Refused (a conflict) when that chain is shorter than the one kept outside the database or
    /// no longer contains it.
    pub(crate) async fn sign_at(
        &self,
        conn: &mut AnyConnection,
        seq: i64,
        hash: &str,
        signed_at: &str,
    ) -> Result<Checkpoint, ApiError> {
        if let Some(kept) = self.witness.latest() {
            let refuse =
                |why: String| Err(ApiError::conflict(format!("refusing to sign a checkpoint at entry {seq}: {why}")));
            if seq < kept.seq {
                return refuse(format!("entry {} was signed before, so the chain has been cut back", kept.seq));
            }
            let at_kept = if seq == kept.seq { Some(hash.to_string()) } else { stored_hash(conn, kept.seq).await? };
            if at_kept.as_deref() != Some(kept.hash.as_str()) {
                return refuse(format!("entry {} differs from the checkpoint kept outside the database", kept.seq));
            }
        }
        let root = self.tree_at(conn, seq).await?.root_hex();
        Ok(self.signer.sign(seq, hash, root, signed_at))
    }

    /// The Merkle frontier of the first `seq` entries, grown from the last one computed when the
    /// chain still holds its last leaf (the chain's links then vouch for every entry before it).
    async fn tree_at(&self, conn: &mut AnyConnection, seq: i64) -> Result<Frontier, ApiError> {
        let mut tree = self.tree.lock().map(|t| t.clone()).unwrap_or_default();
        let size = tree.size() as i64;
        if size > seq
            || size > 0 && stored_hash(conn, size).await?.and_then(|h| merkle::digest(&h)).as_ref() != tree.last_leaf()
        {
            tree = Frontier::default();
        }
        let mut hashes =
            sqlx::query_scalar::<_, String>("SELECT hash FROM audit_entries WHERE seq > $1 AND seq <= $2 ORDER BY seq")
                .bind(tree.size() as i64)
                .bind(seq)
                .fetch(&mut *conn);
        while let Some(hash) = hashes.try_next().await? {
            tree.push(merkle::digest(&hash).ok_or_else(ApiError::internal)?);
        }
        drop(hashes);
        if tree.size() as i64 != seq {
            return Err(ApiError::conflict(format!("the audit chain has a gap below entry {seq}")));
        }
        if let Ok(mut cached) = self.tree.lock() {
            *cached = tree.clone();
        }
        Ok(tree)
    }
}

/// Who made a change: a user (through a session or a token), the system, or an anonymous client.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub display: String,
    pub user: Option<String>,
    pub token: Option<String>,
    pub origin: Origin,
}

impl From<&Caller> for AuditActor {
    fn from(caller: &Caller) -> Self {
        Self {
            display: caller.actor().name,
            user: Some(caller.username.clone()),
            token: caller.token.clone(),
            origin: caller.origin.clone(),
        }
    }
}

impl AuditActor {
    /// The server itself or its command line (`what` says which, e.g. `cli`).
    pub fn system(what: &str) -> Self {
        Self { display: format!("system ({what})"), user: None, token: None, origin: Origin::default() }
    }

    /// A client that is not signed in (e.g. a failed sign-in).
    pub fn anonymous(origin: &Origin) -> Self {
        Self { display: "anonymous".into(), user: None, token: None, origin: origin.clone() }
    }

    /// A user acting through a session that has no `Caller` yet (signing in or out).
    pub fn user(username: &str, origin: &Origin) -> Self {
        Self { display: username.into(), user: Some(username.into()), token: None, origin: origin.clone() }
    }
}

/// What a change touched, as a REST path plus the model, version and environment to filter on.
#[derive(Debug, Clone, Default)]
pub struct Target {
    path: String,
    model: Option<String>,
    version: Option<i64>,
    environment: Option<String>,
}

impl Target {
    pub fn model(model: &str) -> Self {
        Self { path: format!("models/{model}"), model: Some(model.into()), ..Default::default() }
    }

    pub fn version(model: &str, number: i64) -> Self {
        Self {
            path: format!("models/{model}/versions/{number}"),
            model: Some(model.into()),
            version: Some(number),
            ..Default::default()
        }
    }

    pub fn deployment(model: &str, environment: &str) -> Self {
        Self {
            path: format!("models/{model}/environments/{environment}"),
            model: Some(model.into()),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    pub fn agent(model: &str, environment: &str, instance: &str) -> Self {
        Self {
            path: format!("models/{model}/environments/{environment}/agents/{instance}"),
            model: Some(model.into()),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    pub fn environment(environment: &str) -> Self {
        Self {
            path: format!("environments/{environment}"),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    pub fn guardrail(model: &str, environment: &str, id: i64) -> Self {
        Self {
            path: format!("models/{model}/guardrails/{id}"),
            model: Some(model.into()),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    /// The same target, about one version (a rule's verdict on it).
    pub fn at_version(mut self, number: i64) -> Self {
        self.version = Some(number);
        self
    }

    pub fn user(username: &str) -> Self {
        Self { path: format!("users/{username}"), ..Default::default() }
    }

    pub fn policy(environment: &str) -> Self {
        Self {
            path: format!("environments/{environment}/policy"),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    pub fn rollback(model: &str, environment: &str, id: i64) -> Self {
        Self {
            path: format!("rollbacks/{id}"),
            model: Some(model.into()),
            environment: Some(environment.into()),
            ..Default::default()
        }
    }

    pub fn webhook(id: i64) -> Self {
        Self { path: format!("webhooks/{id}"), ..Default::default() }
    }

    pub fn experiment(id: i64) -> Self {
        Self { path: format!("mlflow/experiments/{id}"), ..Default::default() }
    }

    pub fn run(id: &str) -> Self {
        Self { path: format!("mlflow/runs/{id}"), ..Default::default() }
    }

    pub fn logged_model(id: &str) -> Self {
        Self { path: format!("mlflow/logged-models/{id}"), ..Default::default() }
    }

    pub fn token(id: i64) -> Self {
        Self { path: format!("tokens/{id}"), ..Default::default() }
    }
}

/// One state change to record: the action, its target, the state before and after, and why.
#[derive(Debug, Clone)]
pub struct Change {
    action: AuditAction,
    target: Target,
    before: Option<Value>,
    after: Option<Value>,
    reason: Option<String>,
}

impl Change {
    pub fn new(action: AuditAction, target: Target) -> Self {
        Self { action, target, before: None, after: None, reason: None }
    }

    pub fn before(mut self, state: &impl Serialize) -> Self {
        self.before = serde_json::to_value(state).ok();
        self
    }

    pub fn after(mut self, state: &impl Serialize) -> Self {
        self.after = serde_json::to_value(state).ok();
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string()).filter(|r| !r.is_empty());
        self
    }
}

/// A write transaction that can only commit together with its audit entry; the events it
/// announces are stored with it and relayed once it commits.
pub struct AuditedTx<'a> {
    tx: WriteTx,
    log: &'a AuditLog,
    events: &'a EventBus,
    announced: Vec<ServerEvent>,
    /// Whether events were stored before the commit ([`AuditedTx::store_event`]).
    stored: bool,
    recorded: usize,
}

impl<'a> AuditedTx<'a> {
    pub(crate) fn new(tx: WriteTx, log: &'a AuditLog, events: &'a EventBus) -> Self {
        Self { tx, log, events, announced: Vec::new(), stored: false, recorded: 0 }
    }

    /// Appends the entry of a change before the last one, for a write that makes several (a
    /// request approved and executed, an expired request closed on the way).
    pub async fn record(&mut self, by: impl Into<AuditActor>, change: Change) -> Result<AuditEntry, ApiError> {
        let entry = append(&mut self.tx, self.log, by.into(), change).await?;
        self.recorded += 1;
        Ok(entry)
    }

    /// Commits a write whose entries were all appended with [`AuditedTx::record`]; one that
    /// recorded none is refused (and rolled back), so no change commits unrecorded.
    pub async fn finish(self) -> Result<(), ApiError> {
        if self.recorded == 0 {
            tracing::error!("a write tried to commit without an audit entry");
            return Err(ApiError::internal());
        }
        self.store_events_and_commit().await
    }

    /// Queues an event for subscribers: stored just before the commit — after the audit entries,
    /// so every write takes the audit chain's lock before the event log's and two writers never
    /// wait on each other — and relayed once (and only if) the transaction commits.
    pub fn announce(&mut self, event: ServerEvent) {
        self.announced.push(event);
    }

    /// Stores an event at once (after the events announced before it) and returns its number and
    /// time, for a write that acts on the number inside the transaction (a live version's move
    /// queues the webhooks' deliveries of its event). Only after the write's first audit entry,
    /// which keeps the lock order of [`AuditedTx::announce`].
    pub async fn store_event(&mut self, event: ServerEvent) -> Result<(i64, i64), ApiError> {
        if self.recorded == 0 {
            tracing::error!("an event was stored before its write's audit entry");
            return Err(ApiError::internal());
        }
        let now = self.log.clock.now_ms();
        for queued in std::mem::take(&mut self.announced) {
            crate::events::record(&mut self.tx, &queued, now).await?;
        }
        self.stored = true;
        Ok((crate::events::record(&mut self.tx, &event, now).await?, now))
    }

    /// Stores the queued events and commits.
    async fn store_events_and_commit(mut self) -> Result<(), ApiError> {
        let now = self.log.clock.now_ms();
        for event in &self.announced {
            crate::events::record(&mut self.tx, event, now).await?;
        }
        self.tx.commit().await?;
        if self.stored || !self.announced.is_empty() {
            self.events.stored();
        }
        Ok(())
    }

    /// Appends the entry for `change` (and, on the cadence, a signed checkpoint), then commits
    /// everything at once. Dropping the transaction instead rolls back the change and leaves no entry.
    /// Unless events are stored after it, the entry is the write's last statement
    /// ([`WriteTx::execute_last`]: on SQLite the next writer's savepoint opens in its round trip).
    pub async fn commit(mut self, by: impl Into<AuditActor>, change: Change) -> Result<AuditEntry, ApiError> {
        if !self.announced.is_empty() {
            let entry = append_to(Place::Within(&mut self.tx), self.log, by.into(), change).await?;
            self.store_events_and_commit().await?;
            return Ok(entry);
        }
        let entry = append_to(Place::Last(&mut self.tx), self.log, by.into(), change).await?;
        self.tx.commit().await?;
        Ok(entry)
    }
}

impl Deref for AuditedTx<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for AuditedTx<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// Canonical JSON text of a state, as stored (so reading it back hashes the same).
fn state_text(state: &Option<Value>) -> Option<String> {
    state.as_ref().and_then(|v| serde_json_canonicalizer::to_string(v).ok())
}

/// Links the entry for `change` to the chain head and stores it (which moves the head to it).
/// The head row is read by an update, which locks it until the transaction ends, so appends from
/// every process form one line.
/// Service code appends through [`AuditedTx::commit`]; this is public for the benchmark.
pub async fn append(
    conn: &mut AnyConnection,
    log: &AuditLog,
    by: AuditActor,
    change: Change,
) -> Result<AuditEntry, ApiError> {
    append_to(Place::Within(conn), log, by, change).await
}

/// Where an entry goes: into a write that goes on after it, or as its write's last statement
/// ([`WriteTx::execute_last`]; unless a checkpoint follows it).
enum Place<'c> {
    Within(&'c mut AnyConnection),
    Last(&'c mut WriteTx),
}

impl Place<'_> {
    fn conn(&mut self) -> &mut AnyConnection {
        match self {
            Place::Within(conn) => conn,
            Place::Last(tx) => tx,
        }
    }
}

/// [`append`], the entry going where `to` says.
async fn append_to(mut to: Place<'_>, log: &AuditLog, by: AuditActor, change: Change) -> Result<AuditEntry, ApiError> {
    let head = locked_head(to.conn()).await?;
    let (entry, head) = log.link(unlinked(by, change), head);
    let insert = entry_insert(&entry, head.at, Some(log.signer.seal(&entry.hash)))?;
    let signed = entry.seq % log.checkpoint_every == 0;
    match &mut to {
        Place::Last(tx) if !signed => tx.execute_last(vec![insert]).await?,
        _ => {
            insert.execute(to.conn()).await?;
        }
    }
    if signed {
        // A refusal leaves the entry unsigned for now: verification names what went wrong.
        match log.sign_at(to.conn(), entry.seq, &entry.hash, &entry.at).await {
            Ok(checkpoint) => {
                checkpoint_insert(&checkpoint, &log.signer).execute(to.conn()).await?;
            }
            Err(e) => tracing::error!(seq = entry.seq, error = %e.message, "audit checkpoint not signed"),
        }
    }
    Ok(entry)
}

/// The entry of `change` by `by`, not yet linked into the chain (no number, time, link or hash).
fn unlinked(by: AuditActor, change: Change) -> AuditEntry {
    let Target { path, model, version, environment } = change.target;
    AuditEntry {
        seq: 0,
        at: String::new(),
        actor: by.display,
        actor_user: by.user,
        actor_token: by.token,
        action: change.action.as_str().to_string(),
        target: path,
        model,
        version,
        environment,
        before: change.before,
        after: change.after,
        reason: change.reason,
        request_id: by.origin.request_id,
        client_addr: by.origin.client_addr,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// The chain head, read by a write to its row, which locks the row until the transaction ends.
async fn locked_head(conn: &mut AnyConnection) -> Result<ChainHead, sqlx::Error> {
    let (seq, hash, at) = sqlx::query_as("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, at")
        .fetch_one(&mut *conn)
        .await?;
    Ok(ChainHead { seq, hash, at })
}

impl AuditLog {
    /// Makes `entry` the one after `head` — its number, its time (never before the head's, even
    /// if this process's clock is behind another's), its link and hash — and returns it with the
    /// head it makes.
    fn link(&self, mut entry: AuditEntry, head: ChainHead) -> (AuditEntry, ChainHead) {
        let now = self.clock.now_ms().max(head.at);
        entry.seq = head.seq + 1;
        entry.at = entry_time(now);
        entry.prev_hash = head.hash;
        entry.hash = entry_hash(&entry);
        let head = ChainHead { seq: entry.seq, hash: entry.hash.clone(), at: now };
        (entry, head)
    }
}

/// The stored hash of entry `seq`, if there is one.
async fn stored_hash(conn: &mut AnyConnection, seq: i64) -> Result<Option<String>, ApiError> {
    sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut *conn)
        .await
        .map_err(ApiError::from)
}

/// Stores an entry already linked and hashed, unsealed (as entries from before seals were kept),
/// and its words for free-text search; `at_ms` is its time (`entry.at`) in milliseconds. Only the
/// benchmark's bulk loader calls this; appends go through [`append`].
pub async fn insert_entry(conn: &mut AnyConnection, entry: &AuditEntry, at_ms: i64) -> Result<(), sqlx::Error> {
    entry_insert(entry, at_ms, None)?.execute(conn).await.map(drop)
}

/// The one statement that stores an entry and queues its search words for the term index (the
/// view `audit_appends` splits them).
/// (Its values are bound as copies, so it can go in one round trip with the statements of any
/// other borrow: see [`WriteTx::execute_last`].)
fn entry_insert<'q>(
    entry: &AuditEntry,
    at_ms: i64,
    seal: Option<String>,
) -> Result<Query<'q, Any, AnyArguments<'q>>, sqlx::Error> {
    let terms = serde_json::to_string(&terms::entry_terms(entry)).map_err(|e| sqlx::Error::Encode(e.into()))?;
    Ok(sqlx::query(
        "INSERT INTO audit_appends (seq, at, actor, actor_user, actor_token, action, target, model, version, \
         environment, before_state, after_state, reason, request_id, client_addr, prev_hash, hash, terms, seal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(entry.seq)
    .bind(at_ms)
    .bind(entry.actor.clone())
    .bind(entry.actor_user.clone())
    .bind(entry.actor_token.clone())
    .bind(entry.action.clone())
    .bind(entry.target.clone())
    .bind(entry.model.clone())
    .bind(entry.version)
    .bind(entry.environment.clone())
    .bind(state_text(&entry.before))
    .bind(state_text(&entry.after))
    .bind(entry.reason.clone())
    .bind(entry.request_id.clone())
    .bind(entry.client_addr.clone())
    .bind(entry.prev_hash.clone())
    .bind(entry.hash.clone())
    .bind(terms)
    .bind(seal))
}

/// Stores a signed checkpoint (once per sequence number).
pub(crate) async fn insert_checkpoint(
    conn: &mut AnyConnection,
    checkpoint: &Checkpoint,
    signer: &Signer,
) -> Result<(), ApiError> {
    checkpoint_insert(checkpoint, signer).execute(conn).await?;
    Ok(())
}

/// The statement that stores a signed checkpoint.
pub(crate) fn checkpoint_insert<'q>(checkpoint: &Checkpoint, signer: &Signer) -> Query<'q, Any, AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, root, signed_at, key_id, public_key, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING",
    )
    .bind(checkpoint.seq)
    .bind(checkpoint.hash.clone())
    .bind(checkpoint.root.clone())
    .bind(checkpoint.signed_at.clone())
    .bind(checkpoint.key_id.clone())
    .bind(signer.public().public_key.clone())
    .bind(checkpoint.signature.clone())
}

#[cfg(test)]
mod tests {
    use app::domain::AuditAction;

    use super::{AuditActor, AuditLog, AuditedTx, Change, Target, append, signing::Signer};
    use crate::clock::Clock;
    use crate::db::Db;
    use crate::events::EventBus;

    async fn sqlite(path: &std::path::Path) -> Db {
        let db = Db::connect(&format!("sqlite:{}", path.display()), 4).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn log() -> AuditLog {
        AuditLog::new(Signer::generate(), 1_000, Clock::system())
    }

    /// The stored chain (number, target, link, hash), checked to be one numbered, linked line.
    async fn chain(db: &Db) -> Vec<(i64, String, String, String)> {
        let chain: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT seq, target, prev_hash, hash FROM audit_entries ORDER BY seq")
                .fetch_all(db.pool())
                .await
                .unwrap();
        for pair in chain.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "entry {} is not numbered after its predecessor", pair[1].0);
            assert_eq!(pair[1].2, pair[0].3, "entry {} does not link to entry {}", pair[1].0, pair[0].0);
        }
        chain
    }

    fn targets(chain: &[(i64, String, String, String)]) -> Vec<&str> {
        chain.iter().map(|(_, target, ..)| target.as_str()).collect()
    }

    /// Appends the creation of `model` by `log` in a write of its own: committed as service code
    /// commits (the entry the write's last statement), or appended and then undone.
    async fn append_model(db: &Db, log: &AuditLog, model: &str, undo: bool) {
        let mut tx = db.begin_write().await.unwrap();
        let change = Change::new(AuditAction::ModelCreate, Target::model(model));
        if undo {
            append(&mut tx, log, AuditActor::system("test"), change).await.unwrap();
        } else {
            let events = EventBus::default();
            AuditedTx::new(tx, log, &events).commit(AuditActor::system("test"), change).await.unwrap();
        }
    }

    /// A log's guess of the chain head (see `append`) goes stale when another process appends or
    /// when its own append is undone; its next entry still takes the next number and links to
    /// the real head.
    #[tokio::test]
    async fn an_append_after_a_stale_head_guess_links_to_the_real_head() {
        let dir = std::env::temp_dir().join(format!("modelgate-audit-{}", uuid::Uuid::new_v4()));
        let file = dir.join("db.sqlite");
        let (this, other) = (sqlite(&file).await, sqlite(&file).await);
        let (mine, theirs) = (log(), log());
        append_model(&this, &mine, "first", false).await;
        append_model(&other, &theirs, "by another process", false).await;
        append_model(&this, &mine, "after theirs", false).await;
        append_model(&this, &mine, "undone", true).await;
        append_model(&this, &mine, "after the undone one", false).await;

        let chain = chain(&this).await;
        assert_eq!(
            targets(&chain),
            ["models/first", "models/by another process", "models/after theirs", "models/after the undone one"]
        );
        let head: (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(this.pool()).await.unwrap();
        assert_eq!(head, (4, chain[3].3.clone()), "the head is the last entry");
        std::fs::remove_dir_all(dir).ok();
    }
}
