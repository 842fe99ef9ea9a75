//! A change made by one statement, handed with its audit entry to the group commit's next committer instead of holding the writer slot.

use std::sync::Arc;

use app::domain::AuditEntry;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{
    AuditActor, AuditLog, ChainHead, Change, UNLINKED, checkpoint_insert, entry_insert, locked_head, unlinked,
};
use crate::db::{Final, Statement, Turn};

/// The entry of a change and the statement that makes it, linked to the chain head in the
/// committer's turn: to the head the final before it in the batch leaves (this process's guess
/// of the head for the first), or to the head read from the database when there is no guess or
/// the guess was stale.
pub(crate) struct AuditedFinal {
    log: Arc<AuditLog>,
    unlinked: AuditEntry,
    statement: Box<dyn Fn() -> Statement + Send + Sync>,
    /// The head the last build linked to, and whether it was read rather than guessed.
    linked_to: Option<(ChainHead, bool)>,
    entry: Option<AuditEntry>,
    reply: oneshot::Sender<Result<AuditEntry, sqlx::Error>>,
}

impl AuditedFinal {
    /// The final write of `change` by `by`, made by `statement` (built anew for each try), and
    /// where its outcome will arrive.
    pub(crate) fn new(
        log: Arc<AuditLog>,
        by: AuditActor,
        change: Change,
        statement: impl Fn() -> Statement + Send + Sync + 'static,
    ) -> (Self, oneshot::Receiver<Result<AuditEntry, sqlx::Error>>) {
        let (reply, outcome) = oneshot::channel();
        let write = Self {
            log,
            unlinked: unlinked(by, change),
            statement: Box::new(statement),
            linked_to: None,
            entry: None,
            reply,
        };
        (write, outcome)
    }

    /// Puts the head back as it was before this write was linked (unknown when `stale`).
    fn unlink(&mut self, stale: bool) {
        let before = self.linked_to.take().map(|(head, _)| head).filter(|_| !stale);
        if let Ok(mut head) = self.log.head.lock() {
            *head = before;
        }
    }
}

impl Final for AuditedFinal {
    fn build<'a>(&'a mut self, turn: &'a mut Turn<'_>) -> BoxFuture<'a, Result<Vec<Statement>, sqlx::Error>> {
        async move {
            let guess = self.log.head.lock().ok().and_then(|mut head| head.take());
            let (head, read) = match guess {
                Some(head) => (head, false),
                None => (locked_head(turn.conn().await?).await?, true),
            };
            let (entry, next) = self.log.link(self.unlinked.clone(), head.clone());
            let seal = self.log.signer.seal(&entry.hash);
            let mut statements = vec![entry_insert(&entry, next.at, Some(seal))?, (self.statement)()];
            if entry.seq % self.log.checkpoint_every == 0 {
                let conn = turn.conn().await?;
                match self.log.sign_at(conn, entry.seq, &entry.hash, &entry.at, true).await {
                    Ok(checkpoint) => statements.push(checkpoint_insert(&checkpoint, &self.log.signer)),
                    Err(e) => tracing::error!(seq = entry.seq, error = %e.message, "audit checkpoint not signed"),
                }
            }
            if let Ok(mut guess) = self.log.head.lock() {
                *guess = Some(next);
            }
            self.linked_to = Some((head, read));
            self.entry = Some(entry);
            Ok(statements)
        }
        .boxed()
    }

    fn not_run(&mut self) {
        self.unlink(false);
    }

    fn failed(&mut self, error: &sqlx::Error) -> bool {
        let guessed = self.linked_to.as_ref().is_some_and(|(_, read)| !read);
        let stale = error.as_database_error().is_some_and(|e| e.message().contains(UNLINKED));
        self.unlink(stale);
        stale && guessed
    }

    fn done(self: Box<Self>, outcome: Result<(), sqlx::Error>) {
        let Self { reply, entry, .. } = *self;
        let _ = reply.send(outcome.and_then(|()| entry.ok_or(sqlx::Error::RowNotFound)));
    }
}
