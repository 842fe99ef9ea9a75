//! Authentication: who is calling (API token or session cookie), and the sign-in gate for pages.

use std::net::SocketAddr;

use app::backend::Identity;
use app::domain::{Caller, Origin};
use app::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;

/// The `Authorization` header's scheme (lower case) and credentials, when it has both.
pub fn credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(scheme, value)| (scheme.to_ascii_lowercase(), value.trim().to_string()))
}

/// Resolves the caller and stores it, and the request's [`Origin`], in the request's extensions.
/// A bearer token that is not valid is refused at once; a stale session cookie only makes the
/// request anonymous. Anonymous requests for console pages are sent to the sign-in page.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let origin = origin(&req);
    req.extensions_mut().insert(origin.clone());
    let (scheme, credentials) = credentials(req.headers()).unwrap_or_default();
    if scheme == "basic" {
        let Some((username, password)) = basic_credentials(&credentials) else {
            return ApiError::new(app::error::ErrorCode::Unauthorized, "malformed basic credentials").into_response();
        };
        match s.store.password_caller(&username, &password, &origin).await {
            Ok(caller) => req.extensions_mut().insert(Caller { origin, ..caller }),
            Err(e) => return e.into_response(),
        };
        return not_stored(next.run(req).await);
    }
    let bearer = (scheme == "bearer").then_some(credentials);
    let caller = match bearer {
        Some(token) => match s.store.token_caller(&token).await {
            Ok(Some(caller)) => Some(caller),
            Ok(None) => {
                return ApiError::new(app::error::ErrorCode::Unauthorized, "invalid, expired or revoked API token")
                    .into_response();
            }
            Err(e) => return e.into_response(),
        },
        None => match s.cookie_policy.read(req.headers()) {
            Some(session) => match s.store.session_caller(&session).await {
                Ok(caller) => caller,
                Err(e) => return e.into_response(),
            },
            None => None,
        },
    };
    let page = is_page(req.method(), req.uri().path());
    let signed_in = caller.is_some();
    match caller {
        Some(caller) => {
            if page && req.uri().path() == "/sign-in" {
                return Redirect::to("/").into_response();
            }
            req.extensions_mut().insert(Caller { origin, ..caller });
        }
        None if page && req.uri().path() != "/sign-in" => {
            let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let target =
                format!("/sign-in?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
            return (StatusCode::SEE_OTHER, [(axum::http::header::LOCATION, target)]).into_response();
        }
        None => {}
    }
    let response = next.run(req).await;
    if signed_in { not_stored(response) } else { response }
}

/// What a signed-in caller gets is theirs: no shared or browser cache keeps it (unless the
/// handler said otherwise).
fn not_stored(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    response
}

/// `user:password` from the base64 of a basic `Authorization` header.
fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The request id (set by the request-id layer) and the peer address of a request.
fn origin(req: &Request) -> Origin {
    Origin {
        request_id: req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string),
        client_addr: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
    }
}

/// Served to anyone without looking at credentials: operations endpoints, static assets, and
/// what an outside auditor needs to check an audit export (the public keys and checkpoints).
fn is_public(method: &Method, path: &str) -> bool {
    const PUBLIC: [&str; 5] = ["/pkg/", "/healthz", "/readyz", "/metrics", "/favicon.ico"];
    const AUDITOR: [&str; 3] =
        ["/api/v1/audit/public-key", "/api/v1/audit/checkpoints", "/api/v1/audit/checkpoints/latest"];
    PUBLIC.iter().any(|p| path.starts_with(p)) || (method == Method::GET && AUDITOR.contains(&path))
}

/// A console page (as opposed to the API, static assets and operations endpoints).
fn is_page(method: &Method, path: &str) -> bool {
    method == Method::GET && !path.starts_with("/api/") && !is_public(method, path)
}

/// The authenticated caller of a REST request, or 401.
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().map(Authenticated).ok_or_else(ApiError::unauthorized)
    }
}
