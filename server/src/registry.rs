//! Models and versions: registration, listing, editing and quarantine.

use app::backend::Registry;
use app::domain::validate;
use app::domain::*;
use app::error::ApiError;
use async_trait::async_trait;
use futures::stream::BoxStream;
use hyper::body::Bytes;
use sqlx::AnyConnection;

use crate::artifacts::{ArtifactPath, StoredFile, Upload, record_upload};
use crate::audit::{AuditLog, Change, Target};
use crate::clock::rfc3339;
use crate::db::DbResultExt;
use crate::fleet::require_fetch;
use crate::live::live_versions;
use crate::metrics::{StoredPoints, key_metric_trends};
use crate::store::{Store, from_json, like_pattern, to_json};
use crate::versions::{
    VERSION_COLUMNS, VersionRow, live_environments, live_health, load_version, model_id, stored_health,
};

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: i64,
    name: String,
    description: String,
    owner_team: String,
    tags: String,
    version_count: i64,
    latest_version: Option<i64>,
    created_at: i64,
    created_by: String,
    updated_at: i64,
}

impl ModelRow {
    fn into_model(self, live: Vec<LiveVersion>, health: Vec<EnvironmentHealth>) -> Model {
        Model {
            name: self.name,
            description: self.description,
            owner_team: self.owner_team,
            tags: from_json(&self.tags),
            version_count: self.version_count,
            latest_version: self.latest_version,
            created_at: rfc3339(self.created_at),
            created_by: self.created_by,
            updated_at: rfc3339(self.updated_at),
            live,
            health,
            key_metric: None,
        }
    }
}

/// A model's columns with how many versions it has and its newest (numbers are never reused, so
/// a deleted version leaves a gap).
const MODEL_COLUMNS: &str = "id, name, description, owner_team, tags, \
     (SELECT COUNT(*) FROM versions v WHERE v.model_id = models.id) AS version_count, \
     (SELECT MAX(v.number) FROM versions v WHERE v.model_id = models.id) AS latest_version, \
     created_at, created_by, updated_at";

pub(crate) async fn load_model(conn: &mut AnyConnection, name: &str) -> Result<Model, ApiError> {
    let row: ModelRow = sqlx::query_as(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model '{name}' not found")))?;
    let mut live = live_versions(conn, &[(row.id, row.name.clone())]).await?;
    let live = live.remove(&row.id).unwrap_or_default();
    let health = live_health(conn, &[row.id]).await?.remove(&row.id).unwrap_or_default();
    Ok(row.into_model(live, health))
}

/// Inserts a (validated) version inside the caller's write transaction, its files at
/// `artifact_root` when the registry holds them; a version whose lineage names an MLflow run takes
/// that run's metric points as its evaluation series.
pub(crate) async fn insert_version(
    conn: &mut AnyConnection,
    log: &AuditLog,
    caller: &Caller,
    model: &str,
    input: NewVersion,
    artifact_root: Option<String>,
    now: i64,
) -> Result<(Version, StoredPoints), ApiError> {
    let (id, number): (i64, i64) = sqlx::query_as(
        "UPDATE models SET next_version = next_version + 1, updated_at = $2 WHERE name = $1 \
         RETURNING id, next_version - 1",
    )
    .bind(model)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("model '{model}' not found")))?;
    if let Some(parent) = input.lineage.parent_version {
        let exists = sqlx::query_scalar::<_, i64>("SELECT number FROM versions WHERE model_id = $1 AND number = $2")
            .bind(id)
            .bind(parent)
            .fetch_optional(&mut *conn)
            .await?;
        if exists.is_none() {
            return Err(ApiError::invalid(
                "lineage.parent_version",
                format!("model '{model}' has no version {parent}"),
            ));
        }
    }
    let l = &input.lineage;
    sqlx::query(
        "INSERT INTO versions (model_id, number, artifact_uri, artifact_digest, framework, parameters, \
         run_id, run_link, git_commit, dataset_ref, dataset_hash, parent_version, description, tags, \
         created_at, created_by, artifact_root) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(id)
    .bind(number)
    .bind(&input.artifact_uri)
    .bind(&input.artifact_digest)
    .bind(&input.framework)
    .bind(to_json(&input.parameters))
    .bind(&l.run_id)
    .bind(&l.run_link)
    .bind(&l.git_commit)
    .bind(&l.dataset_ref)
    .bind(&l.dataset_hash)
    .bind(l.parent_version)
    .bind(&input.description)
    .bind(to_json(&input.tags))
    .bind(now)
    .bind(&caller.actor().name)
    .bind(&artifact_root)
    .execute(&mut *conn)
    .await?;
    let version = Version {
        model: model.to_string(),
        number,
        artifact_uri: input.artifact_uri,
        artifact_digest: input.artifact_digest,
        artifact_root,
        framework: input.framework,
        parameters: input.parameters,
        lineage: input.lineage,
        description: input.description,
        tags: input.tags,
        created_at: rfc3339(now),
        created_by: caller.actor().name,
        quarantine: None,
        live_in: Vec::new(),
        health: Vec::new(),
    };
    let stored = match &version.lineage.run_id {
        Some(run_id) => crate::tracking::copy_run_metrics(conn, log, model, number, run_id, now).await?,
        None => StoredPoints::default(),
    };
    Ok((version, stored))
}

