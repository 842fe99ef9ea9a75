//! Checking connections out: on SQLite an idle connection waits in a list of its own, so its return skips sqlx's ping.
//!
//! sqlx pings every connection handed back to its pool. For a socket that catches a dead peer; for
//! SQLite the connection is a file handle in this process, and the ping is one more hand-off to
//! the connection's thread and back — as many as the statements of a one-statement read. Here a
//! connection, once dropped, waits in this list for the next checkout instead; beyond the pool's
//! size less one (the writer's own, below, among them) it goes back to the pool as usual, so a
//! checkout waiting on the pool is served, and closing hands all back so the pool can close. On
//! PostgreSQL connections come from and go back to the pool.
//!
//! The group-commit writer keeps one connection of its own between groups, taken before any
//! other: SQLite empties a connection's page cache when another connection has written since its
//! last transaction, so a writer that kept changing connections would read every page it changes
//! again, inside the commit's critical path, and prepare its statements once on every connection.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

/// The pool and, on SQLite, the idle connections kept in front of it.
#[derive(Debug, Clone)]
pub(super) struct Connections {
    pool: AnyPool,
    idle: Option<Arc<Idle>>,
}

#[derive(Debug)]
struct Idle {
    /// `None` once closed.
    kept: Mutex<Option<Kept>>,
    /// How many connections are kept at most (the pool's size less one, so a checkout waiting on
    /// the pool is always served once the others are handed back).
    keep: usize,
}

#[derive(Debug, Default)]
struct Kept {
    list: Vec<PoolConnection<Any>>,
    /// The writer's own connection, while no group is open.
    writers: Option<PoolConnection<Any>>,
}

impl Kept {
    fn len(&self) -> usize {
        self.list.len() + usize::from(self.writers.is_some())
    }
}

/// A checked-out connection; dropping it hands it back.
#[derive(Debug)]
pub struct Conn {
    conn: Option<PoolConnection<Any>>,
    idle: Option<Arc<Idle>>,
    /// Checked out by the writer: handed back as the writer's own.
    writes: bool,
}

impl Connections {
    pub(super) fn new(pool: AnyPool, keep_idle: bool) -> Self {
        let keep = pool.options().get_max_connections().saturating_sub(1).max(1) as usize;
        let idle = keep_idle.then(|| Arc::new(Idle { kept: Mutex::new(Some(Kept::default())), keep }));
        Self { pool, idle }
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// An idle connection, else — when the pool has none left to give — the writer's own while
    /// no group is open, else one from the pool.
    pub(super) async fn take(&self) -> Result<Conn, sqlx::Error> {
        let exhausted = self.pool.size() >= self.pool.options().get_max_connections() && self.pool.num_idle() == 0;
        let found =
            self.with_kept(|kept| kept.list.pop().or_else(|| if exhausted { kept.writers.take() } else { None }));
        self.checkout(found, false).await
    }

    /// The writer's own connection, else one as [`Connections::take`] gives, which becomes the
    /// writer's own when handed back.
    pub(super) async fn take_for_writes(&self) -> Result<Conn, sqlx::Error> {
        let found = self.with_kept(|kept| kept.writers.take().or_else(|| kept.list.pop()));
        self.checkout(found, true).await
    }

    fn with_kept(&self, take: impl FnOnce(&mut Kept) -> Option<PoolConnection<Any>>) -> Option<PoolConnection<Any>> {
        take(self.idle.as_ref()?.kept.lock().expect("idle connections").as_mut()?)
    }

    /// The connection found, else one from the pool.
    async fn checkout(&self, found: Option<PoolConnection<Any>>, writes: bool) -> Result<Conn, sqlx::Error> {
        let conn = match found {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Conn { conn: Some(conn), idle: self.idle.clone(), writes })
    }

    /// Hands every idle connection back to the pool (and those in use, when they are dropped),
    /// then closes it.
    pub(super) async fn close(&self) {
        if let Some(idle) = &self.idle {
            idle.kept.lock().expect("idle connections").take();
        }
        self.pool.close().await;
    }
}

impl Conn {
    /// Closes the connection instead of handing it back (after a failure that may have left it in
    /// an unknown state).
    pub(super) async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Declared before the lock, so a connection not kept goes back to the pool after it.
        let (Some(conn), Some(idle)) = (self.conn.take(), &self.idle) else { return };
        let mut kept = idle.kept.lock().expect("idle connections");
        let Some(kept) = kept.as_mut().filter(|kept| kept.len() < idle.keep) else { return };
        match &mut kept.writers {
            own @ None if self.writes => *own = Some(conn),
            _ => kept.list.push(conn),
        }
    }
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a connection is held until dropped")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a connection is held until dropped")
    }
}
