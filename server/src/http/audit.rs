//! REST endpoints for the audit log: search, one entry, streamed export, integrity, checkpoints
//! and the public keys an outside auditor verifies exports with.

use std::sync::{Arc, Mutex};

use app::backend::AuditTrail;
use app::domain::*;
use app::error::{ApiError, ErrorBody, ErrorCode};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::audit::chain::{canonical_entry, entry_time};
use crate::audit::offline::{EXPORT_FORMAT, entry_line, subtree_line};
use crate::jobs::{self, Progress};
use crate::store::Store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(entry))
        .routes(routes!(export))
        .routes(routes!(status))
        .routes(routes!(verify))
        .routes(routes!(job))
        .routes(routes!(start_export))
        .routes(routes!(export_file))
        .routes(routes!(public_key))
        .routes(routes!(list_checkpoints, sign_checkpoint))
        .routes(routes!(latest_checkpoint))
}

/// Search the audit log, newest first; page with `before` = the previous page's `next_before`.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn search(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(s.store.search_audit(&caller, query).await?))
}

/// One audit entry by sequence number.
#[utoipa::path(get, path = "/api/v1/audit/{seq}", tag = "audit",
    params(("seq" = i64, Path, description = "Sequence number")),
    responses((status = 200, body = AuditEntry), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn entry(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(seq): ApiPath<String>,
) -> Result<Json<AuditEntry>, ApiError> {
    let seq = seq.parse::<i64>().map_err(|_| ApiError::invalid("seq", format!("{seq:?} is not a sequence number")))?;
    Ok(Json(s.store.audit_entry(&caller, seq).await?))
}

/// How an export is written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum ExportFormat {
    /// One JSON object per line: a header, the entries (`{"entry": <RFC 8785 canonical JSON>,
    /// "hash": …}`), then the checkpoints covering them. `modelgate audit verify` checks this format.
    #[default]
    Jsonl,
    /// One row per entry, then one per checkpoint (column `record` tells them apart).
    Csv,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ExportParams {
    /// `jsonl` (default) or `csv`.
    format: Option<ExportFormat>,
    /// The size of a checkpoint you kept (e.g. from `/api/v1/audit/checkpoints/latest`): the
    /// subtree hashes of a filtered export then never span it, so the export proves it too.
    checkpoint: Option<i64>,
}

/// Export every entry matching the filters (oldest first), streamed, followed by every signed
/// checkpoint up to the head (one is signed there first) and, for the entries left out, the
/// Merkle subtree hashes that prove each exported entry's place in the signed chain.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportParams, AuditQuery),
    responses((status = 200, description = "JSONL or CSV", content_type = "application/x-ndjson"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(params): ApiQuery<ExportParams>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let export = Export::prepare(&s.store, &caller, params, query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, export.content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", export.name)),
        ],
        Body::from_stream(export.body),
    )
        .into_response())
}

/// Body of `POST /api/v1/audit/exports`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct ExportRequest {
    /// `jsonl` (default) or `csv`.
    format: Option<ExportFormat>,
    /// As for `GET /api/v1/audit/export`.
    checkpoint: Option<i64>,
    /// The entries to export, as the search's filters (`before` and `limit` are ignored).
    filters: AuditQuery,
}

