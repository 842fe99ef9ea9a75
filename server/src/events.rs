//! The event bus: what happened in this process, numbered and broadcast to every subscriber of
//! `GET /api/v1/events` (slow subscribers skip what they missed rather than hold writers back).

use std::sync::atomic::{AtomicU64, Ordering};

use app::domain::ServerEvent;
use tokio::sync::broadcast;

/// How many events a subscriber may lag behind before it skips ahead.
const BACKLOG: usize = 1024;

/// An event with its number in this process.
#[derive(Debug, Clone)]
pub struct Numbered {
    pub id: u64,
    pub event: ServerEvent,
}

#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Numbered>,
    next_id: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(BACKLOG).0, next_id: AtomicU64::new(1) }
    }
}

impl EventBus {
    /// Sends an event to every current subscriber (none listening is fine).
    pub fn publish(&self, event: ServerEvent) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.sender.send(Numbered { id, event });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.sender.subscribe()
    }
}
