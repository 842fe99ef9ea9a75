//! Artifact paths: relative, '/'-separated, every segment a plain name — never `..`, `.`, empty,
//! absolute, with a backslash or a control character — so no path reaches outside the store.

use app::error::ApiError;

/// Longest path accepted, in bytes.
const MAX_PATH: usize = 1024;

/// A checked artifact path, relative to the store's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Checks `text` (as it came in, `field` naming it in the error).
    pub fn parse(field: &str, text: &str) -> Result<Self, ApiError> {
        let refuse = |why: &str| Err(ApiError::invalid(field, format!("`{text}` {why}")));
        if text.is_empty() {
            return refuse("is empty: name a file");
        }
        if text.len() > MAX_PATH {
            return refuse(&format!("is longer than {MAX_PATH} bytes"));
        }
        if text.starts_with('/') {
            return refuse("is absolute: artifact paths are relative to the artifact root");
        }
        for segment in text.split('/') {
            match segment {
                "" => return refuse("has an empty segment (`//` or a trailing `/`)"),
                "." | ".." => return refuse("has a `.` or `..` segment"),
                _ if segment.contains('\\') => return refuse("has a backslash"),
                _ if segment.chars().any(char::is_control) => return refuse("has a control character"),
                _ => {}
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl std::fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ArtifactPath;

    #[test]
    fn paths_stay_inside_the_store() {
        for bad in ["", "/etc/passwd", "a/../b", "..", "a/./b", "a//b", "a/", "a\\..\\b", "a/\u{0}b"] {
            let e = ArtifactPath::parse("path", bad).expect_err(bad);
            assert_eq!(e.details, Some(serde_json::json!({ "field": "path" })), "{bad}");
        }
        for good in ["model.pkl", "1/abc/artifacts/model/MLmodel", "données/график.png", "a b/c.d"] {
            assert_eq!(ArtifactPath::parse("path", good).expect(good).as_str(), good);
        }
    }
}