/// Write an export (as `GET /api/v1/audit/export` streams it) into storage in the background, to
/// download from `GET /api/v1/audit/jobs/{id}/file` once done; the job's `done` of `total` is the
/// position in the chain it has reached. One per user at a time (asking again while one runs
/// answers it); a newer export of the same user replaces the file of the one before.
#[utoipa::path(post, path = "/api/v1/audit/exports", tag = "audit", request_body = ExportRequest,
    responses((status = 202, body = Job), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_export(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiJson(request): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    let params = ExportParams { format: request.format, checkpoint: request.checkpoint };
    let export = Export::prepare(&s.store, &caller, params, request.filters).await?;
    let store = s.store.clone();
    let scope = caller.username.clone();
    let job = jobs::start(&s.store, JobKind::AuditExport, &caller.username, &caller.actor().name, move |progress| {
        export.write(store, scope, progress)
    })
    .await?;
    let location = format!("/api/v1/audit/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response())
}

/// The file an export job wrote.
#[utoipa::path(get, path = "/api/v1/audit/jobs/{id}/file", tag = "audit",
    params(("id" = i64, Path, description = "The export job's id")),
    responses((status = 200, description = "JSONL or CSV", content_type = "application/x-ndjson"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn export_file(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let job = s.store.audit_job(&caller, job_id(&id)?).await?;
    if job.kind != JobKind::AuditExport {
        return Err(ApiError::not_found(format!("job {} wrote no file", job.id)));
    }
    let file: ExportFile = match (job.state, job.result.map(serde_json::from_value)) {
        (JobState::Done, Some(Ok(file))) => file,
        (JobState::Running, _) => return Err(ApiError::conflict(format!("export {} is still being written", job.id))),
        _ => return Err(ApiError::conflict(format!("export {} failed: {}", job.id, job.error.unwrap_or_default()))),
    };
    let bytes = s.store.kept_file(&export_key(job.id)).await.map_err(|e| match e.code {
        ErrorCode::NotFound => {
            ApiError::not_found(format!("export {} was replaced by a newer one of its requester", job.id))
        }
        _ => e,
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file.name)),
            (header::CONTENT_LENGTH, file.size.to_string()),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}

/// Where storage keeps the file of export job `id`.
fn export_key(id: i64) -> String {
    format!("audit-exports/{id}")
}

/// An export ready to stream: its body, file name and type, the chain's size it covers, and the
/// entries streamed so far (its progress).
struct Export {
    body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    name: String,
    content_type: &'static str,
    size: i64,
    streamed: Arc<Mutex<Vec<i64>>>,
}

impl Export {
    /// Checks the caller and the filters, signs the checkpoint that ends the export, and lines up
    /// its body.
    async fn prepare(
        store: &Arc<Store>,
        caller: &Caller,
        params: ExportParams,
        query: AuditQuery,
    ) -> Result<Self, ApiError> {
        caller.require(Permission::Audit)?;
        let format = params.format.unwrap_or_default();
        // The header says what was asked for; the verifier proves what the file holds, not this.
        let header_line = json!({
            EXPORT_FORMAT: 2,
            "exported_at": entry_time(store.clock.now_ms()),
            "exported_by": caller.actor().name,
            "filters": query,
        });
        // Sign the checkpoint that ends the export before streaming, so the body only reads (a
        // client that hangs up mid-download then leaves no write half done).
        // A chain the signer refuses to sign (cut back or rewritten) is still exported, with the
        // checkpoints signed before: the verifier then names where it went wrong.
        let (size, _) = store.head().await?;
        let signed = match store.checkpoint_head().await {
            Err(e) if e.code == ErrorCode::Conflict => {
                tracing::error!(error = %e.message, "exporting an audit chain the signer refuses to sign");
                store.recent_checkpoints(1).await?.pop()
            }
            signed => signed?,
        };
        let size = signed.as_ref().map_or(size, |c| c.seq.max(size));
        let entries = store.audit_export(query, size).await?;
        let streamed: Arc<Mutex<Vec<i64>>> = Arc::default();
        let seen = streamed.clone();
        let mut csv_header = matches!(format, ExportFormat::Csv);
        let head = futures::stream::iter([match format {
            ExportFormat::Jsonl => Ok(Bytes::from(format!("{header_line}\n"))),
            ExportFormat::Csv => Ok(Bytes::new()),
        }]);
        let body = entries.map_ok(move |e| {
            if let Ok(mut seen) = seen.lock() {
                seen.push(e.seq);
            }
            let mut out = Vec::new();
            if std::mem::take(&mut csv_header) {
                out.extend(csv_row(&CSV_COLUMNS.map(str::to_string)));
            }
            out.extend(encode_entry(format, &e));
            Bytes::from(out)
        });
        let (kept, proving) = (streamed.clone(), store.clone());
        let tail = futures::stream::once(async move {
            let kept = kept.lock().map_err(|_| ApiError::internal())?.clone();
            proof(&proving, &kept, signed, format, params.checkpoint).await
        });
        let body = head.chain(body).chain(tail).map_err(|e: ApiError| std::io::Error::other(e.message)).boxed();
        let (content_type, extension) = match format {
            ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
            ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        };
        let name = format!("modelgate-audit-{}.{extension}", store.clock.now_ms());
        Ok(Export { body, name, content_type, size, streamed })
    }

    /// Writes the export into storage as job `progress`, reporting the position in the chain it
    /// has reached; once written, removes the file of `scope`'s export before.
    async fn write(self, store: Arc<Store>, scope: String, mut progress: Progress) -> Result<Value, ApiError> {
        let Export { body, name, content_type, size, streamed } = self;
        let (id, key) = (progress.job(), export_key(progress.job()));
        let writing = store.keep_file(&key, body);
        let reporting = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let reached = streamed.lock().ok().and_then(|s| s.last().copied()).unwrap_or(0);
                if let Err(e) = progress.report(reached, size).await {
                    return e;
                }
            }
        };
        let file = tokio::select! {
            file = writing => file?,
            e = reporting => return Err(e),
        };
        let entries = streamed.lock().map(|s| s.len() as i64).unwrap_or(0);
        let mut conn = store.conn().await?;
        if let Some(before) = jobs::newest_done_before(&mut conn, JobKind::AuditExport, &scope, id).await? {
            store.drop_kept_file(&export_key(before)).await;
        }
        let file =
            ExportFile { name, content_type: content_type.into(), size: file.size, sha256: file.sha256, entries };
        serde_json::to_value(file).map_err(|_| ApiError::internal())
    }
}

/// What follows the entries: the checkpoints up to `signed` (the one signed for this export) —
/// for CSV those from the first exported entry on — and, in JSONL, the subtree hashes standing
/// in for the entries left out.
async fn proof(
    store: &Store,
    kept: &[i64],
    signed: Option<Checkpoint>,
    format: ExportFormat,
    also_cut: Option<i64>,
) -> Result<Bytes, ApiError> {
    let (Some(signed), Some(first)) = (signed, kept.first()) else {
        return Ok(Bytes::new());
    };
    let from = if matches!(format, ExportFormat::Csv) { *first } else { 1 };
    let mut checkpoints = store.checkpoints_between(from, signed.seq).await?;
    if checkpoints.last() != Some(&signed) {
        checkpoints.push(signed.clone());
    }
    let mut out = Vec::new();
    for c in checkpoints {
        match format {
            ExportFormat::Jsonl => json_line(&mut out, &json!({ "checkpoint": c })),
            ExportFormat::Csv => {
                let mut row = vec![String::new(); CSV_COLUMNS.len()];
                row[0] = "checkpoint".into();
                row[1] = c.seq.to_string();
                row[2] = c.signed_at;
                row[17] = c.hash;
                row[18] = c.key_id;
                row[19] = c.signature;
                out.extend(csv_row(&row));
            }
        }
    }
    if matches!(format, ExportFormat::Jsonl) {
        for subtree in store.audit_subtrees(kept, signed.seq, also_cut).await? {
            json_line(&mut out, &subtree_line(&subtree));
        }
    }
    Ok(Bytes::from(out))
}

fn json_line(out: &mut Vec<u8>, value: &serde_json::Value) {
    out.extend(serde_json::to_vec(value).unwrap_or_default());
    out.push(b'\n');
}

const CSV_COLUMNS: [&str; 20] = [
    "record",
    "seq",
    "at",
    "actor",
    "actor_user",
    "actor_token",
    "action",
    "target",
    "model",
    "version",
    "environment",
    "before",
    "after",
    "reason",
    "request_id",
    "client_addr",
    "prev_hash",
    "hash",
    "key_id",
    "signature",
];

fn csv_row(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(fields);
    writer.into_inner().unwrap_or_default()
}

fn encode_entry(format: ExportFormat, e: &AuditEntry) -> Vec<u8> {
    match format {
        ExportFormat::Jsonl => entry_line(&canonical_entry(e), &e.hash),
        ExportFormat::Csv => {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let state = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
            csv_row(&[
                "entry".into(),
                e.seq.to_string(),
                e.at.clone(),
                e.actor.clone(),
                text(&e.actor_user),
                text(&e.actor_token),
                e.action.clone(),
                e.target.clone(),
                text(&e.model),
                e.version.map(|v| v.to_string()).unwrap_or_default(),
                text(&e.environment),
                state(&e.before),
                state(&e.after),
                text(&e.reason),
                text(&e.request_id),
                text(&e.client_addr),
                e.prev_hash.clone(),
                e.hash.clone(),
                String::new(),
                String::new(),
            ])
        }
    }
}

/// The integrity panel: head of the chain, last verification, last checkpoint.
#[utoipa::path(get, path = "/api/v1/audit/status", tag = "audit",
    responses((status = 200, body = IntegrityStatus), (status = 403, body = ErrorBody)))]
