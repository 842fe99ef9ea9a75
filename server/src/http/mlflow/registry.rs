//! MLflow's model registry on Modelgate's: a registered model is a model, a model version a version
//! (its lineage pointing at the run it came from), and an alias named after an environment is that
//! environment's live version — read freely, moved only by Modelgate's deploy and rollback flows
//! when the environment's policy guards it. Other aliases are plain, audited labels.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use app::backend::{Deployments, Registry};
use app::domain::*;
use app::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::checks::{MAX_TAG_VALUE, check_key, check_value};
use super::filter::{Filter, next_page, page};
use super::logged_models::logged_model;
use super::wire::{self, Alias, DIGEST_TAG, KeyValue, ModelVersion, RegisteredModel, stage_of};
use super::{Body, MlflowCaller, MlflowError, MlflowResult, Params};
use crate::artifacts::{ArtifactPath, tree};
use crate::audit::{Change, Target};
use crate::clock::parse_rfc3339;
use crate::db::DbResultExt;
use crate::http::state::AppState;
use crate::registry::{insert_version, load_model};
use crate::store::{Store, to_json};
use crate::versions::{VERSION_COLUMNS, find_versions, model_id, version_of_row};

const MAX_ALIAS: usize = 255;

fn millis(rfc3339: &str) -> i64 {
    parse_rfc3339("at", rfc3339).unwrap_or_default()
}

/// A Modelgate label `key=value` as an MLflow tag (a label without `=` is a key with no value).
fn tag_of(label: &str) -> KeyValue {
    let (key, value) = label.split_once('=').unwrap_or((label, ""));
    KeyValue { key: key.to_string(), value: value.to_string() }
}

fn label_of(tag: &KeyValue) -> String {
    if tag.value.is_empty() { tag.key.clone() } else { format!("{}={}", tag.key, tag.value) }
}

/// A named model that does not exist, worded as the native API words it.
fn no_model(name: &str) -> MlflowError {
    MlflowError::not_found(format!("model '{name}' not found"))
}

pub(super) fn version_number(text: &str) -> Result<i64, MlflowError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| MlflowError::invalid(format!("Parameter 'version' must be an integer, got '{text}'.")))
}

fn version_wire(v: Version, aliases: Vec<String>) -> ModelVersion {
    let at = millis(&v.created_at);
    let mut tags: Vec<KeyValue> = v.tags.iter().map(|l| tag_of(l)).collect();
    if let Some(digest) = v.artifact_digest {
        tags.push(KeyValue { key: DIGEST_TAG.into(), value: digest });
    }
    ModelVersion {
        name: v.model,
        version: v.number.to_string(),
        creation_timestamp: at,
        last_updated_timestamp: at,
        user_id: v.created_by,
        current_stage: stage_of(&v.live_in),
        description: v.description,
        source: v.artifact_uri,
        run_id: v.lineage.run_id.unwrap_or_default(),
        status: "READY",
        run_link: v.lineage.run_link.unwrap_or_default(),
        tags,
        aliases,
    }
}

/// Every alias of a model (plain ones and one per environment with a live version), by version.
async fn aliases(conn: &mut AnyConnection, model: &Model) -> Result<BTreeMap<String, i64>, MlflowError> {
    let plain = plain_aliases(conn, &model.name).await?;
    let live = model.live.iter().filter_map(|l| l.version.map(|v| (l.environment.clone(), v)));
    Ok(plain.into_iter().chain(live).collect())
}

/// A model's plain aliases with the version each names, by alias.
async fn plain_aliases(conn: &mut AnyConnection, model: &str) -> Result<Vec<(String, i64)>, MlflowError> {
    let id = model_id(conn, model).await?;
    let plain = sqlx::query_as("SELECT alias, version_number FROM model_aliases WHERE model_id = $1 ORDER BY alias")
        .bind(id)
        .fetch_all(conn)
        .await?;
    Ok(plain)
}

/// Plain aliases of a version with the environments where it is live, sorted.
fn with_environments(mut aliases: Vec<String>, version: &Version) -> Vec<String> {
    aliases.extend(version.live_in.iter().cloned());
    aliases.sort();
    aliases
}