#[async_trait]
impl Registry for Store {
    async fn create_model(&self, caller: &Caller, input: NewModel) -> Result<Model, ApiError> {
        caller.require(Permission::RegisterModels)?;
        input.validate()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO models (name, description, owner_team, tags, created_at, created_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $5)",
        )
        .bind(&input.name)
        .bind(&input.description)
        .bind(&input.owner_team)
        .bind(to_json(&input.tags))
        .bind(now)
        .bind(&caller.actor().name)
        .execute(&mut *tx)
        .await
        .on_unique_violation(|| {
            ApiError::conflict(format!("a model named '{}' already exists", input.name)).with_field("name")
        })?;
        let model = load_model(&mut tx, &input.name).await?;
        tx.commit(caller, Change::new(AuditAction::ModelCreate, Target::model(&model.name)).after(&model)).await?;
        Ok(model)
    }

    async fn list_models(&self, caller: &Caller, query: ModelQuery) -> Result<Page<Model>, ApiError> {
        caller.require(Permission::Read)?;
        validate::page_limit(query.limit)?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = query.offset.unwrap_or(0);
        let mut filter = String::from("WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            validate::text("q", q, 200)?;
            binds.push(like_pattern(q));
            let n = binds.len();
            filter.push_str(&format!(
                " AND (LOWER(name) LIKE ${n} ESCAPE '\\' OR LOWER(description) LIKE ${n} ESCAPE '\\' \
                 OR LOWER(owner_team) LIKE ${n} ESCAPE '\\' OR LOWER(tags) LIKE ${n} ESCAPE '\\')"
            ));
        }
        if let Some(team) = query.owner_team.as_deref().filter(|t| !t.is_empty()) {
            binds.push(team.to_string());
            filter.push_str(&format!(" AND owner_team = ${}", binds.len()));
        }
        if let Some(health) = query.health {
            binds.push(health.as_str().to_string());
            filter.push_str(&format!(
                " AND id IN (SELECT d.model_id FROM deployments d \
                 JOIN versions v ON v.model_id = d.model_id AND v.number = d.version_number \
                 LEFT JOIN version_health h ON h.version_id = v.id AND h.environment_id = d.environment_id \
                 WHERE COALESCE(h.health, 'unknown') = ${})",
                binds.len()
            ));
        }
        let column = match query.sort.unwrap_or_default() {
            ModelSort::Name => "name",
            ModelSort::UpdatedAt => "updated_at",
            ModelSort::CreatedAt => "created_at",
            ModelSort::Versions => "version_count",
        };
        let direction = match query.order.unwrap_or_default() {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        let mut conn = self.conn().await?;
        let count_sql = format!("SELECT COUNT(*) FROM models {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total: i64 = count.fetch_one(&mut *conn).await?;
        let sql = format!(
            "SELECT {MODEL_COLUMNS} FROM models {filter} ORDER BY {column} {direction}, name ASC LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        );
        let mut rows_query = sqlx::query_as::<_, ModelRow>(&sql);
        for b in &binds {
            rows_query = rows_query.bind(b.clone());
        }
        let rows = rows_query.bind(i64::from(limit)).bind(offset as i64).fetch_all(&mut *conn).await?;
        let keys: Vec<(i64, String)> = rows.iter().map(|r| (r.id, r.name.clone())).collect();
        let mut live = live_versions(&mut conn, &keys).await?;
        let ids: Vec<i64> = keys.iter().map(|(id, _)| *id).collect();
        let mut health = live_health(&mut conn, &ids).await?;
        let mut trends = key_metric_trends(&mut conn, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let (id, l, h) =
                    (r.id, live.remove(&r.id).unwrap_or_default(), health.remove(&r.id).unwrap_or_default());
                Model { key_metric: trends.remove(&id), ..r.into_model(l, h) }
            })
            .collect();
        Ok(Page { items, total, limit, offset })
    }

    async fn get_model(&self, caller: &Caller, name: &str) -> Result<Model, ApiError> {
        caller.require(Permission::Read)?;
        load_model(&mut *self.conn().await?, name).await
    }

    async fn register_version(&self, caller: &Caller, model: &str, input: NewVersion) -> Result<Version, ApiError> {
        caller.require(Permission::RegisterVersions)?;
        let input = input.validated()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let (version, stored) = insert_version(&mut tx, &self.audit, caller, model, input, None, now).await?;
        let change = Change::new(AuditAction::VersionRegister, Target::version(model, version.number)).after(&version);
        tx.commit(caller, change).await?;
        self.metrics_stored(model, stored).await;
        Ok(version)
    }

    async fn list_versions(
        &self,
        caller: &Caller,
        model: &str,
        query: VersionQuery,
    ) -> Result<Page<Version>, ApiError> {
        caller.require(Permission::Read)?;
        validate::page_limit(query.limit)?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = query.offset.unwrap_or(0);
        let direction = match query.order.unwrap_or(Order::Desc) {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        let mut conn = self.conn().await?;
        let id = model_id(&mut conn, model).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM versions WHERE model_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions v JOIN models m ON m.id = v.model_id \
             WHERE v.model_id = $1 ORDER BY v.number {direction} LIMIT $2 OFFSET $3"
        ))
        .bind(id)
        .bind(i64::from(limit))
        .bind(offset as i64)
        .fetch_all(&mut *conn)
        .await?;
        let mut live = live_environments(&mut conn, id).await?;
        let ids: Vec<(i64, i64)> = rows.iter().map(|r| (r.id, r.number)).collect();
        let mut health = stored_health(&mut conn, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let envs = live.remove(&r.number).unwrap_or_default();
                let mine = health.extract_if(.., |h| h.version == r.number).collect();
                r.into_version(envs, mine)
            })
            .collect();
        Ok(Page { items, total, limit, offset })
    }

    async fn get_version(&self, caller: &Caller, model: &str, number: i64) -> Result<Version, ApiError> {
        caller.require(Permission::Read)?;
        load_version(&mut *self.conn().await?, model, number).await
    }

    async fn version_files(&self, caller: &Caller, model: &str, number: i64) -> Result<VersionFiles, ApiError> {
        let mut conn = self.conn().await?;
        require_fetch(&mut conn, caller, model, number).await?;
        let version = load_version(&mut conn, model, number).await?;
        let Some(root) = version.artifact_root else {
            return Ok(VersionFiles {
                artifact_uri: version.artifact_uri,
                artifact_digest: version.artifact_digest,
                digest_computed_by_server: false,
                files: Vec::new(),
            });
        };
        let files = crate::artifacts::files_under(&mut conn, &format!("{root}/")).await?;
        Ok(VersionFiles {
            artifact_uri: format!("mlflow-artifacts:/{root}"),
            artifact_digest: version.artifact_digest,
            digest_computed_by_server: true,
            files: files
                .into_iter()
                .map(|f| VersionFile { path: f.path[root.len() + 1..].to_string(), size: f.size, sha256: f.sha256 })
                .collect(),
        })
    }

    async fn update_version(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        patch: VersionPatch,
    ) -> Result<Version, ApiError> {
        caller.require(Permission::EditVersions)?;
        patch.validate()?;
        let mut tx = self.begin_write().await?;
        let current = load_version(&mut tx, model, number).await?;
        let description = patch.description.unwrap_or_else(|| current.description.clone());
        let tags = patch.tags.unwrap_or_else(|| current.tags.clone());
        let digest = match (patch.artifact_digest, &current.artifact_digest) {
            (None, current) => current.clone(),
            (Some(new), None) => Some(validate::digest("artifact_digest", &new)?),
            (Some(new), Some(old)) if validate::digest("artifact_digest", &new)? == *old => Some(old.clone()),
            (Some(_), Some(old)) => {
                return Err(ApiError::conflict(format!(
                    "artifact_digest: version {number} already has digest {old}, and a digest is never changed"
                ))
                .with_field("artifact_digest"));
            }
        };
        sqlx::query(
            "UPDATE versions SET description = $1, tags = $2, artifact_digest = $5 \
             WHERE model_id = (SELECT id FROM models WHERE name = $3) AND number = $4",
        )
        .bind(&description)
        .bind(to_json(&tags))
        .bind(model)
        .bind(number)
        .bind(&digest)
        .execute(&mut *tx)
        .await?;
        let updated = load_version(&mut tx, model, number).await?;
        let change =
            Change::new(AuditAction::VersionUpdate, Target::version(model, number)).before(&current).after(&updated);
        tx.commit(caller, change).await?;
        Ok(updated)
    }

    async fn quarantine_version(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        input: QuarantineInput,
    ) -> Result<Version, ApiError> {
        caller.require(Permission::Quarantine)?;
        input.validate()?;
        let mut tx = self.begin_write().await?;
        let current = load_version(&mut tx, model, number).await?;
        if current.quarantine.is_some() {
            return Err(ApiError::conflict(format!("version {number} is already quarantined")));
        }
        set_quarantine(&mut tx, model, number, Some((&input.reason, self.clock.now_ms(), &caller.actor().name)))
            .await?;
        let updated = load_version(&mut tx, model, number).await?;
        let change = Change::new(AuditAction::VersionQuarantine, Target::version(model, number))
            .before(&current)
            .after(&updated)
            .reason(&input.reason);
        tx.commit(caller, change).await?;
        Ok(updated)
    }

    async fn release_version(&self, caller: &Caller, model: &str, number: i64) -> Result<Version, ApiError> {
        caller.require(Permission::Quarantine)?;
        let mut tx = self.begin_write().await?;
        let current = load_version(&mut tx, model, number).await?;
        if current.quarantine.is_none() {
            return Err(ApiError::conflict(format!("version {number} is not quarantined")));
        }
        set_quarantine(&mut tx, model, number, None).await?;
        let updated = load_version(&mut tx, model, number).await?;
        let change =
            Change::new(AuditAction::VersionRelease, Target::version(model, number)).before(&current).after(&updated);
        tx.commit(caller, change).await?;
        Ok(updated)
    }
}

