//! The digest of a directory of artifacts: the sha256 of its file list, one line per file in byte
//! order of its path relative to the directory, each line `<sha256 hex>  <path>\n` — the lines
//! `sha256sum` prints — so a copy of the directory recomputes it with
//! `find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`.

use app::error::ApiError;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::{StoredFile, files_under};

/// `sha256:<hex>` over the files under `root` (their paths all start with `root/`).
pub fn digest(root: &str, files: &[StoredFile]) -> String {
    listing_digest(files.iter().map(|f| (&f.path[root.len() + 1..], f.sha256.as_str())))
}

/// `sha256:<hex>` of the listing of (relative path, sha256 hex) pairs, in any order.
pub fn listing_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<(&str, &str)> = files.into_iter().collect();
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for (path, sha256) in lines {
        hasher.update(format!("{sha256}  {path}\n"));
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The digest of the files recorded under the directory `root` and how many there are, read in
/// the caller's connection or transaction; `None` when it holds no file.
pub async fn digest_of(conn: &mut AnyConnection, root: &str) -> Result<Option<(String, usize)>, ApiError> {
    let files = files_under(conn, &format!("{root}/")).await?;
    Ok((!files.is_empty()).then(|| (digest(root, &files), files.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> StoredFile {
        StoredFile {
            path: path.into(),
            size: content.len() as i64,
            sha256: hex::encode(Sha256::digest(content)),
            object_key: String::new(),
        }
    }

    #[test]
    fn the_digest_is_sha256sum_over_the_sorted_relative_paths() {
        let files = [file("1/m/artifacts/model.pkl", b"weights"), file("1/m/artifacts/MLmodel", b"flavors: {}\n")];
        let listing = format!(
            "{}  MLmodel\n{}  model.pkl\n",
            hex::encode(Sha256::digest(b"flavors: {}\n")),
            hex::encode(Sha256::digest(b"weights"))
        );
        assert_eq!(digest("1/m/artifacts", &files), format!("sha256:{}", hex::encode(Sha256::digest(listing))));
        let reversed = [files[1].clone(), files[0].clone()];
        assert_eq!(digest("1/m/artifacts", &reversed), digest("1/m/artifacts", &files), "order-independent");
    }
}
