//! Modelgate's shared crate: domain types, the server functions and the whole Leptos UI.

pub mod domain;
pub mod error;
pub mod server_fns;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod backend;
#[cfg(feature = "ssr")]
pub mod session_cookie;

pub use ui::{App, shell};
