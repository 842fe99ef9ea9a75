//! Group commit on SQLite: writers take turns in one open transaction, each in a savepoint, and one durable commit covers them all.
//!
//! SQLite has one writer at a time and a durable commit costs an fsync, so committing every write
//! on its own caps each write path at one write per fsync however many clients send them. Here the
//! writer slot is a fair queue: a writer joins the open group transaction (or opens one), makes its
//! change inside a savepoint and releases it (in the same round trip as the group's next
//! statement, one fewer in the queue's critical path — or, when the writer says which statement
//! is its last, in that statement's round trip together with the next writer's savepoint, so the
//! next writer joins without one); a committer — one queued at a time, behind the writers already
//! waiting when it was queued — then commits them all at once, and, when writers are waiting by
//! then, opens the next group in the commit's round trip, so that group costs its first writer no
//! round trip either. A writer's `commit`
//! returns only after that durable commit and fails if it failed, so a caller sees what a
//! transaction of its own would give it; a writer that ends without committing is rolled back to
//! its savepoint and leaves the others' changes alone.

use std::borrow::Cow;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::TryStreamExt;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Execute, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::connections::{Conn, Connections};

/// The writer slot of one SQLite database and the group transaction open on it.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    connections: Connections,
    slot: Arc<Mutex<Slot>>,
    /// How many writers wait for the slot.
    waiting: Arc<AtomicUsize>,
    /// Whether a committer is queued for the slot: it will commit the group open then.
    committer_queued: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Slot {
    open: Option<OpenGroup>,
    /// How the last writer ended, still to be run on the connection: its savepoint released
    /// ([`RELEASE`], committed) or rolled back ([`UNDO`], dropped). The next statement on the
    /// group's connection — the next writer's savepoint or the group's commit — runs it first, in
    /// the same round trip.
    unsettled: Option<&'static str>,
    /// The last writer ran [`HAND_OVER`] with its last statement: its change is released into the
    /// group and the next writer's savepoint is already open, so joining costs no round trip.
    next_open: bool,
}

#[derive(Debug)]
struct OpenGroup {
    conn: Conn,
    /// Set once the group ends: `true` when its changes are durable, `false` when rolled back.
    outcome: watch::Sender<Option<bool>>,
}

/// One writer's turn in the group transaction: the connection is its own until it commits or drops.
#[derive(Debug)]
pub struct GroupWriter {
    slot: OwnedMutexGuard<Slot>,
    committed: bool,
}

const OPEN: &str = "BEGIN IMMEDIATE; SAVEPOINT writer";
/// A group's commit followed by the next group's opening, when writers wait for it.
const COMMIT_AND_OPEN: &str = "COMMIT; BEGIN IMMEDIATE; SAVEPOINT writer";
const SAVEPOINT: &str = "SAVEPOINT writer";
const RELEASE: &str = "RELEASE writer";
const UNDO: &str = "ROLLBACK TO writer; RELEASE writer";
/// Run after a writer's last statement, in its round trip: its savepoint released, the next one's opened.
const HAND_OVER: &str = "RELEASE writer; SAVEPOINT writer";

impl GroupCommit {
    pub(super) fn new(connections: Connections) -> Self {
        Self { connections, slot: Arc::default(), waiting: Arc::default(), committer_queued: Arc::default() }
    }

    /// Whether writers wait for the slot.
    fn busy(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Waits for the writer slot, opens a group transaction if none is open, and starts this
    /// writer's savepoint in it.
    pub(super) async fn join(&self) -> Result<GroupWriter, sqlx::Error> {
        let mut slot = {
            let _waiting = Waiting::on(&self.waiting);
            self.slot.clone().lock_owned().await
        };
        if slot.open.is_none() {
            slot.open_group(&self.connections).await?;
            self.commit_in_turn();
        } else if !std::mem::take(&mut slot.next_open)
            && let Err((_, e)) = slot.settle_then(Batch::of(SAVEPOINT)).await
        {
            slot.end(false, false).await;
            return Err(e);
        }
        Ok(GroupWriter { slot, committed: false })
    }

    /// Queues a committer for the slot, unless one is queued already: it waits behind the writers
    /// queued by now and commits the group open then, opening the next group at once (and queuing
    /// the next committer) if writers wait. One queued committer serves every group opened before
    /// its turn; should an earlier failure have ended the group it was queued for, it commits a
    /// later one early, which is harmless.
    fn commit_in_turn(&self) {
        if self.committer_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut slot = this.slot.clone().lock_owned().await;
            this.committer_queued.store(false, Ordering::Release);
            let reopened = slot.end(true, this.busy()).await;
            if reopened {
                this.commit_in_turn();
            }
        });
    }
}

