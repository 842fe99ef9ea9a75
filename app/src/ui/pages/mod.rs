//! One module per screen.

mod model;
mod models;
mod not_found;
mod version;

pub use model::ModelPage;
pub use models::ModelsPage;
pub use not_found::NotFound;
pub use version::VersionPage;
