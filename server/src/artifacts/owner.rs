//! Whose files a path holds — a run's (`<experiment>/<run>/artifacts/…`) or a logged model's
//! (`<experiment>/models/<model id>/artifacts/…`) — and whether they may still change: a logged
//! model's only while it is pending, and never the files a registered version was made from.

use app::error::ApiError;
use sqlx::AnyConnection;

use super::ArtifactPath;
use crate::audit::Target;

/// A logged model whose files may still be written.
pub const PENDING: &str = "LOGGED_MODEL_PENDING";

/// The owner of an artifact path.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner {
    Run { experiment: String, id: String },
    LoggedModel { experiment: String, id: String },
}

impl Owner {
    /// The owner of a path inside (or naming) an artifact root.
    pub fn of(path: &ArtifactPath) -> Result<Self, ApiError> {
        Self::with_depth(path).map(|(owner, _)| owner)
    }

    /// The owner of a file inside an artifact root (the root itself is not a file).
    pub fn of_file(path: &ArtifactPath) -> Result<Self, ApiError> {
        let (owner, root_depth) = Self::with_depth(path)?;
        if path.segments().count() <= root_depth {
            return Err(ApiError::invalid("path", format!("`{path}` is an artifact root: name a file inside it")));
        }
        Ok(owner)
    }

    fn with_depth(path: &ArtifactPath) -> Result<(Self, usize), ApiError> {
        let segments: Vec<&str> = path.segments().collect();
        match segments.as_slice() {
            [experiment, "models", id, "artifacts", ..] => {
                Ok((Owner::LoggedModel { experiment: experiment.to_string(), id: id.to_string() }, 4))
            }
            [experiment, id, "artifacts", ..] => {
                Ok((Owner::Run { experiment: experiment.to_string(), id: id.to_string() }, 3))
            }
            _ => Err(ApiError::invalid(
                "path",
                format!(
                    "`{path}` is outside every artifact root: write under <experiment id>/<run id>/artifacts/ \
                     or <experiment id>/models/<model id>/artifacts/"
                ),
            )),
        }
    }

    /// The audit target a change of the owner's files is recorded against.
    pub fn target(&self) -> Target {
        match self {
            Owner::Run { id, .. } => Target::run(id),
            Owner::LoggedModel { id, .. } => Target::logged_model(id),
        }
    }

    /// Locks the owner's row until the caller's write ends, so a change of its files and a change
    /// of whether they may change (a logged model finalized, a version registered) come one after
    /// the other.
    pub async fn lock(&self, conn: &mut AnyConnection) -> Result<(), ApiError> {
        let (table, id) = match self {
            Owner::Run { id, .. } => ("mlflow_runs", id),
            Owner::LoggedModel { id, .. } => ("logged_models", id),
        };
        sqlx::query(&format!("UPDATE {table} SET status = status WHERE id = $1")).bind(id).execute(conn).await?;
        Ok(())
    }

    /// Refuses a change at `path` unless the owner exists in its experiment and its files there may
    /// still change.
    pub async fn check_writable(&self, conn: &mut AnyConnection, path: &ArtifactPath) -> Result<(), ApiError> {
        match self {
            Owner::Run { experiment, id } => {
                let found: Option<(i64,)> = sqlx::query_as("SELECT experiment_id FROM mlflow_runs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if !matches!(found, Some((e,)) if e.to_string() == *experiment) {
                    return Err(ApiError::not_found(format!("no run {id} in experiment {experiment}")));
                }
            }
            Owner::LoggedModel { experiment, id } => {
                let found: Option<(i64, String)> = sqlx::query_as(
                    "SELECT experiment_id, status FROM logged_models WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                match found {
                    Some((e, status)) if e.to_string() == *experiment => {
                        if status != PENDING {
                            return Err(ApiError::conflict(format!(
                                "logged model {id} is finalized ({status}): its files are fixed; log a new model"
                            )));
                        }
                    }
                    _ => return Err(ApiError::not_found(format!("no logged model {id} in experiment {experiment}"))),
                }
            }
        }
        registered_from(conn, path).await
    }
}

/// Refuses a change at `path` when it is in (or holds) the files a registered version was made from.
async fn registered_from(conn: &mut AnyConnection, path: &ArtifactPath) -> Result<(), ApiError> {
    let segments: Vec<&str> = path.segments().collect();
    let ancestors: Vec<String> = (1..=segments.len()).map(|n| segments[..n].join("/")).collect();
    let placeholders: Vec<String> = (3..ancestors.len() + 3).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT m.name, v.number, v.artifact_root FROM versions v JOIN models m ON m.id = v.model_id \
         WHERE (v.artifact_root > $1 AND v.artifact_root < $2) OR v.artifact_root IN ({}) LIMIT 1",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, (String, i64, String)>(&sql).bind(format!("{path}/")).bind(format!("{path}0"));
    for ancestor in &ancestors {
        query = query.bind(ancestor);
    }
    match query.fetch_optional(conn).await? {
        None => Ok(()),
        Some((model, number, root)) => Err(ApiError::conflict(format!(
            "`{path}` holds files of version {number} of model '{model}' (registered from {root}): \
             a registered version's files never change"
        ))),
    }
}