/// Counts a writer waiting for the slot while it exists (a request cancelled while waiting included).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn on(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slot {
    /// Runs how the last writer ended (if still unsettled), then `batch`, in one round trip; on
    /// failure, says how many of the batch's statements completed before it.
    async fn settle_then(&mut self, batch: Batch<'_>) -> Result<(), (usize, sqlx::Error)> {
        let group = self.open.as_mut().ok_or_else(|| (0, group_lost()))?;
        let ending = self.unsettled.take();
        let sql = match ending {
            Some(ending) if batch.sql.is_empty() => ending.to_string(),
            Some(ending) => format!("{ending}; {}", batch.sql),
            None => batch.sql,
        };
        let settling = ending.map_or(0, statements_in);
        let mut results = group.conn.fetch_many(sqlx::query_with(&sql, batch.arguments));
        let mut completed = 0;
        loop {
            match results.try_next().await {
                Ok(Some(result)) => completed += usize::from(result.is_left()),
                Ok(None) => return Ok(()),
                Err(e) => return Err((completed.saturating_sub(settling), e)),
            }
        }
    }

    /// Opens a group on a connection of its own, its first writer's savepoint open.
    async fn open_group(&mut self, connections: &Connections) -> Result<(), sqlx::Error> {
        let conn = connections.take_for_writes().await?;
        self.open = Some(OpenGroup { conn, outcome: watch::Sender::new(None) });
        if let Err((_, e)) = self.settle_then(Batch::of(OPEN)).await {
            self.end(false, false).await;
            return Err(e);
        }
        Ok(())
    }

    /// Ends the open group: commits it (or, when `commit` is false or the commit fails, closes its
    /// connection, which rolls it back) and tells its writers how it ended. With `reopen`, a
    /// committed group's connection opens the next group in the same round trip; returns whether it did.
    async fn end(&mut self, commit: bool, reopen: bool) -> bool {
        if self.open.is_none() {
            return false;
        }
        let committed = match commit {
            false => Err((0, group_lost())),
            true => self.settle_then(Batch::of(if reopen { COMMIT_AND_OPEN } else { "COMMIT" })).await,
        };
        let (committed, reopened) = match committed {
            Ok(()) => (true, reopen),
            Err((0, e)) => {
                tracing::error!(error = %e, "group commit failed");
                (false, false)
            }
            Err((_, e)) => {
                tracing::warn!(error = %e, "the next write group could not open on the committed one's connection");
                (true, false)
            }
        };
        self.unsettled = None;
        self.next_open = reopened;
        let Some(OpenGroup { conn, outcome }) = self.open.take() else { return false };
        if reopened {
            self.open = Some(OpenGroup { conn, outcome: watch::Sender::new(None) });
        } else if !committed || reopen {
            // Rolled back, or committed with the next group half opened on it.
            if !committed {
                tracing::warn!("a write group was rolled back");
            }
            conn.close().await;
        }
        outcome.send_replace(Some(committed));
        reopened
    }
}

/// Statements to send in one round trip: their SQL, their values numbered across all of them
/// (sqlx's SQLite driver runs every statement of a string in turn, taking `$N` as the N-th
/// argument of the whole string), and how many there are.
#[derive(Default)]
struct Batch<'q> {
    sql: String,
    arguments: AnyArguments<'q>,
    statements: usize,
}

impl<'q> Batch<'q> {
    fn of(sql: &str) -> Self {
        let mut batch = Self::default();
        batch.push_sql(sql);
        batch
    }

    /// Adds statements without values.
    fn push_sql(&mut self, sql: &str) {
        self.separate();
        self.sql.push_str(sql);
        self.statements += statements_in(sql);
    }