/// Which version of a model to read.
pub(super) enum Pick<'a> {
    Number(i64),
    /// The version a plain alias names, else the live version of the environment of that name.
    Alias(&'a str),
}

/// The picked version of a model with each of its aliases, one row per alias (`alias_kind`
/// `plain` or `live`; one row with no alias when it has none, with no version when the pick names
/// none, and no row when the model does not exist). Binds: model name, alias, number.
static PICKED_VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH target AS (\
           SELECT m.id AS model_id, COALESCE($3, \
             (SELECT a.version_number FROM model_aliases a WHERE a.model_id = m.id AND a.alias = $2), \
             (SELECT d.version_number FROM deployments d JOIN environments e ON e.id = d.environment_id \
              WHERE d.model_id = m.id AND e.name = $2)) AS picked \
           FROM models m WHERE m.name = $1), \
         names AS (\
           SELECT a.alias AS name, 'plain' AS kind FROM model_aliases a \
           JOIN target t ON a.model_id = t.model_id AND a.version_number = t.picked \
           UNION ALL SELECT e.name, 'live' FROM deployments d JOIN environments e ON e.id = d.environment_id \
           JOIN target t ON d.model_id = t.model_id AND d.version_number = t.picked) \
         SELECT t.picked, {VERSION_COLUMNS}, n.name AS alias_name, n.kind AS alias_kind FROM target t \
         LEFT JOIN versions v ON v.model_id = t.model_id AND v.number = t.picked \
         LEFT JOIN models m ON m.id = v.model_id LEFT JOIN names n ON TRUE"
    )
});

/// A version with its aliases, read in one statement after checking the caller may read.
pub(super) async fn version_with_aliases(
    store: &Store,
    caller: &Caller,
    model: &str,
    pick: Pick<'_>,
) -> Result<ModelVersion, MlflowError> {
    caller.require(Permission::Read)?;
    let (alias, number) = match pick {
        Pick::Number(number) => (None, Some(number)),
        Pick::Alias(alias) => (Some(alias), None),
    };
    let rows =
        sqlx::query(&PICKED_VERSION).bind(model).bind(alias).bind(number).fetch_all(&mut *store.conn().await?).await?;
    let first = rows.first().ok_or_else(|| no_model(model))?;
    let picked: Option<i64> = first.try_get("picked")?;
    let picked = picked
        .ok_or_else(|| MlflowError::invalid(format!("Registered model alias {} not found.", alias.unwrap_or(""))))?;
    if first.try_get::<Option<i64>, _>("id")?.is_none() {
        return Err(ApiError::not_found(format!("model '{model}' has no version {picked}")).into());
    }
    let (mut plain, mut live) = (Vec::new(), Vec::new());
    for row in &rows {
        let name: Option<String> = row.try_get("alias_name")?;
        let kind: Option<String> = row.try_get("alias_kind")?;
        match (name, kind.as_deref()) {
            (Some(name), Some("live")) => live.push(name),
            (Some(name), _) => plain.push(name),
            (None, _) => {}
        }
    }
    let version = version_of_row(first, live)?;
    let aliases = with_environments(plain, &version);
    Ok(version_wire(version, aliases))
}

async fn model_wire(store: &Store, caller: &Caller, model: Model) -> Result<RegisteredModel, MlflowError> {
    let all = aliases(&mut *store.conn().await?, &model).await?;
    let latest = match model.latest_version {
        Some(n) => vec![version_with_aliases(store, caller, &model.name, Pick::Number(n)).await?],
        None => Vec::new(),
    };
    Ok(RegisteredModel {
        creation_timestamp: millis(&model.created_at),
        last_updated_timestamp: millis(&model.updated_at),
        tags: model.tags.iter().map(|l| tag_of(l)).collect(),
        aliases: all.into_iter().map(|(alias, v)| Alias { alias, version: v.to_string() }).collect(),
        latest_versions: latest,
        description: model.description,
        name: model.name,
    })
}

