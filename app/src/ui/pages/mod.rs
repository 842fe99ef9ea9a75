//! One module per screen.

mod admin;
mod audit;
mod environments;
mod fleet;
mod guardrails;
mod metrics;
mod model;
mod models;
mod not_found;
mod reviews;
mod rollback;
mod sign_in;
mod version;

pub use admin::{TokensPage, UsersPage};
pub use audit::{AuditEntryPage, AuditPage, AuditTrail};
pub use environments::EnvironmentsPage;
pub use model::ModelPage;
pub use models::ModelsPage;
pub use not_found::NotFound;
pub use reviews::ReviewsPage;
pub use sign_in::SignInPage;
pub use version::VersionPage;
