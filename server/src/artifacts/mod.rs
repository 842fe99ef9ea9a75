//! Artifacts: the files of MLflow runs and logged models, kept in object storage (a directory under
//! the data dir, or an S3-compatible bucket) with the size and sha256 the server computed as each
//! file streamed in.
//!
//! Each upload's bytes go to a key of their own; then one transaction records the file (its row
//! pointing at that key) with its audit entry. A listing or a download only ever sees recorded
//! files, so an upload that broke off or failed to record leaves nothing anyone can read, and a
//! replaced file's old bytes stay readable until the switch commits (then they are removed).

pub mod owner;
pub mod path;
pub mod tree;

use std::sync::Arc;

use app::domain::{AuditAction, Caller, Permission};
use app::error::ApiError;
use futures::TryStreamExt;
use futures::stream::{BoxStream, Stream, StreamExt};
use hyper::body::Bytes;
use object_store::{GetResultPayload, ObjectStore, WriteMultipart};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use tokio_util::io::ReaderStream;

pub use owner::Owner;
pub use path::ArtifactPath;

use crate::audit::Change;
use crate::store::Store;

/// A recorded file's columns, as [`StoredFile`] reads them.
const FILE_COLUMNS: &str = "SELECT path, size, sha256, object_key FROM artifacts";

/// Parts of one upload in flight to storage at once (each up to 5 MiB): memory stays flat however
/// large the file.
const UPLOAD_PARTS_IN_FLIGHT: usize = 4;

/// Bytes read at once from a file of the directory store for a download.
const FILE_READ: usize = 1 << 20;

/// Where artifacts are kept: the store's part.
pub struct Artifacts {
    storage: Arc<dyn ObjectStore>,
}

impl Artifacts {
    /// Artifacts under `location`: `s3://bucket[/prefix]` (credentials, region and endpoint from the
    /// standard `AWS_*` variables) or a directory, created if missing.
    pub fn open(location: &str) -> anyhow::Result<Self> {
        let storage: Arc<dyn ObjectStore> = if let Some(bucket_and_prefix) = location.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix.split_once('/').unwrap_or((bucket_and_prefix, ""));
            let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
            match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
            }
        } else {
            std::fs::create_dir_all(location)?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(location)?)
        };
        Ok(Self { storage })
    }

    /// Streams `body` into storage under a key of its own, hashing it as it goes: the file that
    /// would be at `path`, which nothing points at yet.
    async fn store<E: std::fmt::Display>(
        &self,
        path: &ArtifactPath,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<StoredFile, ApiError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.store_at(path.as_str(), format!("objects/{}/{id}", &id[..2]), body).await
    }

    /// Streams `body` into storage under `key`, hashing it as it goes; `path` names it in errors.
    async fn store_at<E: std::fmt::Display>(
        &self,
        path: &str,
        key: String,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<StoredFile, ApiError> {
        let location = object_store::path::Path::from(key.as_str());
        let mut upload = WriteMultipart::new(self.storage.put_multipart(&location).await.map_err(storage_error)?);
        let (mut hasher, mut size) = (Sha256::new(), 0i64);
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = upload.abort().await;
                    return Err(ApiError::bad_request(format!("the upload of {path} broke off: {e}")));
                }
            };
            hasher.update(&chunk);
            size += chunk.len() as i64;
            if let Err(e) = upload.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await {
                let _ = upload.abort().await;
                return Err(storage_error(e));
            }
            upload.put(chunk);
        }
        upload.finish().await.map_err(storage_error)?;
        Ok(StoredFile { path: path.to_string(), size, sha256: hex::encode(hasher.finalize()), object_key: key })
    }

    /// The bytes under `key`, streamed.
    async fn read(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, ApiError> {
        let got = self.storage.get(&object_store::path::Path::from(key)).await.map_err(storage_error)?;
        Ok(match got.payload {
            // A file of the directory store, read a MiB at a time: the object store's own reads of
            // 8 KiB made a gigabyte 131,072 reads and body frames, and downloads a third as fast.
            GetResultPayload::File(file, _) => ReaderStream::with_capacity(tokio::fs::File::from_std(file), FILE_READ)
                .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })
                .boxed(),
            GetResultPayload::Stream(stream) => stream,
        })
    }

    /// Removes bytes no recorded file points at (any more); a failure only leaves garbage behind.
    async fn discard(&self, key: &str) {
        if let Err(e) = self.storage.delete(&object_store::path::Path::from(key)).await {
            tracing::warn!(key, error = %e, "removing unrecorded artifact bytes failed");
        }
    }
}

/// A recorded file: its path, size in bytes and sha256 (hex).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredFile {
    pub path: String,
    pub size: i64,
    pub sha256: String,
    /// Where its bytes are in storage.
    #[serde(skip)]
    pub object_key: String,
}