    /// Adds statements, each one SQL statement, their placeholders renumbered past those before
    /// them; adds none when a value cannot be encoded.
    fn push_all(&mut self, statements: Vec<Query<'q, Any, AnyArguments<'q>>>) -> Result<(), sqlx::Error> {
        let encoded = statements
            .into_iter()
            .map(|mut statement| {
                let values = statement.take_arguments().map_err(sqlx::Error::Encode)?.unwrap_or_default();
                Ok((statement.sql(), values.values.0))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        for (sql, values) in encoded {
            self.separate();
            self.sql.push_str(&renumbered(sql, self.arguments.values.0.len()));
            self.arguments.values.0.extend(values);
            self.statements += 1;
        }
        Ok(())
    }

    fn separate(&mut self) {
        if !self.sql.is_empty() {
            self.sql.push_str("; ");
        }
    }
}

/// How many statements a string of `;`-separated statements without literals holds.
fn statements_in(sql: &str) -> usize {
    sql.split(';').count()
}

impl GroupWriter {
    /// Runs the writer's last statements, its savepoint's release and the next writer's savepoint
    /// in one round trip. From then on the change stands: it commits with the group even should
    /// this writer be dropped before [`GroupWriter::commit`] waits for that.
    pub(super) async fn execute_last<'q>(
        &mut self,
        statements: Vec<Query<'q, Any, AnyArguments<'q>>>,
    ) -> Result<(), sqlx::Error> {
        let mut batch = Batch::default();
        batch.push_all(statements)?;
        batch.push_sql(HAND_OVER);
        sqlx::query_with(&batch.sql, batch.arguments).execute(&mut **self).await?;
        self.slot.next_open = true;
        Ok(())
    }

    /// Leaves this writer's savepoint to be released with the group's next statement (unless its
    /// last statement did that), hands the slot on and waits until the group's commit is durable.
    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.committed = true;
        if !self.slot.next_open {
            self.slot.unsettled = Some(RELEASE);
        }
        let mut outcome = match &self.slot.open {
            Some(group) => group.outcome.subscribe(),
            None => return Err(group_lost()),
        };
        drop(self);
        match outcome.wait_for(Option::is_some).await.map(|ended| *ended) {
            Ok(Some(true)) => Ok(()),
            _ => Err(group_lost()),
        }
    }
}

/// `sql` with each placeholder `$N` written `$(N + offset)`.
fn renumbered(sql: &str, offset: usize) -> Cow<'_, str> {
    if offset == 0 {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out.into()
}

fn group_lost() -> sqlx::Error {
    sqlx::Error::Io(io::Error::other("the group transaction this write joined was rolled back"))
}

impl Drop for GroupWriter {
    fn drop(&mut self) {
        if !self.committed && !self.slot.next_open {
            self.slot.unsettled = Some(UNDO);
        }
    }
}

impl Deref for GroupWriter {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.slot.open.as_ref().expect("a writer's group stays open until the writer ends").conn
    }
}

impl DerefMut for GroupWriter {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.slot.open.as_mut().expect("a writer's group stays open until the writer ends").conn
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Row;

    use crate::db::{Db, WriteTx};