pub async fn create_model(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::CreateModel>,
) -> MlflowResult<Value> {
    let input = NewModel {
        name: req.name.clone(),
        description: req.description,
        owner_team: String::new(),
        tags: req.tags.iter().map(label_of).collect(),
    };
    let model = s.store.create_model(&caller, input).await.map_err(|e| match e.code {
        app::error::ErrorCode::Conflict => {
            MlflowError::already_exists(format!("Registered Model (name={}) already exists.", req.name))
        }
        _ => e.into(),
    })?;
    Ok(Json(json!({ "registered_model": model_wire(&s.store, &caller, model).await? })))
}

pub async fn get_model(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::ModelName>,
) -> MlflowResult<Value> {
    let model = s.store.get_model(&caller, &req.name).await?;
    Ok(Json(json!({ "registered_model": model_wire(&s.store, &caller, model).await? })))
}

/// Models by name (`name = …`, `LIKE`, `ILIKE`), alphabetically, 100 a page by default.
pub async fn search_models(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::Search>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let filter = Filter::parse(req.filter.as_deref(), &["name", "tags"])?;
    let (limit, offset) = page(req.max_results, req.page_token.as_deref(), 1000)?;
    let (clause, binds) = filter.sql(|attr| if attr == "tags" { "tags" } else { "name" });
    let sql = format!("SELECT name FROM models WHERE {clause} ORDER BY name LIMIT {} OFFSET {offset}", limit + 1);
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let names = query.fetch_all(&mut *s.store.conn().await?).await?;
    let (names, next) = next_page(names, limit, offset);
    let mut models = Vec::with_capacity(names.len());
    for name in names {
        let model = s.store.get_model(&caller, &name).await?;
        models.push(model_wire(&s.store, &caller, model).await?);
    }
    Ok(Json(super::filter::with_token(json!({ "registered_models": models }), next)))
}

pub async fn update_model(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::UpdateModel>,
) -> MlflowResult<Value> {
    caller.require(Permission::RegisterModels)?;
    let before = s.store.get_model(&caller, &req.name).await?;
    if let Some(description) = &req.description {
        validate::text("description", description, 5000)?;
        let mut tx = s.store.begin_write().await?;
        sqlx::query("UPDATE models SET description = $2, updated_at = $3 WHERE name = $1")
            .bind(&req.name)
            .bind(description)
            .bind(s.store.clock.now_ms())
            .execute(&mut *tx)
            .await?;
        let after = Model { description: description.clone(), ..before.clone() };
        let change = Change::new(AuditAction::ModelUpdate, Target::model(&req.name)).before(&before).after(&after);
        tx.commit(&caller, change).await?;
    }
    let model = s.store.get_model(&caller, &req.name).await?;
    Ok(Json(json!({ "registered_model": model_wire(&s.store, &caller, model).await? })))
}

/// Deletes a model that has no versions (a mistaken name); a model with versions keeps them, as
/// the deployment history and the audit trail refer to them.
pub async fn delete_model(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::ModelName>,
) -> MlflowResult<Value> {
    caller.require(Permission::RegisterModels)?;
    let model = s.store.get_model(&caller, &req.name).await?;
    if model.version_count > 0 {
        return Err(MlflowError::permission_denied(format!(
            "Registered model '{}' has {} version(s): Modelgate keeps versions for the deployment \
             history and the audit trail, so only a model without versions can be deleted",
            model.name, model.version_count
        )));
    }
    let mut tx = s.store.begin_write().await?;
    let id = model_id(&mut tx, &req.name).await?;
    for table in ["guardrails", "model_aliases", "models"] {
        let column = if table == "models" { "id" } else { "model_id" };
        sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1")).bind(id).execute(&mut *tx).await?;
    }
    tx.commit(&caller, Change::new(AuditAction::ModelDelete, Target::model(&req.name)).before(&model)).await?;
    Ok(Json(json!({})))
}

/// The files the registry holds for a version registered from `source`: a logged model's
/// (`models:/<model id>`, or `model_id`) or a run's directory (`runs:/<run>/<path>`,
/// `mlflow-artifacts:/<path>`).
struct HeldFiles {
    root: String,
    digest: String,
    count: usize,
    run_id: Option<String>,
}