impl Store {
    /// Registers a version with the files of `upload`, which the registry then holds: its artifact
    /// URI is theirs and its digest the server's over them (a digest in `input` must agree).
    /// Nothing is kept when the registration fails.
    pub async fn register_uploaded(
        &self,
        caller: &Caller,
        model: &str,
        input: NewVersion,
        upload: Upload,
    ) -> Result<Version, ApiError> {
        let registered = self.register_upload_once(caller, model, input, &upload).await;
        if registered.is_err() {
            self.discard_upload(upload).await;
        }
        registered
    }

    async fn register_upload_once(
        &self,
        caller: &Caller,
        model: &str,
        mut input: NewVersion,
        upload: &Upload,
    ) -> Result<Version, ApiError> {
        caller.require(Permission::RegisterVersions)?;
        let digest = upload.digest().ok_or_else(|| ApiError::invalid("file", "send at least one file"))?;
        if let Some(given) = &input.artifact_digest
            && validate::digest("artifact_digest", given)? != digest
        {
            return Err(ApiError::invalid(
                "artifact_digest",
                format!(
                    "{given} disagrees with {digest}, the digest the server computed over the {} uploaded file(s)",
                    upload.files.len()
                ),
            ));
        }
        input.artifact_uri = format!("mlflow-artifacts:/{}", upload.root);
        input.artifact_digest = Some(digest);
        let input = input.validated()?;
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        record_upload(&mut tx, upload, now, &caller.actor().name).await?;
        let (version, stored) =
            insert_version(&mut tx, &self.audit, caller, model, input, Some(upload.root.clone()), now).await?;
        let change = Change::new(AuditAction::VersionRegister, Target::version(model, version.number)).after(&version);
        tx.commit(caller, change).await?;
        self.metrics_stored(model, stored).await;
        Ok(version)
    }

