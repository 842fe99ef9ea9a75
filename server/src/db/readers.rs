//! Read connections on SQLite, kept out of the sqlx pool between uses so their return skips its ping.
//!
//! sqlx pings every connection handed back to its pool. For a socket that catches a dead peer; for
//! SQLite the connection is a file handle in this process, and the ping is one more hand-off to the
//! connection's thread and back — as many as the statements of a one-statement read. Here a read
//! connection, once dropped, waits in this list for the next read instead. Beyond `keep` idle ones
//! (the pool's size less two, so writers and streams always find one in the pool) they go back to
//! the pool as usual, and closing the list hands all back so the pool can close.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

/// Idle read connections; `None` once closed.
#[derive(Debug)]
pub(super) struct Readers {
    idle: Mutex<Option<Vec<PoolConnection<Any>>>>,
    keep: usize,
}

/// A connection for reads: a pooled one, which on SQLite goes back to [`Readers`] when dropped.
#[derive(Debug)]
pub struct ReadConn {
    conn: Option<PoolConnection<Any>>,
    home: Option<Arc<Readers>>,
}

impl Readers {
    pub(super) fn new(pool_size: u32) -> Self {
        let keep = pool_size.saturating_sub(2).max(1) as usize;
        Self { idle: Mutex::new(Some(Vec::with_capacity(keep))), keep }
    }

    /// An idle connection, or one from the pool.
    pub(super) async fn take(self: &Arc<Self>, pool: &AnyPool) -> Result<ReadConn, sqlx::Error> {
        let idle = self.idle.lock().expect("readers lock").as_mut().and_then(Vec::pop);
        let conn = match idle {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        Ok(ReadConn { conn: Some(conn), home: Some(self.clone()) })
    }

    /// Hands every idle connection back to the pool, and those still in use when they are dropped.
    pub(super) fn close(&self) {
        self.idle.lock().expect("readers lock").take();
    }
}

impl ReadConn {
    /// A connection that goes back to the pool as usual (PostgreSQL).
    pub(super) fn pooled(conn: PoolConnection<Any>) -> Self {
        Self { conn: Some(conn), home: None }
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        // Declared before the lock, so a connection not kept goes back to the pool after it.
        let (Some(conn), Some(home)) = (self.conn.take(), &self.home) else { return };
        let mut idle = home.idle.lock().expect("readers lock");
        if let Some(idle) = idle.as_mut().filter(|idle| idle.len() < home.keep) {
            idle.push(conn);
        }
    }
}

impl Deref for ReadConn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a read connection is held until dropped")
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a read connection is held until dropped")
    }
}
