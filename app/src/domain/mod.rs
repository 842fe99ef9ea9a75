//! Domain types shared by the UI, the server functions and the REST API.

pub mod deployment;
pub mod page;
pub mod registry;
pub mod validate;

pub use deployment::*;
pub use page::*;
pub use registry::*;

use serde::{Deserialize, Serialize};

/// Who performs a change, as recorded in deployment history (and later the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
}

impl Actor {
    /// The actor of a request that carries no identity (before sign-in exists).
    pub fn anonymous() -> Self {
        Self { name: "anonymous".into() }
    }
}
