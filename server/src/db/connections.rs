//! Checking connections out: on SQLite an idle connection waits in a list of its own, so its return skips sqlx's ping.
//!
//! sqlx pings every connection handed back to its pool. For a socket that catches a dead peer; for
//! SQLite the connection is a file handle in this process, and the ping is one more hand-off to
//! the connection's thread and back — as many as the statements of a one-statement read. Here a
//! connection, once dropped, waits in this list for the next checkout instead (readers and the
//! group-commit writer alike, so no idle connection is ever kept from anyone); beyond the pool's
//! size less one it goes back to the pool as usual, and closing hands all back so the pool can
//! close. On PostgreSQL connections come from and go back to the pool.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

/// The pool and, on SQLite, the idle list in front of it.
#[derive(Debug, Clone)]
pub(super) struct Connections {
    pool: AnyPool,
    idle: Option<Arc<Idle>>,
}

#[derive(Debug)]
struct Idle {
    /// `None` once closed.
    list: Mutex<Option<Vec<PoolConnection<Any>>>>,
    keep: usize,
}

/// A checked-out connection; dropping it hands it back.
#[derive(Debug)]
pub struct Conn {
    conn: Option<PoolConnection<Any>>,
    idle: Option<Arc<Idle>>,
}

impl Connections {
    pub(super) fn new(pool: AnyPool, keep_idle: bool) -> Self {
        let keep = pool.options().get_max_connections().saturating_sub(1).max(1) as usize;
        let idle = keep_idle.then(|| Arc::new(Idle { list: Mutex::new(Some(Vec::with_capacity(keep))), keep }));
        Self { pool, idle }
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// An idle connection, or one from the pool.
    pub(super) async fn take(&self) -> Result<Conn, sqlx::Error> {
        let idle = self.idle.as_ref().and_then(|idle| idle.list.lock().expect("idle list").as_mut()?.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Conn { conn: Some(conn), idle: self.idle.clone() })
    }

    /// Hands every idle connection back to the pool (and those in use, when they are dropped),
    /// then closes it.
    pub(super) async fn close(&self) {
        if let Some(idle) = &self.idle {
            idle.list.lock().expect("idle list").take();
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
        let mut list = idle.list.lock().expect("idle list");
        if let Some(list) = list.as_mut().filter(|list| list.len() < idle.keep) {
            list.push(conn);
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