    /// Deletes a version that was never live, nor named by a rollback request (the deployment
    /// history and the audit trail keep referring to those): its metric series and plain aliases
    /// go with it; its number is never given again.
    pub async fn delete_version(&self, caller: &Caller, model: &str, number: i64) -> Result<Version, ApiError> {
        caller.require(Permission::RegisterVersions)?;
        let mut tx = self.begin_write().await?;
        let (model_id, version_id) = crate::metrics::version_ids(&mut tx, model, number).await?;
        sqlx::query("UPDATE models SET updated_at = $2 WHERE id = $1")
            .bind(model_id)
            .bind(self.clock.now_ms())
            .execute(&mut *tx)
            .await?;
        let current = load_version(&mut tx, model, number).await?;
        let (deployed, requested): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM deployment_history WHERE model_id = $1 AND (to_version = $2 OR from_version = $2)), \
                    (SELECT COUNT(*) FROM rollback_requests WHERE model_id = $1 AND (to_version = $2 OR from_version = $2))",
        )
        .bind(model_id)
        .bind(number)
        .fetch_one(&mut *tx)
        .await?;
        if !current.live_in.is_empty() || deployed > 0 || requested > 0 {
            return Err(ApiError::conflict(format!(
                "version {number} of model '{model}' has been live or named by a rollback request \
                 ({deployed} deployment(s), {requested} request(s)): the deployment history and the audit \
                 trail refer to it, so it is kept; quarantine it to keep it from being deployed"
            )));
        }
        crate::metrics::forget_version(&mut tx, version_id).await?;
        sqlx::query("DELETE FROM model_aliases WHERE model_id = $1 AND version_number = $2")
            .bind(model_id)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM versions WHERE id = $1").bind(version_id).execute(&mut *tx).await?;
        let change = Change::new(AuditAction::VersionDelete, Target::version(model, number)).before(&current);
        tx.commit(caller, change).await?;
        Ok(current)
    }
}

