//! Web protections on every response: security headers, and refusal of cross-site writes (CSRF).

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use app::error::ApiError;

use super::AppState;

/// The policy for everything but console pages (which set one with their script nonce): only
/// this origin's scripts, styles and connections; no plugins, no framing, no `<base>`.
const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Adds the security headers to every response (pages keep their own nonce-bearing CSP).
pub async fn security_headers(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_CSP));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if s.cookie_policy.secure {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// Refuses state-changing requests that a browser sent from another site. Requests with a bearer
/// token or basic credentials are exempt (a browser never adds one on its own, and the cookie is
/// then not read); any other `Authorization` header exempts nothing; requests that carry a cookie must show
/// `Sec-Fetch-Site: same-origin` or an `Origin` of this host.
pub async fn reject_cross_site(req: Request, next: Next) -> Response {
    if is_cross_site_write(&req) {
        return ApiError::forbidden("cross-site request refused").into_response();
    }
    next.run(req).await
}

fn is_cross_site_write(req: &Request) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let headers = req.headers();
    // Only credentials that authenticate the request in the cookie's place exempt it.
    if super::auth::credentials(headers).is_some_and(|(scheme, _)| scheme == "bearer" || scheme == "basic") {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        return origin_host != host;
    }
    // No browser provenance at all: only a cookie-less client (a script) may write.
    headers.contains_key(COOKIE)
}
