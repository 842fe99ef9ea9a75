//! Fetching an assignment's files into a fresh directory — from Modelgate's artifact store
//! (`models:/<model>/<version>`), a directory or file (`file://`), or an S3 bucket (`s3://`) —
//! hashing each as it is written, and checking the digest the assignment names.

use std::path::{Component, Path};

use anyhow::{Context, bail};
use app::domain::{VersionFiles, percent_encoded};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Agent;
use crate::artifacts::tree::listing_digest;

/// Each fetched file: its path relative to the directory and its sha256 (hex).
pub type Fetched = Vec<(String, String)>;

/// Fetches the files `uri` names into `into` (an empty directory).
pub async fn fetch(agent: &Agent, uri: &str, version: i64, into: &Path) -> anyhow::Result<Fetched> {
    if let Some(rest) = uri.strip_prefix("models:/") {
        let model = rest.rsplit_once('/').map_or(rest, |(model, _)| model);
        from_registry(agent, model, version, into).await
    } else if let Some(path) = uri.strip_prefix("file://") {
        from_directory(Path::new(path), into).await
    } else if let Some(bucket_and_prefix) = uri.strip_prefix("s3://") {
        from_s3(bucket_and_prefix, into).await
    } else {
        bail!("cannot fetch {uri}: the agent reads models:/, file:// and s3:// artifacts")
    }
}

/// The digest the files make, when it is `expected`: their `sha256sum` listing's, or for one file
/// its own sha256.
pub fn digest_matching(files: &Fetched, expected: &str) -> Option<String> {
    let listing = listing_digest(files.iter().map(|(path, sha)| (path.as_str(), sha.as_str())));
    if listing == expected {
        return Some(listing);
    }
    match files.as_slice() {
        [(_, sha)] if format!("sha256:{sha}") == expected => Some(expected.to_string()),
        _ => None,
    }
}

/// A relative path that stays inside the directory.
fn inside(path: &str) -> anyhow::Result<&Path> {
    let relative = Path::new(path);
    if path.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("refusing the file path {path:?}: it would leave the version's directory");
    }
    Ok(relative)
}

/// Writes `body` to `into/path`, hashing it; its sha256 (hex).
async fn write_file<E>(
    into: &Path,
    path: &str,
    body: impl Stream<Item = Result<hyper::body::Bytes, E>>,
) -> anyhow::Result<String>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let target = into.join(inside(path)?);
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = tokio::fs::File::create(&target).await.with_context(|| format!("creating {}", target.display()))?;
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("fetching {path}"))?;
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.sync_all().await?;
    Ok(hex::encode(hasher.finalize()))
}

async fn from_registry(agent: &Agent, model: &str, version: i64, into: &Path) -> anyhow::Result<Fetched> {
    let base = format!("{}/api/v1/models/{}/versions/{version}/files", agent.server_url(), percent_encoded(model));
    let listing = agent.http.get(&base).bearer_auth(&agent.args.token).send().await?;
    if !listing.status().is_success() {
        bail!(
            "listing the files of {model} v{version}: {}: {}",
            listing.status(),
            listing.text().await.unwrap_or_default()
        );
    }
    let listing: VersionFiles = listing.json().await?;
    let mut fetched = Vec::with_capacity(listing.files.len());
    for file in listing.files {
        let encoded: Vec<String> = file.path.split('/').map(percent_encoded).collect();
        let response =
            agent.http.get(format!("{base}/{}", encoded.join("/"))).bearer_auth(&agent.args.token).send().await?;
        if !response.status().is_success() {
            bail!("fetching {}: {}", file.path, response.status());
        }
        let sha = write_file(into, &file.path, response.bytes_stream()).await?;
        fetched.push((file.path, sha));
    }
    Ok(fetched)
}

async fn from_directory(source: &Path, into: &Path) -> anyhow::Result<Fetched> {
    let metadata = tokio::fs::metadata(source).await.with_context(|| format!("reading {}", source.display()))?;
    let mut files = Vec::new();
    if metadata.is_file() {
        let name = source.file_name().and_then(|n| n.to_str()).context("a file without a name")?;
        files.push((source.to_path_buf(), name.to_string()));
    } else {
        let mut dirs = vec![source.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let mut entries = tokio::fs::read_dir(&dir).await?;
            while let Some(entry) = entries.next_entry().await? {
                let kind = entry.file_type().await?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file() {
                    let relative = entry.path().strip_prefix(source)?.to_string_lossy().replace('\\', "/");
                    files.push((entry.path(), relative));
                }
            }
        }
    }
    let mut fetched = Vec::with_capacity(files.len());
    for (path, relative) in files {
        let body = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::open(&path).await?, 1 << 20);
        fetched.push((relative.clone(), write_file(into, &relative, body).await?));
    }
    Ok(fetched)
}

async fn from_s3(bucket_and_prefix: &str, into: &Path) -> anyhow::Result<Fetched> {
    let (bucket, prefix) = bucket_and_prefix.split_once('/').unwrap_or((bucket_and_prefix, ""));
    let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build()?;
    let prefix = prefix.trim_matches('/');
    let root = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let objects: Vec<_> = s3.list(root.as_ref()).try_collect().await?;
    let mut fetched = Vec::with_capacity(objects.len());
    for object in objects {
        let key = object.location.to_string();
        let relative = match &root {
            Some(_) => key.strip_prefix(prefix).unwrap_or(&key).trim_start_matches('/').to_string(),
            None => key.clone(),
        };
        let body = s3.get(&object.location).await?.into_stream();
        fetched.push((relative.clone(), write_file(into, &relative, body).await?));
    }
    if fetched.is_empty() {
        bail!("s3://{bucket_and_prefix} holds no files");
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_digests_match_the_listing_or_one_file() {
        assert!(inside("model/weights.bin").is_ok());
        for bad in ["", "../x", "/etc/passwd", "a/../../b"] {
            assert!(inside(bad).is_err(), "{bad}");
        }
        let files = vec![("MLmodel".to_string(), "ab".repeat(32)), ("model.pkl".to_string(), "cd".repeat(32))];
        let listing = listing_digest(files.iter().map(|(p, s)| (p.as_str(), s.as_str())));
        assert_eq!(digest_matching(&files, &listing), Some(listing.clone()));
        assert_eq!(digest_matching(&files, &format!("sha256:{}", "ab".repeat(32))), None);
        let one = vec![("model.onnx".to_string(), "ef".repeat(32))];
        assert!(digest_matching(&one, &format!("sha256:{}", "ef".repeat(32))).is_some());
    }
}
