//! Request extractors whose failures are JSON errors naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use app::error::{ApiError, ErrorCode};

/// A JSON body: 415 without a JSON content type, 413 when too large, 400 when not JSON,
/// 422 naming the field when a value has the wrong type or is missing.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes JSON, naming the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::bad_request(format!("body is not valid JSON: {inner}"))
            }
            _ => {
                let message = strip_position(&inner);
                ApiError::invalid(&field_of(&path, &message), message)
            }
        }
    })
}

/// The field an error is about: the path, extended by the name in a `missing field `x``
/// message, which serde reports at the enclosing object.
fn field_of(path: &str, message: &str) -> String {
    let named = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_string(),
        (".", None) => "body".to_string(),
        (p, Some(name)) => format!("{p}.{name}"),
        (p, None) => p.to_string(),
    }
}

/// `invalid type: string "x", expected i64 at line 1 column 9` → without the position.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A query string: 422 naming the parameter when one has the wrong type.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." { "query" } else { path.as_str() };
            ApiError::invalid(field, err.into_inner())
        })
    }
}

/// Path parameters: a value that does not parse (a number out of range, bad percent-encoding)
/// is 422 naming the parameter, in the JSON error body like every other error.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::{ErrorKind, Path};
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => key.as_str(),
                    _ => "path",
                };
                Err(ApiError::invalid(field, e.body_text()))
            }
            Err(other) => Err(ApiError::invalid("path", other.body_text())),
        }
    }
}

/// A version number from the URL path.
pub fn version_number(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::invalid("version", format!("'{raw}' is not a version number"))),
    }
}

/// An upload whose next bytes do not come within this long is abandoned (nothing is stored).
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// An upload's chunks, ending in an error when the client goes quiet for [`UPLOAD_IDLE`]: uploads
/// take as long as their files, so they are bounded by their idle time instead of the request
/// timeout.
pub fn idle_bounded<E: std::fmt::Display>(
    chunks: impl futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, String>> {
    use futures::StreamExt;
    futures::stream::unfold(chunks, |mut chunks| async move {
        match tokio::time::timeout(UPLOAD_IDLE, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), chunks)),
            Ok(Some(Err(e))) => Some((Err(e.to_string()), chunks)),
            Ok(None) => None,
            Err(_) => Some((Err(format!("no bytes for {} s", UPLOAD_IDLE.as_secs())), chunks)),
        }
    })
}

/// The `multipart/form-data` boundary of a request, if it is one.
pub fn multipart_boundary(headers: &axum::http::HeaderMap) -> Option<String> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(content_type).ok()
}

/// What a refused upload may still send before its refusal goes out: at most this many bytes,
/// for at most this long. A client still sending then reads the refusal instead of a broken
/// connection; one that would send for ever is cut off.
pub const DRAIN_BYTES: usize = 64 << 20;
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops the rest of a refused upload's body, within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
pub async fn drain<E>(body: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin)) {
    use futures::StreamExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut left = DRAIN_BYTES;
        while let Some(Ok(chunk)) = body.next().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                return;
            }
        }
    })
    .await;
}