/// One entry of a directory listing: a file with its size, or a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedEntry {
    pub name: String,
    pub is_dir: bool,
    pub size: Option<i64>,
}

impl Store {
    fn artifacts(&self) -> Result<&Artifacts, ApiError> {
        self.part::<Artifacts>().ok_or_else(|| {
            tracing::error!("the store was built without an artifact store");
            ApiError::internal()
        })
    }

    /// Streams `body` into storage, hashing it as it goes, then records it as the file at `path`
    /// (inside a run's artifact root or a pending logged model's) and audits the upload.
    pub async fn put_artifact<E: std::fmt::Display>(
        &self,
        caller: &Caller,
        path: &ArtifactPath,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<StoredFile, ApiError> {
        caller.require(Permission::PushMetrics)?;
        let owner = Owner::of_file(path)?;
        owner.check_writable(&mut *self.conn().await?, path).await?;
        let artifacts = self.artifacts()?;
        let stored = artifacts.store(path, body).await?;
        match self.record_artifact(caller, &owner, path, &stored).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    artifacts.discard(&old).await;
                }
                Ok(stored)
            }
            Err(e) => {
                artifacts.discard(&stored.object_key).await;
                Err(e)
            }
        }
    }

    /// Records `stored` as the file at `path` (the owner checked again inside the write); returns
    /// the storage key of the bytes it replaced.
    async fn record_artifact(
        &self,
        caller: &Caller,
        owner: &Owner,
        path: &ArtifactPath,
        stored: &StoredFile,
    ) -> Result<Option<String>, ApiError> {
        let mut tx = self.begin_write().await?;
        owner.lock(&mut tx).await?;
        owner.check_writable(&mut tx, path).await?;
        let replaced = recorded_file(&mut tx, path).await?.map(|f| f.object_key);
        sqlx::query(
            "INSERT INTO artifacts (path, size, sha256, object_key, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (path) DO UPDATE SET size = excluded.size, \
             sha256 = excluded.sha256, object_key = excluded.object_key, created_at = excluded.created_at, \
             created_by = excluded.created_by",
        )
        .bind(&stored.path)
        .bind(stored.size)
        .bind(&stored.sha256)
        .bind(&stored.object_key)
        .bind(self.clock.now_ms())
        .bind(caller.actor().name)
        .execute(&mut *tx)
        .await?;
        tx.commit(caller, Change::new(AuditAction::ArtifactUpload, owner.target()).after(stored)).await?;
        Ok(replaced)
    }

    /// A recorded file and its bytes, streamed from storage.
    pub async fn open_artifact(
        &self,
        caller: &Caller,
        path: &ArtifactPath,
    ) -> Result<(StoredFile, BoxStream<'static, Result<Bytes, object_store::Error>>), ApiError> {
        caller.require(Permission::Read)?;
        self.open_recorded(path).await
    }

    /// A recorded file and its bytes, for a caller already checked.
    pub(crate) async fn open_recorded(
        &self,
        path: &ArtifactPath,
    ) -> Result<(StoredFile, BoxStream<'static, Result<Bytes, object_store::Error>>), ApiError> {
        let file = recorded_file(&mut *self.conn().await?, path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no artifact at {path}")))?;
        let bytes = self.artifacts()?.read(&file.object_key).await?;
        Ok((file, bytes))
    }

    /// Streams `body` into storage under `key`, outside every artifact path (an audit export's
    /// file, which its job names): its size and sha256.
    pub async fn keep_file<E: std::fmt::Display>(
        &self,
        key: &str,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<StoredFile, ApiError> {
        self.artifacts()?.store_at(key, key.to_string(), body).await
    }

    /// The bytes kept under `key` by [`Store::keep_file`].
    pub async fn kept_file(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, object_store::Error>>, ApiError> {
        self.artifacts()?.read(key).await
    }

    /// Removes the bytes kept under `key`; a failure only leaves garbage behind.
    pub async fn drop_kept_file(&self, key: &str) {
        if let Ok(artifacts) = self.artifacts() {
            artifacts.discard(key).await;
        }
    }

    /// The files and directories directly inside `dir` (the root when `None`), by name.
    pub async fn list_artifacts(
        &self,
        caller: &Caller,
        dir: Option<&ArtifactPath>,
    ) -> Result<Vec<ListedEntry>, ApiError> {
        caller.require(Permission::Read)?;
        let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
        let files = files_under(&mut *self.conn().await?, &prefix).await?;
        let mut entries: Vec<ListedEntry> = Vec::new();
        for file in files {
            let rest = &file.path[prefix.len()..];
            let entry = match rest.split_once('/') {
                Some((name, _)) => ListedEntry { name: name.into(), is_dir: true, size: None },
                None => ListedEntry { name: rest.into(), is_dir: false, size: Some(file.size) },
            };
            if entries.last() != Some(&entry) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Deletes the file at `path`, or every file under it when it names a directory.
    pub async fn delete_artifacts(&self, caller: &Caller, path: &ArtifactPath) -> Result<Vec<StoredFile>, ApiError> {
        caller.require(Permission::PushMetrics)?;
        let owner = Owner::of(path)?;
        let mut tx = self.begin_write().await?;
        owner.lock(&mut tx).await?;
        owner.check_writable(&mut tx, path).await?;
        let mut doomed = files_under(&mut tx, &format!("{path}/")).await?;
        doomed.extend(recorded_file(&mut tx, path).await?);
        if doomed.is_empty() {
            return Err(ApiError::not_found(format!("no artifact at {path}")));
        }
        for file in &doomed {
            sqlx::query("DELETE FROM artifacts WHERE path = $1").bind(&file.path).execute(&mut *tx).await?;
        }
        tx.commit(caller, Change::new(AuditAction::ArtifactDelete, owner.target()).before(&doomed)).await?;
        let artifacts = self.artifacts()?;
        for file in &doomed {
            artifacts.discard(&file.object_key).await;
        }
        Ok(doomed)
    }
}

/// The files of a version being registered with them: streamed into storage, not recorded yet.
/// [`record_upload`] records them in the registration's write; [`Store::discard_upload`] removes
/// them when the registration fails.
pub struct Upload {
    /// Their directory: `registry/<upload id>`, which the artifact proxy never writes.
    pub root: String,
    pub files: Vec<StoredFile>,
}

impl Upload {
    /// The digest over the files (see [`tree`]); none when there is no file.
    pub fn digest(&self) -> Option<String> {
        (!self.files.is_empty()).then(|| tree::digest(&self.root, &self.files))
    }
}

impl Store {
    /// A new, empty upload for a caller who may register versions.
    pub fn start_upload(&self, caller: &Caller) -> Result<Upload, ApiError> {
        caller.require(Permission::RegisterVersions)?;
        Ok(Upload { root: format!("registry/{}", uuid::Uuid::new_v4().simple()), files: Vec::new() })
    }

    /// Streams one file of `upload` into storage; `name` is its path below the version's root.
    pub async fn upload_file<E: std::fmt::Display>(
        &self,
        upload: &mut Upload,
        name: &str,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<(), ApiError> {
        ArtifactPath::parse("file", name)?;
        let path = ArtifactPath::parse("file", &format!("{}/{name}", upload.root))?;
        if upload.files.iter().any(|f| f.path == path.as_str()) {
            return Err(ApiError::invalid("file", format!("{name:?} is sent twice")));
        }
        let stored = self.artifacts()?.store(&path, body).await?;
        upload.files.push(stored);
        Ok(())
    }

    /// Removes an upload's bytes (its registration failed).
    pub async fn discard_upload(&self, upload: Upload) {
        if let Ok(artifacts) = self.artifacts() {
            for file in &upload.files {
                artifacts.discard(&file.object_key).await;
            }
        }
    }
}

/// Records an upload's files inside the caller's write.
pub(crate) async fn record_upload(
    conn: &mut AnyConnection,
    upload: &Upload,
    now: i64,
    actor: &str,
) -> Result<(), ApiError> {
    for file in &upload.files {
        sqlx::query(
            "INSERT INTO artifacts (path, size, sha256, object_key, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&file.path)
        .bind(file.size)
        .bind(&file.sha256)
        .bind(&file.object_key)
        .bind(now)
        .bind(actor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The recorded file at `path`, if any.
async fn recorded_file(conn: &mut AnyConnection, path: &ArtifactPath) -> Result<Option<StoredFile>, ApiError> {
    Ok(sqlx::query_as(&format!("{FILE_COLUMNS} WHERE path = $1")).bind(path.as_str()).fetch_optional(conn).await?)
}

/// The recorded files whose path starts with `prefix` (`""` or ending in `/`), in path order.
pub(crate) async fn files_under(conn: &mut AnyConnection, prefix: &str) -> Result<Vec<StoredFile>, ApiError> {
    // Every path under `prefix` sorts between `prefix` and `prefix` with its '/' raised to '0'.
    let end = format!("{}0", prefix.strip_suffix('/').unwrap_or(prefix));
    let files = if prefix.is_empty() {
        sqlx::query_as(&format!("{FILE_COLUMNS} ORDER BY path")).fetch_all(conn).await?
    } else {
        sqlx::query_as(&format!("{FILE_COLUMNS} WHERE path > $1 AND path < $2 ORDER BY path"))
            .bind(prefix)
            .bind(&end)
            .fetch_all(conn)
            .await?
    };
    Ok(files)
}

fn storage_error(e: object_store::Error) -> ApiError {
    match e {
        object_store::Error::NotFound { path, .. } => ApiError::not_found(format!("no artifact at {path}")),
        e => {
            tracing::error!(error = %e, "artifact storage failed");
            ApiError::internal()
        }
    }
}