/// What the registry holds for `req`, read inside the registration's write; `None` when the source
/// lies elsewhere (its digest is then the client's to give).
async fn held_files(conn: &mut AnyConnection, req: &wire::CreateVersion) -> Result<Option<HeldFiles>, MlflowError> {
    let from_source = req.source.strip_prefix("models:/").filter(|id| id.starts_with("m-") && !id.contains('/'));
    let logged = req.model_id.as_deref().filter(|m| !m.is_empty()).or(from_source);
    if let Some(id) = logged {
        let model = logged_model(conn, id, false).await?;
        if model.status != "LOGGED_MODEL_READY" {
            return Err(MlflowError::invalid(format!(
                "model_id: logged model {id} is {}: finalize it (LOGGED_MODEL_READY) before registering a version of it",
                model.status
            )));
        }
        let root = model.root();
        let digest = model.digest.clone().ok_or_else(|| {
            MlflowError::invalid(format!("model_id: logged model {id} has no files at mlflow-artifacts:/{root}"))
        })?;
        let count = crate::artifacts::files_under(conn, &format!("{root}/")).await?.len();
        return Ok(Some(HeldFiles { root, digest, count, run_id: model.source_run_id }));
    }
    let root = if let Some(rest) = req.source.strip_prefix("runs:/") {
        let (run, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(experiment) = crate::tracking::lock_run_experiment(conn, run).await? else { return Ok(None) };
        match sub.trim_matches('/') {
            "" => format!("{experiment}/{run}/artifacts"),
            sub => format!("{experiment}/{run}/artifacts/{sub}"),
        }
    } else if let Some(path) = req.source.strip_prefix("mlflow-artifacts:") {
        path.trim_start_matches('/').trim_end_matches('/').to_string()
    } else {
        return Ok(None);
    };
    let root = ArtifactPath::parse("source", &root)?;
    Ok(tree::digest_of(conn, root.as_str()).await?.map(|(digest, count)| HeldFiles {
        root: root.to_string(),
        digest,
        count,
        run_id: None,
    }))
}

/// Registers a version. When the registry holds its files, the digest is the server's (a
/// `modelgate.artifact_digest` tag that disagrees is refused) and those files stay as they are.
pub async fn create_version(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::CreateVersion>,
) -> MlflowResult<Value> {
    caller.require(Permission::RegisterVersions)?;
    let mut tx = s.store.begin_write().await?;
    let held = held_files(&mut tx, &req).await?;
    let tagged = req.tags.iter().find(|t| t.key == DIGEST_TAG).map(|t| t.value.clone());
    let digest = match (&held, tagged) {
        (Some(held), Some(tagged)) => {
            let tagged = validate::digest(DIGEST_TAG, &tagged).map_err(|e| MlflowError::invalid(e.message))?;
            if tagged != held.digest {
                return Err(MlflowError::invalid(format!(
                    "{DIGEST_TAG}: {tagged} disagrees with {}, the digest the server computed over the {} \
                     file(s) at mlflow-artifacts:/{}",
                    held.digest, held.count, held.root
                )));
            }
            Some(tagged)
        }
        (Some(held), None) => Some(held.digest.clone()),
        (None, tagged) => tagged,
    };
    let run_id = req.run_id.clone().filter(|r| !r.is_empty()).or_else(|| held.as_ref().and_then(|h| h.run_id.clone()));
    let lineage_of_run = match &run_id {
        Some(id) => super::tracking::run_lineage(&mut tx, id).await?,
        None => None,
    };
    let (parameters, git_commit) = lineage_of_run.unwrap_or_default();
    let input = NewVersion {
        artifact_uri: req.source,
        artifact_digest: digest,
        framework: String::new(),
        parameters,
        lineage: Lineage { run_id, run_link: req.run_link.filter(|l| !l.is_empty()), git_commit, ..Lineage::default() },
        description: req.description,
        tags: req.tags.iter().filter(|t| t.key != DIGEST_TAG).map(label_of).collect(),
    }
    .validated()
    .map_err(|e| match e.field() {
        Some("artifact_uri") => MlflowError::invalid(e.message.replacen("artifact_uri", "source", 1)),
        Some("artifact_digest") => MlflowError::invalid(e.message.replacen("artifact_digest", DIGEST_TAG, 1)),
        _ => e.into(),
    })?;
    let now = s.store.clock.now_ms();
    let (version, stored) =
        insert_version(&mut tx, &s.store.audit, &caller, &req.name, input, held.map(|h| h.root), now).await?;
    let change = Change::new(AuditAction::VersionRegister, Target::version(&req.name, version.number)).after(&version);
    tx.commit(&caller, change).await?;
    s.store.metrics_stored(&req.name, stored).await;
    Ok(Json(json!({ "model_version": version_wire(version, Vec::new()) })))
}

/// Where a client downloads a version's files: the registry's own copy when it holds them, else
/// the version's source.
pub async fn get_download_uri(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::VersionRef>,
) -> MlflowResult<Value> {
    let number = version_number(&req.version)?;
    let version = s.store.get_version(&caller, &req.name, number).await?;
    let uri = match version.artifact_root {
        Some(root) => format!("mlflow-artifacts:/{root}"),
        None => version.artifact_uri,
    };
    Ok(Json(json!({ "artifact_uri": uri })))
}

pub async fn get_version(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::VersionRef>,
) -> MlflowResult<Value> {
    let number = version_number(&req.version)?;
    Ok(Json(
        json!({ "model_version": version_with_aliases(&s.store, &caller, &req.name, Pick::Number(number)).await? }),
    ))
}

pub async fn update_version(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::UpdateVersion>,
) -> MlflowResult<Value> {
    let number = version_number(&req.version)?;
    let patch = VersionPatch { description: req.description, ..VersionPatch::default() };
    s.store.update_version(&caller, &req.name, number, patch).await?;
    Ok(Json(
        json!({ "model_version": version_with_aliases(&s.store, &caller, &req.name, Pick::Number(number)).await? }),
    ))
}

/// Sets a version tag; `modelgate.artifact_digest` attaches the digest of a version registered
/// without one (write-once), which makes it deployable.
pub async fn set_version_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::SetVersionTag>,
) -> MlflowResult<Value> {
    let number = version_number(&req.version)?;
    let patch = if req.key == DIGEST_TAG {
        VersionPatch { artifact_digest: Some(req.value), ..VersionPatch::default() }
    } else {
        let tag = KeyValue { key: req.key, value: req.value };
        let current = s.store.get_version(&caller, &req.name, number).await?;
        let mut tags: Vec<String> = current.tags.into_iter().filter(|l| tag_of(l).key != tag.key).collect();
        tags.push(label_of(&tag));
        VersionPatch { tags: Some(tags), ..VersionPatch::default() }
    };
    s.store.update_version(&caller, &req.name, number, patch).await.map_err(|e| match e.field() {
        Some("artifact_digest") => MlflowError::invalid(e.message.replacen("artifact_digest", DIGEST_TAG, 1)),
        _ => e.into(),
    })?;
    Ok(Json(json!({})))
}

