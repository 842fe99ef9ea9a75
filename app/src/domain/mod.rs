//! Domain types shared by the UI, the server functions and the REST API.

pub mod access;
pub mod audit;
pub mod deployment;
pub mod identity;
pub mod metrics;
pub mod page;
pub mod registry;
pub mod validate;

pub use access::*;
pub use audit::*;
pub use deployment::*;
pub use identity::*;
pub use metrics::*;
pub use page::*;
pub use registry::*;

use serde::{Deserialize, Serialize};

/// Who performs a change, as recorded in deployment history (and later the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
}
