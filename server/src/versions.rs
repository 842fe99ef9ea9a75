//! Versions as stored: reading one or many (with where they are live and their health in each
//! environment), and the ids behind model and environment names.

use std::collections::HashMap;

use app::domain::*;
use app::error::ApiError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow};

use crate::clock::rfc3339;
use crate::store::from_json;

/// The id of a model by name, or 404.
pub(crate) async fn model_id(conn: &mut AnyConnection, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM models WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model '{name}' not found")))
}

/// The id of an environment by name, or 404.
pub(crate) async fn environment_id(conn: &mut AnyConnection, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM environments WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("environment '{name}' not found")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    pub(crate) id: i64,
    pub(crate) model: String,
    pub(crate) number: i64,
    pub(crate) artifact_uri: String,
    pub(crate) artifact_digest: Option<String>,
    pub(crate) artifact_root: Option<String>,
    pub(crate) framework: String,
    pub(crate) parameters: String,
    pub(crate) run_id: Option<String>,
    pub(crate) run_link: Option<String>,
    pub(crate) git_commit: Option<String>,
    pub(crate) dataset_ref: Option<String>,
    pub(crate) dataset_hash: Option<String>,
    pub(crate) parent_version: Option<i64>,
    pub(crate) description: String,
    pub(crate) tags: String,
    pub(crate) created_at: i64,
    pub(crate) created_by: String,
    pub(crate) quarantine_reason: Option<String>,
    pub(crate) quarantined_at: Option<i64>,
    pub(crate) quarantined_by: Option<String>,
}

/// A version's columns, from `versions v` joined with `models m`, as [`version_of_row`] reads them.
pub(crate) const VERSION_COLUMNS: &str = "v.id, m.name AS model, v.number, v.artifact_uri, v.artifact_digest, v.artifact_root, \
     v.framework, \
     v.parameters, v.run_id, v.run_link, v.git_commit, v.dataset_ref, v.dataset_hash, v.parent_version, \
     v.description, v.tags, v.created_at, v.created_by, v.quarantine_reason, v.quarantined_at, v.quarantined_by";

impl VersionRow {
    pub(crate) fn into_version(self, live_in: Vec<String>, health: Vec<EnvironmentHealth>) -> Version {
        let quarantine = match (self.quarantine_reason, self.quarantined_at, self.quarantined_by) {
            (Some(reason), Some(at), Some(by)) => Some(Quarantine { reason, at: rfc3339(at), by }),
            _ => None,
        };
        Version {
            model: self.model,
            number: self.number,
            artifact_uri: self.artifact_uri,
            artifact_digest: self.artifact_digest,
            artifact_root: self.artifact_root,
            framework: self.framework,
            parameters: from_json(&self.parameters),
            lineage: Lineage {
                run_id: self.run_id,
                run_link: self.run_link,
                git_commit: self.git_commit,
                dataset_ref: self.dataset_ref,
                dataset_hash: self.dataset_hash,
                parent_version: self.parent_version,
            },
            description: self.description,
            tags: from_json(&self.tags),
            created_at: rfc3339(self.created_at),
            created_by: self.created_by,
            quarantine,
            live_in,
            health,
        }
    }
}

/// The version in a row that carries [`VERSION_COLUMNS`], live in `live_in`; its health is not read.
pub(crate) fn version_of_row(row: &AnyRow, live_in: Vec<String>) -> Result<Version, sqlx::Error> {
    Ok(VersionRow::from_row(row)?.into_version(live_in, Vec::new()))
}

/// Environments (by name, in display order) where each version number of a model is live.
pub(crate) async fn live_environments(
    conn: &mut AnyConnection,
    model_id: i64,
) -> Result<HashMap<i64, Vec<String>>, ApiError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT d.version_number, e.name FROM deployments d JOIN environments e ON e.id = d.environment_id \
         WHERE d.model_id = $1 ORDER BY e.position, e.id",
    )
    .bind(model_id)
    .fetch_all(conn)
    .await?;
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    for (number, env) in rows {
        map.entry(number).or_default().push(env);
    }
    Ok(map)
}