async fn status(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<IntegrityStatus>, ApiError> {
    Ok(Json(s.store.audit_status(&caller).await?))
}

/// Start verifying the whole chain in the background (and signing a checkpoint at its head when
/// intact); while a verification runs, answers that one. Follow it at `Location`.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 202, body = Job), (status = 403, body = ErrorBody)))]
async fn verify(State(s): State<AppState>, Authenticated(caller): Authenticated) -> Result<Response, ApiError> {
    let job = s.store.verify_audit(&caller).await?;
    let location = format!("/api/v1/audit/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct JobWait {
    /// Seconds to wait, at most 30, for a running job to end before answering (default 0).
    wait: Option<u64>,
}

/// A job id from its path segment.
fn job_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| ApiError::invalid("id", format!("{id:?} is not a job id")))
}

/// The longest a client may wait for a job in one request.
const MAX_JOB_WAIT: u64 = 30;

/// A background job of the audit log (a verification): its progress, then its outcome (`result`
/// holds the verification once `state` is `done`).
#[utoipa::path(get, path = "/api/v1/audit/jobs/{id}", tag = "audit",
    params(("id" = i64, Path, description = "The job's id"), JobWait),
    responses((status = 200, body = Job), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn job(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<JobWait>,
) -> Result<Json<Job>, ApiError> {
    let id = job_id(&id)?;
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_JOB_WAIT {
        return Err(ApiError::invalid("wait", format!("wait at most {MAX_JOB_WAIT} seconds")));
    }
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    loop {
        let job = s.store.audit_job(&caller, id).await?;
        if job.state != JobState::Running || tokio::time::Instant::now() >= until {
            return Ok(Json(job));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The Ed25519 key that signs checkpoints, and earlier keys (public: auditors need no account).
#[utoipa::path(get, path = "/api/v1/audit/public-key", tag = "audit", responses((status = 200, body = PublicKeys)))]
async fn public_key(State(s): State<AppState>) -> Result<Json<PublicKeys>, ApiError> {
    Ok(Json(s.store.audit_public_keys().await?))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
struct CheckpointRange {
    /// Lowest sequence number (default 1).
    from: Option<i64>,
    /// Highest sequence number (default: the head).
    to: Option<i64>,
}

/// Signed checkpoints, oldest first, at most 1000 (public). The signature (Ed25519, base64)
/// covers the RFC 8785 canonical JSON of `{seq, hash, signed_at, key_id}`.
#[utoipa::path(get, path = "/api/v1/audit/checkpoints", tag = "audit", params(CheckpointRange),
    responses((status = 200, body = Vec<Checkpoint>), (status = 422, body = ErrorBody)))]
async fn list_checkpoints(
    State(s): State<AppState>,
    ApiQuery(range): ApiQuery<CheckpointRange>,
) -> Result<Json<Vec<Checkpoint>>, ApiError> {
    let mut checkpoints = s.store.checkpoints_between(range.from.unwrap_or(1), range.to.unwrap_or(i64::MAX)).await?;
    checkpoints.truncate(1000);
    Ok(Json(checkpoints))
}

/// The newest checkpoint this server signed, as it keeps it outside the database (public): a
/// monitor that keeps it can tell if the log is ever cut back, and `modelgate audit verify
/// --checkpoint` proves a later export still contains it.
#[utoipa::path(get, path = "/api/v1/audit/checkpoints/latest", tag = "audit",
    responses((status = 200, body = Checkpoint), (status = 404, body = ErrorBody)))]
async fn latest_checkpoint(State(s): State<AppState>) -> Result<Json<Checkpoint>, ApiError> {
    s.store.audit.witness.latest().map(Json).ok_or_else(|| ApiError::not_found("no checkpoint signed yet"))
}

/// Sign a checkpoint at the head of the chain now.
#[utoipa::path(post, path = "/api/v1/audit/checkpoints", tag = "audit",
    responses((status = 201, body = Checkpoint), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sign_checkpoint(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<(StatusCode, Json<Checkpoint>), ApiError> {
    caller.require(Permission::Audit)?;
    let checkpoint = s.store.checkpoint_head().await?.ok_or_else(|| ApiError::conflict("the audit log is empty"))?;
    Ok((StatusCode::CREATED, Json(checkpoint)))
}