/// Versions by model name and/or run (`name = …`, `run_id = …`), newest first.
pub async fn search_versions(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::Search>,
) -> MlflowResult<Value> {
    caller.require(Permission::Read)?;
    let filter = Filter::parse(req.filter.as_deref(), &["name", "run_id", "tags"])?;
    let (limit, offset) = page(req.max_results, req.page_token.as_deref(), 10_000)?;
    let (clause, binds) = filter.sql(|attr| match attr {
        "name" => "m.name",
        "run_id" => "v.run_id",
        _ => "v.tags",
    });
    let mut conn = s.store.conn().await?;
    let found = find_versions(&mut conn, &clause, &binds, (limit + 1, offset)).await?;
    let (found, next) = next_page(found, limit, offset);
    let mut plain: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut versions = Vec::with_capacity(found.len());
    for version in found {
        if !plain.contains_key(&version.model) {
            let aliases = plain_aliases(&mut conn, &version.model).await?;
            plain.insert(version.model.clone(), aliases);
        }
        let mine = plain[&version.model].iter().filter(|(_, n)| *n == version.number).map(|(a, _)| a.clone());
        let aliases = with_environments(mine.collect(), &version);
        versions.push(version_wire(version, aliases));
    }
    Ok(Json(super::filter::with_token(json!({ "model_versions": versions }), next)))
}

