//! Modelgate's shared crate: domain types, the server functions and the whole Leptos UI.

pub mod domain;
pub mod error;
pub mod server_fns;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod backend;

pub use ui::{App, shell};
