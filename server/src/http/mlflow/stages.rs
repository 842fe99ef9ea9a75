//! MLflow's stages on Modelgate's environments: a stage is the environment of that name, so a
//! transition into it is a deploy there (refused where the environment's policy guards it), and
//! the latest version of a stage is what is live in that environment.

use app::backend::{Deployments, Registry};
use app::domain::{DeployInput, Permission};
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::registry::{AliasKind, Pick, alias_kind, guarded, version_number, version_with_aliases};
use super::wire;
use super::{Body, MlflowCaller, MlflowError, MlflowResult};
use crate::http::state::AppState;

/// `registered-models/get-latest-versions`: per stage asked (all when none is), the version live
/// in the environment of that name, and for `None` the newest version live nowhere.
pub async fn get_latest_versions(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::LatestVersions>,
) -> MlflowResult<Value> {
    let model = s.store.get_model(&caller, &req.name).await?;
    let stages: Vec<String> = if req.stages.is_empty() {
        std::iter::once("None".to_string()).chain(model.live.iter().map(|l| l.environment.clone())).collect()
    } else {
        req.stages.clone()
    };
    let mut numbers = Vec::new();
    for stage in &stages {
        let number = if stage.eq_ignore_ascii_case("none") {
            sqlx::query_scalar(
                "SELECT MAX(v.number) FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1 \
                 AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.model_id = v.model_id AND d.version_number = v.number)",
            )
            .bind(&req.name)
            .fetch_one(&mut *s.store.conn().await?)
            .await?
        } else {
            model.live.iter().find(|l| l.environment.eq_ignore_ascii_case(stage)).and_then(|l| l.version)
        };
        numbers.extend(number.filter(|n| !numbers.contains(n)));
    }
    let mut versions = Vec::with_capacity(numbers.len());
    for number in numbers {
        versions.push(version_with_aliases(&s.store, &caller, &req.name, Pick::Number(number)).await?);
    }
    Ok(Json(json!({ "model_versions": versions })))
}

/// `model-versions/transition-stage`: a stage is the environment of that name (`Production` is
/// `production`); moving a version into it is a deploy there, with every check of one, refused
/// where the environment's policy guards it.
pub async fn transition_stage(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::TransitionStage>,
) -> MlflowResult<Value> {
    caller.require(Permission::Deploy)?;
    let number = version_number(&req.version)?;
    let environment = req.stage.to_lowercase();
    match alias_kind(&s.store, &environment).await? {
        AliasKind::Label => {
            let known: Vec<String> = s.store.list_environments(&caller).await?.into_iter().map(|e| e.name).collect();
            return Err(MlflowError::invalid(format!(
                "stage: '{}' is no environment here; a stage is the environment of the same name ({}), \
                 and a version leaves one when another is deployed there",
                req.stage,
                known.join(", ")
            )));
        }
        AliasKind::Environment { guarded: true } => {
            return Err(guarded(&req.name, &environment, &format!("stage '{}'", req.stage), "moved"));
        }
        AliasKind::Environment { guarded: false } => {
            let input = DeployInput {
                version: number,
                reason: format!("stage '{}' set through the MLflow API", req.stage),
                expected_revision: None,
            };
            s.store.deploy(&caller, &req.name, &environment, input).await?;
        }
    }
    let version = version_with_aliases(&s.store, &caller, &req.name, Pick::Number(number)).await?;
    Ok(Json(json!({ "model_version": version })))
}