/// What an alias name means: a plain label, or an environment (guarded or not by its policy).
pub(super) enum AliasKind {
    Label,
    Environment { guarded: bool },
}

impl AliasKind {
    /// From the required approvals of the policy of the environment named like the alias: `None`
    /// when no environment has that name, `Some(None)` when it has no policy, which guards it (the
    /// default policy requires one approval).
    fn of(environment_approvals: Option<Option<i64>>) -> Self {
        match environment_approvals {
            None => AliasKind::Label,
            Some(required) => AliasKind::Environment { guarded: required.unwrap_or(1) > 0 },
        }
    }
}

pub(super) async fn alias_kind(store: &Store, alias: &str) -> Result<AliasKind, MlflowError> {
    let approvals: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT p.approvals_required FROM environments e \
         LEFT JOIN rollback_policies p ON p.environment_id = e.id WHERE e.name = $1",
    )
    .bind(alias)
    .fetch_optional(&mut *store.conn().await?)
    .await?;
    Ok(AliasKind::of(approvals))
}

/// The refusal of a change through the MLflow API of what a guarded environment's policy governs;
/// `subject` is what was to change (`alias 'production'`, `stage 'Production'`).
pub(super) fn guarded(model: &str, environment: &str, subject: &str, what: &str) -> MlflowError {
    let model_path = app::domain::percent_encoded(model);
    MlflowError::permission_denied(format!(
        "{subject} is the live version of model '{model}' in environment '{environment}', \
         whose rollback policy guards it, so it cannot be {what} through the MLflow API: deploy with \
         POST /api/v1/models/{model_path}/environments/{environment}/deploy (or the console's Deploy), or \
         request a reviewed rollback with POST /api/v1/models/{model_path}/environments/{environment}/rollbacks"
    ))
}

fn check_alias(alias: &str) -> Result<(), MlflowError> {
    let valid = !alias.is_empty()
        && alias.len() <= MAX_ALIAS
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !alias.eq_ignore_ascii_case("latest")
        && !(alias.starts_with(['v', 'V']) && alias.len() > 1 && alias[1..].chars().all(|c| c.is_ascii_digit()));
    if valid {
        Ok(())
    } else {
        Err(MlflowError::invalid(format!(
            "alias: {alias:?} must be 1 to {MAX_ALIAS} letters, digits, '_' or '-', and neither 'latest' nor 'v<number>'"
        )))
    }
}

/// What setting an alias depends on, as read: the model, whether the version exists, where the
/// alias points now, and the environment of that name (with its policy's required approvals).
struct AliasState {
    model_id: i64,
    version_exists: bool,
    before: Option<i64>,
    environment: Option<Option<i64>>,
}

async fn alias_state(conn: &mut AnyConnection, req: &wire::SetAlias, number: i64) -> Result<AliasState, MlflowError> {
    let (model_id, version, before, environment, approvals): (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(
            "SELECT m.id, v.number, a.version_number, e.id, p.approvals_required FROM models m \
             LEFT JOIN versions v ON v.model_id = m.id AND v.number = $2 \
             LEFT JOIN model_aliases a ON a.model_id = m.id AND a.alias = $3 \
             LEFT JOIN environments e ON e.name = $3 LEFT JOIN rollback_policies p ON p.environment_id = e.id \
             WHERE m.name = $1",
        )
        .bind(&req.name)
        .bind(number)
        .bind(&req.alias)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| no_model(&req.name))?;
    Ok(AliasState { model_id, version_exists: version.is_some(), before, environment: environment.map(|_| approvals) })
}

