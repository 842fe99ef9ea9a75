//! Domain types shared by the UI, the server functions and the REST API.

pub mod access;
pub mod audit;
pub mod deployment;
pub mod events;
pub mod fleet;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod page;
pub mod registry;
pub mod rollback;
pub mod validate;
pub mod webhooks;

pub use access::*;
pub use audit::*;
pub use deployment::*;
pub use events::*;
pub use fleet::*;
pub use identity::*;
pub use jobs::*;
pub use metrics::*;
pub use page::*;
pub use registry::*;
pub use rollback::*;
pub use webhooks::*;

use serde::{Deserialize, Serialize};

/// Who performs a change, as recorded in deployment history (and later the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
}