    /// A fresh SQLite database with a table of names and one whose rows must name one of them
    /// (checked at commit, so a bad row fails its whole group).
    async fn scratch() -> Db {
        let dir = std::env::temp_dir().join(format!("modelgate-group-{}", uuid::Uuid::new_v4()));
        let db = Db::connect(&format!("sqlite:{}", dir.join("db.sqlite").display()), 4).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE names (name TEXT PRIMARY KEY); \
             CREATE TABLE refs (name TEXT REFERENCES names (name) DEFERRABLE INITIALLY DEFERRED);",
        )
        .execute(db.pool())
        .await
        .unwrap();
        db
    }

    async fn insert(tx: &mut WriteTx, table: &str, name: &str) {
        sqlx::query(&format!("INSERT INTO {table} (name) VALUES ($1)")).bind(name).execute(&mut **tx).await.unwrap();
    }

    /// Inserts a name as the write's last statement, which also opens the next writer's savepoint.
    async fn insert_last(tx: &mut WriteTx, name: &str) {
        tx.execute_last(vec![sqlx::query("INSERT INTO names (name) VALUES ($1)").bind(name)]).await.unwrap();
    }

    /// Names stored, as another connection reads them once committed.
    async fn stored(db: &Db, table: &str) -> Vec<String> {
        sqlx::query(&format!("SELECT name FROM {table} ORDER BY name"))
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Starts writers that queue behind a held slot, so they join one group when it is released.
    async fn queue_behind(db: &Db, writers: Vec<(&'static str, bool)>) -> Vec<tokio::task::JoinHandle<bool>> {
        let handles = writers
            .into_iter()
            .map(|(name, commit)| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin_write().await.unwrap();
                    insert(&mut tx, "names", name).await;
                    if name.starts_with("bad") {
                        insert(&mut tx, "refs", "nobody").await;
                    }
                    commit && tx.commit().await.is_ok()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        handles
    }

    #[tokio::test]
    async fn concurrent_writers_each_commit_durably() {
        let db = scratch().await;
        let writers: Vec<_> = (0..40)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin_write().await.unwrap();
                    insert(&mut tx, "names", &format!("w{n:02}")).await;
                    tx.commit().await.unwrap();
                    stored(&db, "names").await.contains(&format!("w{n:02}"))
                })
            })
            .collect();
        for writer in writers {
            assert!(writer.await.unwrap(), "a writer's commit returned before its change was visible");
        }
        assert_eq!(stored(&db, "names").await.len(), 40);
    }

    /// A writer dropped uncommitted undoes its own change alone, whether it opened its savepoint
    /// or found it opened by the last statement of the writer before it (the first one queued
    /// behind a holder that ends with `execute_last`).
    #[tokio::test]
    async fn a_writer_dropped_uncommitted_undoes_only_its_own_change() {
        for hand_over in [false, true] {
            let db = scratch().await;
            let mut holder = db.begin_write().await.unwrap();
            if hand_over {
                insert_last(&mut holder, "holder").await;
            } else {
                insert(&mut holder, "names", "holder").await;
            }
            let writers = vec![("dropped first", false), ("a", true), ("dropped", false), ("c", true)];
            let queued = queue_behind(&db, writers).await;
            holder.commit().await.unwrap();
            let committed: Vec<bool> =
                futures::future::join_all(queued).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(committed, [false, true, false, true], "hand over: {hand_over}");
            assert_eq!(stored(&db, "names").await, ["a", "c", "holder"], "hand over: {hand_over}");
        }
    }

    /// Once a write's last statement has run, its change stands even if the writer is dropped
    /// before it commits (a request cancelled while waiting for the durable commit).
    #[tokio::test]
    async fn a_change_whose_last_statement_ran_commits_with_its_group() {
        let db = scratch().await;
        let mut cancelled = db.begin_write().await.unwrap();
        insert(&mut cancelled, "names", "first").await;
        insert_last(&mut cancelled, "last").await;
        drop(cancelled);
        let mut next = db.begin_write().await.unwrap();
        insert(&mut next, "names", "next").await;
        next.commit().await.unwrap();
        assert_eq!(stored(&db, "names").await, ["first", "last", "next"]);
    }

    /// A write's last statements go in one round trip, each binding its own values (their
    /// placeholders renumbered past the ones before), and commit together.
    #[tokio::test]
    async fn last_statements_sent_together_each_bind_their_own_values() {
        let db = scratch().await;
        let mut tx = db.begin_write().await.unwrap();
        let inserts = ["first", "second", "third"]
            .map(|name| sqlx::query("INSERT INTO names (name) SELECT $1 WHERE $2 = 'yes'").bind(name).bind("yes"));
        tx.execute_last(inserts.into()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(stored(&db, "names").await, ["first", "second", "third"]);
    }

    #[tokio::test]
    async fn a_failed_group_commit_fails_every_writer_in_it_and_the_next_group_works() {
        let db = scratch().await;
        let mut holder = db.begin_write().await.unwrap();
        insert(&mut holder, "names", "holder").await;
        let queued = queue_behind(&db, vec![("a", true), ("bad", true)]).await;
        holder.commit().await.unwrap();
        let committed: Vec<bool> = futures::future::join_all(queued).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(committed, [false, false], "the group's commit broke a constraint, so no writer in it committed");
        assert_eq!(stored(&db, "names").await, ["holder"]);

        let mut after = db.begin_write().await.unwrap();
        insert(&mut after, "names", "after").await;
        after.commit().await.unwrap();
        assert_eq!(stored(&db, "names").await, ["after", "holder"]);
    }
}