/// Sets a plain alias; an unguarded environment's alias deploys the version there (with every
/// check of a deploy), a guarded one is refused. What the set depends on is read inside its write.
pub async fn set_alias(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::SetAlias>,
) -> MlflowResult<Value> {
    check_alias(&req.alias)?;
    let number = version_number(&req.version)?;
    let mut tx = s.store.begin_write().await?;
    // The model's row stays locked until the set commits, so concurrent sets of its aliases read
    // one after the other and each records the version it replaced.
    sqlx::query("UPDATE models SET next_version = next_version WHERE name = $1")
        .bind(&req.name)
        .execute(&mut *tx)
        .await?;
    let state = alias_state(&mut tx, &req, number).await?;
    match AliasKind::of(state.environment) {
        AliasKind::Environment { guarded: true } => {
            return Err(guarded(&req.name, &req.alias, &format!("alias '{}'", req.alias), "moved"));
        }
        AliasKind::Environment { guarded: false } => {
            // A deploy is a write of its own, with every check of a deploy.
            drop(tx);
            let input = DeployInput {
                version: number,
                reason: format!("alias '{}' set through the MLflow API", req.alias),
                expected_revision: None,
            };
            s.store.deploy(&caller, &req.name, &req.alias, input).await?;
            return Ok(Json(json!({})));
        }
        AliasKind::Label => caller.require(Permission::EditVersions)?,
    }
    if !state.version_exists {
        return Err(MlflowError::not_found(format!("Model Version (name={}, version={number}) not found", req.name)));
    }
    sqlx::query(
        "INSERT INTO model_aliases (model_id, alias, version_number, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model_id, alias) DO UPDATE SET \
         version_number = excluded.version_number, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(state.model_id)
    .bind(&req.alias)
    .bind(number)
    .bind(s.store.clock.now_ms())
    .bind(caller.actor().name)
    .execute(&mut *tx)
    .await?;
    let mut change = Change::new(AuditAction::AliasSet, Target::version(&req.name, number))
        .after(&json!({ "alias": req.alias, "version": number }));
    if let Some(previous) = state.before {
        change = change.before(&json!({ "alias": req.alias, "version": previous }));
    }
    tx.commit(&caller, change).await?;
    Ok(Json(json!({})))
}

/// The version an alias points at: a plain alias, else the environment of that name's live version.
pub async fn get_alias(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<wire::AliasRef>,
) -> MlflowResult<Value> {
    let version = version_with_aliases(&s.store, &caller, &req.name, Pick::Alias(&req.alias)).await?;
    Ok(Json(json!({ "model_version": version })))
}

pub async fn delete_alias(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::AliasRef>,
) -> MlflowResult<Value> {
    if let AliasKind::Environment { guarded: is_guarded } = alias_kind(&s.store, &req.alias).await? {
        return Err(if is_guarded {
            guarded(&req.name, &req.alias, &format!("alias '{}'", req.alias), "removed")
        } else {
            MlflowError::permission_denied(format!(
                "alias '{}' is the live version of environment '{}': deploy another version to change it",
                req.alias, req.alias
            ))
        });
    }
    caller.require(Permission::EditVersions)?;
    let mut tx = s.store.begin_write().await?;
    let id = model_id(&mut tx, &req.name).await?;
    let removed: Option<i64> =
        sqlx::query_scalar("DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2 RETURNING version_number")
            .bind(id)
            .bind(&req.alias)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(number) = removed {
        let change = Change::new(AuditAction::AliasDelete, Target::version(&req.name, number))
            .before(&json!({ "alias": req.alias, "version": number }));
        tx.commit(&caller, change).await?;
    }
    Ok(Json(json!({})))
}

/// One audited change of a registered model: `change` edits it inside the write and returns its
/// name after the change.
async fn change_model(
    store: &Store,
    caller: &Caller,
    name: &str,
    change: impl AsyncFnOnce(&mut AnyConnection, &Model) -> Result<String, MlflowError>,
) -> Result<Model, MlflowError> {
    caller.require(Permission::RegisterModels)?;
    let mut tx = store.begin_write().await?;
    let locked = sqlx::query("UPDATE models SET updated_at = $2 WHERE name = $1")
        .bind(name)
        .bind(store.clock.now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if locked == 0 {
        return Err(no_model(name));
    }
    let before = load_model(&mut tx, name).await?;
    let renamed = change(&mut tx, &before).await?;
    let after = load_model(&mut tx, &renamed).await?;
    tx.commit(caller, Change::new(AuditAction::ModelUpdate, Target::model(&renamed)).before(&before).after(&after))
        .await?;
    Ok(after)
}

/// `registered-models/rename`: the model keeps its versions, history and live versions.
pub async fn rename_model(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::RenameModel>,
) -> MlflowResult<Value> {
    validate::model_name("new_name", &req.new_name)?;
    let model = change_model(&s.store, &caller, &req.name, async |tx, _| {
        sqlx::query("UPDATE models SET name = $2 WHERE name = $1")
            .bind(&req.name)
            .bind(&req.new_name)
            .execute(&mut *tx)
            .await
            .on_unique_violation(|| ApiError::conflict("taken"))
            .map_err(|e| match e.code {
                app::error::ErrorCode::Conflict => {
                    MlflowError::already_exists(format!("Registered Model (name={}) already exists.", req.new_name))
                }
                _ => e.into(),
            })?;
        Ok(req.new_name.clone())
    })
    .await?;
    Ok(Json(json!({ "registered_model": model_wire(&s.store, &caller, model).await? })))
}

/// `registered-models/set-tag`.
pub async fn set_model_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::ModelTag>,
) -> MlflowResult<Value> {
    check_key("key", &req.key)?;
    check_value("value", &req.value, MAX_TAG_VALUE)?;
    change_model(&s.store, &caller, &req.name, async |tx, before| {
        let tag = KeyValue { key: req.key.clone(), value: req.value.clone() };
        let mut labels: Vec<String> = before.tags.iter().filter(|l| tag_of(l).key != tag.key).cloned().collect();
        labels.push(label_of(&tag));
        write_model_tags(tx, &req.name, &labels).await
    })
    .await?;
    Ok(Json(json!({})))
}

/// `registered-models/delete-tag`.
pub async fn delete_model_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::ModelTag>,
) -> MlflowResult<Value> {
    change_model(&s.store, &caller, &req.name, async |tx, before| {
        let labels: Vec<String> = before.tags.iter().filter(|l| tag_of(l).key != req.key).cloned().collect();
        if labels.len() == before.tags.len() {
            return Err(MlflowError::not_found(format!(
                "No tag with key '{}' on registered model '{}'",
                req.key, req.name
            )));
        }
        write_model_tags(tx, &req.name, &labels).await
    })
    .await?;
    Ok(Json(json!({})))
}