/// One version, read inside whatever connection or transaction the caller holds.
pub(crate) async fn load_version(conn: &mut AnyConnection, model: &str, number: i64) -> Result<Version, ApiError> {
    let id = model_id(conn, model).await?;
    load_version_of(conn, id, model, number).await
}

/// One version of the model with id `id` (named `model`, for the error), read inside whatever
/// connection or transaction the caller holds.
pub(crate) async fn load_version_of(
    conn: &mut AnyConnection,
    id: i64,
    model: &str,
    number: i64,
) -> Result<Version, ApiError> {
    let row: Option<VersionRow> = sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id \
         WHERE v.model_id = $1 AND v.number = $2"
    ))
    .bind(id)
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("model '{model}' has no version {number}")))?;
    let mut live = live_environments(conn, id).await?;
    let health = stored_health(conn, &[(row.id, number)]).await?;
    Ok(row.into_version(live.remove(&number).unwrap_or_default(), health))
}

/// Versions of any model matching a SQL condition on `versions v` and `models m` (with its bind
/// values), by model name then newest first; `live_in` filled, health left out.
pub(crate) async fn find_versions(
    conn: &mut AnyConnection,
    condition: &str,
    binds: &[String],
    (limit, offset): (i64, i64),
) -> Result<Vec<Version>, ApiError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id WHERE {condition} \
         ORDER BY m.name, v.number DESC LIMIT {limit} OFFSET {offset}"
    );
    let mut query = sqlx::query_as::<_, VersionRow>(&sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut live: HashMap<String, HashMap<i64, Vec<String>>> = HashMap::new();
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        if !live.contains_key(&row.model) {
            let id = model_id(conn, &row.model).await?;
            live.insert(row.model.clone(), live_environments(conn, id).await?);
        }
        let envs = live.get_mut(&row.model).and_then(|m| m.remove(&row.number)).unwrap_or_default();
        versions.push(row.into_version(envs, Vec::new()));
    }
    Ok(versions)
}

/// The stored health of versions (id, number) in every environment where it was evaluated.
pub(crate) async fn stored_health(
    conn: &mut AnyConnection,
    versions: &[(i64, i64)],
) -> Result<Vec<EnvironmentHealth>, ApiError> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=versions.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT h.version_id, e.name, h.health, h.evaluated_at FROM version_health h \
         JOIN environments e ON e.id = h.environment_id WHERE h.version_id IN ({}) ORDER BY e.position, e.id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, (i64, String, String, i64)>(&sql);
    for (id, _) in versions {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, environment, health, at)| {
            let version = versions.iter().find(|(v, _)| *v == id)?.1;
            Some(EnvironmentHealth {
                environment,
                version,
                health: Health::parse(&health).unwrap_or_default(),
                since: rfc3339(at),
            })
        })
        .collect())
}

/// For each model, the stored health of its live version in each environment.
pub(crate) async fn live_health(
    conn: &mut AnyConnection,
    model_ids: &[i64],
) -> Result<HashMap<i64, Vec<EnvironmentHealth>>, ApiError> {
    if model_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let placeholders: Vec<String> = (1..=model_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT d.model_id, e.name, d.version_number, h.health, h.evaluated_at FROM deployments d \
         JOIN versions v ON v.model_id = d.model_id AND v.number = d.version_number \
         JOIN version_health h ON h.version_id = v.id AND h.environment_id = d.environment_id \
         JOIN environments e ON e.id = d.environment_id WHERE d.model_id IN ({}) ORDER BY e.position, e.id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, (i64, String, i64, String, i64)>(&sql);
    for id in model_ids {
        query = query.bind(*id);
    }
    let mut out: HashMap<i64, Vec<EnvironmentHealth>> = HashMap::new();
    for (model_id, environment, version, health, at) in query.fetch_all(conn).await? {
        out.entry(model_id).or_default().push(EnvironmentHealth {
            environment,
            version,
            health: Health::parse(&health).unwrap_or_default(),
            since: rfc3339(at),
        });
    }
    Ok(out)
}
