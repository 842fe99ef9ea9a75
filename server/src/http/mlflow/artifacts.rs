//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`): what the client calls for a
//! run's `mlflow-artifacts:/` URI — upload (PUT, streamed), download (GET, streamed), list, delete.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MlflowCaller, MlflowError, MlflowResult, Params};
use crate::artifacts::ArtifactPath;
use crate::http::extract::{drain, idle_bounded};
use crate::http::state::AppState;

#[derive(Deserialize)]
pub struct ListRequest {
    path: Option<String>,
}

/// `GET …/artifacts?path=dir`: the files (with sizes) and directories directly inside `dir`.
pub async fn list(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Params(req): Params<ListRequest>,
) -> MlflowResult<Value> {
    let dir = match req.path.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
        Some(p) => Some(ArtifactPath::parse("path", p)?),
        None => None,
    };
    let entries = s.store.list_artifacts(&caller, dir.as_ref()).await?;
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| match e.size {
            Some(size) => json!({ "path": e.name, "is_dir": false, "file_size": size }),
            None => json!({ "path": e.name, "is_dir": true }),
        })
        .collect();
    Ok(axum::Json(json!({ "files": files })))
}

/// `PUT …/artifacts/{path}`: the request body, streamed into the store; a refused upload's body
/// is drained (within bounds) so the client reads the refusal.
pub async fn upload(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(path): Path<String>,
    body: Body,
) -> MlflowResult<Value> {
    crate::http::to_completion(async move {
        let mut body = Box::pin(idle_bounded(body.into_data_stream()));
        let stored = match ArtifactPath::parse("path", &path) {
            Ok(path) => s.store.put_artifact(&caller, &path, &mut body).await,
            Err(e) => Err(e),
        };
        if stored.is_err() {
            drain(&mut body).await;
        }
        stored.map(|_| ())
    })
    .await?;
    Ok(axum::Json(json!({})))
}

/// `GET …/artifacts/{path}`: the file's bytes, streamed from the store.
pub async fn download(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(path): Path<String>,
) -> Result<Response, MlflowError> {
    let path = ArtifactPath::parse("path", &path)?;
    let (file, bytes) = s.store.open_artifact(&caller, &path).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, file.size.to_string()),
        (header::ETAG, format!("\"sha256:{}\"", file.sha256)),
    ];
    Ok((headers, Body::from_stream(bytes)).into_response())
}

/// `DELETE …/artifacts/{path}`: the file, or every file under the directory.
pub async fn delete(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Path(path): Path<String>,
) -> MlflowResult<Value> {
    let path = ArtifactPath::parse("path", &path)?;
    s.store.delete_artifacts(&caller, &path).await?;
    Ok(axum::Json(json!({})))
}