async fn write_model_tags(conn: &mut AnyConnection, name: &str, labels: &[String]) -> Result<String, MlflowError> {
    sqlx::query("UPDATE models SET tags = $2 WHERE name = $1").bind(name).bind(to_json(&labels)).execute(conn).await?;
    Ok(name.to_string())
}

/// `model-versions/delete`: only a version that was never live nor named by a rollback request.
pub async fn delete_version(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::VersionRef>,
) -> MlflowResult<Value> {
    let number = version_number(&req.version)?;
    s.store.delete_version(&caller, &req.name, number).await?;
    Ok(Json(json!({})))
}

/// `model-versions/delete-tag`; the server's digest is no tag to delete.
pub async fn delete_version_tag(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<wire::DeleteVersionTag>,
) -> MlflowResult<Value> {
    caller.require(Permission::EditVersions)?;
    let number = version_number(&req.version)?;
    if req.key == DIGEST_TAG {
        return Err(MlflowError::invalid(format!("key: {DIGEST_TAG} is the version's digest, which is never removed")));
    }
    let current = s.store.get_version(&caller, &req.name, number).await?;
    let tags: Vec<String> = current.tags.iter().filter(|l| tag_of(l).key != req.key).cloned().collect();
    if tags.len() == current.tags.len() {
        return Err(MlflowError::not_found(format!(
            "No tag with key '{}' on version {number} of registered model '{}'",
            req.key, req.name
        )));
    }
    let patch = VersionPatch { tags: Some(tags), ..VersionPatch::default() };
    s.store.update_version(&caller, &req.name, number, patch).await?;
    Ok(Json(json!({})))
}
