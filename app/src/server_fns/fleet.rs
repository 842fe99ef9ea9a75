//! Server functions of the serving fleet: an environment's agents and rollout, and what every
//! environment of a model was live and serving at a moment.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::ssr::*;
use crate::domain::*;
use crate::error::ApiError;

/// The agents of a model in an environment by group, and the live version's rollout.
#[server]
pub async fn environment_fleet(model: String, environment: String) -> Result<Fleet, ApiError> {
    backend()?.fleet(&caller()?, &model, &environment).await
}

/// For each environment: what was live at `at` (RFC 3339, or `datetime-local` read as UTC) and
/// what each group served then.
#[server]
pub async fn model_state_at(model: String, at: String) -> Result<Vec<EnvironmentState>, ApiError> {
    let (backend, caller) = (backend()?, caller()?);
    let at = super::rollbacks::utc(&at);
    let mut states = Vec::new();
    for environment in backend.list_environments(&caller).await? {
        states.push(backend.environment_state(&caller, &model, &environment.name, &at).await?);
    }
    Ok(states)
}