/// Sets (reason, time, actor) or clears the quarantine of a version.
async fn set_quarantine(
    conn: &mut AnyConnection,
    model: &str,
    number: i64,
    quarantine: Option<(&str, i64, &str)>,
) -> Result<(), ApiError> {
    let (reason, at, by) = match quarantine {
        Some((r, at, by)) => (Some(r), Some(at), Some(by)),
        None => (None, None, None),
    };
    sqlx::query(
        "UPDATE versions SET quarantine_reason = $1, quarantined_at = $2, quarantined_by = $3 \
         WHERE model_id = (SELECT id FROM models WHERE name = $4) AND number = $5",
    )
    .bind(reason)
    .bind(at)
    .bind(by)
    .bind(model)
    .bind(number)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// One of a version's files from the registry's store, streamed (to readers, and to agents
    /// while the version is live in one of their environments).
    pub async fn open_version_file(
        &self,
        caller: &Caller,
        model: &str,
        number: i64,
        path: &str,
    ) -> Result<(StoredFile, BoxStream<'static, Result<Bytes, object_store::Error>>), ApiError> {
        let mut conn = self.conn().await?;
        require_fetch(&mut conn, caller, model, number).await?;
        let version = load_version(&mut conn, model, number).await?;
        drop(conn);
        let root = version.artifact_root.ok_or_else(|| {
            ApiError::not_found(format!(
                "version {number} of model '{model}' keeps its files elsewhere ({})",
                version.artifact_uri
            ))
        })?;
        let path = ArtifactPath::parse("path", &format!("{root}/{}", path.trim_start_matches('/')))?;
        self.open_recorded(&path).await
    }
}
