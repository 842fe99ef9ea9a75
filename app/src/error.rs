//! The one error type shared by the REST API, the server functions and the UI.

use serde::{Deserialize, Serialize};

/// What kind of failure an [`ApiError`] is; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    InvalidInput,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    /// The request did not complete in the time the server allows.
    Timeout,
    Internal,
}

impl ErrorCode {
    /// The HTTP status code this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::InvalidInput => 422,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Timeout => 408,
            ErrorCode::Internal => 500,
        }
    }
}

/// A failure a client can act on: a code, a human message, and details such as the offending field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    /// Bad input in one named field (422); `field` may be a path such as `lineage.git_commit`.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            code: ErrorCode::InvalidInput,
            message: format!("{field}: {message}"),
            details: Some(serde_json::json!({ "field": field })),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// No valid credentials (401).
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "sign in or send a valid API token")
    }

    /// Valid credentials without the needed role (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// A failure whose cause must not reach the client; the caller logs the cause.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error; the server log has the details")
    }

    /// Names the field this error is about.
    pub fn with_field(mut self, field: &str) -> Self {
        self.details = Some(serde_json::json!({ "field": field }));
        self
    }

    /// The field this error names, if it is about one.
    pub fn field(&self) -> Option<&str> {
        self.details.as_ref()?.get("field")?.as_str()
    }
}

/// The JSON envelope every REST error is sent in: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ApiError,
}

impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match value {
            E::Args(m) | E::Deserialization(m) => ApiError::bad_request(m),
            E::Request(m) => ApiError::new(ErrorCode::Internal, format!("could not reach the server: {m}")),
            _ => ApiError::internal(),
        }
    }
}

#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.code.status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(ErrorBody { error: self })).into_response()
    }
}

/// A database failure: a broken constraint is the client error it stands for (a value taken, 409;
/// a reference to nothing or a value out of range, 422), so races are decided by the database;
/// anything else reveals nothing internal and is logged.
#[cfg(feature = "ssr")]
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        if let Some(db) = e.as_database_error() {
            let what = db.constraint().map_or_else(|| db.message().to_string(), str::to_string);
            match db.kind() {
                ErrorKind::UniqueViolation => return ApiError::conflict(format!("already exists ({what})")),
                ErrorKind::ForeignKeyViolation | ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    return ApiError::new(ErrorCode::InvalidInput, format!("refused by the database ({what})"));
                }
                _ => {}
            }
        }
        tracing::error!(error = %e, "database error");
        ApiError::internal()
    }
}
